"""Stored dtypes and decibels (nnaudio_cli.featurefile.encoding): librosa's dB, torch's bfloat16,
overflow."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from nnaudio_cli import config
from nnaudio_cli.featurefile.encoding import (
    DTYPES,
    Decibels,
    Storage,
    StorageError,
    db_for,
    default_amin,
    value_kind,
)
from nnaudio_core import features


def _spectrum(seed: int = 0) -> np.ndarray:
    """A float32 power spectrum (64 bins, 200 frames) spanning 1e-14..1e3, with exact zeros."""
    rng = np.random.default_rng(seed)
    x = (10.0 ** rng.uniform(-14, 3, size=(64, 200))).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = 0.0
    return x


@pytest.mark.parametrize("top_db", [80.0, 40.0, None])
@pytest.mark.parametrize("ref", [1.0, 3.5])
def test_power_db_matches_librosa(top_db, ref):
    x = _spectrum()
    db = Decibels("power", ref=ref, amin=1e-10, top_db=top_db)
    got = db.to_db(x)
    assert got.dtype == np.float32 and got.shape == x.shape
    got = db.floor(got, peak=float(got.max()))
    want = librosa.power_to_db(x.astype(np.float64), ref=ref, amin=1e-10, top_db=top_db)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


@pytest.mark.parametrize("top_db", [80.0, None])
@pytest.mark.parametrize("amin", [1e-5, 1e-3])
def test_magnitude_db_matches_librosa(top_db, amin):
    mag = np.sqrt(_spectrum(1))
    db = Decibels("magnitude", ref=0.5, amin=amin, top_db=top_db)
    got = db.floor(db.to_db(mag), peak=float(db.to_db(mag).max()))
    want = librosa.amplitude_to_db(mag.astype(np.float64), ref=0.5, amin=amin, top_db=top_db)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    # the zeros sit at the amin floor (or at peak - top_db, whichever is higher)
    floor = 20 * np.log10(amin / 0.5)
    if top_db is not None:
        floor = max(floor, float(want.max()) - top_db)
    assert got[mag == 0] == pytest.approx(floor, abs=1e-4)


@pytest.mark.parametrize(("kind", "ref", "amin"), [("power", 1.0, 1e-10), ("power", 3.5, 1e-10),
                                              ("magnitude", 0.5, 1e-5)])
def test_to_linear_inverts_to_db_above_amin(kind, ref, amin):
    """``to_linear(to_db(x)) == x`` for x >= amin (float32 round-off of the dB value: a
    relative 1e-5), ``amin`` below it, and librosa's ``db_to_power`` / ``db_to_amplitude``."""
    x = _spectrum(2) if kind == "power" else np.sqrt(_spectrum(2))
    db = Decibels(kind, ref=ref, amin=amin, top_db=None)
    back = db.to_linear(db.to_db(x))
    assert back.dtype == np.float32 and back.shape == x.shape
    above = x >= amin
    np.testing.assert_allclose(back[above], x[above], rtol=1e-5, atol=0)
    np.testing.assert_allclose(back[~above], amin, rtol=1e-5)
    to_lin = librosa.db_to_power if kind == "power" else librosa.db_to_amplitude
    want = to_lin(db.to_db(x).astype(np.float64), ref=ref)
    np.testing.assert_allclose(back, want, rtol=1e-6)
    with np.errstate(all="raise"):  # no overflow warning: +inf, and NaN stays NaN
        assert np.isinf(db.to_linear(np.array([1e6], np.float32)))[0]
        assert np.isnan(db.to_linear(np.array([np.nan], np.float32)))[0]


def test_default_amin_and_validation():
    assert default_amin("power") == 1e-10 and default_amin("magnitude") == 1e-5
    for bad in (dict(kind="log"), dict(kind="power", amin=0.0), dict(kind="power", ref=-1.0),
                dict(kind="power", top_db=-3.0)):
        with pytest.raises(StorageError):
            Decibels(**bad)
    with pytest.raises(StorageError, match="--dtype float64"):
        Storage("float64")


