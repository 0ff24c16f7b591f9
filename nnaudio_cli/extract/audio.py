"""Decoding, downmixing and resampling (runs in the worker processes; no torch here).

Resampling uses **soxr** at quality ``"HQ"`` (``soxr_hq``), the resampler and quality that
``librosa.resample`` uses by default. Short files are resampled in one call
(:func:`soxr.resample`); long files are streamed block by block through
:class:`soxr.ResampleStream`. Both give bit-identical samples (soxr's one-shot call is the
same engine), so a file's features do not depend on whether it was segmented.

Downmixing to mono is the mean of the channels, taken before resampling (both are linear, so
the order does not change the result beyond round-off, and mono resampling is cheaper).
The one-shot resampling lives in :mod:`~nnaudio_cli.extract.resample`, the failed rows'
reasons and the capture of what decoders print in :mod:`~nnaudio_cli.extract.reasons`
(import them from there).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from nnaudio_cli.errors import InputError
from nnaudio_cli.extract.reasons import (
    decoder_messages,
    failure_reason,
    length_problem,
    open_reason,
    read_reason,
    truncated_riff,
)
from nnaudio_cli.extract.resample import (
    SOXR_QUALITY,
    prepare,
    rates_of,
    resampled_length,
)

#: Source frames read per block when streaming a long file.
STREAM_BLOCK = 1 << 18
#: What to do with NaN/Inf samples: refuse the file, or replace them by 0.
NAN_POLICIES = ("reject", "zero")
NAN_REASON = "contains NaN/Inf samples (use --nan-policy zero to replace them with 0)"


@dataclass
class SourceInfo:
    """What is known about one input file.

    Attributes
    ----------
    key : str
        Relative POSIX path (the key in the output file).
    sr : int
        Original sample rate (0 when unknown).
    samples : int
        Original length in samples per channel (as decoded; header value until decoded).
    channels : int
        Original channel count.
    size : int
        File size in bytes.
    mtime : float
        Modification time (seconds since the epoch).
    format : str
        libsndfile's format name (``"WAV"``, ``"FLAC"``, ...).
    """

    key: str
    sr: int = 0
    samples: int = 0
    channels: int = 0
    size: int = 0
    mtime: float = 0.0
    format: str = ""

    @property
    def duration(self) -> float:
        """Original duration in seconds."""
        return self.samples / self.sr if self.sr else 0.0


@dataclass
class DecodeResult:
    """Outcome of :func:`decode_task`.

    ``status`` is ``"ok"`` (``audio`` holds the clip, shape (channels, samples), float32, at
    the first target rate, and ``resampled`` the clip at every target rate), ``"long"`` (the
    file must be streamed with :func:`stream_rates`; no audio) or ``"failed"`` (``reason``
    says why, one line).
    """

    info: SourceInfo
    status: str
    audio: np.ndarray | None = None
    reason: str = ""
    extra: dict = field(default_factory=dict)
    resampled: dict[float, np.ndarray] = field(default_factory=dict)


def _unreadable(e: OSError, path: str | os.PathLike) -> InputError:
    """The failed row's error for a path that cannot be stat'ed or opened."""
    if e.errno == errno.ELOOP:
        return InputError("symbolic link loop")
    if e.errno == errno.ENOENT and os.path.islink(path):
        return InputError("broken symbolic link")
    return InputError(f"cannot read: {(e.strerror or str(e)).lower()}")


def _stat(path: str, info: SourceInfo) -> None:
    """Fill size and mtime; raise :class:`InputError` for what cannot be an audio file."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise _unreadable(e, path) from None
    info.size = int(st.st_size)
    info.mtime = float(st.st_mtime)
    if not stat.S_ISREG(st.st_mode):
        raise InputError("not a regular file")
    if st.st_size == 0:
        raise InputError("empty file")


