"""``nnaudio benchmark`` (the default mode): each transform against its peers, in one process
on the same clips; with ``--busy N`` again beside N spinning neighbours.

Transform benchmark. For every transform and implementation ("candidate"), in one process
and on the same clips:
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from nnaudio_cli.bench import busy as busy_lib
from nnaudio_cli.bench import measure as measuring
from nnaudio_cli.bench import peers as peer_lib
from nnaudio_cli.bench.machine import machine_info, usable_cores
from nnaudio_cli.bench.measure import SPEEDUP_DEFINITION, add_ratios, memory_method, synchronize
from nnaudio_cli.bench.peers import (
    OURS,
    PEER_LABELS,
    PEER_PACKAGES,
    candidates,
)
from nnaudio_cli.bench.pipeline import (
    PipelineSetup,
    formats_section,
    render_one_pass,
    render_pipeline,
    run_one_pass,
    run_pipeline,
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
    stage,
    write_wavs,
)
from nnaudio_cli.plumbing.outputs import replacing, write_text
from nnaudio_cli.plumbing.text import count


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
        synchronize(w.device)
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
                row = measuring.measure(c, w, staged)  # looked up per call (tests wrap it)
                if c.share_key:
                    shared[c.share_key] = row
                log(f"{transform} {c.impl}: {row['seconds']:.3f} s "
                    f"({row['clips_per_second']:.1f} clips/s)")
            rows.append(row)
            add_ratios(rows)
            results.append(row)
    return results, skipped


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

        setup = PipelineSetup(input_dir, write, n_workers, dev, threads, repeat, log)
        if one_pass:
            pipe = run_one_pass(setup, presets or [])
        else:
            pipe = run_pipeline(setup, presets or ["mel128"],
                                librosa=librosa_loop and "librosa" not in missing)
        if input_dir:
            workload.update(clips=pipe["files"], audio_seconds=pipe["audio_seconds"])
        if formats:
            pipe["formats"] = formats_section(formats, input_dir, n_clips, n, samples, sr, seed,
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


def _render_interrupted(results: list[dict[str, Any]], skipped: list[dict[str, Any]],
                        workload: dict[str, Any], dev: Any, started: float) -> None:
    """The rows an interrupted transform benchmark finished, as the usual table."""
    if results:
        render({"workload": workload, "machine": machine_info(dev), "results": results,
                "skipped": skipped, "pipeline": None,
                "elapsed_seconds": round(time.time() - started, 3)})


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
