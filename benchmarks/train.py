"""Fine-tuning benchmark: train a model, then compare methods on the dev sets.

    # ingest one MEDLINE file into a benchmark lake + warehouse (PubMed silver train/dev)
    python benchmarks/train.py lake --out runs/bench/pubmed [--file PATH]

    # train (any kpe.train option after the known ones); prints time, steps, samples/s, validation + dev metrics
    python benchmarks/train.py train --kind tagger --train-data inspec --output-dir runs/bench/tagger --eval inspec_dev

    # training speed per precision (same short run each): samples/s, tokens per CPU-second, one epoch over all
    # silver + benchmark training examples extrapolated from the measured token rate, peak RSS, dev F1@5
    python benchmarks/train.py speed --lake runs/bench/pubmed --precisions fp32 bf16 --max-steps 40 \
        --num-threads 1 --eval inspec_dev pubmed_silver_dev --limit 100

    # where a training step's time goes (forward / backward / clip / optimizer), per training variant: attention
    # dropout 0.1 (BERT's) vs 0 (the default), AdamW per tensor vs fused; --kind mlm: full vs masked-positions head
    python benchmarks/train.py steps --kind tagger --batch-size 8 --length 240 --steps 25
    python benchmarks/train.py steps --kind mlm --batch-size 16 --length 128 --steps 25

    # the hybrid's candidate pool: candidates per document, the share of present gold in it (what a perfect
    # ranking of the pool would recall), macro F1@5 at each weight of tagger score vs cosine
    python benchmarks/train.py ceiling --model data/models/VERSION/model --lake data --sets pubmed_silver_dev inspec_dev
    # the same for the weight average of several tagger dirs of one architecture (a "model soup": e.g. a model and
    # its continuation); the averaged model is written to --soup-dir
    python benchmarks/train.py ceiling --model data/models/A/model data/models/B/model --soup-dir runs/soup/ab ...

    # the comparison table (macro F1@5 / F1@10 / F1@M over present gold) for every method with a model
    python benchmarks/train.py table --tagger runs/bench/tagger/model --joint runs/bench/joint/model \
        --sets inspec_dev semeval2017_dev pubmed_silver_dev --lake runs/bench/pubmed --json runs/bench/table.json

The PubMed silver dev split is ``kpe.splits.split_of(doc_id) == "dev"`` of the lake's documents whose author
keywords occur in the text (``kpe.train.data.silver_docs``, the rule of ``kpe.datasets.silver_document``).
Timings on a shared machine are noisy: say so when quoting them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from flows.environment import apply_defaults  # noqa: E402 - after the path insert

apply_defaults()

SHARED = Path(os.environ.get("KPE_SHARED_DATA_DIR", ROOT.parent / "shared" / "data"))
DEFAULT_MEDLINE = SHARED / "pubmed" / "full_files" / "pubmed21n1298.xml.gz"


def build_lake(out: Path, medline: Path) -> dict[str, Any]:
    """Ingest one MEDLINE file with the project's ingest code into ``out/lake`` + ``out/warehouse.duckdb``."""
    from kpe.ingest import ingest_unit
    from kpe.inputs import InputSpec, unit_from_spec
    from warehouse.db import connect
    from warehouse.ingest_store import DuckDBIngestStore

    out.mkdir(parents=True, exist_ok=True)
    con = connect(out / "warehouse.duckdb")
    unit = unit_from_spec(InputSpec(source="pubmed", name=medline.name, uri=str(medline), paths=[str(medline)]))
    started = time.perf_counter()
    report = ingest_unit(unit, DuckDBIngestStore(con), lake_dir=out / "lake", batch_size=5000, min_abstract_words=5)
    con.close()
    return {"seconds": time.perf_counter() - started, "report": report if isinstance(report, dict) else str(report)}


