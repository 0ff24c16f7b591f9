"""``nnaudio benchmark --frontends``: the model front ends against their references, side by
side in one run, on speech-like 16 kHz audio.

* ``fbank80`` and ``mfcc13_kaldi`` against ``kaldi-native-fbank`` in a loop over the clips
  (how it is used: one ``OnlineFbank`` per utterance);
* ``whisper80`` against ``transformers``' ``WhisperFeatureExtractor`` in batches (both pad
  or cut every clip to 30 s) and ``openai-whisper``'s ``log_mel_spectrogram`` in a loop;
* ``ast128`` against ``ASTFeatureExtractor`` in batches.

Ours run in batches of ``batch_size`` clips at the torch thread count given. A peer that is
not installed is skipped with a note. Times are the median of ``repeat`` passes; each row
says ``x real time`` and ``peer / ours`` (> 1: ours is faster).
"""

from __future__ import annotations

import importlib.util
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

SR = 16000


def speech_clips(seconds: float, clip_seconds: float, seed: int) -> list[np.ndarray]:
    """``seconds`` of speech-like audio at 16 kHz in clips of ``clip_seconds``: a glottal
    pulse train (100-220 Hz, drifting) through three formant resonators per syllable, with
    syllable envelopes and a little noise; float32 in [-0.5, 0.5]."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n_clip = max(1, int(round(clip_seconds * SR)))
    n_clips = max(1, int(round(seconds / clip_seconds)))
    formants = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480))
    clips = []
    for _ in range(n_clips):
        f0 = rng.uniform(100, 220) * (1 + 0.1 * np.sin(np.linspace(0, 6, n_clip)))
        phase = np.cumsum(2 * np.pi * f0 / SR)
        source = (np.sin(phase) > 0.95).astype(np.float64) + 0.02 * rng.standard_normal(n_clip)
        out = np.zeros(n_clip)
        syllable = int(0.2 * SR)
        for start in range(0, n_clip, syllable):
            seg = source[start : start + syllable]
            for f in formants[rng.integers(len(formants))]:
                r = np.exp(-np.pi * 80 / SR)
                seg = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * f / SR), r * r], seg)
            env = np.sin(np.pi * np.arange(seg.size) / syllable) ** 2
            out[start : start + seg.size] = seg * env
        clips.append((0.5 * out / max(1e-9, np.abs(out).max())).astype(np.float32))
    return clips


def _median_time(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _ours(preset: str, clips: list[np.ndarray], batch_size: int,
          **override: Any) -> Callable[[], Any]:
    import torch

    from nnaudio_cli.config import resolve
    from nnaudio_core.features import build

    cfg = resolve(preset).as_core_config()
    cfg["params"].update(override)
    module = build(cfg).eval()
    batches = [torch.from_numpy(np.stack(clips[i : i + batch_size]))
               for i in range(0, len(clips), batch_size)]

    def run() -> None:
        with torch.inference_mode():
            for b in batches:
                module(b)

    return run


def _knf_loop(clips: list[np.ndarray], mfcc: bool) -> Callable[[], Any]:
    import kaldi_native_fbank as knf

    def run() -> None:
        for y in clips:
            opts = knf.MfccOptions() if mfcc else knf.FbankOptions()
            opts.frame_opts.dither = 0.0
            if not mfcc:
                opts.mel_opts.num_bins = 80
            comp = (knf.OnlineMfcc if mfcc else knf.OnlineFbank)(opts)
            comp.accept_waveform(float(SR), y)
            comp.input_finished()
            np.stack([comp.get_frame(i) for i in range(comp.num_frames_ready)])

    return run


def _hf(name: str, clips: list[np.ndarray], batch_size: int) -> Callable[[], Any]:
    import transformers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fe = getattr(transformers, name)()

    def run() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i in range(0, len(clips), batch_size):
                fe(clips[i : i + batch_size], sampling_rate=SR, return_tensors="np")

    return run


def _whisper_loop(clips: list[np.ndarray]) -> Callable[[], Any]:
    import torch
    import whisper

    def run() -> None:
        for y in clips:
            whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(y)))

    return run


#: (front end, our preset, our overrides, peer name, module the peer needs, peer factory)
ROWS: list[tuple[str, str, dict[str, Any], str, str, Callable[..., Callable[[], Any]]]] = [
    ("fbank80", "fbank80", {}, "kaldi-native-fbank loop", "kaldi_native_fbank",
     lambda clips, bs: _knf_loop(clips, mfcc=False)),
    ("mfcc13_kaldi", "mfcc13_kaldi", {}, "kaldi-native-fbank loop", "kaldi_native_fbank",
     lambda clips, bs: _knf_loop(clips, mfcc=True)),
    ("whisper80 (30 s)", "whisper80", {"chunk_length": 30.0}, "transformers batches",
     "transformers", lambda clips, bs: _hf("WhisperFeatureExtractor", clips, bs)),
    ("whisper80 (30 s)", "whisper80", {"chunk_length": 30.0}, "openai-whisper loop",
     "whisper", lambda clips, bs: _whisper_loop(clips)),
    ("ast128", "ast128", {}, "transformers batches", "transformers",
     lambda clips, bs: _hf("ASTFeatureExtractor", clips, bs)),
]


def run_frontends(seconds: float, clip_seconds: float, batch_size: int, repeat: int,
                  threads: int | None, seed: int,
                  log: Callable[[str], None]) -> dict[str, Any]:
    """Time every row of :data:`ROWS`; returns the report (workload, rows, notes)."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    clips = speech_clips(seconds, clip_seconds, seed)
    audio = sum(c.size for c in clips) / SR
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    ours_cache: dict[tuple[str, str], float] = {}
    for name, preset, override, peer, needs, factory in ROWS:
        if importlib.util.find_spec(needs) is None:
            notes.append(f"{peer} ({needs}) is not installed: {name} row skipped")
            continue
        key = (preset, repr(sorted(override.items())))
        if key not in ours_cache:
            log(f"{name}: ours, {len(clips)} clips in batches of {batch_size}")
            ours_cache[key] = _median_time(_ours(preset, clips, batch_size, **override), repeat)
        log(f"{name}: {peer}")
        peer_s = _median_time(factory(clips, batch_size), repeat)
        ours_s = ours_cache[key]
        rows.append({"front_end": name, "peer": peer, "ours_s": round(ours_s, 4),
                     "peer_s": round(peer_s, 4), "ours_x_real_time": round(audio / ours_s, 1),
                     "peer_x_real_time": round(audio / peer_s, 1),
                     "peer_over_ours": round(peer_s / ours_s, 2)})
    return {
        "mode": "frontends",
        "workload": {"audio_seconds": round(audio, 1), "clips": len(clips),
                     "clip_seconds": clip_seconds, "sr": SR, "batch_size": batch_size,
                     "repeat": repeat, "threads": torch.get_num_threads(), "seed": seed},
        "rows": rows,
        "notes": notes,
    }


def render_frontends(report: dict[str, Any]) -> None:
    """The rows as a rich table."""
    from rich.console import Console
    from rich.table import Table

    w = report["workload"]
    table = Table(title=f"front ends: {w['audio_seconds'] / 3600:.2f} h of 16 kHz speech-like "
                        f"audio, {w['clips']} clips, batches of {w['batch_size']}, "
                        f"{w['threads']} threads")
    for col in ("front end", "peer", "ours s", "peer s", "ours x RT", "peer / ours"):
        table.add_column(col, justify="left" if col in ("front end", "peer") else "right")
    for r in report["rows"]:
        table.add_row(r["front_end"], r["peer"], f"{r['ours_s']:.3f}", f"{r['peer_s']:.3f}",
                      f"{r['ours_x_real_time']:.0f}", f"{r['peer_over_ours']:.2f}")
    console = Console()
    console.print(table)
    for note in report["notes"]:
        console.print(f"note: {note}")
