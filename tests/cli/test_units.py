"""Unit tests of the extractor's parts: resampler, framing, batching, config, discovery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from support import tone

from nnaudio_cli import config
from nnaudio_cli.extract import audio, resample
from nnaudio_cli.extract.batch import (
    Batch,
    ClipFramer,
    Piece,
    choose_chunk_frames,
    pack,
    plan_batches,
)
from nnaudio_cli.extract.compute import DeviceRunner, Engine
from nnaudio_cli.extract.discover import find_audio
from nnaudio_core.features import build

REPO = Path(__file__).resolve().parents[2]


def _rms_db(x: np.ndarray) -> float:
    core = x[len(x) // 8 : -len(x) // 8]  # away from the edges
    return 20 * np.log10(np.sqrt(np.mean(core.astype(np.float64) ** 2)) + 1e-30)


# --- resampler -------------------------------------------------------------------------


@pytest.mark.parametrize("freq", [100.0, 1000.0, 6000.0, 7000.0])
def test_resampler_passband_keeps_amplitude(freq):
    y = resample.prepare(tone(48000, 1.0, freq, amp=1.0, channels=1), 48000, 16000, mono=True)[0]
    assert y.shape[0] == 16000
    assert abs(_rms_db(y) - _rms_db(tone(16000, 1.0, freq, amp=1.0, channels=1))) < 0.1  # 0.1 dB


@pytest.mark.parametrize("freq", [8050.0, 9000.0, 12000.0, 20000.0])
def test_resampler_stopband_attenuates_above_new_nyquist(freq):
    # soxr HQ measures > 130 dB here; 7.3-8 kHz is its transition band (0.91-1.0 Nyquist)
    y = resample.prepare(tone(48000, 1.0, freq, amp=1.0, channels=1), 48000, 16000, mono=True)[0]
    assert _rms_db(y) - _rms_db(tone(48000, 1.0, freq, amp=1.0, channels=1)) < -60.0


def test_resampler_transition_band():
    y = resample.prepare(tone(48000, 1.0, 7900.0, amp=1.0, channels=1), 48000, 16000, mono=True)[0]
    assert _rms_db(y) - _rms_db(tone(48000, 1.0, 7900.0, amp=1.0, channels=1)) < -40.0


def test_stream_equals_one_shot(tmp_path):
    x = np.random.default_rng(1).standard_normal((44100 * 3 + 17, 2)).astype(np.float32) * 0.2
    sf.write(tmp_path / "a.wav", x, 44100, subtype="FLOAT")
    whole = resample.prepare(x, 44100, 16000, mono=False)
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
    runner = DeviceRunner(eng)
    x = np.random.default_rng(0).standard_normal((2, 5003)).astype(np.float32)
    framer = ClipFramer(eng.n_fft, eng.hop, eng.pad, eng.pad_mode, max_frames=7)
    rng = np.random.default_rng(1)
    pos = 0
    pieces: list[Piece] = []
    while pos < x.shape[1]:
        n = int(rng.integers(1, 900))
        last = pos + n >= x.shape[1]
        for samples, k in framer.push(x[:, pos : pos + n], last):
            pieces.append(Piece(0, samples, k, False))
        pos += n
    out: list = []
    for start in range(0, len(pieces), 5):  # batches of several pieces, one call each
        packed = pack(pieces[start : start + 5], eng.n_fft, eng.hop)
        out += packed.unpack(runner.submit(packed.chunks).result())
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


@pytest.mark.parametrize("samples", [1, 2, 700, 1024, 1025, 5000])
def test_short_clips_padded_as_the_core_pads_them(samples):
    """Clips shorter than the reflect pad are reflected back and forth (numpy's rule), as the
    core does; the engine computes them and its frames equal the core's."""
    cfg = {"transform": "MelSpectrogram", "params": {"n_fft": 2048, "n_mels": 32}}
    eng = Engine(cfg, torch.device("cpu"))
    assert eng.check_length(samples) is None
    x = np.random.default_rng(samples).standard_normal((1, samples)).astype(np.float32)
    framer = ClipFramer(eng.n_fft, eng.hop, eng.pad, eng.pad_mode, max_frames=1000)
    pieces = [Piece(0, s, k, True) for s, k in framer.push(x, True)]
    packed = pack(pieces, eng.n_fft, eng.hop)
    got = np.concatenate(packed.unpack(DeviceRunner(eng).submit(packed.chunks).result()), 1)
    with torch.no_grad():
        want = np.moveaxis(build(eng.config)(torch.from_numpy(x)).numpy(), 2, 1)
    assert got.shape == want.shape == (1, 1 + samples // 512, 32)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


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


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.toml")), ids=lambda p: p.stem)
def test_engine_builds_once_and_stores_the_configured_transform(path, monkeypatch):
    """The engine builds one module (the center=False twin) and records the configuration
    of the transform as configured, equal to building it directly."""
    cfg = config.resolve(str(path)).as_core_config()
    want = build(cfg).get_config()
    from nnaudio_cli.extract import compute

    calls = []
    real = compute.build
    monkeypatch.setattr(compute, "build", lambda c: calls.append(c) or real(c))
    eng = Engine(cfg, torch.device("cpu"))
    assert len(calls) == 1
    assert eng.config == want
    # every preset is frame-exact but ast128, which pads or cuts each clip to 1024 frames
    assert eng.mode == ("whole" if cfg["transform"] == "ASTFbank" else "frames")


def test_batch_plan_is_fixed_by_durations_and_covers_every_input():
    costs = [40, 30, 50, 0, 10, 500, 20, 90, 95, 5]
    plan = plan_batches(costs, limit=100, long_limit=200)
    assert plan == [
        Batch((0, 1)), Batch((2, 3, 4)), Batch((5,), streamed=True), Batch((6,)),
        Batch((7,)), Batch((8, 9)),
    ]
    assert [i for b in plan for i in b.clips] == list(range(len(costs)))
    assert plan_batches(costs, 100, 200) == plan  # a pure function of its arguments
    assert all(sum(costs[i] for i in b.clips) <= 100 for b in plan if not b.streamed)
    # an input larger than a batch but not long is a batch of its own
    assert plan_batches([10, 150, 10], 100, 200) == [Batch((0,)), Batch((1,)), Batch((2,))]


def test_decoder_pool_in_order_and_survives_a_dead_worker(tmp_path):
    """Results come in input order whichever worker finishes first; a worker killed with
    SIGKILL fails the file it held, with a reason, and the others are decoded by a fresh one."""
    import os
    import signal

    from nnaudio_cli.extract.decode import DecoderPool, DecodeSettings, InlineDecoder, Job

    rng = np.random.default_rng(4)
    jobs = []
    for i in range(8):
        path = tmp_path / f"c{i}.wav"
        sf.write(path, 0.1 * rng.standard_normal(int(8000 * (0.2 + 0.1 * i))), 8000)
        jobs.append(Job(i, str(path), path.name, 1000))
    settings = DecodeSettings((16000.0,), True, "reject")
    want = [r.audio for _, r in InlineDecoder().decode(jobs, settings)]
    pool = DecoderPool(2)
    try:
        os.kill(pool.workers[0].proc.pid, signal.SIGKILL)
        got = list(pool.decode(jobs, settings, budget=10_000))
    finally:
        pool.close()
    assert [j.clip for j, _ in got] == list(range(8))
    assert got[0][1].status == "failed" and "died (signal 9)" in got[0][1].reason
    for (_, res), ref in zip(got[1:], want[1:], strict=True):
        assert res.status == "ok"
        np.testing.assert_array_equal(res.audio, ref)


def test_decoder_pool_many_small_jobs_do_not_deadlock(tmp_path):
    """1,200 tiny files through one worker with everything in flight: tasks fill the
    worker's input pipe while results fill its output pipe; the pool must never hold its
    lock while writing a task (it once did, and the 20,000-file run hung)."""
    import threading

    from nnaudio_cli.extract.decode import DecoderPool, DecodeSettings, Job

    path = tmp_path / "tiny.wav"
    sf.write(path, np.full(4000, 0.1, np.float32), 8000)  # ~16 kB per result
    jobs = [Job(i, str(path), f"k{i:04d}/" + "x" * 200, 256) for i in range(1200)]
    pool = DecoderPool(1)
    got: list = []
    t = threading.Thread(target=lambda: got.extend(
        pool.decode(jobs, DecodeSettings((8000.0,), True, "reject"), budget=1 << 30)), daemon=True)
    t.start()
    t.join(timeout=120)
    if t.is_alive():  # deadlocked: the pool's lock is stuck, so end its processes directly
        for w in pool.workers:
            w.proc.kill()
        pytest.fail(f"decoding stalled after {len(got)} of {len(jobs)} results")
    pool.close()
    assert [j.clip for j, _ in got] == list(range(1200))
    assert all(r.status == "ok" for _, r in got)


def test_decoder_warnings_reach_the_main_process(tmp_path, monkeypatch):
    """A warning raised inside a decoder process comes back with the result and is raised
    in the main process (where the CLI prints it as one line, or -q hides it), instead of
    going straight to the worker's stderr."""
    from nnaudio_cli.extract.decode import DecoderPool, DecodeSettings, Job

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import warnings\n"
        "import nnaudio_cli.extract.audio as a\n"
        "_orig = a.decode_task\n"
        "def _warn(*args):\n"
        "    warnings.warn('decoder says hello')\n"
        "    return _orig(*args)\n"
        "a.decode_task = _warn\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(site))
    path = tmp_path / "c.wav"
    sf.write(path, np.zeros(800, np.float32), 8000)
    pool = DecoderPool(1)
    try:
        with pytest.warns(UserWarning, match="c.wav: UserWarning: decoder says hello"):
            got = list(pool.decode([Job(0, str(path), "c.wav", 1)],
                                   DecodeSettings((8000.0,), True, "reject")))
    finally:
        pool.close()
    assert got[0][1].status == "ok" and "warnings" not in got[0][1].extra
