"""Stage 5b, parts: the work folder ``OUTPUT.h5.parts/`` — lock, durable progress, checksums.

* **Lock.** A run holds an exclusive ``fcntl.flock`` on ``OUTPUT.h5.parts/lock`` from start
  to end, assembly included; the file holds the owner's PID. A second run on the same
  output stops with one line naming that PID. The kernel drops the lock when its holder
  dies, so a SIGKILLed run leaves no stale lock (:mod:`~nnaudio_cli.extract.lock`).
* **Parts.** Progress is committed in *part files*, each a small feature file in the final
  layout (``/features``, ``/index``, uncompressed) holding one batch. A part is written to
  ``part-NNNNNN.h5.partial``, closed and renamed into place, so a killed run loses at most
  the batch being written.
* **Checksums.** After the rename, the part's checksum
  (:class:`~nnaudio_cli.featurefile.checksum.ArrayDigest` of its arrays) is appended to
  ``parts.jsonl``. On ``--resume`` and again before assembly every part is read back and checked
  against its line; a part without a line, unreadable, or with another checksum is deleted and
  its inputs are computed again.
  That is also why parts and the journal are not fsynced: whatever a power loss does to
  them is caught by the check and costs a recomputation, never a wrong value. The manifest
  and the final output are fsynced. ``manifest.json`` (written before the first part)
  records the settings the features depend on (``resume_hash``).

On ``--resume`` an input is taken from the newest part that holds it when the source's size
and modification time still match; changed, missing and never-finished inputs are computed
again. A complete ``OUTPUT.h5`` made with the same settings, whose own checksum verifies,
counts as a source too (adding files to a finished folder only computes the new ones).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from nnaudio_cli.extract.lock import LOCK, ResumeError, WorkLock
from nnaudio_cli.extract.reasons import is_transient
from nnaudio_cli.extract.rows import IndexRow
from nnaudio_cli.featurefile.checksum import file_digest
from nnaudio_cli.featurefile.layout import feature_group, feature_names, read_index
from nnaudio_cli.featurefile.writer import FeatureSpec, FeatureWriter
from nnaudio_cli.plumbing.outputs import OutputError, fsync_path, partial_path
from nnaudio_cli.plumbing.text import key_from_stored

MANIFEST = "manifest.json"
JOURNAL = "parts.jsonl"
PARTS_FORMAT = "nnaudio-parts"
_PART_RE = re.compile(r"^part-(\d{6,})\.h5$")
_OURS_RE = re.compile(
    r"^(part-\d{6,}\.h5(\.partial)?|manifest\.json(\.partial)?|parts\.jsonl|lock)$"
)


@dataclass
class Source:
    """Where the stored row and features of one finished input are.

    Attributes
    ----------
    path : the part file (or previous output) holding it
    row : its index row (with ``n_rows``: its rows per feature)
    start : its first data row in that file, per feature
    """

    path: Path
    row: IndexRow
    start: dict[str, int]


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
    """Delete a work folder: part files first, the manifest and the lock last (a kill
    part-way through leaves a folder that :meth:`PartStore.open` still recognises)."""
    if not folder.exists():
        return
    if not _is_ours(folder):
        raise ResumeError(f"{folder} holds files nnaudio did not write; remove it yourself")
    order = {MANIFEST: 1, LOCK: 2}
    for e in sorted(os.scandir(folder), key=lambda e: order.get(e.name, 0)):
        os.unlink(e.path)
    shutil.rmtree(folder, ignore_errors=True)


def read_sources(path: Path) -> tuple[dict[str, Any], list[tuple[str, Source]]]:
    """Root attributes and ``(key, Source)`` of every row of a part or feature file
    (``layout_version`` 2)."""
    with h5py.File(path, "r") as h5:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in h5.attrs.items()}
        index = read_index(h5)
        offsets = {n: feature_group(h5, n)["offsets"][()] for n in feature_names(h5)}
    out = []
    for i, key in enumerate(index["key"]):
        row = IndexRow.read(index, i, {n: int(o[i + 1] - o[i]) for n, o in offsets.items()})
        start = {n: int(o[i]) for n, o in offsets.items()}
        out.append((key_from_stored(str(key)), Source(path, row, start)))
    return attrs, out


def verify(path: Path, expected: str | None = None) -> str | None:
    """Why a part or feature file fails its checksum, or None when it verifies.

    Parameters
    ----------
    path : the file
    expected : the checksum recorded elsewhere (the journal); None: the file's own
        ``digest`` attribute
    """
    try:
        stored, actual = file_digest(path)
    except (OSError, KeyError, ValueError) as e:
        return f"unreadable ({' '.join(str(e).split())[:120]})"
    want = stored if expected is None else expected
    if not want:
        return "no checksum recorded"
    if actual != want:
        return "checksum mismatch"
    return None


class PartStore:
    """Part files of one run: the lock, what is done, the part being written, committing.

    Parameters
    ----------
    output : the final output path
    manifest : settings of this run (``resume_hash`` must match on resume)
    specs : the features of the pass
    compression : of the parts
    attrs : root attributes of every part
    note : called with one-line notes (a part dropped after failing its checksum)
    """

    def __init__(
        self,
        output: Path,
        manifest: dict[str, Any],
        specs: list[FeatureSpec],
        compression: str,
        attrs: dict[str, Any],
        note: Callable[[str], Any] | None = None,
    ) -> None:
        self.output = Path(output)
        self.folder = parts_dir(self.output)
        self.manifest = dict(manifest, format=PARTS_FORMAT, version=3)
        self.specs = list(specs)
        self.compression = compression
        self.attrs = dict(attrs, resume_hash=self.manifest["resume_hash"])
        self.note = note or (lambda msg: None)
        self.lock = WorkLock(self.folder)
        self.sources: dict[str, Source] = {}
        self.digests: dict[str, str] = {}  # part file name -> checksum from the journal
        self.next_seq = 0
        self.current: FeatureWriter | None = None
        self.pending: list[IndexRow] = []  # rows added to the current part
        self.created = False  # open() created the folder

    # Starting ----------------------------------------------------------------------
    def open(self, resume: bool, overwrite: bool) -> None:
        """Lock the work folder and create (or, with ``resume``, reopen) it.

        Raises
        ------
        ResumeError
            Another run holds the folder; leftovers of another run without
            ``--resume``/``--overwrite``; settings that differ from the interrupted run.
        OutputError
            The folder cannot be created or written.
        """
        try:
            existed = self.folder.exists()
            self.lock.acquire()
        except OSError as e:
            raise OutputError(self.folder, e) from None
        self.created = not existed
        try:
            self._open_locked(resume, overwrite, existed)
        except BaseException:
            self.discard_created()
            self.lock.release()
            raise

    def discard_created(self) -> None:
        """Remove the work folder if this run created it and committed nothing to it: a run
        refused after :meth:`open` leaves nothing behind (best effort)."""
        if not self.created or self.digests or self.next_seq:
            return
        try:
            if not any(_PART_RE.match(e.name) for e in os.scandir(self.folder)):
                remove_parts(self.folder)
        except (OSError, ResumeError):
            pass

    def _open_locked(self, resume: bool, overwrite: bool, existed: bool) -> None:
        manifest_path = self.folder / MANIFEST
        have = existed and manifest_path.is_file()
        if existed and not have and not _is_ours(self.folder):
            raise ResumeError(f"{self.folder} holds files nnaudio did not write; remove it "
                              "yourself")
        if have and not resume:
            if not overwrite:
                raise ResumeError(
                    f"{self.folder} holds an interrupted run; rerun with --resume to continue "
                    "it or --overwrite to discard it", usage=True,
                )
        try:
            if have and resume:
                self._check_manifest(manifest_path)
            for e in os.scandir(self.folder):
                stale = e.name.endswith(".partial") or (not (have and resume) and e.name != LOCK)
                if stale and _OURS_RE.match(e.name):
                    os.unlink(e.path)  # a part being written when killed, or a discarded run
            if not (have and resume):
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

    def _read_journal(self) -> dict[str, str]:
        out: dict[str, str] = {}
        try:
            lines = (self.folder / JOURNAL).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return out
        except (OSError, UnicodeDecodeError):
            return out  # every part is then unverified and computed again
        for line in lines:
            try:
                entry = json.loads(line)
                out[str(entry["part"])] = str(entry["digest"])
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a kill
        return out

    def load(self, stats: dict[str, tuple[int, float]], previous: Path | None) -> int:
        """Find the finished inputs: ``stats`` maps each current key to (size, mtime).

        Parts that fail their checksum are deleted (their inputs are computed again).

        Parameters
        ----------
        stats : current inputs and their source size and mtime
        previous : a complete output file to take unchanged inputs from, or None

        Returns
        -------
        int, the number of current inputs that need no computing
        """
        self.digests = self._read_journal()
        files: list[Path] = []
        if previous is not None:
            why = verify(previous)
            if why is None or why == "no checksum recorded":
                files.append(previous)
            else:
                self.note(f"{previous} failed its checksum ({why}); every input is computed "
                          "again")
        seqs = []
        for e in os.scandir(self.folder):
            m = _PART_RE.match(e.name)
            if m:
                seqs.append((int(m.group(1)), Path(e.path)))
        seqs.sort()
        self.next_seq = seqs[-1][0] + 1 if seqs else 0
        for _, path in seqs:
            why = verify(path, self.digests.get(path.name, ""))
            if why is not None:
                self._drop(path, why)
                continue
            files.append(path)
        for path in files:
            try:
                attrs, rows = read_sources(path)
            except (OSError, KeyError, ValueError):
                continue  # unreadable: its inputs are computed again
            if attrs.get("resume_hash") != self.manifest["resume_hash"]:
                if path == previous:
                    raise _other_settings(path)
                continue
            for key, src in rows:
                st = stats.get(key)
                if not src.row.ok and is_transient(str(src.row.reason)):
                    st = None  # out of memory, decoder killed: computed again
                if st is not None and st == (int(src.row.size), float(src.row.mtime)):
                    self.sources[key] = src
                elif key in self.sources and path != previous:
                    del self.sources[key]  # changed since: an older copy is stale too
        return len(self.sources)

    def check_previous(self, path: Path) -> None:
        """Refuse (before anything is written) to ``--resume`` into a complete output made
        with other settings; an unreadable one is left to :meth:`load` (its checksum fails
        and its inputs are computed again)."""
        try:
            with h5py.File(path, "r") as h5:
                stored = h5.attrs.get("resume_hash")
        except (OSError, KeyError, ValueError):
            return
        if isinstance(stored, bytes):
            stored = stored.decode("utf-8", "replace")
        if stored != self.manifest["resume_hash"]:
            raise _other_settings(path)

    def _drop(self, path: Path, why: str) -> None:
        self.note(f"{path.name} in {self.folder} failed verification ({why}); its inputs are "
                  "computed again")
        try:
            os.unlink(path)
        except OSError:
            pass

    def verify_sources(self) -> list[str]:
        """Check every part that holds a finished input against its checksum; drop the bad
        ones. Returns the keys that lost their source (to be computed again)."""
        by_path: dict[Path, list[str]] = {}
        for key, src in self.sources.items():
            by_path.setdefault(src.path, []).append(key)
        lost: list[str] = []
        for path, keys in by_path.items():
            expected = None if path == self.output else self.digests.get(path.name, "")
            why = verify(path, expected)
            if why is None:
                continue
            if path != self.output:
                self._drop(path, why)
            for key in keys:
                del self.sources[key]
            lost += keys
        return lost

    # Writing -----------------------------------------------------------------------
    def writer(self) -> FeatureWriter:
        """The part being written (opened on first use)."""
        if self.current is None:
            path = self.folder / f"part-{self.next_seq:06d}.h5"
            try:
                self.current = FeatureWriter(path, self.specs, self.compression)
            except OSError as e:
                raise OutputError(path, e) from None
            self.next_seq += 1
            self.pending = []
        return self.current

    def append(self, name: str, rows: np.ndarray) -> None:
        """Append float32 rows ``(n, *row_shape)`` of feature ``name`` to the current part.

        Raises
        ------
        OutputError
            The part could not be written.
        nnaudio_cli.featurefile.encoding.StorageError
            The values do not fit the stored dtype.
        """
        w = self.writer()
        try:
            w.append(name, rows)
        except (OSError, RuntimeError) as e:  # h5py: "Can't flush cache"
            raise OutputError(w.path, e) from None

    def marks(self) -> dict[str, int]:
        """Every feature's rows in the current part so far (opened on first use), for
        :meth:`rollback`."""
        return self.writer().marks()

    def rollback(self, marks: dict[str, int]) -> None:
        """Drop the rows of the current part after ``marks`` (no-op without a part)."""
        if self.current is not None:
            self.current.rollback(marks)

    def add_row(self, row: IndexRow) -> None:
        """Record a finished input (its features, if any, were just appended:
        ``row.n_rows`` per feature)."""
        w = self.writer()
        w.add_row(row.n_rows, **row.as_fields())
        self.pending.append(row)

    def commit(self) -> None:
        """Make the current part durable and record its checksum (no-op when empty)."""
        w = self.current
        if w is None or not self.pending:
            return
        try:
            # not fsynced: a part a power loss damages fails verification (module docstring)
            w.commit(self.attrs, durable=False)
            line = json.dumps({"part": w.path.name, "digest": w.digest_hex,
                               "inputs": len(self.pending), "rows": w.marks()})
            with open(self.folder / JOURNAL, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        except (OSError, RuntimeError) as e:  # h5py: "Can't flush cache"
            w.abort(broken=True)
            self.current = None
            raise OutputError(w.path, e) from None
        self.digests[w.path.name] = w.digest_hex
        start = {s.name: 0 for s in self.specs}
        for row in self.pending:
            self.sources[row.key] = Source(w.path, row, dict(start))
            for name, n in row.n_rows.items():
                start[name] += int(n)
        self.current = None
        self.pending = []

    def abort(self, broken: bool = False) -> None:
        """Drop the part being written (its inputs are computed again on resume)."""
        if self.current is not None:
            self.current.abort(broken)
            self.current = None
            self.pending = []

    def close(self) -> None:
        """Release the lock (the folder stays for ``--resume``)."""
        self.lock.release()

    def kept(self, keys: Iterable[str]) -> int:
        """How many of ``keys`` are in committed parts."""
        return sum(1 for k in keys if k in self.sources)


def _other_settings(path: Path) -> ResumeError:
    return ResumeError(f"--resume: {path} was made with different settings; pass --overwrite "
                       "to replace it")


def _diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    names = [k for k in ("features", "config_hash", "segment_samples", "nan_policy",
                         "keep_channels", "batch_samples", "input_rows")
             if old.get(k) != new.get(k)]
    return "differs: " + ", ".join(names) if names else "different configuration hash"
