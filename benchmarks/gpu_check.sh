#!/usr/bin/env bash
# GPU check (run it whenever a CUDA machine is at hand; about 3-5 minutes):
#   1. the device tests (extract on CUDA equals the CPU within 1e-4 of each clip's peak);
#   2. the pipeline benchmark on CUDA: extract vs its own parts on 1,770 paper-protocol clips.
# The bar: extract's own clock reaches >= 70% of the same GPU's transform-only rate, i.e.
# transform_seconds / extract_seconds >= 0.7 when the transform is the slower part.
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]     (needs .venv from scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-benchmarks/results}"
mkdir -p "$out"
PY=.venv/bin/python
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print('GPU:', torch.cuda.get_device_name(0))"
$PY -m pytest -q -m device tests/cli/test_device.py
$PY -m nnaudio_cli benchmark --pipeline --device cuda --clips 1770 --repeat 3 \
    --presets mel128,cqt84,stft,mfcc --json "$out/gpu-pipeline.json"
$PY - "$out/gpu-pipeline.json" <<'PYEOF'
import json, sys
p = json.load(open(sys.argv[1]))["pipeline"]
for r in p["results"]:
    rate = r["transform_seconds"] / r["extract_seconds"]
    print(f"{r['preset']:8s} extract {r['extract_seconds']:.2f} s, transform-only "
          f"{r['transform_seconds']:.2f} s, decode-only {r['decode_seconds']:.2f} s: "
          f"extract at {100 * rate:.0f}% of the transform-only rate")
PYEOF
