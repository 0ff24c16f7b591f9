"""The work folder of a run, ``OUTPUT.h5.parts/``: durable progress and ``--resume``.

Progress is committed in *part files*, each a small feature file in the final layout
(``/features``, ``/index``) holding the inputs finished since the previous part, usually one
batch. A part is written to ``part-NNNNNN.h5.partial``, closed, fsynced and renamed into
place (and the folder fsynced), so a killed run loses at most the part being written;
leftover ``*.partial`` files are deleted on resume. ``manifest.json`` (written the same way
before the first part) records the settings the features depend on (``resume_hash``).

On ``--resume`` an input is taken from the newest part that holds it when the source's size
and modification time still match; changed, missing and never-finished inputs are computed
again. A complete ``OUTPUT.h5`` made with the same settings counts as a source too (adding
files to a finished folder only computes the new ones).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from nnaudio_cli.store import (
    FeatureWriter,
    OutputError,
    fsync_path,
    partial_path,
    read_index,
)

MANIFEST = "manifest.json"
PARTS_FORMAT = "nnaudio-parts"
_PART_RE = re.compile(r"^part-(\d{6,})\.h5$")
_OURS_RE = re.compile(r"^(part-\d{6,}\.h5(\.partial)?|manifest\.json(\.partial)?)$")


class ResumeError(ValueError):
    """Resuming (or starting) is not possible as asked; one line.

    ``usage`` is True when the user should change the flags (exit 2), False otherwise
    (exit 1).
    """

    def __init__(self, message: str, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


@dataclass
class Source:
    """Where the stored row and features of one finished input are.

    Attributes
    ----------
    path : the part file (or previous output) holding it
    row : its index fields (``INDEX_COLUMNS`` and ``n_rows``)
    start : first data row in that file
    """

    path: Path
    row: dict[str, Any]
    start: int


def parts_dir(output: Path) -> Path:
    """The work folder of ``output``: ``OUTPUT.h5.parts``."""
    return output.with_name(output.name + ".parts")


def _write_json_atomic(path: Path, obj: dict[str, Any]) -> None:
    tmp = partial_path(path)
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent, directory=True)


def _is_ours(folder: Path) -> bool:
    """True when every entry of ``folder`` is a file this module writes."""
    try:
        return all(_OURS_RE.match(e.name) and e.is_file() for e in os.scandir(folder))
    except OSError:
        return False


def remove_parts(folder: Path) -> None:
    """Delete a work folder: part files first, the manifest last (a kill part-way through
    leaves a folder that :func:`open_parts` still recognises and cleans up)."""
    if not folder.exists():
        return
    if not _is_ours(folder):
        raise ResumeError(f"{folder} holds files nnaudio did not write; remove it yourself")
    for e in sorted(os.scandir(folder), key=lambda e: e.name == MANIFEST):
        os.unlink(e.path)
    shutil.rmtree(folder, ignore_errors=True)


def read_sources(path: Path) -> tuple[dict[str, Any], list[tuple[str, Source]]]:
    """Root attributes and ``(key, Source)`` of every row of a part or feature file."""
    with h5py.File(path, "r") as h5:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in h5.attrs.items()}
        index = read_index(h5)
        offsets = h5["features/offsets"][()]
    cols = list(index)
    out = []
    for i, key in enumerate(index["key"]):
        row = {c: index[c][i].item() if hasattr(index[c][i], "item") else index[c][i]
               for c in cols}
        row["n_rows"] = int(offsets[i + 1] - offsets[i])
        out.append((str(key), Source(path, row, int(offsets[i]))))
    return attrs, out


class PartStore:
    """Part files of one run: what is done, the part being written, committing.

    Parameters
    ----------
    output : the final output path
    manifest : settings of this run (``resume_hash`` must match on resume)
    row_shape, compression : of the feature rows
    frequencies : Hz per bin (stored in every part)
    """

    def __init__(
        self,
        output: Path,
        manifest: dict[str, Any],
        row_shape: tuple[int, ...],
        compression: str,
        frequencies: np.ndarray,
    ) -> None:
        self.output = Path(output)
        self.folder = parts_dir(self.output)
        self.manifest = dict(manifest, format=PARTS_FORMAT, version=1)
        self.row_shape = tuple(row_shape)
        self.compression = compression
        self.frequencies = np.asarray(frequencies, np.float64)
        self.sources: dict[str, Source] = {}
        self.next_seq = 0
        self.current: FeatureWriter | None = None
        self.pending: list[str] = []  # keys added to the current part

    # Starting ----------------------------------------------------------------------
    def open(self, resume: bool, overwrite: bool) -> None:
        """Create (or, with ``resume``, reopen) the work folder.

        Raises
        ------
        ResumeError
            Leftovers of another run without ``--resume``/``--overwrite``, or settings that
            differ from the interrupted run.
        OutputError
            The folder cannot be created or written.
        """
        have = self.folder.exists()
        if have and not resume:
            if not overwrite:
                raise ResumeError(
                    f"{self.folder} holds an interrupted run; rerun with --resume to continue "
                    "it or --overwrite to discard it", usage=True,
                )
            remove_parts(self.folder)
            have = False
        manifest_path = self.folder / MANIFEST
        if have and not manifest_path.is_file():  # killed while being created or removed
            remove_parts(self.folder)
            have = False
        try:
            if have:
                self._check_manifest(manifest_path)
                for e in os.scandir(self.folder):
                    if e.name.endswith(".partial"):
                        os.unlink(e.path)  # a part that was being written when killed
            else:
                self.folder.mkdir()
                _write_json_atomic(manifest_path, self.manifest)
        except OSError as e:
            raise OutputError(self.folder, e) from None

    def _check_manifest(self, path: Path) -> None:
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ResumeError(f"{path}: unreadable ({e}); rerun with --overwrite") from None
        if old.get("format") != PARTS_FORMAT:
            raise ResumeError(f"{path}: not an nnaudio work folder; rerun with --overwrite")
        if old.get("resume_hash") != self.manifest["resume_hash"]:
            raise ResumeError(
                f"--resume: {self.folder} was made with different settings "
                f"({_diff(old, self.manifest)}); rerun with the same options, or with "
                "--overwrite to start again"
            )

    def load(self, stats: dict[str, tuple[int, float]], previous: Path | None) -> int:
        """Find the finished inputs: ``stats`` maps each current key to (size, mtime).

        Parameters
        ----------
        stats : current inputs and their source size and mtime (None: could not stat)
        previous : a complete output file to take unchanged inputs from, or None

        Returns
        -------
        int, the number of current inputs that need no computing
        """
        files: list[Path] = []
        if previous is not None:
            files.append(previous)
        seqs = []
        if self.folder.is_dir():
            for e in os.scandir(self.folder):
                m = _PART_RE.match(e.name)
                if m:
                    seqs.append((int(m.group(1)), Path(e.path)))
        seqs.sort()
        files += [p for _, p in seqs]
        self.next_seq = seqs[-1][0] + 1 if seqs else 0
        for path in files:
            try:
                attrs, rows = read_sources(path)
            except (OSError, KeyError, ValueError):
                continue  # unreadable part: its inputs are computed again
            if attrs.get("resume_hash") != self.manifest["resume_hash"]:
                if path == previous:
                    raise ResumeError(
                        f"--resume: {path} was made with different settings; pass "
                        "--overwrite to replace it"
                    )
                continue
            for key, src in rows:
                st = stats.get(key)
                if st is not None and st == (int(src.row["size"]), float(src.row["mtime"])):
                    self.sources[key] = src
                elif key in self.sources and path != previous:
                    del self.sources[key]  # changed since: an older copy is stale too
        return len(self.sources)

    # Writing -----------------------------------------------------------------------
    def writer(self) -> FeatureWriter:
        """The part being written (opened on first use)."""
        if self.current is None:
            path = self.folder / f"part-{self.next_seq:06d}.h5"
            try:
                self.current = FeatureWriter(path, self.row_shape, self.compression)
            except OSError as e:
                raise OutputError(path, e) from None
            self.next_seq += 1
            self.pending = []
        return self.current

    def add_row(self, key: str, fields: dict[str, Any]) -> None:
        """Record a finished input (its features, if any, were just appended)."""
        w = self.writer()
        w.add_row(key=key, **fields)
        self.pending.append(key)

    @property
    def uncommitted(self) -> int:
        """Inputs in the part being written."""
        return len(self.pending)

    def commit(self, attrs: dict[str, Any]) -> None:
        """Make the current part durable (no-op when it holds no input)."""
        w = self.current
        if w is None or not w.rows:
            return
        try:
            w.commit(dict(attrs, resume_hash=self.manifest["resume_hash"]), self.frequencies)
        except (OSError, RuntimeError) as e:  # h5py: "Can't flush cache"
            w.abort(broken=True)
            self.current = None
            raise OutputError(w.path, e) from None
        start = 0
        for row in w.rows:
            self.sources[row["key"]] = Source(w.path, dict(row), start)
            start += int(row.get("n_rows", 0))
        self.current = None
        self.pending = []

    def abort(self, broken: bool = False) -> None:
        """Drop the part being written (its inputs are computed again on resume)."""
        if self.current is not None:
            self.current.abort(broken)
            self.current = None
            self.pending = []

    def kept(self, keys: Iterable[str]) -> int:
        """How many of ``keys`` are in committed parts."""
        return sum(1 for k in keys if k in self.sources)


def _diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    names = [k for k in ("transform", "config_hash", "segment_samples", "nan_policy",
                         "keep_channels") if old.get(k) != new.get(k)]
    return "differs: " + ", ".join(names) if names else "different configuration hash"
