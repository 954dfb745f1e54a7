"""One production model per output: keyphrases, entities (ner), doc_labels (classify) promote and roll back
independently; the annotation gate's decision rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.registry import register_model

from warehouse.db import connect
from warehouse.models import RegistryError, list_models, production_model, promote, rollback


@pytest.fixture()
def con(kpe_env: Path):
    from kpe.settings import get_settings

    connection = connect(get_settings().warehouse_path)
    yield connection
    connection.close()


def _production(con) -> set[str]:  # noqa: ANN001
    return {r.version for r in list_models(con, status="production")}


def test_each_output_has_its_own_production_model(con) -> None:  # noqa: ANN001
    tagger = register_model(con, "tagger", 1)
    ner_a, ner_b = register_model(con, "ner", 2), register_model(con, "ner", 3)
    labels = register_model(con, "classify", 4)
    promote(con, tagger)
    promote(con, ner_a)
    promote(con, labels)
    assert _production(con) == {tagger, ner_a, labels}
    assert production_model(con).version == tagger  # what keyphrase extraction reads, as before
    assert production_model(con, "entities").version == ner_a
    assert production_model(con, "doc_labels").version == labels

    promote(con, ner_b)  # retires only the previous ner model
    assert _production(con) == {tagger, ner_b, labels}
    assert {r.version: r.status for r in list_models(con)}[ner_a] == "retired"

    restored = rollback(con, output="entities")
    assert restored.version == ner_a and _production(con) == {tagger, ner_a, labels}
    assert rollback(con, output="doc_labels") is None and production_model(con, "doc_labels") is None
    with pytest.raises(RegistryError, match="no production model of doc_labels"):
        rollback(con, output="doc_labels")
    assert rollback(con) is None  # the keyphrase model: back to the packaged default; ner untouched
    assert _production(con) == {ner_a}


def test_annotation_gate_rule() -> None:
    from kpe.annotate import annotation_decision

    first = {"main": 0.71, "main_metric": "entity_f1"}
    assert annotation_decision("ner", first, None, margin=0.005, floor=0.5)[0] == "promote"
    assert annotation_decision("ner", {**first, "main": 0.2}, None, margin=0.005, floor=0.5)[0] == "reject"
    production = {"main": 0.70, "model_version": "ner-x"}
    assert annotation_decision("ner", first, production, margin=0.005, floor=0.5)[0] == "promote"
    action, reason = annotation_decision("ner", {**first, "main": 0.702}, production, margin=0.005, floor=0.5)
    assert action == "reject" and "ner-x" in reason
