"""The `kpe` command line: help on every subcommand, `sql` read-only with its formats, `status`."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.ingest import ingest_specs
from typer.testing import CliRunner

from flows.cli import app
from kpe.inputs import pubmed_specs
from warehouse.db import connect

runner = CliRunner()
COMMANDS = ["ingest", "status", "nightly", "sql", "keyphrases", "evaluate", "export-silver", "train", "models",
            "models list", "models promote", "models rollback", "evaluate-ner", "annotate", "entities"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command: str) -> None:
    result = runner.invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


@pytest.fixture()
def warehouse(kpe_env: Path, shared_data: Path) -> Path:
    path = kpe_env / "warehouse.duckdb"
    con = connect(path)
    files = sorted((shared_data / "pubmed" / "medline_samples" / "baseline").glob("*.xml.gz"))[:2]
    ingest_specs(con, pubmed_specs([str(f) for f in files], kpe_env), kpe_env / "lake")
    con.close()
    return path


def test_sql_is_read_only_and_writes_csv_json_parquet(warehouse: Path, tmp_path: Path) -> None:
    con = connect(warehouse)
    n_docs = con.execute("SELECT count(*) FROM documents").fetchone()[0]
    con.close()

    result = runner.invoke(app, ["sql", "DELETE FROM documents"])
    assert result.exit_code == 1 and "read-only" in result.output
    result = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM documents", "--format", "json"])
    assert result.exit_code == 0 and json.loads(result.output.strip()) == {"n": n_docs}
    result = runner.invoke(app, ["sql", "SELECT doc_id, year FROM documents ORDER BY doc_id LIMIT 3", "-f", "csv"])
    lines = result.output.strip().splitlines()
    assert lines[0] == '"doc_id","year"' and len(lines) == 4
    out = tmp_path / "docs.parquet"
    result = runner.invoke(app, ["sql", "SELECT doc_id, title FROM documents", "-f", "parquet", "--out", str(out)])
    assert result.exit_code == 0 and pq.read_table(out).num_rows == n_docs
    result = runner.invoke(app, ["sql", "SELECT nope FROM documents"])
    assert result.exit_code == 1 and "error" in result.output.lower()

    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0 and "documents" in result.output and "pubmed20n1015" in result.output
    result = runner.invoke(app, ["keyphrases", "pmid:0"])
    assert result.exit_code == 1 and "no current keyphrases" in result.output


def test_nightly_extraction_settings_from_set_and_fast() -> None:
    from flows.cli import extraction_settings

    assert extraction_settings([]) is None
    config = extraction_settings(["diversity=0.5", "candidate_mode=keybert", "ngram_range=[1,2]"], top_n=5)
    assert (config["diversity"], config["candidate_mode"], config["ngram_range"], config["top_n"]) == (
        0.5,
        "keybert",
        [1, 2],
        5,
    )
    fast = extraction_settings(["device=cpu"], fast=True)
    from kpe.extract.encoder import cpu_has_amx

    assert (fast["candidate_embedding"], fast["precision"]) == ("contextual", "bf16" if cpu_has_amx() else "int8")


@pytest.mark.parametrize("pair", ["no_such_setting=1", "diversity=2", "top_n"])
def test_nightly_rejects_a_bad_setting_before_running(pair: str, kpe_env: Path) -> None:
    result = runner.invoke(app, ["nightly", "--set", pair])
    assert result.exit_code == 2, result.output
    assert "--set" in result.output
    assert not (kpe_env / "warehouse.duckdb").exists()  # nothing ran


# --- the SQL sandbox: every way out of the warehouse is refused with one clear line ------------------------------

ESCAPES = {
    "copy-to": ("COPY (SELECT 42 AS x) TO '{out}/x.csv'", "COPY statement is refused; export a result with"),
    "read-text": ("SELECT * FROM read_text('/etc/hostname')", "cannot read or write files"),
    "read-csv": ("SELECT * FROM read_csv('/etc/passwd')", "cannot read or write files"),
    "read-parquet": ("SELECT * FROM read_parquet('{out}/docs.parquet')", "cannot read or write files"),
    "glob": ("SELECT * FROM glob('/etc/*')", "cannot read or write files"),
    "attach": ("ATTACH '{out}/other.duckdb' AS other", "ATTACH statement is refused"),
    "install": ("INSTALL httpfs", "LOAD statement is refused"),
    "load": ("LOAD httpfs", "LOAD statement is refused"),
    "set": ("SET enable_external_access = true", "SET statement is refused"),
    "pragma": ("PRAGMA enable_profiling", "PRAGMA statement is refused"),
    "export": ("EXPORT DATABASE '{out}/export'", "EXPORT statement is refused"),
    "import": ("IMPORT DATABASE '{out}/export'", "PRAGMA statement is refused"),
    "two-statements": ("SELECT 1; DELETE FROM documents", "one statement at a time"),
    "delete": ("DELETE FROM documents", "DELETE statement is refused"),
}


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_sql_sandbox_refuses_every_escape_with_one_line(name: str, warehouse: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    pq.write_table(__import__("pyarrow").table({"x": [1]}), out / "docs.parquet")
    before = sorted(p.name for p in out.iterdir())
    query, expected = ESCAPES[name]
    result = runner.invoke(app, ["sql", query.format(out=out)])
    assert result.exit_code == 1, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 3  # one message (rich may fold it)
    assert sorted(p.name for p in out.iterdir()) == before  # nothing written, no folder created


@pytest.mark.parametrize("query", [
    "SELECT count(*) FROM read_text('/etc/hostname')", "SELECT * FROM read_csv('/etc/passwd')",
    "COPY (SELECT 1) TO '/tmp/kpe-escape.csv'", "ATTACH '/tmp/kpe-escape.duckdb' AS o", "INSTALL httpfs",
    "SET threads = 1",
])
def test_sandboxed_connection_itself_refuses_outside_access(warehouse: Path, query: str) -> None:
    """The second line of defence: the connection refuses even what the statement check would let through."""
    import duckdb

    from warehouse.db import connect_sandboxed

    con = connect_sandboxed(warehouse)
    try:
        with pytest.raises((duckdb.PermissionException, duckdb.InvalidInputException)):
            con.execute(query)
    finally:
        con.close()
    assert not Path("/tmp/kpe-escape.csv").exists()


def test_sql_still_answers_views_macros_describe_and_explain(warehouse: Path) -> None:
    for query in ["DESCRIBE documents", "SHOW TABLES", "SUMMARIZE SELECT year FROM documents",
                  "EXPLAIN SELECT * FROM documents", "FROM documents SELECT count(*)",
                  "WITH y AS (SELECT year FROM documents) SELECT count(*) FROM y",
                  "SELECT * FROM documents_for('covid-19')"]:
        result = runner.invoke(app, ["sql", query])
        assert result.exit_code == 0, (query, result.output)


def test_sql_timeout_stops_a_runaway_query(warehouse: Path) -> None:
    result = runner.invoke(app, ["sql", "SELECT sum(a.range * b.range) FROM range(400000) a, range(400000) b",
                                 "--timeout", "1"])
    assert result.exit_code == 1 and "ran longer than 1 s and was stopped" in result.output


def test_ctrl_c_stops_a_long_query_cleanly(warehouse: Path, kpe_env: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "sql", "SELECT sum(a.range * b.range) FROM range(2000000) a, "
         "range(2000000) b"], cwd=Path(__file__).resolve().parents[2], env=dict(os.environ, COLUMNS="200"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(8)  # start-up (imports) and into the query
    assert proc.poll() is None, proc.communicate()[0]
    stopped_at = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    assert "stopped (Ctrl-C)" in out and "Traceback" not in out
    assert time.monotonic() - stopped_at < 30


# --- inputs: several files after one option (a shell glob), each loose file to its source by name ---------------


@pytest.fixture()
def library_flows(kpe_env: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The ingest and nightly flows replaced by a stand-in that records the parameters the CLI passes; the ingest
    one then ingests them through the library (what its tasks call, without a Prefect server)."""
    from dataclasses import asdict

    import typer

    import flows.ingest
    import flows.nightly
    from kpe.inputs import plan_specs

    calls: list[dict] = []

    def ingest(pubmed: list[str], s2: list[str], return_state: bool) -> dict:
        calls.append({"flow": "ingest", "pubmed": pubmed, "s2": s2})
        con = connect(kpe_env / "warehouse.duckdb")
        try:
            specs = plan_specs({"pubmed": pubmed, "s2": s2}, kpe_env / "downloads")
            reports = [asdict(r) for r in ingest_specs(con, specs, kpe_env / "lake")]
        finally:
            con.close()
        return {"files": reports, "summary": flows.ingest.summarize(reports),
                "problems": {"partial": 0, "failed": 0, "quarantined": 0}}

    def nightly(**parameters: object) -> None:
        calls.append({"flow": "nightly", **parameters})
        raise typer.Exit(0)

    monkeypatch.setattr(flows.ingest, "ingest", ingest)
    monkeypatch.setattr(flows.ingest, "ingest_result", lambda result: result)
    monkeypatch.setattr(flows.nightly, "nightly", nightly)
    return calls


