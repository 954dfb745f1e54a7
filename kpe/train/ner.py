"""The ``ner`` model kind: chemical and disease mentions (BC5CDR), and the annotator the nightly runs with it.

* data: BC5CDR sentences (``kpe.ner_data``), one example per sentence; the IOB2 tag of each word goes on its first
  sub-token, ``-100`` on the other sub-tokens and the special tokens (:func:`ner_features`);
* model and loss: ``AutoModelForTokenClassification`` with the 5 labels of ``kpe.ner_data.NER_LABELS``,
  cross-entropy; validation: entity-level F1 on BC5CDR ``devel`` with seqeval, strict IOB2
  (``kpe.evaluate.entities``), the kind's ``main_metric`` ``entity_f1``;
* decoder: tags from the first sub-token of each word, repaired to valid IOB2 (a stray ``I-X`` starts an entity);
* annotator (:class:`EntityTagger`): a document's text (``kpe.extract.methods.document_text``: title and
  abstract as one passage, what the keyphrase side sees) cut into overlapping windows, word probabilities
  averaged over windows, entity mentions with character offsets that slice that text exactly, scored by the mean
  probability of their words' tags.

Usage::

    python -m kpe.train --kind ner --output-dir runs/ner --epochs 3     # or `kpe train --kind ner`
    tagger = load_entity_tagger("runs/ner/model")
    tagger.annotate(["Cisplatin-induced nephrotoxicity ..."])           # [[EntityMention(...), ...]]
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kpe.evaluate.entities import entity_scores, flat_metrics
from kpe.ner_data import NER_LABELS, TaggedSentence, entity_spans, load_bc5cdr, read_iob
from kpe.train.alignment import IGNORE_INDEX
from kpe.train.kinds import KindSetup
from kpe.train.model_files import require_model_dir, save_model_dir

log = logging.getLogger(__name__)

LABEL2ID = {label: i for i, label in enumerate(NER_LABELS)}
_LETTER = re.compile(r"[^\W\d_]")
#: Window length of the annotator: BC5CDR sentences are short, but whole abstracts read better (and faster) in
#: long windows; the encoder's position embeddings cover 512.
ANNOTATE_MAX_LENGTH = 256
#: Scoring reads whole sentences (no word is cut off and counted "O"), whatever length training used.
SCORE_MAX_LENGTH = 512
#: The devel entity F1 the first ``ner`` model must reach to be promoted when no ``ner`` model is in production
#: (a model that learned the task; a few smoke-test steps score near 0).
GATE_FLOOR = 0.5
DEFAULT_SOURCE = "bc5cdr"


@dataclass(frozen=True, slots=True)
class EntityMention:
    """One entity in a text: ``text[start:end] == surface``, its type (``Chemical``/``Disease``) and score."""

    start: int
    end: int
    surface: str
    type: str
    score: float


def load_ner_model(base: str, **config: Any) -> Any:
    """``AutoModelForTokenClassification`` with the BC5CDR labels on a local encoder or a saved ``ner`` model
    (``config``: other model config overrides, e.g. ``num_hidden_layers``)."""
    from transformers import AutoModelForTokenClassification

    return AutoModelForTokenClassification.from_pretrained(
        base, num_labels=len(NER_LABELS), id2label=dict(enumerate(NER_LABELS)), label2id=dict(LABEL2ID), **config)


# ----------------------------------------------------------------------------------------------- data

def ner_features(sentences: Sequence[TaggedSentence], tokenizer: Any, max_length: int
                 ) -> tuple[list[dict[str, list[int]]], dict[str, int]]:
    """One example per sentence: ``input_ids``, ``attention_mask`` and ``labels`` (the word's tag id on its first
    sub-token, ``-100`` elsewhere). Also counts words that lost their label (no sub-token, or cut off at
    ``max_length``)."""
    features = []
    lost = truncated = 0
    for sentence in sentences:
        enc = tokenizer(list(sentence.tokens), is_split_into_words=True, truncation=True, max_length=max_length)
        labels = first_subtoken_labels(enc.word_ids(), [LABEL2ID[t] for t in sentence.tags])
        n_labelled = sum(1 for x in labels if x != IGNORE_INDEX)
        if n_labelled < len(sentence.tokens):
            lost += len(sentence.tokens) - n_labelled
            truncated += 1
        features.append({**{k: list(v) for k, v in enc.items()}, "labels": labels})
    return features, {"sentences": len(sentences), "words_without_label": lost, "sentences_cut": truncated}


def first_subtoken_labels(word_ids: Sequence[int | None], word_labels: Sequence[int]) -> list[int]:
    """Token labels: ``word_labels[w]`` on the first sub-token of word ``w``, ``-100`` on the rest."""
    out, previous = [], None
    for wid in word_ids:
        out.append(word_labels[wid] if wid is not None and wid != previous else IGNORE_INDEX)
        previous = wid
    return out


def word_values(word_ids: Sequence[int | None], token_values: Sequence[Any], n_words: int, default: Any) -> list[Any]:
    """The value on each word's first sub-token (``default`` for words without one): the inverse of
    :func:`first_subtoken_labels`."""
    out = [default] * n_words
    previous = None
    for wid, value in zip(word_ids, token_values):
        if wid is not None and wid != previous:
            out[wid] = value
        previous = wid
    return out


@torch.no_grad()
def predict_tags(model: Any, tokenizer: Any, sentences: Sequence[Sequence[str]], *, max_length: int = 512,
                 batch_size: int = 64, device: torch.device | str | None = None) -> list[list[str]]:
    """IOB2 tags for pre-tokenized sentences (words without a sub-token, or cut off, get ``O``)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    id2label = {int(k): v for k, v in model.config.id2label.items()}
    out: list[list[str]] = [[] for _ in sentences]
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))  # similar lengths share a batch
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        enc = tokenizer([list(sentences[i]) for i in idx], is_split_into_words=True, truncation=True,
                        max_length=max_length, padding=True, return_tensors="pt")
        logits = model(**{k: v.to(device) for k, v in enc.items()}).logits
        best = logits.argmax(-1).cpu().tolist()
        for row, i in enumerate(idx):
            ids = word_values(enc.word_ids(row), best[row], len(sentences[i]), None)
            out[i] = [id2label[x] if x is not None else "O" for x in ids]
    if was_training:
        model.train()
    return out


