"""Multi-label evaluation (MeSH suggestions) and the classical baseline it is compared with.

Metrics (:func:`label_metrics`), over the label vocabulary (gold descriptors outside it cannot be predicted by
any model trained on it; how much of the gold the vocabulary covers is reported beside these numbers):

* micro P / R / F1 over every (document, label) decision at the tuned threshold(s);
* macro F1: the mean per-label F1 over the labels with at least one gold document in the evaluated set;
* P@5 / R@5: of the 5 highest-scoring labels per document (thresholds ignored), the share that is gold, and the
  share of the document's gold labels among them (documents without an in-vocabulary gold label are skipped).

Thresholds (:func:`tune_thresholds`): one global threshold maximising micro F1 on the validation split, and
per-label thresholds (each label's best F1) for labels with enough validation positives, the global one
elsewhere. The baseline (:class:`TfidfBaseline`): TF-IDF (word 1-2 grams, sublinear tf) and one-vs-rest logistic
regression (scikit-learn), with the same split, labels and threshold tuning as the neural model. The logistic
regressions are fitted by SGD (``SGDClassifier(loss="log_loss")``: the same model as ``LogisticRegression``; on
1,138 labels liblinear took about 15 times as long for the same validation F1 on a sample of labels).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

THRESHOLD_GRID = tuple(round(0.02 * i, 2) for i in range(1, 50))  # 0.02 .. 0.98
MIN_POSITIVES_PER_LABEL_THRESHOLD = 5
DEFAULT_BASELINE_ALPHA = 1e-6  # L2 strength of the baseline's logistic regressions (best of 1e-5, 1e-6 on validation)


def label_matrix(label_sets: Sequence[Sequence[str]], labels: Sequence[str]) -> np.ndarray:
    """Binary matrix (documents x labels) of ``label_sets`` over the vocabulary ``labels`` (others ignored).

    int32, not int8: scikit-learn's ``LabelBinarizer`` (inside ``OneVsRestClassifier``) scrambles an int8
    indicator matrix of more than 127 labels."""
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(label_sets), len(labels)), dtype=np.int32)
    for row, names in enumerate(label_sets):
        for name in names:
            if name in index:
                out[row, index[name]] = 1
    return out


def apply_thresholds(scores: np.ndarray, thresholds: float | np.ndarray) -> np.ndarray:
    """Binary decisions: score >= threshold (a scalar, or one threshold per label)."""
    return (scores >= np.asarray(thresholds, dtype=scores.dtype)).astype(np.int32)


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(denom, dtype=float), where=denom > 0)


def label_metrics(scores: np.ndarray, gold: np.ndarray, thresholds: float | np.ndarray, k: int = 5
                  ) -> dict[str, float]:
    """Micro P/R/F1, macro F1, P@k, R@k of ``scores`` (documents x labels) against binary ``gold``."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    pred = apply_thresholds(scores, thresholds)
    n_docs = int(gold.shape[0])
    if n_docs == 0:
        return {"docs": 0}
    p, r, f, _ = precision_recall_fscore_support(gold, pred, average="micro", zero_division=0)
    present = np.flatnonzero(gold.sum(axis=0) > 0)
    macro = (float(f1_score(gold[:, present], pred[:, present], average="macro", zero_division=0))
             if len(present) else 0.0)
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(gold, top, axis=1).sum(axis=1)
    n_gold = gold.sum(axis=1)
    scored = n_gold > 0
    return {
        "docs": n_docs, "docs_with_gold": int(scored.sum()), "labels_with_gold": int(len(present)),
        "micro_precision": float(p), "micro_recall": float(r), "micro_f1": float(f), "macro_f1": macro,
        f"p@{k}": float((hits[scored] / k).mean()) if scored.any() else 0.0,
        f"r@{k}": float((hits[scored] / n_gold[scored]).mean()) if scored.any() else 0.0,
        "mean_predicted": float(pred.sum(axis=1).mean()),
    }


def best_global_threshold(scores: np.ndarray, gold: np.ndarray, grid: Sequence[float] = THRESHOLD_GRID
                          ) -> tuple[float, float]:
    """``(threshold, micro F1)`` with the best micro F1 on ``grid`` (ties: the threshold nearest 0.5)."""
    best = (0.5, -1.0)
    n_gold = int(gold.sum())
    for t in grid:
        pred = scores >= t
        tp = int(np.logical_and(pred, gold == 1).sum())
        denom = int(pred.sum()) + n_gold
        f1 = 2 * tp / denom if denom else 0.0
        if f1 > best[1] + 1e-12 or (abs(f1 - best[1]) <= 1e-12 and abs(t - 0.5) < abs(best[0] - 0.5)):
            best = (float(t), f1)
    return best


