"""The `kpe` command line: help on every subcommand, `sql` read-only with its formats, `status`."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from flows.cli import app
from kpe.inputs import pubmed_specs
from warehouse.db import connect

from ingest_support import ingest_specs

runner = CliRunner()
COMMANDS = ["ingest", "status", "nightly", "sql", "keyphrases", "evaluate", "export-silver", "train", "models",
            "models list", "models promote", "models rollback"]


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
    assert (config["diversity"], config["candidate_mode"], config["ngram_range"], config["top_n"]) == (0.5, "keybert", [1, 2], 5)
    fast = extraction_settings(["device=cpu"], fast=True)
    assert (fast["candidate_embedding"], fast["precision"]) == ("contextual", "int8")


@pytest.mark.parametrize("pair", ["no_such_setting=1", "diversity=2", "top_n"])
def test_nightly_rejects_a_bad_setting_before_running(pair: str, kpe_env: Path) -> None:
    result = runner.invoke(app, ["nightly", "--set", pair])
    assert result.exit_code == 2, result.output
    assert "--set" in result.output
    assert not (kpe_env / "warehouse.duckdb").exists()  # nothing ran
