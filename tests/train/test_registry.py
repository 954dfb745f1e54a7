"""Model registry: versions, promote / rollback / list, exactly one production, the extraction model."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from support.registry import register_model

from kpe.encoders import packaged_encoder_path
from kpe.registry import (
    PACKAGED_VERSION,
    ExtractionModel,
    current_extraction_model,
    is_version,
    model_dir,
    new_version,
)
from warehouse.db import connect
from warehouse.models import (
    RegistryError,
    get_model,
    list_models,
    production_model,
    promote,
    record_evaluation,
    record_gate_decision,
    register_candidate,
    reject,
    rollback,
    set_method,
)


@pytest.fixture()
def con(kpe_env: Path):
    from kpe.settings import get_settings

    connection = connect(get_settings().warehouse_path)
    yield connection
    connection.close()


def _register(con, kpe_env: Path, kind: str = "tagger", method: str = "tagger", minute: int = 0) -> str:
    return register_model(con, kind, minute, method=method, data={"docs": 16}, settings={"max_steps": 5})


def _production_count(con) -> int:
    return con.execute("SELECT count(*) FROM models WHERE status = 'production'").fetchone()[0]


def test_version_names_are_sortable_and_checked(kpe_env: Path) -> None:
    early = new_version("tagger", now=dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC), token="ab12cd")
    assert early == "tagger-20260102-0304-ab12cd"
    assert is_version(early) and not is_version("tagger-2026-ab")
    later = new_version("tagger", now=dt.datetime(2026, 1, 2, 3, 5, tzinfo=dt.UTC))
    assert later > early and is_version(later)
    assert new_version("joint") != new_version("joint")  # random token
    with pytest.raises(ValueError):
        new_version("Tagger!")
    with pytest.raises(ValueError):
        new_version("tagger", token="XYZ")
    assert model_dir(early) == Path(kpe_env / "models" / early)
    with pytest.raises(ValueError):
        model_dir("../etc")


def test_default_then_promoted_model_is_what_extraction_uses(con, kpe_env: Path) -> None:
    default = current_extraction_model(production_model(con))
    assert default == ExtractionModel(version=PACKAGED_VERSION, method="kpe", model_path=packaged_encoder_path())
    assert Path(default.model_path, "config.json").exists()

    version = _register(con, kpe_env, method="hybrid")
    assert current_extraction_model(production_model(con)) == default  # a candidate is not production

    promote(con, version, reason="test")
    model = current_extraction_model(production_model(con))
    assert model == ExtractionModel(version=version, method="hybrid", model_path=str(model_dir(version)))
    assert model.version != default.version  # the version change is what makes nightly re-extract


def test_read_only_connection_reads_production(con, kpe_env: Path) -> None:
    from kpe.settings import get_settings

    version = _register(con, kpe_env)
    promote(con, version)
    con.close()
    ro = connect(get_settings().warehouse_path, read_only=True)
    try:
        assert current_extraction_model(production_model(ro)).version == version
    finally:
        ro.close()


def test_missing_production_dir_is_a_clear_error(con, kpe_env: Path) -> None:
    version = _register(con, kpe_env)
    promote(con, version)
    model_dir(version).rmdir()
    with pytest.raises(FileNotFoundError, match="rollback"):
        current_extraction_model(production_model(con))


def test_promote_retires_old_and_keeps_exactly_one_production(con, kpe_env: Path) -> None:
    a, b, c = (_register(con, kpe_env, minute=m) for m in (1, 2, 3))
    assert production_model(con) is None
    assert [m.status for m in list_models(con)] == ["candidate"] * 3
    assert [m.version for m in list_models(con)] == [c, b, a]  # newest first

    promote(con, a)
    promote(con, b)
    assert _production_count(con) == 1
    assert production_model(con).version == b
    old = get_model(con, a)
    assert old.status == "retired" and old.retired_at is not None
    assert [e["action"] for e in old.decision["events"]] == ["registered", "promoted", "retired"]
    assert [m.version for m in list_models(con, status="retired")] == [a]

    with pytest.raises(RegistryError, match="already"):
        promote(con, b)
    with pytest.raises(RegistryError, match="no model version"):
        promote(con, "tagger-20990101-0000-000000")
    with pytest.raises(RegistryError, match="unknown status"):
        list_models(con, status="bogus")
    assert production_model(con).version == b and _production_count(con) == 1

    reject(con, c, reason="gate said no")
    with pytest.raises(RegistryError, match="rejected"):
        promote(con, c)
    promote(con, c, allow_rejected=True, reason="manual override")
    assert production_model(con).version == c and _production_count(con) == 1
    assert get_model(con, b).status == "retired"


def test_failed_promotion_changes_nothing(con, kpe_env: Path) -> None:
    a, b = (_register(con, kpe_env, minute=m) for m in (1, 2))
    promote(con, a)
    # a second production row written by hand: promote must refuse and roll its transaction back
    con.execute("UPDATE models SET status = 'production' WHERE version = ?", [b])
    with pytest.raises(RegistryError, match="production models"):
        promote(con, _register(con, kpe_env, minute=3))
    con.execute("UPDATE models SET status = 'candidate' WHERE version = ?", [b])
    assert production_model(con).version == a


def test_a_promotion_that_expected_another_production_model_changes_nothing(con, kpe_env: Path) -> None:
    """The gate compares a candidate with the production model it read; when another run promoted a model meanwhile,
    promoting on that comparison would skip a model nobody compared it with."""
    a, b, c = (_register(con, kpe_env, minute=m) for m in (1, 2, 3))
    promote(con, a)
    with pytest.raises(RegistryError, match="production changed"):
        promote(con, b, replaces=None)  # it was compared with the packaged encoder: none
    decided = record_gate_decision(con, c, action="promote", reason="beats production", decision={"mean": 0.4},
                                   replaces=None)
    assert decided.status == "candidate" and "expected none, found " + a in decided.decision["not_promoted"]
    assert production_model(con).version == a and _production_count(con) == 1
    assert record_gate_decision(con, b, action="promote", reason="beats production", decision={},
                                replaces=a).status == "production"
    assert get_model(con, a).status == "retired" and _production_count(con) == 1


def test_rollback_walks_back_through_history(con, kpe_env: Path) -> None:
    a, b, c = (_register(con, kpe_env, minute=m) for m in (1, 2, 3))
    with pytest.raises(RegistryError, match="no production"):
        rollback(con)
    for version in (a, b, c):
        promote(con, version)

    restored = rollback(con, reason="bad keyphrases")
    assert restored.version == b and restored.status == "production"
    bad = get_model(con, c)
    assert bad.status == "rejected"
    assert bad.decision["events"][-1]["action"] == "rolled_back"
    assert bad.decision["events"][-1]["reason"] == "bad keyphrases"
    assert current_extraction_model(production_model(con)).version == b

    assert rollback(con).version == a  # the rolled-back model is not restored again
    assert get_model(con, b).status == "rejected"
    assert _production_count(con) == 1

    assert rollback(con) is None  # nothing retired left: back to the packaged default
    assert _production_count(con) == 0
    assert current_extraction_model(production_model(con)).version == PACKAGED_VERSION


def test_decision_json_is_stored(con, kpe_env: Path) -> None:
    from kpe.evaluate.gate import decide

    version = _register(con, kpe_env)
    cand = {"inspec-dev": {"macro": {"present": {"f1@5": 0.30}}}}
    prod = {"inspec-dev": {"macro": {"present": {"f1@5": 0.20}}}}
    decision = decide(cand, prod, margin=0.005, tolerance=0.01)
    record_evaluation(
        con, version, metrics={"candidate": cand, "production": prod},
        decision={**decision.to_dict(), "production_version": PACKAGED_VERSION},
    )
    promote(con, version, reason=decision.reason)

    stored = get_model(con, version)
    assert stored.metrics["candidate"]["inspec-dev"]["macro"]["present"]["f1@5"] == pytest.approx(0.30)
    assert stored.decision["promote"] is True
    assert stored.decision["production_version"] == PACKAGED_VERSION
    assert stored.decision["per_set"]["inspec-dev"]["delta"] == pytest.approx(0.10)
    assert stored.decision["reason"] == decision.reason
    assert [e["action"] for e in stored.decision["events"]] == ["registered", "promoted"]
    assert stored.data == {"docs": 16} and stored.settings == {"max_steps": 5}
    with pytest.raises(RegistryError, match="already registered"):
        register_candidate(con, version=version, path="x", base_model="b", kind="tagger", method="tagger")


def test_the_gate_sets_a_candidates_method_and_never_a_production_models(con, kpe_env: Path) -> None:
    version = _register(con, kpe_env, method="tagger")
    assert set_method(con, version, "hybrid").method == "hybrid"
    promote(con, version)
    assert current_extraction_model(production_model(con)).method == "hybrid"
    with pytest.raises(RegistryError, match="only a candidate"):
        set_method(con, version, "tagger")
    assert get_model(con, version).method == "hybrid"
