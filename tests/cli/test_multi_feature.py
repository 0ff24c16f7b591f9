"""Several features from one pass, stored dtypes and decibels, per-bin statistics (issue 18).

Equality with single-feature runs is exact: both runs use the same settings and thread
count, and a feature's values never depend on the other features of the pass.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch
from support import CMD, assert_same, invoke, make_inputs, run_extract, tone, wait_for_part

from nnaudio_cli.featurefile.layout import FEATURE_ATTRS, LAYOUT_VERSION, ROOT_ATTRS
from nnaudio_cli.featurefile.reader import open_features

THREE = ("-c", "mel128", "-c", "cqt84", "-c", "mfcc")
FAST = ("-j", "1", "--threads", "1")


def _frames(path: Path, feature: str) -> np.ndarray:
    """Every stored frame of one feature, in key order, as float64."""
    with open_features(path, feature) as ff:
        return np.concatenate([ff[k] for k in ff]).astype(np.float64)


def _check_stats(path: Path, feature: str) -> None:
    """Stored per-bin statistics equal numpy's on the concatenated frames (float64)."""
    x = _frames(path, feature)
    with open_features(path, feature) as ff:
        st = ff.stats
    assert st is not None
    assert (st.count == x.shape[0]).all()
    scale = np.abs(x).max() + 1e-30
    np.testing.assert_allclose(st.mean, x.mean(axis=0), rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(st.var, x.var(axis=0), rtol=1e-9, atol=1e-12 * scale**2)


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    return make_inputs(tmp_path_factory.mktemp("multi") / "in", n=12, seed=18)


@pytest.fixture(scope="module")
def three(src: Path) -> Path:
    out = src.parent / "three.h5"
    r = run_extract(src, out, *THREE, *FAST, "--batch-seconds", "4")
    assert r.returncode == 0, r.stderr
    return out


def test_three_features_equal_three_runs(src: Path, three: Path):
    with h5py.File(three, "r") as h5:
        assert int(h5.attrs["layout_version"]) == LAYOUT_VERSION == 2
        assert json.loads(h5.attrs["features"]) == ["mel128", "cqt84", "mfcc"]
        assert "index" in h5 and set(h5["features"]) == {"mel128", "cqt84", "mfcc"}
        assert set(ROOT_ATTRS) <= set(h5.attrs)
        for name in ("mel128", "cqt84", "mfcc"):
            assert set(FEATURE_ATTRS) <= set(h5["features"][name].attrs), name
    for name in ("mel128", "cqt84", "mfcc"):
        one = src.parent / f"only-{name}.h5"
        r = run_extract(src, one, "-c", name, *FAST, "--batch-seconds", "4")
        assert r.returncode == 0, r.stderr
        with open_features(three, name) as a, open_features(one) as b:
            assert a.feature == name and b.features == [name]
            assert list(a) == list(b) and len(a) == 12
            assert a.config == b.config
            np.testing.assert_array_equal(a.frequencies, b.frequencies)
            for key in a:
                assert np.array_equal(a[key], b[key]), (name, key)
                assert a.info(key)["frames"] == a[key].shape[0]
        _check_stats(three, name)
    with pytest.raises(ValueError, match="holds 3 features .*mel128, cqt84, mfcc.*feature="):
        open_features(three)
    with pytest.raises(ValueError, match="no feature 'mel'"):
        open_features(three, "mel")


def test_each_file_is_decoded_once_and_resampled_once_per_rate(src: Path, tmp_path,
                                                                monkeypatch):
    """In-process, inline decoder: count reads and resampler calls."""
    import soxr

    from nnaudio_cli.extract import audio

    reads: list[str] = []
    rates: list[float] = []
    real_open, real_resample = audio.open_sound, soxr.resample

    def counting_open(path):
        reads.append(str(path))
        return real_open(path)

    def counting_resample(x, sr_in, sr_out, **kw):
        rates.append(sr_out)
        return real_resample(x, sr_in, sr_out, **kw)

    monkeypatch.setattr(audio, "open_sound", counting_open)
    monkeypatch.setattr(soxr, "resample", counting_resample)
    out = tmp_path / "two-rates.h5"
    r = invoke("extract", src, out, "-c", "mel128", "-c", "mfcc", "-c", "mel64_16k",
               "-j", "0", "--threads", "1", "-q")
    assert r.exit_code == 0, r.output
    assert len(reads) == 12 and len(set(reads)) == 12  # every file opened once
    files = sorted(src.glob("*.wav"))
    expected = 0
    for f in files:  # a resample per target rate that differs from the file's own
        sr = sf.info(f).samplerate
        expected += (sr != 22050) + (sr != 16000)
    assert len(rates) == expected
    with open_features(out, "mel64_16k") as a:
        assert a.attrs["sr"] == 16000 and a.attrs["hop_length"] == 160
    one = tmp_path / "one16k.h5"
    assert run_extract(src, one, "-c", "mel64_16k", *FAST).returncode == 0
    with open_features(out, "mel64_16k") as a, open_features(one) as b:
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_set_with_several_configs_names_the_feature(src: Path, tmp_path):
    out = tmp_path / "o.h5"
    r = invoke("extract", src, out, *THREE, "--set", "n_mels=64")
    assert r.exit_code == 2 and "--set mel128.n_mels=64" in r.output
    r = invoke("extract", src, out, *THREE, "--set", "mel.n_mels=64")
    assert r.exit_code == 2 and "no feature 'mel'" in r.output and "mel128" in r.output
    r = invoke("extract", src, out, "-c", "mel128", "-c", "mel128")
    assert r.exit_code == 2 and "given twice" in r.output
    r = invoke("extract", src, out, "-c", "mel128", "-c", "mfcc", "-t", "stft")
    assert r.exit_code == 2 and "--transform" in r.output
    assert not out.exists()
    r = run_extract(src, out, "-c", "mel128", "-c", "mfcc", "--set", "mel128.n_mels=64",
                    "--set", "mfcc.n_mfcc=13", *FAST)
    assert r.returncode == 0, r.stderr
    with open_features(out, "mel128") as a, open_features(out, "mfcc") as b:
        assert a.data.shape[1] == 64 and b.data.shape[1] == 13


def test_sigkill_and_resume_equal_a_clean_run_with_statistics(src: Path, three: Path,
                                                              tmp_path):
    out = tmp_path / "killed.h5"
    proc = subprocess.Popen([*CMD, str(src), str(out), *THREE, *FAST, "--batch-seconds",
                             "4"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    wait_for_part(out, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    r = run_extract(src, out, *THREE, *FAST, "--batch-seconds", "4", "--resume", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["resumed_files"] > 0 and summary["features"] == ["mel128", "cqt84", "mfcc"]
    assert_same(out, three)  # features and statistics, bit for bit
    for name in ("mel128", "cqt84", "mfcc"):
        _check_stats(out, name)
    r = run_extract(src, out, "-c", "mel128", "-c", "cqt84", *FAST, "--batch-seconds", "4",
                    "--resume")
    assert r.returncode == 1 and "different settings" in r.stderr


def test_float16_and_bfloat16_are_stored_as_asked(src: Path, three: Path, tmp_path):
    out = tmp_path / "half.h5"
    r = run_extract(src, out, "-c", "mfcc", "-c", "cqt84", "--dtype", "float16", *FAST,
                    "--batch-seconds", "4")
    assert r.returncode == 0, r.stderr
    for name in ("mfcc", "cqt84"):
        with open_features(out, name) as half, open_features(three, name) as full, \
                open_features(out, name, dtype=None) as raw:
            assert half.data.dtype == np.float16 and half.attrs["dtype"] == "float16"
            for key in full:
                assert half[key].dtype == np.float32 and raw[key].dtype == np.float16
                np.testing.assert_array_equal(half[key], full[key].astype(np.float16)
                                              .astype(np.float32))
        _check_stats(out, name)  # statistics of the stored (rounded) values
    out = tmp_path / "bf.h5"
    r = run_extract(src, out, "-c", "mel128", "--dtype", "bfloat16", *FAST,
                    "--batch-seconds", "4")
    assert r.returncode == 0, r.stderr
    with open_features(out) as bf, open_features(three, "mel128") as full:
        assert bf.data.dtype == np.uint16 and bf.attrs["dtype"] == "bfloat16"
        for key in full:
            want = torch.from_numpy(full[key]).to(torch.bfloat16).float().numpy()
            np.testing.assert_array_equal(bf[key], want)


def test_float16_overflow_is_an_error_naming_db(tmp_path):
    loud = tmp_path / "loud"
    loud.mkdir()
    sf.write(loud / "sine.wav", tone(22050, 1.0, 1000.0, amp=1.0), 22050)
    out = tmp_path / "o.h5"
    mel = ("-c", "mel128", "--set", "norm=none", "--dtype", "float16", *FAST)
    r = run_extract(loud, out, *mel)
    assert r.returncode == 1, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("nnaudio: error")]
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert "overflow float16" in lines[0] and "--db" in lines[0] and "mel128" in lines[0]
    assert not out.exists()
    r = run_extract(loud, out, *mel, "--db", "--overwrite")
    assert r.returncode == 0, r.stderr
    with open_features(out) as ff:
        v = ff["sine.wav"]
        assert np.isfinite(v).all() and ff.attrs["scale"] == "db"


def test_db_is_librosa_power_to_db_per_clip(src: Path, three: Path, tmp_path):
    librosa = pytest.importorskip("librosa")
    out = tmp_path / "db.h5"
    r = run_extract(src, out, "-c", "mel128", "-c", "cqt84", "--db", "--db-top-db", "60",
                    *FAST, "--batch-seconds", "4")
    assert r.returncode == 0, r.stderr
    with open_features(out, "mel128") as db, open_features(three, "mel128") as lin:
        assert db.attrs["scale"] == "db" and db.attrs["db_kind"] == "power"
        assert db.attrs["db_ref"] == 1.0 and db.attrs["db_amin"] == 1e-10
        assert db.attrs["db_top_db"] == 60.0
        for key in lin:
            want = librosa.power_to_db(lin[key], ref=1.0, amin=1e-10, top_db=60.0)
            np.testing.assert_allclose(db[key], want, atol=2e-4)
    with open_features(out, "cqt84") as db, open_features(three, "cqt84") as lin:
        assert db.attrs["db_kind"] == "magnitude" and db.attrs["db_amin"] == 1e-5
        for key in lin:
            want = librosa.amplitude_to_db(lin[key], ref=1.0, amin=1e-5, top_db=60.0)
            np.testing.assert_allclose(db[key], want, atol=2e-4)
    _check_stats(out, "mel128")


def test_db_refuses_features_without_a_magnitude(src: Path, tmp_path):
    out = tmp_path / "o.h5"
    for preset, why in (("stft_complex", "complex"), ("mfcc", "mfcc")):
        r = run_extract(src, out, "-c", "mel128", "-c", preset, "--db", *FAST)
        assert r.returncode == 1, r.stderr
        assert r.stderr.count("\n") == 1 and preset in r.stderr and why in r.stderr.lower()
    r = invoke("extract", src, out, "-c", "mel128", "--db-top-db", "40")
    assert r.exit_code == 2 and "need --db" in r.output
    assert not out.exists()


def test_long_file_in_segments_equals_whole_with_db_and_two_rates(tmp_path):
    """Clip-wide top_db floors and per-rate streaming resamplers: segments == whole."""
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(3)
    x = tone(44100, 12.0, 440.0, amp=0.5) * np.linspace(0.01, 1, 12 * 44100, dtype=np.float32)
    sf.write(src / "long.wav", x + 0.01 * rng.standard_normal(x.size).astype(np.float32), 44100)
    args = ("-c", "mel128", "-c", "mel64_16k", "-c", "cqt84", "--db", *FAST)
    whole, seg = tmp_path / "whole.h5", tmp_path / "seg.h5"
    assert run_extract(src, whole, *args, "--batch-seconds", "60").returncode == 0
    r = run_extract(src, seg, *args, "--batch-seconds", "60", "--segment-seconds", "2",
                    "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["streamed_files"] == 1
    for name in ("mel128", "mel64_16k", "cqt84"):
        with open_features(whole, name) as a, open_features(seg, name) as b:
            assert a["long.wav"].min() >= a["long.wav"].max() - 80.0 - 1e-3
            assert b["long.wav"].min() >= b["long.wav"].max() - 80.0 - 1e-3
            # the float32 contract (1e-5 of the clip's peak) holds in linear units; in dB
            # the same round-off is large far below the peak
            k = 10.0 if a.attrs["db_kind"] == "power" else 20.0
            lin_a, lin_b = 10 ** (a["long.wav"] / k), 10 ** (b["long.wav"] / k)
            np.testing.assert_allclose(lin_b, lin_a, rtol=0, atol=1e-5 * lin_a.max())


def test_layout_1_files_still_read(tmp_path):
    """A file in the first layout (written by hand as nnaudio 0.x did) reads as before."""
    path = tmp_path / "v1.h5"
    rows = np.arange(5 * 3, dtype=np.float32).reshape(5, 3)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("features/data", data=rows)
        h5.create_dataset("features/offsets", data=np.array([0, 2, 2, 5], np.int64))
        h5.create_dataset("features/frequencies", data=np.array([1.0, 2.0, 3.0]))
        str_t = h5py.string_dtype("utf-8")
        for col, vals in {"key": ["a.wav", "b.wav", "c.wav"],
                          "status": ["ok", "failed", "ok"], "reason": ["", "bad", ""]}.items():
            h5.create_dataset(f"index/{col}", data=np.array(vals, dtype=object), dtype=str_t)
        h5.create_dataset("index/frames", data=np.array([2, 0, 3], np.int64))
        h5.create_dataset("index/stored_channels", data=np.array([1, 0, 1], np.int32))
        h5.attrs.update({"layout_version": 1, "transform": "STFT", "sr": 22050,
                         "hop_length": 512, "n_bins": 3, "keep_channels": False,
                         "config_json": json.dumps({"transform": "STFT", "params": {}}),
                         "dtype": "float32"})
    with open_features(path) as ff:
        assert ff.version == 1 and ff.features == ["STFT"] and ff.feature == "STFT"
        assert list(ff) == ["a.wav", "c.wav"] and ff.failed == {"b.wav": "bad"}
        np.testing.assert_array_equal(ff["c.wav"], rows[2:])
        assert ff.info("c.wav")["frames"] == 3 and ff.stats is None
        assert ff.storage.dtype == "float32" and ff.storage.db is None


def test_a_feature_that_is_not_finite_fails_the_input_in_every_feature(tmp_path):
    """At 1e18 the mel power overflows float32 while the CQT magnitude stays finite: the CQT
    rows already written for that input are rolled back, and the inputs around it are
    stored as a run without it stores them (to float32 round-off: the batches differ)."""
    src, clean = tmp_path / "in", tmp_path / "clean"
    src.mkdir()
    clean.mkdir()
    rng = np.random.default_rng(5)
    for name in ("a.wav", "c.wav"):
        x = (0.1 * rng.standard_normal(30000)).astype(np.float32)
        sf.write(src / name, x, 22050)
        sf.write(clean / name, x, 22050)
    huge = (1e18 * rng.standard_normal(22050)).astype(np.float32)
    sf.write(src / "b.wav", huge, 22050, subtype="FLOAT")
    out, ref = tmp_path / "o.h5", tmp_path / "ref.h5"
    r = run_extract(src, out, "-c", "cqt84", "-c", "mel128", *FAST)
    assert r.returncode == 3, r.stderr
    assert "b.wav: mel128: features contain NaN/Inf" in r.stderr and "cqt84:" not in r.stderr
    assert run_extract(clean, ref, "-c", "cqt84", "-c", "mel128", *FAST).returncode == 0
    for name in ("cqt84", "mel128"):
        with open_features(out, name) as a, open_features(ref, name) as b:
            assert list(a) == ["a.wav", "c.wav"] and a.failed.keys() == {"b.wav"}
            assert a.data.shape == b.data.shape  # nothing of b.wav left behind
            for key in b:  # other batches (b.wav is missing): float32 round-off apart
                np.testing.assert_allclose(a[key], b[key], rtol=0,
                                           atol=1e-5 * np.abs(b[key]).max())
        _check_stats(out, name)
