"""Stateless tensor functions shared by the transforms: batching, padding, framing,
forward and inverse STFT (FFT and real-kernel paths), decibels.

Everything here is TorchScript-, ``torch.export``- and ``torch.compile``-friendly: no
module state, ``Optional`` arguments narrowed before use, padding through ``F.pad``.
"""

from __future__ import annotations

import weakref
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from nnaudio_core import filters
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


#: id(kernels_real) -> (weakrefs of kernels_real and kernels_imag, their versions, groups):
#: :func:`kernel_groups` of kernels nothing has written to since (kept outside any module,
#: so that pickling a module never meets a weak reference; an entry goes with its tensor)
_GROUPS: Dict[int, tuple] = {}


def _version(t: Tensor) -> int:
    """``t``'s in-place write counter (-1 for inference tensors, which keep none)."""
    return -1 if t.is_inference() else t._version


@torch.jit.unused
def kernel_groups(
    kernels_real: Tensor, kernels_imag: Tensor, lengths: Tensor
) -> List[Tuple[int, int, int, int]]:
    """The groups :func:`correlate_groups` applies a kernel bank in: bins of similar
    ``lengths`` on the common support of their *current* values
    (:func:`nnaudio_core.filters.support_groups`), so kernels loaded from a state dict or
    edited in place are applied whole. Remembered until either kernel tensor is written to
    (its version counter) or replaced.

    Parameters
    ----------
    kernels_real, kernels_imag : Tensor, shape (n_bins, 1, n_fft)
    lengths : Tensor, shape (n_bins,), filter lengths in samples (only the grouping)
    """
    key = id(kernels_real)
    seen = _GROUPS.get(key)
    if (
        seen is not None
        and seen[0]() is kernels_real
        and seen[1]() is kernels_imag
        and seen[2] == (_version(kernels_real), _version(kernels_imag))
        and min(seen[2]) >= 0
    ):
        return seen[3]
    with torch.no_grad():
        nz = ((kernels_real[:, 0] != 0) | (kernels_imag[:, 0] != 0)).to(torch.uint8)
        n_fft = nz.shape[-1]
        first = nz.argmax(1).cpu().numpy()
        last = n_fft - nz.flip(1).argmax(1).cpu().numpy()
        groups = filters.support_groups(first, last, lengths.detach().cpu().double().numpy())
    versions = (_version(kernels_real), _version(kernels_imag))
    gone = lambda _ref, key=key: _GROUPS.pop(key, None)  # noqa: E731
    _GROUPS[key] = (weakref.ref(kernels_real, gone), weakref.ref(kernels_imag), versions, groups)
    return groups


def correlate_groups(
    x: Tensor,
    kernels_real: Tensor,
    kernels_imag: Tensor,
    groups: List[Tuple[int, int, int, int]],
    hop_length: int,
) -> Tuple[Tensor, Tensor]:
    """Strided correlation with a kernel bank, one ``conv1d`` per group of bins on the
    group's own support: the correlation :func:`stft_conv` computes, without multiplying the
    zeros around short kernels (a CQT bank of ``n_fft`` 16,384 at 22.05 kHz is ~4x cheaper).

    Parameters
    ----------
    x : Tensor, shape (batch, samples), already padded
    kernels_real, kernels_imag : Tensor, shape (n_bins, 1, n_fft)
    groups : ``(bin0, bin1, a, z)`` covering the bins in order, bins ``bin0:bin1`` zero
        outside kernel columns ``a:z`` (:func:`nnaudio_core.filters.support_groups`)

    Returns
    -------
    (real, imag) : Tensors of shape (batch, n_bins, frames), ``x`` correlated with the real
    and with the imaginary kernels
    """
    n_fft = kernels_real.shape[-1]
    n_frames = (x.shape[-1] - n_fft) // hop_length + 1
    reals: List[Tensor] = []
    imags: List[Tensor] = []
    for b0, b1, a, z in groups:
        w = torch.cat([kernels_real[b0:b1, :, a:z], kernels_imag[b0:b1, :, a:z]], 0)
        seg = x[:, a : a + (n_frames - 1) * hop_length + (z - a)]
        out = F.conv1d(seg.unsqueeze(1), w, stride=hop_length)
        reals.append(out[:, : b1 - b0])
        imags.append(out[:, b1 - b0 :])
    return torch.cat(reals, 1), torch.cat(imags, 1)


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