def eval_sets(names: list[str], lake: Path | None, limit: int | None,
              silver_limit: int | None = None) -> dict[str, list[Any]]:
    """Gold documents of each named set (benchmark names of ``kpe.datasets`` or ``pubmed_silver_dev``;
    the silver set is cut to ``silver_limit`` documents, in ``doc_id`` order)."""
    from kpe.datasets import load_jsonl, resolve_benchmark
    from kpe.splits import split_of
    from kpe.train.data import silver_docs

    sets = {}
    for name in names:
        if name == "pubmed_silver_dev":
            if lake is None:
                raise SystemExit("pubmed_silver_dev needs --lake (a folder made by `benchmarks/train.py lake`)")
            docs = [d for d in silver_docs(lake / "lake", _deleted(lake)) if split_of(d.doc_id) == "dev"]
            cut = silver_limit or limit
            sets[name] = docs[:cut] if cut else docs
        else:
            _, _, path = resolve_benchmark(name, SHARED)
            sets[name] = load_jsonl(path, limit=limit, dataset=name)
    return sets


def score(method: str, model_path: str | None, docs: list[Any], dataset: str, config: Any = None) -> dict[str, Any]:
    """Run one method over one set with the evaluation harness; returns the headline numbers."""
    from kpe.evaluate.harness import evaluate_method

    result = evaluate_method(method, docs, model_path, config, dataset=dataset, split="dev", progress=False)
    present = result["macro"]["present"]
    return {"method": method, "dataset": dataset, "n_docs": result["n_docs"],
            "f1@5": present["f1@5"], "f1@10": present["f1@10"], "f1@M": present["f1@M"],
            "mean_predicted": result["n_pred"] / max(result["n_docs"], 1),
            "seconds": result["seconds"], "load_seconds": result["load_seconds"]}


