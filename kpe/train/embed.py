"""The ``embed`` model kind: the bi-encoder itself fine-tuned for KeyBERT's cosine ranking (contrastive, in the
spirit of SimCKP, Choi et al. 2023). Its extraction methods: the shared ``keybert-ft`` (the engine's default
ranking with this encoder) and ``keybert-ft-fast`` (the engine's fast setting with it).

* data: one example per training document: its first ``max_length`` word pieces (what the engine's document
  embedding sees), its *present* gold phrases (positives: stemmed match in the text, the evaluation's rule) and
  the document's other candidates from our candidate generator (``kpe.extract.candidates.candidate_spans``:
  hard negatives), each with the word-piece positions of its occurrences in the document window;
* model: the encoder with mean pooling (the sentence-transformers recipe of all-MiniLM-L6-v2), no new head;
* loss: InfoNCE with temperature on cosine(document, phrase): each positive against its document's hard
  negatives plus every other phrase of the batch (in-batch negatives; a phrase that is gold for the document
  is never its negative), phrases encoded on their own as the engine's phrase pass does. A second InfoNCE term
  (weight ``CONTEXT_WEIGHT``) scores the mean of a candidate's token vectors in the document pass against the
  document embedding, within the document: what the engine's contextual prefilter and its fast setting rank by;
* validation: macro F1@5 of the engine (``kpe`` ranking: our candidates, contextual prefilter) run with the
  in-training encoder on the validation slice;
* saved as a SentenceTransformer dir (``kpe.train.model_files``), the packaged encoder's format: the engine,
  KeyBERT and ``SentenceTransformer(dir)`` load it as they load all-MiniLM-L6-v2.
"""

from __future__ import annotations

import logging
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from kpe.datasets import GoldDocument
from kpe.train.alignment import AlignmentStats
from kpe.train.kinds import KindSetup, keyphrase_metrics
from kpe.train.model_files import require_model_dir, save_model_dir
from kpe.train.pooling import mean_pool
from kpe.train.predict import _Renamed, engine_options

log = logging.getLogger(__name__)

#: InfoNCE temperature on cosine (sentence-transformers' MultipleNegativesRankingLoss uses scale 20 = 1 / 0.05).
TEMPERATURE = 0.05
#: Positives and hard negatives drawn per document and batch (fresh draws every batch).
MAX_POSITIVES = 6
MAX_NEGATIVES = 16
#: Weight of the contextual term (token vectors of the document pass against the document embedding).
CONTEXT_WEIGHT = 0.5
#: Word pieces of a phrase (with [CLS]/[SEP]); candidates are at most 3 words.
PHRASE_MAX_LENGTH = 24
_MASKED = -1e4  # a logit that never wins (finite, so gradients stay finite)


def _key(phrase: str) -> str:
    from kpe.phrases import phrase_key

    return " ".join(phrase_key(phrase))


def _present(key: str, text_key: Sequence[str]) -> bool:
    from kpe.evaluate.metrics import occurs_in

    return occurs_in(tuple(key.split()), text_key)


