"""Stateless tensor functions shared by the transforms: batching, padding, framing,
forward and inverse STFT (FFT and real-kernel paths), decibels.

Everything here is TorchScript-, ``torch.export``- and ``torch.compile``-friendly: no
module state, ``Optional`` arguments narrowed before use, padding through ``F.pad``.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


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
        raise ValueError("expected a waveform of shape (..., samples), got a scalar")
    if x.dim() == 1:
        lead = [1]
    elif x.dim() == 3 and x.shape[1] == 1:
        lead = [x.shape[0]]
    else:
        lead = list(x.shape[:-1])
    return x.reshape(-1, x.shape[-1]), lead


def unpack_batch(y: Tensor, lead: List[int]) -> Tensor:
    """Undo :func:`pack_batch`: ``(batch', *rest) -> (*lead, *rest)``."""
    return y.reshape(lead + list(y.shape[1:]))


def pad_signal(x: Tensor, n_fft: int, center: bool, pad_mode: str) -> Tensor:
    """Pad ``(batch, samples)`` by ``n_fft // 2`` on both sides when ``center`` is True.

    Raises ``ValueError`` naming the minimum length when the input is too short for the
    padding (reflect needs more than ``n_fft // 2`` samples) or for one frame.

    Returns
    -------
    Tensor, shape (batch, samples + 2 * (n_fft // 2)) or unchanged
    """
    length = x.shape[-1]
    if center:
        pad = n_fft // 2
        if pad_mode == "reflect" and length <= pad:
            raise ValueError(
                f"input has {length} samples but center=True with pad_mode='reflect' and "
                f"n_fft={n_fft} needs at least {pad + 1}; use pad_mode='constant' or longer audio"
            )
        if length < 1:
            raise ValueError("input has 0 samples; need at least 1")
        if pad == 0:
            return x
        if pad_mode == "reflect":
            return F.pad(x.unsqueeze(1), [pad, pad], mode="reflect").squeeze(1)
        return F.pad(x, [pad, pad])
    if length < n_fft:
        raise ValueError(
            f"input has {length} samples but center=False needs at least n_fft={n_fft}"
        )
    return x


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
    tiny = 1.1754943508222875e-38  # float32 tiny, as librosa's threshold
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
        peak = db.reshape(db.shape[0], -1).amax(dim=1)
        floor = (peak - top_db).reshape([-1] + [1] * (db.dim() - 1))
        db = torch.maximum(db, floor)
    return db
