"""The ``joint`` model kind: a span model in the spirit of BERT-JointKPE (Sun et al. 2020), chunking + ranking
over n-grams of words. Its extraction methods: ``joint`` (below) and the shared ``keybert-ft``.

Words are the tokenizer's words with connector-joined pieces merged back ("anti", "-", "spam" -> "anti-spam");
a word vector is its first sub-token (or the mean of its sub-tokens). For each n = 1..``max_ngram`` a Conv1d of
width n turns word vectors into n-gram vectors. Two heads read them:

* the chunking head says "is this n-gram occurrence a keyphrase" (``BCEWithLogitsLoss``);
* the ranking head scores the n-gram; a phrase's score is the max over its occurrences in the window
  (and, at prediction time, over the windows of the document); a pairwise hinge (margin ranking) loss
  pushes every keyphrase above every non-keyphrase of the same window.

Labels come from stemmed matching (``kpe.phrases.phrase_key``), the rule the evaluation uses. Candidate
n-grams start and end on a word with a letter or digit and never cross sentence punctuation.

Saved in Hugging Face layout: the encoder with ``save_pretrained`` (plus tokenizer), the heads in
``joint_heads.safetensors`` and ``joint_config.json`` in the same directory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from kpe.datasets import GoldDocument
from kpe.extract.methods import Keyphrase
from kpe.phrases import phrase_key
from kpe.train.alignment import AlignmentStats, Window, join_words, tokenize_windows
from kpe.train.kinds import KindSetup, keyphrase_metrics
from kpe.train.model_files import require_model_dir, save_model_dir
from kpe.train.predict import DEFAULT_TOP_N, device_of, option

log = logging.getLogger(__name__)

CONFIG_NAME = "joint_config.json"
HEADS_NAME = "joint_heads.safetensors"


@dataclass(slots=True)
class Unit:
    """One word of the n-gram grid: its character span and its token positions in the window."""

    start: int
    end: int
    positions: list[int]
    alnum: bool


def phrase_id(phrase: str) -> str:
    """The matching key of a phrase as a string (``kpe.phrases.phrase_key``: hyphens split, stemmed)."""
    return " ".join(phrase_key(phrase))


def window_units(text: str, window: Window) -> list[Unit]:
    """Words of a window for n-grams (``join_words`` groups of its complete tokenizer words)."""
    positions: dict[int, list[int]] = {}
    for pos, wid in enumerate(window.word_ids):
        if wid is not None and wid in window.word_spans:
            positions.setdefault(wid, []).append(pos)
    return [Unit(g.start, g.end, [p for wid in g.word_ids for p in positions[wid]], g.alnum)
            for g in join_words(text, window.word_spans)]


def window_ngrams(text: str, units: Sequence[Unit], max_ngram: int) -> list[list[str | None]]:
    """For each n = 1..max_ngram and each start word: the normalized candidate phrase, or None when invalid."""
    grid: list[list[str | None]] = []
    for n in range(1, max_ngram + 1):
        row: list[str | None] = []
        for i in range(len(units) - n + 1):
            span = units[i:i + n]
            if any(not u.alnum for u in span):
                row.append(None)
                continue
            key = phrase_id(text[span[0].start:span[-1].end])
            row.append(key or None)
        grid.append(row)
    return grid


@dataclass(slots=True)
class JointWindow:
    """One window prepared for the joint model (training features + what prediction needs to map back)."""

    inputs: dict[str, list[int]]
    units: list[Unit]
    ngram_phrase: list[list[int]]  # per n: local phrase id per start word, -1 when not a candidate
    phrases: list[str]  # local phrase id -> normalized phrase
    surfaces: list[str]  # local phrase id -> first surface form in the window


def prepare_windows(text: str, tokenizer: Any, max_length: int, stride: int, max_ngram: int) -> list[JointWindow]:
    """Tokenize a text into windows and enumerate each window's candidate n-grams."""
    out = []
    for window in tokenize_windows(tokenizer, text, max_length, stride):
        units = window_units(text, window)
        grid = window_ngrams(text, units, max_ngram)
        ids: dict[str, int] = {}
        surfaces: list[str] = []
        ngram_phrase: list[list[int]] = []
        for n, row in enumerate(grid, 1):
            ids_row = []
            for i, key in enumerate(row):
                if key is None:
                    ids_row.append(-1)
                    continue
                if key not in ids:
                    ids[key] = len(ids)
                    surfaces.append(text[units[i].start:units[i + n - 1].end])
                ids_row.append(ids[key])
            ngram_phrase.append(ids_row)
        out.append(JointWindow(window.model_inputs(), units, ngram_phrase, list(ids), surfaces))
    return out


