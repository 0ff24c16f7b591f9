"""Stage 1, the other way in: ``--files LIST``, a list of inputs instead of a folder.

A list is a text file of paths (one a line; blank lines and lines starting with ``#`` are
ignored), a CSV file (``.csv``: a header row with a ``path`` column and optional ``key``,
``start``, ``end``; other columns are ignored) or JSON lines (``.jsonl``/``.ndjson``: one
object a line with the same fields). ``-`` reads standard input: JSON lines when its first
non-blank character is ``{``, else paths. Relative paths are relative to the list file's
folder (to the current folder for ``-``).

A row with ``start`` and/or ``end`` (seconds; ``start`` defaults to 0, ``end`` to the file's
end) is a *segment*: its own input, computed from that span only (frames
``[round(start * sr), round(end * sr))`` of the source rate ``sr``, Python's ``round``:
ties to even). Its key is ``key`` when given, else ``PATH@START-END`` with each number
written by :func:`number_text` (the shortest decimal that reads back as the same float64,
no exponent, no trailing zeros: ``0.5``, ``2``, ``0.0001``; an open end is empty:
``a.wav@30-``). A row without a span has the key ``key``, else its path as written
(``./a.wav`` -> ``a.wav``). Keys must be unique.

Impossible values (not a number, negative, NaN/Inf, ``start >= end``) are usage errors
that name the row; a span past the end of its file is found when the file is decoded and
becomes a failed row (never clipped silently).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import posixpath
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnaudio_cli.errors import CliError

#: List file extensions read as CSV and as JSON lines; anything else is a list of paths.
CSV_EXTENSIONS = (".csv",)
JSONL_EXTENSIONS = (".jsonl", ".ndjson")
#: Fields a CSV/JSONL row may have (``path`` is required).
FIELDS = ("path", "key", "start", "end")


class ListError(CliError):
    """A list that cannot be used (exit code 2: fix the list or the flag); one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message, usage=True)


@dataclass(frozen=True)
class Input:
    """One input of a run: a whole file or a span of one.

    Attributes
    ----------
    key : its key in the output
    path : the file to read (absolute, or relative to the current folder)
    start : span start in seconds, or None (a whole file)
    end : span end in seconds, or None (to the file's end)
    where : the row it came from, for messages (``"list.csv line 3"``)
    written : the path as written in the list (normalised), for the list's ``rows_hash``
    """

    key: str
    path: str
    start: float | None = None
    end: float | None = None
    where: str = ""
    written: str = ""

    @property
    def span(self) -> tuple[float, float | None] | None:
        """``(start, end)`` in seconds for a segment (``end`` None: to the file's end),
        None for a whole file."""
        if self.start is None and self.end is None:
            return None
        return (self.start or 0.0, self.end)


@dataclass
class InputList:
    """The inputs of a ``--files`` list, sorted by key.

    Attributes
    ----------
    name : the list as given (``"-"`` for standard input)
    inputs : sorted by key (the batch plan follows this order, as for a folder)
    sha256 : SHA-256 of the list's bytes (its identity, stored in the output)
    rows_hash : SHA-256 of the sorted ``(key, path as written, start, end)`` rows: what
        ``--resume`` requires to be unchanged (reordering rows or editing comments keeps it)
    """

    name: str
    inputs: list[Input]
    sha256: str
    rows_hash: str


def number_text(x: float) -> str:
    """Seconds as written in a segment's key: the shortest decimal that reads back as the
    same float64, positional, without trailing zeros (``2.0`` -> ``"2"``, ``1e-4`` ->
    ``"0.0001"``)."""
    return np.format_float_positional(float(x), trim="-")


def segment_key(path: str, start: float | None, end: float | None) -> str:
    """``PATH@START-END`` (``start`` None is 0; ``end`` None is written empty)."""
    return f"{path}@{number_text(start or 0.0)}-{'' if end is None else number_text(end)}"


