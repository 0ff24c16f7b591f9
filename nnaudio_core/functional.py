"""Stateless tensor functions shared by the transforms: batching, padding, framing,
forward and inverse STFT (FFT and real-kernel paths), decibels (the constant-Q kernel
correlations are :mod:`nnaudio_core.correlate`).

Everything here is TorchScript-, ``torch.export``- and ``torch.compile``-friendly: no
module state, ``Optional`` arguments narrowed before use, padding through ``F.pad``.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from nnaudio_core.errors import ParameterError


def pack_batch(x: Tensor) -> Tuple[Tensor, List[int]]:
    """Flatten any leading dims of a waveform into one batch dim.

    ``(samples,)`` and ``(batch, 1, samples)`` follow nnAudio (treated as a batch of one /
    of ``batch``); any other ``(..., samples)`` keeps its leading dims.

    Parameters
    ----------
    x : Tensor, shape (samples,), (batch, samples), (batch, 1, samples) or (..., samples)

    Returns
    -------
    (Tensor of shape (batch', samples), leading shape to pass to :func:`unpack_batch`)
    """
    if x.dim() == 0:
        raise ParameterError("expected a waveform of shape (..., samples), got a scalar")
    if x.dim() == 1:
        lead = [1]
    elif x.dim() == 3 and x.shape[1] == 1:
        lead = [x.shape[0]]
    else:
        lead = list(x.shape[:-1])
    batch = 1
    for d in lead:
        batch *= d
    return x.reshape(batch, x.shape[-1]), lead


def root_power(power: Tensor, exponent: float = 0.5) -> Tensor:
    """``power ** exponent`` with a finite (zero) gradient where ``power`` is exactly 0.

    When gradients are tracked the power is clamped at the smallest normal float32 (1.2e-38),
    which changes no value float32 can tell apart from the plain root; inference skips it.
    """
    if power.requires_grad:
        power = torch.clamp(power, min=1.1754943508222875e-38)
    if exponent == 0.5:
        return torch.sqrt(power)
    return torch.pow(power, exponent)


def unpack_batch(y: Tensor, lead: List[int]) -> Tensor:
    """Undo :func:`pack_batch`: ``(batch', *rest) -> (*lead, *rest)``."""
    return y.reshape(lead + list(y.shape[1:]))


def reflect_pad(x: Tensor, pad: int) -> Tensor:
    """Reflect-pad ``(batch, samples)`` by ``pad`` on both sides, as
    ``numpy.pad(mode="reflect")``: mirror about the end samples (not repeating them), and
    keep reflecting back and forth when ``pad`` exceeds the clip (period ``2 * (L - 1)``);
    a one-sample clip repeats its sample. Equals ``F.pad(mode="reflect")`` when
    ``pad < samples``.

    Returns
    -------
    Tensor, shape (batch, samples + 2 * pad)
    """
    length = x.shape[-1]
    if pad < length:
        return F.pad(x.unsqueeze(1), [pad, pad], mode="reflect").squeeze(1)
    idx = torch.arange(-pad, length + pad, device=x.device)
    if length == 1:
        idx = torch.zeros_like(idx)
    else:
        period = 2 * (length - 1)
        idx = torch.remainder(idx, period)
        idx = torch.where(idx >= length, period - idx, idx)
    return x.index_select(-1, idx)


def pad_signal(x: Tensor, n_fft: int, center: bool, pad_mode: str) -> Tensor:
    """Pad ``(batch, samples)`` by ``n_fft // 2`` on both sides when ``center`` is True.

    ``pad_mode='reflect'`` works for clips of any length (see :func:`reflect_pad`: repeated
    reflection when the pad is longer than the clip); ``'constant'`` pads zeros.
    Raises ``ValueError`` for an empty input, and (``center=False``) for one shorter than
    one frame.

    Returns
    -------
    Tensor, shape (batch, samples + 2 * (n_fft // 2)) or unchanged
    """
    length = x.shape[-1]
    if center:
        pad = n_fft // 2
        if length < 1:
            raise ParameterError("input has 0 samples; need at least 1")
        if pad == 0:
            return x
        if pad_mode == "reflect":
            return reflect_pad(x, pad)
        return F.pad(x, [pad, pad])
    if length < n_fft:
        raise ParameterError(
            f"input has {length} samples but center=False needs at least n_fft={n_fft}"
        )
    return x


# Samples of frames per block on the CPU: keeps each block's frames and spectrum (a few
# MiB) in cache, much faster than one huge batch on a small CPU.
CPU_BLOCK_SAMPLES = 1 << 20


@torch.jit.unused
def _is_compiling() -> bool:
    return torch.compiler.is_compiling()


@torch.jit.unused
def _is_exporting() -> bool:
    return torch.compiler.is_exporting()


def is_exporting() -> bool:
    """True while ``torch.export`` (and so ``torch.onnx.export(dynamo=True)``) traces: the
    transforms then take their real-valued kernel paths, which export with a dynamic length
    and convert to ONNX (False in TorchScript)."""
    if torch.jit.is_scripting():
        return False
    return _is_exporting()


def is_eager_cpu(x: Tensor) -> bool:
    """True for CPU tensors outside TorchScript, ``torch.compile`` and ``torch.export``:
    where CPU-only fast paths (cache blocking, sparse products) are used."""
    if x.device.type != "cpu":
        return False
    if torch.jit.is_scripting():
        return False
    return not _is_compiling()


def block_frames(x: Tensor, n_fft: int, block_samples: int = CPU_BLOCK_SAMPLES) -> int:
    """How many frames to compute per block for ``x``: cache-sized on the CPU in eager mode
    and TorchScript, everything at once on accelerators and under ``torch.compile``/``export``.
    """
    if not cpu_blocking(x):
        return 1 << 62
    return max(1, block_samples // n_fft)


def cpu_blocking(x: Tensor) -> bool:
    """True where work on ``x`` is cut into cache-sized blocks: CPU tensors in eager mode
    and TorchScript (not under ``torch.compile``/``torch.export``, which fuse the whole)."""
    if x.device.type != "cpu":
        return False
    if not torch.jit.is_scripting():
        if _is_compiling():
            return False
    return True


def split_frames(
    padded: Tensor, n_fft: int, hop_length: int, max_frames: int
) -> Tuple[List[Tensor], int]:
    """Cut a padded ``(batch, samples)`` signal into segments of about ``max_frames`` frames.

    Short clips are grouped along the batch; long ones are cut along time into segments that
    overlap by ``n_fft - hop_length`` samples, so their frames are exactly the whole clip's.

    Returns
    -------
    (segments, time_blocks): segments in (batch, time) order; ``time_blocks`` is the number
    of time segments per batch item (1 when split along the batch only).
    """
    batch = padded.shape[0]
    n_frames = 1 + (padded.shape[1] - n_fft) // hop_length
    parts: List[Tensor] = []
    if n_frames * batch <= max_frames:
        return [padded], 1
    if n_frames < max_frames:
        per = max(1, max_frames // n_frames)
        for b0 in range(0, batch, per):
            parts.append(padded[b0 : b0 + per])
        return parts, 1
    time_blocks = (n_frames + max_frames - 1) // max_frames
    for b in range(batch):
        for i in range(time_blocks):
            t0 = i * max_frames
            t1 = min(n_frames, t0 + max_frames)
            parts.append(padded[b : b + 1, t0 * hop_length : (t1 - 1) * hop_length + n_fft])
    return parts, time_blocks


def join_frames(parts: List[Tensor], time_blocks: int) -> Tensor:
    """Reassemble per-segment outputs ``(b, bins, frames[, 2])`` from :func:`split_frames`."""
    if len(parts) == 1:
        return parts[0]
    if time_blocks == 1:
        if parts[0].dim() == 3 and parts[0].stride(1) == 1:
            # frame-major memory (FFT path): concatenate as such, no transposing copy
            return torch.cat([p.transpose(1, 2) for p in parts], 0).transpose(1, 2)
        return torch.cat(parts, 0)
    rows: List[Tensor] = []
    if parts[0].dim() == 3 and parts[0].stride(1) == 1:
        # frame-major memory (FFT path): join along frames as such, no transposing copies
        for i in range(0, len(parts), time_blocks):
            rows.append(torch.cat([p.transpose(1, 2) for p in parts[i : i + time_blocks]], 1))
        return torch.cat(rows, 0).transpose(1, 2)
    for i in range(0, len(parts), time_blocks):
        rows.append(torch.cat(parts[i : i + time_blocks], 2))
    return torch.cat(rows, 0)


def stft_fft(
    x: Tensor, window: Tensor, n_fft: int, hop_length: int, n_bins: int
) -> Tuple[Tensor, Tensor]:
    """Uniform-grid STFT by framing and ``torch.fft.rfft``.

    Parameters
    ----------
    x : Tensor, shape (batch, samples), already padded
    window : Tensor, shape (n_fft,)
    n_bins : int, number of lowest FFT bins to keep (<= n_fft // 2 + 1)

    Returns
    -------
    (real, imag) : Tensors of shape (batch, n_bins, frames)
    """
    frames = x.unfold(-1, n_fft, hop_length) * window
    spec = torch.view_as_real(torch.fft.rfft(frames, dim=-1))
    spec = spec[:, :, :n_bins].transpose(1, 2)
    return spec[..., 0], spec[..., 1]


def stft_conv(
    x: Tensor, cos_kernel: Tensor, sin_kernel: Tensor, hop_length: int
) -> Tuple[Tensor, Tensor]:
    """STFT as strided 1-D convolution with real kernels (any frequency grid, trainable).

    Parameters
    ----------
    x : Tensor, shape (batch, samples), already padded
    cos_kernel, sin_kernel : Tensor, shape (freq_bins, 1, n_fft), windowed

    Returns
    -------
    (real, imag) : Tensors of shape (batch, freq_bins, frames), DFT sign convention
    """
    xs = x.unsqueeze(1)
    real = F.conv1d(xs, cos_kernel, stride=hop_length)
    imag = -F.conv1d(xs, sin_kernel, stride=hop_length)
    return real, imag


def overlap_add(frames: Tensor, hop_length: int) -> Tensor:
    """Overlap-add frames ``(batch, frame_length, n_frames)`` into ``(batch, samples)``."""
    frame_length = frames.shape[1]
    n_frames = frames.shape[2]
    length = frame_length + hop_length * (n_frames - 1)
    out = F.fold(
        frames,
        output_size=(1, length),
        kernel_size=(1, frame_length),
        stride=(1, hop_length),
    )
    return out.reshape(frames.shape[0], length)


def window_sumsquare(window: Tensor, n_frames: int, hop_length: int) -> Tensor:
    """Sum of squared, shifted windows: the overlap-add normaliser, shape (samples,)."""
    sq = (window * window).reshape(1, -1, 1).expand(1, window.shape[0], n_frames)
    return overlap_add(sq.contiguous(), hop_length)[0]


def istft_fft(real: Tensor, imag: Tensor, window: Tensor, hop_length: int) -> Tensor:
    """Windowed inverse real FFT of every frame, then overlap-add (not yet normalised).

    Parameters
    ----------
    real, imag : Tensor, shape (batch, n_fft // 2 + 1, frames)
    window : Tensor, shape (n_fft,)

    Returns
    -------
    Tensor, shape (batch, n_fft + hop_length * (frames - 1))
    """
    n_fft = window.shape[0]
    spec = torch.complex(real, imag).transpose(1, 2)
    frames = torch.fft.irfft(spec, n=n_fft, dim=-1) * window
    return overlap_add(frames.transpose(1, 2), hop_length)


def istft_conv(
    real: Tensor, imag: Tensor, cos_kernel: Tensor, sin_kernel: Tensor, hop_length: int
) -> Tensor:
    """Inverse STFT as transposed convolution with real synthesis kernels (trainable path).

    Parameters
    ----------
    real, imag : Tensor, shape (batch, n_fft // 2 + 1, frames)
    cos_kernel, sin_kernel : Tensor, shape (n_fft // 2 + 1, 1, n_fft), see
        :func:`nnaudio_core.filters.inverse_fourier_kernels`

    Returns
    -------
    Tensor, shape (batch, n_fft + hop_length * (frames - 1)), not yet normalised
    """
    out = F.conv_transpose1d(real, cos_kernel, stride=hop_length) - F.conv_transpose1d(
        imag, sin_kernel, stride=hop_length
    )
    return out.squeeze(1)


def normalise_and_trim(
    y: Tensor, window: Tensor, hop_length: int, n_frames: int, center: bool, length: Optional[int]
) -> Tensor:
    """Divide overlap-added audio by the window sum-square and cut the centre padding.

    Parameters
    ----------
    y : Tensor, shape (batch, samples_padded)
    length : int or None; output length in samples (zero-padded if longer than available)

    Returns
    -------
    Tensor, shape (batch, length) or (batch, samples_padded - 2 * (n_fft // 2))
    """
    n_fft = window.shape[0]
    wss = window_sumsquare(window, n_frames, hop_length)
    tiny = 1.1754943508222875e-38  # float32 tiny, librosa's threshold
    y = torch.where(wss > tiny, y / torch.clamp(wss, min=tiny), y)
    start = n_fft // 2 if center else 0
    if length is None:
        stop = y.shape[-1] - start
    else:
        stop = start + length
    y = y[:, start:stop]
    if length is not None and y.shape[-1] < length:
        y = F.pad(y, [0, length - y.shape[-1]])
    return y


def power_to_db(
    spec: Tensor, ref: float = 1.0, amin: float = 1e-10, top_db: Optional[float] = 80.0
) -> Tensor:
    """Power spectrogram to decibels, like ``librosa.power_to_db`` with a float ``ref``.

    ``top_db`` clips each batch item at ``max(item) - top_db`` (librosa clips the whole
    array it is given; per item keeps batch members independent).

    Parameters
    ----------
    spec : Tensor, shape (batch, ...), power
    """
    db = 10.0 * torch.log10(torch.clamp(spec, min=amin))
    db = db - 10.0 * torch.log10(torch.tensor(max(amin, ref), dtype=db.dtype, device=db.device))
    if top_db is not None:
        peak = db.amax(dim=list(range(1, db.dim())))  # no reshape: no shape guard in export
        floor = (peak - top_db).reshape([-1] + [1] * (db.dim() - 1))
        db = torch.maximum(db, floor)
    return db


