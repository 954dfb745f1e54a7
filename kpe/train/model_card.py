"""The model card (``README.md`` in a model dir): training data counts per source, precision, samples/s, validation
metrics, settings, time, hardware, versions, and (added after the gate) the gate's decision and numbers."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from kpe.evaluate.gate import interval_text

_LIBRARIES = ("torch", "transformers", "accelerate", "sentence-transformers", "datasets", "keybert", "kpe-pipeline")


def hardware() -> dict[str, Any]:
    """CPU model and core count, GPU name(s) when CUDA is there."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    info: dict[str, Any] = {"cpu": cpu, "cpu_cores": os.cpu_count(), "platform": platform.platform()}
    try:
        import torch

        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - hardware probing must never fail a run
        pass
    return info


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a model depends on."""
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def data_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Per training source: documents (train / validation / held-out PubMed dev), gold phrases and the phrases
    that could not be aligned to the text (of the training documents), from a run's data summary."""
    rows = []
    for name, s in data.items():
        if not isinstance(s, dict) or "docs" not in s or "train_docs" not in s:
            continue
        align = s.get("alignment") or {}
        rows.append({"source": name, "docs": s["docs"], "train_docs": s.get("train_docs"),
                     "val_docs": s.get("val_docs"), "held_out_dev": s.get("held_out_dev", 0),
                     "phrases": s.get("phrases"), "aligned_over": align.get("phrases"),
                     "unaligned": align.get("unaligned"), "share_unaligned": align.get("share_unaligned")})
    return rows


def write_model_card(model_dir: Path, *, kind: str, base: str, settings: dict[str, Any], data: dict[str, Any],
                     metrics: dict[str, Any], seconds: float, steps: int,
                     history: list[dict[str, Any]] | None = None, precision: str | None = None,
                     samples_per_second: float | None = None) -> Path:
    """Write ``README.md`` (human-readable, with a JSON block of the same facts) into ``model_dir``."""
    facts = {"kind": kind, "base_model": base, "precision": precision or settings.get("mixed_precision"),
             "samples_per_second": round(samples_per_second, 3) if samples_per_second is not None else None,
             "training_data": data_rows(data), "data": data, "settings": settings, "metrics": metrics,
             "training_seconds": round(seconds, 1), "steps": steps, "history": history or [],
             "hardware": hardware(), "versions": library_versions()}
    return _write(Path(model_dir), facts)


def read_model_card(model_dir: Path | str) -> dict[str, Any]:
    """The facts of a model card (its machine-readable JSON block); ``{}`` when there is none."""
    path = Path(model_dir) / "README.md"
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8")
    marker = "## Machine-readable"
    if marker not in text:
        return {}
    block = text.split(marker, 1)[1]
    start, end = block.find("```json"), block.rfind("```")
    if start < 0 or end <= start:
        return {}
    try:
        return json.loads(block[start + len("```json"):end])
    except json.JSONDecodeError:
        return {}


def add_gate_to_model_card(model_dir: Path | str, gate: dict[str, Any]) -> Path | None:
    """Add the gate's decision and numbers (``gate``: status, reason, per-set F1@5 of candidate and production,
    the method choice) to the card of a trained model; ``None`` when the model has no card to add to."""
    return add_to_model_card(model_dir, "gate", gate)


def add_to_model_card(model_dir: Path | str, key: str, value: Any) -> Path | None:
    """Set one fact of a model card (``gate``, ``data``...) and write the card again; ``None`` without a card."""
    facts = read_model_card(model_dir)
    if not facts:
        return None
    facts[key] = value
    return _write(Path(model_dir), facts)


def _write(model_dir: Path, facts: dict[str, Any]) -> Path:
    from kpe.train.kinds import KINDS

    kind, base, hw, steps = facts["kind"], facts["base_model"], facts["hardware"], facts["steps"]
    seconds = facts["training_seconds"]
    kind_row = KINDS.get(kind)
    settings = {k: v for k, v in facts["settings"].items()
                if k != "train_data" or kind_row is None or kind_row.uses_train_data}
    speed = facts.get("samples_per_second")
    lines = [
        "---",
        "library_name: transformers",
        f"tags: [{kind_row.task_tag if kind_row else 'keyphrase-extraction'}, kpe-pipeline, {kind}]",
        "---",
        f"# kpe {kind} model",
        "",
        f"Fine-tuned from `{base}` by `kpe.train` ({kind}). Trained {steps} optimizer steps in "
        f"{seconds / 60:.1f} min on {', '.join(hw.get('gpus', [])) or hw['cpu']} ({hw['cpu_cores']} CPU cores), "
        f"precision {facts.get('precision') or 'fp32'}"
        + (f", {speed:.2f} training samples/s." if speed else "."),
        "",
    ]
    gate = facts.get("gate")
    if gate:
        lines += ["## Gate decision", "", f"**{gate.get('status', '?')}** against "
                  f"`{gate.get('production_version', '?')}` (method `{gate.get('method', '?')}`): "
                  f"{gate.get('reason', '')}", "",
                  "| gate set | docs | candidate F1@5 | production F1@5 | delta | delta 95% CI |",
                  "|---|---|---|---|---|---|"]
        for name, row in (gate.get("per_set") or {}).items():
            lines.append(f"| {name} | {(gate.get('sets') or {}).get(name, '')} | {_fmt(row.get('candidate'))} | "
                         f"{_fmt(row.get('production'))} | {_fmt(row.get('delta'))} | "
                         f"{interval_text(row.get('ci95'))} |")
        lines.append(f"| mean | | {_fmt(gate.get('primary_candidate'))} | {_fmt(gate.get('primary_production'))} "
                     f"| {_fmt(gate.get('delta'))} | {interval_text(gate.get('delta_ci95'))} |")
        for method, score in (gate.get("method_scores") or {}).items():
            lines.append(f"- method `{method}`: mean F1@5 {_fmt(score)}")
        lines.append("")
    lines += [
        f"## Validation metrics ({kind_row.validation if kind_row else 'internal validation slice'})",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {_fmt(v)} |" for k, v in facts["metrics"].items()],
        "",
        "## Training data",
        "",
        "| source | docs | train | validation | held-out dev | gold phrases | unaligned (of train docs' phrases) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in facts.get("training_data", []):
        unaligned = (f"{r['unaligned']} of {r['aligned_over']} ({100 * r['share_unaligned']:.1f}%)"
                     if r.get("unaligned") is not None else "")
        lines.append(f"| {r['source']} | {r['docs']} | {r['train_docs']} | {r['val_docs']} | {r['held_out_dev']} | "
                     f"{r['phrases']} | {unaligned} |")
    lines.append("")
    for name, summary in facts["data"].items():
        lines.append(f"- **{name}**: {json.dumps(summary, default=str)}")
    lines += ["", "## Settings", "", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in settings.items()]
    if facts.get("history"):
        lines += ["", "## Per-evaluation history", "", "```json", json.dumps(facts["history"], indent=1,
                                                                            default=str), "```"]
    lines += ["", "## Library versions", "", *[f"- {k} {v}" for k, v in facts["versions"].items()],
              "", "## Machine-readable", "", "```json", json.dumps(facts, indent=1, default=str), "```", ""]
    path = model_dir / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
