"""The extraction engine in several processes at once, each with its own model on the same device.

With a GPU the encoder's forward passes cost little and the engine's own Python work (candidates, tokenizing,
pooling, ranking: about 5-7 ms a document on one core) sets the pace, so one process reaches a few hundred
documents a second whatever the GPU. ``benchmarks/extract.py --processes N`` measures what N processes give
together (what the nightly's Dask task runner does with ``KPE_DASK_WORKERS`` on one machine): the documents are
cut into N contiguous shards, every process loads its engine (cold embedding cache of its own) and warms it up, and
the clock runs from the moment all are ready until the last one is done.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path
from typing import Any


def _worker(index: int, texts: list[str], warmup: list[str], options: dict[str, Any], model_path: str,
            cache_dir: str, ready: Any, start: Any, results: Any) -> None:
    import torch

    from kpe.extract.config import ExtractionConfig
    from kpe.extract.engine import KeyphraseEngine

    torch.set_num_threads(options["threads"])
    fast = options.pop("fast")
    if options.pop("null_forward"):
        from benchmarks.extract import null_forward

        null_forward()
    config = (ExtractionConfig.fast if fast else ExtractionConfig)(**options)
    engine = KeyphraseEngine(config, model_path=model_path, cache_dir=Path(cache_dir) / f"process-{index}")
    engine.extract(warmup)
    ready.put(index)
    start.wait()
    results.put((index, [[kp.phrase for kp in r] for r in engine.extract(texts)]))


def sharded_run(docs: list[str], warmup: list[str], *, processes: int, threads: int, device: str,
                model_path: str, cache_dir: Path, fast: bool = False, null_forward: bool = False
                ) -> tuple[float, list[list[str]]]:
    """``(seconds, keyphrases of every document in order)`` of ``processes`` engines over contiguous shards."""
    context = mp.get_context("spawn")  # CUDA cannot be used in a forked child
    ready, results, start = context.Queue(), context.Queue(), context.Event()
    size = -(-len(docs) // processes)
    shards = [docs[i * size : (i + 1) * size] for i in range(processes)]
    options = {"threads": threads, "device": device, "fast": fast, "null_forward": null_forward}
    workers = [context.Process(target=_worker, args=(i, shard, warmup, dict(options), model_path, str(cache_dir),
                                                     ready, start, results))
               for i, shard in enumerate(shards)]
    for worker in workers:
        worker.start()
    try:
        for _ in workers:
            ready.get(timeout=600)
        began = time.perf_counter()
        start.set()
        out: dict[int, list[list[str]]] = {}
        for _ in workers:
            index, phrases = results.get(timeout=3600)
            out[index] = phrases
        seconds = time.perf_counter() - began
    finally:
        for worker in workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.terminate()
    return seconds, [phrases for i in range(processes) for phrases in out[i]]
