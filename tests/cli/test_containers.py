"""Audio in FFmpeg containers (.m4a .mp4 .webm .mkv .wma .aac ...), decoded with PyAV.

Every file is made here with PyAV's own encoders (AAC, Opus, WMA, AC-3, FLAC-in-Ogg) from a
generated two-channel signal; no downloads. The reference is the PCM PyAV decodes,
independently of the extractor (``av.open`` → ``AudioResampler`` to float), through the
same downmix and soxr resampling, and the transform called directly.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from support import invoke

from nnaudio_cli.extract import audio, containers
from nnaudio_cli.extract.discover import find_audio, read_header
from nnaudio_cli.featurefile.reader import open_features
from nnaudio_core.features import build

av = pytest.importorskip("av")

SR = 16000  # mel64_16k

# name, codec, rate, muxer, with a video stream
FILES = [
    ("aac.m4a", "aac", 44100, None, False),
    ("clip.mp4", "aac", 44100, None, True),
    ("clip.mov", "aac", 22050, None, True),
    ("opus.webm", "libopus", 48000, None, False),
    ("voice.opus", "libopus", 48000, None, False),
    ("song.wma", "wmav2", 44100, None, False),
    ("film.mkv", "ac3", 48000, None, False),
    ("stem.mka", "aac", 44100, "matroska", False),
    ("podcast.aac", "aac", 44100, "adts", False),
    ("flac_in.ogg", "flac", 32000, "ogg", False),  # Ogg FLAC: libsndfile refuses it
]


def signal(rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Two different channels (a chord left, a sweep right), shape (2, n), peak 0.5."""
    t = np.arange(int(rate * seconds)) / rate
    rng = np.random.default_rng(seed)
    left = 0.25 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1250 * t)
    right = 0.3 * np.sin(2 * np.pi * (300 + 900 * t) * t) + 0.02 * rng.standard_normal(t.size)
    return np.stack([left, right]).astype(np.float32)


def pyav_pcm(path: Path) -> tuple[np.ndarray, int]:
    """The first audio stream decoded by PyAV, float32 (samples, channels), and its rate."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        res = av.AudioResampler(format="fltp")
        blocks = [f.to_ndarray() for fr in c.decode(stream) for f in res.resample(fr)]
        blocks += [f.to_ndarray() for f in res.resample(None)]
        return np.concatenate(blocks, axis=1).T.astype(np.float32), stream.rate


def reference(path: Path, config: dict) -> np.ndarray:
    """Features of PyAV's PCM: mean downmix, soxr HQ to 16 kHz, the transform directly."""
    x, rate = pyav_pcm(path)
    x = x.mean(axis=1, keepdims=True, dtype=np.float32)
    y = soxr.resample(x, rate, SR, quality="HQ")
    with torch.no_grad():
        out = build(config)(torch.from_numpy(np.ascontiguousarray(y.T))).numpy()
    return np.moveaxis(out, 2, 1)[0]


def assert_near(got: np.ndarray, want: np.ndarray, of_peak: float = 1e-5) -> None:
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=of_peak * float(np.abs(want).max()))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("containers")
    for seed, (name, codec, rate, mux, video) in enumerate(FILES):
        containers.write_audio(root / name, signal(rate, 1.2, seed), rate, codec, mux, video)
    sf.write(root / "plain.wav", signal(22050, 0.8).T, 22050)
    (root / "notes.txt").write_text("not audio")
    return root


