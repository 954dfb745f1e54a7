"""Model kinds: the one table of what can be trained, and what the training loop needs from each.

A model kind is one module, ``kpe/train/<kind>.py``, that holds its data (features from documents), its model
and loss, its decoder, how it is saved, and the extraction methods it offers (their factories). Its
``setup(config, base, tokenizer)`` hands the training loop a :class:`KindSetup`. The table below registers each
module with what the rest of the program needs *without importing it* (torch loads only when a kind is used):
the extraction methods it offers, as ``"module:factory"``, the first one being the kind's own, and the validation
metric that picks its best checkpoint.

Adding a kind (NER, a classifier, a contrastive encoder) is one module and one row here: ``kpe train --kind``,
``python -m kpe.train --kind``, the gate's method choice and ``kpe.extract.methods`` all read this table.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

KEYBERT_FT = "kpe.train.predict:build_keybert_ft"  # any model dir kpe.train saves is a SentenceTransformer dir


@dataclass(frozen=True, slots=True)
class ModelKind:
    """One row of the table: a kind's module and what it offers."""

    name: str
    module: str
    description: str
    methods: Mapping[str, str] = field(default_factory=dict)
    main_metric: str = "f1@5"
    #: What the nightly writes with a production model of this kind: ``keyphrases`` (the extraction kinds and
    #: the encoders they start from), or an annotation table, ``entities`` or ``doc_labels``. Each output has
    #: its own production model (``warehouse.models``).
    output: str = "keyphrases"
    #: Annotation kinds: ``"module:function"`` ``(model_dir) -> annotator`` (``kpe.annotate``).
    annotator: str = ""
    #: What the validation metrics are measured on, for the model card.
    validation: str = "internal validation slice of the training sources, present gold keyphrases, stemmed matching"
    #: Whether ``TrainConfig.train_data`` names this kind's training data (the annotation kinds bring their own).
    uses_train_data: bool = True

    @property
    def task_tag(self) -> str:
        """The Hugging Face task tag of the kind's models, for the model card."""
        return {"entities": "token-classification", "doc_labels": "text-classification"}.get(
            self.output, "fill-mask" if self.name == "mlm" else "keyphrase-extraction")

    def setup(self, config: Any, base: str, tokenizer: Any) -> KindSetup:
        """The kind module's ``setup``: data, model, loss, validation and saving for one run."""
        return importlib.import_module(self.module).setup(config, base, tokenizer)


@dataclass
class KindSetup:
    """What the training loop needs from one kind for one run.

    ``model(**batch).loss`` is the loss; ``evaluate(model)`` returns validation metrics (holding the kind's
    ``main_metric``); ``save(model, dir)`` writes a Hugging Face model dir; ``is_head(name)`` says which
    parameters are new heads (their own learning rate); ``finish(model_dir)``, when set, runs once on the saved
    best model and returns what it adds to the data summary under its name (``{"hybrid": ...}``).
    """

    model: Any
    train_features: list[dict[str, Any]]
    collate: Callable[[list[dict[str, Any]]], dict[str, Any]]
    evaluate: Callable[[Any], dict[str, float]]
    save: Callable[[Any, Path], None]
    is_head: Callable[[str], bool]
    data_summary: dict[str, Any] = field(default_factory=dict)
    finish: Callable[[Path], dict[str, Any]] | None = None


KINDS: dict[str, ModelKind] = {
    kind.name: kind
    for kind in (
        ModelKind("tagger", "kpe.train.tagger", "BIO token tagger",
                  {"tagger": "kpe.train.tagger:build_tagger", "hybrid": "kpe.train.tagger:build_hybrid",
                   "ranked": "kpe.train.span_ranker:build_ranked", "keybert-ft": KEYBERT_FT}),
        ModelKind("joint", "kpe.train.joint", "span ranker",
                  {"joint": "kpe.train.joint:build_joint", "keybert-ft": KEYBERT_FT}),
        ModelKind("embed", "kpe.train.embed", "contrastive bi-encoder for KeyBERT ranking",
                  {"keybert-ft": KEYBERT_FT, "keybert-ft-fast": "kpe.train.embed:build_keybert_ft_fast"}),
        ModelKind("mlm", "kpe.train.mlm", "domain-adaptive masked LM: an encoder to fine-tune from",
                  main_metric="neg_val_loss", validation="masked-LM loss on held-out lake text"),
        ModelKind("classify", "kpe.train.classify", "multi-label MeSH classifier (encoder + sigmoid layer)",
                  main_metric="micro_f1", output="doc_labels", annotator="kpe.annotate:mesh_annotator",
                  validation="MeSH validation split (by doc_id), micro F1 at the tuned threshold",
                  uses_train_data=False),
        ModelKind("ner", "kpe.train.ner", "chemical / disease NER (BC5CDR token classification)",
                  main_metric="entity_f1", output="entities", annotator="kpe.annotate:entity_annotator",
                  validation="BC5CDR devel, entity-level precision / recall / F1 (seqeval, strict IOB2)",
                  uses_train_data=False),
    )
}


