#!/usr/bin/env bash
# Create (or reuse) .venv and install the project with every extra. torch is pinned by
# constraints.txt (torch==2.13.0: the CPU wheel on this machine; an unpinned torch pulls CUDA).
# Sourced by scripts/demo.sh and scripts/test.sh; re-installs only when the project files change.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$py" -m venv .venv
stamp=".venv/.superlora-installed"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt torch==2.13.0
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[all]"
  echo "$want" > "$stamp"
fi
