"""Constant-Q transforms (``CQT1992v2``, ``CQT2010v2``, ``CQT``) and their shared engine
(imported by users from :mod:`nnaudio_core.features.cqt`, nnAudio2's path, with ``iCQT``).

All constant- and variable-Q classes are one module, :class:`VariableQ`, built from one kernel
builder (:func:`nnaudio_core.filters.variable_q_kernels`): a CQT is the ``gamma = 0`` case.

Two ways to apply the kernels, with the same numbers:

* **FFT path** (frozen kernels, the default): each padded clip is cut into long segments, each
  segment's spectrum is multiplied by the sparse kernel spectra and folded to the hop rate, so
  every bin costs one short inverse FFT. Exact time-domain CQT (no resampling
  approximations), at a fraction of the cost of convolving with kernels tens of thousands of
  samples long.
* **Kernel path** (``trainable=True`` or ``backend='conv'``): strided ``conv1d`` with the real
  and imaginary kernels, as nnAudio. Runs without complex tensors (MPS, ONNX). In eager CPU
  calls that record no gradient for the kernels, each group of bins is convolved on its own
  support only (:func:`nnaudio_core.functional.correlate_groups`, found from the kernels'
  current values): the same products without the zeros around the short kernels, 4x faster
  for 84 bins from C1.

Kernel memory and build time (fmin = C1 = 32.7 Hz, 84 bins, hop 512, measured on a 2-core
CPU): at 44.1 kHz the longest filter has 22,700 samples, so the kernel span ``n_fft`` is
32,768. The general FFT path (segments of ``hop * 128`` samples) keeps about half a million
spectral values above 1e-5 of each kernel's peak; the eager-CPU plan adds dense matrices for
the short kernels and the long kernels' spectra at three segment lengths; together they build
in ~0.2-0.4 s (``cqt84``: 0.2 s). The kernel path holds ``2 * n_bins * n_fft`` float32 values
(22 MB at 44.1 kHz) and builds in 0.07 s. Memory grows as ``1 / fmin``. Both FFT paths agree
with the kernel path to ~2e-5 (relative); ``sparsity > 0`` drops more of each kernel's
spectrum, like librosa, for speed.
"""

import inspect
import warnings
from typing import Any, List, Optional

import numpy as np
import torch
from torch import Tensor, nn

from nnaudio_core import checks, filters, workers
from nnaudio_core import functional as AF
from nnaudio_core.errors import ParameterError
from nnaudio_core.features import multirate as MR
from nnaudio_core.features.base import (
    BACKENDS,
    NORMALIZATION_TYPES,
    OUTPUT_FORMATS,
    PAD_MODES,
    Transform,
    bind,
    check_choice,
    declared,
)

# 'multirate': nnAudio's octave-by-octave algorithm (features/multirate.py); 'nnaudio2': the
# algorithm nnAudio2's class of the same name uses (each class resolves it, see _nnaudio2_backend)
CQ_BACKENDS = (*BACKENDS, "multirate", "nnaudio2")

# frames per FFT segment: long segments amortise the kernel span (n_fft) of overlap
SEGMENT_FRAMES = 64
# eager-CPU plan at hop 512: kernels up to this many samples are applied directly (dense
# matrix product over frames), longer ones by segment FFTs with the segment length fitted to
# each input; smaller hops lower the limit (direct_max_length)
DIRECT_MAX_LENGTH = 2048
DIRECT_REFERENCE_HOP = 512


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
# folded lengths tried for the long kernels: the smallest that holds the span, x2 and x4
FFT_SEGMENT_CHOICES = 3


def _check_top_band(top: float, cutoff: float, sr: float, bandwidth: str) -> None:
    """The Nyquist rule for the top bin (centre ``top`` Hz, band reaching ``cutoff`` Hz).

    A centre above ``sr / 2`` is always an error. A band that only reaches past it is an
    error under librosa's rule (``bandwidth='librosa'``: ``librosa.cqt`` refuses it) and a
    ``UserWarning`` under nnAudio's (``bandwidth='nnaudio'``), which nnAudio2 computes: the
    top kernels then alias a little of their band.
    """
    nyquist = sr / 2
    if top > nyquist:
        raise ParameterError(
            f"the top bin ({top:.1f} Hz) is above the Nyquist frequency {nyquist:.1f} Hz: "
            "lower n_bins or fmax, or raise sr"
        )
    if cutoff <= nyquist:
        return
    msg = (
        f"the top bin ({top:.1f} Hz) reaches {cutoff:.1f} Hz, above the Nyquist frequency "
        f"{nyquist:.1f} Hz"
    )
    if bandwidth == "librosa":
        raise ParameterError(f"{msg}: lower n_bins or fmax, or raise sr")
    warnings.warn(
        f"{msg}: its band aliases (computed, as nnAudio2 does); lower n_bins or fmax for "
        "bands that fit",
        UserWarning,
        stacklevel=4,
    )


