#!/usr/bin/env bash
# Create .venv (if missing) and install torch 2.13.0 (CPU build) first, then the project.
# Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh test
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch first: a bare "torch" requirement would otherwise pull a multi-GB CUDA build.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/python -m pip install -q "torch==2.13.0"
fi
# Tests speak with espeak-ng when it is there (real synthesized speech); best effort, as root.
if [[ "$extras" == *test* ]] && ! command -v espeak-ng >/dev/null 2>&1 \
        && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq espeak-ng) >/dev/null 2>&1 \
        || echo "note: espeak-ng not installed; speech tests use the synthetic voice only"
fi
if [ -n "$extras" ]; then
    .venv/bin/python -m pip install -q -e ".[${extras}]"
else
    .venv/bin/python -m pip install -q -e .
fi
# The Whisper front end's reference: openai-whisper without its dependencies (they are in
# the test extra), since it also asks for triton, a GPU compiler the tests never use.
if [[ "$extras" == *test* ]]; then
    .venv/bin/python -m pip install -q --no-deps "openai-whisper==20250625"
fi
