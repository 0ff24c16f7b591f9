"""The ``nnaudio`` command line: ``extract`` (folder of audio -> HDF5) and ``info``.

Exit codes: 0 everything written; 1 fatal error (bad config, unwritable output, no audio);
2 usage error (bad flag or value); 3 finished, but some inputs could not be read. Errors are
printed as one line on stderr (``NNAUDIO_DEBUG=1`` adds the traceback of internal errors).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from enum import Enum
from pathlib import Path
from typing import Any, List, Optional

import typer
from typer.core import TyperGroup

try:  # typer >= 0.20 vendors click as typer._click
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - older typer on top of click
    from click import exceptions as click_exc

EXIT_OK, EXIT_FATAL, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


_ARGV: List[str] = []  # the arguments of the current invocation (stored in the output)


def _error(message: str) -> None:
    text = " ".join(str(message).split())
    print(f"nnaudio: error: {text}", file=sys.stderr, flush=True)


class OneLineErrorGroup(TyperGroup):
    """A Typer group whose usage errors are one line (``nnaudio: error: ...``), exit code 2."""

    def main(  # type: ignore[override]
        self,
        args: Optional[List[str]] = None,
        prog_name: Optional[str] = None,
        complete_var: Optional[str] = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        global _ARGV
        _ARGV = [str(a) for a in (sys.argv[1:] if args is None else args)]
        try:
            rv = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
        except click_exc.UsageError as e:
            if type(e).__name__ == "NoArgsIsHelpError" and e.ctx is not None:
                print(e.ctx.get_help(), file=sys.stderr)
                rv = EXIT_USAGE
            else:
                hint = f" (see '{e.ctx.command_path} --help')" if e.ctx else ""
                _error(e.format_message() + hint)
                rv = EXIT_USAGE
        except (click_exc.ClickException, typer.TyperException) as e:
            _error(e.format_message())
            rv = e.exit_code
        except (getattr(click_exc, "Abort", typer.Abort), typer.Abort):
            _error("aborted")
            rv = 130
        code = rv if isinstance(rv, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=OneLineErrorGroup,
    name="nnaudio",
    help="Batch audio feature extraction into HDF5 with nnaudio_core transforms.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class Compression(str, Enum):
    """HDF5 compression of /features/data."""

    lzf = "lzf"
    gzip = "gzip"
    none = "none"


class NanPolicy(str, Enum):
    """What to do with NaN/Inf input samples."""

    reject = "reject"
    zero = "zero"


@app.command()
def extract(
    input_dir: Path = typer.Argument(
        ..., exists=True, file_okay=False, dir_okay=True, help="Folder searched recursively."
    ),
    output: Path = typer.Argument(..., dir_okay=False, help="HDF5 file to write."),
    config: Optional[str] = typer.Option(
        None, "--config", "-c", help="Preset: a TOML path or a name in configs/ (mel128, ...)."
    ),
    transform: Optional[str] = typer.Option(
        None, "--transform", "-t", help="Transform class or name: stft, mel, mfcc, ..."
    ),
    set_: List[str] = typer.Option(
        [], "--set", "-s", help="Override a transform parameter: key=value (repeatable)."
    ),
    sr: Optional[float] = typer.Option(None, "--sr", help="Target sample rate in Hz."),
    mono: bool = typer.Option(
        True, "--mono/--keep-channels", help="Mix to mono (default) or store every channel."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    workers: Optional[int] = typer.Option(
        None, "--workers", "-j", min=0, help="Decoder processes (default: cores - 1; 0: inline)."
    ),
    batch_seconds: float = typer.Option(
        60.0, "--batch-seconds", min=0.01, help="Audio seconds per transform batch."
    ),
    segment_seconds: Optional[float] = typer.Option(
        None, "--segment-seconds", min=0.01,
        help="Files longer than this are streamed in segments (default: --batch-seconds).",
    ),
    compression: Compression = typer.Option(Compression.lzf, "--compression"),
    threads: Optional[int] = typer.Option(
        None, "--threads", min=1, help="torch CPU threads (default: cores left by --workers)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing OUTPUT (and discard OUTPUT.parts/)."
    ),
    resume: bool = typer.Option(
        False, "--resume",
        help="Continue an interrupted run from OUTPUT.parts/ (changed inputs are recomputed).",
    ),
    nan_policy: NanPolicy = typer.Option(
        NanPolicy.reject, "--nan-policy",
        help="Inputs with NaN/Inf samples: reject (failed row) or zero (replaced by 0).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> int:
    """Compute features of every audio file under INPUT_DIR and write them to OUTPUT."""
    from nnaudio_cli.config import ConfigError, resolve
    from nnaudio_cli.devices import DeviceError, resolve_device

    try:
        cfg = resolve(config, transform, list(set_), sr)
        dev = resolve_device(device)
    except (ConfigError, DeviceError) as e:
        _error(str(e))
        return EXIT_USAGE if e.usage else EXIT_FATAL
    if resume and overwrite:
        _error("--resume and --overwrite exclude each other")
        return EXIT_USAGE
    if output.exists() and not (overwrite or resume):
        _error(f"{output} exists; pass --overwrite to replace it or --resume to update it")
        return EXIT_USAGE
    if not output.parent.exists():
        _error(f"cannot write {output}: folder {output.parent} does not exist")
        return EXIT_FATAL
    return _run_extract(
        input_dir, output, cfg, dev, mono, workers, batch_seconds, segment_seconds,
        compression.value, threads, json_out, quiet, resume, overwrite, nan_policy.value,
    )


def _run_extract(
    input_dir: Path,
    output: Path,
    cfg: Any,
    dev: Any,
    mono: bool,
    workers: Optional[int],
    batch_seconds: float,
    segment_seconds: Optional[float],
    compression: str,
    threads: Optional[int],
    json_out: bool,
    quiet: bool,
    resume: bool = False,
    overwrite: bool = False,
    nan_policy: str = "reject",
) -> int:
    import signal

    import torch

    from nnaudio_cli.parts import ResumeError
    from nnaudio_cli.pipeline import (
        ExtractError,
        ExtractOptions,
        Interrupted,
        default_threads,
        default_workers,
        run_extract,
    )
    from nnaudio_cli.progress import make_reporter
    from nnaudio_core import ParameterError

    n_workers = default_workers() if workers is None else workers
    torch.set_num_threads(threads or default_threads(dev, n_workers))
    opts = ExtractOptions(
        input_dir=input_dir,
        output=output,
        config=cfg,
        device=dev,
        mono=mono,
        workers=n_workers,
        batch_seconds=batch_seconds,
        segment_seconds=segment_seconds,
        compression=compression,
        command_line=["nnaudio"] + _ARGV,
        resume=resume,
        overwrite=overwrite,
        nan_policy=nan_policy,
    )
    got: list[int] = []

    def on_term(signum: int, frame: Any) -> None:  # pre-emption: stop like Ctrl-C
        got.append(signum)
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, on_term)
    try:
        summary = run_extract(opts, make_reporter(quiet))
    except ParameterError as e:
        _error(f"invalid {cfg.transform} parameters: {e}")
        return EXIT_FATAL
    except ResumeError as e:
        _error(str(e))
        return EXIT_USAGE if e.usage else EXIT_FATAL
    except (ExtractError, OSError) as e:
        _error(str(e))
        from nnaudio_cli.store import LEAKED

        if LEAKED:  # an HDF5 handle failed mid-write: closing it may crash; skip teardown
            sys.stdout.flush()
            os._exit(EXIT_FATAL)
        return EXIT_FATAL
    except Interrupted as e:
        print(f"nnaudio: interrupted; {e.kept} of {e.total} inputs kept; rerun with --resume "
              "to continue", file=sys.stderr, flush=True)
        return 143 if got else 130
    except KeyboardInterrupt:  # before the run started: nothing to keep
        print("nnaudio: interrupted; nothing written", file=sys.stderr, flush=True)
        return 143 if got else 130
    except Exception as e:  # noqa: BLE001 - a bug: one line, traceback on request
        if os.environ.get("NNAUDIO_DEBUG"):
            traceback.print_exc()
        _error(f"internal error: {type(e).__name__}: {e} (set NNAUDIO_DEBUG=1 for a traceback)")
        return EXIT_FATAL
    finally:
        signal.signal(signal.SIGTERM, old_term)
    result = summary.as_dict()
    for f in summary.failures:
        print(f"nnaudio: failed: {f['key']}: {f['reason']}", file=sys.stderr)
    if not quiet:
        resumed = f" ({summary.resumed} kept from before)" if summary.resumed else ""
        print(
            f"nnaudio: wrote {output}: {summary.ok}/{summary.files} files{resumed}, "
            f"{summary.audio_seconds / 3600:.3f} h audio in {summary.wall_seconds:.1f} s "
            f"({result['audio_seconds_per_second']:.0f}x real time)",
            file=sys.stderr,
        )
    if json_out:
        print(json.dumps(result, indent=2))
    return EXIT_PARTIAL if summary.failed else EXIT_OK


@app.command()
def info(
    features: Path = typer.Argument(..., exists=True, dir_okay=False, help="HDF5 feature file."),
    json_out: bool = typer.Option(False, "--json", help="Print the description as JSON."),
    failed: bool = typer.Option(False, "--failed", help="List every failed input."),
) -> int:
    """Show what FEATURES contains and how it was made."""
    from nnaudio_cli.describe import describe, render

    try:
        desc = describe(features)
    except (OSError, ValueError, KeyError) as e:
        _error(f"{features}: not a readable nnaudio feature file ({' '.join(str(e).split())})")
        return EXIT_FATAL
    import h5py

    from nnaudio_cli.store import validate_layout

    try:
        with h5py.File(features, "r") as h5:
            validate_layout(h5)
    except (OSError, ValueError) as e:
        _error(f"{features}: {e}")
        return EXIT_FATAL
    if json_out:
        print(json.dumps(desc, indent=2))
    else:
        render(desc, show_all_failed=failed)
    return EXIT_OK


from nnaudio_cli.benchmark_cli import benchmark  # noqa: E402 - `nnaudio benchmark`

app.command()(benchmark)

from nnaudio_cli.invert_cli import invert  # noqa: E402 - `nnaudio invert`

app.command()(invert)


def main() -> None:
    """Entry point for ``python -m nnaudio_cli``."""
    app()
