#!/usr/bin/env bash
# The main job on its embedded default: ViT-B/16 query/value specs, contracted on every backend.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
exec .venv/bin/superlora-tn demo "$@"
