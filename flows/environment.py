"""Environment every process of the project starts with: no telemetry, offline model hub."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # Prefect without a server starts a temporary API in a subprocess; on a busy 2-core machine it can need
    # more than the default 20 s to answer.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}


def apply_defaults() -> None:
    """Set the project's environment defaults (explicit user settings win)."""
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    # Analytics off and no tracking are not negotiable for this project.
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["DO_NOT_TRACK"] = "1"
    # Prefect creates PREFECT_HOME without its parents; a missing parent leaves the temporary API server unable
    # to open its database, which shows only as a start-up timeout minutes later.
    home = os.environ.get("PREFECT_HOME")
    if home:
        Path(home).expanduser().mkdir(parents=True, exist_ok=True)
