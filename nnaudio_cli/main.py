"""The ``nnaudio`` command line: ``extract`` (folder of audio -> HDF5) and ``info``.

Exit codes: 0 everything written; 1 fatal error (bad config, unwritable output, no audio);
2 usage error (bad flag or value); 3 finished, but some inputs could not be read. Errors are
printed as one line on stderr (``NNAUDIO_DEBUG=1`` adds the traceback of internal errors).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import traceback
import warnings
from enum import Enum
from pathlib import Path
from typing import Any, List, Optional

import typer
from typer.core import TyperGroup

from nnaudio_cli.flags import positive_finite
from nnaudio_cli.text import shown_key

try:  # typer >= 0.20 vendors click as typer._click
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - older typer on top of click
    from click import exceptions as click_exc

EXIT_OK, EXIT_FATAL, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


_ARGV: List[str] = []  # the arguments of the current invocation (stored in the output)


def _error(message: str) -> None:
    text = " ".join(str(message).split())
    print(f"nnaudio: error: {text}", file=sys.stderr, flush=True)


# library warnings: one ``nnaudio: warning: ...`` line per distinct message; none with -q
_WARNINGS: dict[str, Any] = {"quiet": False, "seen": set()}


def _show_warning(
    message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    text = " ".join(str(message).split())
    if _WARNINGS["quiet"] or text in _WARNINGS["seen"]:
        return
    _WARNINGS["seen"].add(text)
    try:
        print(f"nnaudio: warning: {text}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def quiet_warnings(quiet: bool = True) -> None:
    """Silence (``-q``) or show the library warnings of this invocation."""
    _WARNINGS["quiet"] = quiet


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
        old_show = warnings.showwarning
        warnings.showwarning = _show_warning
        _WARNINGS.update(quiet=False, seen=set())
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
        finally:
            warnings.showwarning = old_show
        code = rv if isinstance(rv, int) else 0
        if standalone_mode:
            if _is_program():  # the work is done: a late Ctrl-C must not break the exit
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            sys.exit(code)
        return code

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The subcommand; one with a ``quiet`` flag also silences library warnings by it."""
        cmd = super().get_command(ctx, cmd_name)
        callback = getattr(cmd, "callback", None)
        if (
            callback is not None
            and not getattr(callback, "_sets_quiet_warnings", False)
            and any(p.name == "quiet" for p in cmd.params)
        ):

            @functools.wraps(callback)
            def quiet_aware(*args: Any, **kwargs: Any) -> Any:
                quiet_warnings(bool(kwargs.get("quiet", False)))
                return callback(*args, **kwargs)

            quiet_aware._sets_quiet_warnings = True  # type: ignore[attr-defined]
            cmd.callback = quiet_aware
        return cmd


