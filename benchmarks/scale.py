"""The nightly at PubMed scale: peak RSS and seconds of selection and writes with a backlog of a million documents,
and the README's example queries over ten million keyphrase rows.

    python benchmarks/scale.py [--docs 1000000] [--keyphrases 10000000] [--limit 1000] [--work DIR] [--json]

1. A warehouse of the real MEDLINE update file ``pubmed21n1298.xml.gz`` (20,778 documents) is grown to ``--docs``
   documents by copying its abstracts under new ids (``warehouse.synthetic``).
2. As after a model promotion, every document is marked as extracted by an older model except the last 1,000,
   which are new: the backlog is the whole warehouse. ``kpe nightly --fast --limit N`` then runs in its own
   process, once on the 20,778-document warehouse and once on the large one; its peak RSS (process tree, sampled
   every 0.2 s) and stage seconds are compared. Peak RSS should not depend on the backlog.
3. On the large warehouse: the seconds of one selection step (the phase counts, a page of 10,000 pending ids, the
   text of one batch) and of one batch commit (256 documents' keyphrases, state and run progress, connection
   open and close included), as the nightly does them.
4. ``keyphrases`` is grown to ``--keyphrases`` rows (real phrases given to the copies) and each README example
   query runs in the ``kpe sql`` sandbox: first (cold) and best of three (warm) seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NEW_DOCS = 1_000


def build_base(work: Path, medline: Path) -> Path:
    """The real file ingested once (reused from ``work`` when it is there)."""
    from kpe.ingest import ingest_unit
    from kpe.inputs import pubmed_specs, unit_from_spec
    from warehouse.db import connect
    from warehouse.ingest_store import DuckDBIngestStore

    base = work / "base.duckdb"
    if base.exists():
        return base
    with connect(base) as con:
        store = DuckDBIngestStore(con)
        for spec in pubmed_specs([str(medline)], work):
            ingest_unit(unit_from_spec(spec), store, lake_dir=work / "lake", batch_size=5000,
                        min_abstract_words=5, log=lambda _m: None)
    return base


def prepare(base: Path, target: Path, n_docs: int | None) -> dict:
    """Copy ``base`` to ``target``, grow it to ``n_docs`` and mark all but the newest documents as extracted by an
    older model (a promotion's backlog)."""
    from kpe.extract.config import ExtractionConfig
    from warehouse.db import connect
    from warehouse.synthetic import mark_extracted, replicate_documents

    shutil.copy(base, target)
    t = time.perf_counter()
    with connect(target) as con:
        docs = replicate_documents(con, n_docs or 0)
        marked = mark_extracted(con, "older-model@1", ExtractionConfig.fast().config_hash(), keep_pending=NEW_DOCS)
    return {"documents": docs, "stale": marked, "build_s": round(time.perf_counter() - t, 1),
            "file_mb": round(target.stat().st_size / 2**20)}


def run_nightly(db: Path, work: Path, limit: int) -> dict:
    """``kpe nightly --fast --limit N`` in its own process; peak RSS of its process tree and its run row."""
    from warehouse.db import connect
    from warehouse.extraction import latest_run

    env = dict(os.environ, KPE_WAREHOUSE_PATH=str(db), KPE_LAKE_DIR=str(work / "lake"),
               KPE_CACHE_DIR=str(work / "cache"), KPE_MODELS_DIR=str(work / "models"),
               PREFECT_HOME=str(work / "prefect"), COLUMNS="200")
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "nightly", "--fast", "--limit", str(limit)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watched = psutil.Process(proc.pid)
    peak = 0
    started = time.perf_counter()
    while proc.poll() is None:
        try:
            tree = [watched, *watched.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.2)
    out = proc.stdout.read()
    if proc.returncode != 0:
        raise SystemExit(f"kpe nightly failed:\n{out[-4000:]}")
    with connect(db, read_only=True) as con:
        run = latest_run(con)
    return {"peak_rss_mb": round(peak / 2**20), "wall_s": round(time.perf_counter() - started, 1),
            "n_docs": run["n_docs"], "n_backfill": run["n_backfill"], "n_keyphrases": run["n_keyphrases"],
            "stage_seconds": json.loads(run["stage_seconds"]), "precision": run["precision"]}


def time_selection_and_write(db: Path, batch_size: int = 256) -> dict:
    """One selection step and one batch commit, as the nightly does them, at this warehouse's size."""
    from kpe.extract.batches import DocumentResult
    from kpe.extract.config import ExtractionConfig
    from kpe.registry import default_extraction_model
    from warehouse import extraction
    from warehouse.db import connect

    model, config_hash = default_extraction_model().version, ExtractionConfig.fast().config_hash()
    timings = {}
    t = time.perf_counter()
    with connect(db, read_only=True) as con:
        counts = extraction.count_pending_by_phase(con, model, config_hash)
        timings["count_pending_s"] = time.perf_counter() - t
        t = time.perf_counter()
        ids = extraction.pending_ids(con, model, config_hash, phase="stale", limit=10_000)
        timings["page_of_10000_ids_s"] = time.perf_counter() - t
        t = time.perf_counter()
        docs = extraction.fetch_pending(con, ids[:batch_size])
        timings["batch_text_s"] = time.perf_counter() - t
        phrases = extraction.some_keyphrases(con, 10)
    run_id = "scale-benchmark"
    with connect(db) as con:
        extraction.start_run(con, run_id, model, "kpe-fast", config_hash, {}, dt.datetime.now())
    results = [DocumentResult(d.doc_id, d.content_hash, list(phrases)) for d in docs]
    t = time.perf_counter()
    with connect(db) as con:
        extraction.write_results(con, run_id, results, method="kpe-fast", model_version=model,
                                 config_hash=config_hash, now=dt.datetime.now())
    timings["batch_commit_s"] = time.perf_counter() - t
    return {"pending": counts, **{k: round(v, 3) for k, v in timings.items()}}


def time_queries(db: Path, n_keyphrases: int) -> dict:
    """Grow ``keyphrases`` to ``n_keyphrases`` rows, then time each README query in the SQL sandbox."""
    from warehouse.db import connect, connect_sandboxed, run_query
    from warehouse.examples import README_QUERIES
    from warehouse.synthetic import replicate_keyphrases

    t = time.perf_counter()
    with connect(db) as con:
        rows = replicate_keyphrases(con, n_keyphrases)
    build = time.perf_counter() - t
    timings = {}
    for name, query in README_QUERIES.items():
        seconds = []
        for _ in range(4):
            con = connect_sandboxed(db)
            t = time.perf_counter()
            run_query(con, query, timeout_s=600)
            seconds.append(time.perf_counter() - t)
            con.close()
        timings[name] = {"cold_s": round(seconds[0], 3), "warm_s": round(min(seconds[1:]), 3)}
    return {"keyphrase_rows": rows, "build_s": round(build, 1), "queries": timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--keyphrases", type=int, default=10_000_000)
    parser.add_argument("--limit", type=int, default=1_000, help="documents the measured nightly runs extract")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from flows.environment import apply_defaults
    from kpe.sample_data import sample_medline_path
    from kpe.settings import get_settings

    apply_defaults()
    settings = get_settings()
    medline = sample_medline_path(settings.cache_dir, settings.shared_data_dir)
    work = args.work or Path(tempfile.mkdtemp(prefix="kpe-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"cpu_native_bf16": _native_bf16()}
    base = build_base(work, medline)
    for label, n_docs in (("small", None), ("large", args.docs)):
        db = work / f"{label}.duckdb"
        report[label] = {"warehouse": prepare(base, db, n_docs)}
        print(f"{label}: {report[label]['warehouse']}", file=sys.stderr)
        report[label]["nightly"] = run_nightly(db, work, args.limit)
        print(f"{label}: nightly {report[label]['nightly']}", file=sys.stderr)
    report["large"]["selection_and_write"] = time_selection_and_write(work / "large.duckdb")
    print(f"large: {report['large']['selection_and_write']}", file=sys.stderr)
    report["large"]["sql"] = time_queries(work / "large.duckdb", args.keyphrases)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for label in ("small", "large"):
        w, n = report[label]["warehouse"], report[label]["nightly"]
        print(f"{label:5}: {w['documents']:>9,} documents ({w['stale']:,} to re-extract, {w['file_mb']} MB): nightly "
              f"--fast --limit {args.limit}: peak RSS {n['peak_rss_mb']} MB, {n['wall_s']} s, stages "
              f"{n['stage_seconds']}")
    print(f"large: one selection step and one commit: {report['large']['selection_and_write']}")
    sql = report["large"]["sql"]
    print(f"README queries over {sql['keyphrase_rows']:,} keyphrase rows (cold / warm seconds):")
    for name, t in sql["queries"].items():
        print(f"  {t['cold_s']:>7.3f} / {t['warm_s']:>7.3f}  {name}")


def _native_bf16() -> bool:
    from kpe.extract.encoder import cpu_has_native_bf16

    return cpu_has_native_bf16()


if __name__ == "__main__":
    main()
