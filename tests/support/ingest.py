"""Test support: ingest specs straight through the library (no Prefect), one warehouse connection."""

from __future__ import annotations

from pathlib import Path

from kpe.ingest import FileReport, ingest_unit
from kpe.inputs import InputSpec, failed_report, unit_from_spec
from warehouse.ingest_store import DuckDBIngestStore


def ingest_specs(con, specs: list[InputSpec], lake: Path, batch_size: int = 50,  # noqa: ANN001
                 min_words: int = 5) -> list[FileReport]:
    """What the ingest flow does for each spec: a spec that could not be planned is a failed report."""
    store = DuckDBIngestStore(con)
    return [failed_report(s) if s.error else
            ingest_unit(unit_from_spec(s), store, lake_dir=lake, batch_size=batch_size, min_abstract_words=min_words,
                        log=lambda _m: None) for s in specs]