def _feature(jw: JointWindow, gold: set[str]) -> dict[str, Any]:
    token_word = [-1] * len(jw.inputs["input_ids"])
    for u, unit in enumerate(jw.units):
        for pos in unit.positions:
            token_word[pos] = u
    return {
        **jw.inputs,
        "token_word": token_word,
        "word_first": [unit.positions[0] for unit in jw.units],
        "ngram_phrase": jw.ngram_phrase,
        "phrase_labels": [1 if key in gold else 0 for key in jw.phrases],
    }


def joint_features(docs: Sequence[GoldDocument], tokenizer: Any, max_length: int, stride: int, max_ngram: int
                   ) -> tuple[list[dict[str, Any]], dict[str, AlignmentStats]]:
    """Training examples (one per window) and, per dataset, how many gold phrases match no candidate n-gram."""
    features = []
    stats: dict[str, AlignmentStats] = {}
    for doc in docs:
        gold = {phrase_id(p): p for p in doc.keyphrases}
        gold.pop("", None)
        seen: set[str] = set()
        for jw in prepare_windows(doc.text, tokenizer, max_length, stride, max_ngram):
            seen.update(jw.phrases)
            if jw.phrases:
                features.append(_feature(jw, set(gold)))
        unaligned = [p for key, p in gold.items() if key not in seen]
        stats.setdefault(doc.dataset, AlignmentStats()).add(len(doc.keyphrases), unaligned)
    return features, stats


class JointCollator:
    """Pads a list of joint features into tensors (words and n-gram blocks padded to the batch maximum)."""

    def __init__(self, tokenizer: Any, max_ngram: int):
        self.tokenizer = tokenizer
        self.max_ngram = max_ngram

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        model_keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in features[0]]
        batch = self.tokenizer.pad([{k: f[k] for k in model_keys} for f in features], return_tensors="pt")
        t = batch["input_ids"].shape[1]
        w = max(1, max(len(f["word_first"]) for f in features))
        p = max(1, max(len(f["phrase_labels"]) for f in features))
        token_word = torch.full((len(features), t), -1, dtype=torch.long)
        word_first = torch.zeros((len(features), w), dtype=torch.long)
        word_mask = torch.zeros((len(features), w), dtype=torch.bool)
        blocks = [torch.full((len(features), max(w - n + 1, 0)), -1, dtype=torch.long)
                  for n in range(1, self.max_ngram + 1)]
        labels = torch.full((len(features), p), -1, dtype=torch.long)
        for b, f in enumerate(features):
            tw = f["token_word"]
            token_word[b, : len(tw)] = torch.tensor(tw, dtype=torch.long)
            if f["word_first"]:
                word_first[b, : len(f["word_first"])] = torch.tensor(f["word_first"], dtype=torch.long)
                word_mask[b, : len(f["word_first"])] = True
            for n, row in enumerate(f["ngram_phrase"]):
                if row:
                    blocks[n][b, : len(row)] = torch.tensor(row, dtype=torch.long)
            if f["phrase_labels"]:
                labels[b, : len(f["phrase_labels"])] = torch.tensor(f["phrase_labels"], dtype=torch.long)
        batch["token_word"] = token_word
        batch["word_first"] = word_first
        batch["word_mask"] = word_mask
        batch["ngram_phrase"] = torch.cat(blocks, dim=1)
        batch["phrase_labels"] = labels
        return dict(batch)


@dataclass
class JointOutput:
    """Losses and scores of one forward pass (scores per n-gram position and per window phrase)."""

    loss: torch.Tensor | None
    chunk_loss: torch.Tensor | None
    rank_loss: torch.Tensor | None
    chunk_logits: torch.Tensor
    rank_scores: torch.Tensor
    phrase_scores: torch.Tensor
    phrase_chunk: torch.Tensor


