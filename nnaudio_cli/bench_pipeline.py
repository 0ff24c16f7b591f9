"""``nnaudio benchmark --pipeline``: the extract command against its own parts and a librosa loop.

For each preset, on one folder of audio files, in one run:

* **decode-only**: soundfile read + mono + soxr HQ resample of every file in one process
  (:func:`nnaudio_cli.audio.decode_task`, what the decoder workers run);
* **transform-only**: the extract compute stage alone on the decoded clips held in memory:
  the same batch plan, packing and transform call per batch (:mod:`nnaudio_cli.extract`),
  no decoding, no storage;
* **extract own clock**: ``nnaudio extract -c PRESET`` in a subprocess, its ``wall_seconds``
  (from the start of the run to the renamed output file);
* **whole command**: the same subprocess timed from outside (interpreter start-up, imports
  and exit included);
* **librosa loop**: ``librosa.load`` (soxr HQ) + the preset's librosa feature + one h5py
  dataset per file, file by file, in this process.

Ratios: ``own_over_parts = extract own / max(decode-only / workers, transform-only)`` (the
issue's bar: at most 1.3), ``librosa_over_own`` and ``librosa_over_command`` (how many times
faster than the loop), ``fixed_cost = whole command - own clock``. Medians of ``repeat``
passes; the thread count is the one ``extract`` uses unless ``--threads`` is given.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nnaudio_cli.errors import CliError

PRESETS = ("mel128", "cqt84", "stft", "mfcc")


class PipelineError(CliError, RuntimeError):
    """The pipeline benchmark cannot run as asked (one line)."""


def _librosa_feature(preset: str, params: dict[str, Any], sr: float) -> Callable[[Any], Any]:
    """The preset's feature as librosa computes it (same parameters)."""
    import librosa

    p = params
    if preset == "mel128":
        return lambda y: librosa.feature.melspectrogram(
            y=y, sr=sr, n_fft=p["n_fft"], hop_length=p["hop_length"], n_mels=p["n_mels"],
            fmin=p.get("fmin", 0.0), power=p.get("power", 2.0), center=True,
            pad_mode=p.get("pad_mode", "reflect"))
    if preset == "mfcc":
        if p.get("top_db", 80.0) != 80.0:
            raise PipelineError("the librosa loop computes MFCC with top_db=80 only")
        return lambda y: librosa.feature.mfcc(  # power_to_db inside uses top_db=80
            y=y, sr=sr, n_mfcc=p["n_mfcc"], n_mels=p["n_mels"], n_fft=p["n_fft"],
            hop_length=p["hop_length"], center=True, pad_mode=p.get("pad_mode", "reflect"))
    if preset == "stft":
        return lambda y: np.abs(librosa.stft(
            y, n_fft=p["n_fft"], hop_length=p["hop_length"], center=True,
            pad_mode=p.get("pad_mode", "reflect")))
    if preset == "cqt84":
        return lambda y: np.abs(librosa.cqt(
            y, sr=sr, hop_length=p["hop_length"], fmin=p["fmin"], n_bins=p["n_bins"],
            bins_per_octave=p.get("bins_per_octave", 12), tuning=0.0,
            pad_mode=p.get("pad_mode", "constant")))
    raise PipelineError(f"no librosa equivalent for preset {preset!r}")


def librosa_loop(paths: list[str], keys: list[str], preset: str, params: dict[str, Any],
                 sr: float, out: Path) -> float:
    """Seconds for ``librosa.load`` + feature + h5py, file by file."""
    import h5py
    import librosa

    feature = _librosa_feature(preset, params, sr)
    feature(librosa.load(paths[0], sr=sr, mono=True)[0])  # warm-up (numba, FFT plans)
    t0 = time.perf_counter()
    with h5py.File(out, "w") as h5:
        for path, key in zip(paths, keys, strict=True):
            y, _ = librosa.load(path, sr=sr, mono=True)
            h5.create_dataset(key, data=np.ascontiguousarray(feature(y).T, dtype=np.float32))
    return time.perf_counter() - t0


def decode_only(paths: list[str], keys: list[str], sr: float) -> tuple[float, list[Any]]:
    """Seconds to decode + resample every file in this process, and the results."""
    from nnaudio_cli.audio import decode_task

    t0 = time.perf_counter()
    res = [decode_task(p, k, sr, True, sys.maxsize) for p, k in zip(paths, keys, strict=True)]
    return time.perf_counter() - t0, res


def transform_only(decoded: list[Any], config: dict[str, Any], device: Any,
                   batch_seconds: float) -> float:
    """Seconds of the extract compute stage alone (plan, pack, one call per batch)."""
    from nnaudio_cli.extract.batch import ClipFramer, Piece, pack, plan_batches
    from nnaudio_cli.extract.compute import DeviceRunner, Engine

    eng = Engine(config, device)
    runner = DeviceRunner(eng)
    clips = [r.audio for r in decoded if r.audio is not None]
    plan = plan_batches([c.shape[0] * c.shape[1] for c in clips],
                        int(batch_seconds * eng.sr), 1 << 62)
    big = 1 << 40

    def one_pass() -> None:
        pending = None
        for b in plan:
            pieces = []
            for i in b.clips:
                fr = ClipFramer(eng.n_fft, eng.hop, eng.pad, eng.pad_mode, big)
                pieces += [Piece(i, s, k, True) for s, k in fr.push(clips[i], True)]
            packed = pack(pieces, eng.n_fft, eng.hop)
            handle = runner.submit(packed.chunks)
            if pending is not None:
                pending[0].unpack(pending[1].result())
            pending = (packed, handle)
        if pending is not None:
            pending[0].unpack(pending[1].result())

    one_pass()  # warm-up
    t0 = time.perf_counter()
    one_pass()
    return time.perf_counter() - t0