def test_float16_exact_for_representable_values():
    rng = np.random.default_rng(2)
    halves = rng.standard_normal(10_000).astype(np.float16)
    halves = np.concatenate([halves, np.float16([0, -0.0, 65504, -65504, 6e-8, 2 ** -24])])
    values = halves.astype(np.float32)
    s = Storage("float16")
    stored = s.encode(values, "mel128")
    assert stored.dtype == np.float16 == s.numpy_dtype
    assert np.array_equal(stored.view(np.uint16), halves.view(np.uint16))
    back = s.decode(stored)
    assert back.dtype == np.float32 and np.array_equal(back, values)


def test_float16_overflow_names_db():
    x = np.full((3, 4), 0.5, np.float32)
    x[1, 2] = 1e6
    with pytest.raises(StorageError) as info:
        Storage("float16").encode(x, "mel128")
    msg = str(info.value)
    assert "\n" not in msg and info.value.exit_code == 1
    assert msg == ("feature mel128: values up to 1e+06 overflow float16 (largest 65504); "
                   "store decibels with --db, or use --dtype bfloat16 or float32")
    # rounds to 65504, not inf: no error
    assert Storage("float16").encode(np.float32([65519.0]), "m")[0] == 65504


def test_float16_overflow_with_db_suggests_dtype_only():
    s = Storage("float16", Decibels("power", top_db=None))
    with pytest.raises(StorageError) as info:
        s.encode(np.float32([-1e5, 3.0]), "stft")
    msg = str(info.value)
    assert "--db" not in msg and "values up to 1e+05 dB" in msg
    assert msg.endswith("use --dtype bfloat16 or float32")


def test_bfloat16_overflow_and_specials():
    s = Storage("bfloat16")
    with pytest.raises(StorageError, match=r"overflow bfloat16 \(largest 3.38953e\+38\);"
                                           r" store decibels with --db, or use --dtype float32"):
        s.encode(np.float32([3.4e38]), "x")
    # inf and NaN are not overflow: they are stored as such
    out = s.decode(s.encode(np.float32([np.inf, -np.inf, np.nan]), "x"))
    assert np.isposinf(out[0]) and np.isneginf(out[1]) and np.isnan(out[2])


