"""``nnaudio invert``: extract -> invert round trips, method choice, hostile keys."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
import soxr
from typer.testing import CliRunner

from nnaudio_cli.app import app

SR = 22050


def run(args: list) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / np.sum((ref - est) ** 2)))


def in_band_signal(sr: int, seconds: float, seed: int) -> np.ndarray:
    """Harmonic notes between 110 Hz and 2 kHz plus a little band-limited noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    y = np.zeros_like(t)
    for f0 in rng.uniform(110, 440, size=3):
        for h in range(1, 5):
            y += 0.3 / h * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 6.28))
    y *= 0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t) ** 2
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("audio")
    sf.write(root / "a.wav", in_band_signal(SR, 1.0, 0), SR, subtype="FLOAT")
    (root / "sub").mkdir()
    sf.write(root / "sub" / "b.flac", in_band_signal(44100, 0.8, 1), 44100, subtype="PCM_24")
    stereo = np.stack([in_band_signal(SR, 0.7, 2), in_band_signal(SR, 0.7, 3)], axis=1)
    sf.write(root / "stereo.wav", stereo, SR, subtype="FLOAT")
    return root


def resampled(path: Path) -> np.ndarray:
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    if sr != SR:
        x = soxr.resample(x, sr, SR, quality="HQ")
    return x


def extract(folder: Path, out: Path, *args: str) -> None:
    r = run(["extract", folder, out, "-q", "-j", "0", *args])
    assert r.exit_code == 0, r.stderr


def test_complex_stft_round_trip_60_db(folder: Path, tmp_path: Path) -> None:
    feats = tmp_path / "stft.h5"
    extract(folder, feats, "-c", "stft_complex", "--keep-channels")
    out = tmp_path / "wav"
    r = run(["invert", feats, out, "--json"])
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["method"] == "istft" and summary["written"] == 3
    for key in ("a.wav", "sub/b.flac", "stereo.wav"):
        ref = resampled(folder / key)
        est, sr = sf.read(out / Path(key).with_suffix(".wav"), dtype="float32", always_2d=True)
        assert sr == SR and est.shape == ref.shape
        assert snr_db(ref, est) >= 60


def test_complex_cqt_round_trip_30_db(folder: Path, tmp_path: Path) -> None:
    feats = tmp_path / "cqt.h5"
    extract(folder, feats, "-c", "cqt84", "--set", 'output_format="Complex"',
            "--set", "fmin=55.0", "--set", "n_bins=72", "--set", "hop_length=96")
    out = tmp_path / "wav"
    r = run(["invert", feats, out, "--only", "a.wav", "--json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["method"] == "icqt"
    ref = resampled(folder / "a.wav")[:, 0]
    est, _ = sf.read(out / "a.wav", dtype="float32")
    assert est.shape == ref.shape
    assert snr_db(ref, est) >= 30


def test_magnitude_griffin_lim_reports_convergence(folder: Path, tmp_path: Path) -> None:
    feats = tmp_path / "mel.h5"
    extract(folder, feats, "-c", "mel128")
    out = tmp_path / "wav"
    r = run(["invert", feats, out, "--only", "a.wav", "--format", "flac", "--json"])
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["method"] == "griffin-lim"
    assert 0 < summary["spectral_convergence"]["a.wav"] < 0.5
    est, sr = sf.read(out / "a.flac", dtype="float32")
    assert sr == SR and est.shape[0] == resampled(folder / "a.wav").shape[0]


def test_mfcc_is_refused(folder: Path, tmp_path: Path) -> None:
    feats = tmp_path / "mfcc.h5"
    extract(folder, feats, "-c", "mfcc")
    r = run(["invert", feats, tmp_path / "wav"])
    assert r.exit_code == 1
    assert "cannot invert MFCC" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_traversal_key_writes_nothing_outside(folder: Path, tmp_path: Path) -> None:
    feats = tmp_path / "stft.h5"
    extract(folder, feats, "-c", "stft_complex")
    with h5py.File(feats, "r+") as f:
        keys = f["index/key"][()].astype(object)
        keys[0] = "../../escaped.wav"
        del f["index/key"]
        f.create_dataset("index/key", data=keys, dtype=h5py.string_dtype())
    out = tmp_path / "deep" / "wav"
    out.parent.mkdir()
    r = run(["invert", feats, out, "--json"])
    assert r.exit_code == 3
    assert "escape" in r.stderr
    assert not (tmp_path / "escaped.wav").exists()
    assert not list(tmp_path.rglob("escaped*"))
    assert json.loads(r.stdout)["written"] == 2


def test_foreign_hdf5_is_one_line_error(tmp_path: Path) -> None:
    foreign = tmp_path / "other.h5"
    with h5py.File(foreign, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    r = run(["invert", foreign, tmp_path / "wav"])
    assert r.exit_code == 1
    assert "not an nnaudio feature file" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_mel_to_linear_blocks_match_one_block(monkeypatch) -> None:
    """The NNLS runs over blocks of frames; the result does not depend on the block size."""
    import torch

    from nnaudio_cli import invert
    from nnaudio_core.features import MelSpectrogram

    mel = MelSpectrogram(sr=22050, n_fft=1024, hop_length=256, n_mels=64)
    x = torch.randn(2, 22050, generator=torch.Generator().manual_seed(1))
    m = mel(x)  # (2, 64, frames)
    to_lin = invert.MelToLinear(mel.mel_basis, 2.0, torch.device("cpu"))
    monkeypatch.setattr(invert, "NNLS_COLUMNS", 10**9)
    whole = to_lin(m)
    monkeypatch.setattr(invert, "NNLS_COLUMNS", 7)
    blocks = to_lin(m)
    assert whole.shape == (2, 513, m.shape[-1])
    # float32 round-off of the products differs with the block width; compare the NNLS
    # solution (power), not its square root, which magnifies differences near 0
    power_diff = float((blocks**2 - whole**2).abs().max())
    assert power_diff <= 1e-5 * float((whole**2).max())
    assert float((blocks - whole).norm() / whole.norm()) < 1e-5
