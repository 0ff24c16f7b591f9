"""Correlation of padded audio with a constant-/variable-Q kernel bank, the three ways
:mod:`nnaudio_core.features.constant_q_paths` applies it, and the adjoints the iCQT solves
with:

* :func:`correlate_groups` (with :func:`kernel_groups`): strided ``conv1d`` per group of bins
  on the group's own support;
* :func:`correlate_fft`: segment FFTs times sparse kernel spectra, folded to the hop rate,
  and its adjoint :func:`correlate_fft_adjoint`;
* :func:`correlate_direct`: a dense matrix product over frames for short kernels, and its
  adjoint :func:`correlate_direct_adjoint`.

Stateless, like :mod:`nnaudio_core.functional` (TorchScript-, ``torch.export``- and
``torch.compile``-friendly where the transforms call them there).
"""

from __future__ import annotations

import weakref
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from nnaudio_core import filters
from nnaudio_core.functional import is_eager_cpu

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
