"""``nnaudio benchmark --pipeline``: the extract command against its parts, and one pass of
several features against separate runs.

Pipeline (``--pipeline``). For each preset, on one folder of audio files, in one run:

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
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from nnaudio_cli.bench.peers import (
    librosa_loop,
)
from nnaudio_cli.bench.workload import (
    PipelineError,
    clips_from_folder,
    piano_clips,
)
from nnaudio_cli.plumbing.text import count

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


@dataclass(frozen=True)
class PipelineSetup:
    """What every pipeline measurement shares: the audio (``folder``, or, when it is None,
    clips that ``write_clips`` writes into a temporary folder), the ``extract`` settings,
    the rounds (medians of ``repeat``) and where progress lines go (``log``)."""

    folder: Path | None
    write_clips: Callable[[Path], None]
    workers: int
    device: Any
    threads: int | None
    repeat: int
    log: Callable[[str], None]


def run_pipeline(setup: PipelineSetup, presets: list[str], librosa: bool = True,
                 ) -> dict[str, Any]:
    """Measure every column of the module docstring for each preset (see there)."""
    from nnaudio_cli.config import resolve

    workers, device, threads = setup.workers, setup.device, setup.threads
    repeat, log = setup.repeat, setup.log
    with _workspace(threads, device) as (tmp, n_threads):
        generated = setup.folder is None
        folder, keys, paths = _audio_folder(setup.folder, setup.write_clips, tmp, log)
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


def run_one_pass(setup: PipelineSetup, presets: list[str]) -> dict[str, Any]:
    """Several features in one ``extract`` pass against one run per feature, and the
    decode-only time (see the module docstring); returns the ``one_pass`` section."""
    import h5py

    from nnaudio_cli.config import resolve_features
    from nnaudio_cli.extract.resample import rates_of
    from nnaudio_cli.featurefile.layout import feature_names

    feats = resolve_features(list(presets))
    names = [f.name for f in feats]
    rates = rates_of([float(f.sr) for f in feats])
    workers, device, threads = setup.workers, setup.device, setup.threads
    repeat, log = setup.repeat, setup.log
    with _workspace(threads, device) as (tmp, n_threads):
        generated = setup.folder is None
        folder, keys, paths = _audio_folder(setup.folder, setup.write_clips, tmp, log)
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


def formats_section(formats: list[str], input_dir: Optional[Path], n_clips: Optional[int], n: int,
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
