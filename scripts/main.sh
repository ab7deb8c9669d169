#!/usr/bin/env bash
# Sets up the machine (scripts/bootstrap.sh) and runs the main job on its embedded default.
# Arguments go to the main job (`bash scripts/main.sh --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/imp-tfx demo "$@"
