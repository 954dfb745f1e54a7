"""More documents for the span ranker: the training split tagged out of fold (``TrainConfig.ranker_folds``).

The span ranker (``kpe.train.span_ranker``) must learn from the probabilities extraction will see: a tagger's
probabilities on documents it never trained on. The validation slice gives a tenth of the data; with
``ranker_folds`` K the training split gives the rest. Its documents are cut into K folds (``kpe.train.data.fold_of``,
a hash: stable across runs), K fold taggers are trained exactly like the run (same base, sources, settings, seed,
validation slice) each without one fold, and each tags the fold it never saw with a phrase lexicon of the other folds,
so that no document's own keyphrases count in its features. A fold run's folder is removed once it has tagged its
fold. The cost is K more trainings on (K - 1) / K of the data: minutes for a benchmark-sized corpus on a CPU, hours
for the PubMed silver data on a CPU (minutes on a GPU).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

from kpe.datasets import GoldDocument
from kpe.train.data import fold_of
from kpe.train.phrase_lexicon import build_phrase_lexicon
from kpe.train.span_ranker import OutOfFold, short_texts, tag_candidates
from kpe.train.tagger import TaggerExtractor

log = logging.getLogger(__name__)

FOLDS_DIR = "ranker_folds"


def fold_config(config: Any, fold: int) -> Any:
    """The ``TrainConfig`` of fold tagger ``fold``: the run's own, less that fold, in its own folder, without the
    run's finishing steps (no hybrid tuning, no span ranker, no folds of its own) and without trackers."""
    return config.model_copy(update={
        "output_dir": Path(config.output_dir) / FOLDS_DIR / f"fold_{fold}", "holdout_fold": [fold, config.ranker_folds],
        "ranker_folds": 0, "fit_span_ranker": False, "tune_hybrid": False, "resume_from": None, "log_with": "none",
        "keep_checkpoints": 1})


def out_of_fold_candidates(config: Any, train_docs: list[GoldDocument]) -> OutOfFold:
    """Train the run's ``config.ranker_folds`` fold taggers and let each tag the training documents it left out."""
    from kpe.train.loop import train

    folds = config.ranker_folds
    started = time.perf_counter()
    docs: list[GoldDocument] = []
    candidates = []
    steps = []
    fold_by_doc = [fold_of(d, folds) for d in train_docs]
    for fold in range(folds):
        held_out = short_texts([d for d, f in zip(train_docs, fold_by_doc) if f == fold])
        log.info("span ranker: fold tagger %d of %d (training without %d documents)", fold + 1, folds, len(held_out))
        run = fold_config(config, fold)
        result = train(run)
        lexicon = build_phrase_lexicon([d for d, f in zip(train_docs, fold_by_doc) if f != fold])
        candidates += tag_candidates(TaggerExtractor(result.model_dir), held_out, lexicon,
                                     f"span ranker: fold {fold + 1}/{folds} tags its held-out documents")
        docs += held_out
        steps.append(result.steps)
        shutil.rmtree(run.output_dir, ignore_errors=True)
    shutil.rmtree(Path(config.output_dir) / FOLDS_DIR, ignore_errors=True)
    summary = {"folds": folds, "docs": dict(Counter(d.dataset for d in docs)), "steps": steps,
               "seconds": round(time.perf_counter() - started, 1)}
    log.info("span ranker: %d training documents tagged out of fold by %d fold taggers in %.0f s", len(docs), folds,
             summary["seconds"])
    return OutOfFold(docs=docs, candidates=candidates, summary=summary)
