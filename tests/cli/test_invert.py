"""``nnaudio invert``: extract -> invert round trips, method choice, hostile keys."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
import soxr
from support import invoke, snr_db

SR = 22050


def run(args: list) -> object:
    return invoke(*args)


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


def one_line(stderr: str) -> bool:
    return len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr


def test_feature_of_a_two_feature_file_inverts_as_a_single_feature_file(
    folder: Path, tmp_path: Path
) -> None:
    two, one = tmp_path / "two.h5", tmp_path / "one.h5"
    extract(folder, two, "-c", "stft_complex", "-c", "mel128")
    extract(folder, one, "-c", "stft_complex")
    r = run(["invert", two, tmp_path / "two", "--feature", "stft_complex", "--json"])
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert (summary["feature"], summary["method"], summary["written"]) == (
        "stft_complex", "istft", 3)
    assert run(["invert", one, tmp_path / "one", "-q"]).exit_code == 0
    for key in ("a.wav", "sub/b.wav", "stereo.wav"):
        a, _ = sf.read(tmp_path / "two" / key, dtype="float32")
        b, _ = sf.read(tmp_path / "one" / key, dtype="float32")
        assert a.shape == b.shape and np.max(np.abs(a - b)) <= 1e-6, key
    # without --feature both are invertible: a usage error naming each and its method
    r = run(["invert", two, tmp_path / "none"])
    assert r.exit_code == 2 and one_line(r.stderr), r.stderr
    assert "stft_complex (istft), mel128 (griffin-lim)" in r.stderr and "--feature" in r.stderr
    assert not (tmp_path / "none").exists()
    r = run(["invert", two, tmp_path / "none", "--method", "griffin-lim"])
    assert r.exit_code == 2 and one_line(r.stderr) and "applies to 2 of them" in r.stderr
    r = run(["invert", two, tmp_path / "none", "--feature", "mfcc"])
    assert r.exit_code == 2 and one_line(r.stderr)
    assert "no such feature" in r.stderr and "stft_complex, mel128" in r.stderr
    # the only feature --method istft applies to is taken without --feature
    r = run(["invert", two, tmp_path / "istft", "--method", "istft", "--json", "-q"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["feature"] == "stft_complex"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_complex_stft_inverts_40_db(folder: Path, tmp_path: Path,
                                                   dtype: str) -> None:
    """Values are decoded before the inverse (bfloat16 is stored as uint16 bit patterns).
    Measured: float16 80 dB, bfloat16 61 dB against the source."""
    feats = tmp_path / f"{dtype}.h5"
    extract(folder, feats, "-c", "stft_complex", "--dtype", dtype, "--keep-channels")
    out = tmp_path / "wav"
    r = run(["invert", feats, out, "-q"])
    assert r.exit_code == 0, r.stderr
    for key in ("a.wav", "sub/b.flac", "stereo.wav"):
        ref = resampled(folder / key)
        est, _ = sf.read(out / Path(key).with_suffix(".wav"), dtype="float32", always_2d=True)
        assert est.shape == ref.shape
        assert snr_db(ref, est) >= 40, key


def test_db_mel_inverts_like_the_linear_file(folder: Path, tmp_path: Path) -> None:
    """A ``--db`` mel128 (power dB, top_db 80) is converted back to linear power before
    Griffin-Lim. Spectral convergence within 0.01 of the linear file's (measured 2e-7) and
    the audio within 30 dB SNR of the linear file's audio (same seeded start; measured
    59 dB: the dB values are float32)."""
    lin, db = tmp_path / "mel.h5", tmp_path / "mel_db.h5"
    extract(folder, lin, "-c", "mel128")
    extract(folder, db, "-c", "mel128", "--db")
    conv, audio = {}, {}
    for name, feats in (("lin", lin), ("db", db)):
        r = run(["invert", feats, tmp_path / name, "--only", "a.wav", "--json", "-q"])
        assert r.exit_code == 0, r.stderr
        conv[name] = json.loads(r.stdout)["spectral_convergence"]["a.wav"]
        audio[name], _ = sf.read(tmp_path / name / "a.wav", dtype="float32")
    assert 0 < conv["lin"] < 0.5
    assert abs(conv["db"] - conv["lin"]) <= 0.01
    assert snr_db(audio["lin"], audio["db"]) >= 30


def test_threads_sets_torchs_cpu_threads(folder: Path, tmp_path: Path) -> None:
    import torch

    feats = tmp_path / "stft.h5"
    extract(folder, feats, "-c", "stft_complex")
    before = torch.get_num_threads()
    audio = {}
    try:
        for n in (1, 2):
            r = run(["invert", feats, tmp_path / f"t{n}", "--threads", n, "--json"])
            assert r.exit_code == 0, r.stderr
            assert json.loads(r.stdout)["threads"] == n
            audio[n] = sf.read(tmp_path / f"t{n}" / "a.wav", dtype="float32")[0]
    finally:
        torch.set_num_threads(before)
    # other thread counts sum in another order: equal to float32 round-off, not bit for bit
    np.testing.assert_allclose(audio[1], audio[2], rtol=0, atol=1e-5)
    r = run(["invert", feats, tmp_path / "t0", "--threads", "0"])
    assert r.exit_code == 2 and "--threads" in r.stderr
