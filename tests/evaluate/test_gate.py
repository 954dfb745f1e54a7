"""The promotion gate: the pure decision rule, then the rule on real harness numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from support.registry import register_model

from kpe.evaluate.gate import bootstrap_interval, decide, paired_deltas, primary_metric


def _m(value: float) -> dict:
    """Metrics shaped like the evaluation harness returns them."""
    return {"macro": {"present": {"f1@5": value, "f1@10": value / 2}}, "n_docs": 30}


def test_better_candidate_is_promoted() -> None:
    decision = decide(
        {"inspec": _m(0.30), "semeval": _m(0.25)}, {"inspec": _m(0.28), "semeval": _m(0.24)},
        margin=0.005, tolerance=0.01,
    )
    assert decision.promote
    assert decision.primary_candidate == pytest.approx(0.275)
    assert decision.primary_production == pytest.approx(0.26)
    assert decision.delta == pytest.approx(0.015)
    assert decision.per_set["inspec"].delta == pytest.approx(0.02)
    assert decision.regressions == []
    assert decision.reason.startswith("promoted") and "0.2750" in decision.reason


def test_worse_candidate_is_rejected() -> None:
    decision = decide({"inspec": _m(0.20)}, {"inspec": _m(0.28)}, margin=0.005, tolerance=0.1)
    assert not decision.promote
    assert decision.delta == pytest.approx(-0.08)
    assert "below margin" in decision.reason


def test_regression_beyond_tolerance_on_one_set_is_rejected() -> None:
    # +0.10 on average, but -0.03 on semeval with a tolerance of 0.01
    decision = decide(
        {"inspec": _m(0.50), "semeval": _m(0.20)}, {"inspec": _m(0.27), "semeval": _m(0.23)},
        margin=0.005, tolerance=0.01,
    )
    assert decision.delta > 0.05
    assert not decision.promote
    assert decision.regressions == ["semeval"]
    assert "regression" in decision.reason and "semeval" in decision.reason
    # the same regression within a looser tolerance passes
    assert decide(
        {"inspec": _m(0.50), "semeval": _m(0.20)}, {"inspec": _m(0.27), "semeval": _m(0.23)},
        margin=0.005, tolerance=0.05,
    ).promote


def test_gain_within_margin_is_rejected_and_margin_edge_promotes() -> None:
    assert not decide({"a": _m(0.282)}, {"a": _m(0.28)}, margin=0.005, tolerance=0.01).promote
    assert not decide({"a": _m(0.28)}, {"a": _m(0.28)}, margin=0.005, tolerance=0.01).promote
    assert decide({"a": _m(0.285)}, {"a": _m(0.28)}, margin=0.005, tolerance=0.01).promote
    assert decide({"a": _m(0.28)}, {"a": _m(0.28)}, margin=0.0, tolerance=0.0).promote  # no margin: ties pass


def test_first_model_is_compared_with_the_default_baseline() -> None:
    # with no promoted model, "production" numbers are those of the default kpe method (packaged encoder)
    baseline = {"inspec": {"f1@5": 0.26}, "semeval": {"f1@5": 0.20}}  # flat metrics are accepted too
    assert decide({"inspec": _m(0.31), "semeval": _m(0.22)}, baseline, 0.005, 0.01).promote
    assert not decide({"inspec": _m(0.21), "semeval": _m(0.18)}, baseline, 0.005, 0.01).promote


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="different sets"):
        decide({"a": _m(0.3)}, {"b": _m(0.3)})
    with pytest.raises(ValueError, match="at least one"):
        decide({}, {})
    with pytest.raises(ValueError, match="f1@5"):
        primary_metric({"macro": {"all": {}}})
    with pytest.raises(ValueError, match="margin"):
        decide({"a": _m(0.3)}, {"a": _m(0.3)}, margin=-1)
    nan = decide({"a": _m(math.nan)}, {"a": _m(0.3)}, margin=0, tolerance=1)
    assert not nan.promote and "NaN" in nan.reason


def test_decision_dict_holds_every_number() -> None:
    decision = decide({"a": _m(0.4), "b": _m(0.3)}, {"a": _m(0.3), "b": _m(0.3)}, 0.01, 0.02, primary="f1@5")
    data = decision.to_dict()
    assert set(data) >= {"promote", "reason", "primary", "primary_candidate", "primary_production", "delta",
                         "margin", "tolerance", "per_set", "regressions"}
    assert data["per_set"]["a"] == {"candidate": 0.4, "production": 0.3, "delta": pytest.approx(0.1), "ci95": None}
    assert data["margin"] == 0.01 and data["tolerance"] == 0.02
    assert data["delta_ci95"] is None  # no per-document scores, no interval


def _scored(scores: list[float], ids: list[str] | None = None) -> dict:
    return {**_m(float(np.mean(scores))), "per_document": {"metric": "f1@5", "doc_ids": ids or
                                                           [str(i) for i in range(len(scores))], "scores": scores}}


def test_paired_bootstrap_interval_says_whether_the_sets_can_tell_the_models_apart() -> None:
    rng = np.random.default_rng(1)
    production = list(rng.uniform(0, 0.6, 400))
    shifted = [p + 0.05 for p in production]  # every document better by 0.05: no doubt
    assert bootstrap_interval([np.asarray(shifted) - production]) == pytest.approx((0.05, 0.05))
    noisy = list(np.asarray(production) + rng.normal(0, 0.2, 400))  # the same on average, noisy
    decision = decide({"s": _scored(noisy), "t": _scored(shifted)},
                      {"s": _scored(production), "t": _scored(production)})
    low, high = decision.per_set["s"].ci95
    assert low < decision.per_set["s"].delta < high and low < 0 < high
    assert decision.per_set["t"].ci95 == pytest.approx((0.05, 0.05))
    mean_low, mean_high = decision.delta_ci95
    assert mean_low < decision.delta < mean_high and mean_high - mean_low == pytest.approx((high - low) / 2, rel=0.2)
    assert "95% CI" in decision.reason
    # a loss beyond the tolerance vetoes only when it is clear: within the noise it is named, not counted
    noise = np.asarray(noisy) - production
    worse_by_noise = list(np.asarray(production) + noise - noise.mean() - 0.012)  # -0.012 on average, noisy
    lenient = decide({"s": _scored(worse_by_noise), "t": _scored(shifted)},
                     {"s": _scored(production), "t": _scored(production)}, margin=0.005, tolerance=0.01)
    assert lenient.per_set["s"].delta < -0.01 and lenient.per_set["s"].ci95[1] > 0
    assert lenient.promote and lenient.regressions == [] and lenient.regressions_within_noise == ["s"]
    assert "within the noise" in lenient.reason
    clearly_worse = list(np.asarray(production) - 0.02)
    strict = decide({"s": _scored(clearly_worse), "t": _scored(shifted)},
                    {"s": _scored(production), "t": _scored(production)}, margin=0.005, tolerance=0.01)
    assert not strict.promote and strict.regressions == ["s"] and "regression beyond tolerance" in strict.reason
    # the same numbers, the same interval; documents that differ between the sides: no interval
    assert decide({"s": _scored(noisy)}, {"s": _scored(production)}).per_set["s"].ci95 == (low, high)
    other_docs = _scored(production, ids=[f"x{i}" for i in range(400)])
    assert paired_deltas(_scored(noisy), other_docs) is None
    assert decide({"s": _scored(noisy)}, {"s": other_docs}).delta_ci95 is None


# --- the gate on real harness numbers ------------------------------------------------------------


def _register_method(con, name: str, method: str, minute: int) -> str:
    """A registry row whose extraction method needs no weights (a baseline), with an (empty) model dir."""
    return register_model(con, name, minute, kind="encoder", method=method)


def test_gate_end_to_end_on_inspec_and_semeval(kpe_env) -> None:
    """YAKE measurably beats the first-phrases baseline on 30 real Inspec / SemEval-2017 dev documents: as a
    candidate it is promoted over it; a first-phrases candidate against YAKE in production is rejected."""
    from kpe.evaluate.gate import decide as gate_decision
    from kpe.evaluate.gate import evaluate_on_gate_sets, gate_set_names
    from kpe.registry import ExtractionModel, current_extraction_model
    from kpe.settings import get_settings
    from tasks.evaluate import load_gate_sets
    from tasks.train import production_for_gate, record_decision
    from warehouse.db import connect
    from warehouse.evaluations import list_evaluations
    from warehouse.models import get_model, production_model, promote

    path = get_settings().warehouse_path
    con = connect(path)
    weak = _register_method(con, "firstphrases", "first-phrases", 1)
    promote(con, weak)
    strong = _register_method(con, "yake", "yake", 2)
    weak_again = _register_method(con, "firstphrases", "first-phrases", 3)
    con.close()

    names = gate_set_names(include_silver=False)
    assert names == ["inspec_dev", "semeval2017_dev"]
    sets = load_gate_sets(names, limit=30)
    assert {name: len(s.docs) for name, s in sets.items()} == {"inspec_dev": 30, "semeval2017_dev": 30}

    def run_gate(version: str, method: str) -> dict:
        production = production_for_gate()
        candidate_model = ExtractionModel(version, method, str(kpe_env / "models" / version))
        cand = evaluate_on_gate_sets(candidate_model, sets)
        prod = evaluate_on_gate_sets(production, sets)
        decision = gate_decision(cand, prod, margin=0.005, tolerance=0.01)
        return record_decision(version, decision, cand, prod, production, auto_promote=True)

    better = run_gate(strong, "yake")
    assert better["status"] == "production"
    for name, side in (("inspec_dev", sets["inspec_dev"]),):  # per-document scores: the macro number, paired
        yake = evaluate_on_gate_sets(ExtractionModel(strong, "yake", ""), {name: side})[name]
        assert len(yake["per_document"]["scores"]) == yake["n_docs_scored"]["present"]
        assert np.mean(yake["per_document"]["scores"]) == pytest.approx(primary_metric(yake))
    low, high = better["decision"]["delta_ci95"]
    assert low <= better["decision"]["delta"] <= high
    assert "delta_ci95" not in better["decision"]["per_set"]["inspec_dev"] and \
        better["decision"]["per_set"]["inspec_dev"]["ci95"][0] <= better["decision"]["per_set"]["inspec_dev"]["delta"]
    assert better["decision"]["production_version"] == weak
    assert better["decision"]["delta"] >= 0.005
    assert all(s["delta"] >= -0.01 for s in better["decision"]["per_set"].values())

    worse = run_gate(weak_again, "first-phrases")
    assert worse["status"] == "rejected"
    assert worse["decision"]["production_version"] == strong
    assert worse["decision"]["delta"] < 0

    con = connect(path)
    try:
        assert current_extraction_model(production_model(con)).version == strong
        assert get_model(con, weak).status == "retired"
        stored = get_model(con, weak_again)
        assert stored.decision["reason"] == worse["decision"]["reason"]
        assert stored.decision["per_set"]["inspec_dev"]["candidate"] == pytest.approx(
            stored.metrics["gate"]["candidate"]["inspec_dev"]["macro"]["present"]["f1@5"])
        assert stored.metrics["gate"]["production"]["semeval2017_dev"]["n_docs"] == 30
        evaluations = list_evaluations(con, model_version=strong)
        assert {(e["dataset"], e["n_docs"]) for e in evaluations} == {("inspec_dev", 30), ("semeval2017_dev", 30)}
        assert not any("per_document" in e["metrics"] for e in evaluations)  # stored: the numbers, not the scores
    finally:
        con.close()


def test_compare_measures_a_registered_model_as_the_gate_would_and_changes_nothing(kpe_env) -> None:
    """`kpe models compare`: YAKE against the first-phrases production on 12 real documents per set."""
    import json

    from typer.testing import CliRunner

    from flows.cli.models import models_app
    from kpe.settings import get_settings
    from warehouse.db import connect
    from warehouse.models import get_model, promote

    con = connect(get_settings().warehouse_path)
    weak = _register_method(con, "firstphrases", "first-phrases", 1)
    promote(con, weak)
    strong = _register_method(con, "yake", "yake", 2)
    con.close()
    runner = CliRunner()
    shown = runner.invoke(models_app, ["compare", strong, "--gate-limit", "12"])
    assert shown.exit_code == 0, shown.output
    assert "would promote" in shown.output and "delta 95% CI" in shown.output and weak in shown.output
    as_json = runner.invoke(models_app, ["compare", weak, "--against", strong, "--gate-limit", "12", "--json"])
    decision = json.loads(as_json.output[as_json.output.index("{"):])
    assert decision["sets"] == {"inspec_dev": 12, "semeval2017_dev": 12} and not decision["promote"]
    assert decision["delta"] < 0 and decision["delta_ci95"][0] <= decision["delta"] <= decision["delta_ci95"][1]
    con = connect(get_settings().warehouse_path, read_only=True)
    assert get_model(con, strong).status == "candidate" and get_model(con, weak).status == "production"
    con.close()
    missing = runner.invoke(models_app, ["compare", "tagger-20991231-0000-000000"])
    assert missing.exit_code == 1 and "no model version" in missing.output


# --- the train flow, end to end ------------------------------------------------------------------


def test_train_flow_trains_gates_records_and_the_cli_promotes_and_rolls_back(
    prefect_harness, kpe_env, tiny_encoder: Path,
) -> None:
    """A 5-step tagger on 16 Inspec documents (its span ranker also fitted on the training split, tagged out of
    fold by two fold taggers) against the packaged default (no model promoted yet): the gate sets choose its
    method, the decision and its numbers are stored and published; the CLI lists, force-promotes and rolls back."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import LogSort
    from typer.testing import CliRunner

    from flows.cli.models import models_app
    from flows.train import train
    from kpe.registry import PACKAGED_VERSION, current_extraction_model
    from kpe.settings import get_settings
    from kpe.train.model_card import read_model_card
    from warehouse.db import connect
    from warehouse.models import get_model, production_model

    result = train(
        kind="tagger", method=None, base_model=str(tiny_encoder), train_data=["inspec"], max_steps=5, train_limit=16,
        gate_limit=8, batch_size=4,
        train_options={"max_length": 128, "stride": 32, "log_with": "none", "max_val_docs": 4,
                       "tune_hybrid": False, "num_threads": 2, "ranker_folds": 2},
    )
    version, decision = result["version"], result["decision"]
    assert result["status"] == ("production" if decision["promote"] else "rejected")
    assert decision["production_version"] == PACKAGED_VERSION and decision["production_method"] == "kpe"
    assert decision["sets"] == {"inspec_dev": 8, "semeval2017_dev": 8}
    assert decision["training"]["steps"] == 5
    choice = decision["method_choice"]  # every method a tagger supports was measured; the best mean F1@5 won
    means = choice["mean_f1@5_present"]
    assert set(means) == {"tagger", "hybrid", "ranked", "keybert-ft"}  # the run fitted its span ranker too
    assert result["method"] == choice["chosen"] and means[choice["chosen"]] == max(means.values())
    assert decision["primary_candidate"] == pytest.approx(means[choice["chosen"]], abs=1e-4)

    con = connect(get_settings().warehouse_path)
    try:
        row = get_model(con, version)
        assert row.status == result["status"] and row.kind == "tagger" and row.method == result["method"]
        assert (Path(row.path) / "config.json").is_file() and (Path(row.path) / "phrase_lexicon.json.gz").is_file()
        assert not (Path(row.path).parent / "checkpoints").exists()
        card = read_model_card(row.path)  # the model card carries the gate's decision and the training facts
        assert card["gate"]["status"] == result["status"] and card["gate"]["reason"] == decision["reason"]
        assert card["precision"] == decision["training"]["precision"] and card["samples_per_second"] > 0
        assert row.decision["reason"] == decision["reason"]
        for name, cmp in row.decision["per_set"].items():
            assert cmp["candidate"] == pytest.approx(row.metrics["gate"]["candidate"][name]["macro"]["present"]["f1@5"])
            assert cmp["production"] == pytest.approx(
                row.metrics["gate"]["production"][name]["macro"]["present"]["f1@5"]
            )
        assert row.settings["train_config"]["max_steps"] == 5
        out_of_fold = row.data["span_ranker"]["out_of_fold"]  # the ranker also learnt from the training split
        assert out_of_fold["folds"] == 2 and out_of_fold["steps"] == [5, 5]
        assert out_of_fold["docs"] == {"inspec": row.data["inspec"]["train_docs"]}
        expected = version if result["status"] == "production" else PACKAGED_VERSION
        assert current_extraction_model(production_model(con)).version == expected
    finally:
        con.close()

    async def artifact() -> str:
        async with get_client() as client:
            found = await client.read_latest_artifacts()
            return next(a.data for a in found if a.key == "train-gate-decision")

    markdown = asyncio.run(artifact())
    assert version in markdown and "| inspec_dev | 8 |" in markdown and decision["reason"] in markdown
    # how sure the decision is: the paired bootstrap interval of the mean delta, in the decision, page and card
    low, high = decision["delta_ci95"]
    assert low <= decision["delta"] <= high and f"{low:+.4f} .. {high:+.4f}" in markdown
    assert list(card["gate"]["delta_ci95"]) == [low, high]

    async def run_log() -> list[str]:  # the newest first: the session's server holds other flows' logs too
        async with get_client() as client:
            return [entry.message for entry in await client.read_logs(sort=LogSort.TIMESTAMP_DESC)]

    messages = asyncio.run(run_log())  # the training's own progress lines are there, dill's bytecode is not
    assert any("kpe.train.loop" in m for m in messages)
    assert not any("LOAD_GLOBAL" in m or "RETURN_VALUE" in m for m in messages)
    assert f"method chosen on the gate sets: **{result['method']}**" in markdown

    runner = CliRunner()
    listed = runner.invoke(models_app, ["list"])
    assert listed.exit_code == 0 and version in listed.output
    if result["status"] == "rejected":
        refused = runner.invoke(models_app, ["promote", version])
        assert refused.exit_code == 1 and "rejected" in refused.output
        forced = runner.invoke(models_app, ["promote", version, "--force", "--reason", "test override"])
        assert forced.exit_code == 0, forced.output
    con = connect(get_settings().warehouse_path, read_only=True)
    assert current_extraction_model(production_model(con)).version == version
    con.close()

    rolled = runner.invoke(models_app, ["rollback", "--reason", "test"])
    assert rolled.exit_code == 0 and PACKAGED_VERSION in rolled.output
    assert runner.invoke(models_app, ["rollback"]).exit_code == 1  # nothing left to roll back
    con = connect(get_settings().warehouse_path, read_only=True)
    try:
        assert current_extraction_model(production_model(con)).version == PACKAGED_VERSION
        assert get_model(con, version).status == "rejected"
    finally:
        con.close()


