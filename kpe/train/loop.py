"""One Accelerate training loop for every model kind (``kpe.train.kinds``: tagger, joint span ranker, MLM).

``train`` reads top to bottom like Hugging Face's ``run_ner_no_trainer.py``: set up (precision, accelerator, seed,
the kind's data and model, optimizer, schedule), ``accelerator.prepare`` (and resume), loop (accumulate, clip,
step), evaluate each epoch and keep the best model, checkpoint, stop early, save the model card. Everything a
kind brings (data, model, loss, validation, saving) comes from its ``setup``; nothing here names a kind.

Speed on a CPU: batches are length-grouped (:class:`LengthGroupedEpochSampler`) and the kind's collator pads each
to its own longest example; the precision (:func:`training_precision`) is bf16 autocast where the CPU computes
bf16 natively and fp32 elsewhere; a progress bar and a log line every 30 s give samples/s and the ETA.

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
from kpe.train.kinds import KindSetup, get_kind

log = logging.getLogger(__name__)


def train(config: TrainConfig) -> TrainResult:
    """Train one model as configured; returns where the best model is and how the run went."""
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    # 1. set up: accelerator, seed, the kind's data, model and loss, optimizer
    started = time.perf_counter()
    precision = training_precision(config)
    accelerator = _accelerator(config, precision)
    set_seed(config.seed)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    kind = get_kind(config.kind)
    base = resolve_encoder(config.base)
    log.info("training %s from %s on %s (%s, %d process(es), precision %s)", config.kind, base,
             config.train_data, accelerator.device, accelerator.num_processes, precision)
    tokenizer = AutoTokenizer.from_pretrained(base)
    run = kind.setup(config, base, tokenizer)
    if not len(run.train_features):
        raise ValueError(f"{config.kind}: no training examples after tokenization")
    train_dl = _train_loader(run, config)
    if config.attention_dropout is not None:
        set_attention_dropout(run.model, config.attention_dropout)
    optimizer = adamw(_param_groups(run.model, config, run.is_head), config.learning_rate)

    # 2. prepare for the devices, schedule (max_steps, when set, replaces epochs), resume
    model, optimizer, train_dl = accelerator.prepare(run.model, optimizer, train_dl)
    steps_per_epoch = max(1, math.ceil(len(train_dl) / config.gradient_accumulation_steps))
    total_steps = config.max_steps or steps_per_epoch * config.epochs
    epochs = math.ceil(total_steps / steps_per_epoch)
    scheduler = accelerator.prepare(get_linear_schedule_with_warmup(
        optimizer,
        num_warmup_steps=int(config.warmup_ratio * total_steps) * accelerator.num_processes,
        num_training_steps=total_steps * accelerator.num_processes,
    ))
    progress = Progress()
    accelerator.register_for_checkpointing(progress)
    _resume(accelerator, config, progress)
    earlier_seconds = progress.wall_seconds
    if config.log_with != "none":
        accelerator.init_trackers(f"kpe-{config.kind}", config=_tracker_config(config))

    # 3. loop over epochs; 4. evaluate each, keep the best model, checkpoint, stop early
    model_dir = config.model_dir()
    bar = tqdm(total=total_steps, initial=progress.global_step, disable=not accelerator.is_main_process,
               desc=f"train {config.kind} ({precision})", unit="step", mininterval=1.0)
    eta = EtaLog(total_steps, progress.global_step, progress.samples)
    running = RunningLoss()
    stop = progress.global_step >= total_steps
    while not stop and progress.epoch < epochs:
        epoch = progress.epoch
        stop, finished_epoch = _train_epoch(accelerator, model, optimizer, scheduler, train_dl, config, progress,
                                            total_steps, running, bar, eta)
        _evaluate(accelerator, model, run, kind.main_metric, progress, model_dir,
                  epoch + (1 if finished_epoch else progress.batches_in_epoch / len(train_dl)))
        if finished_epoch:
            progress.epoch += 1
            progress.batches_in_epoch = 0
        progress.wall_seconds = earlier_seconds + time.perf_counter() - started
        _checkpoint(accelerator, config, progress)
        if progress.bad_evals >= config.patience:
            log.info("early stopping: %s did not improve for %d evaluations", kind.main_metric, config.patience)
            break
    bar.close()

    # 5. save: the best model is in model_dir; the kind's finishing step and the model card go beside it
    seconds = earlier_seconds + time.perf_counter() - started
    metrics = dict(progress.best_metrics)
    samples_per_second = progress.samples / progress.train_seconds if progress.train_seconds else 0.0
    metrics["train_samples_per_second"] = samples_per_second
    if progress.train_seconds:
        metrics["train_tokens_per_second"] = progress.tokens / progress.train_seconds
    if progress.train_cpu_seconds:  # what an otherwise idle machine would do per core (a busy one: less wall rate)
        metrics["train_samples_per_cpu_second"] = progress.samples / progress.train_cpu_seconds
        metrics["train_tokens_per_cpu_second"] = progress.tokens / progress.train_cpu_seconds
    if accelerator.is_main_process and model_dir.exists():
        if run.finish is not None:
            run.data_summary.update(run.finish(model_dir))
        from kpe.train.model_card import write_model_card

        settings = {**_tracker_config(config), "precision_used": precision,
                    "mixed_precision": accelerator.mixed_precision, "processes": accelerator.num_processes,
                    "device": str(accelerator.device)}
        write_model_card(model_dir, kind=config.kind, base=base, settings=settings,
                         data=run.data_summary, metrics=metrics, seconds=seconds, steps=progress.global_step,
                         history=progress.history, precision=precision, samples_per_second=samples_per_second)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(model_dir=model_dir, kind=config.kind, metrics=metrics, steps=progress.global_step,
                       seconds=seconds, data_summary=run.data_summary, history=progress.history,
                       precision=precision, samples_per_second=samples_per_second)


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
    train_cpu_seconds: float = 0.0  # CPU time of the process while training (all its threads)
    wall_seconds: float = 0.0  # of the runs before the last checkpoint (a resumed run adds its own)
    samples: int = 0
    tokens: int = 0  # real (unpadded) tokens of the training examples seen

    def state_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


@dataclass
class RunningLoss:
    """The mean training loss since it was last logged (not checkpointed: a resumed run starts it afresh)."""

    total: float = 0.0
    n: int = 0

    def add(self, loss: float) -> None:
        self.total += loss
        self.n += 1

    def pop(self) -> float:
        mean = self.total / self.n
        self.total, self.n = 0.0, 0
        return mean


# ----------------------------------------------------------------------------------------------- steps of train()

@dataclass
class EtaLog:
    """Logs progress with samples/s and an ETA every ``every_s`` seconds, so that a run's log (the Prefect UI,
    a redirected stderr where the progress bar does not show) says how far it is and when it will end."""

    total_steps: int
    start_step: int
    start_samples: int = 0
    every_s: float = 30.0
    started: float = field(default_factory=time.perf_counter)
    last: float = field(default_factory=time.perf_counter)

    def update(self, step: int, samples: int) -> None:
        now = time.perf_counter()
        if now - self.last < self.every_s and step < self.total_steps:
            return
        self.last = now
        done = step - self.start_step
        elapsed = now - self.started
        eta = elapsed / done * (self.total_steps - step) if done else float("nan")
        log.info("step %d/%d (%.0f%%), %.2f samples/s, %s elapsed, ETA %s", step, self.total_steps,
                 100 * step / max(self.total_steps, 1), (samples - self.start_samples) / elapsed if elapsed else 0.0,
                 _clock(elapsed), _clock(eta))


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def training_precision(config: TrainConfig) -> str:
    """The precision a run trains at: ``fp32``, ``bf16`` or ``fp16``.

    ``mixed_precision`` (Accelerate's own setting), when given, wins; with ``precision="auto"`` an
    ``accelerate launch --mixed_precision`` choice comes next; otherwise ``precision`` is resolved the way
    extraction resolves it (``kpe.extract.encoder.resolve_precision``): ``auto`` is bf16 on a CUDA device with
    bf16 (fp16 without) and on a CPU with native bf16 (AVX512-BF16 / AMX, ``KPE_NATIVE_BF16`` overrides the
    detection), fp32 elsewhere, so no machine pays for emulated bf16 unless asked to.
    """
    import os

    from kpe.extract.encoder import resolve_precision

    chosen = config.mixed_precision
    if chosen is None and config.precision == "auto":
        chosen = os.environ.get("ACCELERATE_MIXED_PRECISION") or None
    if chosen is not None:
        return "fp32" if chosen == "no" else chosen
    device = "cuda" if torch.cuda.is_available() and not os.environ.get("ACCELERATE_USE_CPU") else "cpu"
    return resolve_precision(config.precision, device)


def _accelerator(config: TrainConfig, precision: str) -> Any:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, ProjectConfiguration

    if PartialState().num_processes == 1:  # one process: a run may use another precision than the run before it
        AcceleratorState._reset_state()
    return Accelerator(
        mixed_precision="no" if precision == "fp32" else precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with=None if config.log_with == "none" else config.log_with,
        project_config=ProjectConfiguration(project_dir=str(Path(config.output_dir)),
                                            logging_dir=str(config.logs_dir())),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )


class LengthGroupedEpochSampler:
    """Transformers' ``LengthGroupedSampler`` (random mega-batches of 50 batches, each sorted by length, so that a
    batch holds examples of similar length and dynamic padding pads little), reshuffled per epoch from
    ``seed + epoch``: the order is reproducible, and a resumed run sees the same batches."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Any:
        from transformers.trainer_pt_utils import LengthGroupedSampler

        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(LengthGroupedSampler(self.batch_size, lengths=self.lengths, generator=generator))