def _seconds(value: Any, name: str, where: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ListError(f"{where}: {name} {value!r} is not a number of seconds")
    try:
        x = float(value)
    except ValueError:
        raise ListError(f"{where}: {name} {value!r} is not a number of seconds") from None
    if not math.isfinite(x):
        raise ListError(f"{where}: {name} {value!r} is not a finite number of seconds")
    if x < 0:
        raise ListError(f"{where}: {name} {value!r} is negative")
    return x


def _row(fields: dict[str, Any], base: str, where: str) -> Input:
    path = fields.get("path")
    if not isinstance(path, str) or not path.strip():
        raise ListError(f"{where}: no path")
    key = fields.get("key")
    if key is not None and not isinstance(key, str):
        raise ListError(f"{where}: key {key!r} is not a string")
    start = _seconds(fields.get("start"), "start", where)
    end = _seconds(fields.get("end"), "end", where)
    if end is not None and end <= (start or 0.0):
        raise ListError(f"{where}: start {start or 0:g} s is not before end {end:g} s")
    written = posixpath.normpath(path)
    if not key:
        key = written if start is None and end is None else segment_key(written, start, end)
    return Input(key, os.path.join(base, path), start, end, where, written)


def _text_rows(text: str, label: str, base: str) -> list[Input]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        out.append(_row({"path": line.rstrip("\r\n")}, base, f"{label} line {n}"))
    return out


def _jsonl_rows(text: str, label: str, base: str) -> list[Input]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{label} line {n}"
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise ListError(f"{where}: not JSON ({e})") from None
        if not isinstance(obj, dict):
            raise ListError(f"{where}: not a JSON object with a \"path\"")
        out.append(_row(obj, base, where))
    return out


def _csv_rows(text: str, label: str, base: str) -> list[Input]:
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "path" not in [f.strip() for f in reader.fieldnames]:
        raise ListError(f"{label}: a CSV list needs a header row with a 'path' column "
                        f"(and optional {', '.join(FIELDS[1:])})")
    out = []
    for row in reader:
        fields = {k.strip(): v for k, v in row.items() if k is not None}
        if not any((v or "").strip() for v in fields.values() if isinstance(v, str)):
            continue  # a blank line
        out.append(_row(fields, base, f"{label} line {reader.line_num}"))
    return out


def read_list(name: str) -> InputList:
    """Read ``--files NAME`` (``-``: standard input) into sorted, unique inputs.

    Raises
    ------
    ListError
        Unreadable list, a bad row (named), duplicate keys (both rows named).
    """
    if name == "-":
        data = sys.stdin.buffer.read()
        label, base = "standard input", ""
        kind = "jsonl" if data.lstrip()[:1] == b"{" else "text"
    else:
        try:
            data = Path(name).read_bytes()
        except OSError as e:
            raise ListError(f"--files: cannot read {name}: {(e.strerror or str(e)).lower()}"
                            ) from None
        label, base = name, os.path.dirname(name)
        ext = os.path.splitext(name)[1].lower()
        kind = "csv" if ext in CSV_EXTENSIONS else "jsonl" if ext in JSONL_EXTENSIONS else "text"
    text = data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    reader = {"csv": _csv_rows, "jsonl": _jsonl_rows, "text": _text_rows}[kind]
    inputs = reader(text, label, base)
    seen: dict[str, Input] = {}
    for inp in inputs:
        if inp.key in seen:
            raise ListError(f"key {inp.key!r} is given twice: {seen[inp.key].where} and "
                            f"{inp.where.removeprefix(label + ' ')}")
        seen[inp.key] = inp
    inputs.sort(key=lambda i: i.key)
    rows = [[i.key, i.written, i.start, i.end] for i in inputs]
    rows_hash = hashlib.sha256(json.dumps(rows, ensure_ascii=True).encode(
        "utf-8", "surrogateescape")).hexdigest()
    return InputList(name, inputs, hashlib.sha256(data).hexdigest(), rows_hash)
