"""Test support: the environment of a child process (the CLI, a flow script) with its own warehouse, lake,
cache, models and Prefect home (its database already migrated) under one folder."""

from __future__ import annotations

import os
from pathlib import Path

from support.prefect_home import seeded_home


def isolated_env(root: Path, shared_data: Path | None = None, **extra: str) -> dict[str, str]:
    """This process's environment with every kpe path under ``root`` (``w.duckdb``, ``lake``, ``cache``,
    ``models``, ``prefect``: seeded with a migrated database), the shared data folder when given, unbuffered
    output, 200 columns; ``extra`` overrides any of it."""
    env = dict(os.environ, KPE_WAREHOUSE_PATH=str(root / "w.duckdb"), KPE_LAKE_DIR=str(root / "lake"),
               KPE_CACHE_DIR=str(root / "cache"), KPE_MODELS_DIR=str(root / "models"),
               PREFECT_HOME=str(seeded_home(root / "prefect")), PYTHONUNBUFFERED="1", COLUMNS="200")
    if shared_data is not None:
        env["KPE_SHARED_DATA_DIR"] = str(shared_data)
    return {**env, **extra}