def cmd_train(args: argparse.Namespace, rest: list[str]) -> None:
    import logging

    from kpe.train.config import TrainConfig
    from kpe.train.loop import _parser, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = vars(_parser().parse_args(rest))
    options.setdefault("shared_data_dir", SHARED)
    config = TrainConfig(**options)
    result = train(config)
    summary = {"kind": result.kind, "model_dir": str(result.model_dir), "train_seconds": round(result.seconds, 1),
               "steps": result.steps, "precision": result.precision,
               "samples_per_second": round(result.metrics.get("train_samples_per_second", 0), 2),
               "validation": {k: v for k, v in result.metrics.items() if k != "train_samples_per_second"},
               "data": result.data_summary, "dev": {}}
    from kpe.train.kinds import get_kind

    offered = list(get_kind(result.kind).methods)  # the kind's own method first; mlm: the encoder for keybert-ft
    methods = args.method or [offered[0] if offered else "keybert-ft"]

    def write() -> None:  # after training, then after each scored set: a run stopped while scoring keeps the rest
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2, default=str))

    write()
    for name, docs in eval_sets(args.eval, args.lake, args.limit, args.silver_limit).items():
        rows = [score(method, str(result.model_dir), docs, name) for method in methods]
        summary["dev"][name] = rows[0] if len(rows) == 1 else {row["method"]: row for row in rows}
        write()
    print(json.dumps(summary, indent=2, default=str))


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cmd_speed(args: argparse.Namespace, rest: list[str]) -> None:
    """The same short training once per precision: samples/s, seconds per epoch of the whole training set
    (extrapolated from the measured rate), peak RSS, and the dev F1 each precision's model reaches."""
    import logging

    from kpe.train.config import TrainConfig
    from kpe.train.loop import _parser, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = vars(_parser().parse_args(rest))
    options.setdefault("shared_data_dir", SHARED)
    options.setdefault("train_data", ["inspec", "semeval2017", "pubmed"])
    options.setdefault("max_steps", 50)
    options.setdefault("max_val_docs", 20)
    options.setdefault("tune_hybrid", False)
    options.setdefault("log_with", "none")
    if "pubmed" in options["train_data"]:
        if args.lake is None:
            raise SystemExit("training source pubmed needs --lake (a folder made by `benchmarks/train.py lake`)")
        options.setdefault("lake_dir", args.lake / "lake")
        options.setdefault("exclude_doc_ids", sorted(_deleted(args.lake)))
    out = Path(options.pop("output_dir", Path("runs/bench/speed")))
    sets = eval_sets(args.eval, args.lake, args.limit, args.silver_limit) if args.eval else {}
    rows = []
    for precision in args.precisions:
        started = time.perf_counter()
        result = train(TrainConfig(**{**options, "precision": precision, "output_dir": out / precision}))
        examples = result.data_summary.get("examples", {})
        m = result.metrics
        tokens, cpu_rate = examples.get("tokens", 0), m.get("train_tokens_per_cpu_second", 0.0)
        threads = int(options.get("num_threads") or torch_threads())
        row = {"precision": result.precision, "steps": result.steps, "batch_size": options.get("batch_size", 8),
               "threads": threads, "samples_per_second": round(result.samples_per_second, 2),
               "tokens_per_second": round(m.get("train_tokens_per_second", 0.0), 1),
               "samples_per_cpu_second": round(m.get("train_samples_per_cpu_second", 0.0), 2),
               "tokens_per_cpu_second": round(cpu_rate, 1),
               "epoch_examples": examples.get("examples"), "epoch_tokens": tokens,
               "epoch_documents": examples.get("documents"),
               # one epoch over every training example, from the measured token rate (length mix of the epoch)
               "epoch_minutes_wall": round(tokens / m["train_tokens_per_second"] / 60, 1)
               if m.get("train_tokens_per_second") else None,
               "epoch_cpu_minutes": round(tokens / cpu_rate / 60, 1) if cpu_rate else None,
               "features_from_cache": examples.get("from_cache"), "run_seconds": round(time.perf_counter() - started),
               "peak_rss_mb": round(peak_rss_mb()), "data": {k: {f: v.get(f) for f in ("docs", "train_docs",
                                                                                        "held_out_dev", "phrases")}
                                                            | {"unaligned": (v.get("alignment") or {}).get("unaligned")}
                                                            for k, v in result.data_summary.items()
                                                            if isinstance(v, dict) and "train_docs" in v},
               "dev": {}}
        method = {"tagger": "tagger", "joint": "joint"}.get(result.kind)
        for name, docs in sets.items():
            if method:
                row["dev"][name] = score(args.method or method, str(result.model_dir), docs, name,
                                         {"precision": "fp32"})
        rows.append(row)
        print(json.dumps(row, indent=2, default=str), flush=True)
    print("\n| precision | threads | steps x batch | samples/s (wall) | samples / CPU-s | tokens / CPU-s | "
          "examples / epoch | epoch: wall min here | epoch: CPU-min | peak RSS MB | "
          + " | ".join(f"{name} F1@5" for name in sets) + " |")
    print("|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(sets))
    for r in rows:
        print(f"| {r['precision']} | {r['threads']} | {r['steps']} x {r['batch_size']} | {r['samples_per_second']} | "
              f"{r['samples_per_cpu_second']} | {r['tokens_per_cpu_second']} | {r['epoch_examples']} | "
              f"{r['epoch_minutes_wall']} | {r['epoch_cpu_minutes']} | {r['peak_rss_mb']} | "
              + " | ".join(f"{r['dev'][name]['f1@5']:.4f}" for name in sets) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))


