"""End to end: a real Prefect server, `prefect deploy --all` of prefect.yaml, a process worker, a nightly run
triggered through the API, the keyphrases in DuckDB, and a headless Chromium look at the flow run page."""

from __future__ import annotations

import importlib
import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml
from support.prefect_server import VENV_BIN, prefect_env, running

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def run(cmd: list[str], env: dict[str, str], timeout: int = 300) -> str:
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def ensure_chromium() -> str:
    """Debian's chromium, installed on first use (root on the project's machines)."""
    found = shutil.which("chromium")
    if not found:
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=False, capture_output=True,
                       env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                       timeout=900)
        found = shutil.which("chromium")
        if not found:
            subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True, timeout=600)
            subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=True, capture_output=True,
                           env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                           timeout=900)
            found = shutil.which("chromium")
    assert found, "chromium could not be installed"
    return found


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def test_prefect_yaml_declares_the_deployments() -> None:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    nightly = deployments["nightly"]
    assert nightly["entrypoint"] == "flows/nightly.py:nightly"
    assert nightly["schedules"][0]["cron"] == "0 2 * * *" and nightly["schedules"][0]["timezone"]
    assert nightly["concurrency_limit"]["limit"] == 1
    assert deployments["ingest-backfill"]["schedules"] == []
    assert deployments["train"]["schedules"][0]["active"] is False
    assert {d["work_pool"]["name"] for d in spec["deployments"]} == {"process"}
    for deployment in spec["deployments"]:  # every parameter set is one the flow takes (a rename breaks here)
        module, _, name = deployment["entrypoint"].partition(":")
        flow = getattr(importlib.import_module(module.removesuffix(".py").replace("/", ".")), name)
        taken = set(inspect.signature(flow.fn).parameters)
        assert set(deployment.get("parameters") or {}) <= taken, (deployment["name"], taken)


def test_nightly_deployment_runs_on_a_worker_and_the_ui_shows_it(shared_data: Path, tmp_path: Path,
                                                                  prefect_api: str) -> None:
    home = tmp_path / "prefect-home"
    sample = shared_data / "pubmed" / "medline_samples" / "updatefiles"
    kpe_env = {"KPE_WAREHOUSE_PATH": str(tmp_path / "w.duckdb"), "KPE_LAKE_DIR": str(tmp_path / "lake"),
               "KPE_CACHE_DIR": str(tmp_path / "cache"), "KPE_MODELS_DIR": str(tmp_path / "models"),
               "KPE_SHARED_DATA_DIR": str(shared_data)}
    env = prefect_env(home, prefect_api, **kpe_env)  # the session's server (tests/conftest.py)
    prefect = str(VENV_BIN / "prefect")
    run([prefect, "work-pool", "create", "process", "--type", "process"], env)
    deployed = run([prefect, "--no-prompt", "deploy", "--all"], env)
    assert "nightly" in deployed

    with running([prefect, "worker", "start", "--pool", "process", "--limit", "1"], env, ROOT,
                 tmp_path / "worker.log"):
        script = (
            "import json, sys\n"
            "from prefect.deployments import run_deployment\n"
            "r = run_deployment('nightly/nightly', parameters={'pubmed': [sys.argv[1]], 'limit': 12, "
            "'batch_size': 6}, timeout=600)\n"
            "print(json.dumps({'id': str(r.id), 'name': r.name, 'state': r.state.type.value}))\n"
        )
        out = run([sys.executable, "-c", script, str(sample)], env, timeout=660)
    result = yaml.safe_load(out.strip().splitlines()[-1])
    assert result["state"] == "COMPLETED", (tmp_path / "worker.log").read_text()[-4000:]

    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    docs, phrases = con.execute("SELECT count(DISTINCT doc_id), count(*) FROM keyphrases").fetchone()
    run_row = con.execute("SELECT status, n_docs FROM extraction_runs WHERE run_id = ?", [result["id"]]).fetchone()
    con.close()
    assert docs == 12 and phrases >= 12
    assert run_row == ("completed", 12)

    chromium = ensure_chromium()
    url = f"{prefect_api.removesuffix('/api')}/runs/flow-run/{result['id']}"
    user_dir = tmp_path / "chromium-profile"
    dom = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={user_dir}",
                          "--virtual-time-budget=20000", "--dump-dom", url],
                         capture_output=True, text=True, timeout=180).stdout
    assert result["name"] in dom, "the flow run page did not render the run's name"
    shot = tmp_path / "flow-run.png"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={user_dir}", "--virtual-time-budget=20000",
                    "--window-size=1400,900", f"--screenshot={shot}", url],
                   capture_output=True, timeout=180, check=False)
    assert shot.exists() and shot.stat().st_size > 20_000
    artifacts_dir = ROOT / "data" / "screenshots"
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, artifacts_dir / "flow-run.png")
