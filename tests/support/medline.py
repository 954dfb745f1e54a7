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
