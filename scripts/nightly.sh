#!/usr/bin/env bash
# The main job: one nightly run on embedded defaults (DuckDB file, Prefect without a server, the packaged
# all-MiniLM-L6-v2 encoder, the real sample MEDLINE file). Extra arguments go to `kpe nightly`.
source "$(dirname "$0")/bootstrap.sh"
exec .venv/bin/kpe nightly --sample --limit 2000 "$@"
