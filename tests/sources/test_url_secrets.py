"""Credentials in input URLs reach the server and nothing else: no flow parameter, artifact, log or row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.environment import isolated_env
from support.s2_loopback import LoopbackServer

from kpe.url_secrets import expand_url_secrets, hide_url_secrets

ROOT = Path(__file__).resolve().parents[2]
SECRET = "ncbi-key-DO-NOT-STORE-9b2e71"
URL_PATH = "/pubmed/updatefiles/pubmed25n1275.xml.gz"


def test_hidden_secrets_expand_back_and_only_allowed_names_expand(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"https://user:pa%40ss@example.org/f.xml.gz?api_key={SECRET}&tool=kpe&X-Amz-Signature=abc%2Bdef"
    hidden, plain = hide_url_secrets([url, "../shared/data/pubmed"])
    assert SECRET not in hidden and "pa%40ss" not in hidden and "abc" not in hidden
    assert "tool=kpe" in hidden and plain == "../shared/data/pubmed"
    assert expand_url_secrets(hidden) == url
    assert hide_url_secrets([hidden]) == [hidden]  # references stay references
    monkeypatch.setenv("HOME_SECRET_ELSEWHERE", "x")
    with pytest.raises(ValueError, match=r"only KPE_SECRET_\* variables"):
        expand_url_secrets("https://example.org/f?key=${HOME_SECRET_ELSEWHERE}")
    with pytest.raises(ValueError, match=r"\$\{KPE_SECRET_MISSING\}, which is not set"):
        expand_url_secrets("https://example.org/f?key=${KPE_SECRET_MISSING}")


def test_a_key_in_an_input_url_is_sent_but_stored_nowhere(tmp_path: Path, shared_data: Path) -> None:
    medline = shared_data / "pubmed" / "medline_samples" / "updatefiles" / "pubmed25n1275.xml.gz"
    env = isolated_env(tmp_path)
    with LoopbackServer() as server:
        route = server.add_file(URL_PATH, medline, md5=None, query=f"api_key={SECRET}")  # no key: HTTP 404
        url = server.url(URL_PATH) + f"?api_key={SECRET}"
        result = subprocess.run([sys.executable, "-m", "flows.cli", "ingest", "--pubmed", url], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert route.hits >= 1  # the server saw the key
    import duckdb

    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM documents").fetchone()[0] > 20
        uri = con.execute("SELECT uri FROM ingest_files").fetchone()[0]
    finally:
        con.close()
    assert uri.endswith("?api_key=%2A%2A%2A") or uri.endswith("?api_key=***"), uri
    # not in the flow run's parameters, task inputs, logs or artifacts (Prefect's database), the warehouse, the
    # lake or the output
    assert SECRET not in result.stdout + result.stderr
    stored = [p for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert stored == []
    # the reference that replaced it is what Prefect stored (so the search above looked in the right place)
    assert any(b"${KPE_SECRET_URL_" in p.read_bytes() for p in (tmp_path / "prefect").rglob("*") if p.is_file())
