"""The benchmark reports: what ran on what machine, as JSON (``schema_version`` 1) and as
tables; ``transforms_report`` and ``matrix_report`` run a whole mode (``--invert``:
:mod:`nnaudio_cli.bench.invert`).

Machine. What a benchmark ran on (CPU, GPU, library versions, git commit, threads) and how much
memory it used (host RSS on Linux, device peak on CUDA).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from nnaudio_cli import DISTRIBUTION
from nnaudio_cli.bench import busy as busy_lib
from nnaudio_cli.bench import measure
from nnaudio_cli.bench import peers as peer_lib
from nnaudio_cli.bench.measure import (
    memory_method,
    run_one_pass,
    run_pipeline,
    run_transforms,
    usable_cores,
)
from nnaudio_cli.bench.peers import (
    OURS,
    PEER_LABELS,
    PEER_PACKAGES,
)
from nnaudio_cli.bench.workload import (
    BINS_PER_OCTAVE,
    FMIN,
    HOP,
    N_BINS,
    N_CLIPS,
    N_FFT,
    N_MELS,
    N_MFCC,
    OFFSET,
    SCHEMA_VERSION,
    VQT_GAMMA,
    Workload,
    clips_from_folder,
    cqt_pad_mode,
    piano_clips,
    write_wavs,
)
from nnaudio_cli.plumbing.outputs import replacing, write_text
from nnaudio_cli.plumbing.text import count

SPEEDUP_DEFINITION = (
    "speedup_vs_ours = peer seconds / nnaudio seconds (medians of the same run); "
    "> 1 means nnaudio is faster"
)


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``, ``sysctl`` on macOS), else the arch."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True, text=True, timeout=5, check=False,
            )
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def package_version(dist: str) -> str | None:
    """Installed version of a distribution, or ``None``."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit(start: Path | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the checkout holding this code."""
    where = start or Path(__file__).resolve().parents[1]
    info: dict[str, Any] = {"commit": None, "dirty": None}
    try:
        sha = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False,
        )
        if sha.returncode == 0:
            info["commit"] = sha.stdout.strip()
            st = subprocess.run(
                ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True, text=True, timeout=10, check=False,
            )
            info["dirty"] = bool(st.stdout.strip()) if st.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def thread_info() -> dict[str, Any]:
    """torch intra/inter-op threads, the thread environment variables and BLAS pools."""
    import torch

    info: dict[str, Any] = {
        "torch_intraop": torch.get_num_threads(),
        "torch_interop": torch.get_num_interop_threads(),
        "env": {
            k: os.environ[k]
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
            if k in os.environ
        },
        # librosa's FFTs are numpy.fft (pocketfft), single-threaded
        "librosa_fft": 1,
    }
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {"api": p.get("internal_api"), "threads": p.get("num_threads")}
            for p in threadpool_info()
        ]
    except Exception:  # noqa: BLE001 - optional, informational only
        pass
    return info


def gpu_name(device: Any = None) -> str | None:
    """Name of the CUDA device (the one benchmarked, else device 0), ``"mps"`` or ``None``."""
    import torch

    if torch.cuda.is_available():
        dev = device if device is not None and getattr(device, "type", "") == "cuda" else 0
        return torch.cuda.get_device_name(dev)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "Apple MPS"
    return None


def machine_info(device: Any = None) -> dict[str, Any]:
    """Everything needed to tell two benchmark runs' machines apart."""
    import numpy as np
    import torch

    git = git_commit()
    info = {
        "cpu_model": cpu_model(),
        "cores": usable_cores(),
        "cores_total": os.cpu_count(),
        "gpu": gpu_name(device),
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "librosa": package_version("librosa"),
        "nnaudio2": package_version("nnaudio2"),
        "nnaudio": package_version(DISTRIBUTION),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        "threads": thread_info(),
    }
    try:
        info["memory_total_mb"] = round(
            os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
        )
    except (ValueError, OSError, AttributeError):
        info["memory_total_mb"] = None
    return info


