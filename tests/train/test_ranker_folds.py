"""The span ranker's out-of-fold training data (``ranker_folds``): folds that partition the training split of real
Inspec abstracts and leave the validation slice alone, fold taggers that never see their fold, a ranker fitted on
every training document tagged out of fold, and settings that make no sense refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from kpe.train import TrainConfig, train
from kpe.train.data import fold_of, train_val_docs, training_key
from kpe.train.ranker_folds import FOLDS_DIR, fold_config
from kpe.train.span_ranker import MIN_SCORES, RANKER_SUMMARY, fit_model_ranker


def _keys(docs) -> set[str]:
    return {training_key(d) for d in docs}


def test_fold_taggers_train_on_every_fold_but_their_own_and_share_the_validation_slice(shared_data: Path):
    config = TrainConfig(kind="tagger", train_data=["inspec", "semeval2017"], shared_data_dir=shared_data,
                         max_docs=150, ranker_folds=3, output_dir=Path("unused"))
    train_docs, val_docs, summary = train_val_docs(config, capped=False)
    folds = [_keys(d for d in train_docs if fold_of(d, 3) == k) for k in range(3)]
    assert set().union(*folds) == _keys(train_docs) and sum(map(len, folds)) == len(train_docs)
    assert all(len(f) > len(train_docs) / 6 for f in folds)  # a hash: roughly a third each
    for k, fold in enumerate(folds):
        run = fold_config(config, k)
        assert run.holdout_fold == [k, 3] and run.ranker_folds == 0 and not run.fit_span_ranker
        assert Path(run.output_dir) == Path("unused") / FOLDS_DIR / f"fold_{k}"
        fold_train, fold_val, fold_summary = train_val_docs(run, capped=False)
        assert _keys(fold_train) == _keys(train_docs) - fold and _keys(fold_val) == _keys(val_docs)
        for name in ("inspec", "semeval2017"):
            assert fold_summary[name]["held_out_fold"] == f"{k + 1} of 3"
            assert fold_summary[name]["held_out_dev"] == summary[name]["held_out_dev"]
            assert fold_summary[name]["train_docs"] == sum(d.dataset == name for d in fold_train)


@pytest.mark.parametrize("settings, message", [
    ({"ranker_folds": 1}, "ranker_folds 1"),
    ({"ranker_folds": 2, "kind": "joint"}, "ranker_folds 2"),
    ({"ranker_folds": 2, "fit_span_ranker": False}, "ranker_folds 2"),
    ({"holdout_fold": [3, 3]}, "holdout_fold"),
    ({"holdout_fold": [0]}, "holdout_fold"),
])
def test_fold_settings_that_make_no_sense_are_refused(settings: dict, message: str):
    with pytest.raises(ValidationError, match=message):
        TrainConfig(**{"kind": "tagger", "train_data": ["inspec"], **settings})


def test_a_tagger_run_with_ranker_folds_fits_its_ranker_on_the_training_split_tagged_out_of_fold(
        shared_data: Path, tiny_encoder: Path, tmp_path: Path):
    result = train(TrainConfig(kind="tagger", base=str(tiny_encoder), train_data=["inspec"], max_docs=40, max_steps=2,
                               ranker_folds=2, output_dir=tmp_path / "run", shared_data_dir=shared_data,
                               max_length=128, stride=32, batch_size=4, eval_batch_size=16, log_with="none",
                               max_val_docs=4, tune_hybrid=False, num_threads=1, precision="fp32"))
    data = result.data_summary
    summary = data["span_ranker"]
    assert summary["out_of_fold"]["folds"] == 2 and summary["out_of_fold"]["steps"] == [2, 2]
    assert summary["out_of_fold"]["docs"] == {"inspec": data["inspec"]["train_docs"]}  # every training abstract
    assert summary["docs"] == {"inspec": data["inspec"]["val_docs"]} and summary["min_score"] in MIN_SCORES
    assert "tagged out of fold" in summary["fitted_on"]
    assert not (tmp_path / "run" / FOLDS_DIR).exists()  # the fold runs are gone once they have tagged their fold
    stored = json.loads((result.model_dir / RANKER_SUMMARY).read_text())
    assert stored["out_of_fold"] == summary["out_of_fold"]
    assert "tagged out of fold" in (result.model_dir / "README.md").read_text()  # the model card says so

    model = tmp_path / "val_only"  # the same tagger's ranker from the validation slice alone sees a tenth as much
    shutil.copytree(result.model_dir, model)
    val_docs = train_val_docs(TrainConfig(kind="tagger", train_data=["inspec"], max_docs=40,
                                          shared_data_dir=shared_data), capped=False)[1]
    alone = fit_model_ranker(model, val_docs)
    assert alone["out_of_fold"] is None and alone["docs"] == summary["docs"]
    assert summary["candidates"] > 5 * alone["candidates"]
