"""``nnaudio benchmark``: the speed of the transforms, the extract pipeline or invert.

Light to import (typer only); the measuring lives in :mod:`nnaudio_cli.bench`.
Exit codes as the rest of the CLI: 0 done, 1 fatal, 2 usage; errors are one line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

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
    "nnaudio benchmark --pipeline --input data/ -c mel128 -c cqt84 -c mfcc --json b.json",
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
    presets: Optional[str] = typer.Option(
        None, "--presets",
        help="--pipeline: comma-separated presets to run (mel128, cqt84, stft, mfcc; "
        "default: all four).",
    ),
    config: List[str] = typer.Option(
        [], "--config", "-c",
        help="--pipeline: a preset (name or TOML path). Once: as --presets with one preset. "
        "Repeated: one 'extract -c A -c B ...' pass against one run per preset, and the "
        "decode time the one pass saves.",
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
    busy: int = typer.Option(
        0, "--busy", min=0,
        help="Time the transforms again while N processes spin on the cores (busy "
        "neighbours, stopped afterwards) and show idle and busy side by side.",
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
    if busy and (pipeline or invert or matrix):
        raise CliError("--busy times the transform benchmark; it cannot be combined with "
                       "--pipeline, --invert or --matrix", usage=True)
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
    chosen, one_pass = _pipeline_presets(pipeline, presets, list(config))
    if verbose:
        mode = ("matrix" if matrix else
                "one pass vs separate runs " + ",".join(chosen) if one_pass else
                "pipeline " + ",".join(chosen) if pipeline else
                "transforms " + ",".join(wanted))
        print(f"benchmark: {mode}; against {','.join(peers) or 'none'}; device {device}; "
              f"clips {clips or 'default'} x {samples} samples at {sr:g} Hz; repeat {repeat}, "
              f"batch {batch_size}, threads {threads or 'default'}, seed {seed}",
              file=sys.stderr, flush=True)
    try:
        from nnaudio_cli.bench import report

        if matrix:
            report.matrix_report(peers, clips, repeat, threads, seed, json_path, quiet)
        else:
            report.transforms_report(
                wanted, peers, device, clips, samples, sr, input_dir, repeat, batch_size,
                threads, seed, pipeline, workers, json_path, plot_path, quiet, chosen,
                "librosa" in peers, one_pass=one_pass, busy=busy)
        return EXIT_OK
    except KeyboardInterrupt:
        error("interrupted")
        return EXIT_INTERRUPTED


def _pipeline_presets(pipeline: bool, presets: Optional[str],
                      config: list[str]) -> tuple[list[str], bool]:
    """The presets ``--pipeline`` runs, and whether several ``--config`` ask for the one-pass
    comparison (their names and files are checked as ``extract`` checks them)."""
    from nnaudio_cli.bench.workload import PRESETS

    if config and not pipeline:
        raise CliError("--config chooses the features of --pipeline; add --pipeline (the "
                       "transform benchmark takes --transform)", usage=True)
    if config and presets is not None:
        raise CliError("give --presets or --config, not both", usage=True)
    if len(config) > 1:
        from nnaudio_cli.config import resolve_features

        resolve_features(config)  # unknown preset, bad TOML, one name twice: one line
        return config, True
    value = config[0] if config else presets
    return _split(value or ",".join(PRESETS), PRESETS, "preset"), False


def _run_invert(clips: Optional[int], samples: int, sr: float, device: str,
                threads: Optional[int], seed: int, json_path: Optional[Path], quiet: bool) -> int:
    """``--invert``: :func:`nnaudio_cli.bench.report.invert_report`."""
    from nnaudio_cli.bench.report import invert_report

    try:
        invert_report(clips, samples, sr, device, threads, seed, json_path, quiet)
    except RuntimeError as e:  # an extract that failed: one line, exit 1
        if isinstance(e, CliError):
            raise
        raise CliError(str(e)) from None
    return EXIT_OK
