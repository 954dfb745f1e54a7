"""The S2 Graph / Datasets API client against a loopback server answering with recorded real responses."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from support.s2_loopback import LoopbackServer, load_cassette

from kpe.records import SourceRecord
from kpe.sources.s2_api import S2APIError, S2Client, S2NotFoundError
from kpe.sources.semantic_scholar import iter_graph_papers, plan_diff

SECRET = "s2-key-DO-NOT-LEAK-77ab01"


@pytest.fixture()
def recorded(shared_data: Path) -> Path:
    return shared_data / "semantic_scholar" / "graph_api_responses"


@pytest.fixture()
def server(recorded: Path):
    with LoopbackServer() as srv:
        srv.add_recorded_api(recorded)
        yield srv


@pytest.fixture()
def client(server):
    with S2Client(server.base_url, SECRET, retries=2, backoff_s=0.001, timeout_s=10.0) as s2:
        yield s2


def _cassette_body(path: Path, index: int = 0) -> dict | list:
    response = load_cassette(path.resolve())["interactions"][index]["response"]
    body = response["body"]["string"] if "body" in response else response["content"]
    return json.loads(body)


def test_bulk_search_follows_token_across_recorded_pages(client, server, recorded):
    first = _cassette_body(recorded / "test_search_paper_bulk_retrieval.yaml")
    second = _cassette_body(recorded / "test_search_paper_bulk_retrieval_next_page.yaml", 1)
    papers = list(client.search_bulk("kubernetes", "title", max_pages=2))
    assert papers == first["data"] + second["data"]
    assert len({p["paperId"] for p in papers}) == len(first["data"]) + len(second["data"])
    search = [r for r in server.requests if r.path == "/graph/v1/paper/search/bulk"]
    assert len(search) == 2
    assert "token" not in search[0].query and search[1].query["token"] == first["token"]
    assert all(r.headers["x-api-key"] == SECRET for r in search)
    # Graph API pages are valid reader input too: one record per paper.
    records = [r for r in iter_graph_papers(first) if isinstance(r, SourceRecord)]
    assert len(records) == len(first["data"])


def test_bulk_search_keeps_following_until_the_token_runs_out(client, server, recorded):
    second = _cassette_body(recorded / "test_search_paper_bulk_retrieval_next_page.yaml", 1)
    seen = []
    # The recording stops after page two, whose token still points further: the third request is made
    # with that token and the loopback server has no answer for it.
    with pytest.raises(S2NotFoundError):
        for paper in client.search_bulk("kubernetes", "title"):
            seen.append(paper)
    assert len(seen) == 2000
    assert server.requests[-1].query["token"] == second["token"]


def test_datasets_api_releases_release_dataset_diffs(client, recorded, caplog):
    releases = client.releases()
    assert releases == _cassette_body(recorded / "test_get_available_releases.yaml")
    assert releases == sorted(releases) and "2025-08-19" in releases
    release = client.release("2025-08-19")
    assert release["release_id"] == "2025-08-19" and {d["name"] for d in release["datasets"]} >= {"papers", "abstracts"}
    dataset = client.dataset("2025-08-19", "papers")
    assert dataset["name"] == "papers" and dataset["files"]
    assert all(url.startswith("https://") for url in dataset["files"])
    diffs = client.diffs("2024-10-08", "2025-08-19", "papers")
    steps = plan_diff(diffs)
    first = diffs["diffs"][0]
    assert [s.url for s in steps[: len(first["update_files"]) + len(first["delete_files"])]] == (
        first["update_files"] + first["delete_files"]
    )
    assert len(steps) == sum(len(d["update_files"]) + len(d["delete_files"]) for d in diffs["diffs"])
    assert len({s.filename for s in steps}) == len(steps)  # update and delete files share S3 base names
    if steps[-1].to_release != diffs["end_release"]:  # the recording holds only the first weekly diff
        assert "not at end_release" in caplog.text


def test_paper_and_its_citations(client, recorded):
    expected = json.loads((recorded / "Paper.json").read_text())
    paper = client.paper(expected["paperId"], "title,abstract,citations,references")
    assert paper == expected
    records = list(iter_graph_papers(paper))
    assert records[0].source_id == str(expected["corpusId"])


def test_not_found_is_s2_not_found_error_without_retries(client, server):
    with pytest.raises(S2NotFoundError, match="Paper with id 0 not found") as info:
        client.paper("0", "t,i,t,l,e")
    assert info.value.status == 404
    assert server.hits("/graph/v1/paper/0") == 1


def test_429_and_5xx_are_retried(client, server):
    releases_route = server.route_for("/datasets/v1/release/")
    releases_route.fail_first, releases_route.fail_status = 2, 429
    assert client.releases()
    assert releases_route.hits == 3
    release_route = server.route_for("/datasets/v1/release/2025-08-19")
    release_route.fail_first, release_route.fail_status = 1, 502
    assert client.release("2025-08-19")["release_id"] == "2025-08-19"
    assert release_route.hits == 2


def test_api_key_sent_as_header_and_absent_from_errors_logs_repr(client, server, caplog):
    caplog.set_level(logging.DEBUG)
    route = server.route_for("/datasets/v1/release/")
    route.fail_first, route.fail_status = 100, 500
    with pytest.raises(S2APIError) as exhausted:
        client.releases()
    assert not isinstance(exhausted.value, S2NotFoundError) and exhausted.value.status == 500
    with pytest.raises(S2NotFoundError) as missing:
        client.dataset("1999-01-01", "papers")
    assert route.hits == 3
    assert server.requests and all(r.headers.get("x-api-key") == SECRET for r in server.requests)
    for exc in (exhausted.value, missing.value):
        assert SECRET not in str(exc) and SECRET not in repr(exc)
    assert SECRET not in repr(client) and "<set>" in repr(client)
    assert caplog.records and SECRET not in caplog.text


def test_no_key_sends_no_header(server):
    with S2Client(server.base_url, None, retries=0, backoff_s=0.001, timeout_s=10.0) as s2:
        s2.release("2025-08-19")
    assert "x-api-key" not in server.requests[-1].headers
