"""``nnaudio benchmark --matrix``: every workload (transform x parameters x device) against
the peers, and the kernel build time of every preset.

Matrix (``--matrix``). Timing: each candidate of a cell is built (``build_seconds``), warmed
up on every batch shape and timed for ``repeat`` consecutive passes over all clips of the
workload; then the whole cell is measured a second time (rounds A B C D, A B C D), so that a
burst of load from other processes on a shared machine does not decide a cell. ``seconds``
is the median of all passes. (Passes of different libraries are not interleaved one by one:
each library's idle worker threads spin for a while after its calls and would slow the
next.) ``speedup_vs_ours = peer seconds / our seconds`` (> 1: ours faster). Kernel build
times of every preset in ``configs/`` are reported separately.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from nnaudio_cli.bench import peers as peer_lib
from nnaudio_cli.bench import workload
from nnaudio_cli.bench.machine import as_numpy_free, machine_info, usable_cores
from nnaudio_cli.bench.measure import SPEEDUP_DEFINITION, add_ratios
from nnaudio_cli.bench.peers import (
    OURS,
    PEER_LABELS,
    PEER_PACKAGES,
    Candidate,
    candidates,
    core_module,
)
from nnaudio_cli.bench.workload import (
    MATRIX_TRANSFORMS,
    SCHEMA_VERSION,
    Workload,
    piano_clips,
    stage,
)
from nnaudio_cli.plumbing.outputs import write_text

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


def matrix_report(
    peers: list[str], n_clips: Optional[int], repeat: int, threads: Optional[int], seed: int,
    json_path: Optional[Path], quiet: bool,
) -> dict[str, Any]:
    import torch


    def log(msg: str) -> None:
        if not quiet:
            print(f"benchmark: {msg}", file=sys.stderr, flush=True)

    started = time.time()
    torch.set_num_threads(threads or usable_cores())
    missing = {p: r for p in peers if (r := peer_lib.peer_missing(p)) is not None}
    for p, reason in missing.items():
        log(f"skipping {PEER_LABELS[p]}: {reason} ({PEER_PACKAGES[p][1]})")
    result = run_matrix(peers, missing, repeat, n_clips, seed, log)
    report = {
        "schema_version": SCHEMA_VERSION,
        "mode": "matrix",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "speedup_definition": SPEEDUP_DEFINITION,
        "machine": machine_info(torch.device("cpu")),
        "repeat": repeat,
        "against": peers,
        "matrix": result,
        "summary": summary(result),
        "elapsed_seconds": round(time.time() - started, 3),
    }
    if json_path is not None:
        write_text(json_path, json.dumps(as_numpy_free(report), indent=2) + "\n")
        log(f"wrote {json_path}")
    print(table_markdown(result))
    s = report["summary"]
    print(f"\nours fastest in {s['won']} of {s['cells']} cells")
    for line in s["lost"]:
        print(f"  lost: {line}")
    for b in result["preset_builds"]:
        print(f"preset {b['preset']}: kernel build {b['build_seconds']:.3f} s")
    return report


def table_markdown(matrix: dict[str, Any]) -> str:
    """The matrix as a markdown table: seconds per implementation, ours in bold when fastest."""
    impls = [OURS, "librosa", "torch.stft", "nnAudio2"]
    lines = ["| workload | transform | ours | librosa | torch.stft | nnAudio2 | fastest |",
             "|---|---|---|---|---|---|---|"]
    for cell in matrix["cells"]:
        by = {r["impl"]: r["seconds"] for r in cell["rows"]}
        best = min(by, key=by.get)
        vals = [f"{by[i]:.3f} s" if i in by else "—" for i in impls]
        ours = by[OURS]
        for k, i in enumerate(impls[1:], 1):
            if i in by:
                vals[k] += f" ({by[i] / ours:.1f}x)"
        lines.append(f"| {cell['workload']} | {cell['transform']} | {' | '.join(vals)} | "
                     f"{'ours' if best == OURS else best} |")
    return "\n".join(lines)


def summary(matrix: dict[str, Any]) -> dict[str, Any]:
    """Cells won and lost by ours (against every measured peer)."""
    won, lost = [], []
    for cell in matrix["cells"]:
        by = {r["impl"]: r["seconds"] for r in cell["rows"]}
        best = min(by, key=by.get)
        key = f"{cell['workload']} / {cell['transform']}"
        (won if best == OURS else lost).append(
            key if best == OURS else f"{key}: {best} {by[OURS] / by[best]:.2f}x faster")
    return {"cells": len(matrix["cells"]), "won": len(won), "lost": lost}
