"""The ``tagger`` model kind: an encoder with a token-classification head (O/B/I), its spans, its methods.

* data: one example per token window, BIO labels on first sub-tokens (``kpe.train.alignment``);
* model and loss: ``AutoModelForTokenClassification`` with 3 labels, cross-entropy;
* decoder: spans from word-level BIO probabilities (averaged over overlapping windows), scored by the mean or
  the minimum ("bucket" pooling of BERT-KPE) of the probabilities of their tags, deduplicated by
  ``kpe.phrases.normalize_phrase`` keeping the best score, and ranked;
* extraction methods: ``tagger`` (the decoded spans) and ``hybrid`` (tagger spans re-ranked with the cosine of
  the fine-tuned encoder, its weight tuned after training on the validation slice), plus the shared
  ``keybert-ft`` (``kpe.train.predict``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kpe.datasets import GoldDocument
from kpe.extract.methods import Keyphrase
from kpe.phrases import normalize_phrase
from kpe.train.alignment import LABELS, AlignmentStats, B, I, bio_labels, gold_spans, join_words, tokenize_windows
from kpe.train.kinds import KindSetup, keyphrase_metrics
from kpe.train.model_files import require_model_dir, save_model_dir
from kpe.train.pooling import mean_pool
from kpe.train.predict import DEFAULT_TOP_N, device_of, engine_options, option

log = logging.getLogger(__name__)

HYBRID_FILE = "hybrid.json"
DEFAULT_HYBRID_WEIGHT = 0.5
#: Soft spans the hybrid adds to the decoded ones. Measured with the production PubMed model (tuned weight 0.9),
#: F1@5 with 10 vs 30: silver dev (600) 0.3382 vs 0.3382, Inspec dev 0.4070 vs 0.4067, SemEval dev 0.3040 vs 0.3052;
#: at weight 0.5 10 is better on all three; a third fewer phrases to encode.
HYBRID_CANDIDATES = 10


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
    docs: Sequence[GoldDocument], tokenizer: Any, max_length: int, stride: int
) -> tuple[list[dict[str, list[int]]], dict[str, AlignmentStats]]:
    """One training example per window (``input_ids``, ``attention_mask``, ``labels``) and alignment stats
    per dataset."""
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
    """A decoded span: surface text, character offsets, score; ``key``: its ``normalize_phrase`` (set by
    :func:`soft_spans`, and by :func:`rank_spans` once it has ranked a span; empty until then)."""

    phrase: str
    start: int
    end: int
    score: float
    key: str = ""


def decode_spans(text: str, word_spans: dict[int, tuple[int, int]], word_probs: dict[int, np.ndarray],
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
            spans.append(SpanScore(" ".join(text[start:end].split()), start, end, float(score)))
            current.clear()

    for wid in sorted(word_probs, key=lambda w: word_spans[w][0]):
        probs = word_probs[wid]
        tag = int(probs.argmax())
        if tag == B:
            close()
            current.append((wid, float(probs[B])))
        elif tag == I:
            current.append((wid, float(probs[I])))
        else:
            close()
    close()
    return spans


def rank_spans(spans: Sequence[SpanScore], long: bool = False, limit: int | None = None) -> list[SpanScore]:
    """Deduplicate by ``normalize_phrase`` (best score wins), best first; the first ``limit`` only when given.
    ``long`` (a long document, see :func:`is_long_text`): each phrase's best score is weighted by its frequency and
    first position (``kpe.extract.ranking.long_document_prior``): in a 50 kB paper some occurrence of almost any
    phrase gets a high tag probability somewhere."""
    if not long:  # best first, each phrase at its first (= best) span: only as many keys as ``limit`` needs
        kept: list[SpanScore] = []
        seen: set[str] = set()
        for span in sorted(spans, key=lambda s: (-s.score, s.start)):
            if limit is not None and len(kept) >= limit:
                break
            key = span.key or normalize_phrase(span.phrase)
            if key and key not in seen:
                seen.add(key)
                span.key = key
                kept.append(span)
        return kept
    best: dict[str, SpanScore] = {}
    count: dict[str, int] = {}
    first: dict[str, int] = {}
    for span in spans:
        key = span.key or normalize_phrase(span.phrase)
        if not key:
            continue
        count[key] = count.get(key, 0) + 1
        first[key] = min(first.get(key, span.start), span.start)
        if key not in best or span.score > best[key].score:
            best[key] = span
    if best:
        from kpe.extract.ranking import long_document_prior

        keys = list(best)
        prior = long_document_prior([count[k] for k in keys], [first[k] for k in keys])
        best = {k: SpanScore(best[k].phrase, best[k].start, best[k].end, best[k].score * float(p), k)
                for k, p in zip(keys, prior)}
    return sorted(best.values(), key=lambda s: (-s.score, s.start))[:limit]


def is_long_text(text: str) -> bool:
    """Whether a text is ranked as a long document at the extraction default ``long_document_chars`` (the hybrid
    asks its engine, whose config may set another)."""
    from kpe.extract.config import ExtractionConfig
    from kpe.extract.ranking import is_long_document

    return is_long_document(text, ExtractionConfig.model_fields["long_document_chars"].default)


def soft_spans(text: str, word_spans: dict[int, tuple[int, int]], word_probs: dict[int, np.ndarray],
               pooling: str = "mean", max_words: int = 5) -> list[SpanScore]:
    """Every n-gram of up to ``max_words`` words (``join_words`` groups, no punctuation inside) scored as a span:
    P(B) of its first word, P(I) of the others and 1 - P(I) of the word after it, pooled by mean or min.

    Ranks candidates the argmax decoding left out (used to fill a ranking and by the hybrid method).
    """
    groups = [g for g in join_words(text, {w: word_spans[w] for w in word_probs})]
    p_begin = [float(word_probs[g.word_ids[0]][B]) for g in groups]  # of each group's first word
    p_inside = [float(word_probs[g.word_ids[0]][I]) for g in groups]
    # a span's key from its groups' keys where only white space separates them (the phrase then tokenizes as its
    # groups do: the same string as normalize_phrase, without stemming every n-gram again)
    group_keys = [normalize_phrase(text[g.start:g.end]) for g in groups]
    spaced = [k + 1 < len(groups) and text[groups[k].end:groups[k + 1].start].isspace() for k in range(len(groups))]
    out = []
    for i, group in enumerate(groups):
        if not group.alnum:
            continue
        total = low = p_begin[i]  # sum and min of the span's word probabilities (summed in sum()'s order)
        keys = [group_keys[i]] if group_keys[i] else []
        composed = True
        for n in range(1, max_words + 1):
            j = i + n - 1
            if j >= len(groups) or not groups[j].alnum:
                break
            if n > 1:
                total += p_inside[j]
                low = min(low, p_inside[j])
                composed = composed and spaced[j - 1]
                if group_keys[j]:
                    keys.append(group_keys[j])
            after = 1.0 - p_inside[j + 1] if j + 1 < len(groups) else None
            if pooling == "min":
                score = low if after is None else min(low, after)
            else:
                score = total / n if after is None else (total + after) / (n + 1)
            phrase = " ".join(text[group.start:groups[j].end].split())
            key = " ".join(keys) if composed else normalize_phrase(phrase)
            out.append(SpanScore(phrase, group.start, groups[j].end, score, key))
    return out


def rank_keyphrases(text: str, word_spans: dict[int, tuple[int, int]], word_probs: dict[int, np.ndarray],
                    pooling: str = "mean", fill_to: int = 0) -> list[Keyphrase]:
    """The decoded spans, best first; when fewer than ``fill_to``, topped up with the best ``soft_spans``
    (their scores scaled below the last decoded span so that scores stay ordered)."""
    long = is_long_text(text)
    spans = rank_spans(decode_spans(text, word_spans, word_probs, pooling), long)
    ranked = [Keyphrase(s.phrase, s.score) for s in spans]
    if len(ranked) < fill_to:
        seen = {s.key for s in spans}
        floor = min((s.score for s in spans), default=1.0)
        for extra in rank_spans(soft_spans(text, word_spans, word_probs, pooling), long, fill_to + len(seen)):
            if len(ranked) >= fill_to:
                break
            if extra.key not in seen:
                ranked.append(Keyphrase(extra.phrase, extra.score * floor))
    return ranked


@dataclass(slots=True)
class TaggedText:
    """One text after the tagger: its words' character spans, their O/B/I probabilities (averaged over the windows
    that see them) and, when asked, the mean-pooled last hidden state of its first window: the SentenceTransformer
    embedding of the text truncated to the window (what the extraction engine's document pass computes)."""

    word_spans: dict[int, tuple[int, int]]
    word_probs: dict[int, np.ndarray]  # (3,) float32: P(O), P(B), P(I)
    embedding: np.ndarray | None = None


@torch.no_grad()
def tag_texts(model: Any, tokenizer: Any, texts: Sequence[str], max_length: int, stride: int, *,
              precision: str = "fp32", batch_tokens: int | None = None, device: torch.device | str | None = None,
              embeddings: bool = False) -> list[TaggedText]:
    """Run the tagger over every window of every text (see :func:`word_probabilities`)."""
    from kpe.extract.encoder import canonical_batches, default_batch_tokens, padded_batch, precision_context

    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    windows = [(t, w, window) for t, text in enumerate(texts)
               for w, window in enumerate(tokenize_windows(tokenizer, text, max_length, stride))]
    out = [TaggedText({}, {}) for _ in texts]
    sums: list[dict[int, np.ndarray]] = [{} for _ in texts]
    counts: list[dict[int, int]] = [{} for _ in texts]
    budget = batch_tokens or default_batch_tokens(device.type)
    try:
        for width, batch in canonical_batches([len(w.input_ids) for _, _, w in windows], budget, max_length):
            input_ids, mask = padded_batch([windows[i][2].input_ids for i in batch], width,
                                           tokenizer.pad_token_id or 0, precision)
            with precision_context(precision, device.type):
                result = model(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                               output_hidden_states=embeddings)
            probs = torch.softmax(result.logits[: len(batch)].float(), dim=-1).cpu().numpy()
            pooled = _embedding(result.hidden_states[-1][: len(batch)], mask[: len(batch)]) if embeddings else None
            for row, i in enumerate(batch):
                t, w, window = windows[i]
                out[t].word_spans.update(window.word_spans)
                if pooled is not None and w == 0:
                    out[t].embedding = pooled[row]
                for pos, (wid, first) in enumerate(zip(window.word_ids, window.first)):
                    if first:  # at most two windows see a word (stride < half a window): a + b == b + a
                        sums[t][wid] = sums[t][wid] + probs[row, pos] if wid in sums[t] else probs[row, pos]
                        counts[t][wid] = counts[t].get(wid, 0) + 1
    finally:
        if was_training:
            model.train()
    for t, tagged in enumerate(out):
        tagged.word_probs = {w: s / counts[t][w] for w, s in sums[t].items()}
    return out


def _embedding(hidden: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """The mean of the token vectors under the attention mask, L2-normalised (sentence-transformers'
    Pooling(mean) + Normalize, as the tagger's model dir declares them)."""
    return torch.nn.functional.normalize(mean_pool(hidden, mask).float(), dim=-1).cpu().numpy()


def word_probabilities(model: Any, tokenizer: Any, texts: Sequence[str], max_length: int, stride: int, *,
                       precision: str = "fp32", batch_tokens: int | None = None,
                       device: torch.device | str | None = None
                       ) -> list[tuple[dict[int, tuple[int, int]], dict[int, np.ndarray]]]:
    """For each text: word character spans and word-level O/B/I probabilities averaged over its windows.

    Windows run the way the extraction encoder runs texts (``kpe.extract.encoder``): grouped by canonical length,
    at most ``batch_tokens`` padded tokens a pass (default: the device's), small passes filled up with copies, under
    ``precision`` (resolved: ``fp32``, ``bf16``, ``fp16``; an ``int8`` model is quantised by its loader). So a
    document's probabilities do not depend on the other documents it is extracted with, and short last windows are
    not padded to the batch's longest (measured: 1.6x the docs/s of fixed batches of 32 windows, fp32).
    """
    return [(t.word_spans, t.word_probs) for t in tag_texts(model, tokenizer, texts, max_length, stride,
                                                            precision=precision, batch_tokens=batch_tokens,
                                                            device=device)]


def predict_keyphrases(model: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int = 256,
                       stride: int = 64, batch_tokens: int | None = None, pooling: str = "mean", fill_to: int = 0,
                       precision: str = "fp32", device: torch.device | str | None = None) -> list[list[Keyphrase]]:
    """Ranked tagger spans for each text (topped up to ``fill_to`` phrases with soft spans)."""
    out = []
    for text, (word_spans, probs) in zip(texts, word_probabilities(model, tokenizer, texts, max_length, stride,
                                                                   precision=precision, batch_tokens=batch_tokens,
                                                                   device=device)):
        out.append(rank_keyphrases(text, word_spans, probs, pooling, fill_to))
    return out


def save_tagger(model: Any, tokenizer: Any, model_dir: Path, extra_config: dict[str, Any] | None = None) -> None:
    """Hugging Face layout (``save_pretrained`` + tokenizer); SentenceTransformer loads the same dir (mean pooling)."""
    save_model_dir(model, tokenizer, model_dir, **(extra_config or {}))


def setup(config: Any, base: str, tokenizer: Any) -> KindSetup:
    """A tagger run: windows with BIO labels, a fresh classification head on ``base``, validation F1@5."""
    from transformers import DataCollatorForTokenClassification

    from kpe.train.data import capped_validation, train_val_docs, training_features

    train_docs, all_val_docs, summary = train_val_docs(config, capped=False)
    val_docs = capped_validation(all_val_docs, config)
    features = training_features(  # one cached, batched datasets.map
        train_docs, partial(tagger_features, tokenizer=tokenizer, max_length=config.max_length, stride=config.stride),
        tokenizer=tokenizer, settings={"max_length": config.max_length, "stride": config.stride}, name="tagger",
        summary=summary)

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        if not val_docs:
            return {}
        preds = predict_keyphrases(m, tokenizer, [d.text for d in val_docs], max_length=config.max_length,
                                   stride=config.stride, batch_tokens=config.eval_batch_size * config.max_length,
                                   pooling=config.score_pooling, fill_to=10)  # under the loop's autocast
        return keyphrase_metrics([[k.phrase for k in p] for p in preds], val_docs)

    def save(m: torch.nn.Module, model_dir: Path) -> None:
        save_tagger(m, tokenizer, model_dir, {"kpe_kind": "tagger", "kpe_score_pooling": config.score_pooling,
                                              "kpe_max_length": config.max_length, "kpe_stride": config.stride})

    def finish(model_dir: Path) -> dict[str, Any]:
        out = {}
        if config.tune_hybrid:  # on the validation slice of the training data, never on a benchmark dev set
            out["hybrid"] = _optional_step("hybrid weight tuning (hybrid uses its default)", tune_hybrid_weight,
                                           model_dir, val_docs)
        if config.fit_span_ranker:  # on the whole validation slice (+ the training split out of fold), a lexicon
            out["span_ranker"] = _optional_step("span ranker fit (no ranked method)", fit_ranker, model_dir,
                                                all_val_docs)
        return out

    def fit_ranker(model_dir: Path, docs: list[GoldDocument]) -> dict[str, Any]:
        from kpe.train.ranker_folds import out_of_fold_candidates
        from kpe.train.span_ranker import fit_model_ranker

        out_of_fold = out_of_fold_candidates(config, train_docs) if config.ranker_folds else None
        return fit_model_ranker(model_dir, docs, lexicon_docs=train_docs, out_of_fold=out_of_fold)

    return KindSetup(load_tagger_model(base), features, DataCollatorForTokenClassification(tokenizer), evaluate,
                     save, is_head=lambda name: name.startswith("classifier"), data_summary=summary,
                     finish=finish if (config.tune_hybrid or config.fit_span_ranker) and val_docs else None)


def _optional_step(what: str, step: Any, model_dir: Path, docs: list[GoldDocument]) -> dict[str, Any]:
    """Run a step after training on the saved model; a failure is logged and recorded, never loses the run."""
    try:
        return step(model_dir, docs)
    except Exception as exc:  # noqa: BLE001 - the model is saved; a failed extra step must not lose the run
        log.warning("%s failed: %s: %s", what, type(exc).__name__, exc)
        return {"done": False, "reason": f"{type(exc).__name__}: {exc}"}


# ----------------------------------------------------------------------------------------------- extraction

class TaggerExtractor:
    """The ``tagger`` method: keyphrases from a fine-tuned token-classification model (the decoder above)."""

    name = "tagger"

    def __init__(self, model_path: str | Path, top_n: int = DEFAULT_TOP_N, fill: bool = True,
                 device: torch.device | str = "cpu", pooling: str | None = None, precision: str = "auto",
                 batch_tokens: int | None = None):
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        from kpe.extract.encoder import resolve_precision, rowwise_int8

        self.model_path = require_model_dir(model_path, self.name)
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device.type)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.model = AutoModelForTokenClassification.from_pretrained(self.model_path).to(self.device).eval()
        if self.precision == "int8":
            rowwise_int8(self.model)
        cfg = self.model.config
        self.max_length = int(getattr(cfg, "kpe_max_length", 256))
        self.stride = int(getattr(cfg, "kpe_stride", 64))
        self.pooling = pooling or getattr(cfg, "kpe_score_pooling", "mean")
        self.top_n = top_n
        self.fill = fill
        self.batch_tokens = batch_tokens

    def describe(self) -> dict[str, Any]:
        """Method, model and the precision actually used (``kpe.extract.methods.describe_extractor``)."""
        return {"method": self.name, "model_path": str(self.model_path), "precision": self.precision,
                "device": str(self.device)}

    def tag(self, docs: Sequence[str], embeddings: bool = False) -> list[TaggedText]:
        """Word spans and averaged O/B/I probabilities per document (and its first window's embedding)."""
        return tag_texts(self.model, self.tokenizer, docs, self.max_length, self.stride, precision=self.precision,
                         batch_tokens=self.batch_tokens, device=self.device, embeddings=embeddings)

    def extract(self, docs: list[str]) -> list[list[Keyphrase]]:
        """Decoded spans, best first (topped up to ``top_n`` with soft spans when ``fill``)."""
        out: list[list[Keyphrase]] = [[] for _ in docs]
        keep = [i for i, d in enumerate(docs) if d and d.strip()]
        for i, tagged in zip(keep, self.tag([docs[i] for i in keep])):
            out[i] = rank_keyphrases(docs[i], tagged.word_spans, tagged.word_probs, self.pooling,
                                     self.top_n if self.fill else 0)
        return out


def build_tagger(model_path: str | None, config: Any = None) -> TaggerExtractor:
    """The ``tagger`` method: a model dir saved by ``kpe.train`` (kind ``tagger``)."""
    return TaggerExtractor(model_path, top_n=int(option(config, "top_n", DEFAULT_TOP_N)),
                           fill=bool(option(config, "fill", True)), device=device_of(config),
                           precision=str(option(config, "precision", "auto")),
                           batch_tokens=option(config, "batch_tokens", None))


class HybridExtractor:
    """The tagger proposes candidates (its decoded spans, its best soft spans and, with ``ngrams=True``, the
    engine's stop-word-bounded n-grams); they are ranked by ``weight * tagger score + (1 - weight) * cosine``,
    the cosine between phrase and document embeddings of the fine-tuned encoder computed by the KeyBERT
    engine's ranker (``kpe.extract.engine``, with its embedding cache)."""

    name = "hybrid"

    def __init__(self, model_path: str | Path, top_n: int = DEFAULT_TOP_N, weight: float | None = None,
                 n_candidates: int = HYBRID_CANDIDATES, ngrams: bool = False,
                 device: torch.device | str = "cpu", engine_options: dict[str, Any] | None = None):
        from kpe.extract.config import ExtractionConfig
        from kpe.extract.engine import KeyphraseEngine

        engine_options = engine_options or {}
        self.tagger = TaggerExtractor(model_path, top_n=top_n, device=device,
                                      precision=str(engine_options.get("precision") or "auto"),
                                      batch_tokens=engine_options.get("batch_tokens"))
        options = {**engine_options, "top_n": 1000, "prefilter": "none", "diversity": None,
                   "use_maxsum": False, "drop_subphrases": False, "candidate_embedding": "phrase",
                   "device": str(device)}
        self.engine = KeyphraseEngine(ExtractionConfig(**options), model_path=str(self.tagger.model_path))
        if weight is None:
            weight = stored_hybrid_weight(self.tagger.model_path)
        self.weight = float(weight)
        self.top_n = top_n
        self.n_candidates = n_candidates
        self.ngrams = ngrams
        # The tagger's first window is the encoder's truncated document (same tokenizer, same length): its pass
        # gives the document embedding, and the engine runs no document pass of its own.
        self.shares_document_pass = (self.engine.ranker.takes_doc_embeddings()
                                     and self.tagger.max_length == self.engine.encoder.max_length)

    def candidates(self, docs: Sequence[str]) -> list[list[tuple[str, float, float]]]:
        """Per document: ``(phrase, tagger score, cosine)`` for every candidate."""
        proposals = []
        tagged = self.tagger.tag(docs, embeddings=self.shares_document_pass)
        for doc, text in zip(docs, tagged):
            spans, probs = text.word_spans, text.word_probs
            long = self.engine.ranker.is_long(doc)
            decoded = rank_spans(decode_spans(doc, spans, probs, self.tagger.pooling), long)
            soft = rank_spans(soft_spans(doc, spans, probs, self.tagger.pooling), long,
                              None if self.ngrams else self.n_candidates)
            # A long document decodes enough spans (174 per NUS paper): its soft spans, weighted by the same
            # frequency prior, would outrank them (NUS, 25 papers, weight 0.5: F1@5 0.149 with, 0.212 without).
            extra = [] if long and len(decoded) >= self.top_n else soft[: self.n_candidates]
            best: dict[str, tuple[str, float]] = {}
            for span in [*decoded, *extra]:
                if span.key not in best or span.score > best[span.key][1]:
                    best[span.key] = (span.phrase, span.score)
            if self.ngrams:
                soft_score = {s.key: s.score for s in reversed(soft)}
                for cand in self.engine.candidates([doc])[0]:
                    key = normalize_phrase(cand.phrase)
                    if key and key not in best:
                        best[key] = (cand.phrase, soft_score.get(key, 0.0))
            proposals.append(best)
        ranked = self.engine.ranker.rank(list(docs), [[p for p, _ in best.values()] for best in proposals],
                                         [t.embedding for t in tagged] if self.shares_document_pass else None)
        out = []
        for best, cosines in zip(proposals, ranked):
            cosine = {normalize_phrase(k.phrase): k.score for k in cosines}
            out.append([(p, s, cosine.get(key, 0.0)) for key, (p, s) in best.items()])
        return out

    @staticmethod
    def combine(cands: Sequence[tuple[str, float, float]], weight: float, top_n: int) -> list[Keyphrase]:
        """Rank by ``weight * tagger score + (1 - weight) * cosine``."""
        scored = sorted(((weight * s + (1 - weight) * c, p) for p, s, c in cands), key=lambda x: -x[0])
        return [Keyphrase(p, float(score)) for score, p in scored[:top_n]]

    def extract(self, docs: list[str]) -> list[list[Keyphrase]]:
        """Top ``top_n`` candidates by the combined score."""
        out: list[list[Keyphrase]] = [[] for _ in docs]
        keep = [i for i, d in enumerate(docs) if d and d.strip()]
        for i, cands in zip(keep, self.candidates([docs[i] for i in keep])):
            out[i] = self.combine(cands, self.weight, self.top_n)
        return out


def stored_hybrid_weight(model_dir: Path | str) -> float:
    """The hybrid weight tuned at training time (``hybrid.json``), else the default 0.5 (logged)."""
    path = Path(model_dir) / HYBRID_FILE
    if path.is_file():
        return float(json.loads(path.read_text())["weight"])
    log.warning("no %s in %s: hybrid uses weight %.2f", HYBRID_FILE, model_dir, DEFAULT_HYBRID_WEIGHT)
    return DEFAULT_HYBRID_WEIGHT


def build_hybrid(model_path: str | None, config: Any = None) -> HybridExtractor:
    """The ``hybrid`` method: a tagger model dir (its tagger, its encoder, its tuned weight)."""
    weight = option(config, "hybrid_weight", None)
    return HybridExtractor(model_path, top_n=int(option(config, "top_n", DEFAULT_TOP_N)),
                           weight=None if weight is None else float(weight),
                           ngrams=bool(option(config, "hybrid_ngrams", False)), device=device_of(config),
                           engine_options={k: v for k, v in engine_options(config).items()
                                           if k in ("use_cache", "threads", "precision", "batch_tokens")})


def scores_by_weight(cands: Sequence[Sequence[tuple[str, float, float]]], docs: Sequence[Any],
                     weights: Sequence[float], top_n: int = DEFAULT_TOP_N) -> dict[float, Any]:
    """The metrics (``kpe.evaluate.metrics.evaluate_predictions``, at 5 and 10) of the hybrid's ranking of
    ``cands`` (:meth:`HybridExtractor.candidates` of ``docs``) at each weight."""
    from kpe.evaluate.metrics import evaluate_predictions

    gold, texts = [list(d.keyphrases) for d in docs], [d.text for d in docs]
    return {w: evaluate_predictions([[k.phrase for k in HybridExtractor.combine(c, w, top_n)] for c in cands],
                                    gold, texts, ks=(5, 10))
            for w in weights}


def tune_hybrid_weight(model_dir: Path | str, docs: Sequence[Any], weights: Sequence[float] | None = None,
                       top_n: int = DEFAULT_TOP_N) -> dict[str, Any]:
    """Pick the hybrid weight with the best macro F1@5 (present gold) on ``docs`` and store it in ``hybrid.json``.

    ``docs`` have ``.text``, ``.keyphrases`` and ``.doc_id``: use a slice of the *training* data (the
    internal validation split), never a benchmark's dev set.
    """
    from kpe.evaluate.metrics import f1

    weights = list(weights) if weights is not None else [round(0.1 * i, 1) for i in range(11)]
    extractor = HybridExtractor(model_dir, top_n=top_n, weight=DEFAULT_HYBRID_WEIGHT,
                                engine_options={"use_cache": False})  # a new model: nothing to reuse
    cands = extractor.candidates([d.text for d in docs])
    scores = {w: f1(result) for w, result in scores_by_weight(cands, docs, weights, top_n).items()}
    best = max(weights, key=lambda w: (scores[w], -abs(w - DEFAULT_HYBRID_WEIGHT)))
    summary = {"weight": best, "f1@5_by_weight": {str(w): round(s, 4) for w, s in scores.items()},
               "docs": len(docs), "tuned_on": "validation slice of the training data"}
    (Path(model_dir) / HYBRID_FILE).write_text(json.dumps(summary, indent=2))
    log.info("hybrid weight %.1f (F1@5 %.4f on %d training-validation docs)", best, scores[best], len(docs))
    return summary
