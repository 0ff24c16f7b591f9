"""``nnaudio benchmark``: the speed of the transforms, the extract pipeline or invert.

Light to import (typer only); the measuring lives in :mod:`nnaudio_cli.bench`.
Exit codes as the rest of the CLI: 0 done, 1 fatal, 2 usage; errors are one line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from nnaudio_cli.errors import EXIT_INTERRUPTED, EXIT_OK, CliError, error
from nnaudio_cli.flags import (
    check_verbosity,
    device_option,
    examples,
    quiet_option,
    verbose_option,
)

NAME = "benchmark"
EPILOG = examples(
    "nnaudio benchmark -t stft,mel --clips 64 --against librosa",
    "nnaudio benchmark --pipeline --input data/ --presets mel128 --json bench.json",
    "nnaudio benchmark --invert --clips 8 --samples 44100",
)
DEFAULT_TRANSFORMS = "stft,mel,cqt1992v2,cqt2010v2"
ALL_TRANSFORMS = ("stft", "mel", "mfcc", "cqt1992v2", "cqt2010v2", "vqt")
ALL_PEERS = ("librosa", "nnaudio2", "torch")


def _split(value: str, valid: tuple[str, ...], what: str, allow_none: bool = False) -> list[str]:
    items = [v.strip().lower() for v in value.split(",") if v.strip()]
    if items == ["all"]:
        return list(valid)
    if allow_none and items in ([], ["none"]):
        return []
    bad = [v for v in items if v not in valid]
    if bad or not items:
        raise CliError(
            f"unknown {what} {', '.join(repr(b) for b in bad) or repr(value)}; "
            f"valid: {', '.join(valid)}, all" + (", none" if allow_none else "")
            + " (see 'nnaudio benchmark --help')",
            usage=True,
        )
    return list(dict.fromkeys(items))


def run(
    transform: str = typer.Option(
        DEFAULT_TRANSFORMS, "--transform", "-t",
        help=f"Comma-separated: {', '.join(ALL_TRANSFORMS)} or all.",
    ),
    device: str = device_option(),
    clips: Optional[int] = typer.Option(
        None, "--clips", min=1, help="Clips (default 1770; with --input: every file)."
    ),
    samples: int = typer.Option(80000, "--samples", min=1, help="Samples per clip."),
    sr: float = typer.Option(44100.0, "--sr", min=1.0, help="Sample rate in Hz."),
    input_dir: Optional[Path] = typer.Option(
        None, "--input", exists=True, file_okay=False, dir_okay=True,
        help="Take clips from this folder's files (samples 20000..20000+SAMPLES) instead "
        "of synthesising them.",
    ),
    against: str = typer.Option(
        ",".join(ALL_PEERS), "--against", help="Peers: librosa, nnaudio2, torch, all or none."
    ),
    repeat: int = typer.Option(3, "--repeat", "-n", min=1, help="Timed passes (median)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Clips per batch."),
    threads: Optional[int] = typer.Option(
        None, "--threads", min=1, help="torch CPU threads (default: all cores)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic clips."),
    pipeline: bool = typer.Option(
        False, "--pipeline",
        help="End-to-end: time 'nnaudio extract -c PRESET' over --input (or generated WAVs) "
        "against decode-only, transform-only and a librosa loop, instead of the transform "
        "benchmark.",
    ),
    presets: str = typer.Option(
        "mel128,cqt84,stft,mfcc", "--presets",
        help="--pipeline: comma-separated presets to run (mel128, cqt84, stft, mfcc).",
    ),
    workers: Optional[int] = typer.Option(
        None, "--workers", "-j", min=0, help="--pipeline: decoder processes (default: cores-1)."
    ),
    json_path: Optional[Path] = typer.Option(
        None, "--json", dir_okay=False, help="Write the full report as JSON here."
    ),
    plot_path: Optional[Path] = typer.Option(
        None, "--plot", dir_okay=False, help="Draw ours vs peers as bars (needs matplotlib)."
    ),
    quiet: bool = quiet_option(),
    verbose: bool = verbose_option(),
    invert: bool = typer.Option(
        False, "--invert",
        help="Time 'nnaudio invert' (iSTFT, iCQT, mel Griffin-Lim) on --clips clips of "
        "--samples samples instead: x real time and SNR per method.",
    ),
    matrix: bool = typer.Option(
        False, "--matrix",
        help="Every transform x implementation on four workloads (16 kHz x 1 s, 22.05 kHz x "
        "40,000, 44.1 kHz x 80,000, 22.05 kHz x 60 s) on the CPU, plus preset build times.",
    ),
) -> int:
    """Time nnaudio's transforms against torch.stft, librosa and nnAudio2 on one workload."""
    check_verbosity(quiet, verbose)
    wanted = _split(transform, ALL_TRANSFORMS, "transform")
    peers = _split(against, ALL_PEERS, "peer", allow_none=True)
    from nnaudio_cli.outputs import check_parent

    for path, flag in ((json_path, "--json"), (plot_path, "--plot")):
        if path is not None:
            check_parent(path, flag)
    if invert:
        return _run_invert(clips, samples, sr, device, threads, seed, json_path, quiet)
    if plot_path is not None and pipeline:
        raise CliError("--plot draws the transform benchmark; it cannot be combined with "
                       "--pipeline", usage=True)
    if plot_path is not None:
        from importlib.util import find_spec

        if find_spec("matplotlib") is None:
            raise CliError("--plot needs matplotlib: pip install 'nnaudio[bench]' "
                           "(or pip install matplotlib)")
    from nnaudio_cli.bench_pipeline import PRESETS

    chosen = _split(presets, PRESETS, "preset")
    try:
        if matrix:
            return _run_matrix(peers, clips, repeat, threads, seed, json_path, quiet)
        return _run(wanted, peers, device, clips, samples, sr, input_dir, repeat, batch_size,
                    threads, seed, pipeline, workers, json_path, plot_path, quiet, chosen,
                    "librosa" in peers)
    except KeyboardInterrupt:
        error("interrupted")
        return EXIT_INTERRUPTED


