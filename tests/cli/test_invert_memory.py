"""Bounded memory of ``nnaudio invert``: a 20-minute stereo complex STFT inverts under 1 GB.

Before segmenting, the whole key was read and inverted at once (2.51 GB peak RSS). Peak RSS
is ``ru_maxrss`` of a wrapper's ``RUSAGE_CHILDREN`` (the invert process).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

LIMIT = 1024**3
SR = 22050
WRAPPER = (
    "import resource, subprocess, sys\n"
    "r = subprocess.run(sys.argv[1:])\n"
    "sys.stderr.write('MAXRSS %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(r.returncode)\n"
)


def _tone(start: int, n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(start, start + n) / SR
    y = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(n)
    return np.stack([y, np.roll(y, 100)], axis=1).astype(np.float32)


@pytest.mark.slow
def test_twenty_minute_stereo_istft_under_1_gib(tmp_path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    n, block = SR * 1200, SR * 60
    with sf.SoundFile(src / "long.wav", "w", SR, 2, subtype="PCM_16") as f:
        rng = np.random.default_rng(0)
        for i in range(0, n, block):
            f.write(_tone(i, min(block, n - i), rng))
    feats = tmp_path / "long.h5"
    cmd = [sys.executable, "-m", "nnaudio_cli", "extract", str(src), str(feats), "-q",
           "-j", "0", "-c", "stft_complex", "--keep-channels"]
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    out = tmp_path / "wav"
    cmd = [sys.executable, "-c", WRAPPER, sys.executable, "-m", "nnaudio_cli", "invert",
           str(feats), str(out), "-q"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    peak = int(r.stderr.split("MAXRSS")[-1].split()[0]) * 1024
    assert peak < LIMIT, f"peak RSS {peak / 2**20:.0f} MiB"
    with sf.SoundFile(out / "long.wav") as f:
        assert f.frames == n and f.channels == 2
        f.seek(n // 2)
        est = f.read(SR, dtype="float32")
    with sf.SoundFile(src / "long.wav") as f:
        f.seek(n // 2)
        ref = f.read(SR, dtype="float32")
    assert np.max(np.abs(est - ref)) < 1e-4
