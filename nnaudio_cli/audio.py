"""Decoding, downmixing and resampling (runs in the worker processes; no torch here).

Resampling uses **soxr** at quality ``"HQ"`` (``soxr_hq``), the resampler and quality that
``librosa.resample`` uses by default. Short files are resampled in one call
(:func:`soxr.resample`); long files are streamed block by block through
:class:`soxr.ResampleStream`. Both give bit-identical samples (soxr's one-shot call is the
same engine), so a file's features do not depend on whether it was segmented.

Downmixing to mono is the mean of the channels, taken before resampling (both are linear, so
the order does not change the result beyond round-off, and mono resampling is cheaper).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf
import soxr

#: soxr quality used for every file (librosa's default ``res_type='soxr_hq'``).
SOXR_QUALITY = "HQ"
#: Source frames read per block when streaming a long file.
STREAM_BLOCK = 1 << 18


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
    the target rate), ``"long"`` (the file must be streamed with :func:`stream_file`; no
    audio) or ``"failed"`` (``reason`` says why, one line).
    """

    info: SourceInfo
    status: str
    audio: np.ndarray | None = None
    reason: str = ""
    extra: dict = field(default_factory=dict)


def one_line(exc: BaseException) -> str:
    """A one-line description of an exception."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def resampled_length(samples: int, sr_in: float, sr_out: float) -> int:
    """Approximate length after resampling (for planning only; soxr decides exactly)."""
    return samples if sr_in == sr_out else int(math.ceil(samples * sr_out / sr_in))


def prepare(x: np.ndarray, sr_in: float, sr_out: float, mono: bool) -> np.ndarray:
    """Downmix and resample decoded audio.

    Parameters
    ----------
    x : np.ndarray, shape (samples, channels), float32 (soundfile's layout)
    sr_in, sr_out : sample rates in Hz
    mono : average the channels into one

    Returns
    -------
    np.ndarray, shape (channels', samples'), float32, C-contiguous
    """
    if mono and x.shape[1] > 1:
        x = x.mean(axis=1, keepdims=True, dtype=np.float32)
    if sr_in != sr_out:
        x = soxr.resample(np.ascontiguousarray(x), sr_in, sr_out, quality=SOXR_QUALITY)
    return np.ascontiguousarray(x.T, dtype=np.float32)


def _stat(path: str, info: SourceInfo) -> None:
    st = os.stat(path)
    info.size = int(st.st_size)
    info.mtime = float(st.st_mtime)


def decode_task(
    path: str, key: str, sr_out: float, mono: bool, long_samples: int
) -> DecodeResult:
    """Decode one file in a worker process.

    Parameters
    ----------
    path : file to read
    key : its relative path (reported back)
    sr_out : target rate in Hz
    mono : downmix to one channel
    long_samples : files whose resampled length times stored channels exceeds this are
        not decoded here but reported as ``"long"`` (to be streamed in segments)

    Returns
    -------
    DecodeResult
    """
    info = SourceInfo(key=key)
    try:
        _stat(path, info)
        with sf.SoundFile(path) as f:
            info.sr = int(f.samplerate)
            info.channels = int(f.channels)
            info.samples = int(f.frames)
            info.format = str(f.format)
            out_ch = 1 if mono else info.channels
            if resampled_length(info.samples, info.sr, sr_out) * out_ch > long_samples:
                return DecodeResult(info, "long")
            x = f.read(dtype="float32", always_2d=True)
        info.samples = int(x.shape[0])
        if info.samples == 0:
            return DecodeResult(info, "failed", reason="no audio samples")
        return DecodeResult(info, "ok", audio=prepare(x, info.sr, sr_out, mono))
    except Exception as e:  # noqa: BLE001 - every decoding problem is a failed row
        return DecodeResult(info, "failed", reason=one_line(e))


def stream_file(
    path: str, info: SourceInfo, sr_out: float, mono: bool, block: int = STREAM_BLOCK
) -> Iterator[tuple[np.ndarray, bool]]:
    """Decode and resample a long file block by block with bounded memory.

    Yields ``(audio, last)`` with ``audio`` of shape (channels', samples') at ``sr_out``;
    the concatenation equals :func:`prepare` on the whole file. Updates ``info.samples``
    to the number of frames actually decoded.
    """
    with sf.SoundFile(path) as f:
        sr_in = int(f.samplerate)
        channels = 1 if mono else int(f.channels)
        stream = None
        if sr_in != sr_out:
            stream = soxr.ResampleStream(sr_in, sr_out, channels, dtype="float32",
                                         quality=SOXR_QUALITY)
        decoded = 0
        while True:
            x = f.read(block, dtype="float32", always_2d=True)
            last = x.shape[0] < block
            if x.shape[0] == block:
                # peek: a block that ends exactly at the end of the file is the last one
                last = f.tell() >= f.frames if f.seekable() else False
            decoded += x.shape[0]
            if mono and x.shape[1] > 1:
                x = x.mean(axis=1, keepdims=True, dtype=np.float32)
            if stream is not None:
                x = stream.resample_chunk(np.ascontiguousarray(x), last=last)
            yield np.ascontiguousarray(x.T, dtype=np.float32), last
            if last:
                break
        info.samples = decoded