def feature_lengths(features: Any, column: str = "input_ids") -> list[int]:
    """Tokens per training example: read from the Arrow column of a ``datasets.Dataset``, else from each dict."""
    if hasattr(features, "with_format"):
        import pyarrow.compute as pc

        return pc.list_value_length(features.with_format("arrow")[column]).to_pylist()
    return [len(f[column]) for f in features]


def _train_loader(run: KindSetup, config: TrainConfig) -> DataLoader:
    """Batches of ``batch_size`` examples, length-grouped when ``group_by_length`` (else shuffled); the kind's
    collator pads each batch to its own longest example (dynamic padding)."""
    features = run.train_features
    columns = features.column_names if hasattr(features, "column_names") else list(features[0])
    if config.group_by_length and "input_ids" in columns:
        sampler = LengthGroupedEpochSampler(feature_lengths(features), config.batch_size, config.seed)
        return DataLoader(run.train_features, batch_size=config.batch_size, sampler=sampler,
                          collate_fn=run.collate, num_workers=config.num_workers)
    return DataLoader(run.train_features, batch_size=config.batch_size, shuffle=True, collate_fn=run.collate,
                      num_workers=config.num_workers)


def set_attention_dropout(model: torch.nn.Module, p: float) -> int:
    """Dropout ``p`` on the attention probabilities of every self-attention layer (the ``dropout`` of modules
    named ``*SelfAttention``: BERT, RoBERTa, ELECTRA, DistilBERT...), also written into the model config so the
    saved model says how it was trained; returns how many layers were set."""
    count = 0
    for module in model.modules():
        if type(module).__name__.endswith("SelfAttention") and isinstance(getattr(module, "dropout", None),
                                                                         torch.nn.Dropout):
            module.dropout.p = p
            count += 1
    configs = {id(c): c for m in model.modules() if (c := getattr(m, "config", None)) is not None}
    for config in configs.values():  # the model's own, or a wrapped model's
        for name in ("attention_probs_dropout_prob", "attention_dropout"):
            if isinstance(getattr(config, name, None), float):
                setattr(config, name, p)
    if not count:
        log.warning("no self-attention dropout found in %s: attention_dropout=%s not applied", type(model).__name__, p)
    return count


