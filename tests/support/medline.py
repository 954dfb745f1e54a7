"""Test support: a real MEDLINE file cut to its first records (a small file of real data for quick ingests)."""

from __future__ import annotations

import gzip
from pathlib import Path


def medline_slice(source: Path, out: Path, n: int) -> Path:
    """The first ``n`` ``PubmedArticle`` records of a real MEDLINE file, as a MEDLINE file of their own."""
    head, records = b"", []
    with gzip.open(source, "rb") as fh:
        buffer = b""
        while len(records) < n:
            chunk = fh.read(1 << 20)
            if not chunk:
                break
            buffer += chunk
            if not head:
                head = buffer[: buffer.index(b"<PubmedArticle>")]
                buffer = buffer[len(head):]
            while len(records) < n and b"</PubmedArticle>" in buffer:
                end = buffer.index(b"</PubmedArticle>") + len(b"</PubmedArticle>")
                records.append(buffer[:end])
                buffer = buffer[end:]
    if len(records) != n:
        raise ValueError(f"{source} has only {len(records)} records, {n} asked for")
    with gzip.open(out, "wb") as fh:
        fh.write(head + b"".join(records) + b"\n</PubmedArticleSet>\n")
    return out


def ingested_slice(source: Path, root: Path, n: int, batch_size: int):  # noqa: ANN201 - a duckdb connection
    """The first ``n`` records of ``source`` ingested by the project's ingest code into ``root/lake`` and
    ``root/warehouse.duckdb``; returns the open warehouse connection (the caller closes it)."""
    from kpe.inputs import pubmed_specs
    from support.ingest import ingest_specs
    from warehouse.db import connect

    path = medline_slice(source, root / source.name, n)
    con = connect(root / "warehouse.duckdb")
    (report,) = ingest_specs(con, pubmed_specs([str(path)], root), root / "lake", batch_size=batch_size)
    assert report.status == "done", report
    return con


def scan_medline_file(path: Path) -> dict:
    """Stream a MEDLINE file with ``iter_medline`` and count what it yields, with the peak RSS growth (MB) over the
    scan, sampled every 1,000 records. Run it in a fresh process (``in_fresh_process``): a process that has run
    other tests carries their heap, whose churn would be measured too."""
    import psutil

    from kpe.records import Deletion, SourceRecord
    from kpe.sources.pubmed import iter_medline

    counts = {"records": 0, "deletions": 0, "with_abstract": 0, "with_keywords_and_abstract": 0}
    without_abstract: list[str] = []
    process = psutil.Process()
    rss_start = rss_peak = process.memory_info().rss
    for item in iter_medline(path):
        if isinstance(item, SourceRecord):
            counts["records"] += 1
            if counts["records"] % 1000 == 0:
                rss_peak = max(rss_peak, process.memory_info().rss)
            counts["with_abstract"] += item.abstract is not None
            counts["with_keywords_and_abstract"] += bool(item.keywords) and item.abstract is not None
            if item.abstract is None:
                without_abstract.append(item.source_id)
        elif isinstance(item, Deletion):
            counts["deletions"] += 1
        else:
            raise TypeError(f"iter_medline yielded {item!r}")
    return {**counts, "without_abstract": without_abstract, "rss_growth_mb": (rss_peak - rss_start) / 2**20}


def in_fresh_process(function, *args):  # noqa: ANN001, ANN201 - any picklable module-level function and its result
    """``function(*args)`` in a newly spawned Python process (nothing inherited from this one's heap)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()