def transforms_report(
    wanted: list[str],
    peers: list[str],
    device_spec: str,
    n_clips: Optional[int],
    samples: int,
    sr: float,
    input_dir: Optional[Path],
    repeat: int,
    batch_size: int,
    threads: Optional[int],
    seed: int,
    pipeline: bool,
    workers: Optional[int],
    json_path: Optional[Path],
    plot_path: Optional[Path],
    quiet: bool,
    presets: Optional[list[str]] = None,
    librosa_loop: bool = True,
    one_pass: bool = False,
    formats: Optional[list[str]] = None,
    busy: int = 0,
) -> dict[str, Any]:
    """Run the transform benchmark, or with ``pipeline`` the extract pipeline against its
    parts per preset, or with ``one_pass`` too (several ``--config``) one ``extract`` pass
    with every preset against one run per preset; print the tables, write ``json_path``.
    ``busy`` > 0 times the transforms again with that many busy neighbours
    (:mod:`nnaudio_cli.bench.busy`) and reports both."""
    import torch

    from nnaudio_cli.plumbing.devices import resolve_device

    dev = resolve_device(device_spec)
    started = time.time()

    def log(msg: str) -> None:
        if not quiet:
            print(f"benchmark: {msg}", file=sys.stderr, flush=True)

    workload: dict[str, Any] = {
        "source": "folder" if input_dir else "synthetic",
        "input": str(input_dir) if input_dir else None,
        "seed": None if input_dir else seed,
        "offset": OFFSET if input_dir else 0,
        "samples": samples,
        "sr": sr,
        "n_fft": N_FFT,
        "hop_length": HOP,
        "window": "hann",
        "center": True,
        "pad_mode": "reflect",
        "cqt_pad_mode": cqt_pad_mode(samples, sr),
        "n_mels": N_MELS,
        "n_mfcc": N_MFCC,
        "n_bins": N_BINS,
        "fmin": FMIN,
        "bins_per_octave": BINS_PER_OCTAVE,
        "vqt_gamma": VQT_GAMMA,
        "librosa_cqt_tuning": 0.0,
        "batch_size": batch_size,
        "repeat": repeat,
        "device": str(dev),
        "transforms": wanted,
        "against": peers,
        "mode": "pipeline" if pipeline else "transforms",
        "inputs_staged_on_device": True,
        "memory_method": memory_method(),
    }

    # the pipeline's one peer is the librosa loop: without librosa it is skipped, not fatal
    needed = [p for p in peers if p == "librosa" and librosa_loop] if pipeline else peers
    missing = {p: r for p in needed if (r := peer_lib.peer_missing(p)) is not None}
    skipped = [
        {"transform": None, "impl": PEER_LABELS[p], "reason": reason,
         "install": PEER_PACKAGES[p][1]}
        for p, reason in missing.items()
    ]
    for s in skipped:
        log(f"skipping {s['impl']}: {s['reason']} ({s['install']})")

    if pipeline:
        from nnaudio_cli.extract import default_workers

        n_workers = default_workers() if workers is None else workers
        n = N_CLIPS if n_clips is None else n_clips
        workload.update(clips=None if input_dir else n,
                        audio_seconds=None if input_dir else n * samples / sr)
        def write(folder: Path) -> None:
            write_wavs(piano_clips(n, samples, sr, seed), sr, folder)

        if one_pass:
            pipe = run_one_pass(input_dir, write, presets or [], n_workers, dev, threads,
                                repeat, log)
        else:
            pipe = run_pipeline(input_dir, write, presets or ["mel128"], n_workers, dev,
                                threads, repeat, log,
                                librosa=librosa_loop and "librosa" not in missing)
        if input_dir:
            workload.update(clips=pipe["files"], audio_seconds=pipe["audio_seconds"])
        if formats:
            pipe["formats"] = _formats(formats, input_dir, n_clips, n, samples, sr, seed,
                                       repeat, log)
        results: list[dict[str, Any]] = []
        skipped = []  # peers play no part in the pipeline mode
    else:
        torch.set_num_threads(threads or usable_cores())
        if input_dir:
            log(f"reading clips from {input_dir}")
            x, info = clips_from_folder(input_dir, n_clips, samples, sr)
            workload.update(info)
        else:
            n = N_CLIPS if n_clips is None else n_clips
            log(f"synthesising {n} clips x {samples} samples (seed {seed})")
            x = piano_clips(n, samples, sr, seed)
        w = Workload(x, sr, batch_size, repeat, dev)
        workload.update(clips=int(x.shape[0]), audio_seconds=w.audio_seconds)
        results = []
        try:
            _, more = run_transforms(w, wanted, peers, missing, log, results)
        except KeyboardInterrupt:
            _render_interrupted(results, skipped, workload, dev, started)
            raise KeyboardInterrupt(f"after {len(results)} measurement(s): the table above "
                                    "shows them (no JSON written)") from None
        skipped += more
        pipe = None
        if busy:
            log(f"again with {busy} busy neighbour process(es)")
            busy_report = busy_run(busy, lambda: run_transforms(w, wanted, peers, missing,
                                                                log)[0], results)

    report = {
        "schema_version": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "command_line": ["nnaudio", *sys.argv[1:]] if sys.argv[1:2] == ["benchmark"] else None,
        "speedup_definition": SPEEDUP_DEFINITION,
        "machine": machine_info(dev),
        "workload": workload,
        "results": results,
        "skipped": skipped,
        "pipeline": pipe,
        "elapsed_seconds": round(time.time() - started, 3),
    }
    if busy and not pipeline:
        report["busy"] = busy_report
    if json_path is not None:
        write_text(json_path, json.dumps(report, indent=2) + "\n")
        log(f"wrote {json_path}")
    render(report)
    if report.get("busy"):
        render_busy(report["busy"])
    if plot_path is not None:
        plot(report, plot_path)
        log(f"wrote {plot_path}")
    return report


