"""``nnaudio merge``: what it refuses (one line, exit 1/2, nothing written) and what a merged
virtual master does when a shard file goes missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from support import invoke, make_inputs, run_extract

from nnaudio_cli.extract.shard import shard_path
from nnaudio_cli.featurefile.encoding import Storage
from nnaudio_cli.featurefile.reader import open_features
from nnaudio_cli.featurefile.writer import FeatureSpec, FeatureWriter

ARGS = ["--batch-seconds", "2", "--workers", "0", "--threads", "1", "-q"]
ROOT = Path(__file__).resolve().parents[2]


def nnaudio(*args: object) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SLURM_") and k not in ("RANK", "WORLD_SIZE")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "nnaudio_cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env)


def one_error(r: subprocess.CompletedProcess) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnaudio: error: "), r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Shards 0..2 of 3 (mel64_16k) and shard 1 of 3 made with other settings (stft)."""
    root = tmp_path_factory.mktemp("merge")
    src = make_inputs(root / "in", n=12, seed=2)
    out = root / "f.h5"
    for i in range(3):
        r = nnaudio("extract", src, out, "-c", "mel64_16k", "--shard", f"{i}/3", *ARGS)
        assert r.returncode == 0, r.stderr
    other = root / "other" / "f.h5"
    other.parent.mkdir()
    r = nnaudio("extract", src, other, "-c", "mel64_16k", "--set", "n_mels=32",
                "--shard", "1/3", *ARGS)
    assert r.returncode == 0, r.stderr
    return out, other


def test_mismatched_settings_fail_clearly(shards, tmp_path):
    out, other = shards
    r = nnaudio("merge", shard_path(out, 0, 3), shard_path(other, 1, 3), shard_path(out, 2, 3),
                tmp_path / "m.h5")
    assert r.returncode == 1
    line = one_error(r)
    assert ("f.shard-1-of-3.h5 and f.shard-0-of-3.h5 differ in settings of feature "
            "mel64_16k (config_hash") in line
    assert not (tmp_path / "m.h5").exists() and not list(tmp_path.iterdir())


def test_missing_shard_is_reported_by_number(shards, tmp_path):
    out, _ = shards
    r = nnaudio("merge", shard_path(out, 0, 3), shard_path(out, 2, 3), tmp_path / "m.h5")
    assert r.returncode == 1 and "missing shards 1 of 3" in one_error(r)
    for i in (0, 2):
        os.link(shard_path(out, i, 3), shard_path(tmp_path / "m.h5", i, 3))
    r = nnaudio("merge", "--expect", 3, tmp_path / "m.h5")
    assert r.returncode == 1
    assert "missing shards 1 of 3 (m.shard-1-of-3.h5)" in one_error(r)
    r = nnaudio("merge", "--expect", 8, tmp_path / "m.h5")
    assert "missing shards 0, 1, 2, 3, 4, 5, 6, 7 of 8" in one_error(r)


def test_duplicated_shard_and_usage_errors(shards, tmp_path):
    out, _ = shards
    s = [shard_path(out, i, 3) for i in range(3)]
    r = nnaudio("merge", s[0], s[1], s[1], s[2], tmp_path / "m.h5")
    assert r.returncode == 1 and "shard 1 given twice" in one_error(r)
    r = nnaudio("merge", tmp_path / "m.h5")
    assert r.returncode == 2
    r = nnaudio("merge", "--expect", 3, s[0], tmp_path / "m.h5")
    assert r.returncode == 2 and "only OUTPUT" in one_error(r)
    (tmp_path / "exists.h5").write_bytes(b"")
    r = nnaudio("merge", *s, tmp_path / "exists.h5")
    assert r.returncode == 2 and "--overwrite" in one_error(r)
    r = nnaudio("merge", *s, tmp_path / "no" / "m.h5")
    assert r.returncode == 1 and "does not exist" in one_error(r)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    r = nnaudio("merge", s[0], tmp_path / "junk.h5", tmp_path / "m.h5")
    assert r.returncode == 1 and "cannot read" in one_error(r)


def test_virtual_master_moves_with_its_shards_and_refuses_a_missing_one(shards, tmp_path):
    """The master refers to its shards by relative path: the folder can move. Without a
    shard, open_features refuses the file by name; plain h5py reads NaN, never zeros."""
    out, _ = shards
    folder = tmp_path / "moved"
    folder.mkdir()
    for i in range(3):
        os.link(shard_path(out, i, 3), shard_path(folder / "f.h5", i, 3))
    r = nnaudio("merge", "--expect", 3, folder / "f.h5")
    assert r.returncode == 0, r.stderr
    moved = tmp_path / "elsewhere"
    folder.rename(moved)
    with open_features(moved / "f.h5") as ff:
        keys = list(ff)
        assert len(keys) == 12 and keys == sorted(keys)
        first = ff[keys[0]]
        assert first.shape[1] == 64 and np.isfinite(first).all() and first.max() > 0
    with h5py.File(shard_path(moved / "f.h5", 0, 3)) as h5:
        n0 = int(h5["features/mel64_16k/offsets"][-1])  # rows of shard 0
    os.unlink(shard_path(moved / "f.h5", 1, 3))
    with pytest.raises(ValueError, match="shard file f.shard-1-of-3.h5 is missing"):
        open_features(moved / "f.h5")
    with h5py.File(moved / "f.h5") as h5:
        data = h5["features/mel64_16k/data"][()]
    assert np.isfinite(data[:n0]).all() and np.isnan(data[n0:]).any()
    r = nnaudio("info", moved / "f.h5")
    assert r.returncode == 1 and "missing" in one_error(r)