def embed_features(docs: Sequence[GoldDocument], tokenizer: Any, max_length: int
                   ) -> tuple[list[dict[str, Any]], dict[str, AlignmentStats]]:
    """One training example per document with a present gold phrase, and per dataset how many gold phrases are
    absent from the text (``AlignmentStats``: they cannot be positives)."""
    from kpe.extract.candidates import candidate_spans
    from kpe.extract.engine import locate
    from kpe.phrases import phrase_key

    features: list[dict[str, Any]] = []
    stats: dict[str, AlignmentStats] = {}
    for doc in docs:
        text_key = phrase_key(doc.text)
        gold = {}
        for phrase in doc.keyphrases:
            key = _key(phrase)
            if key:
                gold.setdefault(key, phrase)
        present = {k: p for k, p in gold.items() if _present(k, text_key)}
        stats.setdefault(doc.dataset, AlignmentStats()).add(len(gold), [p for k, p in gold.items() if k not in present])
        if not present:
            continue
        by_key: dict[str, Any] = {}
        for cand in candidate_spans(doc.text, (1, 3)):
            by_key.setdefault(_key(cand.phrase), cand)
        by_key.pop("", None)
        positives = [(k, by_key[k].phrase, by_key[k].spans) if k in by_key else (k, p, locate(doc.text, p))
                     for k, p in present.items()]
        negatives = [(k, c.phrase, c.spans) for k, c in by_key.items() if k not in gold]
        enc = tokenizer(doc.text, truncation=True, max_length=max_length, return_offsets_mapping=True)
        offsets = enc.pop("offset_mapping")
        entries = positives + negatives
        phrase_ids = tokenizer([p for _, p, _ in entries], truncation=True, max_length=PHRASE_MAX_LENGTH)["input_ids"]
        features.append({
            **{k: list(v) for k, v in enc.items()},
            "phrase_ids": phrase_ids,
            "phrase_keys": [k for k, _, _ in entries],
            "positions": [_positions(offsets, spans) for _, _, spans in entries],
            "n_pos": len(positives),
            "gold_keys": sorted(gold),
            "source": doc.dataset,
        })
    return features, stats


def contrastive_counts(features: Any) -> dict[str, dict[str, int]]:
    """Per source: documents used (with a present gold phrase), positives and candidate negatives."""
    out: dict[str, dict[str, int]] = {}
    for source, n_pos, keys in zip(features["source"], features["n_pos"], features["phrase_keys"]):
        c = out.setdefault(source, {"docs_used": 0, "positives": 0, "negatives": 0})
        c["docs_used"] += 1
        c["positives"] += n_pos
        c["negatives"] += len(keys) - n_pos
    return out


def _positions(offsets: Sequence[Sequence[int]], spans: Sequence[tuple[int, int]]) -> list[int]:
    """Word-piece positions (in the truncated window, special tokens excluded) covered by any of ``spans``."""
    out = []
    for pos, (start, end) in enumerate(offsets):
        if end > start and any(start < s_end and end > s_start for s_start, s_end in spans):
            out.append(pos)
    return out


class EmbedCollator:
    """Pads documents, draws each document's positives and hard negatives (fresh every batch, seeded), encodes
    which phrase is gold for which document and where each phrase occurs in its document's window."""

    def __init__(self, tokenizer: Any, max_positives: int = MAX_POSITIVES, max_negatives: int = MAX_NEGATIVES,
                 seed: int = 42):
        self.tokenizer = tokenizer
        self.max_positives = max_positives
        self.max_negatives = max_negatives
        self.rng = random.Random(seed)

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        doc_keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in features[0]]
        batch = self.tokenizer.pad([{k: f[k] for k in doc_keys} for f in features], return_tensors="pt")
        width = batch["input_ids"].shape[1]
        chosen: list[tuple[int, int]] = []  # (document, entry)
        for b, f in enumerate(features):
            n_pos, n = f["n_pos"], len(f["phrase_ids"])
            pos = self.rng.sample(range(n_pos), min(n_pos, self.max_positives))
            neg = self.rng.sample(range(n_pos, n), min(n - n_pos, self.max_negatives))
            chosen += [(b, i) for i in pos + neg]
        phrases = self.tokenizer.pad([{"input_ids": features[b]["phrase_ids"][i]} for b, i in chosen],
                                     return_tensors="pt")
        keys = [features[b]["phrase_keys"][i] for b, i in chosen]
        gold = [set(f["gold_keys"]) for f in features]
        positive = torch.tensor([[k in g for k in keys] for g in gold], dtype=torch.bool)
        positions = [features[b]["positions"][i] for b, i in chosen]
        longest = max(1, max(len(p) for p in positions))
        dummy = len(features) * width  # index of the zero row appended to the flattened token vectors
        context_index = torch.full((len(chosen), longest), dummy, dtype=torch.long)
        for j, ((b, _), pos) in enumerate(zip(chosen, positions)):
            if pos:
                context_index[j, : len(pos)] = torch.tensor(pos, dtype=torch.long) + b * width
        out = dict(batch)
        out.update({
            "phrase_input_ids": phrases["input_ids"], "phrase_attention_mask": phrases["attention_mask"],
            "phrase_doc": torch.tensor([b for b, _ in chosen], dtype=torch.long), "positive": positive,
            "context_index": context_index,
            "context_count": torch.tensor([len(p) for p in positions], dtype=torch.long),
        })
        return out


