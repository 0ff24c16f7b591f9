"""Finding the audio files of an input folder, in a deterministic order."""

from __future__ import annotations

import os
from pathlib import Path

#: File name extensions (lower case) treated as audio; matching is case-insensitive.
#: Whether a file really is audio is decided by decoding it (soundfile/libsndfile): a file
#: with one of these extensions that cannot be decoded becomes a *failed* row, other files
#: are skipped silently.
AUDIO_EXTENSIONS = frozenset(
    {
        ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif",
        ".aifc", ".au", ".snd", ".caf", ".w64", ".rf64",
    }
)


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
