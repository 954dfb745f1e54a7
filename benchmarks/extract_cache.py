"""Does the persistent phrase-embedding cache pay? Its hit rate on a second MEDLINE file after a first one.

    python benchmarks/extract_cache.py [--docs 2000] [--threads 2] [--json]
    python benchmarks/extract_cache.py --first FILE_A --second FILE_B

Three runs of the default engine, each a fresh engine (a new night: empty in-memory LRU) in batches of
``settings.extract_batch_size`` documents:

1. file A (default: the first N abstracts of pubmed20n0014, 1976-79) into an empty cache;
2. file B (default: the first N abstracts of pubmed21n1298, 2021) into that cache (what a nightly run sees);
3. file B into an empty cache (hits only from repeats inside B), to tell cross-file hits from in-file ones.

Reported per run: phrases looked up (candidates kept for the phrase pass), hit rate, phrases encoded per
document, seconds in the phrase pass, docs/s, and the cache's size on disk per stored phrase.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.extract import DATA, medline_abstracts  # noqa: E402


def run_file(docs: list[str], cache_dir: Path, threads: int, batch: int, label: str) -> dict[str, Any]:
    from tqdm import tqdm

    from kpe.extract.config import ExtractionConfig
    from kpe.extract.engine import KeyphraseEngine

    engine = KeyphraseEngine(ExtractionConfig(threads=threads), cache_dir=cache_dir)
    t = time.perf_counter()
    with tqdm(total=len(docs), desc=label, unit="doc", file=sys.stderr, mininterval=30) as bar:
        for start in range(0, len(docs), batch):
            part = docs[start : start + batch]
            engine.extract(part)
            bar.update(len(part))
    seconds = time.perf_counter() - t
    assert engine.cache is not None
    stats = engine.cache.stats
    counts = engine.ranker.counts
    stages = engine.stage_seconds
    disk = sum(p.stat().st_size for p in engine.cache.directory.glob("phrases.sqlite*"))
    stored = len(engine.cache)
    engine.close()
    n = max(len(docs), 1)
    return {
        "n_docs": len(docs),
        "lookups": stats.lookups,
        "hit_rate": round(stats.hit_rate, 4),
        "memory_hits": stats.memory_hits,
        "disk_hits": stats.disk_hits,
        "encoded_per_doc": round(counts.get("encoded_phrases", 0) / n, 1),
        "kept_per_doc": round(counts.get("kept", 0) / n, 1),
        "phrase_pass_s": round(stages.get("phrase_pass", 0.0), 1),
        "document_pass_s": round(stages.get("document_pass", 0.0), 1),
        "seconds": round(seconds, 1),
        "docs_per_s": round(len(docs) / seconds, 2),
        "cache_phrases": stored,
        "cache_bytes_per_phrase": round(disk / stored) if stored else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--first", type=Path, default=DATA / "pubmed" / "full_files" / "pubmed20n0014.xml.gz")
    parser.add_argument("--second", type=Path, default=DATA / "pubmed" / "full_files" / "pubmed21n1298.xml.gz")
    parser.add_argument("--docs", type=int, default=2000, help="abstracts per file")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    from kpe.settings import get_settings

    torch.set_num_threads(args.threads)
    batch = get_settings().extract_batch_size
    first = medline_abstracts(args.first, args.docs)
    second = medline_abstracts(args.second, args.docs)
    result: dict[str, Any] = {"files": [args.first.name, args.second.name], "batch": batch}
    runs = (("first", first, "shared"), ("second_after_first", second, "shared"), ("second_alone", second, "alone"))
    with tempfile.TemporaryDirectory(prefix="kpe-cache-") as tmp:
        for name, docs, cache in runs:
            r = result[name] = run_file(docs, Path(tmp) / cache, args.threads, batch, name)
            # One line per run as it ends (stderr with --json): a long run shows its progress.
            print(f"{name:20s} {r['n_docs']} docs  hit rate {r['hit_rate']:.3f}  encoded/doc {r['encoded_per_doc']}  "
                  f"phrase pass {r['phrase_pass_s']} s  {r['docs_per_s']} docs/s  cache {r['cache_phrases']} phrases "
                  f"({r['cache_bytes_per_phrase']} B each)", file=sys.stderr if args.json else sys.stdout, flush=True)
    after, alone_r = result["second_after_first"], result["second_alone"]
    result["cross_file_hit_rate_gain"] = round(after["hit_rate"] - alone_r["hit_rate"], 4)
    if args.json:
        print(json.dumps(result))
        return
    print(f"cross-file gain in hit rate on {args.second.name}: {result['cross_file_hit_rate_gain']:+.3f}")


if __name__ == "__main__":
    main()
