"""How :class:`~nnaudio_core.features.variable_q.VariableQ` applies its kernels: one small
module per compute path, each with its own setup, all called the same way.

A path is an ``nn.Module`` whose ``forward(x, kernels_real, kernels_imag, lengths)`` takes
packed ``(batch', samples)`` audio and returns the unscaled correlation with the kernels,
``(real, imag)``, each ``(batch', n_bins, frames)``. The kernels themselves (and their
lengths) stay on the transform, where the state dict and training see them; a path holds
only what it derives from them, as non-persistent buffers, so ``state_dict`` keys do not
depend on the path.

* :class:`KernelConv`: strided ``conv1d`` with the real and imaginary kernels (trainable
  kernels, ``backend='conv'``); in eager CPU calls that record no kernel gradient, each group
  of bins is convolved on its own support only.
* :class:`SegmentFFT`: frozen kernels by segment FFTs and sparse kernel spectra; eager CPU
  float32 calls use its :class:`EagerCPUPlan`, exports fall back to the kernel correlation.
* :class:`~nnaudio_core.features.multirate.Multirate`: nnAudio's octave-by-octave algorithm
  (and nnAudio's STFT-times-kernel-spectra form), built by
  :func:`~nnaudio_core.features.multirate.multirate_path`.
"""


from typing import Any, Dict, List, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from nnaudio_core import correlate, filters
from nnaudio_core import functional as AF

# frames per FFT segment: long segments amortise the kernel span (n_fft) of overlap
SEGMENT_FRAMES = 64
# eager-CPU plan at hop 512: kernels up to this many samples are applied directly (dense
# matrix product over frames), longer ones by segment FFTs with the segment length fitted to
# each input; smaller hops lower the limit (direct_max_length)
DIRECT_MAX_LENGTH = 2048
DIRECT_REFERENCE_HOP = 512
# folded lengths tried for the long kernels: the smallest that holds the span, x2 and x4
FFT_SEGMENT_CHOICES = 3


