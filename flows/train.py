"""The train flow: data -> optional MLM -> fine-tune -> gate against production -> promote or reject.

    from flows.train import train
    train(kind="tagger", method="tagger", max_steps=200, gate_limit=100)

The candidate and the current production model (the packaged MiniLM with the ``kpe`` method while none is
promoted) are evaluated with the evaluation harness on the same gate sets: Inspec dev, SemEval-2017 dev and,
when the warehouse holds documents, the PubMed silver dev split. ``kpe.evaluate.gate`` holds that policy and the
decision rule; every number and the reason are stored on the model's row in ``models`` in one transaction and
published as a markdown artifact. A promotion changes the model version nightly extraction uses, so the next
nightly re-extracts with it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flows.environment import apply_defaults

apply_defaults()

from prefect import flow, get_run_logger  # noqa: E402 - after the environment defaults
from prefect.runtime import flow_run  # noqa: E402

from kpe.evaluate.gate import DEFAULT_GATE_LIMIT, DEFAULT_MARGIN, DEFAULT_TOLERANCE  # noqa: E402
from kpe.registry import ExtractionModel, base_model_name, model_dir, new_version  # noqa: E402
from kpe.train.config import (  # noqa: E402
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_LEARNING_RATE,
    DEFAULT_SEED,
    run_config,
)
from kpe.train.kinds import annotation_kinds, check_kind_and_method  # noqa: E402
from tasks.evaluate import choose_method_task, evaluate_on_gate_sets_task, load_gate_sets_task  # noqa: E402
from tasks.train import (  # noqa: E402
    add_gate_to_model_card_task,
    build_training_data_task,
    decide_and_record_task,
    fit_span_ranker_task,
    production_model_task,
    publish_gate_decision_task,
    register_candidate_task,
    register_ranked_candidate_task,
    reject_candidate_task,
    train_model_task,
)


@flow(name="train", log_prints=True)
def train(
    kind: str = "tagger",
    method: str | None = None,
    base_model: str | None = None,
    train_data: list[str] | None = None,
    max_steps: int | None = None,
    epochs: int = DEFAULT_EPOCHS,
    mlm_steps: int = 0,
    train_limit: int | None = None,
    gate_limit: int | None = DEFAULT_GATE_LIMIT,
    margin: float = DEFAULT_MARGIN,
    tolerance: float = DEFAULT_TOLERANCE,
    auto_promote: bool = True,
    seed: int = DEFAULT_SEED,
    batch_size: int = DEFAULT_BATCH_SIZE,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    keep_checkpoints: bool = False,
    train_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train a candidate and let the gate decide.

    kind: a model kind that offers extraction methods (``kpe.train.kinds``: ``tagger``, ``joint``), or an
    annotation kind (``ner``, ``classify``: handed to ``flows.annotate.train_annotator``, its own gate set);
    method: what
    production extraction would run with the model (``tagger``, ``hybrid``, ``keybert-ft`` for a tagger;
    ``joint``, ``keybert-ft`` for a joint model; default: each is evaluated on the gate sets and the best mean
    macro F1@5 is chosen, then compared with production). base_model: local encoder dir (default: packaged
    all-MiniLM-L6-v2). train_data: benchmark names, JSONL paths or ``pubmed`` (default: Inspec + SemEval-2017
    train, plus PubMed silver when the lake has documents). max_steps replaces epochs when given; mlm_steps > 0
    first adapts the encoder with masked-LM on the corpus. train_limit: documents per training source;
    gate_limit: documents per gate set (None, the default: every held-out document). margin / tolerance: see
    ``kpe.evaluate.gate.decide``.
    auto_promote=False records the decision without promoting. train_options: any other
    ``kpe.train.TrainConfig`` field (``max_length``, ``patience``, ``mixed_precision``...), for the MLM run too.
    Returns ``{"version", "status", "decision", "method", "model_path", "training"}``.
    """
    if kind in annotation_kinds():  # ner, classify: their own data, gate set and production model
        from flows.annotate import train_annotator

        return train_annotator(
            kind=kind, base_model=base_model, train_data=train_data, max_steps=max_steps, epochs=epochs,
            train_limit=train_limit, gate_limit=gate_limit,
            margin=margin, auto_promote=auto_promote, seed=seed, batch_size=batch_size,
            learning_rate=learning_rate, keep_checkpoints=keep_checkpoints, train_options=train_options)
    logger = get_run_logger()
    choose = method is None  # the gate sets choose the method (see step 4)
    method = check_kind_and_method(kind, method)  # until then: the kind's own method
    version = new_version(kind)
    run_dir = model_dir(version)
    base_name = base_model_name(base_model)
    logger.info("candidate %s: kind %s, method %s, base %s, run dir %s", version, kind, method, base_name, run_dir)

    # 1. data
    data = build_training_data_task(train_data, train_limit)

    # 2. optional domain-adaptive masked-LM pretraining of the encoder
    base = base_model
    mlm_summary = None
    if mlm_steps > 0:
        mlm_options = {k: v for k, v in (train_options or {}).items() if k != "ranker_folds"}  # a tagger's option
        mlm_config = run_config("mlm", run_dir / "mlm", data, base=base_model, max_steps=mlm_steps, epochs=1,
                                train_limit=train_limit, seed=seed, **{"batch_size": batch_size, **mlm_options})
        mlm = train_model_task(mlm_config, keep_checkpoints)
        base = str(mlm.model_dir)
        mlm_summary = {"steps": mlm.steps, "seconds": mlm.seconds, "metrics": mlm.metrics, "model_dir": base}

    # 3. fine-tune, register the candidate
    config = run_config(kind, run_dir, data, base=base, max_steps=max_steps, epochs=epochs, train_limit=train_limit,
                        seed=seed,
                        **{"batch_size": batch_size, "learning_rate": learning_rate, **(train_options or {})})
    result = train_model_task(config, keep_checkpoints)
    settings = {
        "train_config": config.model_dump(mode="json"),
        "flow": {"kind": kind, "method": method, "base_model": base_model, "train_data": train_data,
                 "max_steps": max_steps, "epochs": epochs, "mlm_steps": mlm_steps, "train_limit": train_limit,
                 "gate_limit": gate_limit, "margin": margin, "tolerance": tolerance, "auto_promote": auto_promote,
                 "seed": seed, "batch_size": batch_size, "learning_rate": learning_rate,
                 "train_options": train_options},
        "mlm": mlm_summary,
    }
    register_candidate_task(version, result, method, base_name, settings)
    training = {"steps": result.steps, "seconds": round(result.seconds, 1), "docs": data.docs,
                "precision": result.precision, "samples_per_second": round(result.samples_per_second, 3),
                "validation": {k: v for k, v in result.metrics.items() if isinstance(v, int | float)}}

    # 4. evaluate candidate and production on the same gate sets, 5. decide and record (one transaction)
    candidate_model = ExtractionModel(version=version, method=method, model_path=str(result.model_dir.resolve()))
    outcome, candidate_model = gate_candidate(kind, candidate_model, choose, gate_limit=gate_limit, margin=margin,
                                              tolerance=tolerance, auto_promote=auto_promote,
                                              extra={"training": training})
    return {**outcome, "method": candidate_model.method, "model_path": candidate_model.model_path,
            "training": training}


