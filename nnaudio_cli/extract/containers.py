"""The FFmpeg decoder backend (PyAV): audio in the containers libsndfile cannot read.

AAC in ``.m4a``/``.mp4``/``.mov``, Opus or Vorbis in ``.webm``/``.mkv``/``.mka``, WMA, AC-3,
AMR, ADTS ``.aac``... are decoded with FFmpeg through PyAV (the ``av`` package, the optional
``containers`` extra: ``pip install 'nnaudio-cli[containers]'``). soundfile stays the decoder for
what libsndfile reads. Only the first audio stream is used, and only its packets are decoded
(:meth:`av.container.InputContainer.demux` of that stream): a video stream is never decoded.

:class:`AvSound` offers the subset of :class:`soundfile.SoundFile` that
:mod:`nnaudio_cli.extract.audio` uses (``samplerate``, ``channels``, ``frames``, ``format``,
``read``, ``seek``, ``tell``), so both backends share the downmix, resampling and streaming
code. One difference: a container's length is an *estimate* (stream duration × time base,
else the container's duration), since encoder delay and padding are only known once decoded;
:meth:`AvSound.truncation` judges a decoded length against it with a tolerance.

Nothing here imports ``av`` at module level: the decoder processes pay for it only when they
meet a container file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from nnaudio_cli.errors import InputError
from nnaudio_cli.plumbing.text import install_hint, one_line

#: Extensions (lower case) decoded with FFmpeg only (libsndfile reads none of them).
CONTAINER_EXTENSIONS = frozenset(
    {
        ".m4a", ".m4b", ".mp4", ".m4v", ".mov", ".3gp", ".aac", ".adts", ".webm", ".mkv",
        ".mka", ".wma", ".asf", ".wmv", ".ac3", ".eac3", ".amr", ".mp2", ".avi", ".flv",
    }
)
#: Extensions libsndfile reads in some variants only (Ogg Opus/Vorbis yes, Ogg Speex or an
#: Ogg with a video stream no; MP3 only from libsndfile 1.1): libsndfile first, FFmpeg when
#: it refuses.
FALLBACK_EXTENSIONS = frozenset({".ogg", ".oga", ".ogv", ".opus", ".mp3", ".spx"})
#: The extra that installs PyAV.
EXTRA = "containers"
#: A decoded length this much shorter than the container declares (as a fraction, and at
#: least :data:`SHORT_SECONDS`) is a truncated file; less is encoder delay/padding.
SHORT_FRACTION = 0.05
SHORT_SECONDS = 0.25
#: Seconds decoded (and dropped) before a seek target: a transform codec's first frame
#: after a seek lacks the previous frame's overlap (Opus asks for 80 ms of pre-roll).
PREROLL_SECONDS = 0.2


def available() -> bool:
    """True when PyAV can be imported."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


#: How to install PyAV.
INSTALL = install_hint(EXTRA)


def missing_reason(ext: str) -> str:
    """A failed row's reason for a container file met without PyAV (one line, with the fix)."""
    return f"decoding {ext or 'this file'} needs FFmpeg (PyAV): {INSTALL}"


def _ffmpeg_text(exc: BaseException) -> str:
    """FFmpeg's message without PyAV's errno prefix and the file name it repeats."""
    text = getattr(exc, "strerror", None) or one_line(exc)
    return str(text).rstrip(".")


def _pcm(frame: Any) -> np.ndarray:
    """A decoded audio frame as float32 samples, shape (samples, channels)."""
    a = frame.to_ndarray()
    name = frame.format.name
    planar = frame.format.is_planar
    ch = len(frame.layout.channels)
    if not planar:  # packed: (1, samples * channels)
        a = a.reshape(-1, ch)
    else:  # planar: (channels, samples)
        a = a.T
    base = name.rstrip("p")
    if base in ("flt", "dbl"):
        return np.asarray(a, dtype=np.float32)
    if base == "s16":
        return a.astype(np.float32) / np.float32(32768.0)
    if base == "s32":
        return (a.astype(np.float64) / 2147483648.0).astype(np.float32)
    if base == "u8":
        return (a.astype(np.float32) - np.float32(128.0)) / np.float32(128.0)
    if base == "s64":
        return (a.astype(np.float64) / 9223372036854775808.0).astype(np.float32)
    raise InputError(f"unsupported decoded sample format {name}")


