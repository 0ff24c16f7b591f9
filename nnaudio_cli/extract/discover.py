"""Stage 1, discover: the audio files of an input folder in a deterministic order, and
their headers (durations for planning batches), read without decoding."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from nnaudio_cli import audio
from nnaudio_cli.containers import CONTAINER_EXTENSIONS

#: File name extensions (lower case) treated as audio; matching is case-insensitive.
#: Whether a file really is audio is decided by decoding it (libsndfile, or FFmpeg for the
#: containers of :data:`~nnaudio_cli.containers.CONTAINER_EXTENSIONS`): a file with one of
#: these extensions that cannot be decoded becomes a *failed* row, other files are skipped.
AUDIO_EXTENSIONS = frozenset(
    {
        ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif",
        ".aifc", ".au", ".snd", ".caf", ".w64", ".rf64", ".spx",
    }
) | CONTAINER_EXTENSIONS


def is_audio_name(name: str) -> bool:
    """True when ``name`` has an audio extension (any case) and is not hidden."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS


def find_audio(root: str | os.PathLike[str]) -> list[str]:
    """Relative POSIX paths of the audio files under ``root``, recursively, sorted.

    The order is the code-point order of the relative path strings, so it is the same on
    every machine and file system. Hidden files and folders (``.name``) are skipped;
    symbolic links to files are followed, links to folders are not (so link loops cannot
    trap the walk). A folder named like audio (``x.wav/``) is searched, not read. Broken
    links, link loops and other non-folders with an audio name are returned: decoding
    reports them as failed inputs with a reason.

    Parameters
    ----------
    root : path of a folder

    Returns
    -------
    list of str, e.g. ``["a.wav", "sub/b.flac"]``
    """
    root_path = Path(root)
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root_path, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(dirpath).relative_to(root_path)
        for name in filenames:
            if is_audio_name(name):
                out.append((rel_dir / name).as_posix())
    out.sort()
    return out


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


def read_headers(root: str | os.PathLike[str], keys: list[str], threads: int = 8) -> list[Header]:
    """Headers of ``root / key`` for every key, in key order (read by a few threads: this
    is I/O-bound and libsndfile releases the GIL)."""
    paths = [os.path.join(root, k) for k in keys]
    if len(paths) < 64:
        return [read_header(p) for p in paths]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(read_header, paths, chunksize=64))