def _formats(formats: list[str], input_dir: Optional[Path], n_clips: Optional[int], n: int,
             samples: int, sr: float, seed: int, repeat: int,
             log: Any) -> dict[str, Any]:
    """The decode-format comparison on the pipeline's clips (``--formats``)."""
    import shutil
    import tempfile

    from nnaudio_cli.bench.formats import run_formats

    if input_dir:
        x, _ = clips_from_folder(input_dir, n_clips, samples, sr)
    else:
        x = piano_clips(n, samples, sr, seed)
    tmp = Path(tempfile.mkdtemp(prefix="nnaudio-formats-"))
    try:
        return run_formats(list(x), int(round(sr)), formats, tmp, repeat, log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

def _render_interrupted(results: list[dict[str, Any]], skipped: list[dict[str, Any]],
                        workload: dict[str, Any], dev: Any, started: float) -> None:
    """The rows an interrupted transform benchmark finished, as the usual table."""
    if results:
        render({"workload": workload, "machine": machine_info(dev), "results": results,
                "skipped": skipped, "pipeline": None,
                "elapsed_seconds": round(time.time() - started, 3)})


def load_warning() -> str | None:
    """One line when the 1-minute load average is above the cores this process may use
    (other processes then take CPU time from the measurement), else ``None``."""
    load, cores = measure.load_average(), usable_cores()
    if load is None or load <= cores:
        return None
    return (f"load average {load:.1f} is above the {cores} usable core(s): other processes "
            "compete for the CPU, so the times are slower and noisier than on an idle machine")


BUSY_DEFINITION = (
    "slowdown = busy seconds / idle seconds of the same implementation; busy speedup = peer "
    "busy seconds / nnaudio busy seconds"
)


def busy_run(n: int, run: Any, idle: list[dict[str, Any]]) -> dict[str, Any]:
    """``run()`` (the result rows of one transform benchmark) with ``n`` busy neighbours,
    side by side with the ``idle`` rows: the ``busy`` section of the report."""
    with busy_lib.neighbours(n) as nb:
        started = time.perf_counter()
        rows = run()
        wall = time.perf_counter() - started
    before = {(r["transform"], r["impl"]): r for r in idle}
    side = []
    for r in rows:
        i = before.get((r["transform"], r["impl"]))
        side.append({
            "transform": r["transform"], "impl": r["impl"],
            "idle_seconds": None if i is None else i["seconds"],
            "busy_seconds": r["seconds"],
            "slowdown": None if i is None else r["seconds"] / i["seconds"],
            "idle_speedup_vs_ours": None if i is None else i["speedup_vs_ours"],
            "busy_speedup_vs_ours": r["speedup_vs_ours"],
        })
    return {
        "neighbours": n,
        "neighbour_pids": nb.pids,
        "neighbour_cpu_seconds": round(nb.cpu_seconds, 3),
        "wall_seconds": round(wall, 3),
        "definition": BUSY_DEFINITION,
        "results": rows,
        "side_by_side": side,
    }


def render_busy(busy: dict[str, Any], console: Any = None) -> None:
    """Print the idle and busy timings side by side."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=140)
    cpu = busy["neighbour_cpu_seconds"] / max(busy["wall_seconds"], 1e-9)
    t = Table(title=f"idle vs {busy['neighbours']} busy neighbour(s) (they used {cpu:.1f} "
                    "cores while timing)", caption=busy["definition"])
    for col in ("transform", "impl"):
        t.add_column(col)
    for col in ("idle s", "busy s", "slowdown", "idle speedup", "busy speedup"):
        t.add_column(col, justify="right")

    def x(v: float | None, ours: bool = False) -> str:
        return "1 (ours)" if ours else "-" if v is None else f"{v:.2f}x"

    last = None
    for r in busy["side_by_side"]:
        if last is not None and r["transform"] != last:
            t.add_section()
        last = r["transform"]
        ours = r["impl"] == OURS
        t.add_row(r["transform"], r["impl"],
                  "-" if r["idle_seconds"] is None else f"{r['idle_seconds']:.3f}",
                  f"{r['busy_seconds']:.3f}", x(r["slowdown"]),
                  x(r["idle_speedup_vs_ours"], ours), x(r["busy_speedup_vs_ours"], ours))
    console.print(t)


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
    result = measure.run_matrix(peers, missing, repeat, n_clips, seed, log)
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


def render(report: dict[str, Any], console: Any = None) -> None:
    """Print the results (and the pipeline section) as rich tables."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # a file or a pipe: do not squeeze the table into 80
            console = Console(width=140)
    wl = report["workload"]
    m = report["machine"]
    if report["results"]:
        title = (
            f"{wl['clips']} clips x {wl['samples']} samples at {wl['sr']:g} Hz "
            f"({wl['audio_seconds']:.0f} s of audio) on {wl['device']}, batch "
            f"{wl['batch_size']}, median of {wl['repeat']}"
        )
        t = Table(title=title, caption=SPEEDUP_DEFINITION)
        for col in ("transform", "impl"):
            t.add_column(col)
        for col in ("build s", "warm-up s", "median s", "clips/s", "audio s/s",
                    "peak RSS MB (+delta)", "speedup"):
            t.add_column(col, justify="right")
        if any(r["device_peak_mb"] is not None for r in report["results"]):
            t.add_column("device MB", justify="right")
        last = None
        for r in report["results"]:
            if last is not None and r["transform"] != last:
                t.add_section()
            last = r["transform"]
            impl = r["impl"] + (f" ({r['device']})" if r["device"] != wl["device"] else "")
            rss = "-" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:.0f}"
            if r.get("rss_delta_mb") is not None:
                rss += f" (+{r['rss_delta_mb']:.0f})"
            cells = [
                r["transform"], impl + (" *" if r.get("shared_with") else ""),
                f"{r['build_seconds']:.3f}", f"{r['warmup_seconds']:.3f}",
                f"{r['seconds']:.3f}", f"{r['clips_per_second']:.1f}",
                f"{r['audio_seconds_per_second']:.0f}",
                rss,
                "1 (ours)" if r["impl"] == OURS else f"{r['speedup_vs_ours']:.2f}x",
            ]
            if len(t.columns) > len(cells):
                cells.append("-" if r["device_peak_mb"] is None
                             else f"{r['device_peak_mb']:.0f}")
            t.add_row(*cells)
        console.print(t)
        if any(r.get("shared_with") for r in report["results"]):
            console.print("* same computation as the row it repeats (measured once)")
    for s in report["skipped"]:
        where = f" for {s['transform']}" if s.get("transform") else ""
        hint = f"; install: {s['install']}" if s.get("install") else ""
        console.print(f"skipped {s['impl']}{where}: {s['reason']}{hint}", markup=False,
                      highlight=False)
    if report.get("pipeline"):
        if report["pipeline"]["results"]:
            render_pipeline(report["pipeline"], console)
        if report["pipeline"].get("one_pass"):
            render_one_pass(report["pipeline"], console)
        if report["pipeline"].get("formats"):
            from nnaudio_cli.bench.formats import render_formats

            render_formats(report["pipeline"]["formats"], console)
    console.print(
        f"{m['cpu_model']}, {m['cores']} cores, gpu {m['gpu'] or '-'}, torch {m['torch']} "
        f"({count(m['threads']['torch_intraop'], 'thread')}), git {str(m['git_commit'])[:10]}",
        markup=False, highlight=False,
    )