def test_fit_ranker_gives_a_registered_tagger_a_span_ranker_as_a_new_gated_version(
    prefect_harness, kpe_env, tiny_encoder: Path, shared_data: Path,
) -> None:
    """A tagger registered without a span ranker (as taggers were before): `kpe models fit-ranker` fits one on the
    validation slice of the tagger's own training data, with a lexicon of its training split, into a new version,
    which the gate measures with every tagger method; the old version's files are left as they were. With
    `--ranker-folds 2` the ranker also learns from the training split tagged out of fold."""
    from typer.testing import CliRunner

    from flows.cli.models import models_app
    from flows.train import fit_ranker
    from kpe.registry import model_dir
    from kpe.settings import get_settings
    from kpe.train import TrainConfig, train
    from kpe.train.data import train_val_docs
    from kpe.train.model_card import read_model_card
    from kpe.train.phrase_lexicon import load_phrase_lexicon
    from kpe.train.span_ranker import RANKER_FILE
    from warehouse.db import connect
    from warehouse.models import get_model, list_models

    config = TrainConfig(kind="tagger", base=str(tiny_encoder), train_data=["inspec"], max_docs=120, max_steps=2,
                         output_dir=model_dir("tagger-old"), shared_data_dir=shared_data, max_length=128, stride=32,
                         batch_size=4, log_with="none", max_val_docs=4, tune_hybrid=False, fit_span_ranker=False,
                         num_threads=2)
    trained = train(config)
    with connect(get_settings().warehouse_path) as con:
        old = register_model(con, "tagger", 1, path=trained.model_dir,
                             settings={"train_config": config.model_dump(mode="json")})
        not_a_tagger = register_model(con, "embed", 2)

    result = fit_ranker(version=old, gate_limit=8)
    new = result["version"]
    training, validation = train_val_docs(config, capped=False)[:2]  # the whole slice, not max_val_docs
    assert new != old and result["span_ranker"]["docs"] == {"inspec": len(validation)} and len(validation) > 4
    means = result["decision"]["method_choice"]["mean_f1@5_present"]
    assert set(means) == {"tagger", "hybrid", "ranked", "keybert-ft"} and result["method"] == max(means, key=means.get)
    assert result["decision"]["span_ranker"]["for"] == old
    with connect(get_settings().warehouse_path, read_only=True) as con:
        row, before = get_model(con, new), get_model(con, old)
    assert row.kind == "tagger" and row.settings["span_ranker_for"] == old and row.data["span_ranker"]["candidates"] > 0
    assert (Path(row.path) / RANKER_FILE).is_file() and (Path(row.path) / "model.safetensors").is_file()
    assert not (Path(before.path) / RANKER_FILE).exists() and before.status == "candidate"
    assert row.data["span_ranker"]["lexicon"]["documents"] == len(training)  # counted on its training split
    assert load_phrase_lexicon(row.path).documents == len(training)
    assert read_model_card(row.path)["data"]["span_ranker"]["min_score"] == result["span_ranker"]["min_score"]
    assert read_model_card(row.path)["data"] == row.data  # the card and the registry record the same data

    refused = CliRunner().invoke(models_app, ["fit-ranker", not_a_tagger])
    assert refused.exit_code == 1 and "is not a tagger (kind embed)" in refused.output

    # --ranker-folds: the same tagger's ranker also learns from its training split, tagged by fold taggers trained
    # like its run, which are gone afterwards
    folded = CliRunner().invoke(models_app, ["fit-ranker", old, "--ranker-folds", "2", "--gate-limit", "8",
                                             "--no-promote"])
    assert folded.exit_code == 0, folded.output
    with connect(get_settings().warehouse_path, read_only=True) as con:
        third = [m for m in list_models(con) if m.version not in (old, new, not_a_tagger)]
    assert len(third) == 1 and third[0].settings["span_ranker_for"] == old and third[0].version in folded.output
    summary = third[0].data["span_ranker"]
    assert summary["out_of_fold"]["folds"] == 2 and summary["out_of_fold"]["steps"] == [2, 2]
    assert summary["out_of_fold"]["docs"] == {"inspec": len(training)}  # every training abstract, out of fold
    assert summary["docs"] == {"inspec": len(validation)} and summary["candidates"] > row.data["span_ranker"][
        "candidates"]
    assert sorted(p.name for p in Path(third[0].path).parent.iterdir()) == ["model"]  # no fold runs left
    refused = CliRunner().invoke(models_app, ["fit-ranker", old, "--ranker-folds", "1"])
    assert refused.exit_code == 1 and "ranker_folds 1" in refused.output
