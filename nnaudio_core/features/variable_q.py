"""The engine of every constant- and variable-Q class: :class:`VariableQ`, built from one
kernel builder (:func:`nnaudio_core.filters.variable_q_kernels`); a CQT is the ``gamma = 0``
case. The nnAudio2-named classes (:mod:`~nnaudio_core.features.constant_q`,
:mod:`~nnaudio_core.features.vqt`) are this module with nnAudio2's constructors; how the
kernels are applied is a compute path object (:mod:`~nnaudio_core.features.constant_q_paths`).

Three compute paths (:mod:`~nnaudio_core.features.constant_q_paths`), each a small module
held as ``self.path``, called the same way (the kernels stay on the transform):

* **FFT path** (:class:`~nnaudio_core.features.constant_q_paths.SegmentFFT`, frozen kernels,
  the default): each padded clip is cut into long segments, each segment's spectrum is
  multiplied by the sparse kernel spectra and folded to the hop rate, so every bin costs one
  short inverse FFT; eager CPU float32 calls use its eager-CPU plan. Exact time-domain CQT
  (no resampling approximations), at a fraction of the cost of convolving with kernels tens
  of thousands of samples long.
* **Kernel path** (:class:`~nnaudio_core.features.constant_q_paths.KernelConv`,
  ``trainable=True`` or ``backend='conv'``): strided ``conv1d`` with the real and imaginary
  kernels, as nnAudio. Runs without complex tensors (MPS, ONNX). In eager CPU calls that
  record no gradient for the kernels, each group of bins is convolved on its own support
  only (:func:`nnaudio_core.correlate.correlate_groups`, found from the kernels' current
  values): the same products without the zeros around the short kernels, 4x faster for 84
  bins from C1.
* **Multirate path** (:class:`~nnaudio_core.features.multirate.Multirate`,
  ``backend='multirate'``): nnAudio's octave-by-octave approximation.

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

import warnings
from typing import Any, Optional

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
    check_choice,
)
from nnaudio_core.features.constant_q_paths import KernelConv, SegmentFFT

# 'multirate': nnAudio's octave-by-octave algorithm (features/multirate.py); 'nnaudio2': the
# algorithm nnAudio2's class of the same name uses (each class resolves it, see _nnaudio2_backend)
CQ_BACKENDS = (*BACKENDS, "multirate", "nnaudio2")

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
        if fmax is not None:  # checked: 0 < fmin < fmax <= sr / 2, giving n_bins >= 2
            n_bins = int(np.ceil(bins_per_octave * np.log2(fmax / fmin)))
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
        self.multirate = backend in ("multirate", "stft_product", "stft_product_multirate")
        self.path: nn.Module
        if self.multirate:
            self.path, kernels, lengths = MR.multirate_path(
                backend, freqs, kernels, lengths, sr, self.hop_length, center, pad_mode, fmin,
                bins_per_octave, filter_scale, gamma, window, norm, earlydownsample,
                self._vqt_kernel_sr(gamma),
            )
            self.n_fft = self.path.spans[0]
        elif self.use_fft:
            self.path = SegmentFFT(kernels, lengths, self.hop_length, center, pad_mode, sparsity)
        else:
            self.path = KernelConv(n_fft, self.hop_length, center, pad_mode)
        # the scaling and phase conventions of nnAudio's STFT-product form (1 and False else)
        self.divisor = float(getattr(self.path, "divisor", 1.0))
        self.negate_imag = bool(getattr(self.path, "negate_imag", False))
        self.register_buffer("lengths", torch.from_numpy(lengths.astype(np.float32)))
        real = torch.from_numpy(kernels.real.astype(np.float32)).unsqueeze(1)
        imag = torch.from_numpy(kernels.imag.astype(np.float32)).unsqueeze(1)
        if trainable:
            self.cqt_kernels_real = nn.Parameter(real)
            self.cqt_kernels_imag = nn.Parameter(imag)
        else:
            # the FFT path's kernels are derived from the config (not in the state dict):
            # they serve torch.export / ONNX, where the segment FFTs do not convert
            persistent = not self.use_fft
            self.register_buffer("cqt_kernels_real", real, persistent=persistent)
            self.register_buffer("cqt_kernels_imag", imag, persistent=persistent)
        self._kernels_built(kernels)

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

    def _vqt_kernel_sr(self, gamma: float) -> Optional[float]:
        """The rate the multirate banks are designed at (None: the true one)."""
        return None

    def real_imag(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Unscaled correlation with the kernels of packed ``(batch', samples)`` audio, by
        this module's compute path (:mod:`~nnaudio_core.features.constant_q_paths`).

        Returns
        -------
        (real, imag), each ``(batch', n_bins, frames)``
        """
        return self.path(x, self.cqt_kernels_real, self.cqt_kernels_imag, self.lengths)

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
            phase = torch.atan2(-imag if self.negate_imag else imag, real)
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