def plot(report: dict[str, Any], path: Path) -> None:
    """Bars of clips/s per transform, one bar per implementation (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    transforms = list(dict.fromkeys(r["transform"] for r in rows))
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    width = 0.8 / max(1, len(impls))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(transforms) + 2), 4.5))
    for j, impl in enumerate(impls):
        xs, ys = [], []
        for i, t in enumerate(transforms):
            r = next((r for r in rows if r["transform"] == t and r["impl"] == impl), None)
            if r is not None:
                xs.append(i + (j - (len(impls) - 1) / 2) * width)
                ys.append(r["clips_per_second"])
        bars = ax.bar(xs, ys, width, label=impl)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(range(len(transforms)), transforms)
    ax.set_yscale("log")
    ax.set_ylabel("clips / s (higher is faster)")
    wl, m = report["workload"], report["machine"]
    ax.set_title(
        f"{wl['clips']} x {wl['samples']} samples @ {wl['sr']:g} Hz on {wl['device']} "
        f"({m['cpu_model']}{', ' + m['gpu'] if m['gpu'] and wl['device'] != 'cpu' else ''})",
        fontsize=9,
    )
    ax.legend()
    fig.tight_layout()
    try:
        with replacing(path) as tmp:
            fig.savefig(tmp, dpi=120)
    finally:
        plt.close(fig)


def render_pipeline(pipe: dict[str, Any], console: Any) -> None:
    """The pipeline section as a rich table."""
    from rich.table import Table

    t = Table(title=(f"nnaudio extract vs its parts: {count(pipe['files'], 'file')}, "
                     f"{count(pipe['workers'], 'worker')}, {count(pipe['threads'], 'thread')}, "
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
    over = [f"{r['preset']} {r['start_over_import_seconds']:+.2f} s" for r in pipe["results"]
            if r.get("start_over_import_seconds") is not None]
    if over:
        imp = pipe["results"][0]["torch_import_seconds"]
        console.print(f"fixed cost beyond one 'import torch' ({imp:.2f} s, timed between the "
                      f"runs): {', '.join(over)}", markup=False, highlight=False)


def render_one_pass(pipe: dict[str, Any], console: Any) -> None:
    """The one-pass section: a table of the runs and the three figures of the claim."""
    from rich.table import Table

    o = pipe["one_pass"]
    t = Table(title=(f"one extract pass with {len(o['features'])} features vs one run per "
                     f"feature: {count(pipe['files'], 'file')}, "
                     f"{count(pipe['workers'], 'worker')}, {count(pipe['threads'], 'thread')}, "
                     f"{pipe['device']}, median of "
                     f"{pipe['repeat']}"))
    for col in ("run", "extract (own)", "whole command", "CPU (all processes)"):
        t.add_column(col, justify="left" if col == "run" else "right")
    for preset, seconds in o["separate_seconds"].items():
        t.add_row(f"-c {preset}", f"{seconds:.2f} s",
                  f"{o['separate_command_seconds'][preset]:.2f} s",
                  f"{o['separate_cpu_seconds'][preset]:.2f} s")
    t.add_section()
    t.add_row("sum of separate runs", f"{o['separate_sum_seconds']:.2f} s",
              f"{o['separate_sum_command_seconds']:.2f} s",
              f"{o['separate_sum_cpu_seconds']:.2f} s")
    t.add_row("one pass (" + ", ".join(o["features"]) + ")", f"{o['one_pass_seconds']:.2f} s",
              f"{o['one_pass_command_seconds']:.2f} s", f"{o['one_pass_cpu_seconds']:.2f} s")
    console.print(t)

    def yes(flag: bool) -> str:
        return "yes" if flag else "no"

    k = o["decodes_skipped"]
    console.print(
        f"separate / one pass: {o['ratio']:.2f}x (whole commands {o['ratio_command']:.2f}x); "
        f"saved {o['saved_seconds']:.2f} s (whole commands {o['saved_command_seconds']:.2f} "
        f"s); decode-only {o['decode_seconds']:.2f} s (one process)\n"
        f"saved >= decode-only: {yes(o['saved_ge_decode'])}; saved >= {k} x decode-only "
        f"(the decodes skipped): {yes(o['saved_ge_skipped_decodes'])}\n"
        f"CPU: separate / one pass {o['ratio_cpu']:.2f}x; saved {o['saved_cpu_seconds']:.2f} "
        f"CPU-s; decode-only {o['decode_cpu_seconds']:.2f} CPU-s; saved >= {k} x decode-only: "
        f"{yes(o['saved_cpu_ge_skipped_decodes'])}",
        markup=False, highlight=False,
    )


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
