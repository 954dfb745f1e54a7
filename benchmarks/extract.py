"""Extraction speed (and optionally quality): the kpe engine vs plain KeyBERT vs the encoder-only floor.

    python benchmarks/extract.py [--docs 500] [--threads 2] [--device cpu|cuda] [--json] [--quality] [--levers]
    python benchmarks/extract.py --model data/models/VERSION/model --method hybrid --method tagger   # + fine-tuned
    python benchmarks/extract.py --rss-file ../shared/data/pubmed/full_files/pubmed20n0014.xml.gz
    python benchmarks/extract.py --device cuda --file ../shared/data/pubmed/full_files/pubmed20n0014.xml.gz \
        --docs 0 --keybert-docs 1000 --json      # every abstract of the 30,000-record file (benchmarks/gpu.sh)

Documents: the first N records with an abstract of pubmed21n1298.xml.gz (shared data; ``--file`` another MEDLINE
file, ``--docs 0`` all of its abstracts), text = ``document_text(title, abstract)``. ``--keybert-docs N`` times
plain KeyBERT (and the KeyBERT mode) on the first N documents only (docs/s stays comparable; agreement is measured
on those). On CUDA the result has ``gpu`` (name, ``max_memory_allocated_mb``: torch's peak over the whole run).
Every method uses the same SentenceTransformer loaded from the same
directory, the same torch thread count, and the same documents, in one process; each first runs once on 8
other documents (warm-up, not timed). Timed:

* floor: one ``model.encode(docs)`` (sentence-transformers defaults): the documents' embeddings alone;
* keybert: ``KeyBERT(model).extract_keywords(docs, keyphrase_ngram_range=(1, 3), stop_words="english", top_n=10)``;
* kpe: ``KeyphraseEngine(ExtractionConfig(threads=...))`` with an empty embedding cache (cold: only phrases
  repeated inside the N documents hit), then again on the same documents (warm: every phrase cached);
* kpe fast: ``ExtractionConfig.fast()`` (candidates pooled from the document pass, int8 on CPU: no phrase pass);
* kpe-keybert: ``ExtractionConfig.keybert()`` (KeyBERT's own candidates, all encoded): its top-10 agreement
  with plain KeyBERT (share of KeyBERT's top-10 phrases it also returns) checks the fast path reproduces it;
* with ``--model DIR``: each ``--method`` (default ``hybrid``) of that fine-tuned model, built by
  ``kpe.extract.methods.build_extractor`` as the nightly builds it, with an empty embedding cache (cold, as kpe):
  the speed/quality frontier in the same run.

``--quality`` adds macro F1@5 / F1@10 over present gold (``kpe.evaluate.metrics``, strict ``/k``) on Inspec
dev (500) and a PubMed silver set (the first 500 records of pubmed21n1298 with an author keyword in the
text), kpe, kpe fast and the fine-tuned methods vs plain KeyBERT. ``--levers`` times each speed lever on its own
(cumulative). ``--rss-file`` runs the default engine alone, in a child process, over every abstract of a MEDLINE
file in batches of ``settings.extract_batch_size`` and reports its peak RSS. ``--processes N`` also runs the default
and fast engines in N processes at once over shards of the documents (``benchmarks/extract_processes.py``; on a GPU
the engine is CPU-bound, and this is how a machine's cores add up), each with ``--threads / N`` torch threads.
``--null-forward`` replaces the engine's encoder passes by zeros: the documents per second of its own work in one
process, the most one process can reach however fast the GPU (plain KeyBERT and the floor still run the model).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.environment import apply_defaults  # noqa: E402 - after the path insert

apply_defaults()

DATA = Path(os.environ.get("KPE_SHARED_DATA_DIR", ROOT.parent / "shared" / "data"))
PUBMED_FILE = DATA / "pubmed" / "full_files" / "pubmed21n1298.xml.gz"
INSPEC_DEV = DATA / "keyphrase" / "inspec_dev.jsonl"
WARMUP_DOCS = 8
EMULATED_BF16_DOCS = 100
QUALITY_SETS = ("inspec_dev", "pubmed_silver")  # --quality / --levers-quality


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def medline_abstracts(path: Path, n: int | None, skip: int = 0) -> list[str]:
    """``document_text`` of the first ``n`` records with an abstract (after ``skip`` of them); a ``.jsonl`` file
    holds those texts already, one ``{"text": ...}`` a line (``benchmarks/gpu_carry.py`` stages them so)."""
    from kpe.extract.methods import document_text
    from kpe.records import SourceRecord
    from kpe.sources.pubmed import iter_medline

    stop = None if n is None else skip + n
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as handle:
            return [json.loads(line)["text"] for line in islice((row for row in handle if row.strip()), skip, stop)]
    records = (r for r in iter_medline(path) if isinstance(r, SourceRecord) and r.abstract and r.abstract.strip())
    return [document_text(r.title, r.abstract) for r in islice(records, skip, stop)]


def inspec_dev() -> tuple[list[str], list[list[str]]]:
    from kpe.extract.methods import document_text

    texts, gold = [], []
    with INSPEC_DEV.open() as fh:
        for line in fh:
            obj = json.loads(line)
            texts.append(document_text(obj.get("title"), obj.get("abstract")))
            gold.append(list(obj["keyphrases"]))
    return texts, gold


def pubmed_silver(n: int = 500) -> tuple[list[str], list[list[str]]]:
    """The first ``n`` records of the file whose author keywords occur in the text (gold: all their keywords)."""
    from kpe.datasets import silver_document
    from kpe.records import SourceRecord
    from kpe.sources.pubmed import iter_medline

    texts, gold = [], []
    for rec in iter_medline(PUBMED_FILE):
        if isinstance(rec, SourceRecord) and rec.keywords:
            doc = silver_document(rec.source_id, rec.title, rec.abstract, rec.keywords)
            if doc is not None:
                texts.append(doc.text)
                gold.append(list(doc.keyphrases))
                if len(texts) >= n:
                    break
    return texts, gold


def macro_present_f1(predicted: list[list[str]], gold: list[list[str]], texts: list[str]) -> dict[str, float]:
    from kpe.evaluate.metrics import evaluate_predictions

    macro = evaluate_predictions(predicted, gold, texts)["macro"]["present"]
    return {"f1@5": round(macro["f1@5"], 4), "f1@10": round(macro["f1@10"], 4)}


def agreement(ours: list[list[str]], theirs: list[list[str]]) -> float:
    """Share of ``theirs``' phrases (case-insensitive) that ``ours`` also returns for the same document."""
    total = hit = 0
    for mine, ref in zip(ours, theirs):
        mine_set = {p.lower() for p in mine}
        total += len(ref)
        hit += sum(p.lower() in mine_set for p in ref)
    return hit / total if total else 1.0