def best_label_thresholds(scores: np.ndarray, gold: np.ndarray, default: float,
                          min_positives: int = MIN_POSITIVES_PER_LABEL_THRESHOLD,
                          grid: Sequence[float] = THRESHOLD_GRID) -> np.ndarray:
    """Per label, the grid threshold with its best F1 (ties: nearest ``default``) where the label has at least
    ``min_positives`` gold documents; ``default`` elsewhere."""
    out = np.full(scores.shape[1], default, dtype=np.float32)
    grid_arr = np.asarray(grid, dtype=np.float32)
    positives = gold.sum(axis=0)
    for j in np.flatnonzero(positives >= min_positives):
        pred = scores[:, j][None, :] >= grid_arr[:, None]  # grid x docs
        g = gold[:, j][None, :] == 1
        tp = np.logical_and(pred, g).sum(axis=1)
        f1 = _f1(tp, np.logical_and(pred, ~g).sum(axis=1), np.logical_and(~pred, g).sum(axis=1))
        best = np.flatnonzero(f1 >= f1.max() - 1e-12)
        out[j] = grid_arr[best[np.argmin(np.abs(grid_arr[best] - default))]]
    return out


@dataclass
class Thresholds:
    """What is saved with a model: the global threshold, per-label thresholds, and which mode predicts."""

    global_threshold: float
    per_label: dict[str, float] = field(default_factory=dict)
    mode: str = "global"  # or "per_label"
    validation: dict[str, Any] = field(default_factory=dict)

    def vector(self, labels: Sequence[str], mode: str | None = None) -> np.ndarray:
        """One threshold per label in ``labels`` order (``mode``: global or per_label; default: ``self.mode``)."""
        if (mode or self.mode) == "global":
            return np.full(len(labels), self.global_threshold, dtype=np.float32)
        return np.asarray([self.per_label.get(label, self.global_threshold) for label in labels], dtype=np.float32)

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "global": self.global_threshold, "per_label": self.per_label,
                "validation": self.validation}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Thresholds:
        return cls(float(data["global"]), {k: float(v) for k, v in data.get("per_label", {}).items()},
                   data.get("mode", "global"), data.get("validation", {}))


def tune_thresholds(scores: np.ndarray, gold: np.ndarray, labels: Sequence[str], mode: str = "global"
                    ) -> Thresholds:
    """Global and per-label thresholds from validation scores; ``mode`` says which one predictions use."""
    if mode not in ("global", "per_label"):
        raise ValueError(f"threshold mode must be global or per_label, got {mode!r}")
    t, f1 = best_global_threshold(scores, gold)
    per_label = best_label_thresholds(scores, gold, t)
    tuned = {label: round(float(v), 4) for label, v in zip(labels, per_label) if abs(float(v) - t) > 1e-6}
    result = Thresholds(t, tuned, mode)
    result.validation = {"docs": int(gold.shape[0]), "micro_f1_global": round(f1, 4),
                         "micro_f1_per_label": round(label_metrics(scores, gold, result.vector(labels, "per_label"))
                                                     ["micro_f1"], 4) if gold.shape[0] else 0.0,
                         "labels_with_own_threshold": len(tuned)}
    return result


def top_labels(scores: np.ndarray, labels: Sequence[str], thresholds: np.ndarray, top_k: int
               ) -> list[list[tuple[str, float]]]:
    """Per row: ``(label, score)`` at or above its threshold, best first, at most ``top_k``."""
    out = []
    for row in scores:
        keep = np.flatnonzero(row >= thresholds)
        keep = keep[np.argsort(-row[keep], kind="stable")][:top_k]
        out.append([(labels[j], float(row[j])) for j in keep])
    return out


# ----------------------------------------------------------------------------------------------- baseline

class TfidfBaseline:
    """TF-IDF + one-vs-rest logistic regression (scikit-learn): the classical multi-label baseline."""

    name = "tfidf-logreg"

    def __init__(self, labels: Sequence[str], alpha: float = DEFAULT_BASELINE_ALPHA, max_features: int = 100_000,
                 epochs: int = 10, n_jobs: int = 1, seed: int = 0):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import SGDClassifier
        from sklearn.multiclass import OneVsRestClassifier

        self.labels = list(labels)
        self.vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_df=0.5, sublinear_tf=True,
                                          max_features=max_features, strip_accents="unicode")
        self.model = OneVsRestClassifier(SGDClassifier(loss="log_loss", alpha=alpha, max_iter=epochs, tol=None,
                                                       random_state=seed), n_jobs=n_jobs)
        self.train_seconds = 0.0

    def fit(self, texts: Sequence[str], label_sets: Sequence[Sequence[str]]) -> TfidfBaseline:
        """Fit on training texts and their label sets (every vocabulary label needs a positive document)."""
        started = time.perf_counter()
        y = label_matrix(label_sets, self.labels)
        missing = [self.labels[j] for j in np.flatnonzero(y.sum(axis=0) == 0)]
        if missing:
            raise ValueError(f"{len(missing)} labels have no training document, e.g. {missing[:3]}")
        self.model.fit(self.vectorizer.fit_transform(texts), y)
        self.train_seconds = time.perf_counter() - started
        return self

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities (documents x labels)."""
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self.model.predict_proba(self.vectorizer.transform(texts)).astype(np.float32)


# ----------------------------------------------------------------------------------------------- the comparison

EVAL_SPLITS = ("test", "recent")
METRIC_COLUMNS = ("micro_precision", "micro_recall", "micro_f1", "macro_f1", "p@5", "r@5", "recall_all_mesh")


def prior_scores(train_label_sets: Sequence[Sequence[str]], labels: Sequence[str], n_docs: int) -> np.ndarray:
    """Every document scored by each label's training frequency (the floor: the same labels for every paper)."""
    prior = label_matrix(train_label_sets, labels).mean(axis=0).astype(np.float32)
    return np.tile(prior, (n_docs, 1))