# --- several features per pass (layout 2) --------------------------------------------------

FEATURES = ("mel128", "mfcc")
TWO = ["-c", "mel128", "-c", "mfcc", *ARGS]


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2-feature extraction (mel128, mfcc): 3 float32 shards, 3 float16 shards and the
    single-process float32 run, with the same thread count and settings."""
    root = tmp_path_factory.mktemp("two")
    src = make_inputs(root / "in", n=12, seed=7)
    paths = {"single": root / "single.h5", "f32": root / "f32" / "f.h5",
             "f16": root / "f16" / "f.h5"}
    r = run_extract(src, paths["single"], *TWO)
    assert r.returncode == 0, r.stderr
    for name, extra in (("f32", []), ("f16", ["--dtype", "float16"])):
        paths[name].parent.mkdir()
        for i in range(3):
            r = run_extract(src, paths[name], *TWO, *extra, "--shard", f"{i}/3")
            assert r.returncode == 0, r.stderr
    return paths


def shards_of(out: Path) -> list[Path]:
    return [shard_path(out, i, 3) for i in range(3)]


def frames(path: Path, feature: str) -> np.ndarray:
    """Every stored row of ``feature`` (float32), concatenated in stored order."""
    with open_features(path, feature) as ff:
        return ff.rows(0, int(ff.offsets[-1]))


@pytest.mark.parametrize("copy", [False, True], ids=["virtual", "copy"])
def test_two_feature_shards_merge_to_the_single_run(two, tmp_path, copy):
    """Per feature: the same keys, offsets and values as one process, and statistics equal
    to numpy's on the concatenated frames (float64 of the float32 rows) within 1e-9."""
    out = tmp_path / "m.h5"
    r = invoke("merge", *shards_of(two["f32"]), out, *(["--copy"] if copy else []))
    assert r.exit_code == 0, r.output
    with h5py.File(out) as h5:
        assert json.loads(h5.attrs["features"]) == list(FEATURES)
        assert int(h5.attrs["layout_version"]) == 2 and h5.attrs["merged"] == (
            "copy" if copy else "virtual")
        for name in FEATURES:
            assert h5[f"features/{name}/data"].is_virtual is not copy
            assert h5[f"features/{name}/data"].dtype == np.float32
    for name in FEATURES:
        with open_features(out, name) as m, open_features(two["single"], name) as one:
            assert list(m.index["key"]) == list(one.index["key"]) and len(m) == 12
            np.testing.assert_array_equal(m.offsets, one.offsets)
            np.testing.assert_array_equal(m.index["frames"], one.index["frames"])
            np.testing.assert_array_equal(m.frequencies, one.frequencies)
            assert m.attrs["config_hash"] == one.attrs["config_hash"]
            assert m.attrs["transform"] == one.attrs["transform"]
            for key in one:
                assert np.array_equal(m[key], one[key]), (name, key)
            stats, single_stats = m.stats, one.stats
        assert stats is not None and single_stats is not None
        x = frames(two["single"], name).astype(np.float64)
        assert stats.count.tolist() == [len(x)] * x.shape[1]
        np.testing.assert_allclose(stats.mean, x.mean(axis=0), rtol=1e-9,
                                   atol=1e-12 * np.abs(x).max())
        np.testing.assert_allclose(stats.var, x.var(axis=0), rtol=1e-9)
        if copy:  # recomputed from the same rows in the same order as the single run
            np.testing.assert_array_equal(stats.m2, single_stats.m2)
            np.testing.assert_array_equal(stats.mean, single_stats.mean)


def test_float16_shards_merge_in_their_dtype_and_read_back_float32(two, tmp_path):
    for copy in (False, True):
        out = tmp_path / f"m{int(copy)}.h5"
        r = invoke("merge", *shards_of(two["f16"]), out, *(["--copy"] if copy else []))
        assert r.exit_code == 0, r.output
        for name in FEATURES:
            with open_features(out, name) as m, open_features(two["single"], name) as one:
                assert m.data.dtype == np.float16 and m.data.is_virtual is not copy
                assert m.storage.dtype == "float16" and m.attrs["dtype"] == "float16"
                assert list(m) == list(one)
                for key in one:
                    got = m[key]
                    assert got.dtype == np.float32
                    want = one[key].astype(np.float16).astype(np.float32)
                    assert np.array_equal(got, want), (name, key)
                x = m.rows(0, int(m.offsets[-1])).astype(np.float64)
                np.testing.assert_allclose(m.stats.var, x.var(axis=0), rtol=1e-9)


