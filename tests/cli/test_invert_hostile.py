"""``nnaudio invert`` on hostile files and keys: NaN, damaged offsets, long keys, clobbering,
name collisions, wrong methods, missing parents, and segmented inversion of long inputs."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
from support import invoke, snr_db

SR = 22050


def run(args: list) -> object:
    return invoke(*args)


def tone(seconds: float, f0: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    rng = np.random.default_rng(seed)
    y = sum(0.2 / h * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 6)) for h in range(1, 4))
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture(scope="module")
def stft_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    src = root / "in"
    src.mkdir()
    sf.write(src / "a.flac", tone(0.5, 220), SR, subtype="PCM_24")
    sf.write(src / "a.wav", tone(0.6, 330), SR, subtype="FLOAT")
    sf.write(src / "b.wav", tone(0.4, 440), SR, subtype="FLOAT")
    out = root / "stft.h5"
    r = run(["extract", src, out, "-q", "-j", "0", "-c", "stft_complex"])
    assert r.exit_code == 0, r.stderr
    return out


def copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


def set_keys(path: Path, mapping: dict[str, str]) -> None:
    with h5py.File(path, "r+") as f:
        keys = [k.decode() if isinstance(k, bytes) else k for k in f["index/key"][()]]
        keys = np.array([mapping.get(k, k) for k in keys], dtype=object)
        del f["index/key"]
        f.create_dataset("index/key", data=keys, dtype=h5py.string_dtype())


def group(f: h5py.File) -> str:
    """The path of the file's only feature group (layout 2: ``features/<name>``)."""
    (name,) = json.loads(f.attrs["features"])
    return f"features/{name}"


def one_line(stderr: str) -> bool:
    return len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr


def test_nan_key_is_a_failed_row_and_not_written(stft_file: Path, tmp_path: Path) -> None:
    feats = copy(stft_file, tmp_path / "nan.h5")
    with h5py.File(feats, "r+") as f:
        keys = [k.decode() for k in f["index/key"][()]]
        i = keys.index("b.wav")
        lo = int(f[f"{group(f)}/offsets"][i])
        f[f"{group(f)}/data"][lo + 3] = np.nan
    out = tmp_path / "wav"
    r = run(["invert", feats, out, "--json"])
    assert r.exit_code == 3, r.stderr
    summary = json.loads(r.stdout)
    assert [f["key"] for f in summary["failures"]] == ["b.wav"]
    assert "NaN" in summary["failures"][0]["reason"]
    assert not (out / "b.wav").exists()
    assert summary["written"] == 2
    for path in summary["files"].values():
        assert np.isfinite(sf.read(path)[0]).all()


@pytest.mark.parametrize("damage", ["decreasing", "past_end", "negative", "short"])
def test_bad_offsets_write_nothing_and_info_says_damaged(
    stft_file: Path, tmp_path: Path, damage: str
) -> None:
    feats = copy(stft_file, tmp_path / f"{damage}.h5")
    with h5py.File(feats, "r+") as f:
        g = group(f)
        off = f[f"{g}/offsets"][()]
        n = int(f[f"{g}/data"].shape[0])
        if damage == "decreasing":
            off[2] = off[1] - 1
        elif damage == "past_end":
            off[-1] = n + 1000
        elif damage == "negative":
            off[1] = -5
        else:
            off = off[:-1]
        del f[f"{g}/offsets"]
        f.create_dataset(f"{g}/offsets", data=off)
    out = tmp_path / "wav"
    r = run(["invert", feats, out])
    assert r.exit_code == 1
    assert one_line(r.stderr) and "damaged" in r.stderr, r.stderr
    assert not out.exists() or not list(out.iterdir())
    r = run(["info", feats])
    assert r.exit_code == 1
    assert one_line(r.stderr) and "damaged" in r.stderr, r.stderr


def test_overlong_key_fails_alone(stft_file: Path, tmp_path: Path) -> None:
    feats = copy(stft_file, tmp_path / "long.h5")
    set_keys(feats, {"a.wav": "x" * 5000 + ".wav"})
    out = tmp_path / "wav"
    r = run(["invert", feats, out, "--json"])
    assert r.exit_code == 3, r.stderr
    summary = json.loads(r.stdout)
    assert summary["written"] == 2 and summary["failed"] == 1
    assert "bytes" in summary["failures"][0]["reason"]
    assert sorted(p.name for p in out.iterdir()) == ["a.wav", "b.wav"]  # a.flac -> a.wav


