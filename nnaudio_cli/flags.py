"""Range checks for numeric command-line flags (Typer callbacks).

A value out of range is a usage error: one ``nnaudio: error: Invalid value for '--sr': ...``
line and exit code 2, the same as a value that is not a number at all.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import typer


def positive_finite(unit: str) -> Callable[[Optional[float]], Optional[float]]:
    """A callback accepting ``None`` or a finite number ``> 0`` (``unit`` names it)."""

    def check(value: Optional[float]) -> Optional[float]:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise typer.BadParameter(f"{value:g} is not a positive number of {unit}")
        return value

    return check
