"""Extraction with fine-tuned models: the factories ``kpe.extract.methods`` names for ``tagger``, ``joint``,
``keybert-ft`` and ``hybrid``.

Every factory is ``(model_path, config) -> Extractor`` (``.name``, ``.extract(docs) -> list[list[Keyphrase]]``).
``config`` may be ``None``, a dict or any object; these options are read when present:

* ``top_n`` (10): ranking length; the tagger tops its decoded spans up to ``top_n`` with soft spans
  (``fill=False`` keeps only the decoded spans), the joint model tops the spans its chunking head accepts up to it;
* ``batch_size`` (32 windows), ``device`` (``cuda`` when there is one, else ``cpu``);
* ``hybrid_weight``: the hybrid's weight of the tagger score (default: the value tuned at training time,
  stored in ``hybrid.json`` in the model dir, else 0.5); ``hybrid_ngrams`` (False): also rank the engine's
  stop-word-bounded n-grams;
* ``keybert-ft`` takes the ``kpe.extract.config.ExtractionConfig`` fields (others are ignored).

A tagger / joint / MLM model dir is also a SentenceTransformer dir (``modules.json``, mean pooling,
normalisation), which is what ``keybert-ft`` and ``hybrid`` embed with.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from kpe.extract.methods import Keyphrase
from kpe.phrases import normalize_phrase

log = logging.getLogger(__name__)

HYBRID_FILE = "hybrid.json"
DEFAULT_TOP_N = 10
DEFAULT_HYBRID_WEIGHT = 0.5
HYBRID_CANDIDATES = 30


def write_sentence_transformer_files(model_dir: Path | str, hidden_size: int, tokenizer: Any = None,
                                     max_seq_length: int = 256) -> None:
    """Make a Hugging Face model dir loadable by ``SentenceTransformer(model_dir)``: the encoder with mean
    pooling and L2 normalisation (the all-MiniLM-L6-v2 recipe)."""
    model_dir = Path(model_dir)
    if tokenizer is not None and getattr(tokenizer, "model_max_length", None):
        max_seq_length = min(max_seq_length, int(tokenizer.model_max_length))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (model_dir / "modules.json").write_text(json.dumps(modules, indent=2))
    (model_dir / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False}, indent=2))
    (model_dir / "1_Pooling").mkdir(parents=True, exist_ok=True)
    (model_dir / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": hidden_size, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}, indent=2))
    (model_dir / "2_Normalize").mkdir(exist_ok=True)


def _option(config: Any, name: str, default: Any) -> Any:
    if config is None:
        return default
    value = config.get(name) if isinstance(config, dict) else getattr(config, name, None)
    return default if value is None else value


def _device(config: Any) -> torch.device:
    """``device`` from the config (``auto``: cuda when available); applies ``threads`` when the config sets it."""
    threads = _option(config, "threads", None)
    if threads:
        torch.set_num_threads(int(threads))
    device = _option(config, "device", "auto")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def _require_dir(model_path: str | Path | None, method: str) -> Path:
    if not model_path:
        raise ValueError(f"method {method!r} needs a trained model dir (model_path); train one with `kpe train`")
    path = Path(model_path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a model dir (no config.json) for method {method!r}")
    return path


class TaggerExtractor:
    """Keyphrases from a fine-tuned token-classification model (see ``kpe.train.tagger``)."""

    name = "tagger"

    def __init__(self, model_path: str | Path, top_n: int = DEFAULT_TOP_N, fill: bool = True, batch_size: int = 32,
                 device: torch.device | str = "cpu", pooling: str | None = None):
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        self.model_path = _require_dir(model_path, self.name)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.model = AutoModelForTokenClassification.from_pretrained(self.model_path).to(device).eval()
        cfg = self.model.config
        self.max_length = int(getattr(cfg, "kpe_max_length", 256))
        self.stride = int(getattr(cfg, "kpe_stride", 64))
        self.pooling = pooling or getattr(cfg, "kpe_score_pooling", "mean")
        self.top_n = top_n
        self.fill = fill
        self.batch_size = batch_size
        self.device = torch.device(device)

    def word_probabilities(self, docs: Sequence[str]) -> list[tuple[dict[int, tuple[int, int]], dict[int, torch.Tensor]]]:
        """Word spans and averaged O/B/I probabilities per document."""
        from kpe.train.tagger import word_probabilities

        return word_probabilities(self.model, self.tokenizer, docs, self.max_length, self.stride,
                                  self.batch_size, self.device)

    def extract(self, docs: list[str]) -> list[list[Keyphrase]]:
        """Decoded spans, best first (topped up to ``top_n`` with soft spans when ``fill``)."""
        from kpe.train.tagger import rank_keyphrases

        out: list[list[Keyphrase]] = [[] for _ in docs]
        keep = [i for i, d in enumerate(docs) if d and d.strip()]
        for i, (spans, probs) in zip(keep, self.word_probabilities([docs[i] for i in keep])):
            out[i] = rank_keyphrases(docs[i], spans, probs, self.pooling, self.top_n if self.fill else 0)
        return out


class JointExtractor:
    """Keyphrases from a JointKPE-style span ranker (see ``kpe.train.joint``)."""

    name = "joint"

    def __init__(self, model_path: str | Path, top_n: int = DEFAULT_TOP_N, threshold: float = 0.5,
                 batch_size: int = 32, device: torch.device | str = "cpu"):
        from transformers import AutoTokenizer

        from kpe.train.joint import JointKPE

        self.model_path = _require_dir(model_path, self.name)
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
        from kpe.train.joint import score_candidates, select_keyphrases

        out: list[list[Keyphrase]] = [[] for _ in docs]
        keep = [i for i, d in enumerate(docs) if d and d.strip()]
        scored = score_candidates(self.model, self.tokenizer, [docs[i] for i in keep], max_length=self.max_length,
                                  stride=self.stride, batch_size=self.batch_size, device=self.device)
        for i, cands in zip(keep, scored):
            out[i] = select_keyphrases(cands, self.top_n, self.threshold)
        return out


def build_tagger(model_path: str | None, config: Any = None) -> TaggerExtractor:
    """The ``tagger`` method: a model dir saved by ``kpe.train`` (kind ``tagger``)."""
    return TaggerExtractor(model_path, top_n=int(_option(config, "top_n", DEFAULT_TOP_N)),
                           fill=bool(_option(config, "fill", True)), batch_size=int(_option(config, "batch_size", 32)),
                           device=_device(config))


def build_joint(model_path: str | None, config: Any = None) -> JointExtractor:
    """The ``joint`` method: a model dir saved by ``kpe.train`` (kind ``joint``)."""
    return JointExtractor(model_path, top_n=int(_option(config, "top_n", DEFAULT_TOP_N)),
                          threshold=float(_option(config, "threshold", 0.5)),
                          batch_size=int(_option(config, "batch_size", 32)), device=_device(config))


class _Renamed:
    """An extractor under another method name (other attributes come from the wrapped one)."""

    def __init__(self, inner: Any, name: str):
        self.inner = inner
        self.name = name

    def extract(self, docs: list[str]) -> list[list[Keyphrase]]:
        return self.inner.extract(docs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)


def build_keybert_ft(model_path: str | None, config: Any = None) -> Any:
    """``keybert-ft``: the KeyBERT engine (``kpe.extract.engine``) embedding with a fine-tuned encoder.

    Any model dir saved by ``kpe.train`` (tagger, joint or mlm) is a SentenceTransformer dir with mean pooling.
    """
    from kpe.extract.engine import build_kpe

    path = _require_dir(model_path, "keybert-ft")
    return _Renamed(build_kpe(str(path), _engine_options(config) or None), "keybert-ft")


def _engine_options(config: Any) -> dict[str, Any]:
    """The ``ExtractionConfig`` fields found in ``config`` (a dict, an ``ExtractionConfig`` or None)."""
    from kpe.extract.config import ExtractionConfig

    if config is None:
        return {}
    data = config if isinstance(config, dict) else (config.model_dump() if hasattr(config, "model_dump") else {})
    return {k: v for k, v in data.items() if k in ExtractionConfig.model_fields}


class HybridExtractor:
    """The tagger proposes candidates (its decoded spans, its best soft spans and, with ``ngrams=True``, the
    engine's stop-word-bounded n-grams); they are ranked by ``weight * tagger score + (1 - weight) * cosine``,
    the cosine between phrase and document embeddings of the fine-tuned encoder computed by the KeyBERT
    engine's ranker (``kpe.extract.engine``, with its embedding cache)."""

    name = "hybrid"

    def __init__(self, model_path: str | Path, top_n: int = DEFAULT_TOP_N, weight: float | None = None,
                 n_candidates: int = HYBRID_CANDIDATES, ngrams: bool = False, batch_size: int = 32,
                 device: torch.device | str = "cpu", engine_options: dict[str, Any] | None = None):
        from kpe.extract.config import ExtractionConfig
        from kpe.extract.engine import KeyphraseEngine

        self.tagger = TaggerExtractor(model_path, top_n=top_n, batch_size=batch_size, device=device)
        options = {**(engine_options or {}), "top_n": 1000, "prefilter": "none", "diversity": None,
                   "use_maxsum": False, "drop_subphrases": False, "candidate_embedding": "phrase",
                   "device": str(device)}
        self.engine = KeyphraseEngine(ExtractionConfig(**options), model_path=str(self.tagger.model_path))
        if weight is None:
            weight = stored_hybrid_weight(self.tagger.model_path)
        self.weight = float(weight)
        self.top_n = top_n
        self.n_candidates = n_candidates
        self.ngrams = ngrams

    def candidates(self, docs: Sequence[str]) -> list[list[tuple[str, float, float]]]:
        """Per document: ``(phrase, tagger score, cosine)`` for every candidate."""
        from kpe.train.tagger import decode_spans, rank_spans, soft_spans

        proposals = []
        for doc, (spans, probs) in zip(docs, self.tagger.word_probabilities(docs)):
            decoded = rank_spans(decode_spans(doc, spans, probs, self.tagger.pooling))
            soft = rank_spans(soft_spans(doc, spans, probs, self.tagger.pooling))
            best: dict[str, tuple[str, float]] = {}
            for span in [*decoded, *soft[: self.n_candidates]]:
                key = normalize_phrase(span.phrase)
                if key not in best or span.score > best[key][1]:
                    best[key] = (span.phrase, span.score)
            if self.ngrams:
                soft_score = {normalize_phrase(s.phrase): s.score for s in reversed(soft)}
                for cand in self.engine.candidates([doc])[0]:
                    key = normalize_phrase(cand.phrase)
                    if key and key not in best:
                        best[key] = (cand.phrase, soft_score.get(key, 0.0))
            proposals.append(best)
        ranked = self.engine.ranker.rank(list(docs), [[p for p, _ in best.values()] for best in proposals])
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
    weight = _option(config, "hybrid_weight", None)
    return HybridExtractor(model_path, top_n=int(_option(config, "top_n", DEFAULT_TOP_N)),
                           weight=None if weight is None else float(weight),
                           ngrams=bool(_option(config, "hybrid_ngrams", False)),
                           batch_size=int(_option(config, "batch_size", 32)), device=_device(config),
                           engine_options={k: v for k, v in _engine_options(config).items()
                                           if k in ("use_cache", "threads", "precision", "batch_tokens")})


def tune_hybrid_weight(model_dir: Path | str, docs: Sequence[Any], weights: Sequence[float] | None = None,
                       top_n: int = DEFAULT_TOP_N) -> dict[str, Any]:
    """Pick the hybrid weight with the best macro F1@5 (present gold) on ``docs`` and store it in ``hybrid.json``.

    ``docs`` have ``.text``, ``.keyphrases`` and ``.doc_id``: use a slice of the *training* data (the
    internal validation split), never a benchmark's dev set.
    """
    from kpe.evaluate.metrics import evaluate_predictions

    weights = list(weights) if weights is not None else [round(0.1 * i, 1) for i in range(11)]
    extractor = HybridExtractor(model_dir, top_n=top_n, weight=DEFAULT_HYBRID_WEIGHT,
                                engine_options={"use_cache": False})  # a new model: nothing to reuse
    cands = extractor.candidates([d.text for d in docs])
    scores = {}
    for w in weights:
        preds = [[k.phrase for k in HybridExtractor.combine(c, w, top_n)] for c in cands]
        result = evaluate_predictions(preds, [list(d.keyphrases) for d in docs], [d.text for d in docs], ks=(5, 10))
        scores[w] = result["macro"]["present"]["f1@5"]
    best = max(weights, key=lambda w: (scores[w], -abs(w - DEFAULT_HYBRID_WEIGHT)))
    summary = {"weight": best, "f1@5_by_weight": {str(w): round(s, 4) for w, s in scores.items()},
               "docs": len(docs), "tuned_on": "validation slice of the training data"}
    (Path(model_dir) / HYBRID_FILE).write_text(json.dumps(summary, indent=2))
    log.info("hybrid weight %.1f (F1@5 %.4f on %d training-validation docs)", best, scores[best], len(docs))
    return summary
