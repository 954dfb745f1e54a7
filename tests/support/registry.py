"""Test support: registry rows without training a model."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb


def register_model(con: duckdb.DuckDBPyConnection, name: str, minute: int, *, kind: str | None = None,
                   method: str | None = None, path: Path | None = None, **fields: Any) -> str:
    """Register a candidate named ``name`` (its version made at 23:``minute`` on a fixed day, so that versions
    sort by ``minute``); its model dir is ``path`` or an empty dir where the registry keeps models. ``kind`` and
    ``method`` default to ``name``; ``fields`` go to ``warehouse.models.register_candidate``. Returns the version."""
    from kpe.registry import model_dir, new_version
    from warehouse.models import register_candidate

    version = new_version(name, now=dt.datetime(2026, 11, 29, 23, minute, tzinfo=dt.UTC))
    if path is None:
        path = model_dir(version)
        path.mkdir(parents=True)
    register_candidate(con, version=version, path=str(path), base_model=fields.pop("base_model", "test"),
                       kind=kind or name, method=method or kind or name, **fields)
    return version
