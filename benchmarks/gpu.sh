#!/usr/bin/env bash
# The GPU numbers in one call: extraction over the 30,000-record MEDLINE file and a bf16 training run on silver +
# benchmark data, on one CUDA device (H100/H200: about 10 minutes), printing docs/s, samples/s, GPU memory
# (torch.cuda.max_memory_allocated) and F1.
#
#   bash benchmarks/gpu.sh --stage      # HERE (PyPI reachable): wheels -> .whl/, the shared data it reads -> .carry/
#   bash benchmarks/gpu.sh              # THERE, from the repo root (device tool: carry [".whl", ".carry"])
#   bash benchmarks/gpu.sh --smoke      # every step, tiny, on the CPU (checks the script; numbers mean nothing)
#   bash benchmarks/gpu.sh --dry-run    # print the commands only
#
# Steps (each prints one JSON summary; everything goes to $OUT when set, else runs/gpu/):
#   1. environment: .venv/bin/python if present; else python3 (the device image holds torch, transformers,
#      sentence-transformers, accelerate) plus the project's other dependencies from .whl/ (installed with
#      --no-index into a scratch folder); else a fresh .venv with `pip install -e .` (needs PyPI).
#   2. extraction: benchmarks/extract.py --device cuda on every abstract of pubmed20n0014.xml.gz (30,000 records,
#      about 14,900 with an abstract): floor, kpe default, kpe fast, plain KeyBERT (timed on KEYBERT_DOCS of them).
#   3. silver data: the train / dev splits of pubmed21n1298.xml.gz (14,683 records with author keywords) as JSONL
#      made by --stage (.carry/silver), else the file ingested into a scratch lake here.
#   4. training: benchmarks/train.py train --kind tagger --mixed-precision bf16 on pubmed (silver train split) +
#      inspec train, EPOCHS epoch(s), scored on Inspec dev and the silver dev split; peak GPU memory of the run.
# Environment knobs: EPOCHS (1), BATCH (32), KEYBERT_DOCS (1000), EXTRACT_DOCS (0 = all), SCRATCH (a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE="gpu"
case "${1:-}" in
    --stage) MODE="stage" ;;
    --smoke) MODE="smoke" ;;
    --dry-run) MODE="dry" ;;
    "") ;;
    *) echo "usage: bash benchmarks/gpu.sh [--stage|--smoke|--dry-run]" >&2; exit 2 ;;
esac

SHARED_SRC="${KPE_SHARED_DATA_DIR:-../shared/data}"
DATA_FILES=(
    "pubmed/full_files/pubmed20n0014.xml.gz"
    "keyphrase/inspec_train.jsonl"
    "keyphrase/inspec_dev.jsonl"
    "README.md"
)
LAKE_FILE="${LAKE_FILE:-pubmed/full_files/pubmed21n1298.xml.gz}"
# Project dependencies the device image lacks (pyproject.toml's list minus what KINDS.md says is there; duckdb and
# prefect are left out: with the silver sets staged as JSONL the device run needs neither).
WHEELS=(pydantic pydantic-core pydantic-settings annotated-types typing-inspection python-dotenv keybert yake nltk
        datasets dill multiprocess segtok)  # seqeval (NER metrics only) ships no wheel

if [ "$MODE" = "stage" ]; then
    # Only what the run needs travels (64 MiB in all): the 30,000-record file (17 MB), the silver train / dev
    # splits of LAKE_FILE as JSONL (ingested here into a scratch lake: the 40 MB XML and duckdb would not fit), the
    # Inspec files and the wheels the device image lacks.
    mkdir -p .whl .carry/shared/data .carry/silver
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    grep -qx '/.carry/' .git/info/exclude 2>/dev/null || echo '/.carry/' >> .git/info/exclude
    for f in "${DATA_FILES[@]}"; do
        mkdir -p ".carry/shared/data/$(dirname "$f")"
        cp -u "$SHARED_SRC/$f" ".carry/shared/data/$f"
    done
    PYS="${PYTHON:-.venv/bin/python}"
    for w in "${WHEELS[@]}"; do
        version="$("$PYS" -m pip show "$w" 2>/dev/null | awk '/^Version:/{print $2}')"  # the versions used here
        w="$w${version:+==$version}"
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            --platform any -d .whl "$w" || echo "could not fetch $w" >&2
    done
    stage_dir="$(mktemp -d /tmp/kpe-stage-XXXXXX)"
    "$PYS" benchmarks/train.py lake --out "$stage_dir" --file "$SHARED_SRC/$LAKE_FILE" > /dev/null
    "$PYS" - "$stage_dir" .carry/silver <<'EOF'
import json, sys
from pathlib import Path
from kpe.datasets import write_jsonl
from kpe.splits import split_of
from kpe.train.data import silver_docs
lake, out = Path(sys.argv[1]), Path(sys.argv[2])
docs = list(silver_docs(lake / "lake"))
counts = {split: write_jsonl([d for d in docs if split_of(d.doc_id) == split], out / f"pubmed_silver_{split}.jsonl")
          for split in ("train", "dev")}
print(json.dumps({"silver": counts}))
EOF
    rm -rf "$stage_dir"
    du -sh .whl .carry; du -csh .whl .carry | tail -1
    echo 'then: run(command="bash benchmarks/gpu.sh", carry=[".whl", ".carry"], timeout_s=600)'
    exit 0
fi

OUT_DIR="${OUT:-runs/gpu}"
mkdir -p "$OUT_DIR"
SCRATCH="${SCRATCH:-$(mktemp -d /tmp/kpe-gpu-XXXXXX)}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
if [ -d .carry/shared/data ]; then
    export KPE_SHARED_DATA_DIR="$PWD/.carry/shared/data"
