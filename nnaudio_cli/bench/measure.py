"""Measuring: time and memory of each candidate, a matrix cell, and the extract pipeline
against its parts.

Transform benchmark. For every transform and implementation ("candidate"), in one process
and on the same clips:

* ``build_seconds``: constructing the module (kernels, filter banks) and moving it to the
  device; ``warmup_seconds``: one batch of each distinct batch shape;
* ``seconds``: the median of ``repeat`` timed passes over all clips (batches of
  ``batch_size`` clips under ``torch.inference_mode()``; inputs are staged on the device
  beforehand, outputs stay there; the device is synchronised before the clock stops);
* ``clips_per_second``, ``audio_seconds_per_second`` (from the median);
* ``peak_rss_mb`` / ``rss_delta_mb`` (host, see :class:`MemoryMeter`) and
  ``device_peak_mb`` (CUDA ``max_memory_allocated``) over build, warm-up and passes;
* ``speedup_vs_ours = peer seconds / nnaudio seconds`` (medians of this run; > 1 means
  nnaudio is faster; 1.0 on nnaudio's own row).

Matrix (``--matrix``). Timing: each candidate of a cell is built (``build_seconds``), warmed
up on every batch shape and timed for ``repeat`` consecutive passes over all clips of the
workload; then the whole cell is measured a second time (rounds A B C D, A B C D), so that a
burst of load from other processes on a shared machine does not decide a cell. ``seconds``
is the median of all passes. (Passes of different libraries are not interleaved one by one:
each library's idle worker threads spin for a while after its calls and would slow the
next.) ``speedup_vs_ours = peer seconds / our seconds`` (> 1: ours faster). Kernel build
times of every preset in ``configs/`` are reported separately.

Pipeline (``--pipeline``). For each preset, on one folder of audio files, in one run:

* **decode-only**: soundfile read + mono + soxr HQ resample of every file in one process
  (:func:`nnaudio_cli.extract.audio.decode_task`, what the decoder workers run);
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
faster than the loop), ``fixed_cost = whole command - own clock``, and
``start_over_import = fixed_cost - torch_import`` (``python -c "import torch"`` timed between
the commands: what start-up costs beyond the one import it overlaps). Medians of ``repeat``
passes; the thread count is the one ``extract`` uses unless ``--threads`` is given.

One pass against separate runs (``--pipeline`` with several ``--config``). On the same
folder, workers and threads: **one pass** ``nnaudio extract -c A -c B -c C`` (one decode per
file, every feature computed on it), **separate runs** ``nnaudio extract -c A``, ``-c B``,
``-c C`` (each decodes every file again), both in subprocesses as above, and **decode-only**
(every file decoded and resampled once to each distinct rate of the features, in one
process). Rounds interleave the one pass and the separate runs (the one pass first in odd
rounds, last in even ones) so that neither a burst of load nor the order favours a side.
Reported: ``ratio = sum of separate / one pass`` and
``saved_seconds = sum of separate - one pass`` on ``extract``'s own clock (the whole
commands' figures too, which also save ``n - 1`` interpreter start-ups), and whether
``saved >= decode-only`` and ``saved >= (n - 1) x decode-only`` (the decodes skipped).

Invert (``--invert``): :mod:`nnaudio_cli.bench.invert`.

Memory. Host memory is read from ``/proc/self/status``: before each measured candidate the
high-water mark ``VmHWM`` is reset to the current RSS by writing ``5`` to
``/proc/self/clear_refs`` (Linux >= 4.0), and a sampling thread reads ``VmRSS`` every few
milliseconds as a fallback. The peak is the larger of the two. Where ``/proc`` is absent
(macOS, Windows) ``resource.getrusage`` is used: its ``ru_maxrss`` is the peak of the whole
process lifetime, which the JSON records as the method so that figures are not misread.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from nnaudio_cli.bench import workload
from nnaudio_cli.bench.peers import (
    OURS,
    Candidate,
    candidates,
    core_module,
    librosa_loop,
)
from nnaudio_cli.bench.workload import (
    HOP,
    MATRIX_TRANSFORMS,
    N_FFT,
    PipelineError,
    Workload,
    piano_clips,
    stage,
)
from nnaudio_cli.plumbing.text import count

_STATUS = "/proc/self/status"


_CLEAR_REFS = "/proc/self/clear_refs"


def usable_cores() -> int:
    """CPU cores this process may run on (affinity-aware)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _status_kb(field: str) -> int | None:
    try:
        with open(_STATUS, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open(_CLEAR_REFS, "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def memory_method() -> str:
    """How :class:`MemoryMeter` measures host memory here (recorded in the JSON)."""
    if _status_kb("VmRSS") is None:
        return "ru_maxrss (process lifetime peak)"
    if _reset_hwm():
        return "VmHWM after clear_refs reset, and VmRSS sampled every 5 ms"
    return "VmRSS sampled every 5 ms"


class MemoryMeter:
    """Peak host RSS (MB) and peak CUDA allocation (MB) while the ``with`` block runs.

    Attributes after exit: ``baseline_mb`` (RSS at entry), ``peak_mb`` (peak RSS during the
    block), ``delta_mb`` (``peak_mb - baseline_mb``), ``device_peak_mb`` (CUDA
    ``max_memory_allocated`` over the block, else ``None``).
    """

    def __init__(self, device: Any = None, interval: float = 0.005) -> None:
        self.device = device
        self.interval = interval
        self.baseline_mb: float | None = None
        self.peak_mb: float | None = None
        self.delta_mb: float | None = None
        self.device_peak_mb: float | None = None
        self._max_kb = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc = _status_kb("VmRSS") is not None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            kb = _status_kb("VmRSS")
            if kb is not None and kb > self._max_kb:
                self._max_kb = kb

    def __enter__(self) -> MemoryMeter:
        import gc

        gc.collect()
        if self._cuda():
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        if self._proc:
            _reset_hwm()
            self._max_kb = _status_kb("VmRSS") or 0
            self.baseline_mb = self._max_kb / 1024
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        else:
            self.baseline_mb = _ru_maxrss_mb()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._proc:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=5.0)  # the sampler wakes every interval
            hwm = _status_kb("VmHWM") or 0
            now = _status_kb("VmRSS") or 0
            self.peak_mb = max(self._max_kb, hwm, now) / 1024
        else:
            self.peak_mb = _ru_maxrss_mb()
        if self.peak_mb is not None and self.baseline_mb is not None:
            self.delta_mb = max(0.0, self.peak_mb - self.baseline_mb)
        if self._cuda():
            import torch

            torch.cuda.synchronize(self.device)
            self.device_peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20

    def _cuda(self) -> bool:
        return getattr(self.device, "type", None) == "cuda"


def _ru_maxrss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 2**20 if sys.platform == "darwin" else kb / 1024  # bytes on macOS


def _sync(device: Any) -> None:
    import torch

    kind = getattr(device, "type", "cpu")
    if kind == "cuda":
        torch.cuda.synchronize(device)
    elif kind == "mps":
        torch.mps.synchronize()


def measure(c: Candidate, w: Workload, staged: dict[str, list[Any]]) -> dict[str, Any]:
    """Build, warm up and time one candidate; returns its result row (without ratios)."""
    import torch

    device = w.device if c.on_device else torch.device("cpu")
    batches = staged["numpy"] if c.takes == "numpy" else staged["torch"]
    meter = MemoryMeter(device)
    shapes: list[Any] = []
    with meter, torch.inference_mode():
        t0 = time.perf_counter()
        fn = c.build()
        _sync(device)
        build = time.perf_counter() - t0

        t0 = time.perf_counter()
        seen = set()
        for b in batches:  # one batch of each distinct shape (the last one may be short)
            if tuple(b.shape) in seen:
                continue
            seen.add(tuple(b.shape))
            out = fn(b)
            shapes.append(list(out.shape[1:]))
            del out
        _sync(device)
        warmup = time.perf_counter() - t0

        times = []
        for _ in range(w.repeat):
            t0 = time.perf_counter()
            for b in batches:
                fn(b)
            _sync(device)
            times.append(time.perf_counter() - t0)
        del fn
    median = statistics.median(times)
    n = w.clips.shape[0]
    return {
        "transform": c.transform,
        "impl": c.impl,
        "detail": c.detail,
        "device": str(device),
        "build_seconds": round(build, 6),
        "warmup_seconds": round(warmup, 6),
        "seconds": median,
        "seconds_all": times,
        "clips_per_second": n / median,
        "audio_seconds_per_second": w.audio_seconds / median,
        "peak_rss_mb": _r(meter.peak_mb),
        "rss_delta_mb": _r(meter.delta_mb),
        "device_peak_mb": _r(meter.device_peak_mb),
        "output_shape_per_clip": shapes[0] if shapes else None,
    }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def run_transforms(
    w: Workload,
    transforms: list[str],
    peers: list[str],
    missing: dict[str, str],
    log: Callable[[str], None],
    results: list[dict[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Measure every candidate of every transform; returns (results, skipped). Each row is
    appended to ``results`` (when given) as soon as it is measured, with its ratio to ours
    (measured first), so an interrupted run keeps the rows it finished."""
    import warnings

    import torch

    staged = stage(w)
    # imports (librosa loads its submodules lazily) are not kernel build time
    import nnaudio_core  # noqa: F401

    if "librosa" in peers and "librosa" not in missing:
        import librosa

        for name in ("stft", "cqt", "vqt", "feature.melspectrogram", "feature.mfcc"):
            obj: Any = librosa
            for part in name.split("."):
                obj = getattr(obj, part)
    if "nnaudio2" in peers and "nnaudio2" not in missing:
        os.environ["NNAUDIO_DISABLE_CITATION_REMINDER"] = "1"
        import nnAudio2.features  # noqa: F401
    # librosa warns about the small FFTs of its multi-rate CQT on short clips
    warnings.filterwarnings("ignore", message="n_fft=.*too large", category=UserWarning)
    with torch.inference_mode():  # first-use costs of torch (thread pool, FFT plans): untimed
        torch.stft(staged["torch"][0][:1], N_FFT, HOP, window=torch.hann_window(
            N_FFT, device=w.device), center=True, return_complex=True).abs()
        _sync(w.device)
    results = [] if results is None else results
    skipped: list[dict[str, Any]] = []
    shared: dict[str, dict[str, Any]] = {}
    for transform in transforms:
        cands, skip = candidates(
            transform, w.sr, w.clips.shape[1], peers, w.device, missing
        )
        skipped += skip
        rows = []
        for c in cands:
            if c.share_key and c.share_key in shared:
                row = dict(shared[c.share_key], transform=transform,
                           shared_with=shared[c.share_key]["transform"])
                log(f"{transform} {c.impl}: same computation as "
                    f"{row['shared_with']}, measurement reused")
            else:
                log(f"{transform} {c.impl}: building, warming up, {w.repeat} timed pass(es)")
                row = measure(c, w, staged)
                if c.share_key:
                    shared[c.share_key] = row
                log(f"{transform} {c.impl}: {row['seconds']:.3f} s "
                    f"({row['clips_per_second']:.1f} clips/s)")
            rows.append(row)
            add_ratios(rows)
            results.append(row)
    return results, skipped


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """``speedup_vs_ours`` = row seconds / nnaudio seconds for the rows of one transform."""
    ours = next(r for r in rows if r["impl"] == OURS)
    for r in rows:
        r["ours_seconds"] = ours["seconds"]
        r["speedup_vs_ours"] = r["seconds"] / ours["seconds"]


ROUNDS = 2  # each cell is measured twice, all candidates in turn


def _time_cell(
    cands: list[Candidate], w: Workload, staged: dict[str, list[Any]],
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Build and warm up every candidate, then time them in interleaved passes."""
    import torch

    fns: list[Callable[[Any], Any]] = []
    rows: list[dict[str, Any]] = []
    with torch.inference_mode():
        for c in cands:
            t0 = time.perf_counter()
            fn = c.build()
            build = time.perf_counter() - t0
            batches = staged["numpy"] if c.takes == "numpy" else staged["torch"]
            seen: set[tuple[int, ...]] = set()
            for b in batches:
                if tuple(b.shape) not in seen:
                    seen.add(tuple(b.shape))
                    fn(b)
            fns.append(fn)
            rows.append({"transform": c.transform, "impl": c.impl, "detail": c.detail,
                         "build_seconds": round(build, 4), "seconds_all": []})
        for _round in range(ROUNDS):
            for c, fn, row in zip(cands, fns, rows, strict=True):
                batches = staged["numpy"] if c.takes == "numpy" else staged["torch"]
                for b in batches[:1]:  # re-warm this library's threads after the others
                    fn(b)
                for _ in range(w.repeat):
                    t0 = time.perf_counter()
                    for b in batches:
                        fn(b)
                    row["seconds_all"].append(time.perf_counter() - t0)
    for row in rows:
        row["seconds"] = statistics.median(row["seconds_all"])
        log(f"  {row['transform']:<10} {row['impl']:<10} {row['seconds']:.4f} s "
            f"(build {row['build_seconds']:.3f} s)")
    add_ratios(rows)
    return rows


def preset_build_times(repeat: int = 3) -> list[dict[str, Any]]:
    """Median construction time of every shipped preset (kernels included)."""
    from nnaudio_cli import config
    from nnaudio_cli.preset_paths import shipped_dir
    from nnaudio_core.features import build

    root = shipped_dir()
    out = []
    for path in sorted(root.glob("*.toml")) if root is not None else []:
        cfg = config.resolve(str(path)).as_core_config()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            build(cfg)
            times.append(time.perf_counter() - t0)
        out.append({"preset": path.stem, "transform": cfg["transform"],
                    "build_seconds": statistics.median(times)})
    return out


def run_matrix(
    peers: list[str], missing: dict[str, str], repeat: int, n_clips: int | None,
    seed: int, log: Callable[[str], None],
) -> dict[str, Any]:
    """Measure the whole matrix; returns the ``matrix`` section of the report."""
    import torch

    warnings.filterwarnings("ignore", message="n_fft=.*too large", category=UserWarning)
    os.environ.setdefault("NNAUDIO_DISABLE_CITATION_REMINDER", "1")
    device = torch.device("cpu")
    # one-time costs (torch's first FFT/matmul, lazy imports) are not kernel build time
    import nnaudio_core as core

    with torch.inference_mode():
        for t in MATRIX_TRANSFORMS:
            core_module(core, t, 16000.0)(torch.zeros(1, 16384))
    for p in peers:
        if p not in missing and p == "librosa":
            import librosa  # noqa: F401
        elif p not in missing and p == "nnaudio2":
            import nnAudio2.features  # noqa: F401
    cells: list[dict[str, Any]] = []
    for label, sr, samples, batch, default_clips in workload.WORKLOADS:
        n = default_clips if n_clips is None else n_clips
        log(f"workload {label}: {n} clips, batches of {batch}")
        x = piano_clips(n, samples, sr, seed)
        w = Workload(x, sr, batch, repeat, device)
        staged = stage(w)
        for transform in MATRIX_TRANSFORMS:
            cands, _ = candidates(transform, sr, samples, peers, device, missing)
            rows = _time_cell(cands, w, staged, log)
            cells.append({"workload": label, "sr": sr, "samples": samples, "batch_size": batch,
                          "clips": n, "transform": transform, "rows": rows})
        del staged, w, x
    builds = preset_build_times()
    for b in builds:
        log(f"preset {b['preset']}: build {b['build_seconds']:.3f} s")
    return {"workloads": [w[0] for w in workload.WORKLOADS], "cells": cells,
            "preset_builds": builds}


#: how the pipeline ratios are defined (stored in the report)
PIPELINE_DEFINITION = (
    '``own_over_parts = extract own / max(decode-only / workers, transform-only)`` (the '
    "issue's bar: at most 1.3), ``librosa_over_own`` and ``librosa_over_command`` (how many "
    'times faster than the loop), ``fixed_cost = whole command - own clock``. Medians of '
    '``repeat`` passes; the thread count is the one ``extract`` uses unless ``--threads`` is '
    'given. '
)


def decode_only(paths: list[str], keys: list[str],
                sr: float | tuple[float, ...]) -> tuple[float, list[Any]]:
    """Seconds to decode + resample (once per rate) every file in this process, and the
    results."""
    from nnaudio_cli.extract.audio import decode_task

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


def run_command(folder: Path, out: Path, preset: str | list[str], workers: int, device: str,
                threads: int | None) -> tuple[float, dict[str, Any]]:
    """``nnaudio extract`` (one ``-c`` per preset) in a subprocess: (whole-command seconds,
    its JSON summary with ``cpu_seconds`` added: user + system CPU time of the command and
    of its decoder processes, which it reaps)."""
    presets = [preset] if isinstance(preset, str) else list(preset)
    cmd = [sys.executable, "-m", "nnaudio_cli", "extract", str(folder), str(out),
           *(a for p in presets for a in ("-c", p)),
           "--workers", str(workers), "--device", device, "--overwrite", "--json", "-q"]
    if threads:
        cmd += ["--threads", str(threads)]
    t0 = time.perf_counter()
    cpu0 = _children_cpu()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    if proc.returncode not in (0, 3):
        last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise PipelineError(f"nnaudio extract failed (exit {proc.returncode}): {last}")
    return wall, dict(json.loads(proc.stdout), cpu_seconds=cpu)


def torch_import_seconds() -> float:
    """Wall seconds of ``python -c "import torch"`` in a fresh interpreter (the cost every
    command that computes pays at least once; ``extract`` overlaps its start-up with it)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.perf_counter() - t0


def _children_cpu() -> float:
    """User + system CPU seconds of this process's finished (waited-for) descendants."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


@contextmanager
def _workspace(threads: int | None, device: Any) -> Iterator[tuple[Path, int]]:
    """A temporary folder and the torch thread count of a pipeline measurement (``threads``,
    else extract's default for ``device``); both undone on exit."""
    import torch

    from nnaudio_cli.extract import default_threads

    tmp = Path(tempfile.mkdtemp(prefix="nnaudio-bench-"))
    n_threads = threads or default_threads(device)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield tmp, n_threads
    finally:
        torch.set_num_threads(old_threads)
        shutil.rmtree(tmp, ignore_errors=True)


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
    from nnaudio_cli.config import resolve

    with _workspace(threads, device) as (tmp, n_threads):
        generated = folder is None
        folder, keys, paths = _audio_folder(folder, write_clips, tmp, log)
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
            log(f"pipeline {preset}: transform-only ({count(n_threads, 'thread')})")
            trans = [transform_only(decoded, config, device, 60.0) for _ in range(repeat)]
            del decoded
            log(f"pipeline {preset}: nnaudio extract -c {preset} --workers {workers}")
            cmd, imports = [], []
            for _ in range(repeat):  # interleaved: both see the same machine load
                cmd.append(run_command(folder, tmp / f"{preset}.h5", preset, workers,
                                       str(device), threads))
                imports.append(torch_import_seconds())
            loop = []
            if librosa:
                log(f"pipeline {preset}: librosa loop")
                loop = [librosa_loop(paths, keys, preset, dict(config["params"]), sr,
                                     tmp / f"{preset}-librosa.h5") for _ in range(repeat)]
            d = statistics.median(dec_times)
            t = statistics.median(trans)
            own = statistics.median([s["wall_seconds"] for _, s in cmd])
            whole = statistics.median([w for w, _ in cmd])
            imp = statistics.median(imports)
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
                "torch_import_seconds": imp,
                "start_over_import_seconds": whole - own - imp,
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
            "definition": PIPELINE_DEFINITION,
            "results": rows,
            "one_pass": None,  # several --config: see run_one_pass
        }


def _audio_folder(
    folder: Path | None, write_clips: Callable[[Path], None], tmp: Path,
    log: Callable[[str], None],
) -> tuple[Path, list[str], list[str]]:
    """The folder to extract (written under ``tmp`` when ``None``), its keys and paths."""
    from nnaudio_cli.extract.discover import find_audio

    if folder is None:
        folder = tmp / "audio"
        log(f"pipeline: writing the synthetic clips as WAV files to {folder}")
        write_clips(folder)
    keys = find_audio(folder)
    if not keys:
        raise PipelineError(f"no audio files under {folder}")
    return folder, keys, [str(folder / k) for k in keys]


#: how the one-pass figures are defined (stored in the report)
ONE_PASS_DEFINITION = (
    "one pass = 'nnaudio extract -c A -c B ...' (one decode per file); separate = one "
    "'nnaudio extract -c X' per feature; ratio = sum of separate / one pass and saved = sum "
    "of separate - one pass, on extract's own clock (wall_seconds; *_command: the whole "
    "subprocess, start-up included); cpu = user + system CPU seconds of the command and its "
    "decoder processes (what a run costs in core-seconds: wall time hides a decode that "
    "overlaps the transform on another core); decode-only = every file decoded and resampled "
    "once to each distinct rate, in one process. Medians of repeat interleaved rounds; the "
    "same folder, workers and threads for every run."
)


def run_one_pass(
    folder: Path | None,
    write_clips: Callable[[Path], None],
    presets: list[str],
    workers: int,
    device: Any,
    threads: int | None,
    repeat: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Several features in one ``extract`` pass against one run per feature, and the
    decode-only time (see the module docstring); returns the ``one_pass`` section."""
    import h5py

    from nnaudio_cli.config import resolve_features
    from nnaudio_cli.extract.audio import rates_of
    from nnaudio_cli.featurefile.layout import feature_names

    feats = resolve_features(list(presets))
    names = [f.name for f in feats]
    rates = rates_of([float(f.sr) for f in feats])
    with _workspace(threads, device) as (tmp, n_threads):
        generated = folder is None
        folder, keys, paths = _audio_folder(folder, write_clips, tmp, log)
        log(f"one pass: decode-only, {len(paths)} files at {', '.join(f'{r:g}' for r in rates)}"
            " Hz")
        dec_times, dec_cpu = [], []
        for _ in range(repeat):
            c0 = time.process_time()
            seconds, decoded = decode_only(paths, keys, rates)
            dec_cpu.append(time.process_time() - c0)
            dec_times.append(seconds)
        audio_s = sum(r.audio.shape[1] / rates[0] for r in decoded if r.audio is not None)
        del decoded
        one: list[tuple[float, dict[str, Any]]] = []
        sep: dict[str, list[tuple[float, dict[str, Any]]]] = {p: [] for p in presets}
        together = tmp / "one-pass.h5"
        for rnd in range(repeat):
            first = rnd % 2 == 0  # alternate the order: neither side always runs first
            log(f"one pass: round {rnd + 1}/{repeat}: extract -c {' -c '.join(presets)} "
                f"--workers {workers} and one run per feature "
                f"({'one pass' if first else 'separate runs'} first)")
            if first:
                one.append(run_command(folder, together, presets, workers, str(device), threads))
            for p in presets:
                sep[p].append(run_command(folder, tmp / f"{Path(p).stem}.h5", p, workers,
                                          str(device), threads))
            if not first:
                one.append(run_command(folder, together, presets, workers, str(device), threads))
        with h5py.File(together, "r") as h5:
            stored = feature_names(h5)
        d = statistics.median(dec_times)
        own = statistics.median([s["wall_seconds"] for _, s in one])
        whole = statistics.median([w for w, _ in one])
        sep_own = {p: statistics.median([s["wall_seconds"] for _, s in runs])
                   for p, runs in sep.items()}
        sep_whole = {p: statistics.median([w for w, _ in runs]) for p, runs in sep.items()}
        sum_own, sum_whole = sum(sep_own.values()), sum(sep_whole.values())
        saved = sum_own - own
        skipped = len(presets) - 1
        # CPU: what the runs cost in core-seconds, decoder processes included (wall time
        # hides a decode that overlaps the transform on another core)
        d_cpu = statistics.median(dec_cpu)
        cpu = statistics.median([s["cpu_seconds"] for _, s in one])
        sep_cpu = {p: statistics.median([s["cpu_seconds"] for _, s in runs])
                   for p, runs in sep.items()}
        saved_cpu = sum(sep_cpu.values()) - cpu
        return {
            "input": None if generated else str(folder),
            "generated": generated,
            "files": len(paths),
            "audio_seconds": round(audio_s, 3),
            "workers": workers,
            "threads": n_threads,
            "device": str(device),
            "repeat": repeat,
            "definition": ONE_PASS_DEFINITION,
            "results": [],  # the per-preset rows of the single-feature mode
            "one_pass": {
                "features": names,
                "rates": list(rates),
                "one_pass_features": stored,
                "decode_seconds": d,
                "one_pass_seconds": own,
                "one_pass_command_seconds": whole,
                "separate_seconds": sep_own,
                "separate_command_seconds": sep_whole,
                "separate_sum_seconds": sum_own,
                "separate_sum_command_seconds": sum_whole,
                "ratio": sum_own / own,
                "ratio_command": sum_whole / whole,
                "saved_seconds": saved,
                "saved_command_seconds": sum_whole - whole,
                "decodes_skipped": skipped,
                "saved_over_decode": saved / d if d > 0 else None,
                "saved_ge_decode": saved >= d,
                "saved_ge_skipped_decodes": saved >= skipped * d,
                "decode_cpu_seconds": d_cpu,
                "one_pass_cpu_seconds": cpu,
                "separate_cpu_seconds": sep_cpu,
                "separate_sum_cpu_seconds": sum(sep_cpu.values()),
                "ratio_cpu": sum(sep_cpu.values()) / cpu if cpu > 0 else None,
                "saved_cpu_seconds": saved_cpu,
                "saved_cpu_ge_skipped_decodes": saved_cpu >= skipped * d_cpu,
                "decode_seconds_all": dec_times,
                "one_pass_seconds_all": [s["wall_seconds"] for _, s in one],
                "separate_seconds_all": {p: [s["wall_seconds"] for _, s in runs]
                                         for p, runs in sep.items()},
            },
        }


def load_average() -> Optional[float]:
    """The 1-minute load average, None where the OS does not report it."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None