def _coverage(label_sets: Sequence[Sequence[str]], labels: Sequence[str]) -> float:
    """Share of the assigned descriptors that are in the label vocabulary."""
    vocab = set(labels)
    assigned = sum(len(s) for s in label_sets)
    return sum(1 for s in label_sets for x in s if x in vocab) / assigned if assigned else 0.0


def compare_label_models(data: Any, model_dir: Any = None, *, baseline: bool = True,
                         baseline_alpha: float = DEFAULT_BASELINE_ALPHA,
                         splits: Sequence[str] = EVAL_SPLITS) -> dict[str, Any]:
    """The fine-tuned classifier (``model_dir``, its own labels and thresholds), the TF-IDF + logistic
    regression baseline (trained on ``data``'s training split, thresholds tuned on its validation split) and the
    label-prior floor, each scored on ``splits`` of ``data`` (a ``kpe.mesh_data.MeshData``).

    Returns ``{"labels", "data", "baseline_train_seconds", "results": [{"model", "thresholds", "split", metrics}]}``;
    the classifier's label vocabulary is used for every row, so the rows compare like with like. Besides
    :func:`label_metrics`, ``recall_all_mesh`` is the micro recall over *every* descriptor the indexers assigned
    (in the vocabulary or not): what a later decade's new descriptors cost.
    """
    labels = list(data.labels)
    out: dict[str, Any] = {"data": data.summary, "results": []}
    texts = {name: [d.text for d in data.split(name)] for name in ("train", "validation", *splits)}
    gold_sets = {name: [d.labels for d in data.split(name)] for name in texts}
    scorers: list[tuple[str, Any, Thresholds]] = []
    if model_dir is not None:
        from kpe.train.classify import load_labeler, load_thresholds

        labeler = load_labeler(model_dir)
        labels = labeler.labels
        thresholds = load_thresholds(model_dir)
        out["model_dir"] = str(model_dir)
        scorers.append(("classifier", labeler.scores, thresholds))
    out["labels"] = len(labels)
    train_gold = label_matrix(gold_sets["train"], labels)
    fitted = [labels[j] for j in np.flatnonzero(train_gold.sum(axis=0) > 0)]
    if baseline and fitted:
        model = TfidfBaseline(fitted, alpha=baseline_alpha).fit(texts["train"], gold_sets["train"])
        columns = [labels.index(label) for label in fitted]

        def baseline_scores(t: Sequence[str]) -> np.ndarray:
            full = np.zeros((len(t), len(labels)), dtype=np.float32)
            full[:, columns] = model.scores(t)
            return full

        tuned = tune_thresholds(baseline_scores(texts["validation"]), label_matrix(gold_sets["validation"], labels),
                                labels)
        out["baseline_train_seconds"] = round(model.train_seconds, 1)
        out["baseline_features"] = len(model.vectorizer.vocabulary_)
        scorers.append((model.name, baseline_scores, tuned))
    prior_t = tune_thresholds(prior_scores(gold_sets["train"], labels, len(texts["validation"])),
                              label_matrix(gold_sets["validation"], labels), labels)
    scorers.append(("label-prior", lambda t: prior_scores(gold_sets["train"], labels, len(t)), prior_t))
    for name, scorer, thresholds in scorers:
        for split in splits:
            if not texts[split]:
                continue
            scores = scorer(texts[split])
            gold = label_matrix(gold_sets[split], labels)
            modes = ("global", "per_label") if name != "label-prior" else ("global",)
            coverage = _coverage(gold_sets[split], labels)
            for mode in modes:
                metrics = label_metrics(scores, gold, thresholds.vector(labels, mode))
                metrics["recall_all_mesh"] = metrics["micro_recall"] * coverage
                out["results"].append({"model": name, "thresholds": mode, "split": split, **metrics})
    return out