def get_kind(name: str) -> ModelKind:
    """The kind called ``name``; unknown names are a ``ValueError`` listing the known ones."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {name!r}") from None


def extraction_kinds() -> dict[str, ModelKind]:
    """The kinds whose models extraction can run (those offering methods): what ``kpe train --kind`` takes."""
    return {name: kind for name, kind in KINDS.items() if kind.methods}


def annotation_kinds() -> dict[str, ModelKind]:
    """The kinds whose production model annotates documents (``ner`` -> ``entities``, ``classify`` ->
    ``doc_labels``), in nightly order."""
    return {name: kind for name, kind in KINDS.items() if kind.output != "keyphrases"}


def trainable_kinds() -> dict[str, ModelKind]:
    """What ``kpe train --kind`` takes: the extraction kinds and the annotation kinds (not ``mlm``)."""
    return {**extraction_kinds(), **annotation_kinds()}


def output_of(kind: str) -> str:
    """What a production model of ``kind`` feeds (``keyphrases``, ``entities``, ``doc_labels``); a kind this table
    does not know (an old registry row, ``encoder``) feeds keyphrases."""
    return KINDS[kind].output if kind in KINDS else "keyphrases"


def method_factories() -> dict[str, str]:
    """Every extraction method a kind offers -> its factory (``kpe.extract.methods`` adds these to its own)."""
    out: dict[str, str] = {}
    for kind in KINDS.values():
        for method, factory in kind.methods.items():
            if out.setdefault(method, factory) != factory:
                raise ValueError(f"method {method!r} has two factories: {out[method]} and {factory}")
    return out


def check_kind_and_method(kind: str, method: str | None) -> str:
    """The extraction method for a fine-tuning kind (default: the kind's own); bad pairs are a ``ValueError``."""
    kinds = extraction_kinds()
    if kind not in kinds:
        raise ValueError(f"kind must be one of {', '.join(kinds)}, got {kind!r}")
    offered = tuple(kinds[kind].methods)
    method = method or offered[0]
    if method not in offered:
        raise ValueError(f"method {method!r} cannot use a {kind} model; choose one of {', '.join(offered)}")
    return method


# --- helpers the kind modules share ----------------------------------------------------------------------


def keyphrase_metrics(predictions: Sequence[Sequence[str]], docs: Sequence[Any]) -> dict[str, float]:
    """Validation metrics by ``kpe.evaluate.metrics``: macro F1@5, F1@10, F1@M over present gold (strict P@k)."""
    from kpe.evaluate.metrics import evaluate_predictions

    result = evaluate_predictions(predictions, [d.keyphrases for d in docs], [d.text for d in docs],
                                  [d.doc_id for d in docs], ks=(5, 10))
    present = result["macro"]["present"]
    return {"f1@5": present["f1@5"], "f1@10": present["f1@10"], "f1@M": present["f1@M"],
            "mean_predicted": result["n_pred"] / max(result["n_docs"], 1),
            "docs_scored": result["n_docs_scored"]["present"]}


def add_alignment(summary: dict[str, Any], stats: Mapping[str, Any]) -> None:
    """Put the label alignment statistics of each source into the data summary (and the log)."""
    for name, s in stats.items():
        summary.setdefault(name, {})["alignment"] = s.as_dict()
        log.info("alignment %s: %d of %d gold phrases unaligned (%.1f%%), e.g. %s", name, s.n_unaligned,
                 s.n_phrases, 100 * s.share_unaligned, s.examples[:3])
