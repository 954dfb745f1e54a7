"""Test support: Prefect homes whose SQLite database is already migrated.

Every child process of a test gets its own ``PREFECT_HOME``; a temporary (or real) Prefect server there first
creates its database and runs Prefect's migrations, about 9 s of a 2-core machine each time. One database is
migrated per test session (``prefect server database upgrade``) and copied into each new home instead.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

DATABASE = "prefect.db"  # Prefect's default: sqlite+aiosqlite:///${PREFECT_HOME}/prefect.db


@lru_cache(maxsize=1)
def migrated_database() -> Path:
    """A Prefect database with every migration applied, made once per session in a temporary home (removed at
    exit)."""
    home = Path(tempfile.mkdtemp(prefix="kpe-test-prefect-home-"))
    atexit.register(shutil.rmtree, home, True)
    env = dict(os.environ, PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
    result = subprocess.run([str(Path(sys.executable).parent / "prefect"), "server", "database", "upgrade", "-y"],
                            env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0 or not (home / DATABASE).is_file():
        raise RuntimeError(f"could not migrate a Prefect database: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    return home / DATABASE


def seeded_home(home: Path) -> Path:
    """``home``, created if needed, holding a copy of the migrated database unless it has one already."""
    home.mkdir(parents=True, exist_ok=True)
    if not (home / DATABASE).exists():
        shutil.copyfile(migrated_database(), home / DATABASE)
    return home
