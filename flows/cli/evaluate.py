"""``kpe evaluate`` and ``kpe export-silver``."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import duckdb
import typer

from flows.cli.console import console, fail
from flows.cli.options import config_pairs
from kpe.datasets import BENCHMARKS
from kpe.evaluate.harness import evaluate_method, metrics_only
from kpe.evaluate.report import rich_table
from kpe.extract.methods import METHODS
from kpe.settings import get_settings
from kpe.train.kinds import get_kind, method_factories
from tasks.evaluate import export_silver, load_benchmark_docs, store_evaluation
from tasks.train import production_model_dir


class SilverSplit(StrEnum):
    """Which part of the silver set to export."""

    dev = "dev"
    train = "train"
    all = "all"


def evaluate_command(
    data: Annotated[list[str], typer.Option(
        "--data",
        help="Benchmark JSONL file (id, title+abstract or text, keyphrases), or a name: "
        + ", ".join(sorted(BENCHMARKS))
        + ", pubmed_silver_dev|train|all. Repeat for several.",
    )],
    method: Annotated[list[str], typer.Option(
        "--method",
        help="Extraction method to evaluate: " + ", ".join(sorted(METHODS)) + ". Repeat for several.",
    )],
    limit: Annotated[int | None, typer.Option(
        "--limit", min=1, help="Evaluate only the first N documents of each dataset.")] = None,
    json_output: Annotated[bool, typer.Option(
        "--json",
        help="Print one JSON object per method and dataset (every metric) instead of a table.",
    )] = False,
    predictions_out: Annotated[Path | None, typer.Option(
        "--predictions-out", help="Write ranked predictions as JSONL: one line per document and method.")] = None,
    model: Annotated[str | None, typer.Option(
        "--model",
        help="Local model directory for methods that use one (default: their own, e.g. the packaged MiniLM; a "
        "fine-tuned method such as hybrid: the production model of the configured warehouse).",
    )] = None,
    store: Annotated[bool | None, typer.Option(
        "--store/--no-store",
        help="Store results in the warehouse `evaluations` table (default: only when the warehouse file exists).",
        show_default=False,
    )] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Documents per extract call.")] = 64,
    settings_pairs: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE",
        help="A setting of the methods' config (for kpe / kpe-fast / keybert-ft / hybrid: an ExtractionConfig "
        "field), e.g. --set precision=fp32 to compare with bf16; values read as JSON where they parse; repeatable.",
    )] = None,
) -> None:
    """Evaluate keyphrase methods on benchmarks: P/R/F1 at 1, 3, 5, 10 and M, present and all gold."""
    unknown = [m for m in method if m not in METHODS]
    if unknown:
        raise typer.BadParameter(
            f"unknown method(s) {', '.join(unknown)}; known: {', '.join(sorted(METHODS))}", param_hint="--method"
        )
    config = config_pairs(settings_pairs or [])
    model_for = {m: model for m in method}
    fine_tuned = [m for m in method if m in method_factories()]
    if model is None and fine_tuned:  # a fine-tuned method without --model: the warehouse's production model
        try:
            version, kind, path = production_model_dir()
        except (ValueError, duckdb.Error) as exc:
            fail(f"{', '.join(fine_tuned)} needs a fine-tuned model: {exc}")
        offered = get_kind(kind).methods
        for m in fine_tuned:
            if m not in offered:
                fail(f"{m} cannot use the production model {version} (a {kind}; it offers {', '.join(offered)}): "
                     "give --model DIR")
            model_for[m] = path
        console.print(f"{', '.join(fine_tuned)}: production model {version} ({path})")
    settings = get_settings()
    do_store = settings.warehouse_path.is_file() if store is None else store
    results = []
    pred_handle = None
    if predictions_out is not None:
        predictions_out.parent.mkdir(parents=True, exist_ok=True)
        pred_handle = predictions_out.open("w", encoding="utf-8")
    try:
        for name in data:
            try:
                dataset, split, docs = load_benchmark_docs(name, limit)
            except (OSError, ValueError, duckdb.Error) as exc:
                fail(str(exc))
            for m in method:
                try:
                    result = evaluate_method(
                        m, docs, model_path=model_for[m], config=dict(config) or None, dataset=dataset, split=split,
                        batch_size=batch_size,
                    )
                except (ImportError, OSError, ValueError, RuntimeError) as exc:
                    fail(f"{m} on {dataset}: {type(exc).__name__}: {exc}")
                if pred_handle is not None:
                    for row in result["predictions"]:
                        record = {"id": row["id"], "method": m, "dataset": dataset, "keyphrases": row["keyphrases"]}
                        pred_handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                metrics = metrics_only(result)
                if do_store:
                    metrics["evaluation_id"] = store_evaluation(settings.warehouse_path, result)
                if json_output:
                    typer.echo(json.dumps(metrics))
                results.append(metrics)
    finally:
        if pred_handle is not None:
            pred_handle.close()
    if not json_output:
        console.print(rich_table(results))


def export_silver_command(
    out: Annotated[Path, typer.Option(
        "--out", help="Output JSONL file (id = doc_id, text, keyphrases = author keywords).")],
    split: Annotated[SilverSplit, typer.Option(
        "--split", help="Split by kpe.splits.split_of(doc_id).")] = SilverSplit.dev,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Write at most N documents.")] = None,
) -> None:
    """Export the silver PubMed benchmark (author keywords present in the text as gold) from the warehouse."""
    warehouse_path = get_settings().warehouse_path
    try:
        count = export_silver(warehouse_path, out, split.value, limit)
    except (OSError, ValueError, duckdb.Error) as exc:
        fail(str(exc))
    console.print(f"wrote {count} documents ({split.value}) to {out}")
