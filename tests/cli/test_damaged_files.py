"""Crafted and damaged feature files: every reader (``info``, ``info --key``, ``plot``,
``invert``, ``merge``, :func:`open_features`, :class:`FeatureDataset`) refuses each one with
one line naming the file and the defect (exit 1), never a traceback, "internal error" or
a slice of the wrong rows."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
from support import invoke
from torch.utils.data import DataLoader

from nnaudio_cli.featurefile.dataset import FeatureDataset
from nnaudio_cli.featurefile.reader import open_features
from nnaudio_cli.featurefile.validate import FeatureFileError

SR = 22050


def _tone(seconds: float, f0: float) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real extract output: three keys of complex STFT."""
    root = tmp_path_factory.mktemp("damaged")
    src = root / "in"
    src.mkdir()
    for name, sec, f0 in (("a.wav", 0.3, 220), ("b.wav", 0.4, 330), ("c.wav", 0.5, 440)):
        sf.write(src / name, _tone(sec, f0), SR)
    out = root / "good.h5"
    r = invoke("extract", src, out, "-q", "-j", "0", "-c", "stft_complex")
    assert r.exit_code == 0, r.stderr
    return out


def _group(f: h5py.File) -> h5py.Group:
    (name,) = json.loads(f.attrs["features"])
    return f[f"features/{name}"]


def _replace(g: h5py.Group, name: str, data: np.ndarray, **kw: object) -> None:
    del g[name]
    g.create_dataset(name, data=data, **kw)


def _config(f: h5py.File, **params: object) -> None:
    g = _group(f)
    config = json.loads(g.attrs["config_json"])
    config["params"].update(params)
    g.attrs["config_json"] = json.dumps(config)


def data_group(f: h5py.File) -> None:
    g = _group(f)
    del g["data"]
    g.create_group("data")


def link_loop(f: h5py.File) -> None:
    g = _group(f)
    del g["data"]
    g["data"] = h5py.SoftLink(f"{g.name}/loop")
    g["loop"] = h5py.SoftLink(f"{g.name}/data")


def no_features(f: h5py.File) -> None:
    f.attrs["features"] = "[]"


def no_frequencies(f: h5py.File) -> None:
    g = _group(f)
    del g["frequencies"]
    del g.attrs["frequencies"]


def integer_status(f: h5py.File) -> None:
    n = f["index/status"].shape[0]
    _replace(f["index"], "status", np.zeros(n, np.int64))


def invalid_config(f: h5py.File) -> None:
    _group(f).attrs["config_json"] = '{"transform": "STFT", "params": '


def string_sr(f: h5py.File) -> None:
    f.attrs["sr"] = "fast"
    _group(f).attrs["sr"] = "fast"


def one_d_data(f: h5py.File) -> None:
    g = _group(f)
    n = g["data"].shape[0]
    _replace(g, "data", np.zeros(n, np.float32))


def huge_n_fft(f: h5py.File) -> None:
    _config(f, n_fft=2**40)


def negative_hop(f: h5py.File) -> None:
    _config(f, hop_length=-256)


def duplicate_keys(f: h5py.File) -> None:
    keys = [k.decode() for k in f["index/key"][()]]
    keys[1] = keys[0]
    _replace(f["index"], "key", np.array(keys, dtype=object), dtype=h5py.string_dtype())


def _offsets(f: h5py.File, edit: Callable[[np.ndarray, int], np.ndarray]) -> None:
    g = _group(f)
    _replace(g, "offsets", edit(g["offsets"][()].copy(), int(g["data"].shape[0])))


def offsets_decrease(f: h5py.File) -> None:
    _offsets(f, lambda o, n: np.concatenate([o[:2], [o[1] - 1], o[3:]]))


def offsets_past_the_data(f: h5py.File) -> None:
    _offsets(f, lambda o, n: np.concatenate([o[:-1], [n + 7]]))


def negative_offset(f: h5py.File) -> None:
    _offsets(f, lambda o, n: np.concatenate([o[:1], [-5], o[2:]]))


def one_offset_short(f: h5py.File) -> None:
    _offsets(f, lambda o, n: o[:-1])


