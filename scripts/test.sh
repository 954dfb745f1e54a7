#!/usr/bin/env bash
# The test suite: style (ruff, configured in pyproject.toml), then pytest on the real data from ../shared/data (in CI
# a missing folder is an error). Extra arguments go to pytest.
source "$(dirname "$0")/bootstrap.sh"
echo "ruff check ."
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
