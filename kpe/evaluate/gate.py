"""The promotion gate: which sets, how both sides are measured, the decision rule, and what it does.

The policy, top to bottom: the gate sets (:func:`gate_set_names`: Inspec dev, SemEval-2017 dev and, when the
warehouse holds documents, the PubMed silver dev split); both sides evaluated with the harness on the same sets
(:func:`evaluate_on_gate_sets`), the candidate with every extraction method its kind offers when no method is
named (:func:`choose_method`); the pure decision rule (:func:`decide`); what the decision does to the candidate
(:func:`gate_action`) and the record stored with it (:func:`decision_record`, :func:`gate_metrics`). The tasks
read the sets and write the registry (``warehouse.models.record_gate_decision``); nothing here does I/O.

A candidate model replaces production only when it is measurably better on average and not clearly worse
anywhere::

    >>> cand = {"inspec-dev": {"macro": {"present": {"f1@5": 0.31}}}, "semeval2017-dev": {"f1@5": 0.22}}
    >>> prod = {"inspec-dev": {"macro": {"present": {"f1@5": 0.28}}}, "semeval2017-dev": {"f1@5": 0.21}}
    >>> decide(cand, prod, margin=0.005, tolerance=0.01).promote
    True

Metrics per set are either what the evaluation harness returns (``{"macro": {"present": {"f1@5": x}}}``)
or a flat ``{"f1@5": x}``. The primary number of a side is the mean over the gate sets of its per-set primary
metric (each set counts once, whatever its size).

How sure a decision is: when both sides carry their per-document scores (``per_document``, what
:func:`evaluate_on_gate_sets` adds), the decision also holds a paired bootstrap 95 % interval of every set's
delta and of the mean delta (documents resampled within each set, the same draws for both sides). It tells the
reader whether the gate sets are large enough to see a difference of ``margin``, and the rule uses it once: a
set's loss beyond ``tolerance`` vetoes the candidate only when it is clear, its interval below 0 (on the 50
SemEval-2017 dev documents a loss of 0.01 is well inside the noise); such a loss within the noise is named in
the reason (``regressions_within_noise``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from statistics import fmean
from typing import Any

import numpy as np

from kpe.datasets import GoldDocument, silver_name

log = logging.getLogger(__name__)

DEFAULT_PRIMARY = "f1@5"
DEFAULT_MARGIN = 0.005
DEFAULT_TOLERANCE = 0.01
#: Documents per gate set; None: every held-out document (a sample of 200 per set misjudged a better model:
#: README, "The gate sees every held-out document").
DEFAULT_GATE_LIMIT: int | None = None
BOOTSTRAP_DRAWS = 2000
#: Dev sets every candidate is compared on; the PubMed silver dev split joins when the warehouse has documents.
GATE_BENCHMARKS: tuple[str, ...] = ("inspec_dev", "semeval2017_dev")
_EPS = 1e-12  # float slack so that a delta of exactly `margin` counts as reaching it


@dataclass(frozen=True, slots=True)
class SetComparison:
    """Candidate against production on one gate set."""

    candidate: float
    production: float
    delta: float
    ci95: tuple[float, float] | None = None  # paired bootstrap interval of the delta, when per-document scores exist


@dataclass(frozen=True, slots=True)
class GateDecision:
    """The gate's verdict with every number it was made from."""

    promote: bool
    reason: str
    primary: str
    primary_candidate: float
    primary_production: float
    delta: float
    margin: float
    tolerance: float
    per_set: dict[str, SetComparison] = field(default_factory=dict)
    regressions: list[str] = field(default_factory=list)
    delta_ci95: tuple[float, float] | None = None  # of the mean delta
    regressions_within_noise: list[str] = field(default_factory=list)  # beyond tolerance, interval holds 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (stored in ``models.decision``)."""
        return asdict(self)


