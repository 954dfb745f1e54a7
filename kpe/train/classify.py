"""The ``classify`` model kind: multi-label MeSH suggestions from an encoder with a classification layer.

* data: documents of the Parquet lake with MeSH and an abstract (``kpe.mesh_data``), title + abstract cut to
  ``max_length`` tokens; labels = the descriptors of at least ``min_label_docs`` training documents;
* model and loss: the encoder, mean pooling over its tokens (or the [CLS] vector), dropout, one linear layer
  with a logit per label (its bias starts at each label's training prior), ``BCEWithLogitsLoss``;
* validation: micro F1 at the best global threshold on the validation split (what picks the checkpoint), plus
  macro F1, P@5 and R@5 (``kpe.evaluate.labels``);
* saving: the encoder in Hugging Face format (also a SentenceTransformer dir), the tokenizer, the layer
  (``classifier.pt``), ``labels.json`` (label names and settings) and, once training is done, ``thresholds.json``
  (global and per-label thresholds tuned on the validation split).

Use a saved model with :func:`load_labeler`::

    labeler = load_labeler("data/models/classify/model")
    labeler.predict(["Title. Abstract ..."], top_k=10)   # [[("Humans", 0.98), ("Rats", 0.71), ...]]
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kpe.evaluate.labels import (
    Thresholds,
    best_global_threshold,
    label_matrix,
    label_metrics,
    top_labels,
    tune_thresholds,
)
from kpe.mesh_data import LabelledDocument, MeshData, build_mesh_data
from kpe.train.kinds import KindSetup
from kpe.train.model_files import save_model_dir
from kpe.train.pooling import mean_pool

log = logging.getLogger(__name__)

LABELS_FILE = "labels.json"
HEAD_FILE = "classifier.pt"
THRESHOLDS_FILE = "thresholds.json"
SCHEME = "mesh"


class LabelClassifier(torch.nn.Module):
    """Encoder + pooling + dropout + linear layer; ``forward(..., labels=multi-hot)`` returns the BCE loss."""

    def __init__(self, encoder: Any, n_labels: int, pooling: str = "mean", dropout: float = 0.1):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be mean or cls, got {pooling!r}")
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = torch.nn.Dropout(dropout)
        self.classifier = torch.nn.Linear(encoder.config.hidden_size, n_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> Any:
        from transformers.modeling_outputs import SequenceClassifierOutput

        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        pooled = hidden[:, 0] if self.pooling == "cls" else mean_pool(hidden, attention_mask)
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float())
        return SequenceClassifierOutput(loss=loss, logits=logits)


def init_bias_from_priors(model: LabelClassifier, label_rows: Sequence[Sequence[int]], n_labels: int) -> None:
    """Start each label's bias at the logit of its training frequency (a rare label starts near 'no')."""
    counts = np.zeros(n_labels)
    for row in label_rows:
        counts[list(row)] += 1
    prior = np.clip((counts + 0.5) / (len(label_rows) + 1.0), 1e-4, 1 - 1e-4)
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor(np.log(prior / (1 - prior)), dtype=model.classifier.bias.dtype))


def encode(tokenizer: Any, docs: Sequence[LabelledDocument], labels: Sequence[str], max_length: int
           ) -> list[dict[str, Any]]:
    """One feature per document: token ids (title + abstract, truncated) and the indices of its labels."""
    index = {label: i for i, label in enumerate(labels)}
    enc = tokenizer([d.text for d in docs], truncation=True, max_length=max_length)
    return [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
             "label_ids": [index[x] for x in d.labels if x in index]} for i, d in enumerate(docs)]


class Collate:
    """Pads token ids and turns label indices into a multi-hot ``labels`` tensor."""

    def __init__(self, tokenizer: Any, n_labels: int):
        self.tokenizer = tokenizer
        self.n_labels = n_labels

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer.pad([{"input_ids": f["input_ids"], "attention_mask": f["attention_mask"]}
                                    for f in features], return_tensors="pt")
        labels = torch.zeros(len(features), self.n_labels)
        for row, f in enumerate(features):
            labels[row, f["label_ids"]] = 1.0
        batch["labels"] = labels
        return dict(batch)