def adamw(groups: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
    """AdamW, fused where torch has the kernel for these parameters (CPU and CUDA float tensors: one pass over all
    parameters instead of one per tensor; 56 -> 17 ms a MiniLM step here), else the default implementation."""
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, ValueError) as exc:
        log.info("fused AdamW not available (%s): default AdamW", exc)
        return torch.optim.AdamW(groups, lr=lr)


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


def _resume(accelerator: Any, config: TrainConfig, progress: Progress) -> None:
    """Load the checkpoint ``config.resume_from`` names (model, optimizer, schedule, sampler, progress)."""
    checkpoint = _checkpoint_to_resume(config)
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        log.info("resumed from %s at step %d (epoch %d, batch %d)", checkpoint, progress.global_step,
                 progress.epoch, progress.batches_in_epoch)


def _tracker_config(config: TrainConfig) -> dict[str, Any]:
    out = {}
    for key, value in config.model_dump().items():
        out[key] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out


def _train_epoch(accelerator: Any, model: Any, optimizer: Any, scheduler: Any, train_dl: Any, config: TrainConfig,
                 progress: Progress, total_steps: int, running: RunningLoss, bar: Any, eta: EtaLog
                 ) -> tuple[bool, bool]:
    """One epoch (the rest of it, after a resume) of accumulated, clipped steps; stops at ``total_steps``.
    Returns ``(stop, finished_epoch)``."""
    epoch = progress.epoch
    train_dl.set_epoch(epoch)
    batches = (accelerator.skip_first_batches(train_dl, progress.batches_in_epoch)
               if progress.batches_in_epoch else train_dl)
    model.train()
    epoch_started = time.perf_counter()
    cpu_started = time.process_time()
    stop, finished_epoch = False, True
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
        if "attention_mask" in batch:
            progress.tokens += int(batch["attention_mask"].sum()) * accelerator.num_processes
        running.add(float(loss.detach()))
        if accelerator.sync_gradients:
            progress.global_step += 1
            bar.update(1)
            eta.update(progress.global_step, progress.samples)
            if progress.global_step % 10 == 0 or progress.global_step == total_steps:
                values = {"train/loss": running.pop(), "train/lr": scheduler.get_last_lr()[0],
                          "train/epoch": epoch + progress.batches_in_epoch / len(train_dl)}
                bar.set_postfix(loss=f"{values['train/loss']:.4f}")
                accelerator.log(values, step=progress.global_step)
            if progress.global_step >= total_steps:
                stop = True
                finished_epoch = progress.batches_in_epoch >= len(train_dl)
                break
    progress.train_seconds += time.perf_counter() - epoch_started
    progress.train_cpu_seconds += time.process_time() - cpu_started
    return stop, finished_epoch


