"""Hostile inputs: every good file is extracted, every bad one is a failed row with a reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch
from support import tone

from nnaudio_cli.featurefile.reader import open_features
from nnaudio_core.features import build

GOOD = ["silence.wav", "six_ch.wav", "low_8k.wav", "high_192k.wav", "deep24.flac",
        "double.wav", "naïve café ♪.wav", "with space.wav", "a.wav", "a.flac",
        "x.wav/inside.wav", "short.wav"]  # short: reflected back and forth, as the core does
BAD = {
    "empty.wav": "empty file",
    "truncated.wav": "truncated",
    "text.wav": "not an audio file",
    "loop.wav": "symbolic link loop",
    "broken.wav": "broken symbolic link",
    "nan.wav": "NaN/Inf",
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("hostile")
    sf.write(d / "silence.wav", np.zeros(22050, np.float32), 22050)
    sf.write(d / "six_ch.wav", tone(48000, 0.5, channels=6), 48000)
    sf.write(d / "low_8k.wav", tone(8000, 0.7), 8000)
    sf.write(d / "high_192k.wav", tone(192000, 0.4), 192000)
    sf.write(d / "deep24.flac", tone(44100, 0.6), 44100, subtype="PCM_24")
    sf.write(d / "double.wav", tone(22050, 0.5).astype(np.float64), 22050, subtype="DOUBLE")
    sf.write(d / "naïve café ♪.wav", tone(16000, 0.5), 16000)
    sf.write(d / "with space.wav", tone(16000, 0.5), 16000)
    sf.write(d / "a.wav", tone(22050, 0.5), 22050)
    sf.write(d / "a.flac", tone(22050, 0.8), 22050)
    (d / "x.wav").mkdir()  # a folder named like audio: searched, not read
    sf.write(d / "x.wav" / "inside.wav", tone(22050, 0.5), 22050)
    (d / "empty.wav").write_bytes(b"")
    sf.write(d / "full.wav", tone(22050, 1.0), 22050, subtype="PCM_16")
    data = (d / "full.wav").read_bytes()
    (d / "truncated.wav").write_bytes(data[: len(data) // 2])
    (d / "full.wav").unlink()
    (d / "text.wav").write_text("this is not audio\n")
    os.symlink("loop.wav", d / "loop.wav")
    os.symlink("does-not-exist.wav", d / "broken.wav")
    sf.write(d / "short.wav", tone(22050, 0.02), 22050)
    x = tone(22050, 0.5)
    x[100], x[200] = np.nan, np.inf
    sf.write(d / "nan.wav", x, 22050, subtype="FLOAT")
    return d


def run(src: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nnaudio_cli", "extract", str(src), str(out), "-c", "mel128",
         "-j", "1", "--json", "-q", *extra],
        capture_output=True, text=True, timeout=300,
    )


def test_hostile_folder(hostile: Path, tmp_path):
    out = tmp_path / "o.h5"
    r = run(hostile, out)
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr
    s = json.loads(r.stdout)
    reasons = {f["key"]: f["reason"] for f in s["failures"]}
    assert set(reasons) == set(BAD), reasons
    for key, needle in BAD.items():
        assert needle in reasons[key] and "\n" not in reasons[key], (key, reasons[key])
        assert f"nnaudio: failed: {key}: " in r.stderr
    with open_features(out) as ff:
        assert sorted(ff) == sorted(GOOD)
        assert ff.failed == reasons
        for key in ff:
            assert np.isfinite(ff[key]).all(), key
        assert ff["a.wav"].shape != ff["a.flac"].shape  # distinct keys, distinct inputs
        assert ff.info("six_ch.wav")["channels"] == 6
        assert np.all(ff.data[()] == ff.data[()])  # no NaN anywhere in the data
        assert not ff["silence.wav"].any()  # exact zeros in, exact zeros out
        # the same samples under three names (PCM_16 twice): the same rows
        np.testing.assert_array_equal(ff["a.wav"], ff["x.wav/inside.wav"])
        peak = float(ff["a.wav"].max())
        np.testing.assert_allclose(ff["double.wav"], ff["a.wav"], rtol=0, atol=1e-3 * peak)
        # six channels of a 440 Hz tone: downmixed, its energy is in the band nearest 440 Hz
        centres = librosa.mel_frequencies(130, fmin=0.0, fmax=11025.0)[1:-1]
        band = int(ff["six_ch.wav"].mean(axis=0).argmax())
        assert band == int(np.abs(centres - 440.0).argmin())


def test_nan_policy_zero_cleans(hostile: Path, tmp_path):
    out = tmp_path / "o.h5"
    r = run(hostile, out, "--nan-policy", "zero")
    assert r.returncode == 3, r.stderr
    with open_features(out) as ff:
        assert "nan.wav" in ff and np.isfinite(ff["nan.wav"]).all()
        assert "nan.wav" not in ff.failed
        assert ff.attrs["nan_policy"] == "zero"
        # exactly the two bad samples become 0, nothing else changes
        x = tone(22050, 0.5)
        x[100] = x[200] = 0.0
        with torch.no_grad():
            want = build(ff.config)(torch.from_numpy(x)[None]).numpy()[0].T
        got = ff["nan.wav"]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * float(want.max()))
