"""What a model dir saved by ``kpe.train`` holds beyond Hugging Face's files: the SentenceTransformer layout.

Every kind's ``save`` calls :func:`write_sentence_transformer_files`, so any saved model dir (tagger, joint or
MLM) is also loadable by ``SentenceTransformer(model_dir)``: what ``keybert-ft`` and ``hybrid`` embed with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_sentence_transformer_files(model_dir: Path | str, hidden_size: int, tokenizer: Any = None,
                                     max_seq_length: int = 256) -> None:
    """Make a Hugging Face model dir loadable by ``SentenceTransformer(model_dir)``: the encoder with mean
    pooling and L2 normalisation (the all-MiniLM-L6-v2 recipe)."""
    model_dir = Path(model_dir)
    if tokenizer is not None and getattr(tokenizer, "model_max_length", None):
        max_seq_length = min(max_seq_length, int(tokenizer.model_max_length))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (model_dir / "modules.json").write_text(json.dumps(modules, indent=2))
    (model_dir / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False}, indent=2))
    (model_dir / "1_Pooling").mkdir(parents=True, exist_ok=True)
    (model_dir / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": hidden_size, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}, indent=2))
    (model_dir / "2_Normalize").mkdir(exist_ok=True)


def save_model_dir(model: Any, tokenizer: Any, model_dir: Path | str, *, sentence_transformer: bool = True,
                   **config_fields: Any) -> Path:
    """Save a trained model the way every kind does: ``config_fields`` (``kpe_kind``...) set on its config,
    ``save_pretrained`` of model and tokenizer, and (``sentence_transformer``) the files that let
    ``SentenceTransformer(model_dir)`` load its encoder (:func:`write_sentence_transformer_files`)."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    config = model.config if hasattr(model, "config") else model.encoder.config
    for key, value in config_fields.items():
        setattr(config, key, value)
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    if sentence_transformer:
        write_sentence_transformer_files(model_dir, config.hidden_size, tokenizer)
    return model_dir


def require_model_dir(model_path: str | Path | None, method: str) -> Path:
    """The model dir an extraction method needs, checked: a clear error when none is given or it has no model."""
    if not model_path:
        raise ValueError(f"method {method!r} needs a trained model dir (model_path); train one with `kpe train`")
    path = Path(model_path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a model dir (no config.json) for method {method!r}")
    return path
