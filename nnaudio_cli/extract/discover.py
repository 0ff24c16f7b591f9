"""Stage 1, discover: the audio files of an input folder in a deterministic order, and
their headers (durations for planning batches), read without decoding."""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from nnaudio_cli.extract import audio
from nnaudio_cli.extract.containers import CONTAINER_EXTENSIONS

#: File name extensions (lower case) treated as audio; matching is case-insensitive.
#: Whether a file really is audio is decided by decoding it (libsndfile, or FFmpeg for the
#: containers of :data:`~nnaudio_cli.extract.containers.CONTAINER_EXTENSIONS`): a file with one of
#: these extensions that cannot be decoded becomes a *failed* row; every other file is
#: *skipped* and counted (:class:`Discovery`).
AUDIO_EXTENSIONS = frozenset(
    {
        ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif",
        ".aifc", ".au", ".snd", ".caf", ".w64", ".rf64", ".spx",
    }
) | CONTAINER_EXTENSIONS
#: How skipped entries are counted besides their extension (see :class:`Discovery`).
HIDDEN, NO_EXTENSION, EXCLUDED = "(hidden)", "(no extension)", "(excluded by pattern)"


def is_audio_name(name: str) -> bool:
    """True when ``name`` has an audio extension (any case) and is not hidden."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS


@dataclass
class Discovery:
    """What a folder holds: the inputs taken and every file that was not.

    Attributes
    ----------
    keys : relative POSIX paths of the inputs, sorted
    skipped : ``(relative path, group)`` of every entry not taken, sorted by path; the group
        is the lower-case extension (``".txt"``) of a file without an audio extension,
        :data:`NO_EXTENSION`, :data:`HIDDEN` (a hidden file, or a hidden folder counted as
        one entry and not searched) or :data:`EXCLUDED` (an audio name that ``include`` /
        ``exclude`` left out). The output file, its work folder and its partial files are
        neither taken nor counted.
    """

    keys: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def skipped_counts(self) -> dict[str, int]:
        """Entries not taken per group, e.g. ``{".txt": 2, "(hidden)": 1}`` (sorted)."""
        return dict(sorted(Counter(g for _, g in self.skipped).items()))


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(rel, p) for p in patterns)


def discover(
    root: str | os.PathLike[str],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    ignore: Callable[[str], bool] | None = None,
) -> Discovery:
    """The inputs under ``root`` (see :func:`find_audio`) and the entries not taken.

    A file is taken when it is not hidden, has an audio extension, matches one of
    ``include`` (when any is given) and none of ``exclude``. Patterns are
    :func:`fnmatch.fnmatchcase` globs matched against the relative POSIX path (``*`` also
    matches ``/``: ``--exclude 'tmp/*'`` leaves out everything under ``tmp/``).

    Parameters
    ----------
    root : path of a folder
    include, exclude : glob patterns
    ignore : called with each relative path (files and folders); True: neither taken nor
        counted, nor searched (the output, its work folder and partial files)
    """
    root_path = Path(root)
    found = Discovery()
    for dirpath, dirnames, filenames in os.walk(root_path, followlinks=False):
        rel_dir = Path(dirpath).relative_to(root_path)
        keep = []
        for d in sorted(dirnames):
            rel = (rel_dir / d).as_posix()
            if ignore is not None and ignore(rel):
                continue
            if d.startswith("."):
                found.skipped.append((rel, HIDDEN))
            else:
                keep.append(d)
        dirnames[:] = keep
        for name in filenames:
            rel = (rel_dir / name).as_posix()
            if ignore is not None and ignore(rel):
                continue
            if name.startswith("."):
                found.skipped.append((rel, HIDDEN))
            elif not is_audio_name(name):
                found.skipped.append((rel, os.path.splitext(name)[1].lower() or NO_EXTENSION))
            elif (include and not _matches(rel, include)) or _matches(rel, exclude):
                found.skipped.append((rel, EXCLUDED))
            else:
                found.keys.append(rel)
    found.keys.sort()
    found.skipped.sort()
    return found


def find_audio(root: str | os.PathLike[str]) -> list[str]:
    """Relative POSIX paths of the audio files under ``root``, recursively, sorted.

    The order is the code-point order of the relative path strings, so it is the same on
    every machine and file system. Hidden files and folders (``.name``) are skipped;
    symbolic links to files are followed, links to folders are not (so link loops cannot
    trap the walk). A folder named like audio (``x.wav/``) is searched, not read. Broken
    links, link loops and other non-folders with an audio name are returned: decoding
    reports them as failed inputs with a reason. :func:`discover` also says what was not
    taken.

    Parameters
    ----------
    root : path of a folder

    Returns
    -------
    list of str, e.g. ``["a.wav", "sub/b.flac"]``
    """
    return discover(root).keys


def own_files(root: str | os.PathLike[str], output: str | os.PathLike[str],
              base: str | os.PathLike[str] | None = None) -> Callable[[str], bool]:
    """A predicate over paths relative to ``root``: True for files an extract writing
    ``output`` makes (the output, ``OUTPUT.parts/``, ``OUTPUT.partial``) and, with ``base``
    (the merged output of a sharded run), every shard's files and the merged output's, so
    that an output inside the input folder is never taken as an input."""
    outs = [Path(output)] + ([Path(base)] if base is not None else [])
    names: set[str] = set()
    for out in outs:
        names |= {out.name, out.name + ".parts", out.name + ".partial"}
    shard_re = None
    if base is not None:
        b = Path(base)
        shard_re = re.compile(re.escape(b.stem) + r"\.shard-\d+-of-\d+" + re.escape(b.suffix)
                              + r"(\.parts|\.partial)?")
    try:
        folder = Path(outs[0]).resolve().parent
        rel_parent = os.path.relpath(folder, Path(root).resolve())
    except (OSError, ValueError):
        return lambda rel: False
    if rel_parent == os.pardir or rel_parent.startswith(os.pardir + os.sep):
        return lambda rel: False  # the output is outside the folder
    prefix = "" if rel_parent == os.curdir else Path(rel_parent).as_posix() + "/"

    def ignore(rel: str) -> bool:
        if not rel.startswith(prefix) or "/" in rel[len(prefix):]:
            return False
        name = rel[len(prefix):]
        return name in names or (shard_re is not None and shard_re.fullmatch(name) is not None)

    return ignore


@dataclass(frozen=True)
class Header:
    """What a file's header says, read without decoding (for planning batches and shards).

    Attributes
    ----------
    sr : original sample rate in Hz (0 when the header could not be read)
    samples : samples per channel
    channels : channel count
    """

    sr: int = 0
    samples: int = 0
    channels: int = 0

    @property
    def duration(self) -> float:
        """Duration in seconds (0 when unknown)."""
        return self.samples / self.sr if self.sr else 0.0


def read_header(path: str | os.PathLike[str]) -> Header:
    """The header of one file; an unreadable one gives ``Header()`` (decoding reports why)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # never open a FIFO or device here
            return Header()
        head = audio.header(path)  # opened without blocking, checked again once open
        return Header(*head) if head else Header()
    except Exception:  # noqa: BLE001 - any unreadable input is planned as empty
        return Header()


def read_headers(paths: Sequence[str], threads: int = 8) -> list[Header]:
    """Headers of every path, in order (read by a few threads: this is I/O-bound and
    libsndfile releases the GIL)."""
    if len(paths) < 64:
        return [read_header(p) for p in paths]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(read_header, paths, chunksize=64))