@dataclass
class EmbedOutput:
    """Losses of one forward pass: the total, the phrase (InfoNCE) term and the contextual term."""

    loss: torch.Tensor
    phrase_loss: torch.Tensor
    context_loss: torch.Tensor


def info_nce(logits: torch.Tensor, positive: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Mean over positive pairs ``(b, j)`` of ``-log softmax`` of ``logits[b, j]`` against the allowed
    non-positive logits of row ``b`` (other positives of the row are left out of its denominator)."""
    logits = logits.float()
    negatives = logits.masked_fill(positive | ~allowed, _MASKED)
    lse = torch.logsumexp(negatives, dim=1, keepdim=True)
    per_pair = torch.logaddexp(logits, lse) - logits
    mask = positive & allowed
    return per_pair[mask].mean() if bool(mask.any()) else logits.sum() * 0.0


class EmbedModel(nn.Module):
    """The encoder with mean pooling, trained so that cosine(document, phrase) ranks gold phrases first."""

    def __init__(self, encoder: nn.Module, temperature: float = TEMPERATURE, context_weight: float = CONTEXT_WEIGHT):
        super().__init__()
        self.encoder = encoder
        self.temperature = temperature
        self.context_weight = context_weight

    @property
    def config(self) -> Any:
        """The encoder's Hugging Face config."""
        return self.encoder.config

    @classmethod
    def from_base(cls, base: str, **kwargs: Any) -> EmbedModel:
        """Start from any local encoder dir (the packaged MiniLM, an MLM run, another kind's model dir)."""
        from transformers import AutoModel

        return cls(AutoModel.from_pretrained(base), **kwargs)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
              token_type_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean-pooled embeddings, last-layer token vectors)."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**kwargs).last_hidden_state
        return mean_pool(hidden, attention_mask), hidden

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, phrase_input_ids: torch.Tensor,
                phrase_attention_mask: torch.Tensor, phrase_doc: torch.Tensor, positive: torch.Tensor,
                context_index: torch.Tensor | None = None, context_count: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> EmbedOutput:
        """Both InfoNCE terms for a batch from :class:`EmbedCollator`."""
        docs, hidden = self.embed(input_ids, attention_mask, token_type_ids)
        phrases, _ = self.embed(phrase_input_ids, phrase_attention_mask)
        docs_n = F.normalize(docs.float(), dim=-1)
        logits = docs_n @ F.normalize(phrases.float(), dim=-1).T / self.temperature  # [B, P]
        everything = torch.ones_like(positive)
        phrase_loss = info_nce(logits, positive, everything)
        context_loss = logits.sum() * 0.0
        if context_index is not None and context_count is not None and self.context_weight > 0:
            flat = hidden.float().reshape(-1, hidden.shape[-1])
            flat = torch.cat([flat, flat.new_zeros(1, flat.shape[-1])])
            pooled = flat[context_index].sum(1) / context_count.clamp(min=1).unsqueeze(-1).to(flat.dtype)
            own = docs_n[phrase_doc]  # [P, H]: each phrase's own document
            ctx = (own * F.normalize(pooled, dim=-1)).sum(-1) / self.temperature  # [P]
            rows = torch.arange(docs.shape[0], device=phrase_doc.device).unsqueeze(1)
            allowed = (phrase_doc.unsqueeze(0) == rows) & (context_count > 0).unsqueeze(0)
            context_loss = info_nce(ctx.unsqueeze(0).expand(docs.shape[0], -1), positive, allowed)
        return EmbedOutput(phrase_loss + self.context_weight * context_loss, phrase_loss, context_loss)