def open_regular(path: str | os.PathLike) -> int:
    """Open ``path`` for reading without ever blocking, and check what was opened.

    ``O_NONBLOCK`` makes opening a FIFO (swapped in after an earlier ``stat``) return at
    once instead of waiting for a writer; ``fstat`` of the opened descriptor then rejects
    anything that is not a non-empty regular file. Returns the descriptor (blocking mode
    restored; the caller closes it).

    Raises
    ------
    InputError
        Cannot be opened, not a regular file, or empty (the failed row's reason).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) \
        | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise _unreadable(e, path) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError("not a regular file")
        if st.st_size == 0:
            raise InputError("empty file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


class _FdSoundFile(sf.SoundFile):
    """A :class:`soundfile.SoundFile` reading a descriptor it owns (closed with it)."""

    def __init__(self, fd: int) -> None:
        self.fd = -1
        super().__init__(fd, closefd=False)
        self.fd = fd

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1


def _extension(path: str | os.PathLike) -> str:
    return os.path.splitext(os.fsdecode(path))[1].lower()


def open_sound(path: str | os.PathLike, start: int = 0) -> tuple[Any | None, str]:
    """Open ``path`` for decoding (see :func:`_open_file`). The decoding paths call this;
    :func:`header` reads go to :func:`_open_file` directly, so wrapping this one sees
    decodes only."""
    return _open_file(path, start)


def _open_file(path: str | os.PathLike, start: int = 0) -> tuple[Any | None, str]:
    """Open ``path``: ``(file, "")``, or ``(None, reason)`` when it cannot be
    opened (the reason is a failed row's, with what the decoder printed folded in).

    The file is opened once (:func:`open_regular`: never blocks on a FIFO, works for any
    file name, UTF-8 or not). libsndfile decodes what it reads (a :class:`soundfile.SoundFile`);
    container extensions (:data:`~nnaudio_cli.extract.containers.CONTAINER_EXTENSIONS`), and the
    Ogg/MP3 variants libsndfile refuses, are decoded with FFmpeg
    (:class:`~nnaudio_cli.extract.containers.AvSound`, when PyAV is installed). Both offer
    ``samplerate``, ``channels``, ``frames``, ``format``, ``read``, ``seek`` and ``tell``;
    ``start`` (frames) seeks before the first read.
    """
    from nnaudio_cli.extract import containers

    try:
        fd = open_regular(path)
    except InputError as e:
        return None, str(e)
    ext = _extension(path)
    reason = ""
    try:
        if ext not in containers.CONTAINER_EXTENSIONS:
            with decoder_messages() as noise:
                try:
                    f = _FdSoundFile(fd)
                    error = None
                except (sf.LibsndfileError, RuntimeError, TypeError) as e:
                    error = e
            if error is None:
                if start:
                    f.seek(start)
                fd = -1  # the file owns it now
                return f, ""
            reason = open_reason(error, noise)
            if ext not in containers.FALLBACK_EXTENSIONS:
                return None, reason
        if not containers.available():
            if reason:  # an Ogg/MP3 variant libsndfile refuses: FFmpeg might read it
                return None, f"{reason}; FFmpeg may read it: {containers.INSTALL}"
            return None, containers.missing_reason(ext)
        try:
            sound = containers.AvSound(containers.descriptor_source(fd), start, owned_fd=fd)
        except InputError as e:
            return None, reason or str(e)
        fd = -1
        return sound, ""
    finally:
        if fd >= 0:
            os.close(fd)


def header(path: str | os.PathLike) -> tuple[int, int, int] | None:
    """``(sample rate, frames, channels)`` of a file as its header declares them (an
    estimate for containers), without decoding; None when it cannot be opened."""
    f, _ = _open_file(path)
    if f is None:
        return None
    with f:
        return int(f.samplerate), max(int(f.frames), 0), int(f.channels)


def _at_end(f: Any) -> bool:
    """After a full block: True when nothing is left to read."""
    done = getattr(f, "exhausted", None)
    if done is not None:
        return bool(done)
    return f.tell() >= f.frames if f.seekable() else False


def check_finite(x: np.ndarray, nan_policy: str) -> np.ndarray:
    """Apply ``--nan-policy`` to decoded samples: 'reject' raises, 'zero' replaces NaN/Inf
    by 0."""
    if np.isfinite(x).all():
        return x
    if nan_policy == "zero":
        return np.where(np.isfinite(x), x, np.float32(0)).astype(np.float32, copy=False)
    raise InputError(NAN_REASON)


def span_frames(span: tuple[float, float | None], sr: int, frames: int) -> tuple[int, int]:
    """Source frames ``[start, stop)`` of a span in seconds: ``round(start * sr)`` to
    ``round(end * sr)`` (Python's ``round``, ties to even; ``end`` None: the file's end).

    Raises
    ------
    InputError
        The span lies (partly) past the end of the file, or holds no frame at ``sr``.
    """
    start_s, end_s = span
    start = round(start_s * sr)
    stop = frames if end_s is None else round(end_s * sr)
    duration = f"{frames / sr:.6g} s" if sr else "unknown"
    if start >= frames:
        raise InputError(f"span starts at {start_s:g} s, not before the end of the file "
                         f"({duration})")
    if stop > frames:
        raise InputError(f"span ends at {end_s:g} s, past the end of the file ({duration}; "
                         "leave end empty to read to the end)")
    if stop <= start:
        raise InputError(f"span {start_s:g}-{end_s:g} s holds no sample at {sr} Hz")
    return start, stop


def skip_frames(f: sf.SoundFile, start: int) -> None:
    """Position ``f`` at frame ``start``: a seek where the format allows it, else the
    frames before it are read and dropped block by block."""
    if start <= 0:
        return
    if f.seekable():
        f.seek(start)
        return
    left = start
    while left > 0:
        n = f.read(min(left, STREAM_BLOCK), dtype="float32", always_2d=True).shape[0]
        if n == 0:
            raise InputError(f"stream ended before frame {start}")
        left -= n


def decode_task(
    path: str,
    key: str,
    sr_out: float | Sequence[float],
    mono: bool,
    long_samples: int,
    nan_policy: str = "reject",
    span: tuple[float, float | None] | None = None,
) -> DecodeResult:
    """Decode one file (or a span of it) in a worker process.

    Parameters
    ----------
    path : file to read
    key : its relative path (reported back)
    sr_out : target rate in Hz, or several: the file is decoded and downmixed once and
        resampled once per rate
    mono : downmix to one channel
    long_samples : files whose resampled length (at the first rate) times stored channels
        exceeds this are not decoded here but reported as ``"long"`` (to be streamed)
    nan_policy : 'reject' (a file with NaN/Inf samples fails) or 'zero' (they become 0)
    span : ``(start, end)`` seconds (``end`` None: to the end): only the frames of
        :func:`span_frames` are read (a seek, where the format allows it); ``info.samples``
        is then the span's length and ``extra["span"]`` its ``(start, stop)`` frames

    Returns
    -------
    DecodeResult
    """
    info = SourceInfo(key=key)
    rates = rates_of(sr_out)
    try:
        _stat(path, info)
        f, reason = open_sound(path)
        if f is None:
            return DecodeResult(info, "failed", reason=reason)
        with f:
            info.sr = int(f.samplerate)
            info.channels = int(f.channels)
            info.samples = int(f.frames)
            info.format = str(f.format)
            start = 0
            if span is not None:
                start, stop = span_frames(span, info.sr, info.samples)
                info.samples = stop - start
            out_ch = 1 if mono else info.channels
            extra = {} if span is None else {"span": (start, start + info.samples)}
            if resampled_length(info.samples, info.sr, rates[0]) * out_ch > long_samples:
                return DecodeResult(info, "long", extra=extra)
            why = truncated_riff(f)
            if why:
                return DecodeResult(info, "failed", reason=why)
            with decoder_messages() as noise:
                try:
                    skip_frames(f, start)
                    x = f.read(-1 if span is None else info.samples, dtype="float32",
                               always_2d=True)
                    error = None
                except (sf.LibsndfileError, RuntimeError) as e:
                    error = e
            if error is not None:
                reason = read_reason(error, info.format, info.samples, noise)
                return DecodeResult(info, "failed", reason=reason)
            if span is None:
                why = length_problem(f, x.shape[0])
            elif x.shape[0] < info.samples:
                why = f"truncated: decoded {x.shape[0]} of {info.samples} samples"
        if why:
            return DecodeResult(info, "failed", reason=why)
        info.samples = int(x.shape[0])
        if info.samples == 0:
            return DecodeResult(info, "failed", reason="no audio samples")
        x = check_finite(x, nan_policy)
        if mono and x.shape[1] > 1:  # once, for every rate
            x = x.mean(axis=1, keepdims=True, dtype=np.float32)
        out = {r: prepare(x, info.sr, r, mono) for r in rates}
        return DecodeResult(info, "ok", audio=out[rates[0]], resampled=out, extra=extra)
    except InputError as e:
        return DecodeResult(info, "failed", reason=str(e))
    except Exception as e:  # noqa: BLE001 - every decoding problem is a failed row
        return DecodeResult(info, "failed", reason=failure_reason(e))


def stream_file(
    path: str,
    info: SourceInfo,
    sr_out: float,
    mono: bool,
    block: int = STREAM_BLOCK,
    nan_policy: str = "reject",
) -> Iterator[tuple[np.ndarray, bool]]:
    """Decode and resample a long file block by block with bounded memory.

    Yields ``(audio, last)`` with ``audio`` of shape (channels', samples') at ``sr_out``;
    the concatenation equals :func:`prepare` on the whole file. See :func:`stream_rates`.
    """
    for blocks, last in stream_rates(path, info, (sr_out,), mono, block, nan_policy):
        yield blocks[sr_out], last


def stream_rates(
    path: str,
    info: SourceInfo,
    rates: Sequence[float],
    mono: bool,
    block: int = STREAM_BLOCK,
    nan_policy: str = "reject",
    start: int = 0,
    stop: int | None = None,
) -> Iterator[tuple[dict[float, np.ndarray], bool]]:
    """Decode a long file block by block with bounded memory, resampled to several rates.

    Yields ``({rate: audio}, last)`` with each ``audio`` of shape (channels', samples') at
    its rate; per rate, the concatenation equals :func:`prepare` on the whole file. The file
    is read and downmixed once; each rate has its own streaming resampler. Updates
    ``info.samples`` to the number of frames actually decoded. ``start``/``stop``: only
    source frames ``[start, stop)`` (``stop`` None: to the end), reached by a seek where
    the format allows it.

    Raises
    ------
    InputError
        NaN/Inf samples with ``nan_policy='reject'``, a truncated, corrupt or unreadable file
        (the message is the failed row's reason).
    """
    rates = rates_of(tuple(rates))
    sound, reason = open_sound(path)
    if sound is None:
        raise InputError(reason)
    with sound as f:
        why = truncated_riff(f)
        if why:
            raise InputError(why)
        sr_in = int(f.samplerate)
        channels = 1 if mono else int(f.channels)
        streams = {r: soxr.ResampleStream(sr_in, r, channels, dtype="float32",
                                          quality=SOXR_QUALITY) if sr_in != r else None
                   for r in rates}
        decoded = 0
        want = (int(f.frames) if stop is None else stop) - start
        while True:
            n = block if stop is None else min(block, want - decoded)
            with decoder_messages() as noise:
                try:
                    if decoded == 0:
                        skip_frames(f, start)
                    x = f.read(n, dtype="float32", always_2d=True)
                    error = None
                except (sf.LibsndfileError, RuntimeError) as e:
                    error = e
            if error is not None:
                raise InputError(read_reason(error, str(f.format), int(f.frames), noise))
            if stop is None:  # to the end: a full block may end exactly there
                last = x.shape[0] < n or _at_end(f)
                decoded += x.shape[0]
                why = length_problem(f, start + decoded) if last else None
            else:
                last = x.shape[0] < n or decoded + x.shape[0] >= want
                decoded += x.shape[0]
                why = (f"truncated: decoded {decoded} of {want} samples"
                       if last and decoded < want else None)
            if why:
                raise InputError(why)
            x = check_finite(x, nan_policy)
            if mono and x.shape[1] > 1:
                x = x.mean(axis=1, keepdims=True, dtype=np.float32)
            x = np.ascontiguousarray(x)
            out = {}
            for r, stream in streams.items():
                y = x if stream is None else stream.resample_chunk(x, last=last)
                out[r] = np.ascontiguousarray(y.T, dtype=np.float32)
            yield out, last
            if last:
                break
        info.samples = decoded