def correlate_fft(
    padded: Tensor,
    src: Tensor,
    dst: Tensor,
    values: Tensor,
    matrix: Tensor,
    n_bins: int,
    n_fft: int,
    hop_length: int,
    m: int,
    negative_rows: int,
) -> Tuple[Tensor, Tensor]:
    """Strided correlation of a signal with many long complex kernels, by segment FFTs.

    Equals ``out[b, k, t] = sum_n padded[b, t * hop + n] * kernel[k, n]`` for the kernels
    described by :func:`nnaudio_core.filters.sparse_spectral_kernels` (``src``, ``dst``,
    ``values``, ``m``), to that function's ``rel_tol``. Cost: one ``hop * m``-point real FFT
    per segment plus one ``m``-point inverse FFT per bin and segment.

    Parameters
    ----------
    padded : Tensor, shape (batch, samples), at least ``n_fft`` samples
    values : Tensor, shape (nnz, 2), real/imag of the kernel spectra
    matrix : Tensor
        The same as a sparse COO complex matrix ``(n_bins * m, n_seg // 2 + 1)``, used on the
        eager CPU path (one sparse product instead of gather, multiply and scatter); pass an
        empty tensor to always use the gather path (compile/export/accelerators).
    negative_rows : int
        How many low rfft bins ``src`` also reads conjugated (negative frequencies), 0 if none.

    Returns
    -------
    (real, imag) : Tensors (batch, n_bins, frames), ``frames = 1 + (samples - n_fft) // hop``
    """
    batch = padded.shape[0]
    n_seg = hop_length * m
    n_frames = 1 + (padded.shape[1] - n_fft) // hop_length
    seg_frames = (n_seg - n_fft) // hop_length + 1
    n_segments = (n_frames + seg_frames - 1) // seg_frames
    total = (n_segments - 1) * seg_frames * hop_length + n_seg
    x = F.pad(padded, [0, total - padded.shape[1]])
    segments = x.unfold(-1, n_seg, seg_frames * hop_length)  # (batch, S, n_seg)
    n_cols = batch * n_segments
    # frequency-major layout: gathering and scattering whole rows is cache-friendly
    spec = torch.fft.rfft(segments, dim=-1).reshape(n_cols, -1).t()
    if negative_rows > 0:  # conjugate low bins = the spectrum at small negative frequencies
        spec = torch.cat([spec, spec[:negative_rows].conj()], 0)
    spec = spec.contiguous()
    if matrix.numel() > 0 and matrix.dtype == spec.dtype and is_eager_cpu(spec):
        folded = torch.sparse.mm(matrix, spec)
    else:
        prod = spec.index_select(0, src) * torch.view_as_complex(values).unsqueeze(1)
        folded = torch.zeros(n_bins * m, n_cols, dtype=prod.dtype, device=prod.device)
        folded = folded.index_add(0, dst, prod)
    # (columns, bins, m) contiguous: the inverse FFTs run over the last, unit-stride axis
    folded = folded.t().contiguous().reshape(n_cols, n_bins, m)
    frames = torch.fft.ifft(folded, dim=-1)[:, :, :seg_frames]
    frames = frames.reshape(batch, n_segments, n_bins, seg_frames) / hop_length
    out = frames.permute(0, 2, 1, 3).reshape(batch, n_bins, n_segments * seg_frames)
    out = torch.view_as_real(out[:, :, :n_frames])
    return out[..., 0], out[..., 1]