def save_embed(model: EmbedModel, tokenizer: Any, model_dir: Path | str) -> None:
    """The encoder (``save_pretrained``) and tokenizer, as a SentenceTransformer dir with mean pooling."""
    save_model_dir(model.encoder, tokenizer, model_dir, kpe_kind="embed")


def rank_with(model: EmbedModel, tokenizer: Any, texts: Sequence[str], config: Any = None) -> list[list[str]]:
    """The engine's ranking (``kpe``, default settings unless ``config`` says otherwise, no embedding cache)
    with the in-training encoder: saved to a temporary dir and loaded as ``keybert-ft`` loads it."""
    from kpe.extract.config import ExtractionConfig
    from kpe.extract.engine import KeyphraseEngine

    device = next(model.parameters()).device
    options = {"use_cache": False, "device": str(device), **engine_options(config)}
    with tempfile.TemporaryDirectory(prefix="kpe-embed-") as tmp:
        save_embed(model, tokenizer, tmp)
        engine = KeyphraseEngine(ExtractionConfig(**options), model_path=tmp)
        return [[k.phrase for k in ranked] for ranked in engine.extract(list(texts))]


def setup(config: Any, base: str, tokenizer: Any) -> KindSetup:
    """An embed run: one example per document (present gold = positives, other candidates = hard negatives),
    the encoder with mean pooling, validation = macro F1@5 of the engine's ranking with this encoder."""
    from kpe.train.data import train_val_docs, training_features

    train_docs, val_docs, summary = train_val_docs(config)
    features = training_features(  # one cached, batched datasets.map
        train_docs, partial(embed_features, tokenizer=tokenizer, max_length=config.max_length),
        tokenizer=tokenizer, settings={"max_length": config.max_length, "phrase_max_length": PHRASE_MAX_LENGTH},
        name="embed", summary=summary)
    for name, counts in contrastive_counts(features).items():
        summary.setdefault(name, {})["contrastive"] = counts
        log.info("embed %s: %d documents with a present gold phrase, %d positives, %d candidate negatives", name,
                 counts["docs_used"], counts["positives"], counts["negatives"])
    summary["contrastive_loss"] = {"temperature": TEMPERATURE, "max_positives": MAX_POSITIVES,
                                   "max_negatives": MAX_NEGATIVES, "context_weight": CONTEXT_WEIGHT,
                                   "in_batch_negatives": True}
    model = EmbedModel.from_base(base)

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        if not val_docs:
            return {}
        was_training = m.training
        m.eval()
        try:
            preds = rank_with(m, tokenizer, [d.text for d in val_docs])
        finally:
            if was_training:
                m.train()
        return keyphrase_metrics(preds, val_docs)

    def save(m: torch.nn.Module, model_dir: Path) -> None:
        save_embed(m, tokenizer, model_dir)

    return KindSetup(model, features, EmbedCollator(tokenizer, seed=config.seed), evaluate, save,
                     is_head=lambda name: False, data_summary=summary)


# ----------------------------------------------------------------------------------------------- extraction

def build_keybert_ft_fast(model_path: str | None, config: Any = None) -> Any:
    """``keybert-ft-fast``: the engine's fast setting (``ExtractionConfig.fast``: candidates pooled from the
    document pass, int8 on CPU) with a fine-tuned encoder. Settings that differ from the defaults override it
    (a nightly run hands over a whole ``ExtractionConfig``: only its non-default fields count)."""
    from kpe.extract.config import ExtractionConfig
    from kpe.extract.engine import build_kpe_fast

    path = require_model_dir(model_path, "keybert-ft-fast")
    if isinstance(config, ExtractionConfig):
        overrides = config.model_dump(exclude_defaults=True)
    else:
        overrides = engine_options(config)
    return _Renamed(build_kpe_fast(str(path), ExtractionConfig.fast(**overrides)), "keybert-ft-fast")