@torch.no_grad()
def label_scores(model: LabelClassifier, tokenizer: Any, texts: Sequence[str], max_length: int,
                 batch_size: int = 32, device: torch.device | str | None = None) -> np.ndarray:
    """Sigmoid scores (texts x labels), float32."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(texts), batch_size):
        batch = tokenizer(list(texts[i:i + batch_size]), truncation=True, max_length=max_length, padding=True,
                          return_tensors="pt")
        batch = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        out.append(torch.sigmoid(model(**batch).logits.float()).cpu().numpy())
    if was_training:
        model.train()
    n_labels = model.classifier.out_features
    return np.concatenate(out) if out else np.zeros((0, n_labels), dtype=np.float32)


def save_classifier(model: LabelClassifier, tokenizer: Any, model_dir: Path, labels: Sequence[str],
                    settings: dict[str, Any]) -> None:
    """Encoder (Hugging Face + SentenceTransformer layout), tokenizer, ``classifier.pt`` and ``labels.json``."""
    model_dir = save_model_dir(model.encoder, tokenizer, model_dir, kpe_kind="classify")
    torch.save({k: v.detach().float().cpu() for k, v in model.classifier.state_dict().items()}, model_dir / HEAD_FILE)
    (model_dir / LABELS_FILE).write_text(json.dumps(
        {"kind": "classify", "scheme": SCHEME, "pooling": model.pooling, **settings, "labels": list(labels)},
        indent=1))


def load_classifier(model_dir: str | Path, device: torch.device | str = "cpu"
                    ) -> tuple[LabelClassifier, Any, dict[str, Any]]:
    """``(model, tokenizer, labels.json)`` of a saved ``classify`` model dir."""
    from transformers import AutoModel, AutoTokenizer

    model_dir = Path(model_dir)
    if not (model_dir / LABELS_FILE).is_file():
        raise FileNotFoundError(f"{model_dir} is not a classify model dir (no {LABELS_FILE}); "
                                "train one with `python -m kpe.train --kind classify`")
    meta = json.loads((model_dir / LABELS_FILE).read_text())
    model = LabelClassifier(AutoModel.from_pretrained(model_dir), len(meta["labels"]), meta.get("pooling", "mean"))
    model.classifier.load_state_dict(torch.load(model_dir / HEAD_FILE, map_location="cpu", weights_only=True))
    return model.to(device).eval(), AutoTokenizer.from_pretrained(model_dir), meta


def load_thresholds(model_dir: str | Path) -> Thresholds:
    """The thresholds tuned at training time; a model saved without them predicts at 0.5 (logged)."""
    path = Path(model_dir) / THRESHOLDS_FILE
    if path.is_file():
        return Thresholds.from_dict(json.loads(path.read_text()))
    log.warning("no %s in %s: labels are predicted at a 0.5 threshold", THRESHOLDS_FILE, model_dir)
    return Thresholds(0.5)


@dataclass
class Labeler:
    """A loaded ``classify`` model: ``predict`` gives, per text, ``(label, score)`` at or above the tuned
    threshold(s), best first, at most ``top_k``."""

    model: LabelClassifier
    tokenizer: Any
    labels: list[str]
    thresholds: np.ndarray
    max_length: int
    model_dir: Path
    scheme: str = SCHEME
    batch_size: int = 32

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Sigmoid scores (texts x labels)."""
        return label_scores(self.model, self.tokenizer, list(texts), self.max_length, self.batch_size)

    def predict(self, texts: list[str], top_k: int = 10) -> list[list[tuple[str, float]]]:
        """Labels above threshold per text, best first, at most ``top_k`` (an empty text gets none)."""
        out: list[list[tuple[str, float]]] = [[] for _ in texts]
        keep = [i for i, t in enumerate(texts) if t and t.strip()]
        if keep and top_k > 0:
            ranked = top_labels(self.scores([texts[i] for i in keep]), self.labels, self.thresholds, top_k)
            for i, row in zip(keep, ranked):
                out[i] = row
        return out


def load_labeler(model_dir: str | Path, device: torch.device | str = "cpu", batch_size: int = 32) -> Labeler:
    """A saved ``classify`` model with its tuned thresholds (``thresholds.json``, the mode it names)."""
    model, tokenizer, meta = load_classifier(model_dir, device)
    thresholds = load_thresholds(model_dir)
    labels = list(meta["labels"])
    return Labeler(model, tokenizer, labels, thresholds.vector(labels), int(meta.get("max_length", 256)),
                   Path(model_dir), meta.get("scheme", SCHEME), batch_size)


# ----------------------------------------------------------------------------------------------- the kind

def mesh_data_of(config: Any) -> MeshData:
    """The run's MeSH data: the lake's labelled documents, ``max_docs`` training documents at most (a stable
    sample; labels are counted on that sample)."""
    import hashlib
    from dataclasses import replace

    from kpe.mesh_data import label_vocabulary, summarize

    data = build_mesh_data(config.lake_dir, config.min_label_docs, config.exclude_doc_ids,
                           config.holdout_from_year, config.val_fraction)
    if config.max_docs is not None:
        train = sorted(data.split("train"), key=lambda d: hashlib.sha256(f"sample:{d.doc_id}".encode()).digest())
        dropped = {d.doc_id for d in train[config.max_docs:]}
        docs = [d if d.doc_id not in dropped else replace(d, split="unused") for d in data.documents]
        data = MeshData([d for d in docs if d.split != "unused"], [], data.min_docs)
        data.labels = label_vocabulary(data.documents, data.min_docs)
        data.summary = summarize(data)
    return data


