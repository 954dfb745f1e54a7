"""Options several commands share: the inputs of each source and ``--set KEY=VALUE`` extraction settings."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

PubmedOpt = Annotated[Optional[list[str]], typer.Option(
    "--pubmed", help="MEDLINE XML file, folder, glob or https URL (repeatable; more files may follow, as a shell "
    "glob gives them: --pubmed data/*.xml.gz).")]
S2Opt = Annotated[Optional[list[str]], typer.Option(
    "--s2", help="Semantic Scholar file, folder, glob or https URL (repeatable; more files may follow, as a shell "
    "glob gives them: --s2 data/*.jsonl.gz).")]
FilesArg = Annotated[Optional[list[str]], typer.Argument(
    metavar="FILES", show_default=False,
    help="More input files, each given to its source by its name: *.xml and *.xml.gz to --pubmed; *.jsonl, "
    "*.json and other *.gz to --s2. A folder or URL needs --pubmed or --s2 in front of it.")]


def inputs_by_source(pubmed: list[str] | None, s2: list[str] | None, files: list[str] | None) -> dict[str, list[str]]:
    """The inputs of each source: its option's values plus the loose FILES assigned to it by name (see
    ``kpe.inputs.assign_inputs``); a loose folder, URL or unknown file name is a clear usage error."""
    from kpe.inputs import assign_inputs

    try:
        return assign_inputs({"pubmed": pubmed or [], "s2": s2 or []}, files or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="FILES") from None


def config_pairs(pairs: list[str]) -> dict[str, object]:
    """``--set KEY=VALUE`` pairs as a config dict (values read as JSON where they parse, else as text)."""
    values: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--set")
        try:
            values[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[key.strip()] = raw
    return values


def extraction_settings(pairs: list[str], top_n: int | None = None, fast: bool = False) -> dict | None:
    """``--set KEY=VALUE`` pairs (values read as JSON where they parse, else as text), ``--top-n`` and ``--fast``
    as the nightly flow's ``config``; a bad key or value is a clear error."""
    from pydantic import ValidationError

    from kpe.extract.config import ExtractionConfig

    values = config_pairs(pairs)
    if top_n:
        values["top_n"] = top_n
    if not values and not fast:
        return None
    try:
        config = ExtractionConfig.fast(**values) if fast else ExtractionConfig(**values)
    except ValidationError as exc:
        raise typer.BadParameter(str(exc), param_hint="--set") from None
    return config.model_dump(mode="json")


