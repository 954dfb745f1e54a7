#!/usr/bin/env bash
# The GPU numbers in one call: extraction over the 30,000-record MEDLINE file, a bf16 tagger training run on silver +
# benchmark data scored on the dev sets, and extraction with the model it trained, on one CUDA device (H100/H200:
# under 10 minutes in all), printing docs/s, samples/s, GPU memory (torch.cuda.max_memory_allocated) and F1.
#
#   bash benchmarks/gpu.sh --stage      # HERE (PyPI reachable): wheels -> .whl/, encoder + data -> .carry/ (< 64 MiB)
#   bash benchmarks/gpu.sh              # THERE, from the repo root (device tool: carry [".whl", ".carry"])
#   bash benchmarks/gpu.sh --smoke      # every step, tiny, on the CPU (checks the script; numbers mean nothing)
#   bash benchmarks/gpu.sh --dry-run    # print the commands only
#
# Steps (each prints what it measured; logs and JSON go to $OUT when set, else runs/gpu/; summary.json at the end):
#   1. environment: $PYTHON if set, else .venv/bin/python if present, else python3 (the device image holds torch,
#      transformers, sentence-transformers, accelerate, scikit-learn) plus the project's other dependencies from
#      .whl/ (installed with --no-index into a scratch folder); then benchmarks/gpu_carry.py unpack: the encoder
#      back to fp32, the sets into $SCRATCH/data laid out as the shared data folder.
#   2. extraction: benchmarks/extract.py --device cuda on EXTRACT_DOCS abstracts of pubmed20n0014.xml.gz (the
#      30,000-record file; 14,871 have an abstract): floor, kpe default (cold and warm cache), kpe fast, plain KeyBERT
#      and the KeyBERT mode (on KEYBERT_DOCS of them), then default and fast in PROCESSES processes at once (one
#      process is CPU-bound on a GPU: about 60 docs/s cold, 180 warm on an H200, 2026-11-30).
#   3. training: benchmarks/train.py train --kind tagger --mixed-precision bf16 on the PubMed silver train split +
#      Inspec train + SemEval-2017 train (the production tagger's sources), EPOCHS epochs of BATCH, then the span
#      ranker on the validation slice; scored with METHODS on Inspec dev, SemEval-2017 dev and the whole silver dev
#      split; peak GPU memory of the run.
#   4. extraction with that model (`ranked`, `tagger`) on MODEL_DOCS abstracts of the same file, if time is left.
# Every step runs under its share of BUDGET seconds (`timeout`), and a failed or stopped step does not stop the next.
# Environment knobs: EPOCHS (1), BATCH (32), EXTRACT_DOCS (3000; 0 = all), KEYBERT_DOCS (300), PROCESSES (12),
# WORKERS (4: training data-loader processes), MODEL_DOCS (2000; 0 skips step 4), METHODS ("ranked"), BUDGET
# (575 s), EXTRACT_LIMIT (240 s), SCRATCH (a temp dir).
# Sized from the first H200 run (2026-11-30): 4 epochs at batch 16 took 3:38 and one process extracting all 14,871
# abstracts would take minutes a pass, so the defaults fit one 10-minute call.
set -uo pipefail
cd "$(dirname "$0")/.."

MODE="gpu"
case "${1:-}" in
    --stage) MODE="stage" ;;
    --smoke) MODE="smoke" ;;
    --dry-run) MODE="dry" ;;
    "") ;;
    *) echo "usage: bash benchmarks/gpu.sh [--stage|--smoke|--dry-run]" >&2; exit 2 ;;
esac

# Project dependencies the device image lacks (pyproject.toml's list minus what KINDS.md says is there; duckdb and
# prefect are left out: with the sets staged as JSONL the device run needs neither).
# seqeval (NER metrics only) ships no wheel.
WHEELS=(pydantic pydantic-core pydantic-settings annotated-types typing-inspection typing-extensions python-dotenv
        keybert yake jellyfish nltk defusedxml datasets dill multiprocess segtok skops prettytable wcwidth ftfy)