def _evaluate(accelerator: Any, model: Any, run: KindSetup, main_metric: str, progress: Progress,
              model_dir: Path, epoch: float) -> None:
    """Validate (every process computes the same small validation set); save the model when it improved."""
    unwrapped = accelerator.unwrap_model(model)
    with accelerator.autocast():
        metrics = run.evaluate(unwrapped)
    progress.history.append({"epoch": epoch, "step": progress.global_step, **metrics})
    accelerator.log({f"val/{k}": v for k, v in metrics.items()}, step=progress.global_step)
    log.info("evaluation at step %d: %s", progress.global_step, metrics)
    score = metrics.get(main_metric)
    if score is None or progress.best is None or score > progress.best:
        progress.best = score
        progress.best_metrics = {**metrics, "best_step": progress.global_step}
        progress.bad_evals = 0
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            if model_dir.exists():
                shutil.rmtree(model_dir)
            run.save(unwrapped, model_dir)
    else:
        progress.bad_evals += 1


def _checkpoint(accelerator: Any, config: TrainConfig, progress: Progress) -> None:
    """Save the state (one checkpoint per epoch, and where ``max_steps`` stops); prune the oldest."""
    accelerator.wait_for_everyone()
    accelerator.save_state(str(config.checkpoints_dir() / f"step_{progress.global_step:07d}"))
    if accelerator.is_main_process:
        for old in sorted(config.checkpoints_dir().glob("step_*"))[: -config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)


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