class AvSound:
    """One audio stream of a container, decoded with FFmpeg on demand.

    Parameters
    ----------
    source : a path (``/proc/self/fd/N`` of an opened descriptor works) or a binary file
    start : first frame to read (seeks; frames at the source rate)
    stop : frame to stop before (None: to the end)
    owned_fd : a descriptor ``source`` reads, closed by :meth:`close` (not when the
        constructor raises)
    fast_seek : seek in the container rather than decode from the start (see :meth:`seek`)

    Raises
    ------
    InputError
        Not a container FFmpeg recognises, no audio stream, or no decoder for its codec.
    """

    def __init__(self, source: Any, start: int = 0, stop: int | None = None,
                 owned_fd: int = -1, fast_seek: bool = False) -> None:
        import av

        self.fast_seek = fast_seek
        self.fd = -1  # set once opened: closed with this object
        self._source = source
        try:
            self._c = av.open(source, "r")
        except av.error.FFmpegError as e:
            raise InputError(f"not an audio file (ffmpeg: {_ffmpeg_text(e)})") from None
        except (OSError, ValueError) as e:  # av.open also raises these for unreadable input
            raise InputError(f"not an audio file (ffmpeg: {one_line(e)})") from None
        try:
            if not self._c.streams.audio:
                kinds = sorted({s.type for s in self._c.streams})
                has = f" (it holds {', '.join(kinds)})" if kinds else ""
                raise InputError(f"no audio stream{has}")
            self._a = self._c.streams.audio[0]
            ctx = self._a.codec_context
            self.samplerate = int(ctx.sample_rate or self._a.rate or 0)
            self.channels = int(getattr(ctx, "channels", 0) or len(ctx.layout.channels))
            if self.samplerate <= 0 or self.channels <= 0:
                raise InputError("the audio stream declares no sample rate or channel count")
            self.format = str(ctx.name).upper()
            self.frames = self._declared_frames()
        except BaseException:
            self._c.close()
            raise
        self.fd = owned_fd
        self._stop = stop
        self._pending: list[np.ndarray] = []
        self._buffered = 0
        self._pos = 0  # frames handed out so far, from the start of the stream
        self._eof = False
        self._frames: Iterator[Any] = self._decode()
        self._skip: int | None = None
        self._decoded_at = 0
        self._by_pts = False
        if start:
            self.seek(start)

    # -- header --------------------------------------------------------------------
    def _declared_frames(self) -> int:
        """The stream's length in frames as the container declares it (0 when unknown)."""
        a = self._a
        seconds = 0.0
        if a.duration and a.time_base:
            seconds = float(a.duration * a.time_base)
        elif self._c.duration:
            seconds = self._c.duration / 1_000_000  # AV_TIME_BASE
        return max(int(round(seconds * self.samplerate)), 0)

    def truncation(self, decoded: int) -> str | None:
        """Why ``decoded`` frames (the whole stream) mean a cut-short file, or None."""
        short = self.frames - decoded
        if self.frames and short > max(SHORT_FRACTION * self.frames,
                                       SHORT_SECONDS * self.samplerate):
            return (f"truncated: {self.format} stream ended after {decoded} of about "
                    f"{self.frames} declared samples (file cut short or damaged)")
        return None

    # -- decoding ------------------------------------------------------------------
    def _decode(self) -> Iterator[Any]:
        """Decoded frames of the audio stream (its packets only)."""
        import av

        try:
            for packet in self._c.demux(self._a):
                yield from packet.decode()
        except av.error.EOFError:
            return
        except av.error.FFmpegError as e:
            raise InputError(f"corrupt {self.format} stream (ffmpeg: {_ffmpeg_text(e)})") \
                from None

    def _start_of(self, frame: Any) -> int | None:
        """Position (in frames from the stream's start) of a decoded frame's first sample."""
        if frame.pts is None or frame.time_base is None:
            return None
        t0 = self._a.start_time or 0
        seconds = float((frame.pts - t0) * frame.time_base) if self._a.start_time is not None \
            else float(frame.pts * frame.time_base)
        return max(int(round(seconds * self.samplerate)), 0)

    def _fill(self, want: int) -> None:
        """Decode until ``want`` frames are buffered or the stream has ended."""
        while self._buffered < want and not self._eof:
            frame = next(self._frames, None)
            if frame is None:
                self._eof = True
                break
            if frame.sample_rate != self.samplerate or len(frame.layout.channels) \
                    != self.channels:
                raise InputError(f"{self.format} stream changes its sample rate or channel "
                                 "count mid-stream (not supported)")
            x = _pcm(frame)
            if self._skip is not None:  # after a seek: drop what precedes the target
                at = self._start_of(frame) if self._by_pts else None
                if at is None:
                    at = self._decoded_at
                self._decoded_at = at + x.shape[0]
                drop = min(max(self._skip - at, 0), x.shape[0])
                x = x[drop:]
                if x.shape[0] == 0:
                    continue
                self._skip = None
            self._pending.append(x)
            self._buffered += x.shape[0]

    def seek(self, frame: int) -> int:
        """Go to ``frame`` (frames from the stream's start); returns it.

        By default the stream is decoded from the start and what precedes ``frame`` is
        dropped: the samples are exactly those of a decode of the whole file (costs decoding
        the skipped part, ~1-2 % of its duration for AAC/Opus per core). With ``fast_seek``
        MP4/MOV and Ogg (sample-resolution timestamps and an index) seek in the container to
        :data:`PREROLL_SECONDS` before the target instead: tonal content then agrees to
        ~1e-5, but noise that the codec synthesises (AAC's perceptual noise substitution,
        Opus's noise filling) is drawn afresh, so such samples differ.
        """
        frame = max(int(frame), 0)
        seconds = frame / self.samplerate - PREROLL_SECONDS
        a = self._a
        if self.fast_seek and seconds > 0 and a.time_base and self._indexed():
            t0 = a.start_time or 0
            self._c.seek(t0 + int(math.floor(seconds / a.time_base)), stream=a,
                         backward=True, any_frame=False)
            self._decoded_at = frame  # only used when a frame carries no timestamp
            self._by_pts = True
        else:
            self._reopen()
            self._decoded_at = 0
            self._by_pts = False  # count samples, exactly as a decode from the start does
        self._frames = self._decode()
        self._pending, self._buffered, self._eof = [], 0, False
        self._skip = frame if frame else None
        self._pos = frame
        return frame

    def _indexed(self) -> bool:
        name = self._c.format.name
        return "mp4" in name or "mov" in name or name == "ogg"

    def _reopen(self) -> None:
        """Start again from the first byte (a container seek to 0 need not give the same
        first samples as a fresh open: decoder delay is applied on open)."""
        import av

        self._c.close()
        if hasattr(self._source, "seek"):
            self._source.seek(0)
        self._c = av.open(self._source, "r")
        self._a = self._c.streams.audio[0]

    def tell(self) -> int:
        """Frames read so far (from the stream's start)."""
        return self._pos

    def seekable(self) -> bool:
        return True

    @property
    def exhausted(self) -> bool:
        """True once every frame (up to ``stop``) has been read."""
        if self._stop is not None and self._pos >= self._stop:
            return True
        self._fill(1)
        return self._eof and self._buffered == 0

    def read(self, frames: int = -1, dtype: str = "float32",
             always_2d: bool = True) -> np.ndarray:
        """The next ``frames`` frames (all that are left when negative), shape
        (frames', channels), float32; fewer only at the end (or at ``stop``)."""
        if dtype != "float32" or not always_2d:
            raise ValueError("AvSound.read gives float32 (frames, channels) only")
        left = None if self._stop is None else max(self._stop - self._pos, 0)
        want = frames if frames >= 0 else None
        if left is not None:
            want = left if want is None else min(want, left)
        if want is None:
            self._fill(1 << 62)
            want = self._buffered
        else:
            self._fill(want)
        x = (np.concatenate(self._pending) if len(self._pending) > 1 else
             self._pending[0] if self._pending else np.zeros((0, self.channels), np.float32))
        out, rest = x[:want], x[want:]
        self._pending = [rest] if rest.shape[0] else []
        self._buffered = rest.shape[0]
        self._pos += out.shape[0]
        return np.ascontiguousarray(out, dtype=np.float32)

    def close(self) -> None:
        try:
            self._c.close()
        finally:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1

    def __enter__(self) -> AvSound:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def descriptor_source(fd: int) -> Any:
    """What :class:`AvSound` opens for an opened descriptor: its ``/proc/self/fd`` path on
    Linux (FFmpeg's own I/O), else a Python file object that does not close ``fd``."""
    proc = f"/proc/self/fd/{fd}"
    if os.path.exists(proc):
        return proc
    os.lseek(fd, 0, os.SEEK_SET)  # libsndfile may have read it first
    return os.fdopen(fd, "rb", closefd=False)


