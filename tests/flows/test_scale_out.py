"""Scale-out: the nightly extraction mapped over a local Dask cluster gives the same rows as the default runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from support.prefect_server import VENV_BIN, free_port, prefect_env, running

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
ROWS = "SELECT doc_id, rank, keyphrase, normalized, score FROM keyphrases ORDER BY doc_id, rank"


def nightly(env: dict[str, str], inputs: list[str]) -> str:
    args = [sys.executable, "-m", "flows.cli", "nightly", *[a for f in inputs for a in ("--pubmed", f)],
            "--batch-size", "8"]
    out = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def test_dask_task_runner_gives_the_same_rows_as_the_default_runner(shared_data: Path, tmp_path: Path,
                                                                    prefect_api: str) -> None:
    from distributed import Client

    inputs = [str(p) for p in sorted((shared_data / "pubmed" / "medline_samples" / "baseline").glob("*.xml.gz"))[:1]]
    home = tmp_path / "prefect-home"

    def env_for(name: str, **extra: str) -> dict[str, str]:
        root = tmp_path / name
        return prefect_env(home, prefect_api, KPE_WAREHOUSE_PATH=str(root / "w.duckdb"),
                           KPE_LAKE_DIR=str(root / "lake"), KPE_CACHE_DIR=str(root / "cache"),
                           KPE_MODELS_DIR=str(root / "models"), **extra)

    nightly(env_for("threads"), inputs)

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    cluster_env = env_for("dask")
    with running([str(VENV_BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                  "--no-dashboard"], cluster_env, ROOT, tmp_path / "scheduler.log"):
        workers = [running([str(VENV_BIN / "dask"), "worker", address, "--nthreads", "1", "--nworkers", "1",
                            "--no-dashboard", "--host", "127.0.0.1"], cluster_env, ROOT,
                           tmp_path / f"worker{i}.log") for i in range(2)]
        with workers[0], workers[1]:
            with Client(address, timeout=120) as client:  # retries until the scheduler answers
                client.wait_for_workers(2, timeout=120)
            out = nightly(env_for("dask", KPE_TASK_RUNNER="dask", KPE_DASK_ADDRESS=address), inputs)
        worker_logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]

    # the batches ran on the Dask workers (both of them), not in the flow's process
    batches_run = [log.count("Task run 'extract-batch-") for log in worker_logs]
    assert all(n > 0 for n in batches_run), batches_run
    assert "extracted" in out
    threads = duckdb.connect(str(tmp_path / "threads" / "w.duckdb"), read_only=True).execute(ROWS).fetchall()
    dask = duckdb.connect(str(tmp_path / "dask" / "w.duckdb"), read_only=True).execute(ROWS).fetchall()
    # The same phrases at the same ranks, scores within 1e-4, at the machine's own precision (auto: bf16 where the
    # CPU has it; KPE_NATIVE_BF16 in this environment reaches the flow and the Dask workers): a document's vectors
    # do not depend on its batch or the process's thread count (measured: bitwise equal, bf16 and fp32).
    assert threads and [r[:4] for r in dask] == [r[:4] for r in threads]
    assert all(abs(a[4] - b[4]) < 1e-4 for a, b in zip(dask, threads, strict=True))
