"""Unit tests of the extractor's parts: resampler, framing, batching, config, discovery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from nnaudio_cli import audio, config
from nnaudio_cli.batching import Batcher, Piece, choose_chunk_frames
from nnaudio_cli.discover import find_audio
from nnaudio_cli.engine import ClipFramer, Engine
from nnaudio_core.features import build

REPO = Path(__file__).resolve().parents[1]


def _sine(freq: float, sr: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return np.sin(2 * np.pi * freq * t).astype(np.float32)[:, None]


def _rms_db(x: np.ndarray) -> float:
    core = x[len(x) // 8 : -len(x) // 8]  # away from the edges
    return 20 * np.log10(np.sqrt(np.mean(core.astype(np.float64) ** 2)) + 1e-30)


# --- resampler -------------------------------------------------------------------------


@pytest.mark.parametrize("freq", [100.0, 1000.0, 6000.0, 7000.0])
def test_resampler_passband_keeps_amplitude(freq):
    y = audio.prepare(_sine(freq, 48000), 48000, 16000, mono=True)[0]
    assert y.shape[0] == 16000
    assert abs(_rms_db(y) - _rms_db(_sine(freq, 16000))) < 0.1  # within 0.1 dB


@pytest.mark.parametrize("freq", [8050.0, 9000.0, 12000.0, 20000.0])
def test_resampler_stopband_attenuates_above_new_nyquist(freq):
    # soxr HQ measures > 130 dB here; 7.3-8 kHz is its transition band (0.91-1.0 Nyquist)
    y = audio.prepare(_sine(freq, 48000), 48000, 16000, mono=True)[0]
    assert _rms_db(y) - _rms_db(_sine(freq, 48000)) < -60.0


def test_resampler_transition_band():
    y = audio.prepare(_sine(7900.0, 48000), 48000, 16000, mono=True)[0]
    assert _rms_db(y) - _rms_db(_sine(7900.0, 48000)) < -40.0


def test_stream_equals_one_shot(tmp_path):
    x = np.random.default_rng(1).standard_normal((44100 * 3 + 17, 2)).astype(np.float32) * 0.2
    sf.write(tmp_path / "a.wav", x, 44100, subtype="FLOAT")
    whole = audio.prepare(x, 44100, 16000, mono=False)
    info = audio.SourceInfo(key="a.wav")
    blocks = list(audio.stream_file(str(tmp_path / "a.wav"), info, 16000, False, block=10000))
    assert blocks[-1][1] and not any(last for _, last in blocks[:-1])
    np.testing.assert_array_equal(np.concatenate([b for b, _ in blocks], axis=1), whole)
    assert info.samples == x.shape[0]


def test_decode_task_reports_long_and_failed(tmp_path):
    sf.write(tmp_path / "a.flac", np.zeros((8000, 2), np.float32), 8000)
    res = audio.decode_task(str(tmp_path / "a.flac"), "a.flac", 16000, True, 10**9)
    assert res.status == "ok" and res.audio.shape == (1, 16000)
    assert res.info.sr == 8000 and res.info.channels == 2 and res.info.samples == 8000
    res = audio.decode_task(str(tmp_path / "a.flac"), "a.flac", 16000, True, 1000)
    assert res.status == "long" and res.audio is None
    (tmp_path / "b.wav").write_text("nope")
    res = audio.decode_task(str(tmp_path / "b.wav"), "b.wav", 16000, True, 10**9)
    assert res.status == "failed" and "\n" not in res.reason


# --- framing and batching ----------------------------------------------------------------


@pytest.mark.parametrize(
    "cfg",
    [
        {"transform": "STFT", "params": {"n_fft": 256, "hop_length": 64,
                                         "output_format": "Complex", "sr": 8000}},
        {"transform": "STFT", "params": {"n_fft": 255, "hop_length": 100, "pad_mode": "constant",
                                         "output_format": "Magnitude", "sr": 8000}},
        {"transform": "MelSpectrogram", "params": {"n_fft": 512, "hop_length": 128,
                                                   "n_mels": 40, "sr": 8000, "center": False}},
    ],
)
def test_framer_in_blocks_equals_whole_transform(cfg):
    eng = Engine(cfg, torch.device("cpu"))
    x = np.random.default_rng(0).standard_normal((2, 5003)).astype(np.float32)
    out: list = []
    batcher = Batcher(eng, 0.05, lambda piece, feats: out.append(feats))
    framer = ClipFramer(eng, max_frames=7)
    rng = np.random.default_rng(1)
    pos = 0
    while pos < x.shape[1]:
        n = int(rng.integers(1, 900))
        last = pos + n >= x.shape[1]
        for samples, k in framer.push(x[:, pos : pos + n], last):
            batcher.add(Piece(0, samples, k, False))
        pos += n
    batcher.flush()
    got = np.concatenate(out, axis=1)
    with torch.no_grad():
        want = np.moveaxis(build(cfg)(torch.from_numpy(x)).numpy(), 2, 1)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_chunk_choice_bounded_padding():
    same = np.full(100, 79)
    assert choose_chunk_frames(same, 3.0, 4096) == 79  # one chunk per clip, no padding
    mixed = np.array([5, 40, 3000, 17, 900])
    k = choose_chunk_frames(mixed, 3.0, 4096)
    padded = (np.ceil(mixed / k) * k).sum()
    assert padded - mixed.sum() <= len(mixed) * k  # at most one partial chunk per clip
    assert padded < 1.5 * mixed.sum()


def test_engine_too_short_reason_for_reflect_padding():
    eng = Engine({"transform": "MelSpectrogram", "params": {"n_fft": 2048}}, torch.device("cpu"))
    assert eng.check_length(1024) is not None and eng.check_length(1025) is None
    # the core itself now reflects repeatedly (numpy.pad(mode="reflect")) for short clips;
    # the engine still refuses them until its own centre padding follows that rule
    assert eng.transform(torch.zeros(1, 1024)).shape == (1, 128, 3)


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.toml")), ids=lambda p: p.stem)
def test_presets_load_and_build(path):
    cfg = config.resolve(str(path))
    module = build(cfg.as_core_config())
    assert module.sr == cfg.sr
    assert config.resolve(path.stem).params == cfg.params  # by name too


def test_required_presets_exist():
    names = {p.stem for p in (REPO / "configs").glob("*.toml")}
    assert {"stft", "mel128", "mfcc"} <= names


def test_set_coercion_and_precedence():
    cfg = config.resolve(
        "mel128", None, ["n_mels=64", "fmax=8000", "htk=true", "win_length=none", "sr=16000"]
    )
    assert cfg.params["n_mels"] == 64 and cfg.params["fmax"] == 8000.0
    assert cfg.params["htk"] is True and cfg.params["win_length"] is None
    assert cfg.sr == 16000 and cfg.params["sr"] == 16000
    assert config.resolve("mel128", sr=8000).sr == 8000  # --sr wins over everything
    assert config.resolve(None, "MFCC", ["n_mels=40"]).params["n_mels"] == 40  # via **kwargs
    assert config.resolve(None, "stft").transform == "STFT"
    assert config.resolve(None, "Mel").transform == "MelSpectrogram"


@pytest.mark.parametrize(
    "kwargs, needle, usage",
    [
        ({"transform": "mel", "overrides": ["n_mel=3"]}, "valid: ", True),
        ({"transform": "mel", "overrides": ["n_mels=1.5"]}, "expected an integer", True),
        ({"transform": "mel", "overrides": ["center=maybe"]}, "expected true or false", True),
        ({"transform": "istft"}, "unknown transform", True),
        ({}, "no transform", True),
    ],
)
def test_config_errors_name_the_key(kwargs, needle, usage):
    with pytest.raises(config.ConfigError, match=needle) as exc:
        config.resolve(**kwargs)
    assert exc.value.usage is usage and "\n" not in str(exc.value)


# --- discovery -----------------------------------------------------------------------------


def test_find_audio_sorted_recursive_case_insensitive(tmp_path):
    names = ["b.WAV", "a.flac", "sub/c.Ogg", "sub/z/d.mp3", "e.aiff", "f.oga", "x.txt",
             ".hid.wav", ".git/g.wav", "sub/B.wav"]
    for n in names:
        (tmp_path / n).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / n).write_bytes(b"")
    assert find_audio(tmp_path) == [
        "a.flac", "b.WAV", "e.aiff", "f.oga", "sub/B.wav", "sub/c.Ogg", "sub/z/d.mp3"
    ]
