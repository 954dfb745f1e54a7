"""The ``kpe`` command line (typer + rich): one app, one console (``flows.cli.console``), one module per area.
Every subcommand has ``--help``."""

from __future__ import annotations

import typer

from flows.environment import apply_defaults

apply_defaults()

from flows.cli.annotate import annotate_command, entities_command, evaluate_ner_command  # noqa: E402
from flows.cli.classify import evaluate_classify_command  # noqa: E402 - after the env defaults
from flows.cli.evaluate import evaluate_command, export_silver_command  # noqa: E402
from flows.cli.models import models_app, train_command  # noqa: E402
from flows.cli.options import extraction_settings  # noqa: E402,F401 - part of the CLI's API (tests, scripts)
from flows.cli.query import keyphrases, sql  # noqa: E402
from flows.cli.run import ingest, nightly, status  # noqa: E402

app = typer.Typer(
    name="kpe",
    help="Nightly keyphrase pipeline for PubMed and Semantic Scholar: ingest, extract, train, evaluate, query.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
for command in (ingest, status, nightly, sql, keyphrases):
    app.command()(command)
app.command("evaluate")(evaluate_command)
app.command("evaluate-classify")(evaluate_classify_command)
app.command("evaluate-ner")(evaluate_ner_command)
app.command("annotate")(annotate_command)
app.command("entities")(entities_command)
app.command("export-silver")(export_silver_command)
app.command("train")(train_command)
app.add_typer(models_app, name="models")


def main() -> None:  # pragma: no cover - console entry point
    app()