def cmd_steps(args: argparse.Namespace) -> None:
    """Time the phases of a training step of the packaged MiniLM for each variant (same shapes, same precision)."""
    import torch

    from kpe.encoders import resolve_encoder
    from kpe.train.config import TrainConfig
    from kpe.train.loop import adamw, set_attention_dropout, training_precision
    from kpe.train.mlm import MaskedPositionsMLM, load_mlm_model
    from kpe.train.tagger import load_tagger_model

    torch.set_num_threads(args.threads)
    precision = training_precision(TrainConfig(precision=args.precision))
    base = resolve_encoder(None)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (args.batch_size, args.length), generator=generator)
    if args.kind == "mlm":  # 15 % of the positions carry a label, as the collator masks them
        labels = torch.where(torch.rand(ids.shape, generator=generator) < 0.15, ids, torch.full_like(ids, -100))
        variants = [("0.1", "per tensor", "full"), ("0.0", "fused", "full"), ("0.0", "fused", "masked positions")]
    else:
        labels = torch.randint(0, 3, ids.shape, generator=generator)
        variants = [("0.1", "per tensor", None), ("0.1", "fused", None), ("0.0", "per tensor", None),
                    ("0.0", "fused", None)]
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    print(f"| attention dropout | AdamW | {'MLM head | ' if args.kind == 'mlm' else ''}forward ms | backward ms | "
          "clip ms | optimizer ms | step ms |")
    print("|---|---|" + ("---|" if args.kind == "mlm" else "") + "---|---|---|---|---|")
    for dropout, optimizer_kind, head in variants:
        torch.manual_seed(0)
        model = load_mlm_model(base) if args.kind == "mlm" else load_tagger_model(base)
        set_attention_dropout(model, float(dropout))
        params = [q for q in model.parameters() if q.requires_grad]
        optimizer = (adamw([{"params": params}], 5e-5) if optimizer_kind == "fused"
                     else torch.optim.AdamW(params, lr=5e-5))
        if head == "masked positions":
            model = MaskedPositionsMLM(model)
        model.train()
        phases = {"forward": 0.0, "backward": 0.0, "clip": 0.0, "optimizer": 0.0}
        autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16"
                    else torch.autocast("cpu", enabled=False))
        for step in range(args.steps):
            t0 = time.perf_counter()
            with autocast:
                loss = model(**batch).loss
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            t3 = time.perf_counter()
            optimizer.step()
            optimizer.zero_grad()
            t4 = time.perf_counter()
            if step >= WARMUP_STEPS:
                for name, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    phases[name] += seconds
        ms = {k: 1000 * v / (args.steps - WARMUP_STEPS) for k, v in phases.items()}
        print(f"| {dropout} | {optimizer_kind} | {head + ' | ' if head else ''}"
              + " | ".join(f"{v:.0f}" for v in ms.values()) + f" | **{sum(ms.values()):.0f}** |", flush=True)
    print(f"\n{args.kind}, batch {args.batch_size} x {args.length} tokens, precision {precision}, "
          f"{args.threads} threads, mean of steps {WARMUP_STEPS + 1}-{args.steps}")


WARMUP_STEPS = 5


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _deleted(lake: Path) -> set[str]:
    """The doc_ids the benchmark warehouse beside the lake marks deleted (training leaves them out)."""
    from warehouse.db import connect
    from warehouse.documents import deleted_doc_ids

    if not (lake / "warehouse.duckdb").exists():
        return set()
    with connect(lake / "warehouse.duckdb", read_only=True) as con:
        return deleted_doc_ids(con)


