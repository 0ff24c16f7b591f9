"""``nnaudio benchmark``: the speed of the transforms, the extract pipeline or invert.

Light to import (typer only); the measuring lives in :mod:`nnaudio_cli.bench`.
Exit codes as the rest of the CLI: 0 done, 1 fatal, 2 usage, 130 (143 on SIGTERM)
interrupted; errors are one line. Without ``--clips`` a run is short (16 clips); ``--full``
runs the paper's 1,770. Ctrl-C prints the rows measured so far. A load average above the
core count is one warning line on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, List, Optional

import typer

from nnaudio_cli.errors import EXIT_OK, CliError, error
from nnaudio_cli.plumbing.flags import (
    check_verbosity,
    device_option,
    examples,
    quiet_option,
    verbose_option,
)

NAME = "benchmark"
EPILOG = examples(
    "nnaudio benchmark --full --json bench-1770.json",
    "nnaudio benchmark -t stft,mel --clips 64 --against librosa",
    "nnaudio benchmark --pipeline --input data/ -c mel128 -c cqt84 -c mfcc --json b.json",
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
        None, "--clips", min=1,
        help="Clips (default 16, or 1770 with --full; with --input: every file).",
    ),
    full: bool = typer.Option(
        False, "--full",
        help="The nnAudio paper's whole protocol: 1,770 clips (transforms, --pipeline).",
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
    formats: Optional[str] = typer.Option(
        None, "--formats",
        help="--pipeline: also encode the clips in these formats (comma-separated: wav, "
        "flac, mp3, ogg, opus, webm, m4a, mp4, aac, wma, mkv) and report seconds of audio "
        "decoded per CPU-second for each.",
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
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace existing --json/--plot files (a symlink there is "
        "replaced, never written through)."
    ),
    quiet: bool = quiet_option(),
    verbose: bool = verbose_option(),
    invert: bool = typer.Option(
        False, "--invert",
        help="Time 'nnaudio invert' (iSTFT, iCQT on cqt84 and cqt_invertible, mel "
        "Griffin-Lim) on --clips clips of --samples samples (from --input's recordings, "
        "or synthesised) instead: x real time and SNR (in the preset's band for the CQTs) "
        "per method, next to librosa.icqt and librosa's mel Griffin-Lim.",
    ),
    frontends: bool = typer.Option(
        False, "--frontends",
        help="Time the model front ends (fbank80, mfcc13_kaldi, whisper80, ast128) against "
        "kaldi-native-fbank, transformers and openai-whisper on --seconds of 16 kHz "
        "speech-like audio instead.",
    ),
    seconds: float = typer.Option(
        3600.0, "--seconds", min=1.0, help="--frontends: seconds of audio (in 30 s clips)."
    ),
    busy: int = typer.Option(
        0, "--busy", min=0,
        help="Time the transforms (or --invert's rows) again while N processes spin on the "
        "cores (busy neighbours, stopped afterwards) and show idle and busy side by side.",
    ),
    matrix: bool = typer.Option(
        False, "--matrix",
        help="Every transform x implementation on four workloads (16 kHz x 1 s, 22.05 kHz x "
        "40,000, 44.1 kHz x 80,000, 22.05 kHz x 60 s) on the CPU, plus preset build times.",
    ),
) -> int:
    """Time nnaudio's transforms against torch.stft, librosa and nnAudio2 on one workload."""
    check_verbosity(quiet, verbose)
    clips = _clip_count(clips, full, input_dir is not None, matrix or invert)
    wanted = _split(transform, ALL_TRANSFORMS, "transform")
    peers = _split(against, ALL_PEERS, "peer", allow_none=True)
    from nnaudio_cli.plumbing.outputs import check_new

    for path, flag in ((json_path, "--json"), (plot_path, "--plot")):
        if path is not None:
            check_new(path, overwrite, flag)
    if busy and (pipeline or matrix or frontends):
        raise CliError("--busy times the transform or invert benchmark; it cannot be "
                       "combined with --pipeline, --matrix or --frontends", usage=True)
    if invert:
        return _measured(quiet, lambda: _run_invert(
            clips, samples, sr, device, threads, seed, json_path, quiet, input_dir, busy,
            repeat))
    if frontends:
        return _measured(quiet, lambda: _run_frontends(
            seconds, batch_size, repeat, threads, seed, json_path, quiet))
    if plot_path is not None and pipeline:
        raise CliError("--plot draws the transform benchmark; it cannot be combined with "
                       "--pipeline", usage=True)
    if plot_path is not None:
        from importlib.util import find_spec

        if find_spec("matplotlib") is None:
            from nnaudio_cli.plumbing.text import install_hint

            raise CliError(f"--plot needs matplotlib: {install_hint('bench')} "
                           "(or pip install matplotlib)")
    chosen, one_pass = _pipeline_presets(pipeline, presets, list(config))
    wanted_formats = _formats(formats, pipeline)
    if verbose:
        mode = ("matrix" if matrix else
                "one pass vs separate runs " + ",".join(chosen) if one_pass else
                "pipeline " + ",".join(chosen) if pipeline else
                "transforms " + ",".join(wanted))
        print(f"benchmark: {mode}; against {','.join(peers) or 'none'}; device {device}; "
              f"clips {clips or 'default'} x {samples} samples at {sr:g} Hz; repeat {repeat}, "
              f"batch {batch_size}, threads {threads or 'default'}, seed {seed}",
              file=sys.stderr, flush=True)

    def measure() -> int:
        if matrix:
            from nnaudio_cli.bench.matrix import matrix_report

            matrix_report(peers, clips, repeat, threads, seed, json_path, quiet)
        else:
            from nnaudio_cli.bench import transforms

            transforms.transforms_report(
                wanted, peers, device, clips, samples, sr, input_dir, repeat, batch_size,
                threads, seed, pipeline, workers, json_path, plot_path, quiet, chosen,
                "librosa" in peers, one_pass=one_pass, formats=wanted_formats, busy=busy)
        return EXIT_OK

    return _measured(quiet, measure)