class JointKPE(nn.Module):
    """Encoder + n-gram convolutions + chunking and ranking heads."""

    def __init__(self, encoder: nn.Module, max_ngram: int = 5, word_pooling: str = "first",
                 rank_margin: float = 1.0, dropout: float = 0.1):
        super().__init__()
        if word_pooling not in ("first", "mean"):
            raise ValueError(f"word_pooling must be 'first' or 'mean', not {word_pooling!r}")
        self.encoder = encoder
        self.max_ngram = max_ngram
        self.word_pooling = word_pooling
        self.rank_margin = rank_margin
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.convs = nn.ModuleList(nn.Conv1d(hidden, hidden, kernel_size=n) for n in range(1, max_ngram + 1))
        self.chunk_head = nn.Linear(hidden, 1)
        self.rank_head = nn.Linear(hidden, 1)

    @property
    def config(self) -> Any:
        """The encoder's Hugging Face config."""
        return self.encoder.config

    def joint_config(self) -> dict[str, Any]:
        """What ``joint_config.json`` holds."""
        return {"model_type": "kpe-joint", "max_ngram": self.max_ngram, "word_pooling": self.word_pooling,
                "rank_margin": self.rank_margin, "hidden_size": self.encoder.config.hidden_size}

    @classmethod
    def from_base(cls, base: str, **kwargs: Any) -> JointKPE:
        """Fresh heads on a local encoder (any ``AutoModel`` checkpoint: plain encoder, MLM or tagger dir)."""
        from transformers import AutoModel

        return cls(AutoModel.from_pretrained(base), **kwargs)

    @classmethod
    def from_pretrained(cls, model_dir: str | Path) -> JointKPE:
        """Load a model saved by ``save_pretrained``."""
        from safetensors.torch import load_file
        from transformers import AutoModel

        model_dir = Path(model_dir)
        config_file = model_dir / CONFIG_NAME
        if not config_file.exists():
            raise FileNotFoundError(f"{model_dir} is not a joint model (no {CONFIG_NAME})")
        cfg = json.loads(config_file.read_text())
        model = cls(AutoModel.from_pretrained(model_dir), max_ngram=cfg["max_ngram"],
                    word_pooling=cfg["word_pooling"], rank_margin=cfg.get("rank_margin", 1.0))
        missing, unexpected = model.load_state_dict(load_file(str(model_dir / HEADS_NAME)), strict=False)
        missing = [k for k in missing if not k.startswith("encoder.")]
        if missing or unexpected:
            raise ValueError(f"joint heads in {model_dir} do not fit: missing {missing}, unexpected {unexpected}")
        return model

    def save_pretrained(self, model_dir: str | Path) -> None:
        """Encoder with ``save_pretrained``, heads as safetensors, ``joint_config.json``."""
        from safetensors.torch import save_file

        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(model_dir)
        heads = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items() if not k.startswith("encoder.")}
        save_file(heads, str(model_dir / HEADS_NAME))
        (model_dir / CONFIG_NAME).write_text(json.dumps(self.joint_config(), indent=2))

    def _word_vectors(self, hidden: torch.Tensor, token_word: torch.Tensor, word_first: torch.Tensor,
                      word_mask: torch.Tensor) -> torch.Tensor:
        if self.word_pooling == "first":
            index = word_first.unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
            words = torch.gather(hidden, 1, index)
        else:
            w = word_first.shape[1]
            index = torch.where(token_word >= 0, token_word, torch.full_like(token_word, w))
            sums = hidden.new_zeros(hidden.shape[0], w + 1, hidden.shape[-1])
            sums.scatter_add_(1, index.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]), hidden)
            counts = hidden.new_zeros(hidden.shape[0], w + 1)
            counts.scatter_add_(1, index, torch.ones_like(index, dtype=hidden.dtype))
            words = sums[:, :w] / counts[:, :w].clamp(min=1).unsqueeze(-1)
        return words * word_mask.unsqueeze(-1).to(words.dtype)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_word: torch.Tensor,
                word_first: torch.Tensor, word_mask: torch.Tensor, ngram_phrase: torch.Tensor,
                phrase_labels: torch.Tensor | None = None, token_type_ids: torch.Tensor | None = None) -> JointOutput:
        """Scores for every n-gram position; losses when ``phrase_labels`` are given (-1 = padding)."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**kwargs).last_hidden_state
        words = self.dropout(self._word_vectors(hidden, token_word, word_first, word_mask))
        x = words.transpose(1, 2)  # [B, H, W]
        chunk, rank = [], []
        for n, conv in enumerate(self.convs, 1):
            if x.shape[-1] < n:
                continue
            g = self.dropout(F.gelu(conv(x))).transpose(1, 2)  # [B, W-n+1, H]
            chunk.append(self.chunk_head(g).squeeze(-1))
            rank.append(self.rank_head(g).squeeze(-1))
        chunk_logits = torch.cat(chunk, dim=1).float()
        rank_scores = torch.cat(rank, dim=1).float()
        valid = ngram_phrase >= 0
        n_phrases = phrase_labels.shape[1] if phrase_labels is not None else int(ngram_phrase.max().item()) + 1
        n_phrases = max(n_phrases, 1)
        index = torch.where(valid, ngram_phrase, torch.full_like(ngram_phrase, n_phrases))
        neg_inf = torch.finfo(rank_scores.dtype).min
        phrase_scores = rank_scores.new_full((rank_scores.shape[0], n_phrases + 1), neg_inf)
        phrase_scores = phrase_scores.scatter_reduce(
            1, index, rank_scores, reduce="amax", include_self=True
        )[:, :n_phrases]
        phrase_chunk = chunk_logits.new_full((chunk_logits.shape[0], n_phrases + 1), neg_inf)
        phrase_chunk = phrase_chunk.scatter_reduce(
            1, index, chunk_logits, reduce="amax", include_self=True
        )[:, :n_phrases]
        loss = chunk_loss = rank_loss = None
        if phrase_labels is not None:
            gathered = torch.gather(phrase_labels, 1, index.clamp(max=n_phrases - 1))
            chunk_mask = valid & (gathered >= 0)
            chunk_loss = F.binary_cross_entropy_with_logits(chunk_logits[chunk_mask], gathered[chunk_mask].float())
            pair_losses = []
            for b in range(phrase_labels.shape[0]):
                pos = phrase_scores[b][phrase_labels[b] == 1]
                neg = phrase_scores[b][phrase_labels[b] == 0]
                if len(pos) and len(neg):
                    pos_all = pos.unsqueeze(1).expand(-1, len(neg)).reshape(-1)
                    neg_all = neg.unsqueeze(0).expand(len(pos), -1).reshape(-1)
                    pair_losses.append(F.margin_ranking_loss(pos_all, neg_all, torch.ones_like(pos_all),
                                                             margin=self.rank_margin))
            rank_loss = torch.stack(pair_losses).mean() if pair_losses else rank_scores.sum() * 0.0
            loss = chunk_loss + rank_loss
        return JointOutput(loss, chunk_loss, rank_loss, chunk_logits, rank_scores, phrase_scores, phrase_chunk)


@dataclass(slots=True)
class PhraseScore:
    """A candidate of one document with its ranking score (max over occurrences) and chunk probability."""

    phrase: str
    key: str
    score: float
    chunk_prob: float


@torch.no_grad()
def score_candidates(model: JointKPE, tokenizer: Any, texts: Sequence[str], *, max_length: int = 256,
                     stride: int = 64, batch_size: int = 32, device: torch.device | str | None = None
                     ) -> list[list[PhraseScore]]:
    """Every candidate n-gram of each text, scored (max over occurrences and windows), best first."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    collate = JointCollator(tokenizer, model.max_ngram)
    items = []
    for t, text in enumerate(texts):
        for jw in prepare_windows(text, tokenizer, max_length, stride, model.max_ngram):
            if jw.phrases:
                items.append((t, jw))
    best: list[dict[str, PhraseScore]] = [{} for _ in texts]
    for i in range(0, len(items), batch_size):
        chunk = items[i:i + batch_size]
        features = [_feature(jw, set()) for _, jw in chunk]
        batch = {k: v.to(device) for k, v in collate(features).items()}
        out = model(**batch)
        scores = out.phrase_scores.cpu()
        probs = torch.sigmoid(out.phrase_chunk).cpu()
        for row, (t, jw) in enumerate(chunk):
            for pid, key in enumerate(jw.phrases):
                score = float(scores[row, pid])
                prob = float(probs[row, pid])
                current = best[t].get(key)
                if current is None:
                    best[t][key] = PhraseScore(jw.surfaces[pid], key, score, prob)
                else:
                    current.score = max(current.score, score)
                    current.chunk_prob = max(current.chunk_prob, prob)
    if was_training:
        model.train()
    return [sorted(b.values(), key=lambda p: -p.score) for b in best]


