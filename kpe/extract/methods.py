"""Extraction methods by name: one registry for the nightly engine, the evaluation harness and the gate.

Every method is built by a factory ``(model_path: str | None, config: ExtractionConfig) -> Extractor``
named here as ``"module:function"`` so that importing the registry stays cheap (torch loads on use). The
methods of fine-tuned models come from the model-kind table (``kpe.train.kinds``): each kind declares the
methods it offers.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol

from kpe.train.kinds import method_factories


@dataclass(frozen=True, slots=True)
class Keyphrase:
    """One ranked keyphrase of one document."""

    phrase: str
    score: float


class Extractor(Protocol):
    """Anything that turns documents into ranked keyphrases."""

    name: str

    def extract(self, docs: list[str]) -> list[list[Keyphrase]]:
        """Ranked keyphrases (best first) for each document, in input order."""
        ...


METHODS: dict[str, str] = {
    # KeyBERT-style ranking over the encoder (issue: nightly extraction / speed)
    "kpe": "kpe.extract.engine:build_kpe",
    # the same engine with the throughput setting (ExtractionConfig.fast)
    "kpe-fast": "kpe.extract.engine:build_kpe_fast",
    # plain keybert.KeyBERT, the reference baseline
    "keybert": "kpe.evaluate.baselines:build_keybert",
    # classic baselines
    "yake": "kpe.evaluate.baselines:build_yake",
    "tfidf": "kpe.evaluate.baselines:build_tfidf",
    "first-phrases": "kpe.evaluate.baselines:build_first_phrases",
    # fine-tuned models: tagger, hybrid, joint, keybert-ft (what each model kind offers)
    **method_factories(),
}


class MethodUnavailable(ValueError):
    """The model cannot run this method (a tagger without a span ranker has no ``ranked``)."""


def document_text(title: str | None, abstract: str | None) -> str:
    """The text a method sees for one document: title and abstract, joined as one passage."""
    title = (title or "").strip()
    abstract = (abstract or "").strip()
    if title and abstract:
        sep = " " if title[-1] in ".?!:" else ". "
        return f"{title}{sep}{abstract}"
    return title or abstract


def describe_extractor(extractor: Any) -> dict[str, Any]:
    """What an extractor from :func:`build_extractor` runs with (JSON-ready): its own ``describe()`` (the ``kpe``
    engine: method, model, the precision actually used, ...), else that of the engine it wraps, else its name.
    ``describe_extractor(x).get("precision")`` is the resolved precision, None for methods without an encoder."""
    for obj in (extractor, getattr(extractor, "engine", None)):
        describe = getattr(obj, "describe", None)
        if callable(describe):
            return {**describe(), "method": getattr(extractor, "name", None) or describe().get("method")}
    return {"method": getattr(extractor, "name", type(extractor).__name__), "precision": None}


def build_extractor(method: str, model_path: str | None = None, config: Any = None) -> Extractor:
    """Build a named extraction method (see ``METHODS``); unknown names get a clear error."""
    try:
        target = METHODS[method]
    except KeyError:
        raise ValueError(f"unknown extraction method {method!r}; known: {', '.join(sorted(METHODS))}") from None
    module_name, _, func_name = target.partition(":")
    factory = getattr(importlib.import_module(module_name), func_name)
    return factory(model_path, config)
