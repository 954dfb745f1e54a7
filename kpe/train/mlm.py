"""The ``mlm`` model kind: domain-adaptive masked-LM pretraining on the ingested corpus, producing an encoder
dir for tagger / joint (it offers no extraction method of its own).

Masking is ``DataCollatorForLanguageModeling`` (15 %, 80/10/10); ``whole_word_mask=True`` masks whole words
(its implementation uses the offset mapping and always replaces with ``[MASK]``). ``nsp=True`` adds BERT's
next-sentence prediction (``BertForPreTraining``; BERT models only; off by default). Sentence-transformers
checkpoints such as all-MiniLM-L6-v2 ship no MLM head: it starts fresh (logged).

The loss runs the vocabulary head on the masked positions only (``MaskedPositionsMLM``, BERT-family models): the
same loss as Hugging Face's, without projecting the other 85 % of the tokens onto 30,522 words (for MiniLM that
projection is as much arithmetic as the six encoder layers).
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from kpe.datasets import GoldDocument
from kpe.train.kinds import KindSetup
from kpe.train.model_files import write_sentence_transformer_files

log = logging.getLogger(__name__)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")


def load_mlm_model(base: str, nsp: bool = False) -> Any:
    """``AutoModelForMaskedLM`` (or ``BertForPreTraining`` with NSP); logs which head weights start fresh."""
    from transformers import AutoConfig, AutoModelForMaskedLM, BertForPreTraining

    if nsp:
        config = AutoConfig.from_pretrained(base)
        if config.model_type != "bert":
            raise ValueError(f"nsp needs a BERT model; {base} is {config.model_type!r}")
        model, info = BertForPreTraining.from_pretrained(base, output_loading_info=True)
    else:
        model, info = AutoModelForMaskedLM.from_pretrained(base, output_loading_info=True)
    fresh = sorted(info.get("missing_keys", []))
    if fresh:
        log.warning("%s has no pretraining head weights: %d tensors start fresh (%s%s)", base, len(fresh),
                    ", ".join(fresh[:4]), ", ..." if len(fresh) > 4 else "")
    return model


class MaskedPositionsMLM(torch.nn.Module):
    """A BERT-family pretraining model (``.bert`` + ``.cls``: ``BertForMaskedLM``, ``BertForPreTraining``) whose
    forward applies the MLM head to the masked positions (``labels != -100``) only; returns ``.loss`` (MLM mean
    cross-entropy, plus NSP's when ``next_sentence_label`` is given), as the wrapped model would. ``.model`` is the
    wrapped model (what is saved)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    @staticmethod
    def supports(model: Any) -> bool:
        return hasattr(model, "bert") and hasattr(model, "cls")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, token_type_ids: torch.Tensor | None = None,
                next_sentence_label: torch.Tensor | None = None, **_: Any) -> Any:
        from transformers.modeling_outputs import MaskedLMOutput

        out = self.model.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        hidden, pooled = out.last_hidden_state, getattr(out, "pooler_output", None)
        masked = labels != -100
        if not bool(masked.any()):  # nothing masked in this batch: a zero loss that still has a graph
            return MaskedLMOutput(loss=hidden.sum() * 0.0)
        selected = hidden[masked]
        if next_sentence_label is not None:  # BertPreTrainingHeads: (sequence, pooled) -> (MLM, NSP) scores
            scores, relationship = self.model.cls(selected, pooled)
        else:
            scores, relationship = self.model.cls(selected), None
        loss = torch.nn.functional.cross_entropy(scores.float(), labels[masked])
        if relationship is not None:
            loss = loss + torch.nn.functional.cross_entropy(relationship.float().view(-1, 2),
                                                            next_sentence_label.view(-1))
        return MaskedLMOutput(loss=loss)


def mlm_features(docs: Sequence[GoldDocument], tokenizer: Any, max_length: int, stride: int,
                 whole_word_mask: bool = False) -> list[dict[str, list[int]]]:
    """One example per window of each text (with ``offset_mapping`` when whole-word masking needs it)."""
    features = []
    for doc in docs:
        enc = tokenizer(doc.text, max_length=max_length, stride=stride, truncation=True,
                        return_overflowing_tokens=True, return_special_tokens_mask=True,
                        return_offsets_mapping=whole_word_mask)
        for w in range(len(enc["input_ids"])):
            feature = {"input_ids": enc["input_ids"][w], "attention_mask": enc["attention_mask"][w],
                       "special_tokens_mask": enc["special_tokens_mask"][w]}
            if "token_type_ids" in enc:
                feature["token_type_ids"] = enc["token_type_ids"][w]
            if whole_word_mask:
                feature["offset_mapping"] = [list(o) for o in enc["offset_mapping"][w]]
            features.append(feature)
    return features


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def nsp_features(docs: Sequence[GoldDocument], tokenizer: Any, max_length: int, seed: int = 42
                 ) -> list[dict[str, list[int] | int]]:
    """Sentence-pair examples: the first half of a text with its second half (label 0) or another text's (1)."""
    rng = random.Random(seed)
    halves = []
    for doc in docs:
        sentences = _sentences(doc.text)
        if len(sentences) >= 2:
            cut = len(sentences) // 2
            halves.append((" ".join(sentences[:cut]), " ".join(sentences[cut:])))
    features = []
    for i, (a, b) in enumerate(halves):
        label = 0
        if len(halves) > 1 and rng.random() < 0.5:
            j = rng.randrange(len(halves) - 1)
            b = halves[j if j < i else j + 1][1]
            label = 1
        enc = tokenizer(a, b, max_length=max_length, truncation="longest_first", return_special_tokens_mask=True)
        features.append({**{k: enc[k] for k in enc.keys()}, "next_sentence_label": label})
    return features