def score_sentences(model: Any, tokenizer: Any, sentences: Sequence[TaggedSentence], *, max_length: int = 512,
                    batch_size: int = 64) -> dict[str, Any]:
    """seqeval's entity scores of ``model`` on gold sentences (``kpe.evaluate.entities.entity_scores``)."""
    predicted = predict_tags(model, tokenizer, [s.tokens for s in sentences], max_length=max_length,
                             batch_size=batch_size)
    return entity_scores([s.tags for s in sentences], predicted)


def _sources(config: Any) -> list[str]:
    """What a ``ner`` run trains on: ``bc5cdr`` (default, also when ``train_data`` is left at its keyphrase
    default) and/or IOB TSV paths."""
    if "train_data" not in config.model_fields_set:
        return [DEFAULT_SOURCE]
    bad = [s for s in config.train_data if s != DEFAULT_SOURCE and not str(s).endswith(".tsv")]
    if bad:
        raise ValueError(f"ner trains on {DEFAULT_SOURCE!r} or IOB .tsv files (token<TAB>tag), got {bad}")
    return list(config.train_data) or [DEFAULT_SOURCE]


def _load(source: str, split: str, shared_data_dir: Path | None, limit: int | None) -> list[TaggedSentence]:
    if source == DEFAULT_SOURCE:
        return load_bc5cdr(split, shared_data_dir, limit=limit)
    return read_iob(source, limit=limit)


# ----------------------------------------------------------------------------------------------- the kind

def setup(config: Any, base: str, tokenizer: Any) -> KindSetup:
    """A ``ner`` run: BC5CDR train sentences (``max_docs`` caps them), a fresh 5-label head on ``base``,
    validation entity F1 on BC5CDR devel (all of it, unless ``max_val_docs`` is given explicitly)."""
    from transformers import DataCollatorForTokenClassification

    sources = _sources(config)
    train = [s for source in sources for s in _load(source, "train", config.shared_data_dir, config.max_docs)]
    val_limit = config.max_val_docs if "max_val_docs" in config.model_fields_set else None
    val = load_bc5cdr("devel", config.shared_data_dir, limit=val_limit)
    features, stats = ner_features(train, tokenizer, config.max_length)
    counts = {kind: sum(1 for s in train for k, _, _ in entity_spans(s.tags) if k == kind)
              for kind in ("Chemical", "Disease")}
    summary = {"ner": {"sources": sources, "train": {**stats, "entities": counts},
                       "validation": {"set": "bc5cdr devel", "sentences": len(val)}}}
    log.info("ner: %d training sentences (%s entities), %d devel sentences", len(train), counts, len(val))

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        started = time.perf_counter()
        metrics = flat_metrics(score_sentences(m, tokenizer, val, max_length=SCORE_MAX_LENGTH,
                                               batch_size=config.eval_batch_size))
        metrics["eval_seconds"] = time.perf_counter() - started
        return metrics

    def save(m: torch.nn.Module, model_dir: Path) -> None:
        save_ner(m, tokenizer, model_dir, max_length=config.max_length)

    return KindSetup(load_ner_model(base), features, DataCollatorForTokenClassification(tokenizer), evaluate, save,
                     is_head=lambda name: name.startswith("classifier"), data_summary=summary)