@flow(name="fit-ranker", log_prints=True)
def fit_ranker(
    version: str,
    gate_limit: int | None = DEFAULT_GATE_LIMIT,
    margin: float = DEFAULT_MARGIN,
    tolerance: float = DEFAULT_TOLERANCE,
    auto_promote: bool = True,
    ranker_folds: int = 0,
) -> dict[str, Any]:
    """Give a registered tagger the ``ranked`` method's span ranker (a first one, or a new one in place of its own):
    a new version, the tagger's files plus the ranker fitted on its training run's validation slice with a phrase
    lexicon of its training split (``ranker_folds`` K: and on the training split tagged out of fold by K fold
    taggers trained like its run), registered and gated like a trained candidate (every method of the kind
    measured, the best compared with production).
    Returns ``{"version", "status", "decision", "method", "model_path", "span_ranker"}``."""
    new = new_version("tagger")
    files = str(model_dir(new) / "model")
    tagger, data = fit_span_ranker_task(version, files, ranker_folds)
    registered = register_ranked_candidate_task(new, files, tagger, data)
    summary = data["span_ranker"]
    candidate_model = ExtractionModel(version=new, method="ranked", model_path=registered["path"])
    outcome, candidate_model = gate_candidate("tagger", candidate_model, True, gate_limit=gate_limit, margin=margin,
                                              tolerance=tolerance, auto_promote=auto_promote,
                                              extra={"span_ranker": {"for": version, **summary}})
    return {**outcome, "method": candidate_model.method, "model_path": candidate_model.model_path,
            "span_ranker": summary}


def gate_candidate(kind: str, candidate_model: ExtractionModel, choose: bool, *, gate_limit: int | None,
                   margin: float, tolerance: float, auto_promote: bool,
                   extra: dict[str, Any]) -> tuple[dict[str, Any], ExtractionModel]:
    """Steps 4-5 of a train run for a registered candidate: evaluate it (each method its kind offers when
    ``choose``) and production on the gate sets, decide, record, publish; returns the outcome and the candidate
    with the method it was judged with."""
    logger = get_run_logger()
    version, method = candidate_model.version, candidate_model.method
    try:
        production_model = production_model_task()
        sets = load_gate_sets_task(gate_limit)
        if choose:
            extra["method_choice"], by_method = choose_method_task(kind, candidate_model, sets)
            method = extra["method_choice"]["chosen"]
            candidate_model = replace(candidate_model, method=method)
            candidate = by_method[method]
        else:
            candidate = evaluate_on_gate_sets_task("candidate", candidate_model, sets)
        production = evaluate_on_gate_sets_task("production", production_model, sets)
        run_id = str(flow_run.id) if flow_run.id else None
        outcome = decide_and_record_task(version, candidate, production, production_model, margin, tolerance,
                                         auto_promote, method=method, extra=extra, flow_run_id=run_id)
    except Exception as exc:
        logger.error("gate failed for %s: %s; the candidate is rejected", version, exc)
        reject_candidate_task(version, f"{type(exc).__name__}: {exc}")
        raise

    add_gate_to_model_card_task(candidate_model.model_path, outcome, method)
    publish_gate_decision_task(outcome, candidate, production)
    logger.info("%s -> %s: %s", version, outcome["status"], outcome["decision"]["reason"])
    return outcome, candidate_model
