"""``kpe models ...`` (list, promote, compare, fit-ranker, rollback) and ``kpe train``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.table import Table

from flows.cli.console import console, fail
from kpe.evaluate.gate import DEFAULT_GATE_LIMIT, DEFAULT_MARGIN, DEFAULT_TOLERANCE, interval_text
from kpe.registry import current_extraction_model, default_extraction_model
from kpe.settings import get_settings
from kpe.train.config import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_LEARNING_RATE, DEFAULT_SEED
from kpe.train.kinds import KINDS, annotation_kinds, extraction_kinds, trainable_kinds
from warehouse.db import connect
from warehouse.models import (
    ModelRecord,
    RegistryError,
    get_model,
    list_models,
    production_model,
    promote,
    rollback,
)

models_app = typer.Typer(
    help="Trained model versions: list them, promote one to production, roll production back.",
    no_args_is_help=True,
)

def _number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def _delta(value: Any) -> str:
    return f"{value:+.3f}" if isinstance(value, int | float) else "-"


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d") if value is not None else "-"


def models_table(records: list[ModelRecord], title: str = "Models") -> Table:
    """A rich table of registry rows: the gate's headline numbers (mean macro F1@5 over the gate sets and the
    difference to the production model it was compared with). The version name holds the kind and the creation
    time (UTC); everything else is in ``--json``."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("version", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("method", no_wrap=True)
    table.add_column("F1@5", justify="right", no_wrap=True)
    table.add_column("vs prod", justify="right", no_wrap=True)
    table.add_column("promoted", no_wrap=True)
    styles = {"production": "bold green", "rejected": "red", "retired": "dim"}
    for record in records:
        decision = record.decision or {}
        status = f"[{styles[record.status]}]{record.status}[/]" if record.status in styles else record.status
        table.add_row(
            record.version,
            status,
            record.method,
            _number(decision.get("primary_candidate")),
            _delta(decision.get("delta")),
            _when(record.promoted_at),
        )
    return table


def gate_table(title: str, decision: dict[str, Any], sets: dict[str, int]) -> Table:
    """The gate's comparison as a table: per set and on average, both sides' F1@5, the delta and its 95 %
    interval (``decision``: ``GateDecision.to_dict()`` or the stored decision; ``sets``: documents per set)."""
    table = Table(title=title)
    for name in ("set", "docs", "candidate F1@5", "production F1@5", "delta", "delta 95% CI"):
        table.add_column(name)
    for name, cmp in decision["per_set"].items():
        table.add_row(name, str(sets[name]), _number(cmp["candidate"]), _number(cmp["production"]),
                      _delta(cmp["delta"]), interval_text(cmp.get("ci95")))
    table.add_row("mean", "", _number(decision["primary_candidate"]), _number(decision["primary_production"]),
                  _delta(decision["delta"]), interval_text(decision.get("delta_ci95")))
    return table


def _open(read_only: bool):
    path = get_settings().warehouse_path
    try:
        return connect(path, read_only=read_only)
    except FileNotFoundError as exc:
        fail(str(exc))
    except Exception as exc:  # duckdb lock held by a running flow, a damaged file...
        fail(f"cannot open the warehouse {path}: {exc}")


@models_app.command("list")
def list_command(
    status: str | None = typer.Option(
        None, "--status", "-s", help="Only models with this status: candidate, production, rejected or retired."
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print every field of every model (metrics, decision, events) as JSON instead."
    ),
) -> None:
    """List registered models, newest first, and say which model nightly extraction uses."""
    if not get_settings().warehouse_path.exists():
        console.print("no models registered yet (no warehouse); nightly extraction would use "
                      f"[bold]{default_extraction_model().version}[/]")
        return
    with _open(read_only=True) as con:
        try:
            records = list_models(con, status=status)
        except RegistryError as exc:
            fail(str(exc))
        try:
            current = current_extraction_model(production_model(con))
            uses = f"nightly extraction uses [bold]{current.version}[/] (method {current.method})"
        except FileNotFoundError as exc:
            uses = f"[red]warning:[/red] {exc}"
        for name, spec in annotation_kinds().items():  # each annotation output has its own production model
            record = production_model(con, spec.output)
            uses += (f"\n{spec.output} ({name}): [bold]{record.version}[/]" if record is not None
                     else f"\n{spec.output} ({name}): no production model (the nightly skips it)")
    if json_output:
        print(json.dumps([asdict(r) for r in records], indent=2, default=str))
        return
    if records:
        console.print(models_table(records))
    else:
        console.print("no models registered yet (train one with `kpe train`)")
    console.print(uses)


