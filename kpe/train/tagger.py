"""Keyphrase tagger: an encoder with a token-classification head (O/B/I) and its span decoding.

Spans are decoded from word-level BIO probabilities (averaged over overlapping windows), scored by the mean or
the minimum ("bucket" pooling of BERT-KPE) of the probabilities of their tags, deduplicated by
``kpe.phrases.normalize_phrase`` keeping the best score, and ranked.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kpe.extract.methods import Keyphrase
from kpe.phrases import normalize_phrase
from kpe.train.alignment import B, I, LABELS, O, AlignmentStats, bio_labels, gold_spans, join_words, tokenize_windows
from kpe.train.data import KeyphraseDoc

log = logging.getLogger(__name__)


def load_tagger_model(base: str) -> Any:
    """``AutoModelForTokenClassification`` with 3 labels (O/B/I) on top of a local encoder or a saved tagger."""
    from transformers import AutoModelForTokenClassification

    return AutoModelForTokenClassification.from_pretrained(
        base,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )


def tagger_features(
    docs: Sequence[KeyphraseDoc], tokenizer: Any, max_length: int, stride: int
) -> tuple[list[dict[str, list[int]]], dict[str, AlignmentStats]]:
    """One training example per window (``input_ids``, ``attention_mask``, ``labels``) and alignment stats per dataset."""
    features = []
    stats: dict[str, AlignmentStats] = {}
    for doc in docs:
        spans, unaligned = gold_spans(doc.text, doc.keyphrases)
        stats.setdefault(doc.dataset, AlignmentStats()).add(len(doc.keyphrases), unaligned)
        for window in tokenize_windows(tokenizer, doc.text, max_length, stride):
            features.append({**window.model_inputs(), "labels": bio_labels(window, spans)})
    return features, stats


@dataclass(slots=True)
class SpanScore:
    """A decoded span: surface text, character offsets, score."""

    phrase: str
    start: int
    end: int
    score: float


def decode_spans(text: str, word_spans: dict[int, tuple[int, int]], word_probs: dict[int, torch.Tensor],
                 pooling: str = "mean") -> list[SpanScore]:
    """BIO spans from word probabilities (an ``I`` without a preceding span starts one), scored by ``pooling``."""
    spans: list[SpanScore] = []
    current: list[tuple[int, float]] = []  # (word, prob of its tag)

    def close() -> None:
        if current:
            probs = [p for _, p in current]
            score = min(probs) if pooling == "min" else sum(probs) / len(probs)
            start = word_spans[current[0][0]][0]
            end = word_spans[current[-1][0]][1]
            spans.append(SpanScore(text[start:end], start, end, float(score)))
            current.clear()

    for wid in sorted(word_probs, key=lambda w: word_spans[w][0]):
        probs = word_probs[wid]
        tag = int(torch.argmax(probs))
        if tag == B:
            close()
            current.append((wid, float(probs[B])))
        elif tag == I:
            current.append((wid, float(probs[I])))
        else:
            close()
    close()
    return spans


def rank_spans(spans: Sequence[SpanScore]) -> list[SpanScore]:
    """Deduplicate by ``normalize_phrase`` (best score wins), best first."""
    best: dict[str, SpanScore] = {}
    for span in spans:
        key = normalize_phrase(span.phrase)
        if not key:
            continue
        if key not in best or span.score > best[key].score:
            best[key] = span
    return sorted(best.values(), key=lambda s: (-s.score, s.start))


def soft_spans(text: str, word_spans: dict[int, tuple[int, int]], word_probs: dict[int, torch.Tensor],
               pooling: str = "mean", max_words: int = 5) -> list[SpanScore]:
    """Every n-gram of up to ``max_words`` words (``join_words`` groups, no punctuation inside) scored as a span:
    P(B) of its first word, P(I) of the others and 1 - P(I) of the word after it, pooled by mean or min.

    Ranks candidates the argmax decoding left out (used to fill a ranking and by the hybrid method).
    """
    groups = [g for g in join_words(text, {w: word_spans[w] for w in word_probs})]
    first = [word_probs[g.word_ids[0]] for g in groups]
    out = []
    for i, group in enumerate(groups):
        if not group.alnum:
            continue
        parts = [float(first[i][B])]
        for n in range(1, max_words + 1):
            j = i + n - 1
            if j >= len(groups) or not groups[j].alnum:
                break
            if n > 1:
                parts.append(float(first[j][I]))
            after = [1.0 - float(first[j + 1][I])] if j + 1 < len(groups) else []
            probs = parts + after
            score = min(probs) if pooling == "min" else sum(probs) / len(probs)
            out.append(SpanScore(text[group.start:groups[j].end], group.start, groups[j].end, score))
    return out


def rank_keyphrases(text: str, word_spans: dict[int, tuple[int, int]], word_probs: dict[int, torch.Tensor],
                    pooling: str = "mean", fill_to: int = 0) -> list[Keyphrase]:
    """The decoded spans, best first; when fewer than ``fill_to``, topped up with the best ``soft_spans``
    (their scores scaled below the last decoded span so that scores stay ordered)."""
    spans = rank_spans(decode_spans(text, word_spans, word_probs, pooling))
    ranked = [Keyphrase(s.phrase, s.score) for s in spans]
    if len(ranked) < fill_to:
        seen = {normalize_phrase(s.phrase) for s in spans}
        floor = min((s.score for s in spans), default=1.0)
        for extra in rank_spans(soft_spans(text, word_spans, word_probs, pooling)):
            if len(ranked) >= fill_to:
                break
            if normalize_phrase(extra.phrase) not in seen:
                ranked.append(Keyphrase(extra.phrase, extra.score * floor))
    return ranked


@torch.no_grad()
def word_probabilities(model: Any, tokenizer: Any, texts: Sequence[str], max_length: int, stride: int,
                       batch_size: int = 32, device: torch.device | str | None = None
                       ) -> list[tuple[dict[int, tuple[int, int]], dict[int, torch.Tensor]]]:
    """For each text: word character spans and word-level O/B/I probabilities averaged over its windows."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    windows = []  # (text index, window)
    for t, text in enumerate(texts):
        for window in tokenize_windows(tokenizer, text, max_length, stride):
            windows.append((t, window))
    sums: list[dict[int, torch.Tensor]] = [{} for _ in texts]
    counts: list[dict[int, int]] = [{} for _ in texts]
    spans: list[dict[int, tuple[int, int]]] = [{} for _ in texts]
    for i in range(0, len(windows), batch_size):
        chunk = windows[i:i + batch_size]
        batch = tokenizer.pad([w.model_inputs() for _, w in chunk], return_tensors="pt")
        batch = {k: v.to(device) for k, v in batch.items()}
        probs = torch.softmax(model(**batch).logits.float(), dim=-1).cpu()
        for row, (t, window) in enumerate(chunk):
            spans[t].update(window.word_spans)
            for pos, (wid, first) in enumerate(zip(window.word_ids, window.first)):
                if first:
                    sums[t][wid] = sums[t].get(wid, 0) + probs[row, pos]
                    counts[t][wid] = counts[t].get(wid, 0) + 1
    if was_training:
        model.train()
    return [(spans[t], {w: s / counts[t][w] for w, s in sums[t].items()}) for t in range(len(texts))]


