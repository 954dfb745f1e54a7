"""One Accelerate training loop for the tagger, the joint span ranker and masked-LM pretraining.

Read top to bottom: set up (accelerator, seed, data, model, optimizer, schedule), ``accelerator.prepare``,
(resume), loop (accumulate, clip, step), evaluate each epoch, keep the best model, checkpoint, stop early.

Usage::

    from kpe.train import TrainConfig, train
    result = train(TrainConfig(kind="tagger", train_data=["inspec"], output_dir=Path("runs/tagger")))
    result.model_dir   # Hugging Face model dir with README.md model card

or ``python -m kpe.train --kind tagger --train-data inspec --output-dir runs/tagger`` (also under
``accelerate launch -m kpe.train ...`` for GPUs / several processes).
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from kpe.encoders import resolve_encoder
from kpe.train.config import TrainConfig, TrainResult
from kpe.train.data import KeyphraseDoc, corpus_texts, load_sources, split_docs

log = logging.getLogger(__name__)

MAIN_METRIC = {"tagger": "f1@5", "joint": "f1@5", "mlm": "neg_val_loss"}


# ----------------------------------------------------------------------------------------------- metrics

def keyphrase_metrics(predictions: Sequence[Sequence[str]], docs: Sequence[KeyphraseDoc]) -> dict[str, float]:
    """Validation metrics by ``kpe.evaluate.metrics``: macro F1@5, F1@10, F1@M over present gold (strict P@k)."""
    from kpe.evaluate.metrics import evaluate_predictions

    result = evaluate_predictions(predictions, [d.keyphrases for d in docs], [d.text for d in docs],
                                  [d.doc_id for d in docs], ks=(5, 10))
    present = result["macro"]["present"]
    return {"f1@5": present["f1@5"], "f1@10": present["f1@10"], "f1@M": present["f1@M"],
            "mean_predicted": result["n_pred"] / max(result["n_docs"], 1),
            "docs_scored": result["n_docs_scored"]["present"]}


# ----------------------------------------------------------------------------------------------- tasks

@dataclass
class Task:
    """What the loop needs from one kind of model."""

    model: torch.nn.Module
    tokenizer: Any
    train_features: list[dict[str, Any]]
    collate: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]
    evaluate: Callable[[torch.nn.Module], dict[str, float]]
    save: Callable[[torch.nn.Module, Path], None]
    is_head: Callable[[str], bool]
    data_summary: dict[str, Any] = field(default_factory=dict)
    val_docs: list[KeyphraseDoc] = field(default_factory=list)


def _keyphrase_docs(config: TrainConfig) -> tuple[list[KeyphraseDoc], list[KeyphraseDoc], dict[str, Any]]:
    sources = load_sources(config.train_data, lake_dir=config.lake_dir, warehouse_path=config.warehouse_path,
                           shared_data_dir=config.shared_data_dir, max_docs=config.max_docs)
    train_docs: list[KeyphraseDoc] = []
    val_docs: list[KeyphraseDoc] = []
    summary: dict[str, Any] = {}
    for name, source in sources.items():
        tr, va = split_docs(source, config.val_fraction)
        train_docs += tr
        val_docs += va
        summary[name] = {"docs": len(source), "train_docs": len(tr), "val_docs": len(va),
                         "empty_text_left_out": source.n_empty,
                         "phrases": sum(len(d.keyphrases) for d in source)}
    if not train_docs:
        raise ValueError(f"no training documents in {config.train_data}")
    if config.max_val_docs is not None:
        val_docs = val_docs[: config.max_val_docs]
    if not val_docs:
        log.warning("no validation documents (split_of gave none): no early stopping, the last model is kept")
    return train_docs, val_docs, summary


def _merge_alignment(summary: dict[str, Any], stats: dict[str, Any]) -> None:
    for name, s in stats.items():
        summary.setdefault(name, {})["alignment"] = s.as_dict()
        log.info("alignment %s: %d of %d gold phrases unaligned (%.1f%%), e.g. %s", name, s.n_unaligned,
                 s.n_phrases, 100 * s.share_unaligned, s.examples[:3])


def _tagger_task(config: TrainConfig, base: str, tokenizer: Any) -> Task:
    from transformers import DataCollatorForTokenClassification

    from kpe.train.tagger import load_tagger_model, predict_keyphrases, save_tagger, tagger_features

    train_docs, val_docs, summary = _keyphrase_docs(config)
    features, stats = tagger_features(train_docs, tokenizer, config.max_length, config.stride)
    _merge_alignment(summary, stats)
    model = load_tagger_model(base)

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        if not val_docs:
            return {}
        preds = predict_keyphrases(m, tokenizer, [d.text for d in val_docs], max_length=config.max_length,
                                   stride=config.stride, batch_size=config.eval_batch_size,
                                   pooling=config.score_pooling, fill_to=10)
        return keyphrase_metrics([[k.phrase for k in p] for p in preds], val_docs)

    def save(m: torch.nn.Module, model_dir: Path) -> None:
        save_tagger(m, tokenizer, model_dir, {"kpe_kind": "tagger", "kpe_score_pooling": config.score_pooling,
                                              "kpe_max_length": config.max_length, "kpe_stride": config.stride})

    return Task(model, tokenizer, features, DataCollatorForTokenClassification(tokenizer), evaluate, save,
                is_head=lambda name: name.startswith("classifier"), data_summary=summary, val_docs=val_docs)


def _joint_task(config: TrainConfig, base: str, tokenizer: Any) -> Task:
    from kpe.train.joint import JointCollator, JointKPE, joint_features, save_joint, score_candidates, select_keyphrases

    train_docs, val_docs, summary = _keyphrase_docs(config)
    features, stats = joint_features(train_docs, tokenizer, config.max_length, config.stride, config.max_ngram)
    _merge_alignment(summary, stats)
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

    return Task(model, tokenizer, features, JointCollator(tokenizer, config.max_ngram), evaluate, save,
                is_head=lambda name: not name.startswith("encoder."), data_summary=summary, val_docs=val_docs)


def _mlm_task(config: TrainConfig, base: str, tokenizer: Any) -> Task:
    from kpe.train.mlm import MLMCollator, load_mlm_model, mlm_features, nsp_features, save_encoder

    corpus = corpus_texts(config.lake_dir, config.warehouse_path)
    if config.max_docs is not None:
        corpus = corpus[: config.max_docs]
    summary: dict[str, Any] = {"lake": {"docs": len(corpus)}} if config.lake_dir else {}
    benchmarks = [s for s in config.train_data if s != "pubmed"]
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
        save_encoder(m, tokenizer, model_dir)

    return Task(model, tokenizer, features, collate, evaluate, save,
                is_head=lambda name: name.startswith("cls."), data_summary=summary)


_TASKS = {"tagger": _tagger_task, "joint": _joint_task, "mlm": _mlm_task}


# ----------------------------------------------------------------------------------------------- loop state

@dataclass
class Progress:
    """Loop position and early-stopping state; saved with every checkpoint (``register_for_checkpointing``)."""

    global_step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    best: float | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    bad_evals: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    wall_seconds: float = 0.0  # of the runs before the last checkpoint (a resumed run adds its own)
    samples: int = 0

    def state_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def _param_groups(model: torch.nn.Module, config: TrainConfig, is_head: Callable[[str], bool]) -> list[dict[str, Any]]:
    head_lr = config.head_learning_rate or config.learning_rate
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name or "norm." in name
        groups.setdefault((is_head(name), no_decay), []).append(param)
    return [
        {"params": params, "lr": head_lr if head else config.learning_rate,
         "weight_decay": 0.0 if no_decay else config.weight_decay}
        for (head, no_decay), params in groups.items()
    ]


def _checkpoint_to_resume(config: TrainConfig) -> Path | None:
    if not config.resume_from:
        return None
    if config.resume_from == "latest":
        found = sorted(config.checkpoints_dir().glob("step_*"))
        if not found:
            log.warning("resume_from=latest but no checkpoint in %s: starting fresh", config.checkpoints_dir())
            return None
        return found[-1]
    path = Path(config.resume_from)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint to resume from not found: {path}")
    return path


def _tracker_config(config: TrainConfig) -> dict[str, Any]:
    out = {}
    for key, value in config.model_dump().items():
        out[key] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out


def train(config: TrainConfig) -> TrainResult:
    """Train one model as configured; returns where the best model is and how the run went."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, ProjectConfiguration, set_seed
    from tqdm.auto import tqdm
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    started = time.perf_counter()
    output_dir = Path(config.output_dir)
    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with=None if config.log_with == "none" else config.log_with,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(config.logs_dir())),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    set_seed(config.seed)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    base = resolve_encoder(config.base)
    log.info("training %s from %s on %s (%s, %d process(es), mixed precision %s)", config.kind, base,
             config.train_data, accelerator.device, accelerator.num_processes, accelerator.mixed_precision)
    tokenizer = AutoTokenizer.from_pretrained(base)
    task = _TASKS[config.kind](config, base, tokenizer)
    if not task.train_features:
        raise ValueError(f"{config.kind}: no training examples after tokenization")

    train_dl = DataLoader(task.train_features, batch_size=config.batch_size, shuffle=True,
                          collate_fn=task.collate, num_workers=config.num_workers)
    optimizer = torch.optim.AdamW(_param_groups(task.model, config, task.is_head), lr=config.learning_rate)
    model, optimizer, train_dl = accelerator.prepare(task.model, optimizer, train_dl)
    steps_per_epoch = max(1, math.ceil(len(train_dl) / config.gradient_accumulation_steps))
    # max_steps, when set, replaces epochs (as in transformers' examples)
    total_steps = config.max_steps or steps_per_epoch * config.epochs
    epochs = math.ceil(total_steps / steps_per_epoch)
    scheduler = get_linear_schedule_with_warmup(
        optimizer,
        num_warmup_steps=int(config.warmup_ratio * total_steps) * accelerator.num_processes,
        num_training_steps=total_steps * accelerator.num_processes,
    )
    scheduler = accelerator.prepare(scheduler)
    progress = Progress()
    accelerator.register_for_checkpointing(progress)

    checkpoint = _checkpoint_to_resume(config)
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        log.info("resumed from %s at step %d (epoch %d, batch %d)", checkpoint, progress.global_step,
                 progress.epoch, progress.batches_in_epoch)
    earlier_seconds = progress.wall_seconds
    if config.log_with != "none":
        accelerator.init_trackers(f"kpe-{config.kind}", config=_tracker_config(config))

    main_metric = MAIN_METRIC[config.kind]
    model_dir = config.model_dir()
    bar = tqdm(total=total_steps, initial=progress.global_step, disable=not accelerator.is_main_process,
               desc=f"train {config.kind}")
    stop = progress.global_step >= total_steps
    running_loss, running_n = 0.0, 0
    while not stop and progress.epoch < epochs:
        epoch = progress.epoch
        train_dl.set_epoch(epoch)
        batches = (accelerator.skip_first_batches(train_dl, progress.batches_in_epoch)
                   if progress.batches_in_epoch else train_dl)
        model.train()
        epoch_started = time.perf_counter()
        finished_epoch = True
        for batch in batches:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            progress.batches_in_epoch += 1
            progress.samples += len(batch["input_ids"]) * accelerator.num_processes
            running_loss += float(loss.detach())
            running_n += 1
            if accelerator.sync_gradients:
                progress.global_step += 1
                bar.update(1)
                if progress.global_step % 10 == 0 or progress.global_step == total_steps:
                    values = {"train/loss": running_loss / running_n, "train/lr": scheduler.get_last_lr()[0],
                              "train/epoch": epoch + progress.batches_in_epoch / len(train_dl)}
                    bar.set_postfix(loss=f"{values['train/loss']:.4f}")
                    accelerator.log(values, step=progress.global_step)
                    running_loss, running_n = 0.0, 0
                if progress.global_step >= total_steps:
                    stop = True
                    finished_epoch = progress.batches_in_epoch >= len(train_dl)
                    break
        progress.train_seconds += time.perf_counter() - epoch_started

        # evaluate (every process computes the same small validation set), keep the best model
        unwrapped = accelerator.unwrap_model(model)
        with accelerator.autocast():
            metrics = task.evaluate(unwrapped)
        record = {"epoch": epoch + (1 if finished_epoch else progress.batches_in_epoch / len(train_dl)),
                  "step": progress.global_step, **metrics}
        progress.history.append(record)
        accelerator.log({f"val/{k}": v for k, v in metrics.items()}, step=progress.global_step)
        log.info("evaluation at step %d: %s", progress.global_step, metrics)
        score = metrics.get(main_metric)
        improved = score is None or progress.best is None or score > progress.best
        if improved:
            progress.best = score
            progress.best_metrics = {**metrics, "best_step": progress.global_step}
            progress.bad_evals = 0
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                if model_dir.exists():
                    shutil.rmtree(model_dir)
                task.save(unwrapped, model_dir)
        else:
            progress.bad_evals += 1
        if finished_epoch:
            progress.epoch += 1
            progress.batches_in_epoch = 0

        # checkpoint (one per epoch, and where max_steps stops), oldest pruned
        accelerator.wait_for_everyone()
        ckpt = config.checkpoints_dir() / f"step_{progress.global_step:07d}"
        progress.wall_seconds = earlier_seconds + time.perf_counter() - started
        accelerator.save_state(str(ckpt))
        if accelerator.is_main_process:
            for old in sorted(config.checkpoints_dir().glob("step_*"))[: -config.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        if progress.bad_evals >= config.patience:
            log.info("early stopping: %s did not improve for %d evaluations", main_metric, config.patience)
            break
    bar.close()

    seconds = earlier_seconds + time.perf_counter() - started
    metrics = dict(progress.best_metrics)
    metrics["train_samples_per_second"] = progress.samples / progress.train_seconds if progress.train_seconds else 0.0
    if accelerator.is_main_process and model_dir.exists():
        if config.kind == "tagger" and config.tune_hybrid and task.val_docs:
            task.data_summary["hybrid"] = _tune_hybrid(model_dir, task.val_docs)
        from kpe.train.model_card import write_model_card

        settings = {**_tracker_config(config), "mixed_precision": accelerator.mixed_precision,
                    "processes": accelerator.num_processes, "device": str(accelerator.device)}
        write_model_card(model_dir, kind=config.kind, base=base, settings=settings,
                         data=task.data_summary, metrics=metrics, seconds=seconds, steps=progress.global_step,
                         history=progress.history)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(model_dir=model_dir, kind=config.kind, metrics=metrics, steps=progress.global_step,
                       seconds=seconds, data_summary=task.data_summary, history=progress.history)


def _tune_hybrid(model_dir: Path, docs: list[KeyphraseDoc]) -> dict[str, Any]:
    """Tune the hybrid weight on the validation slice of the training data (never on a benchmark dev set)."""
    try:
        from kpe.train.predict import tune_hybrid_weight

        return tune_hybrid_weight(model_dir, docs)
    except Exception as exc:  # noqa: BLE001 - the model is saved; a failed extra step must not lose the run
        log.warning("hybrid weight not tuned (hybrid will use its default): %s: %s", type(exc).__name__, exc)
        return {"tuned": False, "reason": f"{type(exc).__name__}: {exc}"}


# ----------------------------------------------------------------------------------------------- CLI

def _parser() -> Any:
    import argparse
    import typing

    parser = argparse.ArgumentParser(prog="python -m kpe.train", description=TrainConfig.__doc__.splitlines()[0])
    for name, info in TrainConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": info.description}
        if info.annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(info.annotation) is list:
            kwargs["nargs"] = "*"
        parser.add_argument(flag, **kwargs)
    return parser


def main(argv: Sequence[str] | None = None) -> TrainResult:
    """Command-line entry point: every ``TrainConfig`` field is an option (``--kind tagger --max-steps 50``)."""
    import json

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = vars(_parser().parse_args(argv))
    result = train(TrainConfig(**args))
    print(json.dumps({"model_dir": str(result.model_dir), "kind": result.kind, "steps": result.steps,
                      "seconds": round(result.seconds, 1), "metrics": result.metrics}, indent=2, default=str))
    return result
