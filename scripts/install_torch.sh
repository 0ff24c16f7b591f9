#!/usr/bin/env bash
# Install torch into the environment of the python given as $1, unless it already has one.
# Used by setup.sh and wheel_check.sh, before the package: the package asks only for
# "torch>=2.1", and on Linux that requirement alone pulls PyPI's multi-GB CUDA build.
#   - an NVIDIA GPU (nvidia-smi present): torch==$TORCH_VERSION from PyPI (the CUDA build);
#   - no NVIDIA GPU: the CPU build from PyTorch's CPU index (10 s network timeout, no
#     retries), falling back to torch==$TORCH_VERSION from the configured index (PyPI, or a
#     local wheel) when that index cannot be reached.
# Usage: scripts/install_torch.sh .venv/bin/python
set -euo pipefail
py="$1"
version="${TORCH_VERSION:-2.13.0}"
if "$py" -c "import torch" 2>/dev/null; then
    exit 0
fi
if command -v nvidia-smi >/dev/null 2>&1; then
    "$py" -m pip install -q "torch==$version"
    exit 0
fi
if "$py" -m pip install -q --timeout 10 --retries 0 \
        --index-url https://download.pytorch.org/whl/cpu "torch==$version" 2>/dev/null; then
    exit 0
fi
echo "note: PyTorch's CPU index is not reachable; installing torch==$version from the" \
     "configured index" >&2
"$py" -m pip install -q "torch==$version"