def save_ner(model: Any, tokenizer: Any, model_dir: Path, max_length: int = 256) -> None:
    """Hugging Face layout (``save_pretrained`` + tokenizer), with ``kpe_kind`` and ``kpe_max_length`` in config."""
    save_model_dir(model, tokenizer, model_dir, sentence_transformer=False, kpe_kind="ner", kpe_max_length=max_length)


def load_model_dir(model_dir: Path | str, device: torch.device | str = "cpu") -> tuple[Any, Any]:
    """The tokenizer and model of a saved ``ner`` model dir (in eval mode)."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    path = require_model_dir(model_dir, "ner")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForTokenClassification.from_pretrained(path).to(device).eval()
    return tokenizer, model


def evaluate_model_dir(model_dir: Path | str, split: str = "test", *, limit: int | None = None,
                       batch_size: int = 64, shared_data_dir: Path | str | None = None) -> dict[str, Any]:
    """Entity scores of a saved ``ner`` model on a BC5CDR split (``test`` for reporting, ``devel`` for the gate),
    with ``seconds`` and ``sentences_per_second``."""
    tokenizer, model = load_model_dir(model_dir)
    sentences = load_bc5cdr(split, shared_data_dir, limit=limit)
    started = time.perf_counter()
    scores = score_sentences(model, tokenizer, sentences, max_length=SCORE_MAX_LENGTH, batch_size=batch_size)
    seconds = time.perf_counter() - started
    return {**scores, "dataset": "bc5cdr", "split": split, "seconds": seconds,
            "sentences_per_second": len(sentences) / seconds if seconds else 0.0}


def gate_evaluate(model_dir: Path | str, limit: int | None = None,
                  shared_data_dir: Path | str | None = None) -> dict[str, Any]:
    """The gate's measurement: entity scores on BC5CDR devel (never test), ``main`` = overall entity F1."""
    result = evaluate_model_dir(model_dir, "devel", limit=limit, shared_data_dir=shared_data_dir)
    return {**result, "main": result["overall"]["f1"], "main_metric": "entity_f1"}


# ----------------------------------------------------------------------------------------------- annotation

class EntityTagger:
    """Entity mentions in free text with a saved ``ner`` model (what the nightly writes to ``entities``).

    A text is cut into overlapping windows of the tokenizer's words and run as the keyphrase tagger runs them
    (``kpe.train.tagger.tag_texts``: canonical shapes, token-budget batches): each word's label probabilities (its
    first sub-token) are averaged over the windows that hold it whole, and a document's result does not depend on
    the other documents of its batch. Spans without a letter (a lone ``)`` or ``2`` cut out of a longer name) are
    dropped."""

    def __init__(self, model_dir: Path | str, *, batch_tokens: int | None = None,
                 max_length: int = ANNOTATE_MAX_LENGTH, stride: int = 64, device: torch.device | str = "cpu"):
        self.tokenizer, self.model = load_model_dir(model_dir, device)
        self.max_length = max_length
        self.stride = min(stride, self.max_length // 4)
        self.batch_tokens = batch_tokens
        self.device = torch.device(device)
        self.labels = [self.model.config.id2label[i] for i in range(len(self.model.config.id2label))]

    def annotate(self, texts: Sequence[str]) -> list[list[EntityMention]]:
        """The entity mentions of each text, in text order."""
        from kpe.train.tagger import tag_texts

        keep = [t for t, text in enumerate(texts) if text and text.strip()]
        tagged = tag_texts(self.model, self.tokenizer, [texts[t] for t in keep], self.max_length, self.stride,
                           batch_tokens=self.batch_tokens, device=self.device)
        out: list[list[EntityMention]] = [[] for _ in texts]
        for t, result in zip(keep, tagged):
            out[t] = self._mentions(texts[t], result.word_spans, result.word_probs)
        return out

    def _mentions(self, text: str, word_spans: dict[int, tuple[int, int]],
                  word_probs: dict[int, np.ndarray]) -> list[EntityMention]:
        words = sorted(word_probs)  # word ids follow the text
        if not words:
            return []
        probs = np.stack([word_probs[w] for w in words])
        best = probs.argmax(axis=1)
        chosen = probs[np.arange(len(words)), best]
        out = []
        for kind, first, end in entity_spans([self.labels[b] for b in best]):
            start, stop = word_spans[words[first]][0], word_spans[words[end - 1]][1]
            if not _LETTER.search(text, start, stop):  # ")" or "2" alone: a fragment of a name, not a mention
                continue
            out.append(EntityMention(start, stop, text[start:stop], kind, round(float(chosen[first:end].mean()), 6)))
        return out


def load_entity_tagger(model_dir: Path | str) -> EntityTagger:
    """The nightly's entity tagger (``kpe.annotate.entity_annotator``): on the configured device (CPU here)."""
    from kpe.train.predict import device_of

    return EntityTagger(model_dir, device=device_of(None))
