"""What `benchmarks/gpu.sh` carries to a lent GPU machine, packed small, and unpacked there.

    python benchmarks/gpu_carry.py stage --out .carry      # here: encoder (fp16), documents, silver + benchmark sets
    python benchmarks/gpu_carry.py unpack --carry .carry --out $SCRATCH   # there: fp32 encoder + shared-data layout

A device call carries at most 64 MiB. The packaged all-MiniLM-L6-v2 is 87 MiB in fp32, the 30,000-record MEDLINE
file 16 MiB gzipped, so ``stage`` writes:

* ``encoder/``: the packaged encoder with its weights stored in fp16 (44 MiB; ``unpack`` writes them back as fp32:
  the same vectors to a cosine of 0.9998 or more, and training starts from fp32 master weights);
* ``data/pubmed20n0014_abstracts.jsonl.xz``: ``{"id", "text"}`` of every record of the 30,000-record file with an
  abstract, text = ``document_text(title, abstract)`` (what ``benchmarks/extract.py --file`` reads from the XML);
* ``data/keyphrase/*.jsonl.xz``: the Inspec and SemEval-2017 train / dev files, and the PubMed silver train / dev
  splits of one MEDLINE file (ingested here into a scratch lake with the project's own ingest code:
  ``kpe.train.data.silver_docs``, ``kpe.splits.split_of``) as ``pubmed_silver_train`` / ``pubmed_silver_dev``.

``unpack`` decompresses the sets into ``OUT/data/keyphrase/`` (a folder laid out as the shared data, so the benchmark
names resolve with ``KPE_SHARED_DATA_DIR=OUT/data``) and the encoder into ``OUT/encoder``.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = Path(os.environ.get("KPE_SHARED_DATA_DIR", ROOT.parent / "shared" / "data"))
EXTRACT_FILE = "pubmed/full_files/pubmed20n0014.xml.gz"
SILVER_FILE = "pubmed/full_files/pubmed21n1298.xml.gz"
BENCHMARK_FILES = ("inspec_train", "inspec_dev", "semeval2017_train", "semeval2017_dev")
ENCODER_SKIP = ("README.md", "data_config.json", ".gitattributes", "__pycache__")


def write_xz(lines: list[str], path: Path) -> int:
    """One JSON document a line, xz-compressed; returns the line count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with lzma.open(path, "wt", encoding="utf-8", preset=9) as handle:
        for line in lines:
            handle.write(line + "\n")
    return len(lines)


def folder_mib(folder: Path) -> float:
    """The size of every file under ``folder``, in MiB (one decimal)."""
    return round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20, 1)


def copy_encoder(src: Path, out: Path, dtype: str, skip: tuple[str, ...] = ()) -> None:
    """``src``'s encoder directory into ``out`` (replaced), its floating-point weights cast to ``dtype``."""
    import torch
    from safetensors.torch import load_file, save_file

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("model.safetensors", *skip))
    weights = load_file(src / "model.safetensors")
    cast = getattr(torch, dtype)
    save_file({k: v.to(cast) if v.is_floating_point() else v for k, v in weights.items()}, out / "model.safetensors",
              metadata={"format": "pt", "stored_as": f"{dtype} by benchmarks/gpu_carry.py"})


def stage_encoder(src: Path, out: Path) -> dict[str, float]:
    """The encoder directory with fp16 weights (config, tokenizer and sentence-transformers files as they are)."""
    copy_encoder(src, out, "float16", ENCODER_SKIP)
    return {"mib": folder_mib(out)}


def stage_abstracts(medline: Path, out: Path) -> int:
    """``{"id", "text"}`` of every record of a MEDLINE file with an abstract."""
    from kpe.extract.methods import document_text
    from kpe.records import SourceRecord
    from kpe.sources.pubmed import iter_medline

    lines = [json.dumps({"id": r.source_id, "text": document_text(r.title, r.abstract)}, ensure_ascii=False)
             for r in iter_medline(medline) if isinstance(r, SourceRecord) and r.abstract and r.abstract.strip()]
    return write_xz(lines, out)


def stage_silver(medline: Path, out_dir: Path) -> dict[str, int]:
    """The silver train / dev splits of one MEDLINE file, ingested into a scratch lake."""
    from benchmarks.train import build_lake
    from kpe.splits import split_of
    from kpe.train.data import silver_docs

    with tempfile.TemporaryDirectory(prefix="kpe-stage-") as tmp:
        build_lake(Path(tmp), medline)
        docs = silver_docs(Path(tmp) / "lake")
    counts = {}
    for split in ("train", "dev"):
        lines = [json.dumps({"id": d.doc_id, "text": d.text, "keyphrases": list(d.keyphrases)}, ensure_ascii=False)
                 for d in docs if split_of(d.doc_id) == split]
        counts[f"pubmed_silver_{split}"] = write_xz(lines, out_dir / f"pubmed_silver_{split}.jsonl.xz")
    return counts


def stage(out: Path, shared: Path) -> dict[str, object]:
    from kpe.encoders import packaged_encoder_path

    summary: dict[str, object] = {"encoder": stage_encoder(Path(packaged_encoder_path()), out / "encoder")}
    summary["abstracts"] = stage_abstracts(shared / EXTRACT_FILE, out / "data" / "pubmed20n0014_abstracts.jsonl.xz")
    for name in BENCHMARK_FILES:
        lines = (shared / "keyphrase" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        target = out / "data" / "keyphrase" / f"{name}.jsonl.xz"
        summary[name] = write_xz([line for line in lines if line.strip()], target)
    summary.update(stage_silver(shared / SILVER_FILE, out / "data" / "keyphrase"))
    summary["mib"] = folder_mib(out)
    return summary


def unpack(carry: Path, out: Path) -> dict[str, object]:
    """Decompress the staged sets into ``out/data`` and write the encoder back in fp32 into ``out/encoder``."""
    summary: dict[str, object] = {}
    for packed in sorted((carry / "data").rglob("*.xz")):
        target = out / "data" / packed.relative_to(carry / "data").with_suffix("")
        target.parent.mkdir(parents=True, exist_ok=True)
        with lzma.open(packed, "rb") as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        summary[target.name] = target.stat().st_size
    copy_encoder(carry / "encoder", out / "encoder", "float32")
    summary["encoder"] = str(out / "encoder")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_stage = sub.add_parser("stage")
    p_stage.add_argument("--out", type=Path, default=ROOT / ".carry")
    p_stage.add_argument("--shared", type=Path, default=SHARED)
    p_unpack = sub.add_parser("unpack")
    p_unpack.add_argument("--carry", type=Path, default=ROOT / ".carry")
    p_unpack.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "stage":
        result = stage(args.out, args.shared)
    else:
        result = unpack(args.carry, args.out)
    print(json.dumps({"step": args.command, **result}))


if __name__ == "__main__":
    main()
