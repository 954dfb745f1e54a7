# Sourced by the project's scripts: create .venv and install the project (again when pyproject.toml changed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
if [ ! -x .venv/bin/kpe ] || ! cmp -s pyproject.toml .venv/.installed-pyproject.toml; then
  echo "Setting up .venv (about a minute on a fresh machine)..."
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[test,dask]'
  cp pyproject.toml .venv/.installed-pyproject.toml
fi
