"""The root ``nnaudio`` command: the Typer app, its one-line error reporting, ``--version``.

Exit codes and the error reporter are defined in :mod:`nnaudio_cli.errors` (re-exported
here): 0 everything written; 1 fatal error; 2 usage error; 3 finished, but some inputs could
not be used. Every error is one ``nnaudio: error: ...`` line on stderr; a
:class:`~nnaudio_cli.errors.CliError` raised by a command maps to exit code 2 (``usage``) or
1; anything else is an internal error (``NNAUDIO_DEBUG=1`` adds its traceback). Library
warnings become one ``nnaudio: warning: ...`` line per distinct message (none with ``-q``).

Ctrl-C and SIGTERM are taken over for the whole invocation (:mod:`nnaudio_cli.plumbing.interrupts`):
a signal before a command has its own handling (while Typer parses the flags, while a
command imports) is one ``interrupted`` line and exit 130 (143 for SIGTERM), never silence
(Typer turns a ``KeyboardInterrupt`` into a quiet exit 130) nor a death by SIGINT; and the
program then ends with ``os._exit`` after flushing, so the interpreter's teardown never runs
over a C extension a signal interrupted half-way through its import. A command that loaded
torch also ends with ``os._exit`` (after its files are closed and the streams flushed): the
interpreter's teardown of torch costs about 0.5 CPU-s and does nothing a finished command
needs.

The commands live in :mod:`nnaudio_cli.commands`, one module each; this module registers them.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import warnings
from typing import Any, List, Optional

import typer
from typer.core import TyperGroup

from nnaudio_cli.commands import (
    benchmark,
    export,
    extract,
    info,
    invert,
    merge,
    plot,
    presets,
)
from nnaudio_cli.errors import (
    EXIT_FATAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    CliError,
    error,
    report,
)
from nnaudio_cli.plumbing import interrupts, preload
from nnaudio_cli.plumbing.interrupts import is_program

try:  # typer >= 0.20 vendors click as typer._click
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - older typer on top of click
    from click import exceptions as click_exc

__all__ = ["EXIT_FATAL", "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "CliError", "app", "main",
           "report"]

# library warnings: one ``nnaudio: warning: ...`` line per distinct message; none with -q
_WARNINGS: dict[str, Any] = {"quiet": False, "seen": set()}
# whether the command's own code was entered (a signal before it is reported here)
_ENTERED = [False]


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
    """A Typer group whose errors are one line (``nnaudio: error: ...``): usage errors exit
    2, a command's :class:`CliError` 2 or 1, anything else 1 (internal error).

    The arguments of the invocation are passed to the commands as ``ctx.obj["argv"]``
    (``extract`` stores them in its output).
    """

    def main(  # type: ignore[override]
        self,
        args: Optional[List[str]] = None,
        prog_name: Optional[str] = None,
        complete_var: Optional[str] = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = [str(a) for a in (sys.argv[1:] if args is None else args)]
        extra.setdefault("obj", {"argv": argv})
        old_show = warnings.showwarning
        warnings.showwarning = _show_warning
        _WARNINGS.update(quiet=False, seen=set())
        _ENTERED[0] = False
        restore = interrupts.install() if interrupts.can_install() else (lambda: None)
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
                error(e.format_message() + hint)
                rv = EXIT_USAGE
        except (click_exc.ClickException, typer.TyperException) as e:
            error(e.format_message())
            rv = e.exit_code
        except (getattr(click_exc, "Abort", typer.Abort), typer.Abort):
            error("aborted")
            rv = EXIT_INTERRUPTED
        except KeyboardInterrupt:  # a signal outside the commands (Typer's own code)
            rv = _interrupted()
        except Exception as e:  # noqa: BLE001 - CliError or a bug: one line either way
            rv = report(e)
        finally:
            warnings.showwarning = old_show
            restore()
        code = rv if isinstance(rv, int) else 0
        if interrupts.RECEIVED and not _ENTERED[0]:  # Typer's quiet exit 130 while parsing
            code = _interrupted()
        signalled = bool(interrupts.RECEIVED)
        interrupts.RECEIVED.clear()  # this invocation's; a next one (in-process) starts clean
        if standalone_mode:
            if is_program():  # the work is done: a late Ctrl-C must not break the exit
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                if signalled or "torch" in sys.modules or preload.running():
                    # after a signal, or beside a background import: no teardown over a
                    # half-imported extension; with torch loaded: its teardown alone is
                    # ~0.5 CPU-s (every file the command wrote is closed by now; stdout
                    # and stderr are flushed here)
                    interrupts.flush_streams()
                    os._exit(code)
            sys.exit(code)
        return code

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The subcommand; its ``quiet`` flag also silences library warnings, and a signal
        its own code does not handle is one ``interrupted`` line."""
        cmd = super().get_command(ctx, cmd_name)
        callback = getattr(cmd, "callback", None)
        if callback is not None and not getattr(callback, "_wrapped_by_app", False):
            has_quiet = any(p.name == "quiet" for p in cmd.params)

            @functools.wraps(callback)
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                _ENTERED[0] = True
                if has_quiet:
                    quiet_warnings(bool(kwargs.get("quiet", False)))
                try:
                    return callback(*args, **kwargs)
                except KeyboardInterrupt:
                    return _interrupted()

            wrapped._wrapped_by_app = True  # type: ignore[attr-defined]
            cmd.callback = wrapped
        return cmd


def _interrupted() -> int:
    """Report a signal no command handled: one line; exit code 130 (143 for SIGTERM)."""
    error("interrupted")
    return interrupts.exit_code() if interrupts.RECEIVED else EXIT_INTERRUPTED


app = typer.Typer(
    cls=OneLineErrorGroup,
    name="nnaudio",
    help="Batch audio feature extraction into HDF5 with nnaudio_core transforms.",
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

    from nnaudio_cli import DISTRIBUTION
    from nnaudio_core import __version__ as core_version

    print(
        f"nnaudio {version(DISTRIBUTION, core_version)} "
        f"(torch {version('torch', 'not installed')}, python {sys.version.split()[0]})"
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


for _module in (extract, merge, info, invert, benchmark, export, presets, plot):
    app.command(name=_module.NAME, epilog=_module.EPILOG)(_module.run)


def main() -> None:
    """Entry point of the ``nnaudio`` program (``python -m nnaudio_cli`` and the script). A
    Ctrl-C before a command has taken over the signals (while the app is still being built)
    is one line and exit 130, not a traceback."""
    try:
        app()
    except KeyboardInterrupt:
        error("interrupted; nothing written")
        if is_program():  # at once, as after any signal (see the module notes)
            interrupts.flush_streams()
            os._exit(EXIT_INTERRUPTED)
        raise SystemExit(EXIT_INTERRUPTED) from None