def run_command(folder: Path, out: Path, preset: str, workers: int, device: str,
                threads: int | None) -> tuple[float, dict[str, Any]]:
    """``nnaudio extract`` in a subprocess: (whole-command seconds, its JSON summary)."""
    cmd = [sys.executable, "-m", "nnaudio_cli", "extract", str(folder), str(out), "-c", preset,
           "--workers", str(workers), "--device", device, "--overwrite", "--json", "-q"]
    if threads:
        cmd += ["--threads", str(threads)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 3):
        last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise PipelineError(f"nnaudio extract failed (exit {proc.returncode}): {last}")
    return wall, json.loads(proc.stdout)


def run_pipeline(
    folder: Path | None,
    write_clips: Callable[[Path], None],
    presets: list[str],
    workers: int,
    device: Any,
    threads: int | None,
    repeat: int,
    log: Callable[[str], None],
    librosa: bool = True,
) -> dict[str, Any]:
    """Measure every column of the module docstring for each preset (see there)."""
    import torch

    from nnaudio_cli.config import resolve
    from nnaudio_cli.extract import default_threads
    from nnaudio_cli.extract.discover import find_audio

    tmp = Path(tempfile.mkdtemp(prefix="nnaudio-bench-"))
    n_threads = threads or default_threads(device)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        generated = folder is None
        if folder is None:
            folder = tmp / "audio"
            log(f"pipeline: writing the synthetic clips as WAV files to {folder}")
            write_clips(folder)
        keys = find_audio(folder)
        if not keys:
            raise PipelineError(f"no audio files under {folder}")
        paths = [str(folder / k) for k in keys]
        rows = []
        for preset in presets:
            cfg = resolve(preset)
            config = cfg.as_core_config()
            sr = float(cfg.sr)
            log(f"pipeline {preset}: decode-only, {len(paths)} files")
            dec_times = []
            for _ in range(repeat):
                seconds, decoded = decode_only(paths, keys, sr)
                dec_times.append(seconds)
            audio_s = sum(r.audio.shape[1] / sr for r in decoded if r.audio is not None)
            log(f"pipeline {preset}: transform-only ({n_threads} thread(s))")
            trans = [transform_only(decoded, config, device, 60.0) for _ in range(repeat)]
            del decoded
            log(f"pipeline {preset}: nnaudio extract -c {preset} --workers {workers}")
            cmd = [run_command(folder, tmp / f"{preset}.h5", preset, workers, str(device),
                               threads) for _ in range(repeat)]
            loop = []
            if librosa:
                log(f"pipeline {preset}: librosa loop")
                loop = [librosa_loop(paths, keys, preset, dict(config["params"]), sr,
                                     tmp / f"{preset}-librosa.h5") for _ in range(repeat)]
            d = statistics.median(dec_times)
            t = statistics.median(trans)
            own = statistics.median([s["wall_seconds"] for _, s in cmd])
            whole = statistics.median([w for w, _ in cmd])
            lib = statistics.median(loop) if loop else None
            parts = max(d / max(workers, 1), t)
            rows.append({
                "preset": preset,
                "files": len(paths),
                "audio_seconds": round(audio_s, 3),
                "decode_seconds": d,
                "transform_seconds": t,
                "extract_seconds": own,
                "command_seconds": whole,
                "librosa_loop_seconds": lib,
                "own_over_parts": own / parts,
                "fixed_cost_seconds": whole - own,
                "librosa_over_own": lib / own if lib else None,
                "librosa_over_command": lib / whole if lib else None,
                "extract_seconds_all": [s["wall_seconds"] for _, s in cmd],
                "command_seconds_all": [w for w, _ in cmd],
                "batches": cmd[-1][1].get("batches"),
            })
        return {
            "input": None if generated else str(folder),
            "generated": generated,
            "files": len(paths),
            "audio_seconds": rows[0]["audio_seconds"] if rows else 0.0,
            "workers": workers,
            "threads": n_threads,
            "device": str(device),
            "repeat": repeat,
            "definition": __doc__.split("Ratios: ", 1)[1].split("\n\n")[0].replace("\n", " "),
            "results": rows,
        }
    finally:
        torch.set_num_threads(old_threads)
        shutil.rmtree(tmp, ignore_errors=True)


def render(pipe: dict[str, Any], console: Any) -> None:
    """The pipeline section as a rich table."""
    from rich.table import Table

    t = Table(title=(f"nnaudio extract vs its parts: {pipe['files']} files, "
                     f"{pipe['workers']} worker(s), {pipe['threads']} thread(s), "
                     f"{pipe['device']}, median of {pipe['repeat']}"))
    for col in ("preset", "decode-only", "transform-only", "extract (own)", "whole command",
                "librosa loop", "own/parts", "x librosa (own)", "x librosa (cmd)", "fixed"):
        t.add_column(col, justify="left" if col == "preset" else "right")

    def s(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f} s"

    def x(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}x"

    for r in pipe["results"]:
        t.add_row(r["preset"], s(r["decode_seconds"]), s(r["transform_seconds"]),
                  s(r["extract_seconds"]), s(r["command_seconds"]),
                  s(r["librosa_loop_seconds"]), f"{r['own_over_parts']:.2f}",
                  x(r["librosa_over_own"]), x(r["librosa_over_command"]),
                  s(r["fixed_cost_seconds"]))
    console.print(t)
