"""Crafted and damaged feature files: every reader (``info``, ``info --key``, ``plot``,
``invert``, ``merge``, :func:`open_features`, :class:`FeatureDataset`) refuses each one with
one line naming the file and the defect (exit 1), never a traceback, "internal error" or
a slice of the wrong rows."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
from support import invoke

from nnaudio_cli.dataset import FeatureDataset
from nnaudio_cli.store import FeatureFileError, open_features

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
