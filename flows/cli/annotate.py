"""``kpe evaluate-ner`` (entity P/R/F1 on BC5CDR), ``kpe annotate`` (only the nightly's annotation step) and
``kpe entities DOC_ID`` (one document's entities and suggested labels)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table

from flows.cli.console import console, fail, print_rows, read_connection
from tasks.train import production_model_dir


def entity_table(result: dict, title: str) -> Table:
    """Overall and per-type precision / recall / F1 with gold and predicted entity counts."""
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for column in ("type", "precision", "recall", "F1", "gold", "predicted"):
        table.add_column(column, justify="left" if column == "type" else "right")
    rows = [*result["per_type"].items(), ("overall", result["overall"])]
    for name, r in rows:
        table.add_row(name, f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}", str(r["support"]),
                      str(r["predicted"]))
    return table


def evaluate_ner_command(
    model: Annotated[Optional[Path], typer.Argument(
        help="A ner model dir (`kpe train --kind ner`; default: the production ner model).")] = None,
    split: Annotated[str, typer.Option(
        "--split", help="BC5CDR split: test (reporting) or devel (the gate's set).")] = "test",
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Only the first N sentences.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Sentences per forward pass.")] = 64,
    json_output: Annotated[bool, typer.Option("--json", help="Print every number as JSON instead.")] = False,
) -> None:
    """Entity-level precision / recall / F1 (seqeval, strict IOB2: type and both boundaries exact) of a ner model
    on BC5CDR, overall and per entity type."""
    from kpe.train.ner import evaluate_model_dir

    if split not in ("test", "devel", "train"):
        fail(f"--split must be test, devel or train, got {split!r}")
    version = None
    if model is None:
        try:
            version, _, path = production_model_dir("entities")
        except ValueError as exc:
            fail(str(exc))
        model = Path(path)
    try:
        result = evaluate_model_dir(model, split, limit=limit, batch_size=batch_size)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    result["model"] = str(model)
    result["model_version"] = version
    if json_output:
        print(json.dumps(result, indent=2, default=str))
        return
    console.print(entity_table(result, f"BC5CDR {split}: {result['sentences']} sentences, {version or model}"))
    console.print(f"{result['seconds']:.1f} s ({result['sentences_per_second']:.0f} sentences/s)")


def annotate_command(
    kind: Annotated[Optional[list[str]], typer.Option(
        "--kind", help="Annotation kind (ner, classify); repeatable; default: every one with a production model.")]
    = None,
    limit: Annotated[Optional[int], typer.Option(
        "--limit", min=1, help="At most N documents per kind in this run; the rest wait.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", min=1, help="Documents per batch (one transaction).")] = None,
) -> None:
    """Only the nightly's annotation step (entities, MeSH suggestions) for documents that are new, changed or were
    annotated by another model: e.g. right after promoting a ner model."""
    from flows.annotate import annotate
    from kpe.train.kinds import annotation_kinds
    from warehouse.db import WarehouseBusy

    for name in kind or []:
        if name not in annotation_kinds():
            fail(f"--kind must be one of {', '.join(annotation_kinds())}, got {name!r}")
    try:
        result = annotate(kinds=kind or None, limit=limit, batch_size=batch_size)
    except WarehouseBusy as exc:
        fail(str(exc))
    print_rows([{"kind": k, "table": a["output"], "model": a["model_version"] or "none (skipped)",
                 "documents": a["documents"], "rows": a["rows"], "removed": a["removed"], "backlog": a["backlog"],
                 "seconds": round(a["seconds"], 1)} for k, a in result.items()], "annotations")


def entities_command(doc_id: Annotated[str, typer.Argument(help="A document id, e.g. pmid:33397041.")]) -> None:
    """One document's entities (text order) and suggested MeSH labels."""
    from warehouse.annotations import document_entities, document_labels

    con = read_connection()
    try:
        entities, labels = document_entities(con, doc_id), document_labels(con, doc_id)
    finally:
        con.close()
    print_rows(entities, f"entities of {doc_id}")
    if labels:
        print_rows(labels, f"suggested labels of {doc_id}")
