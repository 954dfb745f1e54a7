#!/usr/bin/env bash
# Every baseline on every shared keyphrase benchmark, one JSON line per (dataset, method).
#
#   benchmarks/evaluate_all.sh [OUT_DIR] [METHOD ...]
#
# OUT_DIR (default runs/evaluate) gets results.jsonl (the `kpe evaluate --json` lines) and
# predictions.jsonl. Methods default to yake tfidf first-phrases keybert (kpe too when its engine
# exists). KeyBERT is slow on CPU (about 2 documents/s on 2 idle cores): KP20K is limited to
# KP20K_LIMIT documents (default 1000 = all) for it. Nothing is stored in the warehouse.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT_DIR="${1:-runs/evaluate}"
shift || true
if [ "$#" -gt 0 ]; then
    METHODS=("$@")
else
    METHODS=(yake tfidf first-phrases keybert)
    [ -f kpe/extract/engine.py ] && METHODS+=(kpe)
fi
KP20K_LIMIT="${KP20K_LIMIT:-1000}"
KPE="${KPE:-.venv/bin/kpe}"

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
mkdir -p "$OUT_DIR"
: > "$OUT_DIR/results.jsonl"
: > "$OUT_DIR/predictions.jsonl"

for method in "${METHODS[@]}"; do
    for dataset in inspec_dev semeval2017_dev kp20k_small_valid; do
        limit=()
        [ "$dataset" = kp20k_small_valid ] && limit=(--limit "$KP20K_LIMIT")
        echo "== $method on $dataset ${limit[*]}" >&2
        "$KPE" evaluate --data "$dataset" --method "$method" "${limit[@]}" --json --no-store \
            --predictions-out "$OUT_DIR/predictions.part" >> "$OUT_DIR/results.jsonl"
        cat "$OUT_DIR/predictions.part" >> "$OUT_DIR/predictions.jsonl"
    done
done
rm -f "$OUT_DIR/predictions.part"
echo "results: $OUT_DIR/results.jsonl" >&2
