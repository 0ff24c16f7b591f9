"""End-to-end tests of ``nnaudio extract`` / ``nnaudio info`` through the real Typer app."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import librosa
import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from support import invoke

from nnaudio_cli.featurefile.reader import open_features
from nnaudio_cli.plumbing.outputs import partial_path
from nnaudio_core.features import build

REPO = Path(__file__).resolve().parents[2]

# name, sample rate, channels, seconds, subtype
FILES = [
    ("tone_44k.wav", 44100, 1, 1.3, "PCM_16"),
    ("Stereo_48k.WAV", 48000, 2, 0.9, "FLOAT"),
    ("sub/noise_16k.flac", 16000, 1, 1.7, "PCM_24"),
    ("sub/deeper/chirp_8k.ogg", 8000, 2, 1.1, "VORBIS"),
    ("exact_22k.wav", 22050, 1, 0.6, "FLOAT"),
]


def _signal(sr: int, ch: int, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    cols = []
    for c in range(ch):
        f = 220.0 * (c + 1) * (1 + seed % 3)
        cols.append(0.4 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal(n))
    return np.stack(cols, axis=1).astype(np.float32)


def make_folder(root: Path, files: list = FILES) -> Path:
    """Write the test audio (and some non-audio files that must be skipped)."""
    for seed, (name, sr, ch, sec, subtype) in enumerate(files):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, _signal(sr, ch, sec, seed), sr, subtype=subtype)
    (root / "notes.txt").write_text("not audio")
    (root / ".hidden.wav").write_bytes(b"junk")
    return root


def run(args: list[str]):
    return invoke(*args)


def reference(path: Path, sr: int, mono: bool = True) -> np.ndarray:
    """The audio the extractor should see: soundfile decode, mean downmix, soxr HQ."""
    x, sr_in = sf.read(path, dtype="float32", always_2d=True)
    if mono:
        x = x.mean(axis=1, keepdims=True, dtype=np.float32)
    if sr_in != sr:
        x = soxr.resample(x, sr_in, sr, quality="HQ")
    return np.ascontiguousarray(x.T, dtype=np.float32)


def direct(config: dict, audio: np.ndarray) -> np.ndarray:
    """Features from calling the transform directly, time-major like the file."""
    with torch.no_grad():
        out = build(config)(torch.from_numpy(audio)).numpy()  # (C, bins, frames[, 2])
    return np.moveaxis(out, 2, 1)  # (C, frames, bins[, 2])


def assert_close(got: np.ndarray, want: np.ndarray, rtol: float = 1e-4) -> None:
    assert got.shape == want.shape
    scale = float(np.abs(want).max()) or 1.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder(tmp_path_factory.mktemp("audio"))


@pytest.fixture(scope="module")
def mel_file(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out") / "mel.h5"
    r = run(["extract", folder, out, "--config", "mel128", "--workers", "2", "--json"])
    assert r.exit_code == 0, r.stderr
    return out


def test_mel_every_file_present_and_equal_to_direct_transform(folder: Path, mel_file: Path):
    with open_features(mel_file) as ff:
        assert list(ff) == sorted(name for name, *_ in FILES)
        config = ff.config
        assert config["transform"] == "MelSpectrogram"
        for name, *_ in FILES:
            audio = reference(folder / name, 22050)
            feats = ff[name]
            assert feats.shape == (1 + audio.shape[1] // 512, 128)
            assert_close(feats, direct(config, audio)[0])
            # and librosa's own mel spectrogram: its defaults, but reflect padding as the preset
            ref = librosa.feature.melspectrogram(y=audio[0], sr=22050, n_fft=2048,
                                                 hop_length=512, n_mels=128, pad_mode="reflect")
            assert_close(feats, ref.T)


def test_metadata_and_attributes(folder: Path, mel_file: Path):
    with open_features(mel_file) as ff:
        a = ff.attrs
        assert a["layout_version"] == 2 and json.loads(a["features"]) == ["mel128"]
        assert ff.features == ["mel128"] and ff.feature == "mel128"
        assert a["transform"] == "MelSpectrogram" and a["scale"] == "linear"
        assert a["sr"] == 22050 and a["hop_length"] == 512 and a["n_bins"] == 128
        assert a["dtype"] == "float32" and a["compression"] == "lzf"
        assert len(a["config_hash"]) == 64
        assert json.loads(a["command_line"])[:2] == ["nnaudio", "extract"]
        assert a["package_version"] and a["torch_version"] and a["numpy_version"]
        module = ff.transform()
        centres = librosa.mel_frequencies(130, fmin=0.0, fmax=11025.0)[1:-1]  # Slaney
        np.testing.assert_allclose(ff.frequencies, centres, rtol=1e-6)
        np.testing.assert_allclose(a["frequencies"], module.frequencies())
        for name, sr, ch, sec, _ in FILES:
            row = ff.info(name)
            assert row["status"] == "ok" and row["reason"] == ""
            assert row["sr"] == sr and row["channels"] == ch
            assert row["samples"] == int(sr * sec)
            assert row["duration"] == pytest.approx(int(sr * sec) / sr)
            assert row["size"] == (folder / name).stat().st_size
            assert row["mtime"] == pytest.approx((folder / name).stat().st_mtime)
        data = ff.data
        assert data.chunks[1:] == (128,) and data.compression == "lzf"
        offsets = ff.offsets
        assert offsets[0] == 0 and offsets[-1] == data.shape[0] and np.all(np.diff(offsets) >= 0)
    assert not partial_path(mel_file).exists()


def test_deterministic_across_workers_and_batch_sizes(folder: Path, mel_file: Path, tmp_path):
    other = tmp_path / "w0.h5"
    r = run(["extract", folder, other, "-c", "mel128", "--workers", "0", "-q"])
    assert r.exit_code == 0, r.stderr
    small = tmp_path / "small.h5"
    r = run(["extract", folder, small, "-c", "mel128", "-j", "1", "--batch-seconds", "0.4", "-q"])
    assert r.exit_code == 0, r.stderr
    with open_features(mel_file) as a, open_features(other) as b, open_features(small) as c:
        assert list(a) == list(b) == list(c)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])  # bit-identical across --workers
            assert_close(c[key], a[key], rtol=1e-5)  # batch size: float32 round-off only


def test_complex_stft_keep_channels(folder: Path, tmp_path):
    out = tmp_path / "stft.h5"
    r = run([
        "extract", folder, out, "-c", "stft_complex", "--keep-channels", "--sr", "16000",
        "--set", "n_fft=512", "--set", "hop_length=128", "--compression", "gzip", "-q",
    ])
    assert r.exit_code == 0, r.stderr
    with open_features(out) as ff:
        assert ff.attrs["value_layout"] == "frames_channels_bins_reim"
        assert ff.config["params"]["n_fft"] == 512 and ff.config["params"]["sr"] == 16000
        for name, _, ch, _, _ in FILES:
            audio = reference(folder / name, 16000, mono=False)
            feats = ff[name]
            assert feats.shape == (1 + audio.shape[1] // 128, ch, 257, 2)
            want = np.moveaxis(direct(ff.config, audio), 0, 1)  # (frames, C, bins, 2)
            assert_close(feats, want)


def test_long_file_segments_equal_one_piece(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    long_sig = _signal(44100, 2, 6.0, 7)
    long_sig[:, 0] *= np.linspace(0.01, 1, long_sig.shape[0], dtype=np.float32)  # moving peak
    sf.write(src / "long.wav", long_sig, 44100, subtype="FLOAT")
    sf.write(src / "short.wav", _signal(22050, 1, 0.5, 3), 22050)
    for preset in ("mfcc", "mel128", "cqt84"):
        out = tmp_path / f"{preset}.h5"
        extra = ["--set", "fmin=65.41", "--set", "n_bins=48"] if preset == "cqt84" else []
        r = run([
            "extract", src, out, "-c", preset, *extra, "--segment-seconds", "0.7",
            "--batch-seconds", "1.1", "--keep-channels", "--json", "-q",
        ])
        assert r.exit_code == 0, r.stderr
        assert json.loads(r.stdout)["streamed_files"] == 1  # long.wav went through segments
        with open_features(out) as ff:
            audio = reference(src / "long.wav", 22050, mono=False)
            want = np.moveaxis(direct(ff.config, audio), 0, 1)
            assert ff["long.wav"].shape[0] > 10 * 0.7 * 22050 / 512 / 2
            assert_close(ff["long.wav"], want, rtol=2e-4)


def test_cqt_and_vqt_presets(folder: Path, tmp_path):
    for preset, rtol in (("cqt84", 1e-4), ("vqt", 1e-4)):
        out = tmp_path / f"{preset}.h5"
        r = run(["extract", folder, out, "-c", preset, "--set", "fmin=65.41", "--set",
                 "n_bins=60", "-q"])
        assert r.exit_code == 0, r.stderr
        with open_features(out) as ff:
            assert ff.attrs["n_bins"] == 60
            for name, *_ in FILES[:3]:
                want = direct(ff.config, reference(folder / name, 22050))[0]
                assert_close(ff[name], want, rtol=rtol)


def test_unreadable_file_exit_3(folder: Path, tmp_path):
    src = tmp_path / "in"
    make_folder(src, FILES[:2])
    (src / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    tiny = np.random.default_rng(0).standard_normal(100).astype(np.float32)
    sf.write(src / "tiny.wav", tiny, 22050, subtype="FLOAT")  # shorter than the reflect pad
    out = tmp_path / "out.h5"
    r = run(["extract", src, out, "-c", "mel128", "--json", "-j", "1"])
    assert r.exit_code == 3
    assert "broken.wav" in r.stderr
    summary = json.loads(r.stdout)
    assert summary["failed"] == 1 and summary["ok"] == 3 and summary["exit_code"] == 3
    assert {f["key"] for f in summary["failures"]} == {"broken.wav"}
    with open_features(out) as ff:
        assert set(ff.failed) == {"broken.wav"}
        assert "broken.wav" not in ff and len(ff) == 3
        with pytest.raises(KeyError, match="failed"):
            ff["broken.wav"]
        assert ff.info("broken.wav")["status"] == "failed"
        # a clip shorter than n_fft // 2 is reflected back and forth, as the core does
        assert_close(ff["tiny.wav"], direct(ff.config, tiny[None])[0])
    r = run(["info", out])
    assert r.exit_code == 0 and "broken.wav" in r.stdout and "1 failed" in r.stdout
    # without centre padding a clip shorter than one frame cannot be computed: a failed row
    out2 = tmp_path / "flat.h5"
    r = run(["extract", src, out2, "-c", "mel128", "--set", "center=false", "--json", "-j", "1"])
    assert r.exit_code == 3
    with open_features(out2) as ff:
        assert set(ff.failed) == {"broken.wav", "tiny.wav"}
        assert "needs at least 2048" in ff.failed["tiny.wav"]


def test_json_summary(folder: Path, tmp_path):
    out = tmp_path / "mfcc.h5"
    r = run(["extract", folder, out, "-c", "mfcc", "--json", "-q"])
    assert r.exit_code == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["files"] == len(FILES) and s["ok"] == len(FILES) and s["failed"] == 0
    assert s["audio_seconds"] == pytest.approx(sum(f[3] for f in FILES), abs=1e-3)
    for key in ("wall_seconds", "audio_seconds_per_second", "files_per_second", "failures"):
        assert key in s
    with open_features(out) as ff:
        for name, *_ in FILES[:2]:
            assert_close(ff[name], direct(ff.config, reference(folder / name, 22050))[0])


def test_info_command(mel_file: Path):
    r = run(["info", mel_file])
    assert r.exit_code == 0
    for text in ("MelSpectrogram", "22050 Hz", "hop 512", "5 ok", "mel128"):
        assert text in r.stdout
    r = run(["info", mel_file, "--json"])
    desc = json.loads(r.stdout)
    assert desc["ok"] == len(FILES) and desc["config"]["params"]["n_mels"] == 128


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "readme.md").write_text("x")
    r = run(["extract", tmp_path / "in", tmp_path / "o.h5", "-c", "mel128"])
    assert r.exit_code == 1
    assert "no audio files" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.h5").exists() and not partial_path(tmp_path / "o.h5").exists()


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (["--bogus"], 2, "--bogus"),
        (["--set", "n_melz=64"], 2, "n_mels"),
        (["--set", "n_mels=many"], 2, "expected an integer"),
        (["--set", "novalue"], 2, "key=value"),
        (["--transform", "wavelet"], 2, "MelSpectrogram"),
        (["--device", "gpu"], 2, "cuda:N"),
        (["--compression", "zstd"], 2, "lzf"),
        (["--set", "pad_mode=wrap"], 1, "'reflect', 'constant'"),
        (["--config", "nope"], 2, "mel128"),
    ],
)
def test_bad_flags_are_one_line_errors(folder: Path, tmp_path, args, code, needle):
    r = run(["extract", folder, tmp_path / "o.h5", "-c", "mel128", *args])
    assert r.exit_code == code, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnaudio: error:"), r.stderr
    assert needle in lines[0]
    assert "Traceback" not in r.output
    assert not (tmp_path / "o.h5").exists()


def test_bad_config_file_key_is_exit_1(folder: Path, tmp_path):
    preset = tmp_path / "bad.toml"
    preset.write_text('transform = "mel"\nsr = 16000\n[params]\nn_mel = 40\n')
    r = run(["extract", folder, tmp_path / "o.h5", "--config", preset])
    assert r.exit_code == 1
    line = r.stderr.strip()
    assert "\n" not in line and "'n_mel'" in line and "n_mels" in line
    preset.write_text('transform = "mel"\nrate = 16000\n')
    r = run(["extract", folder, tmp_path / "o.h5", "--config", preset])
    assert r.exit_code == 1 and "'rate'" in r.stderr and "valid: transform, sr" in r.stderr


def test_unavailable_device_and_existing_output(folder: Path, mel_file: Path, tmp_path):
    if not torch.cuda.is_available():
        r = run(["extract", folder, tmp_path / "o.h5", "-c", "mel128", "--device", "cuda:0"])
        assert r.exit_code == 1 and "CUDA is not available" in r.stderr
    r = run(["extract", folder, mel_file, "-c", "mel128"])
    assert r.exit_code == 2 and "--overwrite" in r.stderr


def test_python_m_entry_point():
    r = subprocess.run(
        [sys.executable, "-m", "nnaudio_cli", "extract", "--help"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    assert r.returncode == 0 and "--batch-seconds" in r.stdout


def test_output_is_valid_hdf5_for_plain_h5py(mel_file: Path):
    with h5py.File(mel_file, "r") as f:
        keys = [k.decode() if isinstance(k, bytes) else k for k in f["index/key"][()]]
        off = f["features/mel128/offsets"][()]
        i = keys.index("tone_44k.wav")
        block = f["features/mel128/data"][off[i] : off[i + 1]]
        assert block.dtype == np.float32 and f["index/stored_channels"][i] == 1
    with open_features(mel_file) as ff:
        assert block.shape == (ff.info("tone_44k.wav")["frames"], 128)


def test_one_transform_call_per_batch(folder: Path, tmp_path, monkeypatch):
    """Clips are computed together: one call of the transform per planned batch."""
    from nnaudio_cli.extract.compute import Engine

    calls: list[int] = []
    real = Engine.forward_chunks

    def counting(self, x):
        calls.append(int(x.shape[0]))
        return real(self, x)

    monkeypatch.setattr(Engine, "forward_chunks", counting)
    out = tmp_path / "o.h5"
    r = run(["extract", folder, out, "-c", "mel128", "--workers", "0", "--json", "-q"])
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert len(calls) == summary["batches"] < summary["ok"]
    assert max(calls) > 1  # several clips' chunks in one tensor