def setup(config: Any, base: str, tokenizer: Any) -> KindSetup:
    """A classify run: MeSH documents of the lake, a fresh label layer on ``base``, validation micro F1."""
    from transformers import AutoModel

    data = mesh_data_of(config)
    labels = data.labels
    if not labels:
        raise ValueError(f"no MeSH descriptor occurs in {data.min_docs} training documents of {config.lake_dir}")
    train_docs, val_docs = data.split("train"), data.split("validation")
    if config.max_val_docs is not None:
        val_docs = val_docs[: config.max_val_docs]
    features = encode(tokenizer, train_docs, labels, config.max_length)
    model = LabelClassifier(AutoModel.from_pretrained(base), len(labels))
    init_bias_from_priors(model, [f["label_ids"] for f in features], len(labels))
    val_gold = label_matrix([d.labels for d in val_docs], labels)
    summary = {"mesh": {**data.summary, "train_docs_used": len(train_docs), "val_docs_used": len(val_docs)}}
    settings = {"max_length": config.max_length, "min_label_docs": data.min_docs,
                "holdout_from_year": config.holdout_from_year}

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        if not val_docs:
            return {}
        scores = label_scores(m, tokenizer, [d.text for d in val_docs], config.max_length, config.eval_batch_size)
        threshold, _ = best_global_threshold(scores, val_gold)  # what tune_thresholds would pick as global
        return {**label_metrics(scores, val_gold, threshold), "threshold": threshold}

    def save(m: torch.nn.Module, model_dir: Path) -> None:
        save_classifier(m, tokenizer, model_dir, labels, settings)

    def finish(model_dir: Path) -> dict[str, Any]:
        return {"thresholds": tune_saved_model(model_dir, val_docs, config.threshold_mode)}

    return KindSetup(model, features, Collate(tokenizer, len(labels)), evaluate, save,
                     is_head=lambda name: name.startswith("classifier"), data_summary=summary,
                     finish=finish if val_docs else None)


def tune_saved_model(model_dir: Path | str, val_docs: Sequence[LabelledDocument], mode: str = "global"
                     ) -> dict[str, Any]:
    """Tune global and per-label thresholds of a saved model on the validation documents; ``thresholds.json``."""
    model, tokenizer, meta = load_classifier(model_dir)
    labels = meta["labels"]
    scores = label_scores(model, tokenizer, [d.text for d in val_docs], int(meta.get("max_length", 256)))
    thresholds = tune_thresholds(scores, label_matrix([d.labels for d in val_docs], labels), labels, mode)
    (Path(model_dir) / THRESHOLDS_FILE).write_text(json.dumps(thresholds.as_dict(), indent=1))
    log.info("thresholds: global %.2f (validation micro F1 %.4f), %d labels with their own, mode %s",
             thresholds.global_threshold, thresholds.validation["micro_f1_global"],
             thresholds.validation["labels_with_own_threshold"], mode)
    return {"mode": mode, "global": thresholds.global_threshold, **thresholds.validation}


# ----------------------------------------------------------------------------------------------- the gate

#: A candidate with no production model to beat must reach this micro F1 on the gate set: above what scoring
#: every paper by the label frequencies alone reaches (0.291 on the shared MEDLINE files' held-out split).
GATE_FLOOR = 0.3


def gate_evaluate(model_dir: Path | str, limit: int | None = None, shared_data_dir: Path | str | None = None,
                  lake_dir: Path | str | None = None) -> dict[str, Any]:
    """The gate's measurement: the model's labels and thresholds on the held-out split of the lake's MeSH
    documents (``split_of(doc_id) == "dev"``: never trained on), ``main`` = micro F1; ``limit``: the first
    documents only. ``shared_data_dir`` is not used (the data is the lake: ``lake_dir``, default the setting)."""
    from kpe.settings import get_settings

    meta = json.loads((Path(model_dir) / LABELS_FILE).read_text())
    data = build_mesh_data(lake_dir or get_settings().lake_dir, meta.get("min_label_docs"),
                           holdout_from_year=meta.get("holdout_from_year"))
    docs = data.split("test")[:limit] if limit else data.split("test")
    if not docs:
        raise ValueError("no held-out document with MeSH and an abstract in the lake: nothing to gate on")
    labeler = load_labeler(model_dir)
    gold = label_matrix([d.labels for d in docs], labeler.labels)
    metrics = label_metrics(labeler.scores([d.text for d in docs]), gold, labeler.thresholds)
    return {**metrics, "set": "mesh held-out split", "main": metrics["micro_f1"], "main_metric": "micro_f1"}