def correlate_direct(
    padded: Tensor, matrix: Tensor, offset: int, n_frames: int, hop_length: int
) -> Tuple[Tensor, Tensor]:
    """Strided correlation with short kernels as one dense matrix product per time block.

    ``out[b, k, t] = sum_j padded[b, t * hop + offset + j] * K[k, j]`` with
    ``matrix = [Re(K).T | Im(K).T]`` of shape (span, 2 * n_bins).

    Returns
    -------
    (real, imag) : Tensors (batch, n_bins, n_frames)
    """
    span = matrix.shape[0]
    nb = matrix.shape[1] // 2
    batch = padded.shape[0]
    # time blocks of at most ~4 M frame samples keep the unfolded copy in cache-sized pieces
    per = max(1, (1 << 22) // max(1, batch * span))
    outs: List[Tensor] = []
    for t0 in range(0, n_frames, per):
        t1 = min(n_frames, t0 + per)
        x = padded[:, offset + t0 * hop_length : offset + (t1 - 1) * hop_length + span]
        outs.append(torch.matmul(x.unfold(-1, span, hop_length), matrix))
    out = outs[0] if len(outs) == 1 else torch.cat(outs, 1)  # (batch, frames, 2 * nb)
    return out[..., :nb].transpose(1, 2), out[..., nb:].transpose(1, 2)


def overlap_add_blocks(blocks: Tensor, step: int) -> Tensor:
    """Sum blocks ``(batch, n, size)`` placed ``step`` samples apart (any ``size``).

    The adjoint of ``x.unfold(-1, size, step)``: ``out[b, i * step + j] += blocks[b, i, j]``.

    Returns
    -------
    Tensor, shape (batch, (n - 1) * step + size)
    """
    batch, n, size = blocks.shape
    k = -(-size // step)
    out = blocks.new_zeros(batch, n + k - 1, step)
    for j in range(k):
        w = min(step, size - j * step)
        out[:, j : j + n, :w] += blocks[:, :, j * step : j * step + w]
    return out.reshape(batch, (n + k - 1) * step)[:, : (n - 1) * step + size]


def correlate_direct_adjoint(
    real: Tensor, imag: Tensor, matrix: Tensor, hop_length: int
) -> Tensor:
    """Adjoint of :func:`correlate_direct` (real inner products), without the offset.

    Parameters
    ----------
    real, imag : Tensors (batch, n_bins, n_frames), the output-side vector
    matrix : Tensor (span, 2 * n_bins), as :func:`correlate_direct`

    Returns
    -------
    Tensor (batch, (n_frames - 1) * hop_length + span): add it to the padded signal's
    gradient from sample ``offset`` on.
    """
    span = matrix.shape[0]
    if span >= 8 * hop_length:
        # many overlapping blocks: one transposed convolution (the product and the
        # overlap-add in one pass) is ~20x faster than ``span / hop`` strided block adds
        g = torch.cat([real, imag], 1)  # (batch, 2 * nb, frames)
        return F.conv_transpose1d(g, matrix.t().unsqueeze(1), stride=hop_length)[:, 0]
    g = torch.cat([real, imag], 1).transpose(1, 2)  # (batch, frames, 2 * nb)
    return overlap_add_blocks(torch.matmul(g, matrix.t()), hop_length)


def correlate_fft_adjoint(
    real: Tensor,
    imag: Tensor,
    matrix_h: Tensor,
    n_bins: int,
    n_fft: int,
    hop_length: int,
    m: int,
    negative_rows: int,
    n_samples: int,
) -> Tensor:
    """Adjoint of :func:`correlate_fft` (eager sparse-matrix path, real inner products).

    ``matrix_h`` is the conjugate transpose of the forward's sparse kernel matrix,
    ``(n_seg // 2 + 1 + negative_rows, n_bins * m)`` (CSR or COO), ``n_seg = hop * m``;
    ``n_samples`` the forward's input length. Each forward step is undone by its adjoint:
    frames -> zero-padded folded spectra, inverse FFT -> FFT / m, kernel product ->
    conjugate-transposed product, conjugated negative rows -> conjugated and added back,
    real FFT -> half-weighted inverse real FFT without the 1 / n, segmentation ->
    overlap-add.

    Returns
    -------
    Tensor (batch, n_samples)
    """
    batch, _, n_frames = real.shape
    n_seg = hop_length * m
    seg_frames = (n_seg - n_fft) // hop_length + 1
    n_segments = (n_frames + seg_frames - 1) // seg_frames
    n_rfft = n_seg // 2 + 1
    g = torch.complex(real, imag)
    g = F.pad(g, [0, n_segments * seg_frames - n_frames])
    g = g.reshape(batch, n_bins, n_segments, seg_frames).permute(0, 2, 1, 3)
    g = F.pad(g, [0, m - seg_frames])  # (batch, S, n_bins, m)
    g = torch.fft.fft(g, dim=-1, norm="forward") / hop_length
    n_cols = batch * n_segments
    h = matrix_h @ g.reshape(n_cols, n_bins * m).t()  # (n_rfft + neg, n_cols)
    spec = h[:n_rfft].clone()
    if negative_rows > 0:
        spec[:negative_rows] += h[n_rfft:].conj()
    spec[1 : n_rfft - 1] *= 0.5
    if n_seg % 2:  # odd length: the last bin is not a Nyquist bin
        spec[n_rfft - 1] *= 0.5
    seg = torch.fft.irfft(spec.t().reshape(batch, n_segments, n_rfft), n=n_seg, dim=-1,
                          norm="forward")
    out = overlap_add_blocks(seg, seg_frames * hop_length)
    if out.shape[1] < n_samples:
        out = F.pad(out, [0, n_samples - out.shape[1]])
    return out[:, :n_samples]