class Bench:
    """One model, one thread setting, one set of documents; every method timed the same way."""

    def __init__(self, docs: list[str], warmup: list[str], threads: int, device: str,
                 keybert_docs: int | None = None, encoder: str | None = None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        from kpe.encoders import resolve_encoder

        torch.set_num_threads(threads)
        self.docs, self.warmup, self.threads, self.device = docs, warmup, threads, device
        self.keybert_docs = docs[:keybert_docs] if keybert_docs else docs
        self.model_path = resolve_encoder(encoder)
        self.model = SentenceTransformer(self.model_path, device=device)
        self.tmp = tempfile.TemporaryDirectory(prefix="kpe-bench-")

    def timed(self, fn: Any, docs: list[str] | None = None) -> tuple[float, Any]:
        fn(self.warmup)
        t = time.perf_counter()
        out = fn(docs if docs is not None else self.docs)
        return time.perf_counter() - t, out

    def floor(self) -> float:
        seconds, _ = self.timed(lambda d: self.model.encode(d, show_progress_bar=False))
        return seconds

    def keybert(self, docs: list[str] | None = None) -> tuple[float, list[list[str]]]:
        from keybert import KeyBERT

        kb = KeyBERT(self.model)

        def run(d: list[str]) -> list[list[str]]:
            out = kb.extract_keywords(d, keyphrase_ngram_range=(1, 3), stop_words="english", top_n=10)
            out = [out] if len(d) == 1 else out
            return [[p for p, _ in r] for r in out]

        return self.timed(run, docs)

    def engine(self, name: str, **overrides: Any) -> Any:
        from kpe.extract.config import ExtractionConfig
        from kpe.extract.engine import KeyphraseEngine

        base = ExtractionConfig.keybert if overrides.pop("keybert", False) else ExtractionConfig
        base = ExtractionConfig.fast if overrides.pop("fast", False) else base
        config = base(threads=self.threads, device=self.device, **overrides)
        return KeyphraseEngine(config, model_path=self.model_path, cache_dir=Path(self.tmp.name) / name)

    def kpe(self, engine: Any, docs: list[str] | None = None, warm: bool = True) -> tuple[float, list[list[str]]]:
        def run(d: list[str]) -> list[list[str]]:
            return [[kp.phrase for kp in r] for r in engine.extract(d)]

        if not warm:
            t = time.perf_counter()
            out = run(docs if docs is not None else self.docs)
            return time.perf_counter() - t, out
        return self.timed(run, docs)


def sharded_rates(args: argparse.Namespace, bench: Bench, single: dict[str, tuple[float, list[list[str]]]]
                  ) -> dict[str, Any]:
    """The default and fast engines in ``--processes`` processes at once (``benchmarks/extract_processes.py``):
    docs/s together, the gain over one process, and whether they return what one process returned."""
    from benchmarks.extract_processes import sharded_run

    n, threads = len(bench.docs), max(1, args.threads // args.processes)
    out: dict[str, Any] = {"n": args.processes, "threads_per_process": threads}
    for name, (one_s, one_out) in single.items():
        seconds, phrases = sharded_run(bench.docs, bench.warmup, processes=args.processes, threads=threads,
                                       device=args.device, model_path=bench.model_path,
                                       cache_dir=Path(bench.tmp.name) / f"sharded-{name}", fast=name == "kpe_fast",
                                       null_forward=args.null_forward)
        out[f"{name}_docs_per_s"] = round(n / seconds, 2)
        out[f"{name}_vs_one_process"] = round(one_s / seconds, 2)
        out[f"{name}_top10_agreement_with_one_process"] = round(agreement(phrases, one_out), 4)
        print(f"{name} in {args.processes} processes: {n / seconds:.2f} docs/s ({one_s / seconds:.2f}x one)",
              file=sys.stderr, flush=True)
    return out


def engine_stats(engine: Any, n_docs: int) -> dict[str, Any]:
    counts = dict(engine.ranker.counts)
    docs = max(counts.get("documents", 0), 1)
    stats = {
        "candidates_per_doc": round(counts.get("candidates", 0) / docs, 1),
        "kept_per_doc": round(counts.get("kept", 0) / docs, 1),
        "encoded_phrases_per_doc": round(counts.get("encoded_phrases", 0) / docs, 1),
        "stage_seconds": {k: round(v, 2) for k, v in engine.stage_seconds.items()},
    }
    if engine.cache is not None:
        stats["cache_hit_rate"] = round(engine.cache.stats.hit_rate, 3)
    return stats


def lever_scores(row: dict[str, Any]) -> str:
    """A lever row's F1 on the quality sets it was scored on, as one line."""
    return "  ".join(f"{name} {row[name]}" for name in QUALITY_SETS if name in row)


def run_levers(bench: Bench, keybert_dps: float, quality_sets: dict | None) -> list[dict]:
    """Each lever cumulatively, timed on the benchmark documents (and scored when quality sets are given)."""
    from kpe.extract.encoder import cpu_has_native_bf16

    # (label, config overrides, scored): levers that return what an earlier row returns are not scored again
    # (KeyBERT's candidates reproduce plain KeyBERT; the cache returns the embeddings it would compute;
    # "+ contextual first pass" is the default, scored by --quality).
    steps = [
        ("plain KeyBERT", None, False),
        (
            "KeyBERT candidates, batch-deduped, length-sorted token batches (fp32)",
            dict(keybert=True, use_cache=False),
            False,
        ),
        ("+ our stop-word-bounded candidates", dict(prefilter="none", use_cache=False), True),
        ("+ contextual first pass, top 30 to the phrase pass", dict(use_cache=False), False),
        ("+ embedding cache (cold: repeats inside the batch)", dict(), False),
        ("+ embedding cache warm (every phrase seen before)", "warm", False),
        (
            "contextual candidate embeddings only (no phrase pass)",
            dict(candidate_embedding="contextual", use_cache=False),
            True,
        ),
        ("static first pass instead of contextual", dict(prefilter="static", use_cache=False), True),
        ("int8 dynamic quantisation (default config)", dict(precision="int8", use_cache=False), True),
        ("bf16 autocast (default config)", dict(precision="bf16", use_cache=False), True),
    ]
    rows = []
    last_engine = None
    for label, overrides, scored in steps:
        if overrides is None:
            row = {"lever": label, "docs_per_s": round(keybert_dps, 2)}
        elif overrides == "warm":
            seconds, _ = bench.kpe(last_engine, warm=False)
            row = {"lever": label, "docs_per_s": round(len(bench.docs) / seconds, 2)}
        else:
            engine = bench.engine(label.split()[0].strip("+") + str(len(rows)), **overrides)
            emulated = overrides.get("precision") == "bf16" and bench.device == "cpu" and not cpu_has_native_bf16()
            # Emulated bf16 runs several times slower than fp32: timed on a slice, not scored.
            docs = bench.docs[:EMULATED_BF16_DOCS] if emulated else bench.docs
            seconds, _ = bench.kpe(engine, docs)
            row = {"lever": label, "docs_per_s": round(len(docs) / seconds, 2), **engine_stats(engine, len(docs))}
            if emulated:
                row["note"] = (
                    f"no native bf16 on this CPU (emulated): timed on the first {len(docs)} documents, not scored"
                )
            if quality_sets is not None and scored and not emulated:
                for name, (texts, gold) in quality_sets.items():
                    preds = [[kp.phrase for kp in r] for r in engine.extract(texts)]
                    row[name] = macro_present_f1(preds, gold, texts)
            last_engine = engine
        row["speedup_vs_keybert"] = round(row["docs_per_s"] / keybert_dps, 2)
        rows.append(row)
        print(f"  {row['docs_per_s']:8.2f} docs/s  x{row['speedup_vs_keybert']:<6}  {label}  {lever_scores(row)}",
              file=sys.stderr, flush=True)
    return rows


def null_forward() -> None:
    """Make the engine's encoder passes free (zeros of the right shapes): what is left is the engine's own work
    in one process, the ceiling of one process on a GPU. Plain KeyBERT and the floor are not affected."""
    import torch

    from kpe.extract.encoder import SentenceEncoder

    def forward(self: Any, ids: list[list[int]], width: int, tokens: bool = True) -> tuple:
        return torch.zeros(len(ids), self.dimension), torch.zeros(len(ids), width, self.dimension) if tokens else None

    SentenceEncoder._forward = forward


def main_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    from kpe.extract.methods import build_extractor

    load_start = os.getloadavg()[0]
    if args.null_forward:
        null_forward()
    all_docs = medline_abstracts(args.file, None if not args.docs else args.docs + WARMUP_DOCS)
    if args.docs and len(all_docs) > args.docs:
        docs, warmup = all_docs[: args.docs], all_docs[args.docs :]
    else:  # every abstract of the file: warm up on its first ones (not timed, timed again with the rest)
        docs, warmup = all_docs, all_docs[:WARMUP_DOCS]
    bench = Bench(docs, warmup, args.threads, args.device, args.keybert_docs, args.encoder)
    n = len(docs)
    n_kb = len(bench.keybert_docs)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    floor_s = bench.floor()
    log(f"floor: {n / floor_s:.2f} docs/s")
    keybert_s, keybert_out = bench.keybert(bench.keybert_docs)
    keybert_s *= n / n_kb  # seconds it would take on all n documents at the measured rate
    log(f"keybert: {n / keybert_s:.2f} docs/s (timed on {n_kb} documents)")
    engine = bench.engine("kpe")
    kpe_s, kpe_out = bench.kpe(engine)
    cold_stats = engine_stats(engine, n)
    warm_s, _ = bench.kpe(engine, warm=False)
    log(f"kpe: {n / kpe_s:.2f} docs/s cold cache, {n / warm_s:.2f} warm")
    fast_engine = bench.engine("kpe-fast", fast=True)
    fast_s, fast_out = bench.kpe(fast_engine)
    log(f"kpe fast: {n / fast_s:.2f} docs/s")
    kb_engine = bench.engine("kpe-keybert", keybert=True, use_cache=False)
    kbm_s, kbm_out = bench.kpe(kb_engine, bench.keybert_docs)
    kbm_s *= n / n_kb
    log(f"kpe keybert mode: {n / kbm_s:.2f} docs/s")
    methods = (args.method or ["hybrid"]) if args.model else []
    # as the nightly builds them, with an empty embedding cache (cold, as `kpe` above)
    tuned = {method: build_extractor(method, args.model, {"use_cache": False, "threads": args.threads,
                                                          "device": args.device})
             for method in methods}
    tuned_s = {}
    for method, extractor in tuned.items():
        tuned_s[method], _ = bench.kpe(extractor)
        log(f"{method} ({args.model}): {n / tuned_s[method]:.2f} docs/s")
    sharded = sharded_rates(args, bench, {"kpe": (kpe_s, kpe_out), "kpe_fast": (fast_s, fast_out)}) \
        if args.processes > 1 else None

    result: dict[str, Any] = {
        "n_docs": n,
        "file": args.file.name,
        "keybert_timed_docs": n_kb,
        "threads": args.threads,
        "device": args.device,
        "warmup_docs": WARMUP_DOCS,
        "model": bench.model_path,
        "null_forward": args.null_forward,
        "floor_docs_per_s": round(n / floor_s, 2),
        "keybert_docs_per_s": round(n / keybert_s, 2),
        "kpe_docs_per_s": round(n / kpe_s, 2),
        "kpe_warm_cache_docs_per_s": round(n / warm_s, 2),
        "kpe_keybert_mode_docs_per_s": round(n / kbm_s, 2),
        "kpe_fast_docs_per_s": round(n / fast_s, 2),
        "speedup_vs_keybert_fast": round(keybert_s / fast_s, 2),
        "kpe_fast_vs_floor": round(floor_s / fast_s, 3),
        "speedup_vs_keybert": round(keybert_s / kpe_s, 2),
        "speedup_vs_keybert_warm_cache": round(keybert_s / warm_s, 2),
        "kpe_vs_floor": round(floor_s / kpe_s, 3),
        "top10_agreement": round(agreement(kbm_out, keybert_out), 4),
        "top10_agreement_default_config": round(agreement(kpe_out[:n_kb], keybert_out), 4),
        "kpe": {
            "config_hash": engine.config_hash,
            "config": json.loads(engine.resolved_config.to_json()),
            **cold_stats,
        },
        "kpe_keybert_mode": engine_stats(kb_engine, n),
        "kpe_fast": {
            "config_hash": fast_engine.config_hash,
            "config": json.loads(fast_engine.resolved_config.to_json()),
            **engine_stats(fast_engine, n),
        },
        "fine_tuned": {method: {"model": args.model, "docs_per_s": round(n / sec, 2),
                                "speedup_vs_keybert": round(keybert_s / sec, 2)} for method, sec in tuned_s.items()},
    }
    if sharded:
        result["processes"] = sharded
    quality_sets = None
    if args.quality or args.levers_quality:
        quality_sets = dict(zip(QUALITY_SETS, (inspec_dev(), pubmed_silver(500))))
    if args.quality:
        quality: dict[str, Any] = {}
        for name, (texts, gold) in quality_sets.items():
            _, kb_pred = bench.keybert(texts)
            fresh = bench.engine(f"quality-{name}")
            ours = [[kp.phrase for kp in r] for r in fresh.extract(texts)]
            kbm = [[kp.phrase for kp in r] for r in kb_engine.extract(texts)]
            quick = [[kp.phrase for kp in r] for r in fast_engine.extract(texts)]
            quality[name] = {
                "n_docs": len(texts),
                "keybert": macro_present_f1(kb_pred, gold, texts),
                "kpe": macro_present_f1(ours, gold, texts),
                "kpe_fast": macro_present_f1(quick, gold, texts),
                "kpe_keybert_mode": macro_present_f1(kbm, gold, texts),
                "kpe_keybert_mode_top10_agreement": round(agreement(kbm, kb_pred), 4),
                **{method: macro_present_f1([[kp.phrase for kp in r] for r in extractor.extract(texts)], gold, texts)
                   for method, extractor in tuned.items()},
            }
            log(f"quality {name}: {quality[name]}")
        result["quality"] = quality
    if args.levers or args.levers_quality:
        result["levers"] = run_levers(bench, n / keybert_s, quality_sets if args.levers_quality else None)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    if args.device == "cuda":
        import torch

        result["gpu"] = {"name": torch.cuda.get_device_name(0),
                         "max_memory_allocated_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)}
    result["load_average"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    return result


def rss_phase(path: Path, threads: int, limit: int | None) -> dict[str, Any]:
    """Child process: the default engine alone over a whole file, in warehouse-sized batches."""
    import torch

    from kpe.extract.config import ExtractionConfig
    from kpe.extract.engine import KeyphraseEngine
    from kpe.settings import get_settings

    torch.set_num_threads(threads)
    batch = get_settings().extract_batch_size
    with tempfile.TemporaryDirectory(prefix="kpe-rss-") as tmp:
        engine = KeyphraseEngine(ExtractionConfig(threads=threads), cache_dir=Path(tmp))
        docs = medline_abstracts(path, limit)
        t = time.perf_counter()
        n_phrases = 0
        for start in range(0, len(docs), batch):
            n_phrases += sum(len(r) for r in engine.extract(docs[start : start + batch]))
        seconds = time.perf_counter() - t
        stats = engine_stats(engine, len(docs))
        engine.close()
    return {"file": path.name, "n_docs": len(docs), "batch": batch, "seconds": round(seconds, 1),
            "docs_per_s": round(len(docs) / seconds, 2), "keyphrases": n_phrases,
            "peak_rss_mb": round(peak_rss_mb(), 1), **stats}


def print_summary(r: dict[str, Any]) -> None:
    print(f"{r['n_docs']} MEDLINE abstracts of {r['file']} (KeyBERT timed on {r['keybert_timed_docs']}), "
          f"{r['threads']} threads, {r['device']}, "
          f"warm-up on {r['warmup_docs']} other docs excluded")
    print(f"  encoder-only floor  {r['floor_docs_per_s']:8.2f} docs/s")
    print(f"  plain KeyBERT       {r['keybert_docs_per_s']:8.2f} docs/s")
    print(f"  kpe (cold cache)    {r['kpe_docs_per_s']:8.2f} docs/s   x{r['speedup_vs_keybert']} vs KeyBERT, "
          f"{r['kpe_vs_floor']:.2f} of the floor")
    print(f"  kpe (warm cache)    {r['kpe_warm_cache_docs_per_s']:8.2f} docs/s   "
          f"x{r['speedup_vs_keybert_warm_cache']} vs KeyBERT")
    print(f"  kpe fast            {r['kpe_fast_docs_per_s']:8.2f} docs/s   x{r['speedup_vs_keybert_fast']} vs KeyBERT, "
          f"{r['kpe_fast_vs_floor']:.2f} of the floor")
    print(f"  kpe keybert mode    {r['kpe_keybert_mode_docs_per_s']:8.2f} docs/s   "
          f"top-10 agreement with KeyBERT {r['top10_agreement']:.4f}")
    print(f"  default config's top-10 agreement with KeyBERT {r['top10_agreement_default_config']:.4f} "
          "(other candidates)")
    for method, row in r["fine_tuned"].items():
        print(f"  {method:<19} {row['docs_per_s']:8.2f} docs/s   x{row['speedup_vs_keybert']} vs KeyBERT "
              f"(fine-tuned: {row['model']})")
    print(f"  kpe: {r['kpe']['candidates_per_doc']} candidates/doc, {r['kpe']['kept_per_doc']} to the phrase pass, "
          f"{r['kpe']['encoded_phrases_per_doc']} encoded/doc; stages {r['kpe']['stage_seconds']}")
    for name, q in r.get("quality", {}).items():
        print(f"  {name}: KeyBERT {q['keybert']}  kpe {q['kpe']}  kpe fast {q['kpe_fast']}  "
              f"kpe keybert mode {q['kpe_keybert_mode']}"
              + "".join(f"  {method} {q[method]}" for method in r["fine_tuned"]))
    for row in r.get("levers", []):
        print(f"  lever {row['docs_per_s']:8.2f} docs/s x{row['speedup_vs_keybert']:<6} "
              f"{row['lever']}  {lever_scores(row)}")
    print(f"  peak RSS {r['peak_rss_mb']} MB (whole benchmark process); load average {r['load_average']}")
    if "gpu" in r:
        print(f"  GPU {r['gpu']['name']}: torch max_memory_allocated {r['gpu']['max_memory_allocated_mb']} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=500, help="abstracts to extract (0: every one of --file)")
    parser.add_argument("--file", type=Path, default=PUBMED_FILE,
                        help="MEDLINE file the abstracts come from (or a .jsonl of their texts)")
    parser.add_argument("--encoder", default=None, help="encoder directory (default: the packaged MiniLM)")
    parser.add_argument("--keybert-docs", type=int, default=None,
                        help="time plain KeyBERT and the KeyBERT mode on the first N documents only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--null-forward", action="store_true",
                        help="the engine's encoder passes cost nothing: one process's own work alone (GPU ceiling)")
    parser.add_argument("--processes", type=int, default=1,
                        help="also time the default and fast engines in N processes at once (GPU: CPU-bound)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--model", help="a fine-tuned model dir: also time (and with --quality score) its methods")
    parser.add_argument("--method", action="append", help="a method of --model (repeatable; default: hybrid)")
    parser.add_argument("--quality", action="store_true", help="macro F1@5/@10 present on Inspec dev and PubMed silver")
    parser.add_argument("--levers", action="store_true", help="time each speed lever")
    parser.add_argument("--levers-quality", action="store_true", help="time and score each lever (slow)")
    parser.add_argument("--rss-file", type=Path, help="peak RSS of the engine alone over every abstract of this file")
    parser.add_argument("--rss-limit", type=int, default=None, help="at most this many abstracts for --rss-file")
    parser.add_argument("--_rss-child", dest="rss_child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.rss_file is not None:
        if args.rss_child:
            print(json.dumps(rss_phase(args.rss_file, args.threads, args.rss_limit)))
            return
        cmd = [
            sys.executable, __file__, "--rss-file", str(args.rss_file), "--threads", str(args.threads), "--_rss-child"
        ]
        if args.rss_limit:
            cmd += ["--rss-limit", str(args.rss_limit)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        print(json.dumps(result) if args.json else json.dumps(result, indent=2))
        return

    result = main_benchmark(args)
    if args.json:
        print(json.dumps(result))
    else:
        print_summary(result)


if __name__ == "__main__":
    main()
