"""Per-bin streaming statistics (nnaudio_cli.featurefile.stats) against numpy on the concatenated
rows."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from nnaudio_cli.featurefile.stats import BinStats

RTOL = 1e-12  # float64 round-off over ~1e4..1e5 rows


def _rows(n: int, shape: tuple[int, ...] = (16,), seed: int = 0, offset: float = 1e4,
          dtype=np.float32) -> np.ndarray:
    """``n`` rows, mean ``offset`` (+ a per-bin ramp), std 1: catches a naive sum of squares."""
    rng = np.random.default_rng(seed)
    ramp = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    return (offset + ramp + rng.standard_normal((n, *shape))).astype(dtype)


def _stream(rows: np.ndarray, sizes: list[int] | None = None) -> BinStats:
    s = BinStats(rows.shape[1:])
    if sizes is None:
        s.update(rows)
    else:
        start = 0
        while start < len(rows):
            for k in sizes:
                s.update(rows[start:start + k])
                start += k
    return s.finish()


def _assert_numpy(stats: BinStats, rows: np.ndarray) -> None:
    ref = rows.astype(np.float64)
    assert np.all(stats.count == len(rows))
    np.testing.assert_allclose(stats.mean, ref.mean(axis=0), rtol=RTOL, atol=0)
    np.testing.assert_allclose(stats.var, ref.var(axis=0), rtol=RTOL, atol=0)
    np.testing.assert_allclose(stats.std, ref.std(axis=0), rtol=RTOL, atol=0)


def test_against_numpy_with_big_offset():
    rows = _rows(20_000)  # two full blocks of 8192 and a partial one
    stats = _stream(rows)
    assert stats.mean.dtype == stats.var.dtype == np.float64 and stats.count.dtype == np.int64
    assert stats.var.mean() == pytest.approx(1.0, rel=0.05)  # std 1 survives the 1e4 offset
    _assert_numpy(stats, rows)


def test_float64_rows_and_widening_mid_block():
    rows = _rows(3000, seed=1, dtype=np.float64)
    _assert_numpy(_stream(rows), rows)
    # float32 rows then float64 rows: same as all float64 (float32 -> float64 is exact)
    a, b = rows[:1000].astype(np.float32), rows[1000:]
    mixed = BinStats((16,))
    mixed.update(a)
    mixed.update(b)
    whole = _stream(np.concatenate([a.astype(np.float64), b]))
    assert np.array_equal(mixed.finish().mean, whole.mean)
    assert np.array_equal(mixed.m2, whole.m2)


def test_complex_rows():
    rows = _rows(9000, shape=(64, 2), seed=2)
    stats = _stream(rows, sizes=[1000])
    assert stats.mean.shape == stats.var.shape == stats.count.shape == (64, 2)
    _assert_numpy(stats, rows)


def test_slicing_invariance_is_bit_exact():
    rows = _rows(20_000, shape=(32,), seed=3)
    one = _stream(rows)
    for sizes in ([7, 13, 1001, 5], [8192], [8191, 2], [3], [1]):
        other = _stream(rows, sizes)
        assert np.array_equal(one.mean, other.mean), sizes
        assert np.array_equal(one.m2, other.m2), sizes
        assert np.array_equal(one.count, other.count)


def test_merge_of_parts():
    parts = [_rows(n, seed=10 + i) for i, n in enumerate((5000, 1, 12_345))]
    merged = _stream(parts[0]).merge(_stream(parts[1])).merge(_stream(parts[2]))
    _assert_numpy(merged, np.concatenate(parts))
    combined = BinStats.combine(_stream(p) for p in parts)
    assert np.array_equal(combined.mean, merged.mean) and np.array_equal(combined.m2, merged.m2)


def test_empty_stats_and_identity_merge():
    empty = BinStats((4, 2)).finish()
    assert np.all(empty.count == 0) and np.all(np.isnan(empty.var)) and np.all(np.isnan(empty.std))
    empty_rows = BinStats((4, 2))
    empty_rows.update(np.zeros((0, 4, 2), np.float32))
    assert np.all(np.isnan(empty_rows.finish().var))
    full = _stream(_rows(100, shape=(4, 2), seed=5))
    mean, m2 = full.mean.copy(), full.m2.copy()
    full.merge(BinStats((4, 2)))
    assert np.array_equal(full.mean, mean) and np.array_equal(full.m2, m2)
    left = BinStats((4, 2)).merge(full)
    assert np.array_equal(left.mean, mean) and np.array_equal(left.m2, m2)
    assert np.all(left.count == 100)


def test_finish_is_idempotent_and_closes():
    rows = _rows(50)
    s = BinStats((16,))
    s.update(rows)
    s.finish()
    mean = s.mean.copy()
    assert s.finish() is s and np.array_equal(s.mean, mean)
    with pytest.raises(RuntimeError):
        s.update(rows)
    with pytest.raises(ValueError):
        BinStats((16,)).update(np.zeros((3, 15), np.float32))
    with pytest.raises(ValueError):
        BinStats((16,)).merge(BinStats((15,)))
    with pytest.raises(ValueError):
        BinStats.combine([])


def test_write_read_round_trip(tmp_path):
    stats = _stream(_rows(3000, shape=(8, 2), seed=6))
    with h5py.File(tmp_path / "s.h5", "w") as f:
        g = f.create_group("features/stft")
        assert BinStats.read(g) is None
        stats.write(g)
        stats.write(g)  # rewriting (resume) replaces the group
        BinStats((3,)).finish().write(g, name="empty")
    with h5py.File(tmp_path / "s.h5", "r") as f:
        g = f["features/stft"]
        s = g["stats"]
        assert s["count"].dtype == np.int64 and s["mean"].dtype == s["var"].dtype == np.float64
        assert s.attrs["ddof"] == 0 and s.attrs["method"] == "chan"
        back = BinStats.read(g)
        empty = BinStats.read(g, "empty")
    assert back.row_shape == (8, 2)
    for key in ("count", "mean", "m2", "var"):
        assert np.array_equal(getattr(back, key), getattr(stats, key)), key
    assert np.all(np.isnan(empty.var)) and np.all(empty.count == 0)
    # a read part merges like the original
    more = _rows(10, shape=(8, 2), seed=7)
    _assert_numpy(back.merge(_stream(more)),
                  np.concatenate([_rows(3000, shape=(8, 2), seed=6), more]))