else
    export KPE_SHARED_DATA_DIR="$(cd "$SHARED_SRC" && pwd)"
fi
DATA="$KPE_SHARED_DATA_DIR"
EPOCHS="${EPOCHS:-1}"; BATCH="${BATCH:-32}"; KEYBERT_DOCS="${KEYBERT_DOCS:-1000}"; EXTRACT_DOCS="${EXTRACT_DOCS:-0}"
DEVICE=cuda; PRECISION=bf16; THREADS=8; TRAIN_LIMITS=(); EVAL_LIMIT=()
if [ "$MODE" = "smoke" ]; then  # tiny and on the CPU: a 30-record MEDLINE sample as the lake, 3 steps, 20 docs
    DEVICE=cpu; PRECISION=no; THREADS=2; EXTRACT_DOCS=40; KEYBERT_DOCS=10; BATCH=8
    LAKE_FILE=pubmed/medline_samples/updatefiles/pubmed22n1115.xml.gz
    TRAIN_LIMITS=(--max-docs 40 --max-val-docs 20 --max-steps 3); EVAL_LIMIT=(--limit 20 --silver-limit 20)
fi

# 1. environment -------------------------------------------------------------------------------------------
if [ -x .venv/bin/python ]; then
    PY=.venv/bin/python
elif [ -d .whl ] && python3 -c "import torch, transformers, sentence_transformers" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/kpe-site .whl/*.whl
    export PYTHONPATH="/tmp/kpe-site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    PY=python3
else
    python3 -m venv .venv && .venv/bin/pip install -q -e . && PY=.venv/bin/python
fi
run() {  # print, then run unless --dry-run
    echo "+ $*" >&2
    [ "$MODE" = "dry" ] || "$@"
}
run "$PY" -c "import json, sys, torch; print(json.dumps({'step': 'environment', 'python': sys.version.split()[0], \
'torch': torch.__version__, 'cuda': torch.cuda.is_available(), \
'device': torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'}))"

# 2. extraction on the 30,000-record file --------------------------------------------------------------------
start=$SECONDS
run "$PY" benchmarks/extract.py --device "$DEVICE" --threads "$THREADS" --file "$DATA/pubmed/full_files/pubmed20n0014.xml.gz" \
    --docs "$EXTRACT_DOCS" --keybert-docs "$KEYBERT_DOCS" --json > "$OUT_DIR/extract.json" || true
[ "$MODE" = "dry" ] || "$PY" - "$OUT_DIR/extract.json" <<'EOF'
import json, sys
lines = [l for l in open(sys.argv[1]) if l.startswith("{")]
if not lines:
    sys.exit("extraction benchmark printed no result")
r = json.loads(lines[-1])
print(json.dumps({"step": "extract", "file": r["file"], "n_docs": r["n_docs"], "floor_docs_per_s": r["floor_docs_per_s"],
                  "kpe_docs_per_s": r["kpe_docs_per_s"], "kpe_fast_docs_per_s": r["kpe_fast_docs_per_s"],
                  "keybert_docs_per_s": r["keybert_docs_per_s"], "speedup_vs_keybert": r["speedup_vs_keybert"],
                  "gpu": r.get("gpu"), "peak_rss_mb": r["peak_rss_mb"]}))
EOF
echo "extraction step: $((SECONDS - start)) s" >&2

# 3. silver data: staged JSONL splits (--stage), else one MEDLINE file ingested into a scratch lake --------------
start=$SECONDS
if [ -f .carry/silver/pubmed_silver_train.jsonl ]; then
    SILVER_TRAIN=(--train-data .carry/silver/pubmed_silver_train.jsonl); SILVER_DEV=.carry/silver/pubmed_silver_dev.jsonl
    LAKE_ARGS=()
else
    run "$PY" benchmarks/train.py lake --out "$SCRATCH/pubmed" --file "$DATA/$LAKE_FILE" > "$OUT_DIR/lake.json"
    SILVER_TRAIN=(--train-data pubmed); SILVER_DEV=pubmed_silver_dev
    LAKE_ARGS=(--lake-dir "$SCRATCH/pubmed/lake" --lake "$SCRATCH/pubmed")
fi
SILVER_DEV_EVAL=("$SILVER_DEV"); [ "$MODE" = "smoke" ] && SILVER_DEV_EVAL=()
echo "silver data step: $((SECONDS - start)) s" >&2

# 4. bf16 training on silver + Inspec train, scored; torch's peak GPU memory of the whole run -----------------
start=$SECONDS
run "$PY" - "$OUT_DIR/train_gpu.json" benchmarks/train.py train --kind tagger "${SILVER_TRAIN[@]}" --train-data inspec \
    "${LAKE_ARGS[@]}" --output-dir "$SCRATCH/tagger" \
    --mixed-precision "$PRECISION" --epochs "$EPOCHS" --batch-size "$BATCH" --eval inspec_dev "${SILVER_DEV_EVAL[@]}" \
    --no-tune-hybrid --log-with none --json "$OUT_DIR/train.json" "${TRAIN_LIMITS[@]}" "${EVAL_LIMIT[@]}" <<'EOF'
import json, runpy, sys, time
out, script, *args = sys.argv[1:]
sys.argv = [script, *args]
started = time.perf_counter()
try:
    runpy.run_path(script, run_name="__main__")
finally:
    import torch
    memory = {"seconds": round(time.perf_counter() - started, 1), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        memory["max_memory_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps({"step": "train", **memory}))
    open(out, "w").write(json.dumps(memory))
EOF
echo "training step: $((SECONDS - start)) s" >&2
[ "$MODE" = "dry" ] || { echo "train.json:"; cat "$OUT_DIR/train.json" 2>/dev/null || true; echo; }
echo "outputs in $OUT_DIR; scratch in $SCRATCH" >&2