def primary_metric(metrics: Mapping[str, Any], primary: str = DEFAULT_PRIMARY) -> float:
    """The primary number of one set's metrics: macro average over present gold, or a flat value."""
    if "macro" in metrics:
        try:
            value = metrics["macro"]["present"][primary]
        except (KeyError, TypeError):
            raise ValueError(f"metrics have no macro.present.{primary}: keys {sorted(metrics)}") from None
    elif primary in metrics:
        value = metrics[primary]
    else:
        raise ValueError(f"metrics have neither macro.present.{primary} nor {primary}: keys {sorted(metrics)}")
    return float(value)


def per_document_scores(predictions: Sequence[Mapping[str, Any]], docs: Sequence[GoldDocument],
                        primary: str = DEFAULT_PRIMARY) -> dict[str, Any]:
    """Each scored document's ``primary`` (``f1@k``, macro present gold) from a harness result's ``predictions``:
    ``{"metric", "doc_ids", "scores"}``, in document order; their mean is the set's macro number."""
    from kpe.evaluate.metrics import document_f1, match_document

    if not primary.startswith("f1@"):
        raise ValueError(f"per-document scores are F1 at a cutoff (f1@k), not {primary!r}")
    k = primary.removeprefix("f1@")
    doc_ids, scores = [], []
    for doc, predicted in zip(docs, predictions, strict=True):
        score = document_f1(match_document(doc.doc_id, predicted["keyphrases"], doc.keyphrases, doc.text), k)
        if score is not None:
            doc_ids.append(doc.doc_id)
            scores.append(score)
    return {"metric": primary, "doc_ids": doc_ids, "scores": scores}


def paired_deltas(candidate: Mapping[str, Any], production: Mapping[str, Any], primary: str = DEFAULT_PRIMARY
                  ) -> np.ndarray | None:
    """Per-document candidate - production on one set, or None when a side has no ``per_document`` scores of
    ``primary`` or the two were scored on different documents."""
    c, p = candidate.get("per_document"), production.get("per_document")
    if not c or not p or c["metric"] != primary or p["metric"] != primary or c["doc_ids"] != p["doc_ids"]:
        return None
    return np.asarray(c["scores"], dtype=float) - np.asarray(p["scores"], dtype=float)


def bootstrap_interval(deltas: Sequence[np.ndarray], draws: int = BOOTSTRAP_DRAWS, seed: int = 0
                       ) -> tuple[float, float]:
    """95 % percentile interval of the mean over sets of each set's mean per-document delta, documents resampled
    with replacement within each set (a paired bootstrap: both sides share the draw). Seeded: the same numbers
    give the same interval."""
    rng = np.random.default_rng(seed)
    means = np.zeros(draws)
    for d in deltas:
        means += d[rng.integers(0, len(d), size=(draws, len(d)))].mean(axis=1) if len(d) else 0.0
    low, high = np.quantile(means / len(deltas), [0.025, 0.975])
    return float(low), float(high)


def interval_text(interval: Sequence[float] | None) -> str:
    """``[low, high]`` of a delta as ``-0.0031 .. +0.0172``; ``-`` when there is none (older decisions)."""
    return f"{interval[0]:+.4f} .. {interval[1]:+.4f}" if interval else "-"


