#!/usr/bin/env bash
# The installed package works from any folder: build the wheel, install it (not editable) into
# a fresh venv beside the test venv (.venv-wheel), and from a folder outside the checkout run
# `nnaudio presets` (every preset of configs/ listed), `nnaudio extract` of three generated
# files with two presets, and `nnaudio info`. Needs no network but PyPI. Called by .ci/run.
# Usage: scripts/wheel_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
PY="${PYTHON:-python3}"
venv="$repo/.venv-wheel"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

rm -rf "$venv"; t0=$SECONDS
"$PY" -m venv "$venv"
bash scripts/install_torch.sh "$venv/bin/python"
rm -rf build  # setuptools reuses build/lib: a module deleted since would ship
"$venv/bin/python" -m pip wheel -q --no-deps -w "$work/dist" .
wheel="$(ls "$work"/dist/nnaudio_cli-*.whl)"
"$venv/bin/python" -m pip install -q "$wheel"

echo "wheel_check: venv, torch, wheel installed in $((SECONDS - t0)) s" >&2
cd "$work"  # outside the checkout: nothing may come from it
unset PYTHONPATH
nn="$venv/bin/nnaudio"
py="$venv/bin/python"
fail() { echo "wheel_check: FAIL: $*" >&2; exit 1; }

where="$("$py" -c 'import nnaudio_cli; print(nnaudio_cli.__file__)')"
case "$where" in "$venv"/*) ;; *) fail "nnaudio_cli imported from $where, not the wheel" ;; esac

want="$(cd "$repo/configs" && ls -1 -- *.toml | sed 's/\.toml$//' | sort | tr '\n' ' ')"
got="$("$nn" presets --json | "$py" -c 'import json,sys; print(" ".join(sorted(r["name"] for r in json.load(sys.stdin) if "error" not in r)), end=" ")')"
[ "$got" = "$want" ] || fail "nnaudio presets lists '$got', configs/ holds '$want'"

"$py" - <<'PY'
import numpy as np
import soundfile as sf
from pathlib import Path

Path("audio").mkdir()
for i, (f0, sr) in enumerate([(220.0, 16000), (440.0, 22050), (880.0, 44100)]):
    t = np.arange(int(0.5 * sr)) / sr
    sf.write(f"audio/tone{i}.wav", (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), sr)
PY
"$nn" extract audio features.h5 -c mel128 -c stft --device cpu --workers 1 --json -q \
    > extract.json || fail "nnaudio extract exited $?"
"$py" - <<'PY' || fail "extract wrote an unexpected file"
import json
import h5py

summary = json.load(open("extract.json"))
assert summary["exit_code"] == 0, summary
with h5py.File("features.h5", "r") as h5:
    assert sorted(h5["features"]) == ["mel128", "stft"], list(h5["features"])
    assert [k.decode() for k in h5["index/key"][:]] == ["tone0.wav", "tone1.wav", "tone2.wav"]
    assert h5["features/mel128/data"].shape[1] == 128
PY
"$nn" info features.h5 > info.txt || fail "nnaudio info exited $?"
grep -q mel128 info.txt && grep -q stft info.txt || fail "nnaudio info does not show both features"
echo "wheel_check: ok ($(basename "$wheel"): $(echo "$want" | wc -w) presets listed; extract of" \
     "3 files with mel128 + stft and info from $work)"
