#!/usr/bin/env bash
# The test suite (real data from ../shared/data; in CI a missing folder is an error). Extra arguments go to pytest.
source "$(dirname "$0")/bootstrap.sh"
exec .venv/bin/python -m pytest "$@"