def cmd_table(args: argparse.Namespace) -> None:
    methods: list[tuple[str, str | None]] = [] if args.no_baseline else [("keybert", None)]
    if args.kpe:
        methods.append(("kpe", None))
    if args.tagger:
        methods += [("tagger", args.tagger)]
    if args.joint:
        methods.append(("joint", args.joint))
    if args.tagger or args.keybert_ft:
        methods.append(("keybert-ft", args.keybert_ft or args.tagger))
    if args.tagger:
        methods.append(("hybrid", args.tagger))
    if args.mlm_tagger:
        methods.append(("tagger", args.mlm_tagger))
    rows = []
    for name, docs in eval_sets(args.sets, args.lake, args.limit, args.silver_limit).items():
        for method, path in methods:
            try:
                row = score(method, path, docs, name)
            except Exception as exc:  # noqa: BLE001 - a missing module must not hide the other rows
                row = {"method": method, "dataset": name, "error": f"{type(exc).__name__}: {exc}"}
            row["model"] = path or "packaged MiniLM"
            rows.append(row)
            print(json.dumps(row, default=str), flush=True)
    print("\n| set | method | model | docs | F1@5 | F1@10 | F1@M | preds/doc | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['dataset']} | {r['method']} | {r['model']} | - | error: {r['error']} | | | | |")
        else:
            print(f"| {r['dataset']} | {r['method']} | {Path(r['model']).parent.name or r['model']} | {r['n_docs']} "
                  f"| {r['f1@5']:.4f} | {r['f1@10']:.4f} | {r['f1@M']:.4f} | {r['mean_predicted']:.1f} "
                  f"| {r['seconds']:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))


def average_models(model_dirs: list[str], out: Path) -> Path:
    """Write the element-wise mean of the weights of ``model_dirs`` (one architecture) to ``out``: a copy of the
    first dir (config, tokenizer, hybrid weight) with its ``model.safetensors`` replaced."""
    import shutil

    from safetensors.torch import load_file, save_file

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(model_dirs[0], out)
    states = [load_file(str(Path(d) / "model.safetensors")) for d in model_dirs]
    if any(s.keys() != states[0].keys() for s in states):
        raise SystemExit("--model dirs differ in their tensors: only one architecture can be averaged")
    mean = {name: (sum(s[name].float() for s in states) / len(states)).to(t.dtype) if t.is_floating_point() else t
            for name, t in states[0].items()}
    save_file(mean, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def cmd_ceiling(args: argparse.Namespace) -> None:
    """The hybrid's candidate pool on each set: candidates per document, the share of the present gold in it (the
    recall a perfect ranking of the pool would reach) and macro F1@5 / F1@10 over present gold at each weight.
    Several ``--model`` dirs: the same for their weight average (written to ``--soup-dir``)."""
    from kpe.evaluate.metrics import match_document
    from kpe.train.tagger import HybridExtractor, scores_by_weight

    if len(args.model) > 1 and args.soup_dir is None:
        raise SystemExit("several --model dirs are averaged into --soup-dir: give one")
    model = str(average_models(args.model, args.soup_dir)) if len(args.model) > 1 else args.model[0]
    extractor = HybridExtractor(model, engine_options={"use_cache": False})  # weight: combine() below
    rows = []
    for name, docs in eval_sets(args.sets, args.lake, args.limit, args.silver_limit).items():
        started = time.perf_counter()
        cands: list[list[tuple[str, float, float]]] = []
        for i in range(0, len(docs), 64):
            cands += extractor.candidates([d.text for d in docs[i : i + 64]])
        # the whole pool as one prediction list: its correct entries are the present gold it holds
        pools = [match_document(d.doc_id, [p for p, _, _ in c], list(d.keyphrases), d.text)
                 for d, c in zip(docs, cands)]
        in_pool, present = sum(sum(m.correct["present"]) for m in pools), sum(m.n_gold["present"] for m in pools)
        row: dict[str, Any] = {"set": name, "docs": len(docs), "seconds": round(time.perf_counter() - started, 1),
                               "candidates_per_doc": round(sum(map(len, cands)) / max(len(docs), 1), 2),
                               "present_gold_in_pool": round(in_pool / max(present, 1), 4),
                               "stored_weight": extractor.weight, "by_weight": {}}
        for weight, result in scores_by_weight(cands, docs, args.weights, top_n=10).items():
            macro = result["macro"]["present"]
            row["by_weight"][weight] = {"f1@5": round(macro["f1@5"], 4), "f1@10": round(macro["f1@10"], 4)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| set | docs | candidates / doc | present gold in the pool | "
          + " | ".join(f"F1@5 w={w}" for w in args.weights) + " |")
    print("|---|---|---|---|" + "---|" * len(args.weights))
    for r in rows:
        print(f"| {r['set']} | {r['docs']} | {r['candidates_per_doc']:.1f} | {r['present_gold_in_pool']:.3f} | "
              + " | ".join(f"{r['by_weight'][w]['f1@5']:.4f}" for w in args.weights) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_lake = sub.add_parser("lake", help="ingest a MEDLINE file into a benchmark lake + warehouse")
    p_lake.add_argument("--out", type=Path, required=True)
    p_lake.add_argument("--file", type=Path, default=DEFAULT_MEDLINE)
    p_train = sub.add_parser("train", help="train (other options go to kpe.train), then score on --eval sets")
    p_train.add_argument("--eval", nargs="*", default=["inspec_dev"])
    p_train.add_argument("--method", action="append", default=None,
                         help="method to score the model with (repeatable; default: the kind's own)")
    p_train.add_argument("--lake", type=Path, default=None, help="benchmark lake folder (for pubmed_silver_dev)")
    p_train.add_argument("--limit", type=int, default=None)
    p_train.add_argument("--silver-limit", type=int, default=None)
    p_train.add_argument("--json", type=Path, default=None)
    p_speed = sub.add_parser("speed", help="the same short training per precision: samples/s, epoch time "
                             "(extrapolated), peak RSS, dev F1 (other options go to kpe.train)")
    p_speed.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p_speed.add_argument("--eval", nargs="*", default=["inspec_dev"])
    p_speed.add_argument("--method", default=None, help="method to score the models with (default: the kind's)")
    p_speed.add_argument("--lake", type=Path, default=None, help="benchmark lake folder (pubmed silver train / dev)")
    p_speed.add_argument("--limit", type=int, default=None)
    p_speed.add_argument("--silver-limit", type=int, default=None)
    p_speed.add_argument("--json", type=Path, default=None)
    p_steps = sub.add_parser("steps", help="where a training step's time goes, per training variant")
    p_steps.add_argument("--kind", choices=["tagger", "mlm"], default="tagger")
    p_steps.add_argument("--batch-size", type=int, default=8)
    p_steps.add_argument("--length", type=int, default=240)
    p_steps.add_argument("--steps", type=int, default=25)
    p_steps.add_argument("--threads", type=int, default=2)
    p_steps.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p_ceiling = sub.add_parser("ceiling", help="the hybrid's candidate pool: gold in it, F1@5 per weight")
    p_ceiling.add_argument("--model", required=True, nargs="+",
                           help="a tagger model dir (e.g. the production model's); several: their weight average")
    p_ceiling.add_argument("--soup-dir", type=Path, default=None, help="where the average of several --model goes")
    p_ceiling.add_argument("--sets", nargs="+", default=["pubmed_silver_dev", "inspec_dev"])
    p_ceiling.add_argument("--weights", nargs="+", type=float, default=[0.6, 0.7, 0.8, 0.9, 1.0])
    p_ceiling.add_argument("--lake", type=Path, default=None, help="folder with lake/ and warehouse.duckdb")
    p_ceiling.add_argument("--limit", type=int, default=None)
    p_ceiling.add_argument("--silver-limit", type=int, default=None)
    p_table = sub.add_parser("table", help="compare methods on dev sets")
    p_table.add_argument("--sets", nargs="+", default=["inspec_dev", "semeval2017_dev"])
    p_table.add_argument("--tagger", default=None)
    p_table.add_argument("--joint", default=None)
    p_table.add_argument("--keybert-ft", default=None, help="encoder dir for keybert-ft (default: the tagger's)")
    p_table.add_argument("--mlm-tagger", default=None, help="a tagger started from the MLM encoder")
    p_table.add_argument("--kpe", action="store_true", help="also the project's KeyBERT engine (kpe)")
    p_table.add_argument("--no-baseline", action="store_true", help="leave out plain KeyBERT")
    p_table.add_argument("--lake", type=Path, default=None)
    p_table.add_argument("--limit", type=int, default=None)
    p_table.add_argument("--silver-limit", type=int, default=None)
    p_table.add_argument("--json", type=Path, default=None)
    args, rest = parser.parse_known_args()
    if args.cmd == "lake":
        print(json.dumps(build_lake(args.out, args.file), indent=2, default=str))
    elif args.cmd == "train":
        cmd_train(args, rest)
    elif args.cmd == "speed":
        cmd_speed(args, rest)
    elif args.cmd == "steps":
        cmd_steps(args)
    elif args.cmd == "ceiling":
        cmd_ceiling(args)
    else:
        if rest:
            parser.error(f"unknown options: {rest}")
        cmd_table(args)


if __name__ == "__main__":
    main()