class MLMCollator:
    """``DataCollatorForLanguageModeling`` that carries ``next_sentence_label`` through when present."""

    def __init__(self, tokenizer: Any, mlm_probability: float = 0.15, whole_word_mask: bool = False,
                 seed: int | None = None):
        import warnings

        from transformers import DataCollatorForLanguageModeling

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Random token replacement is not supported")
            self.collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=mlm_probability,
                                                            whole_word_mask=whole_word_mask, seed=seed)

        self.pad_id = tokenizer.pad_token_id or 0

    def _pad_offsets(self, features: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Pad every field by hand when ``offset_mapping`` is there (``tokenizer.pad`` does not pad it)."""
        length = max(len(f["input_ids"]) for f in features)
        fill = {"input_ids": self.pad_id, "attention_mask": 0, "special_tokens_mask": 1, "token_type_ids": 0,
                "offset_mapping": [0, 0]}
        return [{k: list(v) + [fill[k]] * (length - len(v)) if k in fill else v for k, v in f.items()}
                for f in features]

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        nsp = [f["next_sentence_label"] for f in features if "next_sentence_label" in f]
        plain = [{k: v for k, v in f.items() if k != "next_sentence_label"} for f in features]
        if "offset_mapping" in plain[0]:
            plain = self._pad_offsets(plain)
        batch = self.collator(plain)
        if len(nsp) == len(features):
            batch["next_sentence_label"] = torch.tensor(nsp, dtype=torch.long)
        return dict(batch)


def save_encoder(model: Any, tokenizer: Any, model_dir: Path) -> None:
    """Save the pretrained model (MLM head included) so tagger / joint / SentenceTransformer can start from it."""
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    write_sentence_transformer_files(model_dir, model.config.hidden_size, tokenizer)


def setup(config: Any, base: str, tokenizer: Any) -> KindSetup:
    """An MLM run: the lake's documents plus the texts of ``train_data`` benchmarks (PubMed dev split held out),
    masked with a fixed-seed validation set; the metric is the negated validation loss."""
    from kpe.train.data import SILVER, corpus_texts, load_sources, split_docs

    corpus = corpus_texts(config.lake_dir, config.exclude_doc_ids)
    if config.max_docs is not None:
        corpus = corpus[: config.max_docs]
    summary: dict[str, Any] = {"lake": {"docs": len(corpus)}} if config.lake_dir else {}
    benchmarks = [s for s in config.train_data if s != SILVER]
    if benchmarks:
        for name, source in load_sources(benchmarks, shared_data_dir=config.shared_data_dir,
                                         max_docs=config.max_docs).items():
            corpus += source
            summary[name] = {"docs": len(source), "empty_text_left_out": source.n_empty}
    train_docs, val_docs = split_docs(corpus, config.val_fraction)
    if config.max_val_docs is not None:
        val_docs = val_docs[: config.max_val_docs]
    if not train_docs:
        raise ValueError("mlm: empty corpus (no lake documents and no benchmark texts)")
    if config.nsp:
        features = nsp_features(train_docs, tokenizer, config.max_length, config.seed)
        val_features = nsp_features(val_docs, tokenizer, config.max_length, config.seed)
    else:
        features = mlm_features(train_docs, tokenizer, config.max_length, config.stride, config.whole_word_mask)
        val_features = mlm_features(val_docs, tokenizer, config.max_length, config.stride, config.whole_word_mask)
    summary["corpus"] = {"train_docs": len(train_docs), "val_docs": len(val_docs), "train_windows": len(features),
                         "whole_word_mask": config.whole_word_mask, "nsp": config.nsp}
    model = load_mlm_model(base, nsp=config.nsp)
    wrapped = MaskedPositionsMLM(model) if MaskedPositionsMLM.supports(model) else model
    collate = MLMCollator(tokenizer, config.mlm_probability, config.whole_word_mask)
    # The validation masks are drawn once, with a fixed seed, so every evaluation sees the same batches.
    val_collate = MLMCollator(tokenizer, config.mlm_probability, config.whole_word_mask, seed=config.seed)
    val_batches = [val_collate(val_features[i:i + config.eval_batch_size])
                   for i in range(0, len(val_features), config.eval_batch_size)]

    @torch.no_grad()
    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        if not val_batches:
            return {}
        was_training = m.training
        m.eval()
        device = next(m.parameters()).device
        total, n = 0.0, 0
        for batch in val_batches:
            out = m(**{k: v.to(device) for k, v in batch.items()})
            total += float(out.loss) * len(batch["input_ids"])
            n += len(batch["input_ids"])
        if was_training:
            m.train()
        loss = total / n
        return {"neg_val_loss": -loss, "val_loss": loss, "perplexity": math.exp(min(loss, 50.0))}

    def save(m: torch.nn.Module, model_dir: Path) -> None:
        save_encoder(m.model if isinstance(m, MaskedPositionsMLM) else m, tokenizer, model_dir)

    return KindSetup(wrapped, features, collate, evaluate, save,
                     is_head=lambda name: name.removeprefix("model.").startswith("cls."), data_summary=summary)