def decide(
    candidate: Mapping[str, Mapping[str, Any]],
    production: Mapping[str, Mapping[str, Any]],
    margin: float = DEFAULT_MARGIN,
    tolerance: float = DEFAULT_TOLERANCE,
    primary: str = DEFAULT_PRIMARY,
) -> GateDecision:
    """Promote only if the candidate beats production by ``margin`` on the mean primary metric over the gate
    sets and loses no more than ``tolerance`` on any single set (where the set's 95 % interval is known: unless
    the interval holds 0, a loss within the noise; see the module docstring).

    Both sides must be evaluated on the same sets; a mismatch or an empty set list is a ``ValueError``
    (comparing different sets is not a comparison). A NaN anywhere rejects the candidate.
    """
    if margin < 0 or tolerance < 0:
        raise ValueError(f"margin and tolerance must be >= 0, got margin={margin}, tolerance={tolerance}")
    if not candidate:
        raise ValueError("the gate needs at least one evaluation set")
    if set(candidate) != set(production):
        raise ValueError(
            f"candidate and production were evaluated on different sets: "
            f"{sorted(candidate)} vs {sorted(production)}"
        )

    per_set: dict[str, SetComparison] = {}
    deltas = {name: paired_deltas(candidate[name], production[name], primary) for name in sorted(candidate)}
    for name in sorted(candidate):
        c = primary_metric(candidate[name], primary)
        p = primary_metric(production[name], primary)
        ci = bootstrap_interval([deltas[name]]) if deltas[name] is not None else None
        per_set[name] = SetComparison(candidate=c, production=p, delta=c - p, ci95=ci)

    mean_c = sum(s.candidate for s in per_set.values()) / len(per_set)
    mean_p = sum(s.production for s in per_set.values()) / len(per_set)
    delta = mean_c - mean_p
    known = [d for d in deltas.values() if d is not None]
    delta_ci = bootstrap_interval(known) if len(known) == len(deltas) else None
    beyond = [name for name, s in per_set.items() if s.delta < -tolerance - _EPS]
    within_noise = [name for name in beyond if per_set[name].ci95 is not None and per_set[name].ci95[1] >= 0]
    regressions = [name for name in beyond if name not in within_noise]
    interval = f", 95% CI {interval_text(delta_ci)}" if delta_ci else ""
    noise = "".join(f"; {name} {per_set[name].delta:+.4f} is within the noise (95% CI "
                    f"{interval_text(per_set[name].ci95)}): not a regression" for name in within_noise)
    numbers = (
        f"mean {primary} {mean_c:.4f} vs production {mean_p:.4f} (delta {delta:+.4f}{interval}, "
        f"margin {margin:.4f}, tolerance {tolerance:.4f}){noise}"
    )

    if any(math.isnan(v) for s in per_set.values() for v in (s.candidate, s.production)):
        promote, reason = False, f"rejected: a metric is NaN; {numbers}"
    elif regressions:
        worst = ", ".join(f"{name} {per_set[name].delta:+.4f}" for name in regressions)
        promote, reason = False, f"rejected: regression beyond tolerance on {worst}; {numbers}"
    elif delta + _EPS < margin:
        promote, reason = False, f"rejected: improvement below margin; {numbers}"
    else:
        promote, reason = True, f"promoted: beats production by at least the margin; {numbers}"

    return GateDecision(
        promote=promote,
        reason=reason,
        primary=primary,
        primary_candidate=mean_c,
        primary_production=mean_p,
        delta=delta,
        margin=margin,
        tolerance=tolerance,
        per_set=per_set,
        regressions=regressions,
        delta_ci95=delta_ci,
        regressions_within_noise=within_noise,
    )


# --- the sets and the measurements -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GateSet:
    """One evaluation set of the gate."""

    name: str
    split: str
    docs: list[GoldDocument]


def gate_set_names(include_silver: bool) -> list[str]:
    """Inspec dev and SemEval-2017 dev, plus the PubMed silver dev split when the warehouse has documents."""
    return [*GATE_BENCHMARKS, *([silver_name("dev")] if include_silver else [])]


def gate_sets(loaded: Iterable[tuple[str, str, list[GoldDocument]]]) -> dict[str, GateSet]:
    """The gate sets from loaded ``(dataset, split, documents)``; a set with no document (silver dev on a small
    warehouse) is left out, so both sides are always compared on the same, non-empty sets."""
    loaded = list(loaded)
    sets = {dataset: GateSet(dataset, split, docs) for dataset, split, docs in loaded if docs}
    if not sets:
        raise ValueError(f"no gate set has documents: {[dataset for dataset, _, _ in loaded]}")
    return sets


