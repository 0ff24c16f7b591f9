"""``nnaudio merge``: what it refuses (one line, exit 1/2, nothing written) and what a merged
virtual master does when a shard file goes missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from support import make_inputs

from nnaudio_cli.extract.shard import shard_path
from nnaudio_cli.store import open_features

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
