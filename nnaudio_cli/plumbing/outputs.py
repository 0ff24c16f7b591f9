"""The rule for where a command may write (shared by ``extract``, ``invert``, ``export``,
``merge``, ``plot`` and ``benchmark --json/--plot``).

* A command creates at most the last level of a path itself (:func:`check_parent`).
* An existing output is replaced only with ``--overwrite`` (:func:`check_new`).
* An output is written to a hidden temporary file next to it and renamed onto it
  (:func:`replacing`): a symlink at the output is replaced by the new file, never written
  through, and a failed or killed write leaves the old file as it was. A killed process's
  temporary file is removed by the next command that writes into that folder
  (:func:`remove_stale`).
* ``extract`` replaces (``--overwrite``) or updates (``--resume``) an existing OUTPUT only when
  it is recognisably an nnaudio feature file (:func:`foreign_reason`); anything else is left
  byte for byte as it was.
* A write that fails is an :class:`OutputError` (one line, :func:`disk_reason`); a file is
  made durable with :func:`fsync_path` (and its folder, for the rename).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from nnaudio_cli.errors import CliError
from nnaudio_cli.plumbing.text import shown_key

if TYPE_CHECKING:  # h5py is imported where a file is read (this module stays light)
    import h5py

#: Temporary files of :func:`replacing` (``.nnaudio-PID.partial[.SUFFIX]``), and those of the
#: ``invert`` of earlier versions (``.nnaudio-invert-PID.partial``).
_TEMP_RE = re.compile(r"^\.nnaudio-(?:invert-)?(\d{1,10})\.partial(\.[^/]*)?$")


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


def check_new(path: Path, overwrite: bool, flag: str = "") -> None:
    """A usage error (exit 2) when ``path`` exists (a dangling symlink counts) and
    ``overwrite`` is False; then :func:`check_parent`. ``flag`` names the option of the
    path (``--json``) in the message."""
    if not overwrite and (path.exists() or path.is_symlink()):
        where = f" ({flag})" if flag else ""
        raise CliError(f"{shown_key(str(path))} exists{where}; pass --overwrite to replace it",
                       usage=True)
    check_parent(path, flag)


def temp_path(path: Path) -> Path:
    """The hidden temporary file :func:`replacing` writes ``path`` to: short (a long output
    name cannot make it too long), in the same folder (so the rename is atomic), with the
    same suffix (writers that pick the format from it still do)."""
    return path.parent / f".nnaudio-{os.getpid()}.partial{path.suffix}"


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield :func:`temp_path` to be written; on success it is renamed onto ``path``.

    A symlink at ``path`` is replaced by the new file (its target is never written), and an
    error (or Ctrl-C) while writing removes the temporary file and leaves ``path`` as it was.
    """
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: another user's live process
        return True
    return True


def remove_stale(folder: Path) -> int:
    """Delete the temporary files of :func:`replacing` in ``folder`` whose process is gone
    (killed while writing); returns how many. A live process's file is left alone (a PID
    reused by another process since keeps its file until that process ends)."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for e in entries:
        m = _TEMP_RE.match(e.name)
        if m and not _alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                if e.is_file(follow_symlinks=False):
                    os.unlink(e.path)
                    removed += 1
    return removed


def foreign_reason(path: Path) -> str | None:
    """Why the existing ``path`` is not recognisably an nnaudio feature file, or None.

    Recognisably ours (``extract``'s output or shard, ``merge``'s master or copy): an HDF5
    file whose root attributes ``layout_version`` (1 or 2), ``config_hash`` and
    ``package_version`` are present (layout 1: ``transform`` and ``config_json``), whose
    ``features`` attribute lists groups that each hold ``data`` and ``offsets``, and whose
    ``/index`` holds ``key`` and ``status`` with one row per input of every feature
    (``len(offsets) - 1``). Its checksum is not part of this: an output of ours whose
    checksum fails is still ours (``--resume`` computes it again).
    """
    if not path.is_file():
        return "not a regular file"
    import h5py

    try:
        if not h5py.is_hdf5(path):
            return "not an HDF5 file"
        with h5py.File(path, "r") as h5:
            return _layout_reason(h5)
    except (OSError, KeyError, ValueError, TypeError) as e:
        return f"unreadable: {' '.join(str(e).split())[:120]}"


def _layout_reason(h5: h5py.File) -> str | None:
    """:func:`foreign_reason` of an open HDF5 file."""
    import h5py

    from nnaudio_cli.featurefile.layout import feature_group, feature_names

    attrs = h5.attrs
    version = attrs.get("layout_version")
    if version is None or int(version) not in (1, 2):
        return "no nnaudio layout_version"
    needed = ("transform", "config_json") if int(version) == 1 else (
        "config_hash", "package_version", "features")
    missing = [k for k in needed if k not in attrs]
    if missing:
        return f"no root attribute {', '.join(missing)}"
    names = feature_names(h5)  # KeyError: not a JSON list of names
    if not names:
        return "no features listed"
    index = h5.get("index")
    if not isinstance(index, h5py.Group) or not all(
            isinstance(index.get(c), h5py.Dataset) for c in ("key", "status")):
        return "no /index/key and /index/status"
    rows = {len(index["key"]), len(index["status"])}
    for name in names:
        g = h5.get("features") if int(version) == 1 else h5.get(f"features/{name}")
        if not isinstance(g, h5py.Group) or not all(
                isinstance(g.get(d), h5py.Dataset) for d in ("data", "offsets")):
            return f"feature {name!r} has no data and offsets"
        rows.add(len(feature_group(h5, name)["offsets"]) - 1)
    if len(rows) != 1:
        return "index and offsets disagree on the number of inputs"
    return None


def check_owned(path: Path, resume: bool = False, overwrite: bool = False) -> None:
    """Refuse (usage error, exit 2) to replace or update an existing ``path`` that
    :func:`foreign_reason` does not recognise as an nnaudio feature file. Without
    ``resume`` and ``overwrite`` nothing is replaced, so nothing is checked."""
    if not (resume or overwrite) or not path.exists():
        return
    why = foreign_reason(path)
    if why:
        flag = "--resume" if resume else "--overwrite"
        raise CliError(
            f"{flag}: {shown_key(str(path))} is not an nnaudio output ({why}); nnaudio never "
            "replaces a file it did not write: delete it yourself or choose another output",
            usage=True,
        )


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through :func:`replacing`."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


class OutputError(CliError, OSError):
    """Writing the output (or a part file) failed: disk full, read-only, no permission.

    Parameters
    ----------
    path : the file that could not be written
    exc : the underlying error
    """

    def __init__(self, path: Path, exc: BaseException) -> None:
        super().__init__(f"cannot write {path}: {disk_reason(exc)}")
        self.path = Path(path)


def disk_reason(exc: BaseException) -> str:
    """A short reason for a write error (h5py hides errno inside its message text)."""
    text = " ".join(str(exc).split())
    for needle in ("No space left on device", "Read-only file system", "Permission denied",
                   "Disk quota exceeded", "Operation not permitted"):
        if needle.lower() in text.lower():
            return needle.lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return text[:200] or type(exc).__name__


def partial_path(path: Path) -> Path:
    """Where the file is written before it is complete: ``OUTPUT.h5.partial``."""
    return path.with_name(path.name + ".partial")


def fsync_path(path: Path, directory: bool = False) -> None:
    """fsync a file (or a folder, so a rename in it is durable); folders: best effort."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)