if [ "$MODE" = "stage" ]; then
    set -e
    PYS="${PYTHON:-.venv/bin/python}"
    mkdir -p .whl
    for ignored in /.whl/ /.carry/; do
        grep -qx "$ignored" .git/info/exclude 2>/dev/null || echo "$ignored" >> .git/info/exclude
    done
    for w in "${WHEELS[@]}"; do
        version="$("$PYS" -m pip show "$w" 2>/dev/null | awk '/^Version:/{print $2}')"  # the versions used here
        w="$w${version:+==$version}"
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            --platform any -d .whl "$w" || echo "could not fetch $w" >&2
    done
    "$PYS" benchmarks/gpu_carry.py stage --out .carry
    tree_mib=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
    carry_mib=$(du -cb .whl .carry | tail -1 | cut -f1)
    python3 -c "t, c = $tree_mib / 2**20, $carry_mib / 2**20; print(f'tracked {t:.1f} MiB + carried {c:.1f} MiB = \
{t + c:.1f} MiB (limit 64)'); raise SystemExit(t + c > 63)"
    echo 'then: run(command="bash benchmarks/gpu.sh", carry=[".whl", ".carry"], timeout_s=600)'
    exit 0
fi

OUT_DIR="${OUT:-runs/gpu}"
mkdir -p "$OUT_DIR"
SCRATCH="${SCRATCH:-$(mktemp -d /tmp/kpe-gpu-XXXXXX)}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export KPE_SHARED_DATA_DIR="$SCRATCH/data" KPE_CACHE_DIR="$SCRATCH/cache"  # never the checkout's data/cache
EPOCHS="${EPOCHS:-1}"; BATCH="${BATCH:-32}"; KEYBERT_DOCS="${KEYBERT_DOCS:-300}"; EXTRACT_DOCS="${EXTRACT_DOCS:-3000}"
MODEL_DOCS="${MODEL_DOCS:-2000}"; BUDGET="${BUDGET:-575}"; EXTRACT_LIMIT="${EXTRACT_LIMIT:-240}"
PROCESSES="${PROCESSES:-12}"; WORKERS="${WORKERS:-4}"
SCORE_METHODS=(); for m in ${METHODS:-ranked}; do SCORE_METHODS+=(--method "$m"); done
DEVICE=cuda; PRECISION=bf16; THREADS=16; TRAIN_LIMITS=(); EVAL_LIMIT=()
if [ "$MODE" = "smoke" ]; then  # tiny and on the CPU: 40 abstracts, 3 steps, 20 documents a set
    DEVICE=cpu; PRECISION=no; THREADS=2; EXTRACT_DOCS=40; KEYBERT_DOCS=10; MODEL_DOCS=20; BATCH=8
    PROCESSES=2; WORKERS=2
    TRAIN_LIMITS=(--max-docs 40 --max-val-docs 20 --max-steps 3); EVAL_LIMIT=(--limit 20)
fi
if [ ! -d .carry/encoder ] && [ "$MODE" != "dry" ]; then
    echo "no .carry/: run 'bash benchmarks/gpu.sh --stage' here first" >&2; exit 2
fi
left() { echo $((BUDGET - SECONDS)); }
run() {  # print, then run unless --dry-run; the time left to the budget caps it
    local limit="$1"; shift
    echo "+ [${limit}s] $*" >&2
    [ "$MODE" = "dry" ] && return 0
    [ "$limit" -gt 10 ] || { echo "skipped: budget spent" >&2; return 1; }
    timeout --kill-after=10 "$limit" "$@"
}

# 1. environment ---------------------------------------------------------------------------------------------
if [ -n "${PYTHON:-}" ]; then
    PY="$PYTHON"
elif [ -x .venv/bin/python ]; then
    PY=.venv/bin/python
