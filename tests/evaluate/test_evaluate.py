"""The evaluation harness end to end: benchmark files, the CLI, the silver set, storage and the flow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from flows.cli.evaluate import evaluate_command, export_silver_command
from kpe.datasets import BenchmarkFormatError, load_jsonl
from kpe.evaluate.metrics import evaluate_predictions, occurs_in, phrase_key, unique_keys
from kpe.extract.methods import document_text
from kpe.splits import split_of
from warehouse import db
from warehouse.evaluations import list_evaluations

KEYPHRASE = Path("keyphrase")
METRIC_KEYS = {f"{m}@{k}" for k in ("1", "3", "5", "10", "M") for m in ("p", "r", "f1")}


@pytest.fixture()
def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("evaluate")(evaluate_command)
    app.command("export-silver")(export_silver_command)
    return app


def _invoke(app: typer.Typer, args: list[str]):
    return CliRunner().invoke(app, args, catch_exceptions=False, env={"COLUMNS": "160"})


# --- benchmark files ---------------------------------------------------------------------------------


def test_shared_benchmarks_load_with_their_text_and_gold(shared_data: Path):
    raw = [json.loads(line) for line in (shared_data / KEYPHRASE / "inspec_dev.jsonl").open()]
    docs = load_jsonl(shared_data / KEYPHRASE / "inspec_dev.jsonl")
    assert len(docs) == len(raw) == 500
    assert docs[3].doc_id == str(raw[3]["id"])
    assert docs[3].text == document_text(raw[3]["title"], raw[3]["abstract"])
    assert list(docs[3].keyphrases) == raw[3]["keyphrases"]
    semeval = load_jsonl(shared_data / KEYPHRASE / "semeval2017_dev.jsonl", limit=5)
    assert len(semeval) == 5 and all(d.text and d.keyphrases for d in semeval)
    raw_semeval = json.loads((shared_data / KEYPHRASE / "semeval2017_dev.jsonl").open().readline())
    assert semeval[0].text == raw_semeval["text"].strip()
    kp20k = load_jsonl(shared_data / KEYPHRASE / "kp20k_small_valid.jsonl", limit=3)
    raw_kp20k = json.loads((shared_data / KEYPHRASE / "kp20k_small_valid.jsonl").open().readline())
    assert len(kp20k) == 3 and kp20k[0].text == document_text(raw_kp20k["title"], raw_kp20k["abstract"])


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"id": "x", "title": "T", "keyphrases": ["a"]', "invalid JSON"),
        ('["id", "x"]', "expected a JSON object"),
        ('{"title": "T", "abstract": "A", "keyphrases": ["a"]}', "'id'"),
        ('{"id": "x", "keyphrases": ["a"]}', "no text"),
        ('{"id": "x", "text": "T", "keyphrases": "a; b"}', "'keyphrases' must be a list"),
        ('{"id": "15", "text": "T", "keyphrases": ["a"]}', "duplicate id '15'"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path: Path, shared_data: Path, line: str, reason: str):
    good = (shared_data / KEYPHRASE / "inspec_dev.jsonl").open().readline()  # id 15
    path = tmp_path / "bench.jsonl"
    path.write_text(good + "\n" + line + "\n")  # a blank line 2 is skipped; the bad one is line 3
    with pytest.raises(BenchmarkFormatError, match=rf"bench\.jsonl:3: .*{reason}"):
        load_jsonl(path)


def test_document_with_empty_text_is_valid(tmp_path: Path):
    path = tmp_path / "empty.jsonl"
    path.write_text('{"id": 1, "title": "", "abstract": null, "keyphrases": ["ship control"]}\n')
    [doc] = load_jsonl(path)
    assert doc.doc_id == "1" and doc.text == "" and doc.keyphrases == ("ship control",)


# --- the CLI on Inspec dev ---------------------------------------------------------------------------


def test_cli_reports_keybert_yake_tfidf_kpe_in_one_run_and_stores(cli, kpe_env: Path, shared_data: Path):
    preds_path = kpe_env / "preds.jsonl"
    result = _invoke(cli, [
        "evaluate", "--data", str(shared_data / KEYPHRASE / "inspec_dev.jsonl"),
        "--method", "keybert", "--method", "yake", "--method", "tfidf", "--method", "kpe",
        "--limit", "20", "--json", "--predictions-out", str(preds_path), "--store",
    ])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["method"] for r in lines] == ["keybert", "yake", "tfidf", "kpe"]
    docs = load_jsonl(shared_data / KEYPHRASE / "inspec_dev.jsonl", limit=20)
    predictions = [json.loads(line) for line in preds_path.read_text().splitlines()]
    assert len(predictions) == 4 * 20
    for r in lines:
        assert r["dataset"] == "inspec_dev" and r["split"] == "dev" and r["n_docs"] == 20
        assert r["n_gold"]["all"] == sum(len(unique_keys(d.keyphrases)) for d in docs)
        assert 0 < r["n_gold"]["present"] < r["n_gold"]["all"]
        for block in ("macro", "micro", "macro_mink"):
            assert set(r[block]) == {"all", "present"} and set(r[block]["present"]) == METRIC_KEYS
            assert all(0.0 <= v <= 1.0 for v in r[block]["all"].values())
        assert r["macro"]["present"]["f1@10"] > 0 and r["seconds"] > 0
        # the reported numbers are exactly those of the written predictions
        mine = [p["keyphrases"] for p in predictions if p["method"] == r["method"]]
        assert [p["id"] for p in predictions if p["method"] == r["method"]] == [d.doc_id for d in docs]
        recomputed = evaluate_predictions(mine, [d.keyphrases for d in docs], [d.text for d in docs])
        assert recomputed["micro"] == r["micro"] and recomputed["macro_mink"] == r["macro_mink"]
    con = db.connect(kpe_env / "warehouse.duckdb", read_only=True)
    stored = list_evaluations(con, dataset="inspec_dev")
    con.close()
    assert sorted(row["method"] for row in stored) == ["keybert", "kpe", "tfidf", "yake"]
    by_method = {row["method"]: row for row in stored}
    assert by_method["keybert"]["model_version"] == "default" and by_method["yake"]["n_docs"] == 20
    assert by_method["yake"]["metrics"]["macro"] == next(r for r in lines if r["method"] == "yake")["macro"]


def test_cli_table_and_errors(cli, kpe_env: Path, shared_data: Path, tmp_path: Path):
    result = _invoke(cli, ["evaluate", "--data", "semeval2017_dev", "--method", "first-phrases", "--limit", "5"])
    assert result.exit_code == 0, result.output
    assert "semeval2017_dev" in result.stdout and "first-phrases" in result.stdout
    assert not (kpe_env / "warehouse.duckdb").exists()  # no warehouse, no --store: nothing stored
    bad = _invoke(cli, ["evaluate", "--data", "inspec_dev", "--method", "nope"])
    assert bad.exit_code == 2 and "unknown method" in bad.output
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "1", "text": "x"}\n')
    failed = _invoke(cli, ["evaluate", "--data", str(broken), "--method", "yake"])
    assert failed.exit_code == 1 and "broken.jsonl:1" in failed.output


# --- the silver PubMed set ---------------------------------------------------------------------------


def _medline_warehouse(path: Path, shared_data: Path) -> list[tuple[str, str | None, str | None, list[str]]]:
    """A warehouse with the real MEDLINE sample records (latest version of each PMID), one of them deleted."""
    from kpe.records import SourceRecord
    from kpe.sources.pubmed import iter_medline

    records: dict[str, SourceRecord] = {}
    for file in sorted((shared_data / "pubmed" / "medline_samples").rglob("*.xml.gz")):
        for item in iter_medline(file):
            if isinstance(item, SourceRecord):
                records[item.source_id] = item
    con = db.connect(path)
    rows = []
    for i, rec in enumerate(records.values()):
        doc_id = f"pmid:{rec.source_id}"
        deleted = i == 0
        con.execute(
            "INSERT INTO documents (doc_id, source, source_id, sources, aliases, title, abstract, keywords,"
            " content_hash, first_seen, updated_at, deleted) VALUES (?, 'pubmed', ?, ['pubmed'], [?], ?, ?, ?, ?,"
            " now()::TIMESTAMP, now()::TIMESTAMP, ?)",
            [doc_id, rec.source_id, doc_id, rec.title, rec.abstract, rec.keywords, f"h{i}", deleted],
        )
        if not deleted:
            rows.append((doc_id, rec.title, rec.abstract, rec.keywords))
    con.close()
    return rows


def test_export_silver_keeps_documents_with_a_present_author_keyword(cli, kpe_env: Path, shared_data: Path):
    live = _medline_warehouse(kpe_env / "warehouse.duckdb", shared_data)
    expected = {}
    for doc_id, title, abstract, keywords in live:
        text = document_text(title, abstract)
        if abstract and keywords and any(occurs_in(phrase_key(k), phrase_key(text)) for k in keywords):
            expected[doc_id] = keywords
    assert 20 < len(expected) < len(live)  # the rule keeps some and drops others

    out_all = kpe_env / "silver_all.jsonl"
    result = _invoke(cli, ["export-silver", "--out", str(out_all), "--split", "all"])
    assert result.exit_code == 0, result.output
    exported = load_jsonl(out_all)
    assert {d.doc_id: list(d.keyphrases) for d in exported} == expected
    assert [d.doc_id for d in exported] == sorted(expected)

    parts = {}
    for split in ("dev", "train"):
        out = kpe_env / f"silver_{split}.jsonl"
        assert _invoke(cli, ["export-silver", "--out", str(out), "--split", split]).exit_code == 0
        parts[split] = [d.doc_id for d in load_jsonl(out)]
        assert all(split_of(doc_id) == split for doc_id in parts[split])
    assert sorted(parts["dev"] + parts["train"]) == sorted(expected)

    out_limited = kpe_env / "silver_3.jsonl"
    assert _invoke(cli, ["export-silver", "--out", str(out_limited), "--split", "all", "--limit", "3"]).exit_code == 0
    assert [d.doc_id for d in load_jsonl(out_limited)] == sorted(expected)[:3]

    # the silver set evaluates like any benchmark, straight from the warehouse
    result = _invoke(cli, ["evaluate", "--data", "pubmed_silver_all", "--method", "yake", "--limit", "10", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout.splitlines()[-1])
    assert metrics["dataset"] == "pubmed_silver_all" and metrics["n_docs"] == 10
    assert metrics["n_docs_scored"]["present"] == 10  # every silver document has a present keyword


# --- the flow ----------------------------------------------------------------------------------------


def test_flow_stores_every_result_and_publishes_the_report(prefect_harness, kpe_env: Path):
    from flows.evaluate import EvaluationFailed, evaluate

    results = evaluate(datasets=["inspec_dev", "semeval2017_dev"], methods=["yake", "tfidf"], limit=5)
    assert [(r["dataset"], r["method"]) for r in results] == [
        ("inspec_dev", "yake"), ("inspec_dev", "tfidf"), ("semeval2017_dev", "yake"), ("semeval2017_dev", "tfidf")
    ]
    assert all(r["n_docs"] == 5 and "predictions" not in r for r in results)
    con = db.connect(kpe_env / "warehouse.duckdb", read_only=True)
    stored = list_evaluations(con)
    con.close()
    assert len(stored) == 4 and len({row["flow_run_id"] for row in stored}) == 1 and stored[0]["flow_run_id"]
    pngs = list((kpe_env / "cache" / "reports").glob("evaluation-*.png"))
    assert len(pngs) == 1 and pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a method that cannot be built fails the run, after the others are stored
    with pytest.raises(EvaluationFailed, match="no-such-method on inspec_dev"):
        evaluate(datasets=["inspec_dev"], methods=["no-such-method", "yake"], limit=3)
    con = db.connect(kpe_env / "warehouse.duckdb", read_only=True)
    assert [row["n_docs"] for row in list_evaluations(con, method="yake")] == [3, 5, 5]
    con.close()


def test_markdown_report_embeds_the_figure(tmp_path: Path, shared_data: Path):
    from kpe.evaluate.harness import evaluate_method
    from kpe.evaluate.report import markdown_report, plot_f1_curves

    docs = load_jsonl(shared_data / KEYPHRASE / "inspec_dev.jsonl", limit=10)
    results = [evaluate_method(m, docs, dataset="inspec_dev", progress=False) for m in ("yake", "first-phrases")]
    png = plot_f1_curves(results, tmp_path / "f1.png")
    page = markdown_report(results, png, failures=["kpe on inspec_dev: missing"])
    assert "data:image/png;base64,iVBORw0KGgo" in page and str(png.resolve()) in page
    assert "| inspec_dev | yake |" in page and "kpe on inspec_dev: missing" in page