def test_ingest_takes_every_file_after_one_option_as_a_shell_glob_gives_them(library_flows: list[dict],
                                                                             kpe_env: Path, shared_data: Path) -> None:
    first, second = sorted((shared_data / "pubmed" / "medline_samples" / "baseline").glob("*.xml.gz"))[:2]
    papers = shared_data / "semantic_scholar" / "datasets_api_samples" / "papers" / "papers-sample.jsonl.gz"
    result = runner.invoke(app, ["ingest", "--pubmed", str(first), str(second)])  # `--pubmed baseline/*.xml.gz`
    assert result.exit_code == 0, result.output
    assert library_flows == [{"flow": "ingest", "pubmed": [str(first), str(second)], "s2": []}]
    con = connect(kpe_env / "warehouse.duckdb")
    assert con.execute("SELECT name, status FROM ingest_files ORDER BY name").fetchall() == [
        (first.name, "done"), (second.name, "done")]
    con.close()

    # a loose file goes to its source by its name, wherever it stands
    result = runner.invoke(app, ["ingest", str(papers), "--s2", str(papers.parent), str(first)])
    assert result.exit_code == 0, result.output
    assert library_flows[-1] == {"flow": "ingest", "pubmed": [str(first)], "s2": [str(papers.parent), str(papers)]}


