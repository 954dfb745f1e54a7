"""What the extraction methods of every model kind share, and ``keybert-ft``.

Each kind's factories live in its module (``kpe.train.tagger``: ``tagger``, ``hybrid``; ``kpe.train.joint``:
``joint``), registered in ``kpe.train.kinds``. Every factory is ``(model_path, config) -> Extractor`` (``.name``,
``.extract(docs) -> list[list[Keyphrase]]``). ``config`` may be ``None``, a dict or any object; these options
are read when present:

* ``top_n`` (10): ranking length; the tagger tops its decoded spans up to ``top_n`` with soft spans
  (``fill=False`` keeps only the decoded spans), the joint model tops the spans its chunking head accepts up to it;
* ``device`` (``cuda`` when there is one, else ``cpu``); ``precision`` (``auto``: bf16 on a GPU or a CPU with native
  bf16, else fp32; or fp32 / bf16 / fp16 / int8, resolved as the engine resolves it) and ``batch_tokens`` (padded
  tokens a forward pass) for ``tagger`` and ``hybrid``, whose windows run like the engine's texts
  (``kpe.train.tagger.tag_texts``); ``batch_size`` (32 windows) for ``joint``;
* ``hybrid_weight``: the hybrid's weight of the tagger score (default: the value tuned at training time,
  stored in ``hybrid.json`` in the model dir, else 0.5); ``hybrid_ngrams`` (False): also rank the engine's
  stop-word-bounded n-grams;
* ``ranked_min_score``: past its first five keyphrases, ``ranked`` keeps those whose span-ranker probability
  reaches this (default: the value chosen when the ranker was fitted, in ``span_ranker.json``);
* ``keybert-ft`` takes the ``kpe.extract.config.ExtractionConfig`` fields (others are ignored).

A tagger / joint / MLM model dir is also a SentenceTransformer dir (``kpe.train.model_files``), which is what
``keybert-ft`` and ``hybrid`` embed with.
"""

from __future__ import annotations

from typing import Any

import torch

from kpe.extract.methods import Keyphrase
from kpe.train.model_files import require_model_dir

DEFAULT_TOP_N = 10


def option(config: Any, name: str, default: Any) -> Any:
    """``config[name]`` / ``config.name`` when set, else ``default``."""
    if config is None:
        return default
    value = config.get(name) if isinstance(config, dict) else getattr(config, name, None)
    return default if value is None else value


def device_of(config: Any) -> torch.device:
    """``device`` from the config (``auto``: cuda when available); applies ``threads`` when the config sets it."""
    threads = option(config, "threads", None)
    if threads:
        torch.set_num_threads(int(threads))
    device = option(config, "device", "auto")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def engine_options(config: Any) -> dict[str, Any]:
    """The ``ExtractionConfig`` fields found in ``config`` (a dict, an ``ExtractionConfig`` or None)."""
    from kpe.extract.config import ExtractionConfig

    if config is None:
        return {}
    data = config if isinstance(config, dict) else (config.model_dump() if hasattr(config, "model_dump") else {})
    return {k: v for k, v in data.items() if k in ExtractionConfig.model_fields}


class _Renamed:
    """An extractor under another method name (other attributes come from the wrapped one)."""

    def __init__(self, inner: Any, name: str):
        self.inner = inner
        self.name = name

    def extract(self, docs: list[str]) -> list[list[Keyphrase]]:
        return self.inner.extract(docs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)


def build_keybert_ft(model_path: str | None, config: Any = None) -> Any:
    """``keybert-ft``: the KeyBERT engine (``kpe.extract.engine``) embedding with a fine-tuned encoder.

    Any model dir saved by ``kpe.train`` (tagger, joint or mlm) is a SentenceTransformer dir with mean pooling.
    """
    from kpe.extract.engine import build_kpe

    path = require_model_dir(model_path, "keybert-ft")
    return _Renamed(build_kpe(str(path), engine_options(config) or None), "keybert-ft")
