"""The model card (``README.md`` in a model dir): data, settings, validation metrics, time, hardware, versions."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

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


def write_model_card(model_dir: Path, *, kind: str, base: str, settings: dict[str, Any], data: dict[str, Any],
                     metrics: dict[str, Any], seconds: float, steps: int,
                     history: list[dict[str, Any]] | None = None) -> Path:
    """Write ``README.md`` (human-readable, with a JSON block of the same facts) into ``model_dir``."""
    model_dir = Path(model_dir)
    hw = hardware()
    versions = library_versions()
    facts = {"kind": kind, "base_model": base, "data": data, "settings": settings, "metrics": metrics,
             "training_seconds": round(seconds, 1), "steps": steps, "hardware": hw, "versions": versions}
    lines = [
        "---",
        "library_name: transformers",
        "tags: [keyphrase-extraction, kpe-pipeline, " + kind + "]",
        "---",
        f"# kpe {kind} model",
        "",
        f"Fine-tuned from `{base}` by `kpe.train` ({kind}). Trained {steps} optimizer steps in "
        f"{seconds / 60:.1f} min on {', '.join(hw.get('gpus', [])) or hw['cpu']} ({hw['cpu_cores']} CPU cores).",
        "",
        "## Validation metrics (internal validation slice, present gold, stemmed matching)",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {_fmt(v)} |" for k, v in metrics.items()],
        "",
        "## Data",
        "",
    ]
    for name, summary in data.items():
        lines.append(f"- **{name}**: {json.dumps(summary, default=str)}")
    lines += ["", "## Settings", "", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in settings.items()]
    if history:
        lines += ["", "## Per-evaluation history", "", "```json", json.dumps(history, indent=1, default=str), "```"]
    lines += ["", "## Library versions", "", *[f"- {k} {v}" for k, v in versions.items()],
              "", "## Machine-readable", "", "```json", json.dumps(facts, indent=1, default=str), "```", ""]
    path = model_dir / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
