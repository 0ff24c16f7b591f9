"""``nnaudio merge`` carries checksums end to end: each shard's checksum is verified before
it is used (virtual and ``--copy``), a damaged single file is refused, and a virtual master
notices a shard that changed since the merge."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
from support import invoke

from nnaudio_cli.extract.shard import shard_path
from nnaudio_cli.featurefile.checksum import file_digest, verify_file
from nnaudio_cli.featurefile.dataset import FeatureDataset
from nnaudio_cli.featurefile.reader import open_features
from nnaudio_cli.featurefile.validate import FeatureFileError

SR = 22050
#: small batches, so that the two shards of four inputs hold two each
SPLIT = ("--batch-seconds", "0.5")


def _write_inputs(src: Path, seconds: list[float]) -> None:
    src.mkdir(parents=True, exist_ok=True)
    for i, sec in enumerate(seconds):
        t = np.arange(int(SR * sec)) / SR
        sf.write(src / f"k{i}.wav", (0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t))
                 .astype(np.float32), SR)


def _extract(src: Path, out: Path, *extra: object) -> None:
    r = invoke("extract", src, out, "-q", "-j", "0", "-c", "stft_complex", *extra)
    assert r.exit_code == 0, r.stderr


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shards 0 and 1 of 2 of four short inputs: ``OUT.shard-I-of-2.h5`` next to ``OUT``."""
    root = tmp_path_factory.mktemp("sums")
    _write_inputs(root / "in", [0.3, 0.4, 0.5, 0.6])
    out = root / "f.h5"
    for i in range(2):
        _extract(root / "in", out, "--shard", f"{i}/2", *SPLIT)
    for i in range(2):
        with open_features(shard_path(out, i, 2)) as s:
            assert len(s) == 2 and s.data.shape[0] > 4
    return out


def _copy_shards(two: Path, where: Path) -> Path:
    out = where / "f.h5"
    for i in range(2):
        shutil.copy(shard_path(two, i, 2), shard_path(out, i, 2))
    return out


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text and "internal error" not in text, text
    return lines[0]


def _data_offset(path: Path) -> int:
    """Byte offset of the first stored chunk of the first feature's data."""
    with h5py.File(path, "r") as f:
        (name,) = json.loads(f.attrs["features"])
        return f[f"features/{name}/data"].id.get_chunk_info(0).byte_offset


def edit_value(path: Path) -> None:
    """One stored value changed with h5py: the file is valid HDF5, its checksum is not."""
    with h5py.File(path, "r+") as f:
        (name,) = json.loads(f.attrs["features"])
        d = f[f"features/{name}/data"]
        d[1] = d[1] + 1.0


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])


def random_bytes(path: Path) -> None:
    size = path.stat().st_size
    path.write_bytes(np.random.default_rng(0).bytes(size))


def flip_chunk_bytes(path: Path) -> None:
    """Bytes in the middle of a compressed data chunk overwritten (a bad disk block)."""
    raw = bytearray(path.read_bytes())
    at = _data_offset(path) + 64
    raw[at : at + 32] = bytes(32)
    path.write_bytes(bytes(raw))


DAMAGE = {"edited": edit_value, "truncated": truncate, "random_bytes": random_bytes,
          "bad_chunk": flip_chunk_bytes}


@pytest.mark.parametrize("copy", [False, True], ids=["virtual", "copy"])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_shard_is_refused_naming_it(two: Path, tmp_path: Path, damage: str,
                                              copy: bool) -> None:
    out = _copy_shards(two, tmp_path)
    bad = shard_path(out, 1, 2)
    DAMAGE[damage](bad)
    merged = tmp_path / "m.h5"
    r = invoke("merge", shard_path(out, 0, 2), bad, merged, *(["--copy"] if copy else []))
    line = one_line(r.stderr)
    assert r.exit_code == 1, r.stderr
    assert bad.name in line, line
    assert not merged.exists() and not (tmp_path / "m.h5.partial").exists()


def test_merge_copy_output_verifies_and_keeps_the_shards_rows(two: Path, tmp_path: Path
                                                             ) -> None:
    merged = tmp_path / "m.h5"
    r = invoke("merge", shard_path(two, 0, 2), shard_path(two, 1, 2), merged, "--copy")
    assert r.exit_code == 0, r.stderr
    stored, actual = file_digest(merged)
    assert stored == actual and stored
    with open_features(merged) as m, open_features(shard_path(two, 1, 2)) as s1:
        for key in s1:
            assert np.array_equal(m[key], s1[key])


@pytest.fixture
def master(two: Path, tmp_path: Path) -> Path:
    out = _copy_shards(two, tmp_path)
    r = invoke("merge", "--expect", 2, out)
    assert r.exit_code == 0, r.stderr
    return out


def test_a_shard_replaced_after_the_merge_is_an_error_naming_it(master: Path, tmp_path: Path
                                                                ) -> None:
    with open_features(master) as m:
        before = {k: m[k].shape[0] for k in m}
    # shard 1 extracted again from other (longer) inputs: more rows where the master maps
    # fewer, and a new checksum
    _write_inputs(tmp_path / "other", [0.3, 0.4, 1.5, 1.6])
    _extract(tmp_path / "other", master, "--shard", "1/2", "--overwrite", *SPLIT)
    shard = shard_path(master, 1, 2).name
    with pytest.raises(FeatureFileError, match=f"shard {shard} changed since the merge"):
        open_features(master)
    with pytest.raises(FeatureFileError, match=shard):
        FeatureDataset(master)
    for args in (["info", master], ["info", master, "--key", "k0.wav"],
                 ["invert", master, tmp_path / "wav"],
                 ["plot", master, "k3.wav", "-o", tmp_path / "k3.png"]):
        r = invoke(*args)
        assert r.exit_code == 1, (args, r.stderr)
        assert shard in one_line(r.stderr)
    assert before  # the master read fine before the shard changed


