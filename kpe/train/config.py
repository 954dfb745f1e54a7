"""Settings of one training run (``TrainConfig``) and what a run hands back (``TrainResult``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kpe.train.kinds import KINDS, get_kind

#: The one source of the training defaults the flow, ``kpe train`` and ``prefect.yaml`` share.
DEFAULT_EPOCHS = 3
DEFAULT_BATCH_SIZE = 8
DEFAULT_LEARNING_RATE = 5e-5
DEFAULT_SEED = 42


class TrainConfig(BaseModel):
    """Everything one training run needs; every field is also a ``python -m kpe.train --field-name`` option.

    Kinds: ``kpe.train.kinds.KINDS``. Data: ``train_data`` names benchmark train files (``inspec``,
    ``semeval2017``, ``kp20k_small``: ``kpe.datasets``) or JSONL paths, and/or ``"pubmed"`` = silver labels from
    the ingested MEDLINE documents in ``lake_dir`` (author keywords that occur in title/abstract), less
    ``exclude_doc_ids`` (the documents the warehouse marks deleted: the train task fills it in).
    For ``mlm`` the corpus is every document in ``lake_dir`` plus the texts of ``train_data`` benchmarks.
    The internal validation slice is a salted ``kpe.splits.split_of`` slice (``kpe.train.data.split_docs``).
    """

    model_config = ConfigDict(extra="forbid")

    kind: str = Field("tagger", description=f"What to train: {', '.join(KINDS)}")
    output_dir: Path = Field(Path("data/models/run"), description="Run folder: model/, checkpoints/, logs/")
    base: str | None = Field(None, description="Encoder to start from (local HF dir; empty: packaged MiniLM)")

    # data
    train_data: list[str] = Field(
        default_factory=lambda: ["inspec"], description="Benchmark names, JSONL paths or 'pubmed'"
    )
    lake_dir: Path | None = Field(None, description="Parquet lake for 'pubmed' silver labels and the MLM corpus")
    exclude_doc_ids: list[str] = Field(default_factory=list, exclude=True,
                                       description="doc_ids left out of lake data (deleted in the warehouse)")
    shared_data_dir: Path | None = Field(None, description="Shared data folder (default: settings)")
    max_docs: int | None = Field(None, ge=1, description="At most this many training documents per source")
    max_val_docs: int | None = Field(200, ge=1, description="At most this many validation documents")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="Share of documents in the internal validation slice")

    # tokenization
    max_length: int = Field(256, ge=16, le=4096)
    stride: int = Field(64, ge=0, description="Tokens shared by neighbouring windows of a long text")

    # optimisation
    epochs: int = Field(DEFAULT_EPOCHS, ge=1)
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (quick runs)")
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1)
    eval_batch_size: int = Field(32, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(DEFAULT_LEARNING_RATE, gt=0)
    head_learning_rate: float | None = Field(
        None, gt=0, description="Learning rate of the new heads (default: learning_rate)"
    )
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, le=1)
    max_grad_norm: float = Field(1.0, gt=0)
    attention_dropout: float | None = Field(
        0.0, ge=0, lt=1,
        description="Dropout on the attention probabilities while training (None: the base model's own, 0.1 for "
        "BERT / MiniLM). 0 by default: on a CPU it takes the fused attention kernel away and draws a random number "
        "per attention weight: a third of a bf16 tagger step here (635 vs 953 ms with fused AdamW); hidden-state "
        "dropout stays")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on a GPU with bf16 or a CPU with native bf16 (AVX512-BF16/AMX; "
        "KPE_NATIVE_BF16 overrides the detection), fp16 on other GPUs, else fp32 (bf16/fp16 as autocast)")
    mixed_precision: Literal["no", "bf16", "fp16"] | None = Field(
        None, description="Accelerate's setting, wins over precision when given (no = fp32); empty: precision, "
        "or what `accelerate launch --mixed_precision` set when precision is auto")
    seed: int = DEFAULT_SEED
    patience: int = Field(2, ge=1, description="Evaluations without improvement before early stopping")
    keep_checkpoints: int = Field(2, ge=1, description="Checkpoints kept on disk (oldest deleted)")
    resume_from: str | None = Field(None, description="Checkpoint dir to resume from, or 'latest'")
    log_with: Literal["tensorboard", "none"] = "tensorboard"
    group_by_length: bool = Field(
        True, description="Batches of examples of similar length (random mega-batches sorted by length), so that "
        "dynamic padding pads little; off: plain shuffling")
    num_workers: int = Field(0, ge=0)
    num_threads: int | None = Field(
        None, ge=1, description="torch CPU threads (default: torch's choice; 1 helps on a busy machine)"
    )

    # model specifics
    score_pooling: Literal["mean", "min"] = Field("mean", description="tagger: span score from token probabilities")
    max_ngram: int = Field(5, ge=1, le=8, description="joint: longest n-gram")
    word_pooling: Literal["first", "mean"] = Field("first", description="joint: word vector from sub-tokens")
    rank_margin: float = Field(1.0, gt=0, description="joint: hinge margin of the ranking loss")
    mlm_probability: float = Field(0.15, gt=0, lt=1)
    whole_word_mask: bool = False
    nsp: bool = Field(False, description="mlm: add next-sentence prediction (BERT models only)")
    tune_hybrid: bool = Field(True, description="tagger: tune the hybrid weight on the validation slice")
    fit_span_ranker: bool = Field(True, description="tagger: fit the ranked method's span ranker on the whole "
                                  "validation slice")
    ranker_folds: int = Field(
        0, ge=0, le=10, description="tagger: fit the span ranker on the training split too, each of this many folds "
        "tagged by a fold tagger trained like this run without it (this many more trainings; 0: validation slice only)")
    holdout_fold: list[int] | None = Field(
        None, description="[fold, folds]: train without this fold of the training split (a ranker_folds fold tagger)")
    min_label_docs: int | None = Field(
        None, ge=1, description="classify: MeSH labels = descriptors of at least this many training docs "
        "(default: setting mesh_min_docs)")
    holdout_from_year: int | None = Field(
        None, description="classify: documents published in or after this year are left out of training")
    threshold_mode: Literal["global", "per_label"] = Field(
        "global", description="classify: predict with the global or the per-label thresholds tuned on validation")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        return get_kind(kind).name

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.stride >= self.max_length - 2:
            raise ValueError(f"stride ({self.stride}) must be smaller than max_length - 2 ({self.max_length - 2})")
        if "pubmed" in self.train_data and self.lake_dir is None:
            raise ValueError("train_data 'pubmed' needs lake_dir (the Parquet lake with ingested MEDLINE documents)")
        if self.kind == "mlm" and not self.train_data and self.lake_dir is None:
            raise ValueError("mlm needs a corpus: lake_dir and/or train_data")
        if self.kind == "classify" and self.lake_dir is None:
            raise ValueError("classify needs lake_dir (the Parquet lake with MEDLINE documents that carry MeSH)")
        if self.ranker_folds and (self.ranker_folds < 2 or self.kind != "tagger" or not self.fit_span_ranker):
            raise ValueError(f"ranker_folds {self.ranker_folds}: 0, or 2 or more for a tagger fitting a span ranker")
        if self.holdout_fold is not None and (len(self.holdout_fold) != 2
                                              or not 0 <= self.holdout_fold[0] < self.holdout_fold[1]):
            raise ValueError(f"holdout_fold {self.holdout_fold}: [fold, folds] with 0 <= fold < folds")
        return self

    def model_dir(self) -> Path:
        """Where the best model is saved (Hugging Face format + README.md model card)."""
        return Path(self.output_dir) / "model"

    def checkpoints_dir(self) -> Path:
        """Where ``accelerator.save_state`` checkpoints go (one per epoch, plus one where ``max_steps`` stops)."""
        return Path(self.output_dir) / "checkpoints"

    def logs_dir(self) -> Path:
        """TensorBoard event files."""
        return Path(self.output_dir) / "logs"


@dataclass(slots=True)
class TrainResult:
    """What ``train`` returns: the saved model and how the run went."""

    model_dir: Path
    kind: str
    metrics: dict[str, Any]
    steps: int
    seconds: float  # wall-clock of the whole run, earlier runs of a resumed one included
    data_summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    precision: str = "fp32"  # what the run trained at (``kpe.train.loop.training_precision``)
    samples_per_second: float = 0.0  # training examples per second of training (evaluation not counted)


def run_config(
    kind: str, output_dir: Path, plan: Any, *, base: str | None, max_steps: int | None, epochs: int,
    train_limit: int | None, seed: int, **overrides: Any,
) -> TrainConfig:
    """The ``TrainConfig`` of one flow run from its data plan (``kpe.train.data.DataPlan``) and the settings'
    shared data folder; ``overrides``: any other ``TrainConfig`` field."""
    from kpe.settings import get_settings

    return TrainConfig(
        kind=kind, output_dir=output_dir, base=base, train_data=plan.sources,
        lake_dir=Path(plan.lake_dir) if plan.lake_dir else None, shared_data_dir=Path(get_settings().shared_data_dir),
        max_docs=train_limit, max_steps=max_steps, epochs=epochs, seed=seed, **overrides,
    )
