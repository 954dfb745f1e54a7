"""Downloads against a loopback server serving a real MEDLINE update file: retries, md5, resume, reuse, secrets."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
from support.s2_loopback import LoopbackServer

from kpe.sources.http import ChecksumError, HTTPRequestError, download, parse_md5_file, redact_url, resolve_input

FAST = {"retries": 3, "backoff_s": 0.001, "timeout_s": 10.0, "progress": False}
SECRET = "s2-key-DO-NOT-LEAK-4f1c9a"
URL_PATH = "/pubmed/updatefiles/pubmed25n1275.xml.gz"


@pytest.fixture()
def medline_file(shared_data: Path) -> Path:
    return shared_data / "pubmed" / "medline_samples" / "updatefiles" / "pubmed25n1275.xml.gz"


@pytest.fixture()
def server():
    with LoopbackServer() as srv:
        yield srv


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_retries_500_twice_then_downloads_and_verifies_md5(server, medline_file, tmp_path, caplog):
    route = server.add_file(URL_PATH, medline_file, fail_first=2)
    caplog.set_level(logging.INFO, logger="kpe.sources.http")
    path = download(server.url(URL_PATH), tmp_path, **FAST)
    assert path == tmp_path / medline_file.name
    assert path.read_bytes() == medline_file.read_bytes()
    assert route.hits == 3
    assert server.hits(URL_PATH + ".md5") == 1
    recorded, name = parse_md5_file((tmp_path / f"{medline_file.name}.md5").read_text())
    assert (recorded, name) == (hashlib.md5(medline_file.read_bytes()).hexdigest(), medline_file.name)
    assert sum("HTTP 500" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING) == 2
    assert not (tmp_path / f"{medline_file.name}.part").exists()


def test_wrong_md5_raises_and_leaves_nothing(server, medline_file, tmp_path):
    server.add_file(URL_PATH, medline_file, md5="bad")
    with pytest.raises(ChecksumError, match="md5 mismatch"):
        download(server.url(URL_PATH), tmp_path, **FAST)
    assert _files(tmp_path) == []


def test_resume_after_dropped_connection_uses_range(server, medline_file, tmp_path):
    size = medline_file.stat().st_size
    cut = size // 3
    server.add_file(URL_PATH, medline_file, drop_once_after=cut)
    path = download(server.url(URL_PATH), tmp_path, **FAST)
    assert path.read_bytes() == medline_file.read_bytes()
    data_requests = [r for r in server.requests if r.path == URL_PATH]
    assert len(data_requests) == 2
    assert "range" not in data_requests[0].headers
    assert data_requests[1].headers["range"] == f"bytes={cut}-"


def test_existing_part_is_resumed_and_ignored_range_restarts(server, medline_file, tmp_path):
    data = medline_file.read_bytes()
    server.add_file(URL_PATH, medline_file)
    (tmp_path / f"{medline_file.name}.part").write_bytes(data[:1000])
    assert download(server.url(URL_PATH), tmp_path, **FAST).read_bytes() == data
    assert server.requests[-1].headers["range"] == "bytes=1000-"

    # A server that ignores Range answers 200 with the whole file: the .part must restart from zero.
    other = "/pubmed/updatefiles/norange/pubmed25n1275.xml.gz"
    server.add_file(other, medline_file, ranges=False)
    dest = tmp_path / "norange"
    dest.mkdir()
    (dest / f"{medline_file.name}.part").write_bytes(b"garbage" * 100)
    assert download(server.url(other), dest, **FAST).read_bytes() == data


def test_404_is_a_clear_error_without_retries(server, tmp_path):
    missing = "/pubmed/updatefiles/pubmed99n9999.xml.gz"
    with pytest.raises(HTTPRequestError, match="404") as info:
        download(server.url(missing), tmp_path, **FAST)
    assert info.value.status == 404
    assert server.hits(missing) == 1
    assert _files(tmp_path) == []


def test_retries_exhausted_is_a_clear_error(server, medline_file, tmp_path):
    route = server.add_file(URL_PATH, medline_file, fail_first=100, fail_status=503)
    with pytest.raises(HTTPRequestError, match="gave up after 4 attempt") as info:
        download(server.url(URL_PATH), tmp_path, **FAST)
    assert info.value.status == 503 and route.hits == 4
    assert _files(tmp_path) == []


def test_429_with_retry_after_is_retried(server, medline_file, tmp_path):
    route = server.add_file(URL_PATH, medline_file, fail_first=1, fail_status=429)
    assert download(server.url(URL_PATH), tmp_path, **FAST).read_bytes() == medline_file.read_bytes()
    assert route.hits == 2


def test_verified_download_is_reused_and_a_corrupt_one_replaced(server, medline_file, tmp_path):
    route = server.add_file(URL_PATH, medline_file)
    first = download(server.url(URL_PATH), tmp_path, **FAST)
    hits = (route.hits, server.hits(URL_PATH + ".md5"))
    second = download(server.url(URL_PATH), tmp_path, **FAST)
    assert second == first
    assert (route.hits, server.hits(URL_PATH + ".md5")) == hits

    first.write_bytes(b"corrupted on disk")
    third = download(server.url(URL_PATH), tmp_path, **FAST)
    assert third.read_bytes() == medline_file.read_bytes()
    assert route.hits == hits[0] + 1


def test_api_key_is_sent_but_never_logged_or_raised(server, medline_file, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    route = server.add_file(URL_PATH, medline_file, fail_first=100)
    headers = {"x-api-key": SECRET}
    with pytest.raises(HTTPRequestError) as failed:
        download(server.url(URL_PATH), tmp_path, headers=headers, **FAST)
    with pytest.raises(HTTPRequestError) as missing:
        download(server.url("/nothing/here.gz"), tmp_path, headers=headers, **FAST)
    assert route.hits == 4
    assert all(r.headers.get("x-api-key") == SECRET for r in server.requests)
    for exc in (failed.value, missing.value):
        assert SECRET not in str(exc) and SECRET not in repr(exc)
    assert caplog.records and SECRET not in caplog.text


def test_redact_url_masks_presigned_signatures():
    url = "https://ai2-s2ag.s3.amazonaws.com/x/20241018_1.gz?AWSAccessKeyId=AKIA123&Signature=abc%2Fdef&Expires=1"
    redacted = redact_url(url)
    assert "AKIA123" not in redacted and "abc" not in redacted
    assert redacted.startswith("https://ai2-s2ag.s3.amazonaws.com/x/20241018_1.gz?") and "Expires=1" in redacted


def test_parse_md5_formats():
    digest = "0123456789abcdef0123456789abcdef"
    assert parse_md5_file(f"MD5(pubmed21n1298.xml.gz)= {digest}\n") == (digest, "pubmed21n1298.xml.gz")
    assert parse_md5_file(f"{digest.upper()}  pubmed21n1298.xml.gz\n") == (digest, "pubmed21n1298.xml.gz")
    with pytest.raises(ChecksumError):
        parse_md5_file("<html>not found</html>")


def test_resolve_input(server, medline_file, tmp_path):
    assert resolve_input(str(medline_file), tmp_path) == medline_file
    assert resolve_input(medline_file.as_uri(), tmp_path) == medline_file
    with pytest.raises(FileNotFoundError, match="input not found"):
        resolve_input(str(tmp_path / "nope.xml.gz"), tmp_path)
    with pytest.raises(ValueError, match="unsupported input"):
        resolve_input("ftp://ftp.ncbi.nlm.nih.gov/pubmed/x.xml.gz", tmp_path)
    server.add_file(URL_PATH, medline_file)
    path = resolve_input(server.url(URL_PATH), tmp_path, retries=1, backoff_s=0.001, timeout_s=10.0, progress=False)
    assert path == tmp_path / "downloads" / medline_file.name
    assert path.read_bytes() == medline_file.read_bytes()