def test_a_shard_whose_rows_changed_in_place_is_caught_by_full_verification(
        master: Path) -> None:
    """Rows edited in place (the digest attribute left as it was) pass the cheap check on
    open; ``verify_file`` (``nnaudio info --verify``) recomputes the checksums."""
    edit_value(shard_path(master, 0, 2))
    with open_features(master) as m:
        assert len(m) == 4
    with pytest.raises(FeatureFileError, match="checksum mismatch"):
        verify_file(master)
    r = invoke("info", master, "--verify")
    assert r.exit_code == 1
    assert shard_path(master, 0, 2).name in one_line(r.stderr)


def test_a_shard_chunk_unreadable_during_invert_is_a_read_error(master: Path, tmp_path: Path
                                                                ) -> None:
    """Damaged bytes in a shard's data (its attributes intact: the cheap check on open
    passes) are reported when read, naming the master and the rows: never "cannot write"."""
    flip_chunk_bytes(shard_path(master, 1, 2))
    r = invoke("invert", master, tmp_path / "wav")
    line = one_line(r.stderr)
    assert r.exit_code == 1, r.stderr
    assert "cannot read" in line and master.name in line and "cannot write" not in line
    ds = FeatureDataset(master)
    with pytest.raises(FeatureFileError, match="cannot read the rows of k[23].wav"):
        [ds[i] for i in range(len(ds))]


def test_info_verify_lists_each_checked_file(master: Path) -> None:
    r = invoke("info", master, "--verify")
    assert r.exit_code == 0, r.stderr
    for i in range(2):
        assert f"{shard_path(master, i, 2).name}: checksum crc32:" in r.stdout


def _virtual_into(path: Path, target: str, rows: int) -> None:
    """Replace the data of ``path`` by a virtual dataset reading ``target``."""
    with h5py.File(path, "r+") as f:
        (name,) = json.loads(f.attrs["features"])
        g = f[f"features/{name}"]
        shape, dtype = g["data"].shape, g["data"].dtype
        layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
        layout[:rows] = h5py.VirtualSource(target, "features/x/data", shape=(rows,) + shape[1:],
                                           dtype=dtype)
        del g["data"]
        g.create_virtual_dataset("data", layout, fillvalue=0)


def crafted_group(f: h5py.File, g: h5py.Group) -> None:
    del g["data"]
    g.create_group("data")


def crafted_wrong_dtype(f: h5py.File, g: h5py.Group) -> None:
    data = g["data"][()].astype(np.float64)
    del g["data"]
    g.create_dataset("data", data=data)


def crafted_db_without_parameters(f: h5py.File, g: h5py.Group) -> None:
    g.attrs["scale"] = "db"


def crafted_no_features(f: h5py.File, g: h5py.Group) -> None:
    f.attrs["features"] = "[]"


CRAFTED = {
    "data_group": (crafted_group, "not a dataset"),
    "wrong_dtype": (crafted_wrong_dtype, "float64"),
    "db_without_parameters": (crafted_db_without_parameters, "db_kind"),
    "no_features": (crafted_no_features, "no features"),
    "virtual_into_passwd": (None, "virtual"),
    "virtual_into_missing": (None, "virtual"),
}


@pytest.mark.parametrize("craft", sorted(CRAFTED))
def test_merge_of_one_damaged_file_is_refused(two: Path, tmp_path: Path, craft: str) -> None:
    path = tmp_path / "one.h5"
    shutil.copy(shard_path(two, 0, 2), path)
    edit, reason = CRAFTED[craft]
    if craft == "virtual_into_passwd":
        _virtual_into(path, "/etc/passwd", 4)
    elif craft == "virtual_into_missing":
        _virtual_into(path, str(tmp_path / "gone.h5"), 4)
    else:
        with h5py.File(path, "r+") as f:
            (name,) = json.loads(f.attrs["features"]) or ["stft_complex"]
            edit(f, f[f"features/{name}"])
    for copy in ([], ["--copy"]):
        r = invoke("merge", path, tmp_path / "m.h5", *copy)
        line = one_line(r.stderr)
        assert r.exit_code == 1, (copy, r.stderr)
        assert "one.h5" in line and reason in line, line
        assert not (tmp_path / "m.h5").exists()


def test_merge_of_a_merged_master_is_refused(master: Path, tmp_path: Path) -> None:
    r = invoke("merge", master, tmp_path / "again.h5")
    assert r.exit_code == 1
    assert "itself a merged file" in one_line(r.stderr)


def test_merge_of_a_device_is_not_no_such_file(tmp_path: Path) -> None:
    r = invoke("merge", "/dev/null", tmp_path / "m.h5")
    line = one_line(r.stderr)
    assert r.exit_code == 1
    assert "/dev/null" in line and "no such file" not in line and "not a regular file" in line