def _run(
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
) -> int:
    import torch

    from nnaudio_cli import benchmark as bm
    from nnaudio_cli import machine
    from nnaudio_cli.devices import resolve_device

    dev = resolve_device(device_spec)
    started = time.time()

    def log(msg: str) -> None:
        if not quiet:
            print(f"benchmark: {msg}", file=sys.stderr, flush=True)

    workload: dict[str, Any] = {
        "source": "folder" if input_dir else "synthetic",
        "input": str(input_dir) if input_dir else None,
        "seed": None if input_dir else seed,
        "offset": bm.OFFSET if input_dir else 0,
        "samples": samples,
        "sr": sr,
        "n_fft": bm.N_FFT,
        "hop_length": bm.HOP,
        "window": "hann",
        "center": True,
        "pad_mode": "reflect",
        "cqt_pad_mode": bm.cqt_pad_mode(samples, sr),
        "n_mels": bm.N_MELS,
        "n_mfcc": bm.N_MFCC,
        "n_bins": bm.N_BINS,
        "fmin": bm.FMIN,
        "bins_per_octave": bm.BINS_PER_OCTAVE,
        "vqt_gamma": bm.VQT_GAMMA,
        "librosa_cqt_tuning": 0.0,
        "batch_size": batch_size,
        "repeat": repeat,
        "device": str(dev),
        "transforms": wanted,
        "against": peers,
        "mode": "pipeline" if pipeline else "transforms",
        "inputs_staged_on_device": True,
        "memory_method": machine.memory_method(),
    }

    missing = {p: r for p in peers if (r := bm.peer_missing(p)) is not None}
    skipped = [
        {"transform": None, "impl": bm.PEER_LABELS[p], "reason": reason,
         "install": bm.PEER_PACKAGES[p][1]}
        for p, reason in missing.items()
    ]
    for s in skipped:
        log(f"skipping {s['impl']}: {s['reason']} ({s['install']})")

    if pipeline:
        from nnaudio_cli.bench_pipeline import run_pipeline
        from nnaudio_cli.extract import default_workers

        n_workers = default_workers() if workers is None else workers
        n = bm.N_CLIPS if n_clips is None else n_clips
        workload.update(clips=None if input_dir else n,
                        audio_seconds=None if input_dir else n * samples / sr)
        pipe = run_pipeline(
            input_dir, lambda folder: bm.write_wavs(bm.piano_clips(n, samples, sr, seed), sr,
                                                    folder),
            presets or ["mel128"], n_workers, dev, threads, repeat, log, librosa=librosa_loop,
        )
        if input_dir:
            workload.update(clips=pipe["files"], audio_seconds=pipe["audio_seconds"])
        results: list[dict[str, Any]] = []
        skipped = []  # peers play no part in the pipeline mode
    else:
        torch.set_num_threads(threads or machine.usable_cores())
        if input_dir:
            log(f"reading clips from {input_dir}")
            x, info = bm.clips_from_folder(input_dir, n_clips, samples, sr)
            workload.update(info)
        else:
            n = bm.N_CLIPS if n_clips is None else n_clips
            log(f"synthesising {n} clips x {samples} samples (seed {seed})")
            x = bm.piano_clips(n, samples, sr, seed)
        w = bm.Workload(x, sr, batch_size, repeat, dev)
        workload.update(clips=int(x.shape[0]), audio_seconds=w.audio_seconds)
        results, more = bm.run_transforms(w, wanted, peers, missing, log)
        skipped += more
        pipe = None

    report = {
        "schema_version": bm.SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "command_line": ["nnaudio", *sys.argv[1:]] if sys.argv[1:2] == ["benchmark"] else None,
        "speedup_definition": bm.SPEEDUP_DEFINITION,
        "machine": machine.machine_info(dev),
        "workload": workload,
        "results": results,
        "skipped": skipped,
        "pipeline": pipe,
        "elapsed_seconds": round(time.time() - started, 3),
    }
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=2) + "\n")
        log(f"wrote {json_path}")
    bm.render(report)
    if plot_path is not None:
        bm.plot(report, plot_path)
        log(f"wrote {plot_path}")
    return EXIT_OK