@pytest.fixture(scope="module")
def extracted(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("out") / "mel.h5"
    r = invoke("extract", folder, out, "-c", "mel64_16k", "--workers", "2", "--json", "-q")
    assert r.exit_code == 0, r.output
    return out, json.loads(r.stdout)


def test_every_container_is_taken_and_decoded(folder: Path, extracted):
    out, summary = extracted
    names = sorted([f[0] for f in FILES] + ["plain.wav"])
    assert find_audio(folder) == names
    assert summary["ok"] == len(names) and summary["failed"] == 0
    with open_features(out) as ff:
        assert list(ff) == names
        for name, _, rate, _, _ in FILES:
            assert_near(ff[name], reference(folder / name, ff.config))
            row = ff.info(name)
            assert row["sr"] == rate and row["channels"] == 2, name


def test_libsndfile_still_decodes_what_it_reads(folder: Path):
    f, _ = audio.open_sound(folder / "plain.wav")
    assert isinstance(f, sf.SoundFile)
    f.close()
    g, _ = audio.open_sound(folder / "flac_in.ogg")  # refused by libsndfile: FFmpeg
    assert isinstance(g, containers.AvSound) and g.format == "FLAC"
    g.close()


def test_a_video_stream_changes_nothing(folder: Path, tmp_path: Path):
    """clip.mp4's AAC packets copied (not re-encoded) into an audio-only .m4a give the same
    features: the video stream is neither decoded nor mixed in."""
    src = tmp_path / "in"
    src.mkdir()
    with av.open(str(folder / "clip.mp4")) as c, av.open(str(src / "alone.m4a"), "w") as o:
        assert len(c.streams.video) == 1
        a = c.streams.audio[0]
        copy = o.add_stream_from_template(a)
        for packet in c.demux(a):
            if packet.dts is None:
                continue
            packet.stream = copy
            o.mux(packet)
    os.symlink(folder / "clip.mp4", src / "clip.mp4")
    out = tmp_path / "o.h5"
    r = invoke("extract", src, out, "-c", "mel64_16k", "--workers", "0", "-q")
    assert r.exit_code == 0, r.output
    with open_features(out) as ff:
        assert_near(ff["clip.mp4"], ff["alone.m4a"], 1e-6)


def test_header_is_read_from_the_container(folder: Path):
    h = read_header(folder / "aac.m4a")  # stream duration x time base: 1.2 s at 44.1 kHz
    assert (h.sr, h.channels, h.samples) == (44100, 2, int(1.2 * 44100))
    h = read_header(folder / "opus.webm")  # Matroska: the container's duration (ms)
    assert (h.sr, h.channels) == (48000, 2) and abs(h.samples - 1.2 * 48000) < 0.02 * 48000


@pytest.mark.parametrize("name", ["aac.m4a", "opus.webm", "song.wma", "film.mkv"])
def test_a_start_frame_gives_exactly_the_samples_of_a_whole_decode(folder: Path, name: str):
    whole, _ = audio.open_sound(folder / name)
    with whole:
        x = whole.read()
    for start in (700, 9000, 30000):
        f, reason = audio.open_sound(folder / name, start=start)
        assert f is not None, reason
        with f:
            assert f.tell() == start
            y = f.read(4000)
            assert f.tell() == start + 4000
        np.testing.assert_array_equal(y, x[start:start + 4000])


def test_fast_seek_in_mp4_agrees_on_tonal_audio(tmp_path: Path):
    tone = signal(44100, 2.0)[:1]  # the chord only: no noise for the codec to synthesise
    containers.write_audio(tmp_path / "t.m4a", tone, 44100, "aac")
    with containers.AvSound(str(tmp_path / "t.m4a")) as whole:
        x = whole.read()
    for start in (20000, 50000):
        with containers.AvSound(str(tmp_path / "t.m4a"), start, fast_seek=True) as f:
            y = f.read(4000)
        np.testing.assert_allclose(y, x[start:start + 4000], rtol=0, atol=1e-4)


def test_a_stop_frame_ends_the_stream(folder: Path):
    with containers.AvSound(str(folder / "aac.m4a"), 1000, 3000) as f:
        y = f.read()
        assert y.shape == (2000, 2) and f.exhausted
    with containers.AvSound(str(folder / "aac.m4a")) as f:
        np.testing.assert_array_equal(y, f.read()[1000:3000])


def test_long_container_is_streamed_and_equals_the_whole(tmp_path: Path):
    src = tmp_path / "in"
    src.mkdir()
    containers.write_audio(src / "long.m4a", signal(44100, 6.0, 3), 44100, "aac")
    out = tmp_path / "o.h5"
    r = invoke("extract", src, out, "-c", "mel64_16k", "--segment-seconds", "0.7",
               "--batch-seconds", "1.1", "--workers", "1", "--json", "-q")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["streamed_files"] == 1
    with open_features(out) as ff:
        assert_near(ff["long.m4a"], reference(src / "long.m4a", ff.config))


def test_damaged_containers_are_failed_rows_with_reasons(folder: Path, tmp_path: Path):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(1)
    (src / "garbage.m4a").write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    mkv = (folder / "film.mkv").read_bytes()
    (src / "cut.mkv").write_bytes(mkv[: len(mkv) // 2])
    m4a = (folder / "aac.m4a").read_bytes()
    (src / "cut.m4a").write_bytes(m4a[: len(m4a) // 2])  # its index (moov) is at the end
    webm = bytearray((folder / "opus.webm").read_bytes())
    for i in rng.integers(1000, len(webm) - 1000, 300):
        webm[i] ^= 0xFF
    (src / "flipped.webm").write_bytes(bytes(webm))
    os.symlink(folder / "aac.m4a", src / "good.m4a")
    with av.open(str(src / "silent_film.mp4"), "w") as o:  # video only
        v = o.add_stream("mpeg4", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            for p in v.encode(frame):
                o.mux(p)
        for p in v.encode(None):
            o.mux(p)
    r = invoke("extract", src, tmp_path / "o.h5", "-c", "mel64_16k", "--json", "-q")
    assert r.exit_code == 3, r.output
    reasons = {f["key"]: f["reason"] for f in json.loads(r.stdout)["failures"]}
    assert set(reasons) == {"garbage.m4a", "cut.mkv", "cut.m4a", "flipped.webm",
                            "silent_film.mp4"}
    assert reasons["silent_film.mp4"] == "no audio stream (it holds video)"
    assert reasons["garbage.m4a"].startswith("not an audio file (ffmpeg: ")
    assert reasons["cut.m4a"].startswith("not an audio file (ffmpeg: ")
    assert reasons["cut.mkv"].startswith("truncated: AC3 stream ended after "), reasons
    assert reasons["flipped.webm"].startswith(("truncated: OPUS", "corrupt OPUS")), reasons


def test_without_pyav_a_container_is_a_failed_row_naming_the_extra(folder, monkeypatch):
    monkeypatch.setattr(containers, "available", lambda: False)
    r = audio.decode_task(str(folder / "aac.m4a"), "aac.m4a", SR, True, sys.maxsize)
    assert r.status == "failed"
    assert r.reason == "decoding .m4a needs FFmpeg (PyAV): pip install 'nnaudio-cli[containers]'"
    assert audio.decode_task(str(folder / "plain.wav"), "p", SR, True, sys.maxsize).status == "ok"
    r = audio.decode_task(str(folder / "flac_in.ogg"), "f", SR, True, sys.maxsize)
    assert r.status == "failed" and r.reason.startswith("not an audio file (")
    assert r.reason.endswith("; FFmpeg may read it: pip install 'nnaudio-cli[containers]'")