app = typer.Typer(
    cls=OneLineErrorGroup,
    name="nnaudio",
    help="Batch audio feature extraction into HDF5 with nnaudio_core transforms.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if not value:
        return
    from importlib import metadata

    def version(dist: str, fallback: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return fallback

    from nnaudio_core import __version__ as core_version

    print(
        f"nnaudio {version('nnaudio', core_version)} (torch {version('torch', 'not installed')}, "
        f"python {sys.version.split()[0]})"
    )
    raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version,
        help="Print the nnaudio and torch versions and exit.",
    ),
) -> None:
    pass


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
    sr: Optional[float] = typer.Option(
        None, "--sr", callback=positive_finite("Hz"), help="Target sample rate in Hz."
    ),
    mono: bool = typer.Option(
        True, "--mono/--keep-channels", help="Mix to mono (default) or store every channel."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    workers: Optional[int] = typer.Option(
        None, "--workers", "-j", min=0, max=256,
        help="Decoder processes (default: cores - 1; 0: inline).",
    ),
    batch_seconds: float = typer.Option(
        60.0, "--batch-seconds", min=0.01, callback=positive_finite("seconds"),
        help="Audio seconds per transform batch.",
    ),
    segment_seconds: Optional[float] = typer.Option(
        None, "--segment-seconds", min=0.01, callback=positive_finite("seconds"),
        help="Files longer than this are streamed in segments (default: --batch-seconds).",
    ),
    compression: Compression = typer.Option(Compression.lzf, "--compression"),
    threads: Optional[int] = typer.Option(
        None, "--threads", min=1, max=1024,
        help="torch CPU threads (default: cores minus the default decoder count; it never "
        "follows --workers, so results do not depend on --workers).",
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
    if resume and overwrite:
        _error("--resume and --overwrite exclude each other")
        return EXIT_USAGE
    if output.exists() and not (overwrite or resume):
        _error(f"{output} exists; pass --overwrite to replace it or --resume to update it")
        return EXIT_USAGE
    from nnaudio_cli.outputs import missing_parent

    why = missing_parent(output)
    if why:
        _error(why)
        return EXIT_FATAL
    from nnaudio_cli import interrupts
    from nnaudio_cli.extract.decode import default_workers, make_decoder

    restore_signals = interrupts.install()  # SIGTERM stops the run like Ctrl-C (exit 143)
    decoder: Any = None
    try:
        # the decoder processes (no torch) start now, while this process imports torch
        n_workers = default_workers() if workers is None else workers
        decoder = make_decoder(n_workers)
        from nnaudio_cli.config import ConfigError, resolve
        from nnaudio_cli.devices import DeviceError, resolve_device

        try:
            cfg = resolve(config, transform, list(set_), sr)
            dev = resolve_device(device)
        except (ConfigError, DeviceError) as e:
            _error(str(e))
            return EXIT_USAGE if e.usage else EXIT_FATAL
        return _run_extract(
            decoder, n_workers, input_dir, output, cfg, dev, mono, batch_seconds,
            segment_seconds, compression.value, threads, json_out, quiet, resume, overwrite,
            nan_policy.value,
        )
    except KeyboardInterrupt:  # before the run started: nothing to keep
        if decoder is not None:
            decoder.close()
        print("nnaudio: interrupted; nothing written", file=sys.stderr, flush=True)
        return _interrupted_exit(interrupts.exit_code())
    finally:
        restore_signals()
        if decoder is not None:
            decoder.close()


def _flush_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _interrupted_exit(code: int) -> int:
    """Exit code of an interrupted run. As the real program, exit at once: a signal that
    interrupted an import can leave CPython set to re-raise SIGINT at exit, which would turn
    exit code 143 into a death by SIGINT. Within a test runner (CliRunner), just return."""
    if _is_program():
        _flush_streams()
        os._exit(code)
    return code


def _is_program() -> bool:
    """True when this process is the ``nnaudio`` program (not a test runner calling it)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return (spec is not None and spec.name == "nnaudio_cli.__main__") or (
        os.path.basename(getattr(main, "__file__", "") or "") == "nnaudio")


def _run_extract(
    decoder: Any,
    n_workers: int,
    input_dir: Path,
    output: Path,
    cfg: Any,
    dev: Any,
    mono: bool,
    batch_seconds: float,
    segment_seconds: Optional[float],
    compression: str,
    threads: Optional[int],
    json_out: bool,
    quiet: bool,
    resume: bool,
    overwrite: bool,
    nan_policy: str,
) -> int:
    import torch

    from nnaudio_cli import interrupts
    from nnaudio_cli.extract import (
        ExtractError,
        ExtractOptions,
        Interrupted,
        ResumeError,
        default_threads,
        run_extract,
    )
    from nnaudio_cli.progress import make_reporter
    from nnaudio_core import ParameterError

    torch.set_num_threads(threads or default_threads(dev))
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
        note=lambda msg: print(f"nnaudio: note: {msg}", file=sys.stderr, flush=True),
    )
    try:
        summary = run_extract(opts, make_reporter(quiet), decoder)
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
        decoder.close()  # reap the workers before exiting at once
        _flush_streams()
        if e.assembling:
            print(f"nnaudio: interrupted while assembling {output}; all {e.total} inputs are "
                  "kept; rerun with --resume to assemble them", file=sys.stderr, flush=True)
        else:
            print(f"nnaudio: interrupted; {e.kept} of {e.total} inputs kept; rerun with "
                  "--resume to continue", file=sys.stderr, flush=True)
        return _interrupted_exit(interrupts.exit_code())
    except Exception as e:  # noqa: BLE001 - a bug: one line, traceback on request
        if os.environ.get("NNAUDIO_DEBUG"):
            traceback.print_exc()
        _error(f"internal error: {type(e).__name__}: {e} (set NNAUDIO_DEBUG=1 for a traceback)")
        return EXIT_FATAL
    result = summary.as_dict()
    for f in summary.failures:
        reason = " ".join(str(f["reason"]).split())
        print(f"nnaudio: failed: {shown_key(str(f['key']))}: {reason}", file=sys.stderr)
    if not quiet:
        resumed = f" ({summary.resumed} kept from before)" if summary.resumed else ""
        print(
            f"nnaudio: wrote {shown_key(str(output))}: {summary.ok}/{summary.files} files"
            f"{resumed}, "
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
