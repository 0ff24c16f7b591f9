"""Why an input failed, in one line: what C decoders print, captured, and the reasons of
failed rows (cannot open, damaged or cut-short stream, transient failures that ``--resume``
retries).

Torch-free: the decoder worker processes import it (through
:mod:`~nnaudio_cli.extract.audio`).
"""

from __future__ import annotations

import os
import re
import struct
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import soundfile as sf

from nnaudio_cli.errors import InputError
from nnaudio_cli.plumbing.text import one_line

#: Lines the decoder libraries (libmpg123) print on stderr by themselves.
_DECODER_NOISE = re.compile(r"^(?:Note|Warning|Error): |^\[src/lib[^\]]*\] ")
_capture_lock = threading.Lock()
_capture: dict[str, object] = {}  # per-process temporary file that receives fd 2


def _after_fork_in_child() -> None:
    """A child forked while another thread had fd 2 borrowed: give it back its stderr and
    a fresh lock (the inherited one may be held by a thread that does not exist here)."""
    global _capture_lock
    _capture_lock = threading.Lock()
    saved = _capture.pop("saved", None)
    if isinstance(saved, int):
        try:
            os.dup2(saved, 2)
            os.close(saved)
        except OSError:
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _capture_fd() -> int:
    """This process's (unlinked) temporary file for captured stderr, as a raw descriptor
    (a forked child gets its own)."""
    if _capture.get("pid") != os.getpid():
        fd, name = tempfile.mkstemp(prefix="nnaudio-stderr-")
        os.unlink(name)
        _capture["fd"] = fd
        _capture["pid"] = os.getpid()
    return int(_capture["fd"])  # type: ignore[arg-type]


@contextmanager
def decoder_messages() -> Iterator[list[str]]:
    """Capture what C decoders print on file descriptor 2 while the block runs.

    fd 2 is redirected to a temporary file and restored afterwards. Lines the decoder
    libraries print (libmpg123's ``Note: Illegal Audio-MPEG-Header ...``) are collected into
    the yielded list (filled when the block ends, without their ``Note:``/``[src/...]``
    prefixes), to become part of a failed row's reason; any other line (another thread's
    output in the same window) is written back to stderr. Redirection is process-wide, so
    one block at a time holds it (a lock), and it is kept short: one open or read call.
    """
    lines: list[str] = []
    with _capture_lock:
        try:
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError):
            pass
        try:
            tmp = _capture_fd()
            os.ftruncate(tmp, 0)
            os.lseek(tmp, 0, os.SEEK_SET)
            saved = os.dup(2)
        except OSError:  # no usable fd 2: nothing to capture
            yield lines
            return
        _capture["saved"] = saved
        os.dup2(tmp, 2)
        try:
            yield lines
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError, AttributeError):
                pass
            os.dup2(saved, 2)
            _capture.pop("saved", None)
            os.close(saved)
            os.lseek(tmp, 0, os.SEEK_SET)
            data = os.read(tmp, 1 << 20)
            other: list[str] = []
            for line in data.decode("utf-8", "replace").splitlines():
                if _DECODER_NOISE.match(line):
                    text = _DECODER_NOISE.sub("", line).strip()
                    if text:
                        lines.append(text)
                elif line.strip():
                    other.append(line)
            if other:
                try:
                    os.write(2, ("\n".join(other) + "\n").encode("utf-8", "replace"))
                except OSError:
                    pass


def _detail(noise: list[str], any_line: bool = True) -> str:
    """The most telling decoder message: an illegal header, else (``any_line``) the first."""
    lines = [re.sub(r"^(?:warning|error): ", "", n).rstrip(".") for n in noise]
    for line in lines:
        if "Illegal" in line:
            return line
    return lines[0] if lines and any_line else ""


#: Reason prefix of a failure that may not happen again (out of memory, a decoder process
#: killed by SIGKILL, as the kernel's OOM killer does): such rows are computed again by
#: ``--resume`` instead of being kept as failed inputs.
TRANSIENT = "transient: "


def transient(reason: str) -> str:
    """A failed row's reason that ``--resume`` retries (see :data:`TRANSIENT`)."""
    return reason if reason.startswith(TRANSIENT) else TRANSIENT + reason


def is_transient(reason: str) -> bool:
    """True for a reason made by :func:`transient`."""
    return str(reason).startswith(TRANSIENT)


def failure_reason(exc: BaseException) -> str:
    """A failed row's reason for an unexpected exception while decoding one file."""
    if isinstance(exc, MemoryError):
        return transient("out of memory while decoding this file; --resume tries it again")
    return str(exc) if isinstance(exc, InputError) else one_line(exc)


def open_reason(exc: BaseException, noise: list[str] | None = None) -> str:
    """Reason for a file libsndfile cannot open (without the path it repeats).

    The file was already found to be a non-empty regular file, so libsndfile's "File does
    not exist or is not a regular file (possibly a pipe?)" (what it says when no decoder
    recognises the bytes) is replaced by what happened.
    """
    text = re.sub(r"^Error opening .*?: ", "", " ".join(str(exc).split())).rstrip(".")
    if "possibly a pipe" in text or "does not exist" in text:
        text = "no decoder recognises its contents"
    detail = _detail(noise or [], any_line=False)
    if detail:
        text = f"{text}; decoder: {detail}" if text else f"decoder: {detail}"
    return f"not an audio file ({text})" if text else "not an audio file"


def read_reason(exc: BaseException, fmt: str, declared: int, noise: list[str]) -> str:
    """Reason for a decoding error after the file was opened (a damaged stream)."""
    text = " ".join(str(exc).split()).removeprefix("Error : ").rstrip(".")
    detail = _detail(noise)
    low = text.lower()
    if "lost sync" in low or "psf_fseek" in low:  # the decoder ran out of readable frames
        what = "decoder lost sync" if "lost sync" in low else f"stream ended ({text})"
        return (
            f"truncated: {fmt} {what} before the declared {declared} samples "
            f"(file cut short or damaged)"
        )
    return f"corrupt {fmt} stream ({detail or 'libsndfile: ' + text})"


def riff_truncation(fd: int) -> str | None:
    """Why the RIFF/WAVE file open at descriptor ``fd`` is truncated (its ``data`` chunk
    runs past the end), or None.

    libsndfile silently shortens such files; the header still tells. Files whose ``data``
    size is 0 or 0xFFFFFFFF (written by streaming recorders) are not judged.
    """
    try:
        head = os.pread(fd, 1 << 16, 0)
        size = os.fstat(fd).st_size
    except OSError:
        return None
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(head):
        cid, n = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
        if cid == b"data":
            if n in (0, 0xFFFFFFFF):
                return None
            have = size - pos - 8
            if have < n:
                return f"truncated: header declares {n} bytes of audio, file has {max(have, 0)}"
            return None
        pos += 8 + n + (n & 1)
    return None


def length_problem(f: Any, decoded: int) -> str | None:
    """Why ``decoded`` frames (the whole stream of ``f``, from :func:`open_sound`) mean a
    cut-short file, or None. libsndfile's header length is exact; a container's is an
    estimate (``AvSound.truncation`` allows for encoder delay and padding)."""
    judge = getattr(f, "truncation", None)
    if judge is not None:
        return judge(decoded)
    if decoded < f.frames:
        return f"truncated: decoded {decoded} of {f.frames} samples"
    return None


def truncated_riff(f: Any) -> str | None:
    fd = getattr(f, "fd", -1)
    return riff_truncation(fd) if isinstance(f, sf.SoundFile) and fd >= 0 else None
