"""Flags shared by the commands, defined once: ``--quiet``/``--verbose``, ``--device``,
``--threads`` and range checks for numeric flags (Typer callbacks).

``--quiet``/``-q`` means the same on every command: no progress, no warnings, only errors
and the final result. ``--verbose``/``-v``: extra detail (the settings a run resolved, every
file written, every failed input). A value out of range is a usage error: one
``nnaudio: error: Invalid value for '--sr': ...`` line and exit code 2, the same as a value
that is not a number at all.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import typer

from nnaudio_cli.errors import CliError

QUIET_HELP = "No progress and no warnings: only errors and the final result."
VERBOSE_HELP = "Extra detail: resolved settings, every file written, every failed input."


def quiet_option() -> Any:
    """``--quiet``/``-q`` (the same on every command)."""
    return typer.Option(False, "--quiet", "-q", help=QUIET_HELP)


def verbose_option() -> Any:
    """``--verbose``/``-v`` (the same on every command)."""
    return typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP)


def check_verbosity(quiet: bool, verbose: bool) -> None:
    """``--quiet`` with ``--verbose`` is a usage error."""
    if quiet and verbose:
        raise CliError("--quiet and --verbose exclude each other", usage=True)


def device_option() -> Any:
    """``--device`` (extract, invert, benchmark)."""
    return typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps.")


def threads_option(default: str) -> Any:
    """``--threads N``: torch's CPU threads (extract, invert); ``default`` says what runs
    without it."""
    return typer.Option(None, "--threads", min=1, max=1024,
                        help=f"torch CPU threads (default: {default}).")


def config_option() -> Any:
    """``--config``/``-c``: a preset (extract, export)."""
    return typer.Option(
        None, "--config", "-c", help="Preset: a TOML path or a name in configs/ (mel128, ...)."
    )


def transform_option() -> Any:
    """``--transform``/``-t``: a transform by name, instead of or overriding a preset."""
    return typer.Option(
        None, "--transform", "-t", help="Transform class or name: stft, mel, mfcc, ..."
    )


def set_option() -> Any:
    """``--set``/``-s key=value`` (repeatable): a transform parameter."""
    return typer.Option(
        [], "--set", "-s", help="Override a transform parameter: key=value (repeatable)."
    )


def sr_option(help: str = "Target sample rate in Hz.") -> Any:
    """``--sr``: a sample rate in Hz (positive and finite)."""
    return typer.Option(None, "--sr", callback=positive_finite("Hz"), help=help)


def features_argument() -> Any:
    """The ``FEATURES`` argument: an existing HDF5 feature file (info, invert, plot)."""
    return typer.Argument(..., exists=True, dir_okay=False, help="HDF5 feature file.")


def examples(*lines: str) -> str:
    """A command's ``--help`` epilog: ``Examples:`` and one indented command per line."""
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)


def positive_finite(unit: str) -> Callable[[Optional[float]], Optional[float]]:
    """A callback accepting ``None`` or a finite number ``> 0`` (``unit`` names it)."""

    def check(value: Optional[float]) -> Optional[float]:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise typer.BadParameter(f"{value:g} is not a positive number of {unit}")
        return value

    return check
