"""The promotion gate: a pure decision rule over evaluation metrics (no I/O, no model loading).

A candidate model replaces production only when it is measurably better on average and not clearly worse
anywhere::

    >>> cand = {"inspec-dev": {"macro": {"present": {"f1@5": 0.31}}}, "semeval2017-dev": {"f1@5": 0.22}}
    >>> prod = {"inspec-dev": {"macro": {"present": {"f1@5": 0.28}}}, "semeval2017-dev": {"f1@5": 0.21}}
    >>> decide(cand, prod, margin=0.005, tolerance=0.01).promote
    True

Metrics per set are either what the evaluation harness returns (``{"macro": {"present": {"f1@5": x}}}``)
or a flat ``{"f1@5": x}``. The primary number of a side is the mean over the gate sets of its per-set primary
metric (each set counts once, whatever its size).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_PRIMARY = "f1@5"
DEFAULT_MARGIN = 0.005
DEFAULT_TOLERANCE = 0.01
_EPS = 1e-12  # float slack so that a delta of exactly `margin` counts as reaching it


@dataclass(frozen=True, slots=True)
class SetComparison:
    """Candidate against production on one gate set."""

    candidate: float
    production: float
    delta: float


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


def decide(
    candidate: Mapping[str, Mapping[str, Any]],
    production: Mapping[str, Mapping[str, Any]],
    margin: float = DEFAULT_MARGIN,
    tolerance: float = DEFAULT_TOLERANCE,
    primary: str = DEFAULT_PRIMARY,
) -> GateDecision:
    """Promote only if the candidate beats production by ``margin`` on the mean primary metric over the gate
    sets and loses no more than ``tolerance`` on any single set.

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
    for name in sorted(candidate):
        c = primary_metric(candidate[name], primary)
        p = primary_metric(production[name], primary)
        per_set[name] = SetComparison(candidate=c, production=p, delta=c - p)

    mean_c = sum(s.candidate for s in per_set.values()) / len(per_set)
    mean_p = sum(s.production for s in per_set.values()) / len(per_set)
    delta = mean_c - mean_p
    regressions = [name for name, s in per_set.items() if s.delta < -tolerance - _EPS]
    numbers = (
        f"mean {primary} {mean_c:.4f} vs production {mean_p:.4f} (delta {delta:+.4f}, "
        f"margin {margin:.4f}, tolerance {tolerance:.4f})"
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
    )