def write_audio(path: str | os.PathLike[str], x: np.ndarray, sr: int, codec: str,
                container: str | None = None, video: bool = False,
                bit_rate: int = 128_000) -> None:
    """Encode ``x`` (float32, shape (channels, samples), at ``sr`` Hz) with FFmpeg's
    ``codec`` into ``path`` (for tests and benchmarks: real AAC/Opus/WMA files without
    downloads).

    ``container`` names FFmpeg's muxer (default: from the extension); ``video`` adds a small
    MPEG-4 video stream of black frames before the audio stream, as in a downloaded clip.
    Opus is encoded at 48 kHz: ``sr`` must then be 48000.
    """
    import av

    x = np.ascontiguousarray(np.atleast_2d(x), dtype=np.float32)
    layout = {1: "mono", 2: "stereo"}.get(x.shape[0], f"{x.shape[0]}c")
    with av.open(os.fspath(path), "w", format=container) as out:
        if video:
            v = out.add_stream("mpeg4", rate=25)
            v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = out.add_stream(codec, rate=sr, layout=layout)
        a.bit_rate = bit_rate
        ctx = a.codec_context
        fmt = ctx.codec.audio_formats[0].name if ctx.codec.audio_formats else "fltp"
        res = av.AudioResampler(format=fmt, layout=layout, rate=sr,
                                frame_size=ctx.frame_size or None)
        frame = av.AudioFrame.from_ndarray(x, format="fltp", layout=layout)
        frame.sample_rate, frame.pts = sr, 0
        for f in res.resample(frame) + res.resample(None):
            for p in a.encode(f):
                out.mux(p)
        for p in a.encode(None):
            out.mux(p)
        if video:
            black = np.zeros((48, 64, 3), np.uint8)
            for i in range(int(math.ceil(x.shape[1] / sr * 25))):
                vf = av.VideoFrame.from_ndarray(black, format="rgb24")
                vf.pts = i
                for p in v.encode(vf):
                    out.mux(p)
            for p in v.encode(None):
                out.mux(p)
