#!/usr/bin/env bash
# The whole test suite (unit, property, parity, integration, docs), two workers.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
exec .venv/bin/python -m pytest -q -n 2 "$@"