def direct_max_length(hop_length: int) -> int:
    """Longest kernel, in samples, that the eager-CPU plan applies directly at this hop.

    A direct kernel costs about ``2 * length`` multiply-adds per frame, so per second of
    audio its cost grows as ``1 / hop``, while a long kernel's share of the segment FFTs grows
    more slowly. Measured forward and iCQT times (2 cores, 84-100 bins, 22.05 kHz) put the
    crossover at 2048 samples at hop 512, ~1024 at hop 128 and ~512 at hop 32:
    ``2048 * sqrt(hop / 512)``, kept within [512, 2048].
    """
    scaled = DIRECT_MAX_LENGTH * (hop_length / DIRECT_REFERENCE_HOP) ** 0.5
    return int(min(DIRECT_MAX_LENGTH, max(DIRECT_MAX_LENGTH // 4, round(scaled))))


def _sparse_spectra(dst: np.ndarray, src: np.ndarray, values: np.ndarray,
                    shape: Tuple[int, int]) -> Tensor:
    """The complex64 sparse COO matrix of kernel spectra (entries sorted by
    :func:`~nnaudio_core.filters.sparse_spectral_kernels`)."""
    return torch.sparse_coo_tensor(
        torch.from_numpy(np.stack([dst, src])),
        torch.from_numpy((values[:, 0] + 1j * values[:, 1]).astype(np.complex64)),
        shape,
        check_invariants=False,
        is_coalesced=True,
    )


def kernels_track_grad(kernels_real: Tensor, kernels_imag: Tensor) -> bool:
    """Whether this call records gradients for the kernels (they then get one for every tap,
    zeros included, as nnAudio's full-length ``conv1d`` gives them)."""
    return torch.is_grad_enabled() and (kernels_real.requires_grad or kernels_imag.requires_grad)


@torch.jit.unused
def _correlate_on_supports(padded: Tensor, kernels_real: Tensor, kernels_imag: Tensor,
                           lengths: Tensor, hop_length: int) -> Tuple[Tensor, Tensor]:
    """The kernel correlation on each group of bins' own support (eager CPU): the same
    products as the full-length ``conv1d``, without the zeros around the shorter kernels (4x
    less work for 84 bins from C1)."""
    groups = correlate.kernel_groups(kernels_real, kernels_imag, lengths)
    return correlate.correlate_groups(padded, kernels_real, kernels_imag, groups, hop_length)


def correlate_kernels(padded: Tensor, kernels_real: Tensor, kernels_imag: Tensor,
                      lengths: Tensor, hop_length: int) -> Tuple[Tensor, Tensor]:
    """Strided correlation of padded ``(batch', samples)`` audio with ``(n_bins, 1, n_fft)``
    kernels: ``(real, imag)``, each ``(batch', n_bins, frames)``."""
    if AF.is_eager_cpu(padded) and not kernels_track_grad(kernels_real, kernels_imag):
        return _correlate_on_supports(padded, kernels_real, kernels_imag, lengths, hop_length)
    # stft_conv returns (x * cos, -(x * sin)); hand it -imag to get x * imag
    return AF.stft_conv(padded, kernels_real, -kernels_imag, hop_length)


class SparseSpectraHolder(nn.Module):
    """A path that keeps complex sparse kernel spectra in ``_sparse`` (name -> matrix).

    They are no buffers: ``torch.export.save`` cannot store sparse tensors, and TorchScript
    and compilers never read them. They move with the module (:meth:`_apply`).
    """

    __jit_ignored_attributes__ = ["_sparse"]

    def __init__(self) -> None:
        super().__init__()
        self._sparse: Dict[str, Tensor] = {}

    def _apply(self, fn: Any, recurse: bool = True) -> "SparseSpectraHolder":
        """Move the sparse spectra as ``.to()``/``.cuda()``/``.double()`` move the buffers:
        to the device ``fn`` sends a float32 tensor to, as complex128 when it makes it
        float64 and complex64 otherwise. (Handed to ``fn`` itself, ``Module.to(dtype)``
        would cast them to a real dtype and silently drop their imaginary parts.)"""
        super()._apply(fn, recurse)
        probe = fn(torch.zeros(1))
        dtype = torch.complex128 if probe.dtype == torch.float64 else torch.complex64
        for name, mat in self._sparse.items():
            self._sparse[name] = mat.to(device=probe.device, dtype=dtype)
        return self

    @torch.jit.unused
    def sparse(self, name: str) -> Tensor:
        """The sparse matrix called ``name``."""
        return self._sparse[name]


class KernelConv(nn.Module):
    """The kernel path: strided ``conv1d`` with the transform's kernels (runs without complex
    tensors: MPS, ONNX; trains the kernels).

    Parameters
    ----------
    n_fft : int
        Kernel span in samples.
    hop_length : int
        Samples between frames.
    center : bool
        Pad ``n_fft // 2`` on both sides.
    pad_mode : {'reflect', 'constant'}
    """

    def __init__(self, n_fft: int, hop_length: int, center: bool, pad_mode: str) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.center = center
        self.pad_mode = pad_mode

    def forward(self, x: Tensor, kernels_real: Tensor, kernels_imag: Tensor,
                lengths: Tensor) -> Tuple[Tensor, Tensor]:
        """``(real, imag)``, each ``(batch', n_bins, frames)``, of ``(batch', samples)``."""
        padded = AF.pad_signal(x, self.n_fft, self.center, self.pad_mode)
        return correlate_kernels(padded, kernels_real, kernels_imag, lengths, self.hop_length)


class EagerCPUPlan(SparseSpectraHolder):
    """The eager-CPU plan of the FFT path (same numbers, to float32 round-off).

    Short kernels (``<= direct_max_length(hop)`` samples, the upper octaves) are applied
    directly: one dense matrix product over frames per group of similar length, about
    ``2 * length`` multiply-adds per bin and frame (their spectra are too wide for the sparse
    FFT product to pay off). The long kernels (lowest octaves, narrow spectra) use segment
    FFTs; their sparse spectra are prepared for a few segment lengths so that each call picks
    the one that fits its clip length (no FFT of mostly padding).

    Attributes
    ----------
    long_bins : int
        Bins ``[0, long_bins)`` use segment FFTs, the others the direct groups.
    long_offset, long_span : int
        Where the long kernels' common support starts in the kernel span, and its length.
    long : list of (m, name, negative rows, nnz)
        The prepared segment lengths (``m`` folded frames) and their matrices' names.
    direct : list of (first bin, end bin, offset, buffer name)
        The direct groups; buffer ``name`` is the group's ``(span, 2 * bins)`` matrix.
    """

    __jit_ignored_attributes__ = ["_sparse", "long", "direct"]

    def __init__(self, kernels: np.ndarray, lengths: np.ndarray, hop_length: int,
                 sparsity: float) -> None:
        super().__init__()
        hop = self.hop_length = hop_length
        n_long = int(np.sum(lengths > direct_max_length(hop)))
        self.direct: List[Tuple[int, int, int, str]] = []
        for i, (b0, b1, off, mat) in enumerate(filters.direct_groups(kernels, lengths, n_long)):
            name = f"direct_{i}"
            self.register_buffer(name, torch.from_numpy(mat.astype(np.float32)), persistent=False)
            self.direct.append((b0, b1, off, name))
        self.long: List[Tuple[int, str, int, int]] = []
        self.long_bins = n_long
        self.long_offset = 0
        self.long_span = 0
        if not n_long:
            return
        first, last = filters.kernel_supports(kernels[:n_long])
        a, z = int(first.min()), int(last.max())
        self.long_offset, self.long_span = a, z - a
        sub = kernels[:n_long, a:z]
        m = 1 << int(np.ceil(np.log2(-(-(z - a) // hop) + 1)))
        for _ in range(FFT_SEGMENT_CHOICES):
            src, dst, values, m = filters.sparse_spectral_kernels(sub, hop, 1, sparsity=sparsity,
                                                                  m=m)
            n_rfft = hop * m // 2 + 1
            neg = int(max(0, src.max() - n_rfft + 1))
            name = f"long_{m}"
            self._sparse[name] = _sparse_spectra(dst, src, values, (n_long * m, n_rfft + neg))
            self.long.append((m, name, neg, int(src.size)))
            m *= 2

    @torch.jit.unused
    def long_segment_choice(self, n_frames: int) -> Tuple[int, str, int]:
        """The segment length for the long kernels on ``n_frames`` frames: ``(folded length
        m, matrix name, negative rows)``, by a cost model of the FFTs and the sparse product
        (the iCQT's adjoint makes the same choice)."""
        hop, span, k = self.hop_length, self.long_span, self.long_bins
        best = None
        for m, name, neg, nnz in self.long:
            seg_frames = (hop * m - span) // hop + 1
            if seg_frames < 1:
                continue
            n_seg = -(-n_frames // seg_frames)
            n = hop * m
            cost = n_seg * (n * np.log2(n) + 6.0 * nnz + k * m * np.log2(m))
            if best is None or cost < best[0]:
                best = (cost, m, name, neg)
        assert best is not None
        return best[1], best[2], best[3]

    @torch.jit.unused
    def direct_matrix(self, name: str) -> Tensor:
        """A direct group's ``(span, 2 * bins)`` matrix."""
        return getattr(self, name)

    @torch.jit.unused
    def correlate(self, padded: Tensor, n_fft: int) -> Tuple[Tensor, Tensor]:
        """``(real, imag)``, each ``(batch', n_bins, frames)``, of padded float32 audio."""
        hop = self.hop_length
        n_frames = 1 + (padded.shape[1] - n_fft) // hop
        reals: List[Tensor] = []
        imags: List[Tensor] = []
        if self.long_bins:
            span, k = self.long_span, self.long_bins
            m, name, neg = self.long_segment_choice(n_frames)
            off = self.long_offset
            seg = padded[:, off : off + (n_frames - 1) * hop + span]
            empty = torch.zeros(0, dtype=torch.long)
            r, i = correlate.correlate_fft(seg, empty, empty, padded.new_zeros(0, 2),
                                           self._sparse[name], k, span, hop, m, neg)
            reals.append(r)
            imags.append(i)
        for _b0, _b1, off, name in self.direct:
            r, i = correlate.correlate_direct(padded, self.direct_matrix(name), off, n_frames, hop)
            reals.append(r)
            imags.append(i)
        return torch.cat(reals, 1), torch.cat(imags, 1)


class SegmentFFT(SparseSpectraHolder):
    """The FFT path of frozen kernels: each padded clip is cut into long segments, each
    segment's spectrum is multiplied by the sparse kernel spectra and folded to the hop rate,
    so every bin costs one short inverse FFT.

    Eager CPU float32 calls use :attr:`plan` (:class:`EagerCPUPlan`); under ``torch.export``
    and ONNX, where the complex gathers do not convert, it correlates with the kernels.

    Parameters
    ----------
    kernels : np.ndarray, shape (n_bins, n_fft), complex
        The kernel bank (correlation form).
    lengths : np.ndarray, shape (n_bins,)
        Each kernel's length in samples (the eager-CPU plan's split).
    hop_length : int
    center : bool
    pad_mode : {'reflect', 'constant'}
    sparsity : float
        Fraction of each kernel spectrum's L1 mass that may be dropped (0: keep all above
        1e-5 of the peak).
    """

    def __init__(self, kernels: np.ndarray, lengths: np.ndarray, hop_length: int, center: bool,
                 pad_mode: str, sparsity: float) -> None:
        super().__init__()
        n_bins, n_fft = kernels.shape
        self.n_bins = n_bins
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.center = center
        self.pad_mode = pad_mode
        src, dst, values, m = filters.sparse_spectral_kernels(kernels, hop_length,
                                                              SEGMENT_FRAMES, sparsity=sparsity)
        self.m = m
        n_rfft = hop_length * m // 2 + 1
        self.negative_rows = int(max(0, src.max() - n_rfft + 1))
        # derived from the parameters: not part of state_dict
        self.register_buffer("src", torch.from_numpy(src), persistent=False)
        self.register_buffer("dst", torch.from_numpy(dst), persistent=False)
        self.register_buffer("values", torch.from_numpy(values.astype(np.float32)),
                             persistent=False)
        self._sparse["spectral_matrix"] = _sparse_spectra(
            dst, src, values, (n_bins * m, n_rfft + self.negative_rows))
        self.plan = EagerCPUPlan(kernels, lengths, hop_length, sparsity)

    @torch.jit.unused
    def _eager_cpu(self, padded: Tensor) -> Tuple[Tensor, Tensor]:
        return self.plan.correlate(padded, self.n_fft)

    def forward(self, x: Tensor, kernels_real: Tensor, kernels_imag: Tensor,
                lengths: Tensor) -> Tuple[Tensor, Tensor]:
        """``(real, imag)``, each ``(batch', n_bins, frames)``, of ``(batch', samples)``."""
        padded = AF.pad_signal(x, self.n_fft, self.center, self.pad_mode)
        eager_cpu = AF.is_eager_cpu(padded)
        if eager_cpu and padded.dtype == torch.float32:
            return self._eager_cpu(padded)
        if AF.is_exporting():
            return correlate_kernels(padded, kernels_real, kernels_imag, lengths,
                                     self.hop_length)
        # the sparse matrix is only touched in eager CPU mode: compilers reject sparse tensors
        matrix = self.sparse("spectral_matrix") if eager_cpu else self.values[:0]
        return correlate.correlate_fft(padded, self.src, self.dst, self.values, matrix,
                                       self.n_bins, self.n_fft, self.hop_length, self.m,
                                       self.negative_rows)