else
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/kpe-site \
        .whl/*.whl
    export PYTHONPATH="/tmp/kpe-site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    PY=python3
fi
run 60 "$PY" -c "import json, os, sys, torch, transformers, sentence_transformers, sklearn
print(json.dumps({'step': 'environment', 'python': sys.version.split()[0], 'torch': torch.__version__,
    'transformers': transformers.__version__, 'sentence_transformers': sentence_transformers.__version__,
    'sklearn': sklearn.__version__, 'cpus': os.cpu_count(), 'cuda': torch.cuda.is_available(),
    'device': torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'}))" \
    | tee "$OUT_DIR/environment.json"
run 120 "$PY" benchmarks/gpu_carry.py unpack --carry .carry --out "$SCRATCH"
DATA="$SCRATCH/data"; ENCODER="$SCRATCH/encoder"; ABSTRACTS="$DATA/pubmed20n0014_abstracts.jsonl"

# 2. extraction on the 30,000-record file --------------------------------------------------------------------
start=$SECONDS
limit=$(left); [ "$limit" -gt "$EXTRACT_LIMIT" ] && limit=$EXTRACT_LIMIT
run "$limit" "$PY" benchmarks/extract.py --device "$DEVICE" --threads "$THREADS" --encoder "$ENCODER" \
    --file "$ABSTRACTS" --docs "$EXTRACT_DOCS" --keybert-docs "$KEYBERT_DOCS" --processes "$PROCESSES" --json 2>&1 \
    | tee "$OUT_DIR/extract.log"
echo "extraction step: $((SECONDS - start)) s" >&2

# 3. bf16 training on silver + Inspec + SemEval-2017 train, scored; torch's peak GPU memory of the run -----------
start=$SECONDS
reserve=10; [ "$MODEL_DOCS" -gt 0 ] && reserve=60  # seconds kept for step 4
run "$(( $(left) - reserve ))" "$PY" - "$OUT_DIR/train_gpu.json" benchmarks/train.py train --kind tagger \
    --base "$ENCODER" --train-data "$DATA/keyphrase/pubmed_silver_train.jsonl" inspec semeval2017 \
    --output-dir "$SCRATCH/tagger" --mixed-precision "$PRECISION" --epochs "$EPOCHS" --batch-size "$BATCH" \
    --num-threads "$THREADS" --num-workers "$WORKERS" \
    --eval inspec_dev semeval2017_dev "$DATA/keyphrase/pubmed_silver_dev.jsonl" \
    "${SCORE_METHODS[@]}" --no-tune-hybrid --log-with none --json "$OUT_DIR/train.json" \
    "${TRAIN_LIMITS[@]}" "${EVAL_LIMIT[@]}" <<'EOF' 2>&1 | tee "$OUT_DIR/train.log"
import json, runpy, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `timeout` stops it: still write what was measured
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

# 4. extraction with the trained model -------------------------------------------------------------------------
start=$SECONDS
if [ "$MODEL_DOCS" -gt 0 ] && { [ -f "$SCRATCH/tagger/model/span_ranker.skops" ] || [ "$MODE" = "dry" ]; }; then
    run "$(( $(left) - 10 ))" "$PY" benchmarks/extract.py --device "$DEVICE" --threads "$THREADS" \
        --encoder "$ENCODER" --file "$ABSTRACTS" --docs "$MODEL_DOCS" --keybert-docs "$((KEYBERT_DOCS / 4))" \
        --model "$SCRATCH/tagger/model" --method ranked --method tagger --json 2>&1 | tee "$OUT_DIR/extract_model.log"
else
    echo "step 4 skipped (MODEL_DOCS=0, or no trained model with a span ranker)" >&2
fi
echo "model extraction step: $((SECONDS - start)) s" >&2

# summary ------------------------------------------------------------------------------------------------------
[ "$MODE" = "dry" ] || "$PY" - "$OUT_DIR" <<'EOF' | tee "$OUT_DIR/summary.json"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def last_json(name):
    path = out / name
    lines = [l for l in path.read_text().splitlines() if l.startswith("{")] if path.exists() else []
    return json.loads(lines[-1]) if lines else None
summary = {"environment": last_json("environment.json")}
for name in ("extract", "extract_model"):
    r = last_json(f"{name}.log")
    summary[name] = r and {k: r.get(k) for k in ("file", "n_docs", "keybert_timed_docs", "floor_docs_per_s",
        "kpe_docs_per_s", "kpe_warm_cache_docs_per_s", "kpe_fast_docs_per_s", "keybert_docs_per_s",
        "speedup_vs_keybert", "speedup_vs_keybert_fast", "processes", "fine_tuned", "gpu", "peak_rss_mb")}
train = json.loads((out / "train.json").read_text()) if (out / "train.json").exists() else None
summary["train"] = train and {k: train.get(k) for k in ("train_seconds", "steps", "precision", "samples_per_second",
                                                       "validation", "dev")}
summary["train_gpu"] = json.loads((out / "train_gpu.json").read_text()) if (out / "train_gpu.json").exists() else None
print(json.dumps(summary, indent=1))
EOF
echo "outputs in $OUT_DIR; scratch in $SCRATCH; $SECONDS s in all" >&2
