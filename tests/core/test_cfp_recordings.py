"""CFP against nnAudio2 on recordings (no downloads): espeak-ng speech and the freedesktop
sound theme where installed (``apt-get install espeak-ng sound-theme-freedesktop``; skipped
otherwise), and white noise, at 22.05 and 44.1 kHz.

In float64 both libraries agree to 1e-9 of the peak. In float32 they agree to 1e-4 on speech
at 22.05 kHz and on noise, but not on every recording: CFP's ``|X| ** 0.24`` compression
lifts float32 FFT round-off of near-silent bins (a sound theme's silence, speech at 44.1 kHz
with nothing above 11 kHz) to ~1e-2 of the peak, and nnAudio2's own float32 result is as far
from its float64 one (README, "CFP in float32"). So ours in float32 must be no farther from
the float64 truth than twice nnAudio2's own float32 error (plus 1e-4).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import signals
import torch

from nnaudio_core import CFP

os.environ.setdefault("NNAUDIO_DISABLE_CITATION_REMINDER", "1")
nn2 = pytest.importorskip("nnAudio2.features")

THEME = Path("/usr/share/sounds/freedesktop/stereo/complete.oga")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max())


def recording(kind: str, sr: int, tmp: Path) -> np.ndarray:
    import soundfile as sf
    import soxr

    if kind == "noise":
        return (0.1 * np.random.default_rng(0).standard_normal(sr)).astype(np.float32)
    if kind == "speech":
        got = signals.espeak_speech(tmp, max_seconds=1.5)
        if got is None:
            pytest.skip("espeak-ng is not installed")
        y, sr_in = got
    else:
        if not THEME.exists():
            pytest.skip("sound-theme-freedesktop is not installed")
        y, sr_in = sf.read(str(THEME), dtype="float32", always_2d=True)
        y = y.mean(axis=1)
    return soxr.resample(y, sr_in, sr, quality="HQ").astype(np.float32)[: int(1.5 * sr)]


@pytest.mark.parametrize("sr", [22050, 44100])
@pytest.mark.parametrize("kind", ["speech", "theme", "noise"])
def test_cfp_on_recordings_matches_nnaudio2(kind: str, sr: int, tmp_path: Path) -> None:
    x = torch.from_numpy(recording(kind, sr, tmp_path))[None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = nn2.CFP(fs=sr)
        t32 = theirs(x)
        t64 = theirs.double()(x.double())
    o32 = CFP(fs=sr)(x)
    o64 = CFP(fs=sr).double()(x.double())
    assert rel(o64, t64) <= 1e-9  # the same algorithm
    own = rel(t32, t64)  # nnAudio2's own float32 error on this input
    assert rel(o32, t64) <= 2 * own + 1e-4, (rel(o32, t64), own)
    if kind == "noise" or (kind == "speech" and sr == 22050):
        assert rel(o32, t32) <= 1e-4
