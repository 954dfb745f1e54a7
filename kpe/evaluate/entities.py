"""Entity-level precision / recall / F1 with ``seqeval`` (strict IOB2), overall and per entity type.

An entity counts as found only when its type and both boundaries match the gold entity exactly (CoNLL-style
exact match; ``mode="strict", scheme=IOB2``). Predicted tags are repaired to valid IOB2 first
(``kpe.ner_data.repair_iob2``: a stray ``I-X`` starts an entity), which is how the decoder reads them too.

Usage::

    scores = entity_scores(gold_tags, predicted_tags)   # lists of tag lists, one per sentence
    scores["overall"]["f1"], scores["per_type"]["Chemical"]["f1"]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kpe.ner_data import repair_iob2


def entity_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, Any]:
    """``{"overall": {precision, recall, f1, support, predicted}, "per_type": {type: {...}}, "sentences": n}``;
    support = gold entities, predicted = predicted entities."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    y_true = [list(s) for s in gold]
    y_pred = [repair_iob2(s) for s in predicted]
    for i, (g, p) in enumerate(zip(y_true, y_pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
    report = classification_report(y_true, y_pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    n_pred = {kind: 0 for kind in report if kind not in ("micro avg", "macro avg", "weighted avg")}
    for tags in y_pred:
        for tag in tags:
            if tag.startswith("B-"):
                n_pred[tag[2:]] = n_pred.get(tag[2:], 0) + 1

    def row(values: dict[str, Any], predicted_count: int) -> dict[str, Any]:
        return {"precision": float(values["precision"]), "recall": float(values["recall"]),
                "f1": float(values["f1-score"]), "support": int(values["support"]), "predicted": predicted_count}

    per_type = {kind: row(report[kind], n_pred.get(kind, 0)) for kind in sorted(n_pred)}
    overall = row(report["micro avg"], sum(n_pred.values())) if "micro avg" in report else {
        "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "predicted": sum(n_pred.values())}
    return {"overall": overall, "per_type": per_type, "sentences": len(y_true)}


def flat_metrics(scores: dict[str, Any]) -> dict[str, float]:
    """The validation metrics of the ``ner`` kind from :func:`entity_scores`: ``entity_f1`` (its main metric),
    ``entity_precision``, ``entity_recall`` and ``f1_<type>`` per entity type."""
    out = {"entity_f1": scores["overall"]["f1"], "entity_precision": scores["overall"]["precision"],
           "entity_recall": scores["overall"]["recall"]}
    for kind, values in scores["per_type"].items():
        out[f"f1_{kind.lower()}"] = values["f1"]
    return out