@models_app.command("promote")
def promote_command(
    version: str = typer.Argument(..., help="The model version to make production (see `kpe models list`)."),
    force: bool = typer.Option(False, "--force", help="Promote even a model the gate rejected."),
    reason: str = typer.Option("manual promotion", "--reason", help="Why; stored with the model's decision."),
) -> None:
    """Make VERSION the production model; the current one is retired. The next nightly re-extracts with it."""
    with _open(read_only=False) as con:
        record = get_model(con, version)
        if record is None:
            fail(f"no model version {version!r} in the registry (see `kpe models list`)")
        if record.path and not Path(record.path).exists():
            fail(f"the files of {version} are missing ({record.path}); not promoting it")
        try:
            promoted = promote(con, version, reason=reason, allow_rejected=force)
        except RegistryError as exc:
            fail(str(exc))
    console.print(f"[green]{promoted.version}[/] is now the production model (method {promoted.method})")


@models_app.command("compare")
def compare_command(
    version: str = typer.Argument(..., help="The keyphrase model to measure (see `kpe models list`)."),
    against: str | None = typer.Option(
        None, "--against", help="The model to measure it against (default: production, or the packaged encoder)."
    ),
    gate_limit: int | None = typer.Option(
        DEFAULT_GATE_LIMIT, "--gate-limit", min=0, help="Documents per gate set (default, or 0: every one)."
    ),
    margin: float = typer.Option(DEFAULT_MARGIN, "--margin", min=0.0, help="As `kpe train --margin`."),
    tolerance: float = typer.Option(DEFAULT_TOLERANCE, "--tolerance", min=0.0, help="As `kpe train --tolerance`."),
    json_output: bool = typer.Option(False, "--json", help="Print the decision with every number as JSON."),
) -> None:
    """Measure VERSION against production on the gate sets as the gate does, with 95% intervals, and say what the
    gate would decide. Changes nothing: to act on it, `kpe models promote VERSION` (--force for a rejected one)."""
    from kpe.evaluate.gate import decide, evaluate_on_gate_sets
    from tasks.evaluate import load_warehouse_gate_sets

    with _open(read_only=True) as con:  # closed before the (minutes long) evaluation
        record, other = get_model(con, version), get_model(con, against) if against else production_model(con)
    if record is None or (against and other is None):
        fail(f"no model version {version if record is None else against!r} in the registry (see `kpe models list`)")
    if record.kind in annotation_kinds() or (other is not None and other.kind in annotation_kinds()):
        fail("compare measures keyphrase models; entity and label models (kinds "
             + ", ".join(annotation_kinds()) + ") have their own gate (`kpe train --kind ner|classify`)")
    try:
        candidate, baseline = current_extraction_model(record), current_extraction_model(other)
    except FileNotFoundError as exc:
        fail(str(exc).replace("production model", "model"))
    sets = load_warehouse_gate_sets(gate_limit or None)
    sizes = {name: len(s.docs) for name, s in sets.items()}
    console.print(f"measuring {candidate.version} ({candidate.method}) and {baseline.version} ({baseline.method}) "
                  f"on {', '.join(f'{n} ({k} docs)' for n, k in sizes.items())}")
    decision = decide(evaluate_on_gate_sets(candidate, sets, progress=None),
                      evaluate_on_gate_sets(baseline, sets, progress=None), margin=margin, tolerance=tolerance)
    if json_output:
        print(json.dumps({"candidate": candidate.version, "against": baseline.version, "sets": sizes,
                          **decision.to_dict()}, indent=2))
        return
    console.print(gate_table(f"{candidate.version} against {baseline.version}", decision.to_dict(), sizes))
    verdict = "[green]would promote[/]" if decision.promote else "[yellow]would reject[/]"
    console.print(f"the gate {verdict} {candidate.version}: {decision.reason}")