def test_refuses_to_overwrite_without_flag(stft_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "wav"
    out.mkdir()
    (out / "b.wav").write_bytes(b"precious")
    r = run(["invert", stft_file, out])
    assert r.exit_code == 2 and one_line(r.stderr) and "--overwrite" in r.stderr
    assert (out / "b.wav").read_bytes() == b"precious"
    assert sorted(p.name for p in out.iterdir()) == ["b.wav"]
    r = run(["invert", stft_file, out, "--overwrite"])
    assert r.exit_code == 0, r.stderr
    assert sf.read(out / "b.wav")[0].shape[0] == int(0.4 * SR)


def test_does_not_create_missing_folder_trees(stft_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "missing" / "deeper" / "wav"
    r = run(["invert", stft_file, out])
    assert r.exit_code == 1 and one_line(r.stderr) and "does not exist" in r.stderr
    assert not (tmp_path / "missing").exists()


def test_colliding_names_are_unique_and_mapped(stft_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "wav"
    r = run(["invert", stft_file, out, "--json"])
    assert r.exit_code == 0, r.stderr
    files = json.loads(r.stdout)["files"]
    assert files == {
        "a.flac": str(out / "a.flac.wav"),
        "a.wav": str(out / "a.wav.wav"),
        "b.wav": str(out / "b.wav"),
    }
    assert sf.read(out / "a.flac.wav")[0].shape[0] == int(0.5 * SR)
    assert sf.read(out / "a.wav.wav")[0].shape[0] == int(0.6 * SR)


def test_control_characters_are_escaped_and_named_consistently(
    stft_file: Path, tmp_path: Path
) -> None:
    feats = copy(stft_file, tmp_path / "ctl.h5")
    set_keys(feats, {"b.wav": "line\nbreak.wav", "a.wav": "../up.wav"})
    out = tmp_path / "wav"
    r = run(["invert", feats, out, "--json", "-q"])
    assert r.exit_code == 3
    failed, result = r.stderr.splitlines()  # the failed row's one line, then the result
    assert failed.startswith("nnaudio: failed: ../up.wav:") and "wrote 2 files" in result
    files = json.loads(r.stdout)["files"]
    assert files["line\nbreak.wav"] == str(out / "line\nbreak.wav")
    assert (out / "line\nbreak.wav").exists()


@pytest.mark.parametrize("method", ["istft", "icqt"])
def test_wrong_method_is_a_usage_error(tmp_path: Path, method: str) -> None:
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "a.wav", tone(0.5, 220), SR, subtype="FLOAT")
    feats = tmp_path / "mag.h5"
    assert run(["extract", src, feats, "-q", "-j", "0", "-c", "stft"]).exit_code == 0
    r = run(["invert", feats, tmp_path / "wav", "--method", method])
    assert r.exit_code == 2 and one_line(r.stderr) and "does not apply" in r.stderr
    assert not (tmp_path / "wav").exists()


def test_segmented_istft_equals_one_shot(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    y = tone(7.3, 110, seed=3) + 0.01 * np.random.default_rng(1).standard_normal(
        int(SR * 7.3)).astype(np.float32)
    stereo = np.stack([y, np.roll(y, 999)], axis=1)
    sf.write(src / "long.wav", stereo, SR, subtype="FLOAT")
    feats = tmp_path / "stft.h5"
    r = run(["extract", src, feats, "-q", "-j", "0", "-c", "stft_complex", "--keep-channels"])
    assert r.exit_code == 0, r.stderr
    one = tmp_path / "one"
    seg = tmp_path / "seg"
    assert run(["invert", feats, one, "-q", "--segment-seconds", "60"]).exit_code == 0
    assert run(["invert", feats, seg, "-q", "--segment-seconds", "1"]).exit_code == 0
    a, _ = sf.read(one / "long.wav", dtype="float32")
    b, _ = sf.read(seg / "long.wav", dtype="float32")
    assert a.shape == b.shape == stereo.shape
    assert np.max(np.abs(a - b)) < 1e-5
    assert np.max(np.abs(a - stereo)) < 1e-4


def complex_cqt(src: Path, feats: Path) -> Path:
    """Complex CQT (72 bins from 55 Hz, hop 96) of ``src``: invertible by iCQT."""
    r = run(["extract", src, feats, "-q", "-j", "0", "-c", "cqt84", "--set",
             'output_format="Complex"', "--set", "fmin=55.0", "--set", "n_bins=72",
             "--set", "hop_length=96"])
    assert r.exit_code == 0, r.stderr
    return feats


def test_segmented_icqt_is_close_to_one_shot(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "long.wav", tone(6.0, 220, seed=5), SR, subtype="FLOAT")
    feats = complex_cqt(src, tmp_path / "cqt.h5")
    one, seg = tmp_path / "one", tmp_path / "seg"
    assert run(["invert", feats, one, "-q", "--segment-seconds", "60"]).exit_code == 0
    assert run(["invert", feats, seg, "-q", "--segment-seconds", "2"]).exit_code == 0
    a, _ = sf.read(one / "long.wav", dtype="float32")
    b, _ = sf.read(seg / "long.wav", dtype="float32")
    ref = tone(6.0, 220, seed=5)
    assert snr_db(ref, a) >= 30 and snr_db(ref, b) >= 30
    assert snr_db(a, b) >= 30


def test_batched_equal_length_keys_match_single_inversion(tmp_path: Path) -> None:
    """Equal-length keys (not adjacent in key order) are inverted as one batch; each must
    equal its own inversion to float32 round-off of the iterative solver (60 dB)."""
    src = tmp_path / "in"
    src.mkdir()
    for name, seconds, f0 in (("a.wav", 0.5, 220), ("b.wav", 0.7, 330), ("c.wav", 0.5, 262)):
        sf.write(src / name, tone(seconds, f0), SR, subtype="FLOAT")
    feats = complex_cqt(src, tmp_path / "cqt.h5")
    together, alone = tmp_path / "together", tmp_path / "alone"
    assert run(["invert", feats, together, "-q"]).exit_code == 0
    for key in ("a.wav", "c.wav"):
        assert run(["invert", feats, alone, "-q", "--only", key]).exit_code == 0
        x, _ = sf.read(together / key, dtype="float32")
        y, _ = sf.read(alone / key, dtype="float32")
        assert 10 * np.log10(np.sum(y**2) / np.sum((x - y) ** 2)) >= 60


def test_only_gives_the_same_names_as_a_full_run(stft_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "wav"
    r = run(["invert", stft_file, out, "--only", "a.wav", "--json", "-q"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["files"] == {"a.wav": str(out / "a.wav.wav")}


def test_segmented_griffin_lim_joins_segments(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "long.wav", tone(8.0, 196, seed=7), SR, subtype="FLOAT")
    feats = tmp_path / "mel.h5"
    assert run(["extract", src, feats, "-q", "-j", "0", "-c", "mel128"]).exit_code == 0
    conv = {}
    for name, seconds in (("one", "60"), ("seg", "2")):
        r = run(["invert", feats, tmp_path / name, "-q", "--json", "--segment-seconds", seconds])
        assert r.exit_code == 0, r.stderr
        conv[name] = json.loads(r.stdout)["spectral_convergence"]["long.wav"]
        y, _ = sf.read(tmp_path / name / "long.wav", dtype="float32")
        assert y.shape == (int(8.0 * SR),)
        assert np.abs(y[-200:]).max() > 1e-3  # the last segment reaches the end
    assert conv["one"] < 0.5
    assert conv["seg"] < conv["one"] + 0.1


def test_segment_keys_keep_their_span_in_the_output_name(tmp_path: Path) -> None:
    """A segment key of ``extract --files`` (``PATH@START-END``) ends in no extension: its
    span stays in the name (``a.wav@1.5-3`` was ``a.wav@1.wav``, a name for another span)."""
    from nnaudio_cli.invert import plan_outputs

    keys = ["a.wav@1.5-3", "a.wav@0-1.5", "sub/b.flac@2-", "c.flac", "d.tar.gz"]
    plan = plan_outputs(keys, tmp_path, "wav")
    assert {k: str(v.relative_to(tmp_path)) for k, v in plan.items()} == {
        "a.wav@1.5-3": "a.wav@1.5-3.wav",
        "a.wav@0-1.5": "a.wav@0-1.5.wav",
        "sub/b.flac@2-": "sub/b.flac@2-.wav",
        "c.flac": "c.wav",
        "d.tar.gz": "d.tar.wav",
    }
