"""nnaudio info on layout 2 files: every feature, --feature, --json, --stats against numpy,
and a layout 1 file written by hand."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from support import invoke, make_inputs

from nnaudio_cli.featurefile.reader import open_features

NAMES = ["mel128", "cqt84", "mfcc"]


@pytest.fixture(scope="module")
def three(tmp_path_factory) -> Path:
    """mel128, cqt84 and mfcc of six noise clips (16, 22.05 and 44.1 kHz) and a failed row."""
    root = tmp_path_factory.mktemp("infostats")
    src = make_inputs(root / "audio", n=6)
    (src / "broken.wav").write_bytes(b"")
    out = root / "three.h5"
    r = invoke("extract", src, out, "-c", "mel128", "-c", "cqt84", "-c", "mfcc",
               "--workers", "0", "-q")
    assert r.exit_code == 3, r.output
    return out


def _frames(path: Path, name: str) -> np.ndarray:
    """Every stored row of feature ``name``, decoded, float64."""
    with open_features(path, name) as ff:
        return ff.rows(0, int(ff.offsets[-1])).astype(np.float64)


def test_info_shows_every_feature_and_the_shared_index(three):
    r = invoke("info", three)
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    assert "features mel128, cqt84, mfcc" in text and "inputs 7 (6 ok, 1 failed)" in text
    for name, transform, bins in (("mel128", "MelSpectrogram", 128),
                                  ("cqt84", "CQT1992v2", 84), ("mfcc", "MFCC", 20)):
        assert f"feature {name} transform {transform}" in text
        assert (f"values frames_bins, row shape ({bins},), stored float32, linear") in text
        assert f"rows {_frames(three, name).shape[0]} (" in text
    assert "sample rate 22050 Hz, hop 512 samples" in text
    assert "broken.wav: " in text and "statistics" not in text


def test_json_lists_features_and_feature_restricts(three):
    desc = json.loads(invoke("info", three, "--json").stdout)
    assert desc["inputs"] == 7 and desc["ok"] == 6 and desc["failed"] == 1
    assert [f["name"] for f in desc["features"]] == NAMES == desc["feature_names"]
    assert "transform" not in desc  # several features: nothing copied to the top level
    for f in desc["features"]:
        rows = _frames(three, f["name"]).shape[0]
        assert f["rows"] == f["frames"] == rows and f["data_shape"] == [rows, f["n_bins"]]
        assert f["dtype"] == "float32" and f["scale"] == "linear" and f["db"] is None
        assert f["sr"] == 22050 and f["hop_length"] == 512 and f["row_shape"] == [f["n_bins"]]
        assert "stats" not in f
    one = json.loads(invoke("info", three, "--json", "--feature", "cqt84").stdout)
    assert [f["name"] for f in one["features"]] == ["cqt84"]
    assert one["transform"] == "CQT1992v2" and one["config"]["params"]["n_bins"] == 84
    r = invoke("info", three, "--feature", "mel")
    assert r.exit_code == 2 and len(r.stderr.splitlines()) == 1
    assert "has no feature 'mel'; choose --feature from: mel128, cqt84, mfcc" in r.stderr


def test_stats_json_equal_numpy_over_the_concatenated_frames(three):
    desc = json.loads(invoke("info", three, "--json", "--stats").stdout)
    for f in desc["features"]:
        x = _frames(three, f["name"])
        st = f["stats"]
        assert st["rows"] == x.shape[0] and st["count"] == [x.shape[0]] * f["n_bins"]
        np.testing.assert_allclose(st["mean"], x.mean(axis=0), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(st["std"], x.std(axis=0), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(st["var"], x.var(axis=0), rtol=1e-9, atol=1e-12)


def test_stats_text_shows_a_summary_and_the_first_and_last_bins(three):
    r = invoke("info", three, "--stats", "--feature", "mfcc")
    assert r.exit_code == 0, r.output
    x = _frames(three, "mfcc")
    mean, std = x.mean(axis=0), x.std(axis=0)
    lines = [" ".join(ln.split()) for ln in r.stdout.splitlines()]
    text = " ".join(lines)
    assert (f"mfcc statistics: {x.shape[0]} rows per bin; per-bin mean {mean.min():.5g} .. "
            f"{mean.max():.5g}, std {std.min():.5g} .. {std.max():.5g}") in text
    for b in (0, 1, 2, 17, 18, 19):
        assert f"{b} {x.shape[0]} {mean[b]:.5g} {std[b]:.5g}" in lines
    assert "..." in lines and not any(ln.startswith("3 ") for ln in lines)
    assert "feature mel128" not in text


def test_a_file_without_statistics_says_so_in_one_line(three, tmp_path):
    bare = tmp_path / "bare.h5"
    shutil.copy(three, bare)
    with h5py.File(bare, "r+") as h5:
        del h5["features/cqt84/stats"]
    r = invoke("info", bare, "--stats")
    assert r.exit_code == 0, r.output
    said = [ln for ln in r.stdout.splitlines() if ln.startswith("cqt84 statistics")]
    assert said == ["cqt84 statistics: none stored (a file written before statistics were "
                    "kept, or a part file)"]
    assert "mel128 statistics: " in r.stdout
    desc = json.loads(invoke("info", bare, "--stats", "--json").stdout)
    assert [f["stats"] is None for f in desc["features"]] == [False, True, False]


def test_db_storage_parameters_are_shown(three, tmp_path):
    out = tmp_path / "db.h5"
    r = invoke("extract", three.parent / "audio", out, "-c", "mel128", "--db", "--db-amin",
               "1e-8", "--db-no-top-db", "--dtype", "bfloat16", "--workers", "0", "-q")
    assert r.exit_code == 3, r.output
    text = " ".join(invoke("info", out).stdout.split())
    assert ("row shape (128,), stored bfloat16, dB of power (ref 1, amin 1e-08, top_db none)"
            in text)
    f = json.loads(invoke("info", out, "--json", "--stats").stdout)
    assert f["scale"] == "db" and f["dtype"] == "bfloat16"
    assert f["db"] == {"kind": "power", "ref": 1.0, "amin": 1e-8, "top_db": None}
    np.testing.assert_allclose(f["stats"]["mean"], _frames(out, "mel128").mean(axis=0),
                               rtol=1e-10)


def _write_v1(path: Path) -> np.ndarray:
    """A ``layout_version`` 1 file by hand: two inputs (3 and 2 frames of 4 bins), one failed."""
    data = np.arange(20, dtype=np.float32).reshape(5, 4)
    config = {"transform": "MelSpectrogram", "params": {"sr": 16000, "n_mels": 4,
                                                        "hop_length": 160}}
    with h5py.File(path, "w") as h5:
        h5["features/data"] = data
        h5["features/offsets"] = np.array([0, 3, 5, 5], np.int64)
        h5["features/frequencies"] = np.array([100.0, 200.0, 300.0, 400.0])
        str_t = h5py.string_dtype("utf-8")
        cols = {"key": (["a.wav", "b.wav", "c.wav"], str_t),
                "status": (["ok", "ok", "failed"], str_t),
                "reason": (["", "", "empty file"], str_t),
                "sr": ([16000.0] * 3, np.float64), "samples": ([320, 160, 0], np.int64),
                "channels": ([1, 1, 0], np.int32), "duration": ([0.02, 0.01, 0.0], np.float64),
                "size": ([100, 90, 0], np.int64), "mtime": ([1.0e9] * 3, np.float64),
                "frames": ([3, 2, 0], np.int64), "stored_channels": ([1, 1, 0], np.int32)}
        for col, (values, dtype) in cols.items():
            h5.create_dataset(f"index/{col}", data=np.array(values, dtype=object
                                                            if dtype is str_t else dtype),
                              dtype=dtype)
        h5.attrs.update({"layout_version": 1, "transform": "MelSpectrogram",
                         "config_json": json.dumps(config), "sr": 16000, "hop_length": 160,
                         "n_bins": 4, "keep_channels": False, "value_layout": "frames_bins"})
    return data


def test_a_layout_1_file_still_shows(tmp_path):
    v1 = tmp_path / "v1.h5"
    data = _write_v1(v1)
    r = invoke("info", v1, "--stats")
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    for part in ("features MelSpectrogram", "inputs 3 (2 ok, 1 failed)", "layout version 1",
                 "feature MelSpectrogram transform MelSpectrogram", "sample rate 16000 Hz, "
                 "hop 160 samples", "row shape (4,), stored float32, linear", "rows 5 (5 frames)",
                 "MelSpectrogram statistics: none stored", "c.wav: empty file"):
        assert part in text, part
    desc = json.loads(invoke("info", v1, "--json").stdout)
    assert desc["layout_version"] == 1 and desc["data_shape"] == [5, 4]
    row = json.loads(invoke("info", v1, "--key", "b.wav", "--json").stdout)
    assert row["frames"] == 2 and row["offset"] == 3 and row["shape"] == [2, 4]
    with open_features(v1) as ff:
        np.testing.assert_array_equal(ff["b.wav"], data[3:5])