@models_app.command("fit-ranker")
def fit_ranker_command(
    version: str = typer.Argument(..., help="A registered tagger (see `kpe models list`)."),
    gate_limit: int | None = typer.Option(
        DEFAULT_GATE_LIMIT, "--gate-limit", min=0, help="Documents per gate set (default, or 0: every one)."
    ),
    margin: float = typer.Option(DEFAULT_MARGIN, "--margin", min=0.0, help="As `kpe train --margin`."),
    tolerance: float = typer.Option(DEFAULT_TOLERANCE, "--tolerance", min=0.0, help="As `kpe train --tolerance`."),
    auto_promote: bool = typer.Option(
        True, "--promote/--no-promote", help="Promote when the gate says yes (--no-promote: only record the decision)."
    ),
    ranker_folds: int = typer.Option(
        0, "--ranker-folds", min=0, max=10,
        help="Fit the ranker on the training split too, tagged out of fold by this many fold taggers trained like "
             "the tagger's run (that many more trainings; 0: the validation slice only).",
    ),
) -> None:
    """Fit the `ranked` method's span ranker for a tagger (a first one, or a new one in place of its own): a new version
    (its files plus the ranker, fitted on its training run's validation slice with a phrase lexicon of its training
    split; with --ranker-folds also on its training split tagged out of fold), gated like `kpe train`'s candidates."""
    from flows.train import fit_ranker

    try:
        result = fit_ranker(version=version, gate_limit=gate_limit or None, margin=margin, tolerance=tolerance,
                            auto_promote=auto_promote, ranker_folds=ranker_folds)
    except ValueError as exc:  # not a tagger, unknown version, files missing
        fail(str(exc))
    _print_gate_outcome(result)


@models_app.command("rollback")
def rollback_command(
    reason: str = typer.Option("manual rollback", "--reason", help="Why; stored with the rolled-back model."),
    kind: str | None = typer.Option(
        None, "--kind", help="Roll back the production model of an annotation kind: "
        + ", ".join(annotation_kinds()) + " (default: the keyphrase extraction model)."),
) -> None:
    """Mark the production model rejected and restore the previously promoted one (or the packaged default)."""
    if kind is not None and kind not in annotation_kinds():
        fail(f"--kind must be one of {', '.join(annotation_kinds())}, got {kind!r}")
    output = KINDS[kind].output if kind else "keyphrases"
    with _open(read_only=False) as con:
        before = production_model(con, output)
        try:
            restored = rollback(con, reason=reason, output=output)
        except RegistryError as exc:
            fail(str(exc))
    if kind:
        what = restored.version if restored is not None else "none (the nightly skips it)"
        console.print(f"rolled back {before.version} (now rejected); production {kind} model now: {what}")
        return
    what = restored.version if restored is not None else f"the default encoder ({default_extraction_model().version})"
    console.print(f"rolled back {before.version} (now rejected); nightly extraction now uses {what}")