def evaluate_on_gate_sets(model: Any, sets: Mapping[str, GateSet], config: Any = None,
                          progress: bool | None = False) -> dict[str, dict]:
    """Harness metrics (no predictions) of one model (a ``kpe.registry.ExtractionModel``) on every gate set, each
    with its ``per_document`` primary scores (:func:`per_document_scores`) for the decision's intervals;
    ``progress``: a bar per set (None: on a terminal only)."""
    from kpe.evaluate.harness import evaluate_method, metrics_only

    out: dict[str, dict] = {}
    for name, gate_set in sets.items():
        result = evaluate_method(model.method, gate_set.docs, model_path=model.model_path, config=config,
                                 dataset=name, split=gate_set.split, progress=progress)
        per_document = per_document_scores(result["predictions"], gate_set.docs)
        result = metrics_only(result)
        result["per_document"] = per_document
        result["model_version"] = model.version
        out[name] = result
    return out


def choose_method(kind: str, model: Any, sets: Mapping[str, GateSet], methods: Sequence[str] | None = None
                  ) -> tuple[str, dict[str, float], dict[str, dict[str, dict]]]:
    """Evaluate a candidate with every extraction method its kind offers (``kpe.train.kinds``); the best mean
    primary metric over the gate sets wins (a tie goes to the method the kind lists first). A method the model
    cannot run (``MethodUnavailable``: a tagger whose span ranker failed to fit has no ``ranked``) is left out,
    logged. Returns the method, every method's mean and every method's results."""
    from kpe.extract.methods import MethodUnavailable
    from kpe.train.kinds import get_kind

    results = {}
    for m in methods or get_kind(kind).methods:
        try:
            results[m] = evaluate_on_gate_sets(replace(model, method=m), sets)
        except MethodUnavailable as exc:
            log.warning("method %s left out of the choice for %s: %s", m, getattr(model, "version", model), exc)
    if not results:
        raise ValueError(f"no extraction method of kind {kind} could run {getattr(model, 'version', model)}")
    means = {m: fmean(primary_metric(r) for r in res.values()) for m, res in results.items()}
    return max(means, key=means.__getitem__), means, results


# --- what the decision does, and what is stored ------------------------------------------------------------


def gate_action(decision: GateDecision, auto_promote: bool) -> tuple[str, str]:
    """``(action, reason)`` for the registry (``warehouse.models.record_gate_decision``): ``promote`` when the
    gate says so and promotion is on, ``keep`` (a candidate) when it is off, else ``reject``."""
    if not decision.promote:
        return "reject", decision.reason
    if not auto_promote:
        return "keep", "gate passed; not promoted (auto_promote off)"
    return "promote", decision.reason


def decision_record(
    version: str, decision: GateDecision, candidate: Mapping[str, Mapping[str, Any]], production_model: Any, *,
    auto_promote: bool, flow_run_id: str | None = None, extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What is stored as the candidate's ``decision`` (and published): the decision with every number, both
    sides, the set sizes, and ``extra`` (``training``, ``method_choice``)."""
    return {
        **decision.to_dict(),
        "candidate_version": version,
        "production_version": production_model.version,
        "production_method": production_model.method,
        "production_model_path": production_model.model_path,
        "sets": {name: result["n_docs"] for name, result in candidate.items()},
        "auto_promote": auto_promote,
        "flow_run_id": flow_run_id,
        **(extra or {}),
    }


def _headline(result: Mapping[str, Any]) -> dict[str, Any]:  # what is stored: no per-document scores
    keys = ("n_docs", "n_docs_scored", "seconds", "load_seconds", "model_version", "method")
    return {**{k: result.get(k) for k in keys}, "macro": result["macro"], "micro": result["micro"]}


def gate_metrics(candidate: Mapping[str, Mapping[str, Any]], production: Mapping[str, Mapping[str, Any]]
                 ) -> dict[str, Any]:
    """The gate's numbers stored in the candidate's ``metrics`` (``{"gate": {"candidate", "production"}}``)."""
    return {"gate": {"candidate": {k: _headline(v) for k, v in candidate.items()},
                     "production": {k: _headline(v) for k, v in production.items()}}}