def test_nightly_takes_every_file_after_one_option(library_flows: list[dict], shared_data: Path) -> None:
    first, second = sorted((shared_data / "pubmed" / "medline_samples" / "baseline").glob("*.xml.gz"))[:2]
    result = runner.invoke(app, ["nightly", "--pubmed", str(first), str(second), "--limit", "10"])
    assert result.exit_code == 0, result.output
    (call,) = library_flows
    assert (call["flow"], call["pubmed"], call["limit"]) == ("nightly", [str(first), str(second)], 10)


@pytest.mark.parametrize("command", ["ingest", "nightly"])
def test_a_loose_folder_url_or_unknown_file_asks_for_its_option(command: str, library_flows: list[dict],
                                                                shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "pubmed" / "medline_samples" / "baseline"
    first = sorted(folder.glob("*.xml.gz"))[0]
    for loose, what in [(str(folder), "is a folder"), ("https://example.org/x?api_key=SECRET123", "is a URL"),
                        (str(tmp_path / "notes.txt"), "cannot be told from its name")]:
        result = runner.invoke(app, [command, "--pubmed", str(first), loose], env={"COLUMNS": "300"})
        assert result.exit_code == 2, result.output
        output = " ".join(result.output.split())
        assert what in output and "put --pubmed or --s2 in front of it" in output, output
        assert "SECRET123" not in output
    assert library_flows == []  # nothing ran


def test_loose_files_go_to_the_registered_source_that_claims_their_name() -> None:
    from kpe.inputs import assign_inputs, source_of_file
    from kpe.sources import SOURCES
    from kpe.sources.base import Source

    assert list(SOURCES) == ["pubmed", "s2"] and all(isinstance(s, Source) for s in SOURCES.values())
    names = {"pubmed26n0001.xml.gz": "pubmed", "b.XML": "pubmed", "papers.jsonl.gz": "s2", "Paper.json": "s2",
             "20241018_1.gz": "s2", "d/*.jsonl": "s2", "d/*.xml.gz": "pubmed", "notes.txt": None}
    assert {name: source_of_file(name) for name in names} == names
    assert assign_inputs({"s2": ["folder"]}, ["a.xml", "b.jsonl"]) == {"pubmed": ["a.xml"], "s2": ["folder", "b.jsonl"]}