def select_keyphrases(candidates: Sequence[PhraseScore], top_n: int = 10, threshold: float = 0.5) -> list[Keyphrase]:
    """Candidates the chunking head accepts (probability >= threshold), topped up to ``top_n`` by rank score."""
    accepted = [c for c in candidates if c.chunk_prob >= threshold]
    if len(accepted) < top_n:
        chosen = {c.key for c in accepted}
        accepted += [c for c in candidates if c.key not in chosen][: top_n - len(accepted)]
        accepted.sort(key=lambda c: -c.score)
    return [Keyphrase(c.phrase, c.score) for c in accepted]


def save_joint(model: JointKPE, tokenizer: Any, model_dir: Path) -> None:
    """Save model + tokenizer; SentenceTransformer loads the same dir (mean pooling over the encoder)."""
    save_model_dir(model, tokenizer, model_dir)


def setup(config: Any, base: str, tokenizer: Any) -> KindSetup:
    """A joint run: n-gram labels per window, fresh heads on ``base``, validation F1@5."""
    from kpe.train.data import train_val_docs, training_features

    train_docs, val_docs, summary = train_val_docs(config)
    settings = {"max_length": config.max_length, "stride": config.stride, "max_ngram": config.max_ngram}
    features = training_features(train_docs, partial(joint_features, tokenizer=tokenizer, **settings),
                                 tokenizer=tokenizer, settings=settings, name="joint", summary=summary)
    model = JointKPE.from_base(base, max_ngram=config.max_ngram, word_pooling=config.word_pooling,
                               rank_margin=config.rank_margin)

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        if not val_docs:
            return {}
        cands = score_candidates(m, tokenizer, [d.text for d in val_docs], max_length=config.max_length,
                                 stride=config.stride, batch_size=config.eval_batch_size)
        return keyphrase_metrics([[k.phrase for k in select_keyphrases(c)] for c in cands], val_docs)

    def save(m: torch.nn.Module, model_dir: Path) -> None:
        m.encoder.config.kpe_max_length = config.max_length
        m.encoder.config.kpe_stride = config.stride
        save_joint(m, tokenizer, model_dir)

    return KindSetup(model, features, JointCollator(tokenizer, config.max_ngram), evaluate, save,
                     is_head=lambda name: not name.startswith("encoder."), data_summary=summary)


