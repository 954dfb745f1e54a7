"""``kpe evaluate-classify``: a MeSH classifier against TF-IDF + logistic regression on held-out documents."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from flows.cli.console import console, fail
from kpe.evaluate.labels import METRIC_COLUMNS, compare_label_models
from kpe.settings import get_settings
from tasks.train import deleted_doc_ids


def evaluate_classify_command(
    model: Annotated[Path, typer.Argument(help="A classify model dir (python -m kpe.train --kind classify).")],
    lake: Annotated[Path | None, typer.Option("--lake", help="Parquet lake (default: setting lake_dir).")] = None,
    holdout_from_year: Annotated[int | None, typer.Option(
        "--holdout-from-year", help="Documents from this year on form the 'recent' set (default: the model's)."
    )] = None,
    baseline: Annotated[bool, typer.Option(
        "--baseline/--no-baseline", help="Also train and score TF-IDF + logistic regression on the same split."
    )] = True,
    json_output: Annotated[bool, typer.Option("--json", help="Print the whole report as JSON.")] = False,
) -> None:
    """Micro / macro F1, P@5, R@5 of a MeSH classifier, the classical baseline and the label-prior floor on the
    held-out test split and on the later documents ('recent') the model never saw."""
    from kpe.mesh_data import build_mesh_data

    labels_file = model / "labels.json"
    if not labels_file.is_file():
        fail(f"{model} is not a classify model dir (no labels.json)")
    meta = json.loads(labels_file.read_text())
    year = holdout_from_year if holdout_from_year is not None else meta.get("holdout_from_year")
    lake_dir = lake or get_settings().lake_dir
    data = build_mesh_data(lake_dir, int(meta.get("min_label_docs") or get_settings().mesh_min_docs),
                           deleted_doc_ids(), holdout_from_year=year)
    if not data.documents:
        fail(f"no document with MeSH and an abstract in {lake_dir}")
    started = time.perf_counter()
    report = compare_label_models(data, model, baseline=baseline)
    report["evaluation_seconds"] = round(time.perf_counter() - started, 1)
    if json_output:
        console.print_json(json.dumps(report, default=str))
        return
    table = Table(title=f"MeSH suggestions: {report['labels']} labels, {model}", box=box.SIMPLE_HEAD)
    for column in ("model", "thresholds", "set", "docs", *METRIC_COLUMNS):
        table.add_column(column, justify="left" if column in ("model", "thresholds", "set") else "right")
    for row in report["results"]:
        table.add_row(row["model"], row["thresholds"], row["split"], str(row["docs"]),
                      *(f"{row[c]:.3f}" for c in METRIC_COLUMNS))
    console.print(table)
    if "baseline_train_seconds" in report:
        console.print(f"baseline fit in {report['baseline_train_seconds']:.0f} s; "
                      f"evaluation {report['evaluation_seconds']:.0f} s")
