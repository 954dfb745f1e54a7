"""The model registry in the ``models`` table: every SQL statement about model versions lives here.

Statuses and how a model moves between them::

    candidate --gate/promote--> production --promote(other)--> retired --rollback--> production
        \\--gate rejects--> rejected         \\--rollback--> rejected

Exactly one model (or none) is ``production`` per output at any time: one for keyphrases (the extraction kinds
and encoders), one for ``entities`` (kind ``ner``), one for ``doc_labels`` (kind ``classify``): see ``output`` in
``kpe.train.kinds``. Promoting a ``ner`` model retires only the previous ``ner`` model. Every change of status
runs in one transaction.
``rollback`` marks the current production model ``rejected`` (not ``retired``) so that a second rollback
walks further back in history instead of bouncing between the same two models; with no retired model left
it leaves no production model, which means the packaged default encoder (see ``kpe.registry``).

Every status change is appended to ``decision["events"]`` (action, status, time, reason), so the gate's
numbers and everything a person did afterwards stay on the model's row. What the gate decides about a candidate
(its method, numbers, decision and new status) is one call, :func:`record_gate_decision`, one transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import duckdb

from kpe.train.kinds import KINDS, output_of
from warehouse.db import transaction, utcnow

STATUSES = ("candidate", "production", "rejected", "retired")
ANY = object()
"""Default of ``promote(..., replaces=)``: promote whatever the current production model is."""

_COLUMNS = (
    "version, path, base_model, kind, method, data, settings, metrics, decision, status, "
    "created_at, promoted_at, retired_at"
)


class RegistryError(ValueError):
    """A registry operation that cannot be done (unknown version, wrong status, nothing to roll back)."""


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """One row of ``models``; JSON columns decoded to dicts."""

    version: str
    path: str
    base_model: str
    kind: str
    method: str
    data: dict[str, Any] | None
    settings: dict[str, Any] | None
    metrics: dict[str, Any] | None
    decision: dict[str, Any] | None
    status: str
    created_at: dt.datetime
    promoted_at: dt.datetime | None
    retired_at: dt.datetime | None


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str, sort_keys=True)


def _loads(value: Any) -> Any:
    if value is None or isinstance(value, dict | list):
        return value
    return json.loads(value)


def _record(row: tuple) -> ModelRecord:
    (
        version, path, base_model, kind, method, data, settings, metrics, decision, status, created, promoted, retired,
    ) = row
    return ModelRecord(
        version=version,
        path=path,
        base_model=base_model,
        kind=kind,
        method=method,
        data=_loads(data),
        settings=_loads(settings),
        metrics=_loads(metrics),
        decision=_loads(decision),
        status=status,
        created_at=created,
        promoted_at=promoted,
        retired_at=retired,
    )


def _event(action: str, status: str, at: dt.datetime, reason: str | None) -> dict[str, Any]:
    return {"action": action, "status": status, "at": at.isoformat(timespec="seconds"), "reason": reason or ""}


def _with_event(decision: dict[str, Any] | None, event: dict[str, Any]) -> dict[str, Any]:
    merged = dict(decision or {})
    merged["events"] = [*merged.get("events", []), event]
    return merged


def get_model(con: duckdb.DuckDBPyConnection, version: str) -> ModelRecord | None:
    """The registry row of one version, or ``None``."""
    row = con.execute(f"SELECT {_COLUMNS} FROM models WHERE version = ?", [version]).fetchone()
    return _record(row) if row else None


def _require(con: duckdb.DuckDBPyConnection, version: str) -> ModelRecord:
    record = get_model(con, version)
    if record is None:
        raise RegistryError(f"no model version {version!r} in the registry (see `kpe models list`)")
    return record


def list_models(con: duckdb.DuckDBPyConnection, status: str | None = None) -> list[ModelRecord]:
    """All registered models, newest first (optionally only one status)."""
    if status is not None and status not in STATUSES:
        raise RegistryError(f"unknown status {status!r}; known: {', '.join(STATUSES)}")
    sql = f"SELECT {_COLUMNS} FROM models"
    params: list[Any] = []
    if status is not None:
        sql += " WHERE status = ?"
        params.append(status)
    sql += " ORDER BY created_at DESC, version DESC"
    return [_record(row) for row in con.execute(sql, params).fetchall()]


def _output_filter(output: str) -> tuple[str, list[str]]:
    """SQL condition on ``kind`` selecting the models of one output, and its parameters."""
    if output == "keyphrases":  # every kind that feeds no annotation table (also kinds this table forgot)
        others = sorted(k for k, v in KINDS.items() if v.output != "keyphrases")
        return (f"kind NOT IN ({', '.join('?' * len(others))})", others) if others else ("TRUE", [])
    kinds = sorted(k for k, v in KINDS.items() if v.output == output)
    if not kinds:
        raise RegistryError(f"no model kind writes {output!r}")
    return f"kind IN ({', '.join('?' * len(kinds))})", kinds


def production_model(con: duckdb.DuckDBPyConnection, output: str = "keyphrases") -> ModelRecord | None:
    """The production model of one output: by default the model nightly extraction uses; ``"entities"`` /
    ``"doc_labels"`` for the annotation kinds. ``None`` when none has been promoted."""
    where, params = _output_filter(output)
    rows = con.execute(f"SELECT {_COLUMNS} FROM models WHERE status = 'production' AND {where}", params).fetchall()
    if len(rows) > 1:  # cannot happen through this module; say so loudly if someone edited the table by hand
        raise RegistryError(f"{len(rows)} production models: {', '.join(r[0] for r in rows)}")
    return _record(rows[0]) if rows else None


def register_candidate(
    con: duckdb.DuckDBPyConnection,
    *,
    version: str,
    path: str,
    base_model: str,
    kind: str,
    method: str,
    data: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> ModelRecord:
    """Add a freshly trained model as a ``candidate``; a version already registered is an error."""
    with transaction(con):
        if get_model(con, version) is not None:
            raise RegistryError(f"model version {version!r} is already registered")
        now = utcnow()
        con.execute(
            f"INSERT INTO models ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'candidate', ?, NULL, NULL)",
            [
                version, path, base_model, kind, method,
                _dumps(data), _dumps(settings), _dumps(metrics),
                _dumps({"events": [_event("registered", "candidate", now, None)]}),
                now,
            ],
        )
    return _require(con, version)


def record_evaluation(
    con: duckdb.DuckDBPyConnection,
    version: str,
    *,
    metrics: dict[str, Any] | None = None,
    decision: dict[str, Any] | None = None,
) -> ModelRecord:
    """Store gate metrics and/or the gate decision on a model (keys of ``decision`` are merged, events kept)."""
    with transaction(con):
        _record_evaluation(con, version, metrics, decision)
    return _require(con, version)


def _record_evaluation(con: duckdb.DuckDBPyConnection, version: str, metrics: dict[str, Any] | None,
                       decision: dict[str, Any] | None) -> None:
    record = _require(con, version)
    merged = dict(record.decision or {})
    for key, value in (decision or {}).items():
        if key != "events":
            merged[key] = value
    con.execute(
        "UPDATE models SET metrics = ?, decision = ? WHERE version = ?",
        [_dumps(metrics if metrics is not None else record.metrics), _dumps(merged), version],
    )


def set_method(con: duckdb.DuckDBPyConnection, version: str, method: str) -> ModelRecord:
    """Record the extraction method the gate chose for a ``candidate`` (the method production would run)."""
    with transaction(con):
        _set_method(con, version, method)
    return _require(con, version)


def _set_method(con: duckdb.DuckDBPyConnection, version: str, method: str) -> None:
    record = _require(con, version)
    if record.status != "candidate":
        raise RegistryError(f"{version} is {record.status}: only a candidate's method can change")
    con.execute("UPDATE models SET method = ? WHERE version = ?", [method, version])


def set_status(con: duckdb.DuckDBPyConnection, version: str, status: str, *, reason: str = "") -> ModelRecord:
    """Mark a model ``candidate``, ``rejected`` or ``retired``; making one ``production`` goes through ``promote``.

    Taking the production model out this way leaves no production model (nightly uses the packaged default).
    """
    if status not in STATUSES:
        raise RegistryError(f"unknown status {status!r}; known: {', '.join(STATUSES)}")
    if status == "production":
        raise RegistryError("use promote() to make a model production (it retires the old one)")
    with transaction(con):
        _set_status(con, version, status, reason)
    return _require(con, version)


def _set_status(con: duckdb.DuckDBPyConnection, version: str, status: str, reason: str) -> None:
    record = _require(con, version)
    now = utcnow()
    retired_at = now if status == "retired" and record.status == "production" else record.retired_at
    con.execute(
        "UPDATE models SET status = ?, retired_at = ?, decision = ? WHERE version = ?",
        [status, retired_at, _dumps(_with_event(record.decision, _event("status", status, now, reason))), version],
    )


def promote(
    con: duckdb.DuckDBPyConnection,
    version: str,
    *,
    reason: str = "",
    allow_rejected: bool = False,
    action: str = "promoted",
    replaces: str | None | object = ANY,
) -> ModelRecord:
    """Make ``version`` the production model; the previous production model becomes ``retired``.

    One transaction: either both changes happen or neither. Promoting a ``rejected`` model needs
    ``allow_rejected=True`` (a person overriding the gate); promoting the production model again is an error.
    ``replaces`` (a version, or ``None`` for "no production model") makes the promotion conditional: when
    production changed meanwhile (the gate compared against another model), nothing changes and
    ``RegistryError`` says so.
    """
    with transaction(con):
        _promote(con, version, reason=reason, allow_rejected=allow_rejected, action=action, replaces=replaces)
    return _require(con, version)


def _production_changed(version: str, old: ModelRecord | None, replaces: str | None | object) -> str | None:
    """Why ``version`` may not replace the production model ``old`` (it is no longer ``replaces``), or ``None``."""
    if replaces is ANY or (old.version if old else None) == replaces:
        return None
    return (f"production changed while {version} was evaluated: expected {replaces or 'none'}, "
            f"found {old.version if old else 'none'}; not promoting")


def _promote(con: duckdb.DuckDBPyConnection, version: str, *, reason: str, allow_rejected: bool, action: str,
             replaces: str | None | object) -> None:
    record = _require(con, version)
    if record.status == "production":
        raise RegistryError(f"{version} is already the production model")
    if record.status == "rejected" and not allow_rejected:
        raise RegistryError(f"{version} was rejected; promote it anyway with force (allow_rejected=True)")
    old = production_model(con, output_of(record.kind))
    changed = _production_changed(version, old, replaces)
    if changed:
        raise RegistryError(changed)
    now = utcnow()
    if old is not None:
        con.execute(
            "UPDATE models SET status = 'retired', retired_at = ?, decision = ? WHERE version = ?",
            [
                now,
                _dumps(_with_event(old.decision, _event("retired", "retired", now, f"replaced by {version}"))),
                old.version,
            ],
        )
    con.execute(
        "UPDATE models SET status = 'production', promoted_at = ?, retired_at = NULL, decision = ? WHERE version = ?",
        [now, _dumps(_with_event(record.decision, _event(action, "production", now, reason))), version],
    )
    _check_one_production(con)


GATE_ACTIONS = ("promote", "reject", "keep")


def record_gate_decision(
    con: duckdb.DuckDBPyConnection,
    version: str,
    *,
    action: str,
    reason: str,
    decision: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    method: str | None = None,
    replaces: str | None | object = ANY,
) -> ModelRecord:
    """Everything the gate decided about a candidate, in one transaction: its extraction ``method`` (when given),
    ``metrics`` (merged into the row's), the ``decision`` (keys merged, events kept), and its new status.

    ``action`` is ``"promote"`` (conditional on ``replaces``, see :func:`promote`: when production changed
    meanwhile the candidate stays a candidate and ``decision["not_promoted"]`` says why), ``"reject"`` or
    ``"keep"`` (stays a candidate; ``reason`` recorded). A model that is no longer a candidate (a retried
    step) is left as it is. Returns the row afterwards.
    """
    if action not in GATE_ACTIONS:
        raise RegistryError(f"unknown gate action {action!r}; known: {', '.join(GATE_ACTIONS)}")
    with transaction(con):
        record = _require(con, version)
        if record.status == "candidate":
            if method is not None and method != record.method:
                _set_method(con, version, method)
            changed = (_production_changed(version, production_model(con, output_of(record.kind)), replaces)
                       if action == "promote" else None)
            if changed:
                decision = {**decision, "not_promoted": changed}
                action, reason = "keep", changed
            merged_metrics = {**(record.metrics or {}), **metrics} if metrics is not None else None
            _record_evaluation(con, version, merged_metrics, decision)
            if action == "promote":
                _promote(con, version, reason=reason, allow_rejected=False, action="promoted_by_gate", replaces=ANY)
            else:
                _set_status(con, version, "rejected" if action == "reject" else "candidate", reason)
    return _require(con, version)


def reject(con: duckdb.DuckDBPyConnection, version: str, *, reason: str = "") -> ModelRecord:
    """Mark a candidate ``rejected`` (the gate said no)."""
    record = _require(con, version)
    if record.status == "production":
        raise RegistryError(f"{version} is the production model; use rollback() to take it out")
    return set_status(con, version, "rejected", reason=reason)


def rollback(con: duckdb.DuckDBPyConnection, *, reason: str = "", output: str = "keyphrases") -> ModelRecord | None:
    """Take the production model of ``output`` out (-> ``rejected``) and re-promote the most recently retired one
    of the same output.

    Returns the new production model, or ``None`` when no retired model was left (nightly then uses the
    packaged default encoder). With no production model there is nothing to roll back: ``RegistryError``.
    """
    with transaction(con):
        current = production_model(con, output)
        if current is None:
            raise RegistryError("no production model to roll back" if output == "keyphrases"
                                else f"no production model of {output} to roll back")
        where, params = _output_filter(output)
        previous_row = con.execute(
            f"SELECT {_COLUMNS} FROM models WHERE status = 'retired' AND promoted_at IS NOT NULL AND {where} "
            "ORDER BY retired_at DESC NULLS LAST, promoted_at DESC LIMIT 1", params
        ).fetchone()
        now = utcnow()
        why = reason or "rollback"
        con.execute(
            "UPDATE models SET status = 'rejected', retired_at = ?, decision = ? WHERE version = ?",
            [now, _dumps(_with_event(current.decision, _event("rolled_back", "rejected", now, why))), current.version],
        )
        previous = None
        if previous_row is not None:
            previous = _record(previous_row)
            con.execute(
                "UPDATE models SET status = 'production', promoted_at = ?, retired_at = NULL, decision = ? "
                "WHERE version = ?",
                [
                    now,
                    _dumps(_with_event(
                        previous.decision, _event("restored", "production", now, f"rollback of {current.version}")
                    )),
                    previous.version,
                ],
            )
        _check_one_production(con)
    return _require(con, previous.version) if previous is not None else None


def _check_one_production(con: duckdb.DuckDBPyConnection) -> None:
    """Raise (inside the caller's transaction, so it rolls back) if one output has more than one production model."""
    per_output: dict[str, int] = {}
    for (kind,) in con.execute("SELECT kind FROM models WHERE status = 'production'").fetchall():
        per_output[output_of(kind)] = per_output.get(output_of(kind), 0) + 1
    for output, count in per_output.items():
        if count > 1:
            raise RegistryError(f"{count} production models of {output} after the change; nothing was changed")