def _run_invert(clips: Optional[int], samples: int, sr: float, device: str,
                threads: Optional[int], seed: int, json_path: Optional[Path], quiet: bool) -> int:
    """``--invert``: the measuring lives in :mod:`nnaudio_cli.bench_invert`."""
    from nnaudio_cli.bench_invert import main as bench_invert

    try:
        bench_invert(clips, samples, sr, device, threads, seed, json_path, quiet)
    except RuntimeError as e:  # an extract that failed: one line, exit 1
        if isinstance(e, CliError):
            raise
        raise CliError(str(e)) from None
    return EXIT_OK


def _run_matrix(
    peers: list[str], n_clips: Optional[int], repeat: int, threads: Optional[int], seed: int,
    json_path: Optional[Path], quiet: bool,
) -> int:
    import torch

    from nnaudio_cli import benchmark as bm
    from nnaudio_cli import benchmark_matrix as mx
    from nnaudio_cli import machine

    def log(msg: str) -> None:
        if not quiet:
            print(f"benchmark: {msg}", file=sys.stderr, flush=True)

    started = time.time()
    torch.set_num_threads(threads or machine.usable_cores())
    missing = {p: r for p in peers if (r := bm.peer_missing(p)) is not None}
    for p, reason in missing.items():
        log(f"skipping {bm.PEER_LABELS[p]}: {reason} ({bm.PEER_PACKAGES[p][1]})")
    result = mx.run_matrix(peers, missing, repeat, n_clips, seed, log)
    report = {
        "schema_version": bm.SCHEMA_VERSION,
        "mode": "matrix",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "speedup_definition": bm.SPEEDUP_DEFINITION,
        "machine": machine.machine_info(torch.device("cpu")),
        "repeat": repeat,
        "against": peers,
        "matrix": result,
        "summary": mx.summary(result),
        "elapsed_seconds": round(time.time() - started, 3),
    }
    if json_path is not None:
        json_path.write_text(json.dumps(mx.as_numpy_free(report), indent=2) + "\n")
        log(f"wrote {json_path}")
    print(mx.table_markdown(result))
    s = report["summary"]
    print(f"\nours fastest in {s['won']} of {s['cells']} cells")
    for line in s["lost"]:
        print(f"  lost: {line}")
    for b in result["preset_builds"]:
        print(f"preset {b['preset']}: kernel build {b['build_seconds']:.3f} s")
    return EXIT_OK
