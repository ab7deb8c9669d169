#!/usr/bin/env bash
# Sets up everything imp-tfx needs on a fresh Debian machine, idempotently:
#   system packages (espeak-ng for the demo's speech), a Python 3.10 venv at .venv, the pinned stack
#   (requirements/constraints.txt) and the project itself in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(espeak-ng)

need_apt=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "[bootstrap] apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

find_python310() {
  local candidates=()
  if command -v pyenv >/dev/null 2>&1; then
    local prefix
    for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.10(\.|$)' | sort -rV); do
      prefix=$(pyenv prefix "$v" 2>/dev/null) && candidates+=("$prefix/bin/python3.10")
    done
  fi
  candidates+=("$(command -v python3.10 || true)" /usr/bin/python3.10 /usr/local/bin/python3.10)
  for c in "${candidates[@]}"; do
    if [ -n "$c" ] && [ -x "$c" ] && "$c" -c 'import sys, venv; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  return 1
}

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
  if ! PY=$(find_python310); then
    echo "[bootstrap] error: imp-tfx needs Python 3.10 (TFX 1.16 supports no newer Python)." >&2
    echo "[bootstrap] install it (e.g. 'pyenv install 3.10.13') and run this script again." >&2
    exit 1
  fi
  echo "[bootstrap] creating .venv with $PY"
  rm -rf .venv
  "$PY" -m venv .venv
fi

stamp=.venv/.imp-tfx-requirements.sha256
want=$(cat requirements/*.txt setup.py pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[bootstrap] installing the pinned stack into .venv (takes a few minutes the first time)"
  .venv/bin/python -m pip install -q --disable-pip-version-check -c requirements/constraints.txt \
    -r requirements/requirements.txt -r requirements/test.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
  echo "$want" > "$stamp"
fi
echo "[bootstrap] ready: $(.venv/bin/python --version), $(.venv/bin/imp-tfx --help >/dev/null && echo 'imp-tfx CLI ok')"