def test_bfloat16_matches_torch():
    rng = np.random.default_rng(3)
    n = 100_000
    parts = [
        rng.standard_normal(n // 4) * 10.0 ** rng.uniform(-30, 30, n // 4),  # wide range, signed
        rng.uniform(-1, 1, n // 4) * np.float32(1.2e-38),                    # subnormals
        rng.uniform(-3.3e38, 3.3e38, n // 4),                                # large
    ]
    x = np.concatenate(parts).astype(np.float32)
    # random bit patterns hit every tie case and every exponent (NaNs and infs included)
    bits = rng.integers(0, 2 ** 32, n - len(x), dtype=np.uint64).astype(np.uint32)
    x = np.concatenate([x, bits.view(np.float32)])
    with np.errstate(over="ignore"):
        finite_ok = np.abs(x) < np.float32(3.3895e38)
    x = x[finite_ok | ~np.isfinite(x)]
    stored = Storage("bfloat16").encode(x, "x")
    assert stored.dtype == np.uint16 and len(x) > 90_000
    want = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    nan = np.isnan(x)
    assert np.array_equal(stored[~nan], want[~nan])
    assert np.isnan(Storage("bfloat16").decode(stored[nan])).all()


def test_bfloat16_decode_is_exact_widening():
    bits = np.arange(2 ** 16, dtype=np.uint16)
    out = Storage("bfloat16").decode(bits)
    assert out.dtype == np.float32
    want = torch.from_numpy(bits.view(np.int16)).view(torch.bfloat16).float().numpy()
    assert np.array_equal(out.view(np.uint32), want.view(np.uint32))
    # and re-encoding a bfloat16-representable value gives the same bits (NaNs aside)
    ok = ~np.isnan(out)
    assert np.array_equal(Storage("bfloat16").encode(out[ok], "x"), bits[ok])


def test_float32_is_a_pass_through():
    x = np.random.default_rng(4).standard_normal((5, 7)).astype(np.float32)
    s = Storage()
    assert s.encode(x, "f") is x
    assert s.decode(x) is x
    y = s.encode(x.T, "f")  # not C-contiguous: copied
    assert y.flags.c_contiguous and np.array_equal(y, x.T)
    assert s.encode(np.float64([1.5]), "f").dtype == np.float32


@pytest.mark.parametrize("storage", [
    Storage(),
    Storage("float16"),
    Storage("bfloat16", Decibels("power", ref=2.0, amin=1e-8, top_db=60.0)),
    Storage("float32", Decibels("magnitude", amin=1e-5, top_db=None)),
    Storage("float16", Decibels("power", top_db=0.0)),
])
def test_attrs_round_trip(storage, tmp_path):
    import h5py

    attrs = storage.attrs()
    assert Storage.from_attrs(attrs) == storage
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.attrs.update(attrs)
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert Storage.from_attrs(f.attrs) == storage
    if storage.db is not None:
        assert attrs["scale"] == "db"
        assert attrs["db_top_db"] == ("none" if storage.db.top_db is None else storage.db.top_db)


def test_attrs_of_older_files():
    assert Storage.from_attrs({}) == Storage("float32", None)
    with pytest.raises(StorageError, match="float64"):
        Storage.from_attrs({"dtype": "float64"})
    assert set(DTYPES) == {"float32", "float16", "bfloat16"}


def _preset_config(name: str) -> dict:
    return features.build(config.resolve(name).as_core_config()).get_config()


@pytest.mark.parametrize(("preset", "kind"), [
    ("mel128", "power"), ("mel64_16k", "power"), ("gammatone", "power"),
    ("stft", "magnitude"), ("cqt84", "magnitude"), ("vqt", "magnitude"),
    ("stft_complex", None), ("mfcc", None), ("cfp", None),
])
def test_value_kind_of_presets(preset, kind):
    assert value_kind(_preset_config(preset)) == kind


def test_value_kind_of_parameters():
    assert value_kind({"transform": "MelSpectrogram", "params": {"power": 1.0}}) == "magnitude"
    assert value_kind({"transform": "Gammatonegram", "params": {"power": 1.5}}) is None
    assert value_kind({"transform": "CQT2010v2", "params": {"output_format": "Phase"}}) is None
    assert value_kind({"transform": "Nope", "params": {}}) is None
    # parameters left out take the transform's declared defaults
    assert value_kind({"transform": "STFT", "params": {}}) is None  # Complex by default
    assert value_kind({"transform": "CQT", "params": {}}) == "magnitude"
    assert value_kind({"transform": "MelSpectrogram", "params": {}}) == "power"


def test_db_for():
    db = db_for(_preset_config("mel128"), "mel128", ref=1.0, amin=None, top_db=80.0)
    assert db == Decibels("power", 1.0, 1e-10, 80.0)
    db = db_for(_preset_config("cqt84"), "cqt84", ref=1.0, amin=None, top_db=None)
    assert db == Decibels("magnitude", 1.0, 1e-5, None)
    with pytest.raises(StorageError) as info:
        db_for(_preset_config("stft_complex"), "stft_complex", 1.0, None, 80.0)
    assert str(info.value) == (
        "--db: feature stft_complex is complex (real, imag); decibels need a magnitude or "
        "power feature: drop --db or extract it in another run")
    with pytest.raises(StorageError, match="--db: feature mfcc is MFCC"):
        db_for(_preset_config("mfcc"), "mfcc", 1.0, None, 80.0)