# ----------------------------------------------------------------------------------------------- extraction

class JointExtractor:
    """The ``joint`` method: keyphrases from the span ranker above."""

    name = "joint"

    def __init__(self, model_path: str | Path, top_n: int = DEFAULT_TOP_N, threshold: float = 0.5,
                 batch_size: int = 32, device: torch.device | str = "cpu"):
        from transformers import AutoTokenizer

        self.model_path = require_model_dir(model_path, self.name)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.model = JointKPE.from_pretrained(self.model_path).to(device).eval()
        self.max_length = int(getattr(self.model.config, "kpe_max_length", 256))
        self.stride = int(getattr(self.model.config, "kpe_stride", 64))
        self.top_n = top_n
        self.threshold = threshold
        self.batch_size = batch_size
        self.device = torch.device(device)

    def extract(self, docs: list[str]) -> list[list[Keyphrase]]:
        """Accepted spans by ranking score, topped up to ``top_n``."""
        out: list[list[Keyphrase]] = [[] for _ in docs]
        keep = [i for i, d in enumerate(docs) if d and d.strip()]
        scored = score_candidates(self.model, self.tokenizer, [docs[i] for i in keep], max_length=self.max_length,
                                  stride=self.stride, batch_size=self.batch_size, device=self.device)
        for i, cands in zip(keep, scored):
            out[i] = select_keyphrases(cands, self.top_n, self.threshold)
        return out


def build_joint(model_path: str | None, config: Any = None) -> JointExtractor:
    """The ``joint`` method: a model dir saved by ``kpe.train`` (kind ``joint``)."""
    return JointExtractor(model_path, top_n=int(option(config, "top_n", DEFAULT_TOP_N)),
                          threshold=float(option(config, "threshold", 0.5)),
                          batch_size=int(option(config, "batch_size", 32)), device=device_of(config))