def _measured(quiet: bool, run: Callable[[], int]) -> int:
    """``run()`` after one warning line when the load average is
    above the core count; Ctrl-C or SIGTERM end it as one line with exit 130 or 143 (the
    transform benchmark prints the rows it finished first)."""
    from nnaudio_cli.plumbing import interrupts

    restore_signals = interrupts.install()  # SIGTERM stops the run like Ctrl-C (exit 143)
    try:
        from nnaudio_cli.plumbing.preload import Preload

        # torch loads in a thread: a signal meanwhile is acted on here, never inside its
        # C++ initialisers
        Preload(("torch", "nnaudio_cli.bench.transforms")).wait()
        from nnaudio_cli.bench.machine import load_warning

        warning = load_warning()
        if warning and not quiet:
            print(f"nnaudio: warning: {warning}", file=sys.stderr, flush=True)
        return run()
    except KeyboardInterrupt as e:
        error(f"interrupted {e}" if str(e) else "interrupted")
        return interrupts.interrupted_exit(interrupts.exit_code())
    finally:
        restore_signals()


def _clip_count(clips: Optional[int], full: bool, folder: bool, own_default: bool
                ) -> Optional[int]:
    """The clip count to run: ``--clips``, 1,770 with ``--full``, else the quick default
    (``None``: every file of ``--input``, or the mode's own count for --matrix/--invert)."""
    from nnaudio_cli.bench.workload import N_CLIPS, QUICK_CLIPS

    if full and clips is not None:
        raise CliError(f"--full runs {N_CLIPS} clips; give --full or --clips, not both",
                       usage=True)
    if full and (folder or own_default):
        raise CliError("--full is the synthetic 1,770-clip protocol of the transform and "
                       "--pipeline benchmarks; it cannot be combined with --input, --matrix "
                       "or --invert", usage=True)
    if full:
        return N_CLIPS
    return clips if clips is not None or folder or own_default else QUICK_CLIPS


def _formats(value: Optional[str], pipeline: bool) -> Optional[list[str]]:
    """The formats of ``--formats`` (checked: known names, and FFmpeg where they need it)."""
    if value is None:
        return None
    if not pipeline:
        raise CliError("--formats is part of the pipeline benchmark; add --pipeline",
                       usage=True)
    from nnaudio_cli.bench.formats import FORMATS
    from nnaudio_cli.extract import containers

    chosen = _split(value, tuple(FORMATS), "format")
    need = [f for f in chosen if FORMATS[f][1] == "ffmpeg"]
    if need and not containers.available():
        raise CliError(f"--formats {','.join(need)} needs FFmpeg (PyAV): {containers.INSTALL}")
    return chosen


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
                threads: Optional[int], seed: int, json_path: Optional[Path], quiet: bool,
                input_dir: Optional[Path] = None, busy: int = 0, repeat: int = 1) -> int:
    """``--invert``: :func:`nnaudio_cli.bench.invert.invert_report`."""
    from nnaudio_cli.bench.invert import invert_report

    try:
        invert_report(clips, samples, sr, device, threads, seed, json_path, quiet, input_dir,
                      busy, repeat)
    except RuntimeError as e:  # an extract that failed: one line, exit 1
        if isinstance(e, CliError):
            raise
        raise CliError(str(e)) from None
    return EXIT_OK


def _run_frontends(seconds: float, batch_size: int, repeat: int, threads: Optional[int],
                   seed: int, json_path: Optional[Path], quiet: bool) -> int:
    """``--frontends``: :func:`nnaudio_cli.bench.frontends.run_frontends` (interrupts are
    :func:`_measured`'s)."""
    import json

    from nnaudio_cli.bench.frontends import render_frontends, run_frontends
    from nnaudio_cli.bench.machine import machine_info
    from nnaudio_cli.plumbing.outputs import write_text

    def log(msg: str) -> None:
        if not quiet:
            print(f"benchmark: {msg}", file=sys.stderr, flush=True)

    report = run_frontends(seconds, 30.0, batch_size, repeat, threads, seed, log)
    report["machine"] = machine_info()
    if json_path is not None:
        write_text(json_path, json.dumps(report, indent=2) + "\n")
        log(f"wrote {json_path}")
    render_frontends(report)
    return EXIT_OK
