"""``nnaudio benchmark --matrix``: every transform x every implementation x four workloads.

Workloads (synthetic piano-like clips, :func:`nnaudio_cli.benchmark.piano_clips`):

* 16 kHz x 1 s (16,000 samples), batches of 32;
* 22.05 kHz x 40,000 samples, batches of 32 (the ``cqt84`` preset's rate);
* 44.1 kHz x 80,000 samples, batches of 32 (the nnAudio paper's protocol);
* 22.05 kHz x 60 s (1,323,000 samples), batches of 4.

Transforms: STFT (magnitude), Mel (128), MFCC (20), CQT1992v2 and CQT2010v2 (ours with
``backend='auto'``, the fast exact path; 84 bins from
C1), VQT (gamma 20), with the parameters of :mod:`nnaudio_cli.benchmark`. Implementations:
ours, librosa (called on the whole batch array: its multichannel path), ``torch.stft``
(+ our mel matrix; STFT and Mel only) and nnAudio2.

Timing: each candidate of a cell is built (``build_seconds``), warmed up on every batch
shape and timed for ``repeat`` consecutive passes over all clips of the workload; then the
whole cell is measured a second time (rounds A B C D, A B C D), so that a burst of load
from other processes on a shared machine does not decide a cell. ``seconds`` is the median
of all passes. (Passes of different libraries are not interleaved one by one: each
library's idle worker threads spin for a while after its calls and would slow the next.)
``speedup_vs_ours = peer seconds / our seconds`` (> 1: ours faster). Kernel build times of
every preset in ``configs/`` are reported separately.
"""

from __future__ import annotations

import os
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nnaudio_cli import benchmark as bm

#: (label, sr, samples per clip, batch size, default clip count)
WORKLOADS: list[tuple[str, float, int, int, int]] = [
    ("16 kHz x 1 s", 16000.0, 16000, 32, 64),
    ("22.05 kHz x 40,000", 22050.0, 40000, 32, 64),
    ("44.1 kHz x 80,000", 44100.0, 80000, 32, 64),
    ("22.05 kHz x 60 s", 22050.0, 60 * 22050, 4, 8),
]
MATRIX_TRANSFORMS = ("stft", "mel", "mfcc", "cqt1992v2", "cqt2010v2", "vqt")
ROUNDS = 2  # each cell is measured twice, all candidates in turn


def _time_cell(
    cands: list[bm.Candidate], w: bm.Workload, staged: dict[str, list[Any]],
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
    bm.add_ratios(rows)
    return rows


def preset_build_times(repeat: int = 3) -> list[dict[str, Any]]:
    """Median construction time of every preset in ``configs/`` (kernels included)."""
    from nnaudio_cli import config
    from nnaudio_core.features import build

    root = Path(__file__).resolve().parent.parent / "configs"
    out = []
    for path in sorted(root.glob("*.toml")):
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
            bm.core_module(core, t, 16000.0)(torch.zeros(1, 16384))
    for p in peers:
        if p not in missing and p == "librosa":
            import librosa  # noqa: F401
        elif p not in missing and p == "nnaudio2":
            import nnAudio2.features  # noqa: F401
    cells: list[dict[str, Any]] = []
    for label, sr, samples, batch, default_clips in WORKLOADS:
        n = default_clips if n_clips is None else n_clips
        log(f"workload {label}: {n} clips, batches of {batch}")
        x = bm.piano_clips(n, samples, sr, seed)
        w = bm.Workload(x, sr, batch, repeat, device)
        staged = bm.stage(w)
        for transform in MATRIX_TRANSFORMS:
            cands, _ = bm.candidates(transform, sr, samples, peers, device, missing)
            rows = _time_cell(cands, w, staged, log)
            cells.append({"workload": label, "sr": sr, "samples": samples, "batch_size": batch,
                          "clips": n, "transform": transform, "rows": rows})
        del staged, w, x
    builds = preset_build_times()
    for b in builds:
        log(f"preset {b['preset']}: build {b['build_seconds']:.3f} s")
    return {"workloads": [w[0] for w in WORKLOADS], "cells": cells, "preset_builds": builds}


def table_markdown(matrix: dict[str, Any]) -> str:
    """The matrix as a markdown table: seconds per implementation, ours in bold when fastest."""
    impls = [bm.OURS, "librosa", "torch.stft", "nnAudio2"]
    lines = ["| workload | transform | ours | librosa | torch.stft | nnAudio2 | fastest |",
             "|---|---|---|---|---|---|---|"]
    for cell in matrix["cells"]:
        by = {r["impl"]: r["seconds"] for r in cell["rows"]}
        best = min(by, key=by.get)
        vals = [f"{by[i]:.3f} s" if i in by else "—" for i in impls]
        ours = by[bm.OURS]
        for k, i in enumerate(impls[1:], 1):
            if i in by:
                vals[k] += f" ({by[i] / ours:.1f}x)"
        lines.append(f"| {cell['workload']} | {cell['transform']} | {' | '.join(vals)} | "
                     f"{'ours' if best == bm.OURS else best} |")
    return "\n".join(lines)


def summary(matrix: dict[str, Any]) -> dict[str, Any]:
    """Cells won and lost by ours (against every measured peer)."""
    won, lost = [], []
    for cell in matrix["cells"]:
        by = {r["impl"]: r["seconds"] for r in cell["rows"]}
        best = min(by, key=by.get)
        key = f"{cell['workload']} / {cell['transform']}"
        (won if best == bm.OURS else lost).append(
            key if best == bm.OURS else f"{key}: {best} {by[bm.OURS] / by[best]:.2f}x faster")
    return {"cells": len(matrix["cells"]), "won": len(won), "lost": lost}


def as_numpy_free(report: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe copy (numpy scalars to Python)."""
    def conv(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        if isinstance(v, np.generic):
            return v.item()
        return v

    return conv(report)