def train_command(
    kind: str = typer.Option(
        "tagger", "--kind",
        help="What to fine-tune: "
             + " or ".join(f"{k.name} ({k.description})" for k in trainable_kinds().values()) + ".",
    ),
    method: str | None = typer.Option(
        None, "--method",
        help="Extraction method production would run with the model: "
             + "; ".join(f"{', '.join(k.methods)} for a {k.name}" for k in extraction_kinds().values())
             + " (default: each is evaluated on the gate sets and the best is chosen).",
    ),
    base_model: str | None = typer.Option(
        None, "--base-model",
        help="Encoder to start from: a local model directory (default: packaged all-MiniLM-L6-v2).",
    ),
    train_data: list[str] | None = typer.Option(
        None, "--train-data",
        help="Training source, repeatable: inspec, semeval2017, kp20k_small, a JSONL path, or pubmed (silver author "
             "keywords of ingested documents). Default: inspec + semeval2017 (+ pubmed when documents were ingested).",
    ),
    max_steps: int | None = typer.Option(
        None, "--max-steps", min=1, help="Stop fine-tuning after this many steps (replaces --epochs)."
    ),
    epochs: int = typer.Option(
        DEFAULT_EPOCHS, "--epochs", min=1, help="Fine-tuning epochs when --max-steps is not given."
    ),
    mlm_steps: int = typer.Option(
        0, "--mlm-steps", min=0, help="Masked-LM steps on the corpus before fine-tuning (0: none)."
    ),
    train_limit: int | None = typer.Option(
        None, "--train-limit", min=1, help="At most this many documents per training source."
    ),
    gate_limit: int | None = typer.Option(
        DEFAULT_GATE_LIMIT, "--gate-limit", min=0,
        help="Documents per gate set when comparing candidate and production (default, or 0: every held-out document)."
    ),
    margin: float = typer.Option(
        DEFAULT_MARGIN, "--margin", min=0.0, help="Mean macro F1@5 gain over production needed to promote."
    ),
    tolerance: float = typer.Option(
        DEFAULT_TOLERANCE, "--tolerance", min=0.0, help="Largest macro F1@5 loss allowed on any one gate set."
    ),
    auto_promote: bool = typer.Option(
        True, "--promote/--no-promote", help="Promote when the gate says yes (--no-promote: only record the decision)."
    ),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", min=1, help="Training batch size."),
    learning_rate: float = typer.Option(
        DEFAULT_LEARNING_RATE, "--learning-rate", min=0.0, help="Encoder learning rate."
    ),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Random seed (data order, initialisation)."),
    keep_checkpoints: bool = typer.Option(
        False, "--keep-checkpoints", help="Keep the training checkpoints (needed only to resume; large)."
    ),
    precision: str = typer.Option(
        "auto", "--precision",
        help="auto (bf16 on a GPU or a CPU with native bf16, else fp32), fp32, bf16 or fp16 (GPU).",
    ),
    attention_dropout: float = typer.Option(
        0.0, "--attention-dropout", min=0.0, max=0.99,
        help="Dropout on attention probabilities while training (0: off, a third less time a CPU step; 0.1: BERT's).",
    ),
    ranker_folds: int = typer.Option(
        0, "--ranker-folds", min=0, max=10,
        help="tagger: fit the span ranker on the training split too, tagged out of fold by this many fold taggers "
             "trained like the run (that many more trainings; 0: the validation slice only).",
    ),
) -> None:
    """Train a candidate model, compare it with production on the gate sets, promote or reject it."""
    from flows.train import train

    try:
        result = train(
            kind=kind, method=method, base_model=base_model, train_data=train_data or None, max_steps=max_steps,
            epochs=epochs, mlm_steps=mlm_steps, train_limit=train_limit, gate_limit=gate_limit or None,
            margin=margin, tolerance=tolerance, auto_promote=auto_promote, seed=seed, batch_size=batch_size,
            learning_rate=learning_rate, keep_checkpoints=keep_checkpoints,
            train_options={**({} if precision == "auto" else {"precision": precision}),
                           **({"attention_dropout": attention_dropout} if attention_dropout else {}),
                           **({"ranker_folds": ranker_folds} if ranker_folds else {})} or None,
        )
    except ValueError as exc:  # bad kind/method pair, unknown training source, no data
        fail(str(exc))
    decision = result["decision"]
    if kind in annotation_kinds():  # its own gate set, one number
        colour = "green" if result["status"] == "production" else "yellow"
        console.print(f"gate set {decision['gate_set']}: {decision['primary']} {_number(decision['primary_candidate'])}"
                      f" (production {_number(decision['primary_production'])})")
        console.print(f"[{colour}]{result['version']}: {result['status']}[/]")
        console.print(decision["reason"])
        return
    _print_gate_outcome(result)


def _print_gate_outcome(result: dict[str, Any]) -> None:
    """A keyphrase candidate's gate table, its status and the reason."""
    decision = result["decision"]
    console.print(gate_table(f"gate: {result['version']} ({result['method']})", decision, decision["sets"]))
    colour = "green" if result["status"] == "production" else "yellow"
    console.print(f"[{colour}]{result['version']}: {result['status']}[/] against {decision['production_version']}")
    console.print(decision["reason"])
