"""The CLI's error policy: exit codes, the one error base and the one error reporter.

Exit codes: 0 everything written; 1 fatal error (bad preset, unwritable output, no audio);
2 usage error (bad flag or value); 3 finished, but some inputs could not be used. Every error a
user can cause is one ``nnaudio: error: ...`` line on stderr, never a traceback
(``NNAUDIO_DEBUG=1`` adds the traceback of internal errors).

Light to import (standard library only): the decoder worker processes import it too. The
commands (:mod:`nnaudio_cli.commands`) take their exit codes from here, not from
:mod:`nnaudio_cli.app`, which imports them (no import cycle).
"""

from __future__ import annotations

import os
import sys
import traceback

EXIT_OK, EXIT_FATAL, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # Ctrl-C before any work was kept


class CliError(Exception):
    """An error the user can cause, reported as one line.

    Parameters
    ----------
    message : str
        The one-line reason (whitespace runs are folded to one space when shown).
    usage : bool
        True when the user should change the command line (exit code 2), False for a
        problem with a file, the machine or the data (exit code 1).
    """

    def __init__(self, message: str, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage

    @property
    def exit_code(self) -> int:
        """2 for a usage error, else 1."""
        return EXIT_USAGE if self.usage else EXIT_FATAL


def error(message: object) -> None:
    """Print ``nnaudio: error: MESSAGE`` as one line on stderr."""
    text = " ".join(str(message).split())
    print(f"nnaudio: error: {text}", file=sys.stderr, flush=True)


def report(exc: BaseException, prefix: str = "") -> int:
    """Report ``exc`` as one line on stderr and return the exit code it maps to.

    :class:`CliError` -> 2 (usage) or 1; ``OSError`` -> 1; ``KeyboardInterrupt`` -> 130;
    anything else is a bug: ``internal error: TYPE: message`` (the traceback too with
    ``NNAUDIO_DEBUG=1``), exit code 1. ``prefix`` is put before the message.
    """
    if isinstance(exc, CliError):
        error(prefix + str(exc))
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        error(prefix + "interrupted")
        return EXIT_INTERRUPTED
    if isinstance(exc, OSError):
        error(prefix + str(exc))
        return EXIT_FATAL
    if os.environ.get("NNAUDIO_DEBUG"):
        traceback.print_exception(type(exc), exc, exc.__traceback__)
    error(f"{prefix}internal error: {type(exc).__name__}: {exc} "
          "(set NNAUDIO_DEBUG=1 for a traceback)")
    return EXIT_FATAL


class InputError(CliError, ValueError):
    """An input that cannot be used; the message is the one-line reason (a failed row's)."""