def test_feature_mismatches_name_the_feature(two, tmp_path):
    s32, s16 = shards_of(two["f32"]), shards_of(two["f16"])
    r = invoke("merge", s32[0], s16[1], s32[2], tmp_path / "m.h5")
    assert r.exit_code == 1
    assert ("f.shard-1-of-3.h5 and f.shard-0-of-3.h5 differ in settings of feature mel128 "
            "(dtype float16 vs dtype float32)") in r.output
    swapped = tmp_path / "swapped.shard-1-of-3.h5"
    shutil.copy(s32[1], swapped)
    with h5py.File(swapped, "a") as h5:
        h5.attrs["features"] = json.dumps(["mfcc", "mel128"])
    r = invoke("merge", s32[0], swapped, s32[2], tmp_path / "m.h5")
    assert r.exit_code == 1 and "differ in features (mfcc,mel128 vs mel128,mfcc)" in r.output
    old = tmp_path / "old.shard-1-of-3.h5"
    shutil.copy(s32[1], old)
    with h5py.File(old, "a") as h5:
        h5.attrs["layout_version"] = 1
    r = invoke("merge", s32[0], old, s32[2], tmp_path / "m.h5")
    assert r.exit_code == 1 and "layout_version 1 shards: re-extract them" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [old.name, swapped.name]


def test_a_shard_without_statistics_leaves_that_feature_without(two, tmp_path):
    s = shards_of(two["f32"])
    bare = tmp_path / "f.shard-1-of-3.h5"
    shutil.copy(s[1], bare)
    with h5py.File(bare, "a") as h5:
        del h5["features/mfcc/stats"]
    for i in (0, 2):
        os.link(s[i], shard_path(tmp_path / "f.h5", i, 3))
    r = invoke("merge", "--expect", 3, tmp_path / "f.h5")
    assert r.exit_code == 0, r.output
    assert ("nnaudio: note: f.shard-1-of-3.h5 has no statistics of feature mfcc; the merged "
            "file has none for it") in r.output
    with open_features(tmp_path / "f.h5", "mfcc") as m:
        assert m.stats is None
    with open_features(tmp_path / "f.h5", "mel128") as m:
        assert m.stats is not None and int(m.stats.count[0]) == int(m.offsets[-1])


def write_part(path: Path, keys: list[str], values: list[np.ndarray]) -> None:
    """A small bfloat16 feature file ``feat`` written directly (no shard attributes)."""
    spec = FeatureSpec("feat", (3,), np.array([1.0, 2.0, 3.0]), Storage("bfloat16"),
                       {"transform": "X", "config_json": "{}", "config_hash": "h",
                        "hop_length": 1, "n_bins": 3, "value_layout": "time,bin"})
    writer = FeatureWriter(path, [spec], "none", stats=True)
    for key, v in zip(keys, values, strict=True):
        writer.append("feat", v)
        writer.add_row({"feat": len(v)}, key=key, status="ok", stored_channels=1)
    writer.commit({"sr": 16000.0, "keep_channels": False, "config_hash": "c"})


def test_bfloat16_merges_as_bits_and_a_missing_shard_reads_nan(tmp_path):
    rng = np.random.default_rng(3)
    vals = [rng.standard_normal((n, 3)).astype(np.float32) for n in (5, 0, 7)]
    write_part(tmp_path / "a.h5", ["a0", "a1"], vals[:2])
    write_part(tmp_path / "b.h5", ["b0"], vals[2:])
    r = invoke("merge", tmp_path / "b.h5", tmp_path / "a.h5", tmp_path / "m.h5")  # any order
    assert r.exit_code == 0, r.output
    want = Storage("bfloat16").encode(np.concatenate(vals), "feat")
    with open_features(tmp_path / "m.h5", dtype=None) as m:
        assert m.data.is_virtual and m.data.dtype == np.uint16
        assert np.array_equal(m.rows(0, 12), want)
        assert list(m.offsets) == [0, 5, 5, 12]
        x = Storage("bfloat16").decode(want).astype(np.float64)
        np.testing.assert_allclose(m.stats.var, x.var(axis=0), rtol=1e-9)
    os.unlink(tmp_path / "b.h5")
    with h5py.File(tmp_path / "m.h5") as h5:
        raw = h5["features/feat/data"][()]
    assert np.array_equal(raw[:5], want[:5]) and (raw[5:] == 0x7FC0).all()
    assert np.isnan(Storage("bfloat16").decode(raw[5:])).all()
