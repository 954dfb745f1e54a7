"""Shared fixtures: the real sample data folder, an isolated warehouse and lake per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.environment import apply_defaults

apply_defaults()  # the project's one list of environment defaults (no telemetry, offline model hub)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    return Path(os.environ.get("KPE_SHARED_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real sample data; in CI (``CI=true``) a missing folder is an error, elsewhere a skip."""
    path = _shared_data_dir()
    if not (path / "README.md").exists():
        message = f"shared data folder not found at {path} (set KPE_SHARED_DATA_DIR)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture()
def kpe_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path) -> Path:
    """Point every setting at a fresh temporary lake, warehouse and cache; returns the temp root."""
    monkeypatch.setenv("KPE_LAKE_DIR", str(tmp_path / "lake"))
    monkeypatch.setenv("KPE_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("KPE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KPE_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("KPE_SHARED_DATA_DIR", str(shared_data))
    from kpe.settings import get_settings

    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API URL of one Prefect server (``prefect server start`` on 127.0.0.1, its own home and database) for the
    session: the flows tests run in this process (``prefect_harness``) and in the child processes they point at it.
    Every Prefect server costs 10-20 s of a 2-core machine to start; the commands' own default (a temporary server
    per command, no URL set) stays tested by the first nightly test, the ingest failure test and the secrets test."""
    from support.prefect_server import prefect_server

    with prefect_server(tmp_path_factory.mktemp("prefect-server-home"), PROJECT_ROOT) as api_url:
        yield api_url


@pytest.fixture(scope="session")
def prefect_harness(prefect_api: str) -> Iterator[None]:
    """Flows run in this process report to the session's Prefect server (``prefect_api``)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_api}):
        yield


@pytest.fixture(scope="session")
def tokenizer():  # noqa: ANN201 - a transformers tokenizer
    """The packaged encoder's tokenizer (all-MiniLM-L6-v2's WordPiece vocabulary)."""
    from transformers import AutoTokenizer

    from kpe.encoders import resolve_encoder

    return AutoTokenizer.from_pretrained(resolve_encoder(None))


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with the MiniLM vocabulary (real tokenizer, random weights): fast training steps."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from kpe.encoders import resolve_encoder

    path = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_encoder(None))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