class VariableQ(Transform):
    """Variable-Q transform; with ``gamma=0`` the constant-Q transform.

    Parameters
    ----------
    sr : float
        Sample rate in Hz.
    hop_length : int
        Samples between frames.
    fmin : float
        Lowest centre frequency in Hz (default C1, 32.70 Hz).
    fmax : float or None
        If given, ``n_bins = ceil(bins_per_octave * log2(fmax / fmin))``.
    n_bins : int
        Number of bins.
    bins_per_octave : int
    filter_scale : float
        Filter length multiplier (``Q = filter_scale / alpha``).
    gamma : float
        Bandwidth offset in Hz (0: constant Q).
    norm : float or None
        Norm each kernel is scaled to (1: L1, as librosa); ``None``/``0`` leaves them unscaled.
    window : str or tuple
        Filter window (scipy spec).
    center : bool
        Pad ``n_fft // 2`` on both sides so frame ``t`` is centred at sample ``t * hop``.
    pad_mode : {'reflect', 'constant'}
        ``'constant'``: zeros (librosa's default). ``'reflect'``: mirrored, repeatedly when the
        clip is shorter than ``n_fft // 2`` (as ``numpy.pad(mode="reflect")``).
    trainable : bool
        Learn the kernels (kernel path).
    output_format : {'Magnitude', 'Complex', 'Phase'}
        ``'Complex'``: trailing real/imag axis; ``'Phase'``: trailing (cos, sin) axis, as
        nnAudio.
    normalization_type : {'librosa', 'convolutional', 'wrap'}
        ``'librosa'`` multiplies by ``sqrt(filter length)`` (equals ``librosa.vqt``);
        ``'convolutional'`` is the plain correlation; ``'wrap'`` doubles it (nnAudio).
    backend : {'auto', 'fft', 'conv', 'multirate', 'nnaudio2'}
        How the transform is computed. ``'auto'``/``'fft'``: the exact transform by segment
        FFTs (fast; ``'auto'`` picks the eager-CPU plan where it applies); ``'conv'``: the
        exact transform by strided ``conv1d`` (nnAudio2's ``CQT1992v2``, bit for bit with
        ``bandwidth='nnaudio'``); ``'multirate'``: nnAudio's octave-by-octave approximation
        (:mod:`nnaudio_core.features.multirate`, needs ``bandwidth='nnaudio'``, ``center``,
        and a hop divisible by ``2 ** (octaves - 1)``). ``'nnaudio2'`` (the default of the
        nnAudio2-named classes): what nnAudio2's class of the same name computes, so a model
        trained on nnAudio2 features sees the same numbers: ``'conv'`` for ``CQT1992v2`` and
        ``VQT(gamma=0)``, ``'multirate'`` for ``CQT2010v2`` and ``VQT(gamma>0)``, nnAudio's
        STFT-times-kernel-spectra form for ``CQT1992``/``CQT2010``; where nnAudio2 has no
        answer (``center=False``, a hop the octaves cannot share, ``bandwidth='librosa'``)
        it is ``'auto'``.
    earlydownsample : bool
        ``'multirate'`` only: first low-pass and decimate the input by ``2 ** k`` where the
        top bin allows (nnAudio's rule, :func:`nnaudio_core.filters.early_downsample_count`).
    sparsity : float
        FFT path only: drop the smallest kernel-spectrum values adding up to this fraction of
        each kernel's L1 mass (librosa uses 0.01); 0 keeps everything above 1e-5 of the peak.
    bandwidth : {'librosa', 'nnaudio'}
        The filter-bandwidth rule (see :func:`nnaudio_core.filters.relative_bandwidth`):
        ``'librosa'`` (``Q = filter_scale / alpha``, ``alpha = (2^(2/b) - 1) / (2^(2/b) + 1)``,
        equals ``librosa.cqt``/``vqt``) or ``'nnaudio'`` (``Q = filter_scale / (2^(1/b) - 1)``,
        nnAudio's kernels bit for bit, so a model trained on nnAudio2 features sees the same
        numbers). The nnAudio2-named classes default to ``'nnaudio'``; :class:`CQT`,
        :class:`VariableQ` and the ``cqt84``/``vqt`` presets use ``'librosa'``.
    verbose : bool
        Accepted for nnAudio compatibility.

    Shapes
    ------
    ``(samples,)``, ``(batch, samples)``, ``(batch, 1, samples)`` -> ``(batch, n_bins, frames)``;
    other ``(..., samples)`` -> ``(..., n_bins, frames)``; ``frames = 1 + samples // hop``
    when ``center``. Complex values have librosa's phase convention.
    """

    mr_spans: List[int]  # TorchScript: typed even when empty
    #: the sparse kernel spectra (eager CPU only) are no buffers: ``torch.export.save`` cannot
    #: store sparse tensors, and TorchScript/compilers never read them (see ``_sparse``)
    __jit_ignored_attributes__ = ["_sparse"]

    def __init__(
        self,
        sr: float = 22050,
        hop_length: int = 512,
        fmin: float = 32.70,
        fmax: Optional[float] = None,
        n_bins: int = 84,
        bins_per_octave: int = 12,
        filter_scale: float = 1,
        gamma: float = 0.0,
        norm: Optional[float] = 1,
        window: filters.WindowSpec = "hann",
        center: bool = True,
        pad_mode: str = "reflect",
        trainable: bool = False,
        output_format: str = "Magnitude",
        normalization_type: str = "librosa",
        backend: str = "auto",
        sparsity: float = 0.0,
        bandwidth: str = "librosa",
        verbose: bool = True,
        earlydownsample: bool = True,
    ) -> None:
        super().__init__()
        self._remember_config(locals())
        # name -> sparse COO complex kernel-spectrum matrix of the eager-CPU FFT products;
        # moved by _apply like a buffer, rebuilt from the config (not in the state dict)
        self._sparse: dict[str, Tensor] = {}
        filters.check_bandwidth(bandwidth)
        check_choice("pad_mode", pad_mode, PAD_MODES)
        check_choice("output_format", output_format, OUTPUT_FORMATS)
        check_choice("normalization_type", normalization_type, NORMALIZATION_TYPES)
        check_choice("backend", backend, CQ_BACKENDS)
        self.nnaudio2_numerics = backend == "nnaudio2"
        if backend == "nnaudio2":  # nnAudio2's numbers exist only with nnAudio's bandwidths
            backend = self._nnaudio2_backend(gamma) if bandwidth == "nnaudio" else "auto"
        if backend.startswith(("multirate", "stft_product")) and bandwidth != "nnaudio":
            raise ParameterError("backend='multirate' is nnAudio's algorithm: needs "
                                 "bandwidth='nnaudio'")
        if backend == "fft" and trainable:
            raise ParameterError("backend='fft' cannot train kernels; use backend='conv'")
        checks.check_variable_q(
            sr, hop_length, fmin, fmax, n_bins, bins_per_octave, filter_scale, gamma, norm,
            window, sparsity,
        )
        if hop_length < 1:
            raise ParameterError(f"hop_length={hop_length} must be >= 1")
        if fmin <= 0:
            raise ParameterError(f"fmin={fmin} must be > 0 Hz")
        if fmax is not None:
            if fmax <= fmin:
                raise ParameterError(f"fmax={fmax} must be above fmin={fmin}")
            n_bins = int(np.ceil(bins_per_octave * np.log2(fmax / fmin)))
        if n_bins < 2:
            raise ParameterError(f"n_bins={n_bins} must be >= 2")
        freqs = filters.cqt_frequencies(n_bins, fmin, bins_per_octave)
        alpha = filters.relative_bandwidth(freqs, bandwidth, bins_per_octave)
        cutoff = np.max(
            freqs * (1 + 0.5 * filters.window_bandwidth(window) * alpha / filter_scale)
            + 0.5 * gamma
        )
        _check_top_band(freqs[-1], cutoff, sr, bandwidth)
        kernels, lengths, n_fft = filters.variable_q_kernels(
            freqs, sr, filter_scale, gamma, window, norm, bandwidth, bins_per_octave
        )
        self._freqs = freqs
        self.bandwidth = bandwidth
        self.sr = sr
        self.hop_length = int(hop_length)
        self.n_bins = n_bins
        self.n_fft = n_fft
        self.center = center
        self.pad_mode = pad_mode
        self.trainable = trainable
        self.output_format = output_format
        self.normalization_type = normalization_type
        self.use_fft = not trainable and backend in ("auto", "fft")
        # multirate / STFT-product state (empty unless backend is one of those)
        self.multirate = False
        self.mr_spans: List[int] = []
        self.mr_filters = self.mr_octaves = self.mr_factor = self.mr_hop = 0
        self.mr_gain = 1.0
        self.mr_negate_imag = False
        self.divisor = 1.0
        for name in ("mr_lowpass", "mr_early", "mr_fourier_cos", "mr_fourier_sin"):
            self.register_buffer(name, torch.zeros(0, 1, 1), persistent=False)
        if backend in ("multirate", "stft_product", "stft_product_multirate"):
            kernels, lengths = self._build_multirate(
                backend, freqs, kernels, lengths, fmin, bins_per_octave, filter_scale, gamma,
                window, norm, earlydownsample,
            )
            self.n_fft = self.mr_spans[0]
        self.register_buffer("lengths", torch.from_numpy(lengths.astype(np.float32)))
        if self.use_fft:
            src, dst, values, m = filters.sparse_spectral_kernels(
                kernels, self.hop_length, SEGMENT_FRAMES, sparsity=sparsity
            )
            self.m = m
            n_rfft = hop_length * m // 2 + 1
            self.negative_rows = int(max(0, src.max() - n_rfft + 1))
            # derived from the parameters: not part of state_dict
            self.register_buffer("src", torch.from_numpy(src), persistent=False)
            self.register_buffer("dst", torch.from_numpy(dst), persistent=False)
            values_t = torch.from_numpy(values.astype(np.float32))
            self.register_buffer("values", values_t, persistent=False)
            complex_values = torch.view_as_complex(self.values)
            matrix = torch.sparse_coo_tensor(
                torch.stack([self.dst, self.src]),
                complex_values,
                (n_bins * m, n_rfft + self.negative_rows),
                check_invariants=False,
                is_coalesced=True,  # sparse_spectral_kernels sorts its entries
            )
            self._sparse["spectral_matrix"] = matrix
            self._build_cpu_plan(kernels, lengths, sparsity)
            # the kernel path runs under torch.export / ONNX, where the segment FFTs'
            # complex gathers do not convert and their length arithmetic pins the length;
            # not in the state dict (rebuilt from the config)
            self.register_buffer(
                "cqt_kernels_real",
                torch.from_numpy(kernels.real.astype(np.float32)).unsqueeze(1),
                persistent=False,
            )
            self.register_buffer(
                "cqt_kernels_imag",
                torch.from_numpy(kernels.imag.astype(np.float32)).unsqueeze(1),
                persistent=False,
            )
        else:
            self._direct: list[tuple[int, int, int, str]] = []
            self._long: list[tuple[int, str, int, int]] = []
            self._long_bins = 0
            self.m = 0
            self.negative_rows = 0
            for name in ("src", "dst"):
                self.register_buffer(name, torch.zeros(0, dtype=torch.long), persistent=False)
            self.register_buffer("values", torch.zeros(0, 2), persistent=False)
            real = torch.from_numpy(kernels.real.astype(np.float32)).unsqueeze(1)
            imag = torch.from_numpy(kernels.imag.astype(np.float32)).unsqueeze(1)
            if trainable:
                self.cqt_kernels_real = nn.Parameter(real)
                self.cqt_kernels_imag = nn.Parameter(imag)
            else:
                self.register_buffer("cqt_kernels_real", real)
                self.register_buffer("cqt_kernels_imag", imag)
        self._kernels_built(kernels)

    def _apply(self, fn: Any, recurse: bool = True) -> "VariableQ":
        """``Module.to(dtype)`` would cast the complex (sparse) kernel spectra of the FFT path
        to a real dtype, silently discarding their imaginary parts: they move with the
        module's device instead and take the complex dtype of its new float dtype
        (complex128 for float64, complex64 otherwise)."""
        saved = {n: b for n, b in self._buffers.items() if b is not None and b.is_complex()}
        for name in saved:
            self._buffers[name] = None
        super()._apply(fn, recurse)
        real = self.lengths
        cdtype = torch.complex128 if real.dtype == torch.float64 else torch.complex64
        for name, buf in saved.items():
            self._buffers[name] = buf.to(device=real.device, dtype=cdtype)
        for name, mat in self._sparse.items():
            self._sparse[name] = mat.to(device=real.device, dtype=cdtype)
        return self

    def frequencies(self) -> np.ndarray:
        """Centre frequency of each bin in Hz, shape (n_bins,)."""
        return self._freqs.copy()

    def _nnaudio2_backend(self, gamma: float) -> str:
        """What ``backend='nnaudio2'`` means for this class (nnAudio2's own algorithm)."""
        return "conv"

    def _multirate_or_auto(self, multirate: str) -> str:
        """``multirate`` where nnAudio2's multirate algorithm is defined for this module's
        parameters (centred frames, a hop every octave can share), else ``'auto'`` (exact)."""
        cfg = self._config
        try:
            layout = filters.multirate_layout(
                cfg["sr"], cfg["hop_length"], cfg["fmin"], cfg["n_bins"],
                cfg["bins_per_octave"], cfg["filter_scale"], cfg["earlydownsample"],
            )
        except ParameterError:
            return "auto"
        ok = cfg["center"] and cfg["fmax"] is None and filters.octaves_share_hop(layout)
        return multirate if ok else "auto"

    @torch.jit.unused
    def _build_multirate(
        self, backend: str, freqs: np.ndarray, kernels: np.ndarray, lengths: np.ndarray,
        fmin: float, bins_per_octave: int, filter_scale: float, gamma: float,
        window: filters.WindowSpec, norm: Optional[float], earlydownsample: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Set up the multirate (or nnAudio STFT-product) path; returns the kernels to
        store (banks, or their spectra) and the lengths of the ``'librosa'`` scaling."""
        if not self.center:
            raise ParameterError(f"backend={backend!r} needs center=True")
        n_bins = freqs.size
        if backend == "stft_product":  # nnAudio's CQT1992: one full-rate bank
            spans, n_filters, factor = [kernels.shape[1]], n_bins, 1
            hop, n_octaves = self.hop_length, 1
        else:
            layout = filters.multirate_layout(
                self.sr, self.hop_length, fmin, n_bins, bins_per_octave, filter_scale,
                earlydownsample,
            )
            bank = MR.multirate_bank(
                layout, fmin, n_bins, bins_per_octave, filter_scale, gamma, window, norm,
                self._vqt_kernel_sr(gamma),
            )
            kernels, lengths, spans = bank.kernels, bank.lengths, bank.spans
            n_filters, factor = bank.n_filters, bank.layout.factor
            hop, n_octaves = bank.layout.hop_length, bank.layout.n_octaves
            self.mr_lowpass = torch.from_numpy(bank.lowpass)[None, None]
            if factor > 1:
                self.mr_early = torch.from_numpy(bank.early)[None, None]
            if self._vqt_kernel_sr(gamma) is not None and factor > 1:
                warnings.warn(
                    f"nnAudio2's VQT downsamples this input by {factor} first but designs its "
                    f"kernels at the original rate, so every bin responds {factor} times "
                    "above its labelled frequency; reproduced for nnAudio2 compatibility. "
                    "Pass earlydownsample=False or backend='auto' for correctly tuned bins",
                    UserWarning,
                    stacklevel=4,
                )
        self.multirate = True
        self.mr_spans, self.mr_filters, self.mr_factor = spans, n_filters, factor
        self.mr_hop, self.mr_octaves = hop, n_octaves
        self.mr_gain = float(factor)
        if backend != "multirate":  # nnAudio's STFT x kernel spectra (CQT1992, CQT2010)
            n = spans[0]
            cos, sin = filters.fourier_kernels(np.arange(n // 2 + 1.0), n, n, np.ones(n))
            self.mr_fourier_cos = torch.from_numpy(cos.astype(np.float32)).unsqueeze(1)
            self.mr_fourier_sin = torch.from_numpy(sin.astype(np.float32)).unsqueeze(1)
            kernels = filters.spectral_kernels(kernels)
            self.divisor = float(n)
            self.mr_gain = 1.0  # nnAudio's CQT2010 does not rescale by the early factor
            self.mr_negate_imag = backend == "stft_product"  # CQT1992: v2's sign; CQT2010 not
        return kernels, lengths

    def _vqt_kernel_sr(self, gamma: float) -> Optional[float]:
        """The rate the multirate banks are designed at (None: the true one)."""
        return None

    @torch.jit.unused
    def _build_cpu_plan(self, kernels: np.ndarray, lengths: np.ndarray, sparsity: float) -> None:
        """The eager-CPU plan (same numbers as the general FFT path, to float32 round-off).

        Short kernels (``<= direct_max_length(hop)`` samples, the upper octaves) are applied
        directly: one dense matrix product over frames per group of similar length, about
        ``2 * length`` multiply-adds per bin and frame (their spectra are too wide for the
        sparse FFT product to pay off). The long kernels (lowest octaves, narrow spectra) use
        segment FFTs; their sparse spectra are prepared for a few segment lengths so that each
        call picks the one that fits its clip length (no FFT of mostly padding).
        """
        hop = self.hop_length
        n_long = int(np.sum(lengths > direct_max_length(hop)))
        self._direct = []
        for i, (b0, b1, off, mat) in enumerate(filters.direct_groups(kernels, lengths, n_long)):
            name = f"_direct_{i}"
            self.register_buffer(name, torch.from_numpy(mat.astype(np.float32)), persistent=False)
            self._direct.append((b0, b1, off, name))
        self._long = []
        self._long_bins = n_long
        self._long_offset = 0
        self._long_span = 0
        if not n_long:
            return
        first, last = filters.kernel_supports(kernels[:n_long])
        a, z = int(first.min()), int(last.max())
        self._long_offset, self._long_span = a, z - a
        sub = kernels[:n_long, a:z]
        m = 1 << int(np.ceil(np.log2(-(-(z - a) // hop) + 1)))
        for _ in range(FFT_SEGMENT_CHOICES):
            src, dst, values, m = filters.sparse_spectral_kernels(
                sub, hop, 1, sparsity=sparsity, m=m
            )
            n_rfft = hop * m // 2 + 1
            neg = int(max(0, src.max() - n_rfft + 1))
            matrix = torch.sparse_coo_tensor(
                torch.from_numpy(np.stack([dst, src])),
                torch.from_numpy((values[:, 0] + 1j * values[:, 1]).astype(np.complex64)),
                (n_long * m, n_rfft + neg),
                check_invariants=False,
                is_coalesced=True,
            )
            name = f"_long_{m}"
            self._sparse[name] = matrix
            self._long.append((m, name, neg, int(src.size)))
            m *= 2

    @torch.jit.unused
    def long_segment_choice(self, n_frames: int) -> tuple[int, str, int]:
        """The eager-CPU plan's segment length for the long kernels on ``n_frames`` frames:
        ``(folded length m, matrix buffer name, negative rows)``, by a cost model of the
        FFTs and the sparse product (the iCQT's adjoint makes the same choice)."""
        hop, span, k = self.hop_length, self._long_span, self._long_bins
        best = None
        for m, name, neg, nnz in self._long:
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
    def _real_imag_cpu(self, padded: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`real_imag` by the eager-CPU plan (see :meth:`_build_cpu_plan`)."""
        hop = self.hop_length
        n_frames = 1 + (padded.shape[1] - self.n_fft) // hop
        reals: list[Tensor] = []
        imags: list[Tensor] = []
        if self._long_bins:
            span, k = self._long_span, self._long_bins
            m, name, neg = self.long_segment_choice(n_frames)
            off = self._long_offset
            seg = padded[:, off : off + (n_frames - 1) * hop + span]
            empty = self.src[:0]
            r, i = AF.correlate_fft(
                seg, empty, empty, self.values[:0], self._sparse[name], k, span, hop, m, neg
            )
            reals.append(r)
            imags.append(i)
        for _b0, _b1, off, name in self._direct:
            r, i = AF.correlate_direct(padded, getattr(self, name), off, n_frames, hop)
            reals.append(r)
            imags.append(i)
        return torch.cat(reals, 1), torch.cat(imags, 1)

    @torch.jit.unused
    def _sparse_matrix(self) -> Tensor:
        return self._sparse["spectral_matrix"]

    def real_imag(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Unscaled correlation with the kernels of packed ``(batch', samples)`` audio.

        Returns
        -------
        (real, imag), each ``(batch', n_bins, frames)``
        """
        if self.multirate:
            real, imag = MR.multirate_correlate(
                x, self.cqt_kernels_real, self.cqt_kernels_imag, self.mr_spans,
                self.mr_filters, self.mr_lowpass, self.mr_early, self.mr_factor, self.mr_hop,
                self.mr_octaves, self.n_bins, self.pad_mode, self.mr_fourier_cos,
                self.mr_fourier_sin, self.mr_gain,
            )
            return real, -imag if self.mr_negate_imag else imag
        padded = AF.pad_signal(x, self.n_fft, self.center, self.pad_mode)
        if self.use_fft and AF.is_eager_cpu(padded) and padded.dtype == torch.float32:
            return self._real_imag_cpu(padded)
        if self.use_fft and not AF.is_exporting():
            # the sparse matrix is only touched in eager CPU mode: compilers reject sparse tensors
            matrix = self._sparse_matrix() if AF.is_eager_cpu(padded) else self.values[:0]
            return AF.correlate_fft(
                padded,
                self.src,
                self.dst,
                self.values,
                matrix,
                self.n_bins,
                self.n_fft,
                self.hop_length,
                self.m,
                self.negative_rows,
            )
        if AF.is_eager_cpu(padded) and not self._kernels_track_grad():
            return self._real_imag_groups(padded)
        # stft_conv returns (x * cos, -(x * sin)); hand it -imag to get x * imag
        return AF.stft_conv(padded, self.cqt_kernels_real, -self.cqt_kernels_imag, self.hop_length)

    def _kernels_track_grad(self) -> bool:
        """Whether this call records gradients for the kernels (they then get one for every
        tap, zeros included, as nnAudio's full-length ``conv1d`` gives them)."""
        return torch.is_grad_enabled() and (
            self.cqt_kernels_real.requires_grad or self.cqt_kernels_imag.requires_grad
        )

    @torch.jit.unused
    def _real_imag_groups(self, padded: Tensor) -> tuple[Tensor, Tensor]:
        """The kernel path's correlation on each group of bins' own support (eager CPU):
        the same products as the full-length ``conv1d``, without the zeros around the
        shorter kernels (4x less work for 84 bins from C1)."""
        kr, ki = self.cqt_kernels_real, self.cqt_kernels_imag
        groups = AF.kernel_groups(kr, ki, self.lengths)
        return AF.correlate_groups(padded, kr, ki, groups, self.hop_length)

    def forward(
        self,
        x: Tensor,
        output_format: Optional[str] = None,
        normalization_type: Optional[str] = None,
    ) -> Tensor:
        """Constant-/variable-Q spectrogram of ``x``.

        Parameters
        ----------
        x : Tensor, shape (..., samples)
        output_format, normalization_type : override the constructor's choice for this call

        Returns
        -------
        Tensor, shape (..., n_bins, frames), or (..., n_bins, frames, 2) for
        'Complex' (real, imag) and 'Phase' (cos, sin)
        """
        fmt = self.output_format if output_format is None else output_format
        norm_type = self.normalization_type if normalization_type is None else normalization_type
        x2, lead = AF.pack_batch(x)
        x2 = x2.to(self.lengths.dtype)  # the dtype rule, see nnaudio_core.features.stft
        if AF.is_eager_cpu(x2):
            out = self._packed_blocks(x2, fmt, norm_type)
        else:
            out = self._packed(x2, fmt, norm_type)
        return AF.unpack_batch(out, lead)

    @torch.jit.unused
    def _packed_blocks(self, x: Tensor, fmt: str, norm_type: str) -> Tensor:
        """:meth:`_packed` on groups of clips, on the block workers
        (:mod:`nnaudio_core.workers`)."""
        return workers.map_clips(lambda b: self._packed(b, fmt, norm_type), x, self)

    def _packed(self, x2: Tensor, fmt: str, norm_type: str) -> Tensor:
        """The transform of packed ``(batch', samples)`` audio: ``(batch', n_bins, frames)``
        or ``(batch', n_bins, frames, 2)``."""
        real, imag = self.real_imag(x2)
        if norm_type != "convolutional":
            scale = self.output_scale(norm_type)
            real = real * scale
            imag = imag * scale
        if fmt == "Magnitude":
            power = real * real + imag * imag
            if self.trainable:
                power = power + 1e-8
            out = AF.root_power(power)
        elif fmt == "Complex":
            out = torch.stack((real, imag), dim=-1)
        elif fmt == "Phase":
            # nnAudio2's CQT1992 returns the phase of the conjugate of its Complex output
            phase = torch.atan2(-imag if self.mr_negate_imag else imag, real)
            out = torch.stack((torch.cos(phase), torch.sin(phase)), dim=-1)
        else:
            raise ParameterError(f"output_format='{fmt}' is not one of Magnitude, Complex, Phase")
        return out

    def output_scale(self, normalization_type: Optional[str] = None) -> Tensor:
        """Per-bin factor, shape (n_bins, 1), that :meth:`forward` applies to the correlation
        with the kernels: ``sqrt(filter length)`` (``'librosa'``), 2 (``'wrap'``) or 1
        (``'convolutional'``), the first two divided by the STFT length on nnAudio's
        STFT-product path; ``None`` means this module's ``normalization_type``."""
        norm_type = self.normalization_type if normalization_type is None else normalization_type
        if norm_type == "librosa":
            return torch.sqrt(self.lengths).reshape(-1, 1) / self.divisor
        if norm_type == "wrap":
            return self.lengths.new_full((self.n_bins, 1), 2.0 / self.divisor)
        if norm_type == "convolutional":
            return self.lengths.new_ones((self.n_bins, 1))
        raise ParameterError(
            f"normalization_type='{norm_type}' is not one of librosa, convolutional, wrap"
        )

    @torch.jit.unused
    def _kernels_built(self, kernels: np.ndarray) -> None:
        """Called once by ``__init__`` with the complex kernel bank, shape (n_bins, n_fft),
        which is not kept. A subclass that needs the bank (the operator of
        :class:`~nnaudio_core.features.icqt.iCQT`) overrides this."""

    @classmethod
    def engine_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """:class:`VariableQ` keyword arguments equal to this class's constructor ``params``.

        nnAudio's compatibility keywords are translated: ``trainable_STFT``/``trainable_CQT``
        make the kernels trainable; ``basis_norm`` is the
        kernel norm, and in the ``CQT2010`` classes ``norm`` (bool) says whether to apply
        ``normalization_type`` at all.
        """
        p = dict(params)
        if cls.norm_is_flag:
            if not p.pop("norm", True):
                p["normalization_type"] = "convolutional"
            p["norm"] = p.pop("basis_norm", 1)
        elif p.get("basis_norm") is not None:
            p["norm"] = p.pop("basis_norm")
        if p.pop("trainable_STFT", False) | p.pop("trainable_CQT", False):
            p["trainable"] = True
        for key in ("basis_norm", "trainable_STFT", "trainable_CQT"):
            p.pop(key, None)
        return p

    #: True in the ``CQT2010`` classes, where ``norm`` is a flag and ``basis_norm`` the norm
    norm_is_flag = False

    def extra_repr(self) -> str:
        return (
            f"n_bins={self.n_bins}, hop_length={self.hop_length}, n_fft={self.n_fft}, "
            f"path={'multirate' if self.multirate else 'fft' if self.use_fft else 'conv'}"
        )


# --- the nnAudio2-named classes: VariableQ's parameters, in each class's order ------------

_P = inspect.Parameter
#: every parameter a constant-/variable-Q class may take, with its annotation and default:
#: VariableQ's own, then nnAudio's compatibility keywords
Q_PARAMETERS: dict[str, inspect.Parameter] = {
    **{n: p for n, p in inspect.signature(VariableQ).parameters.items()},
    "basis_norm": _P("basis_norm", _P.POSITIONAL_OR_KEYWORD, default=1, annotation=Optional[float]),
    "trainable_STFT": _P("trainable_STFT", _P.POSITIONAL_OR_KEYWORD, default=False,
                         annotation=bool),
    "trainable_CQT": _P("trainable_CQT", _P.POSITIONAL_OR_KEYWORD, default=False,
                        annotation=bool),
}
_NORM_FLAG = _P("norm", _P.POSITIONAL_OR_KEYWORD, default=True, annotation=bool)
_HEAD = "sr hop_length fmin fmax n_bins "
_CQT1992V2 = (
    _HEAD + "bins_per_octave filter_scale norm window center pad_mode trainable output_format "
    "normalization_type backend sparsity bandwidth verbose"
)


def q_signature(names: str, *extra: inspect.Parameter, **defaults: Any) -> inspect.Signature:
    """The constructor signature (without ``self``) of the parameters ``names`` (space
    separated, in order) from :data:`Q_PARAMETERS` or ``extra`` (which win), with
    ``defaults`` replacing their defaults."""
    pool = {**Q_PARAMETERS, **{p.name: p for p in extra}}
    params = [pool[n] for n in names.split()]
    return inspect.Signature(
        [p.replace(default=defaults[p.name]) if p.name in defaults else p for p in params]
    )


def q_class(signature: inspect.Signature):  # noqa: ANN202 (a class decorator)
    """Give a :class:`VariableQ` subclass the constructor ``signature``: it binds its
    arguments to it (positional or keyword, as a written-out signature would), builds the
    engine from :meth:`VariableQ.engine_params` and remembers the bound values."""

    def deco(cls: type[VariableQ]) -> type[VariableQ]:
        @declared(signature)
        def __init__(self: VariableQ, *args: Any, **kwargs: Any) -> None:
            params = bind(cls.__init__, self, args, kwargs)
            VariableQ.__init__(self, **cls.engine_params(params))
            self._remember_config(params)

        __init__.__qualname__ = f"{cls.__qualname__}.__init__"
        cls.__init__ = __init__  # type: ignore[method-assign]
        return cls

    return deco


@q_class(q_signature(_CQT1992V2, bandwidth="nnaudio", backend="nnaudio2"))
class CQT1992v2(VariableQ):
    """Constant-Q transform (nnAudio2's ``CQT1992v2``): :class:`VariableQ` with ``gamma = 0``.

    Parameters are nnAudio2's (``sr, hop_length, fmin, fmax, n_bins, bins_per_octave,
    filter_scale, norm, window, center, pad_mode, trainable, output_format, verbose``) plus
    ``normalization_type``, ``backend``, ``sparsity`` and ``bandwidth``; see
    :class:`VariableQ`. With the default ``bandwidth='nnaudio'`` the kernels are nnAudio2's
    (outputs equal to ``nnAudio2``'s ``CQT1992v2`` within float32 round-off); with
    ``bandwidth='librosa'`` numerically equal to ``librosa.cqt(..., tuning=0.0)`` computed at
    full rate.
    """


@q_class(
    q_signature(
        _HEAD + "filter_scale bins_per_octave norm basis_norm window pad_mode trainable "
        "output_format earlydownsample normalization_type center backend sparsity bandwidth "
        "verbose",
        _NORM_FLAG,
        bandwidth="nnaudio",
        backend="nnaudio2",
    )
)
class CQT2010v2(VariableQ):
    """Constant-Q transform with nnAudio2's ``CQT2010v2`` interface and numbers.

    By default (``backend='nnaudio2'``) it is nnAudio's multirate algorithm
    (:mod:`nnaudio_core.features.multirate`: the top octave's kernels applied to the input
    halved octave by octave, after early downsampling where ``earlydownsample`` allows),
    equal to nnAudio2 2.0.3's ``CQT2010v2`` to float32 round-off. It approximates the exact
    CQT (:class:`CQT1992v2`) to a median 0.3-0.8% per bin. ``backend='auto'`` computes the
    exact transform instead (faster on CPU). Where nnAudio2 cannot compute it
    (``center=False``, ``fmax`` given, a hop that is not a multiple of ``2 ** (octaves -
    1)``) the default falls back to ``'auto'``. ``basis_norm`` is the kernel norm
    (nnAudio's name for ``norm``); ``norm`` (bool) keeps nnAudio's meaning of "apply the
    ``normalization_type`` scaling".
    """

    norm_is_flag = True

    def _nnaudio2_backend(self, gamma: float) -> str:
        return self._multirate_or_auto("multirate")


@q_class(q_signature(_CQT1992V2, bandwidth="librosa", backend="auto"))
class CQT(CQT1992v2):
    """Our constant-Q transform: :class:`CQT1992v2` with ``bandwidth='librosa'`` and
    ``backend='auto'`` (exact, fast) by default, numerically ``librosa.cqt(..., tuning=0.0)``
    (same parameters as :class:`CQT1992v2`)."""


@q_class(
    q_signature(
        _HEAD + "trainable_STFT trainable_CQT bins_per_octave filter_scale output_format norm "
        "window center pad_mode normalization_type backend bandwidth verbose",
        fmin=220,
        bandwidth="nnaudio",
        backend="nnaudio2",
    )
)
class CQT1992(VariableQ):
    """nnAudio's original ``CQT1992`` class (STFT times spectral kernels).

    Takes nnAudio's keywords (``sr, hop_length, fmin=220, fmax, n_bins, trainable_STFT,
    trainable_CQT, bins_per_octave, filter_scale, output_format, norm, window, center,
    pad_mode``). By default (``backend='nnaudio2'``) computed as nnAudio does: a
    rectangular-window STFT (``conv1d``) times the kernels' positive-frequency spectra,
    equal to nnAudio2's ``CQT1992`` to float32 round-off; it differs from the exact
    correlation (:class:`CQT1992v2`, ``backend='conv'``/``'auto'``) by the kernels'
    negative-frequency leakage (~1e-5 of the peak). ``trainable_STFT`` or ``trainable_CQT``
    makes the kernel spectra trainable (the STFT stage is fixed).
    """

    def _nnaudio2_backend(self, gamma: float) -> str:
        return "stft_product" if self._config["center"] else "auto"


@q_class(
    q_signature(
        _HEAD + "bins_per_octave norm basis_norm window pad_mode trainable_STFT filter_scale "
        "trainable_CQT output_format earlydownsample normalization_type center backend "
        "bandwidth verbose",
        _NORM_FLAG,
        bandwidth="nnaudio",
        backend="nnaudio2",
    )
)
class CQT2010(CQT2010v2):
    """nnAudio's original ``CQT2010`` class, with its keywords (``trainable_STFT``,
    ``trainable_CQT``, ``earlydownsample``, ``norm``/``basis_norm`` as in
    :class:`CQT2010v2`). By default (``backend='nnaudio2'``) nnAudio's numbers: the
    multirate algorithm of :class:`CQT2010v2` with each octave computed as STFT times kernel
    spectra, which conjugates the phase (imaginary part of the opposite sign to
    ``CQT2010v2``) and, after early downsampling by ``2 ** k``, leaves the output
    ``2 ** k`` times smaller, as nnAudio2's ``CQT2010``."""

    def _nnaudio2_backend(self, gamma: float) -> str:
        return self._multirate_or_auto("stft_product_multirate")


