"""The fewest token rows a forward pass needs on this CPU, and what filling small batches up to them costs.

    python benchmarks/forward_floor.py [--precisions fp32 bf16 int8] [--floors 12 128 256 512] [--docs 104]

The encoder fills a forward pass of fewer than ``kpe.extract.encoder.min_forward_tokens(precision)`` token rows
with copies of its first text, so that a text's vector does not depend on what shares its batch (GEMM libraries
pick other kernels for small matrices, which sum in another order). For each precision and candidate floor this
prints:

* ``mismatched``: of 60 candidate phrases of the abstracts (shuffled), how many have a vector not bitwise equal
  when encoded alone, among 2 others or among 19 others, to the one they get among all the abstracts' candidates
  (thousands: full forward passes, far above any floor); 0: the floor holds on this machine;
* ``docs/s`` of the default engine (no embedding cache) over ``--docs`` abstracts of pubmed21n1298 in batches of
  each ``--batch-sizes`` (the nightly's small batches pay for the filling, large ones do not).

The floor the code uses on this machine is marked ``*``. bf16 is left out where the CPU lacks native bf16.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.extract import PUBMED_FILE, medline_abstracts  # noqa: E402

PHRASES = 60


def mismatched_phrases(encoder: Any, phrases: list[str], checked: int) -> int:
    """Of the first ``checked`` phrases, those whose vector alone, among 2 or among 19 others is not bitwise the one
    computed among all ``phrases``."""
    import numpy as np

    together = encoder.encode(phrases)
    bad = set()
    for size in (1, 3, 20):
        for start in range(0, checked, size):
            idx = list(range(start, min(start + size, checked)))
            got = encoder.encode([phrases[i] for i in idx])
            bad.update(i for row, i in enumerate(idx) if not np.array_equal(got[row], together[i]))
    return len(bad)


def docs_per_second(engine: Any, docs: list[str], batch_size: int) -> float:
    start = time.perf_counter()
    for first in range(0, len(docs), batch_size):
        engine.extract(docs[first : first + batch_size])
    return len(docs) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "int8"])
    parser.add_argument("--floors", nargs="+", type=int, default=[12, 128, 256, 512])
    parser.add_argument("--docs", type=int, default=104)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[8, 104])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    import numpy as np

    from kpe.extract import encoder as encoder_module
    from kpe.extract.candidates import candidate_phrases
    from kpe.extract.config import ExtractionConfig
    from kpe.extract.engine import KeyphraseEngine

    chosen = encoder_module.min_forward_tokens
    docs = medline_abstracts(PUBMED_FILE, args.docs)
    phrases = sorted({p.lower() for text in docs for p in candidate_phrases(text)})
    np.random.default_rng(0).shuffle(phrases)
    flags = encoder_module.cpu_flags() & {"avx512_bf16", "amx_bf16"}
    precisions = [p for p in args.precisions if p != "bf16" or encoder_module.cpu_has_native_bf16()]
    rows: list[dict[str, Any]] = []
    for precision in precisions:
        engine = KeyphraseEngine(ExtractionConfig(threads=args.threads, precision=precision, use_cache=False))
        engine.extract(docs[:8])  # warm-up
        for floor in args.floors:
            # what padded_batch reads: the floor under test instead of this CPU's own
            encoder_module.min_forward_tokens = lambda _precision, floor=floor: floor
            try:
                row = {"precision": precision, "floor": floor, "used_here": floor == chosen(precision),
                       "mismatched": mismatched_phrases(engine.encoder, phrases, PHRASES)}
                for size in args.batch_sizes:
                    row[f"docs/s batch {size}"] = round(docs_per_second(engine, docs, size), 2)
            finally:
                encoder_module.min_forward_tokens = chosen
            rows.append(row)
            if not args.json:
                mark = "*" if row["used_here"] else " "
                speeds = "  ".join(f"batch {s}: {row[f'docs/s batch {s}']:6.2f} docs/s" for s in args.batch_sizes)
                print(f"{precision:5s} floor {floor:4d}{mark} mismatched {row['mismatched']:2d}/{PHRASES}  "
                      f"{speeds}", flush=True)
    if args.json:
        print(json.dumps({"cpu_flags": sorted(flags), "docs": len(docs), "phrases": len(phrases), "rows": rows}))
    else:
        print(f"CPU flags: {' '.join(sorted(flags)) or 'no native bf16'}; {len(docs)} abstracts, {PHRASES} of their "
              f"{len(phrases)} phrases checked, {args.threads} threads; * = the floor this machine uses")


if __name__ == "__main__":
    main()