def predict_keyphrases(model: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int = 256,
                       stride: int = 64, batch_size: int = 32, pooling: str = "mean", fill_to: int = 0,
                       device: torch.device | str | None = None) -> list[list[Keyphrase]]:
    """Ranked tagger spans for each text (topped up to ``fill_to`` phrases with soft spans)."""
    out = []
    for text, (word_spans, probs) in zip(texts, word_probabilities(model, tokenizer, texts, max_length, stride,
                                                                   batch_size, device)):
        out.append(rank_keyphrases(text, word_spans, probs, pooling, fill_to))
    return out


def save_tagger(model: Any, tokenizer: Any, model_dir: Path, extra_config: dict[str, Any] | None = None) -> None:
    """Hugging Face layout (``save_pretrained`` + tokenizer); SentenceTransformer loads the same dir (mean pooling)."""
    from kpe.train.predict import write_sentence_transformer_files

    model_dir = Path(model_dir)
    if extra_config:
        for key, value in extra_config.items():
            setattr(model.config, key, value)
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    write_sentence_transformer_files(model_dir, model.config.hidden_size, tokenizer)


__all__ = ["O", "B", "I", "load_tagger_model", "tagger_features", "decode_spans", "rank_spans", "soft_spans",
           "rank_keyphrases", "word_probabilities", "predict_keyphrases", "save_tagger"]
