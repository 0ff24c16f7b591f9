#!/usr/bin/env bash
# Create .venv (if missing) and install torch 2.13.0 first (scripts/install_torch.sh: the CPU
# build on a machine without an NVIDIA GPU), then the project (editable).
# Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh test
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch first (the CPU build without an NVIDIA GPU): a bare "torch" requirement would
# otherwise pull a multi-GB CUDA build.
bash scripts/install_torch.sh .venv/bin/python
# Tests speak with espeak-ng when it is there (real synthesized speech) and read the
# freedesktop sound theme's recordings (CFP against nnAudio2); best effort, as root.
if [[ "$extras" == *test* ]] && { ! command -v espeak-ng >/dev/null 2>&1 \
        || [ ! -d /usr/share/sounds/freedesktop ]; } \
        && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq espeak-ng sound-theme-freedesktop) \
        >/dev/null 2>&1 || echo "note: espeak-ng/sound-theme-freedesktop not installed; " \
        "the tests that read them skip"
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
