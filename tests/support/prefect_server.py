"""Test support: a real Prefect server on 127.0.0.1 in a temporary PREFECT_HOME, stopped afterwards."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from support.prefect_home import seeded_home

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prefect_env(home: Path, api_url: str | None = None, **extra: str) -> dict[str, str]:
    """Environment for every process of a test: own PREFECT_HOME (a migrated database in it), no telemetry, offline
    hub."""
    env = dict(os.environ)
    env.update(PREFECT_HOME=str(seeded_home(home)), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1",
               PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}")
    if api_url:
        env["PREFECT_API_URL"] = api_url
    env.update(extra)
    return env


@contextmanager
def running(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> Iterator[subprocess.Popen]:
    """Start a background process in its own session; on exit stop it and all its children."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            yield proc
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
                if proc.poll() is not None:
                    break
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    continue


@contextmanager
def prefect_server(home: Path, cwd: Path) -> Iterator[str]:
    """A Prefect server on 127.0.0.1 (its own SQLite database under ``home``); yields the API URL."""
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    # the UI asks the API at PREFECT_UI_API_URL, which otherwise points at the default port 4200
    env = prefect_env(home, PREFECT_SERVER_API_HOST="127.0.0.1", PREFECT_SERVER_API_PORT=str(port),
                      PREFECT_UI_API_URL=api_url)
    cmd = [str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with running(cmd, env, cwd, home / "server.log") as proc:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited: {(home / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise TimeoutError("prefect server did not answer within 180 s")
        yield api_url