#: crafted damage -> a word the one-line reason must contain
DAMAGE: dict[str, tuple[Callable[[h5py.File], None], str]] = {
    "data_group": (data_group, "not a dataset"),
    "link_loop": (link_loop, "data"),
    "no_features": (no_features, "no features"),
    "no_frequencies": (no_frequencies, "frequencies"),
    "integer_status": (integer_status, "status"),
    "invalid_config": (invalid_config, "config_json"),
    "string_sr": (string_sr, "sr"),
    "one_d_data": (one_d_data, "data"),
    "huge_n_fft": (huge_n_fft, "n_fft"),
    "negative_hop": (negative_hop, "hop_length"),
    "duplicate_keys": (duplicate_keys, "duplicate key"),
    "offsets_decrease": (offsets_decrease, "offsets decrease"),
    "offsets_past_the_data": (offsets_past_the_data, "past the"),
    "negative_offset": (negative_offset, "negative offset"),
    "one_offset_short": (one_offset_short, "offsets for 3 keys"),
}


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text and "internal error" not in text, text
    return lines[0]


@pytest.fixture(params=sorted(DAMAGE))
def damaged(request: pytest.FixtureRequest, good: Path, tmp_path: Path) -> tuple[Path, str]:
    craft, reason = DAMAGE[request.param]
    path = tmp_path / f"{request.param}.h5"
    path.write_bytes(good.read_bytes())
    with h5py.File(path, "r+") as f:
        craft(f)
    return path, reason


def test_every_command_refuses_a_damaged_file(damaged: tuple[Path, str], tmp_path: Path) -> None:
    path, reason = damaged
    commands = {
        "info": ["info", path],
        "info --key": ["info", path, "--key", "a.wav"],
        "plot": ["plot", path, "a.wav", "-o", tmp_path / "a.png"],
        "invert": ["invert", path, tmp_path / "wav"],
        "merge": ["merge", path, tmp_path / "merged.h5"],
    }
    for what, args in commands.items():
        r = invoke(*args)
        line = one_line(r.stderr)
        assert r.exit_code == 1, (what, r.exit_code, r.stderr)
        assert path.name in line and reason in line, (what, line)
    assert not (tmp_path / "a.png").exists()
    assert not (tmp_path / "wav").exists() or not list((tmp_path / "wav").iterdir())
    assert not (tmp_path / "merged.h5").exists()


def test_the_readers_refuse_a_damaged_file(damaged: tuple[Path, str]) -> None:
    path, reason = damaged
    for reader in (open_features, FeatureDataset):
        with pytest.raises(FeatureFileError) as e:
            reader(path)
        line = one_line(str(e.value))
        assert str(path) in line and reason in line, (reader, line)
        assert isinstance(e.value, ValueError)  # what the readers documented before


def test_the_good_file_reads(good: Path) -> None:
    with open_features(good) as ff:
        assert sorted(ff) == ["a.wav", "b.wav", "c.wav"]
    assert len(FeatureDataset(good)) == 3


@pytest.mark.parametrize("workers", [0, 2])
def test_a_dataset_refuses_a_file_replaced_under_it(good: Path, tmp_path: Path,
                                                    workers: int) -> None:
    """The file under the dataset's path is replaced (as ``extract --overwrite`` does: a new
    file renamed over it) after the dataset read its index: every process that opens it
    says so, naming it, instead of reading the old offsets in the new rows."""
    path = tmp_path / "f.h5"
    shutil.copy(good, path)
    ds = FeatureDataset(path)
    src = tmp_path / "other"
    src.mkdir()
    for name, sec in (("a.wav", 1.3), ("b.wav", 0.2), ("c.wav", 0.9)):  # other lengths
        sf.write(src / name, _tone(sec, 500), SR)
    r = invoke("extract", src, tmp_path / "new.h5", "-q", "-j", "0", "-c", "stft_complex")
    assert r.exit_code == 0, r.stderr
    os.replace(tmp_path / "new.h5", path)
    loader = DataLoader(ds, batch_size=None, num_workers=workers)
    with pytest.raises(FeatureFileError, match=r"f\.h5 was replaced after this FeatureDataset"):
        list(loader)
    fresh = FeatureDataset(path)  # a new dataset reads the new file
    assert list(fresh.frames) != list(ds.frames)  # the replacement has other lengths
    assert [x.shape[0] for x, _ in fresh] == list(fresh.frames)


def test_an_unreadable_chunk_during_invert_is_a_read_error(good: Path, tmp_path: Path) -> None:
    """A damaged data chunk (valid layout, bad bytes) is reported as unreadable features,
    not as a folder that cannot be written."""
    path = tmp_path / "bad.h5"
    raw = bytearray(good.read_bytes())
    with h5py.File(good, "r") as f:
        at = _group(f)["data"].id.get_chunk_info(0).byte_offset + 64
    raw[at : at + 32] = bytes(32)
    path.write_bytes(bytes(raw))
    out = tmp_path / "wav"
    r = invoke("invert", path, out)
    line = one_line(r.stderr)
    assert r.exit_code == 1, r.stderr
    assert "cannot read" in line and "bad.h5" in line and "cannot write" not in line, line
