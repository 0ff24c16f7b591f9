"""The rule for where a command may write (shared by ``extract``, ``invert`` and
``benchmark --json/--plot``)."""

from __future__ import annotations

from pathlib import Path

from nnaudio_cli.errors import CliError
from nnaudio_cli.text import shown_key


def missing_parent(path: Path) -> str | None:
    """Why ``path`` cannot be created: its parent folder is missing (None when it exists).

    A command creates at most the last level itself (the output file, or the output
    folder); it never creates a folder tree, so a typo in a path cannot scatter files.
    """
    if path.parent.exists():
        return None
    return (f"cannot write {shown_key(str(path))}: folder {shown_key(str(path.parent))} does "
            "not exist")


def check_parent(path: Path, flag: str = "") -> None:
    """Raise a fatal :class:`CliError` when :func:`missing_parent` finds a reason
    (``flag``, e.g. ``--json``, is named in the message)."""
    why = missing_parent(path)
    if why:
        raise CliError(f"{why} ({flag})" if flag else why)
