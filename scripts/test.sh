#!/usr/bin/env bash
# Sets up the machine (scripts/bootstrap.sh) and runs the whole test suite, slow end-to-end tests
# included. Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
