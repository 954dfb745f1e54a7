"""MeSH classification benchmark: train the ``classify`` model and compare it with TF-IDF + logistic regression.

    # one lake with both MEDLINE full files (1976-79 baseline + 2021 update), as `kpe ingest` writes it
    KPE_LAKE_DIR=/tmp/classify_work/lake KPE_WAREHOUSE_PATH=/tmp/classify_work/warehouse.duckdb \
        kpe ingest --pubmed ../shared/data/pubmed/full_files/pubmed20n0014.xml.gz \
                   --pubmed ../shared/data/pubmed/full_files/pubmed21n1298.xml.gz

    # train (any TrainConfig option: --max-steps, --max-length, ...) then the table; or --model DIR: table only
    python benchmarks/classify.py --lake /tmp/classify_work/lake --output-dir runs/bench/classify --max-steps 300

Documents published from ``--holdout-from-year`` (default 1980) on are never trained on: with these two files
that is every 2021 document that carries MeSH (the ``recent`` rows), the rest split by ``doc_id`` into train /
validation / test. Both models use the same labels (descriptors of at least ``--min-docs`` training documents)
and tune their thresholds on the same validation split. Timings on a shared machine are noisy: say so.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from flows.environment import apply_defaults  # noqa: E402 - after the path insert

apply_defaults()

from kpe.evaluate.labels import DEFAULT_BASELINE_ALPHA  # noqa: E402

TRAIN_DEFAULTS = {"max_length": 256, "stride": 64, "batch_size": 16, "eval_batch_size": 64, "learning_rate": 1e-4,
                  "head_learning_rate": 3e-3, "warmup_ratio": 0.05, "max_val_docs": 600, "num_threads": 2,
                  "log_with": "none", "keep_checkpoints": 1}


def train_model(args: argparse.Namespace, extra: dict[str, Any]) -> dict[str, Any]:
    """Train one classify model with ``kpe.train``; its directory, time, steps, samples/s and validation."""
    from kpe.train import TrainConfig, train

    options = {**TRAIN_DEFAULTS, **extra}
    config = TrainConfig(kind="classify", lake_dir=args.lake, output_dir=args.output_dir, base=args.base,
                         min_label_docs=args.min_docs, holdout_from_year=args.holdout_from_year, **options)
    started = time.perf_counter()
    result = train(config)
    return {"model_dir": str(result.model_dir), "seconds": round(time.perf_counter() - started, 1),
            "steps": result.steps, "samples_per_second": round(result.metrics["train_samples_per_second"], 2),
            "validation": {k: v for k, v in result.metrics.items() if k != "train_samples_per_second"},
            "settings": options}


def print_table(report: dict[str, Any]) -> None:
    """The comparison as a Markdown table (both threshold modes, both held-out sets)."""
    from kpe.evaluate.labels import METRIC_COLUMNS

    print("| model | thresholds | set | docs | " + " | ".join(METRIC_COLUMNS) + " |")
    print("|---|---|---|---|" + "---|" * len(METRIC_COLUMNS))
    for row in report["results"]:
        print(f"| {row['model']} | {row['thresholds']} | {row['split']} | {row['docs']} | "
              + " | ".join(f"{row[c]:.3f}" for c in METRIC_COLUMNS) + " |")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, required=True, help="Parquet lake with MEDLINE documents")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/bench/classify"))
    parser.add_argument("--model", type=Path, help="An already trained classify model dir (skip training)")
    parser.add_argument("--base", help="Encoder to start from (default: packaged MiniLM)")
    parser.add_argument("--min-docs", type=int, default=20, help="Label = descriptor of this many training docs")
    parser.add_argument("--holdout-from-year", type=int, default=1980)
    parser.add_argument("--baseline-alpha", type=float, default=DEFAULT_BASELINE_ALPHA,
                        help="L2 strength of the baseline's logistic regressions")
    parser.add_argument("--json", type=Path, help="Also write the whole report as JSON here")
    args, rest = parser.parse_known_args(argv)
    from kpe.train.loop import _parser

    extra = vars(_parser().parse_args(rest))  # any other TrainConfig option, parsed as `python -m kpe.train` does

    from kpe.evaluate.labels import compare_label_models
    from kpe.mesh_data import build_mesh_data

    training = train_model(args, extra) if args.model is None else None
    model_dir = Path(training["model_dir"]) if training else args.model
    data = build_mesh_data(args.lake, args.min_docs, holdout_from_year=args.holdout_from_year)
    started = time.perf_counter()
    report = compare_label_models(data, model_dir, baseline_alpha=args.baseline_alpha)
    report["evaluation_seconds"] = round(time.perf_counter() - started, 1)
    report["training"] = training
    print(f"labels: {report['labels']} MeSH descriptors in >= {args.min_docs} training documents; splits "
          + ", ".join(f"{k} {v['docs']}" for k, v in data.summary["splits"].items()))
    if training:
        print(f"classifier: {training['steps']} steps in {training['seconds']:.0f} s "
              f"({training['samples_per_second']:.2f} samples/s), validation {training['validation']}")
    print(f"baseline (tfidf-logreg): fit in {report.get('baseline_train_seconds', 0):.0f} s on "
          f"{data.summary['splits']['train']['docs']} documents, {report.get('baseline_features', 0)} features")
    print_table(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return report


if __name__ == "__main__":
    main()
