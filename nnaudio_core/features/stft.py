"""Short-time Fourier transform and its inverse (``STFT``, ``iSTFT``).

Two interchangeable ways to compute the same numbers:

* the **FFT path** (frames + ``torch.fft.rfft``) for frozen kernels on the uniform grid
  (``freq_scale='no'``): the fast default on CPU and CUDA;
* the **kernel path** (strided ``conv1d`` with real cosine/sine kernels): any frequency grid,
  trainable kernels, and runs where complex tensors do not (MPS, ONNX).

``backend='auto'`` picks the FFT path when it is exact (frozen kernels, ``freq_scale='no'``);
``backend='conv'`` forces the kernel path. Both agree to float32 round-off.

**dtypes** (one rule for every transform and path, forward and inverse): the input is
converted to the module's floating dtype, which is float32 unless the module itself was
converted (``module.double()`` computes and returns float64 on both paths). So float64 (or
integer) audio into a default module gives float32 output, never an error.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from nnaudio_core import checks, filters, workers
from nnaudio_core import functional as AF
from nnaudio_core.errors import ParameterError
from nnaudio_core.features import inverse_stft
from nnaudio_core.features.base import (
    BACKENDS,
    OUTPUT_FORMATS,
    PAD_MODES,
    Transform,
    check_choice,
    resolve_lengths,
)


def _tensor(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _kernel(a: np.ndarray, trainable: bool) -> Tensor:
    """A (bins, 1, n_fft) float32 kernel, as a Parameter when trainable."""
    t = _tensor(a).unsqueeze(1)
    return nn.Parameter(t) if trainable else t


class STFTBase(Transform):
    """The common base of :class:`STFT` and :class:`iSTFT`, as in nnAudio2 (whose
    ``features.stft`` exports it): code that checks ``isinstance(m, STFTBase)`` ports
    unchanged. It adds nothing to :class:`~nnaudio_core.features.base.Transform`."""


class STFT(STFTBase):
    """Short-time Fourier transform as an ``nn.Module`` (nnAudio2's ``STFT``).

    Parameters
    ----------
    n_fft : int
        FFT size in samples.
    win_length : int or None
        Window length in samples (default ``n_fft``); the window is centred in ``n_fft``.
    freq_bins : int or None
        Number of output bins (default ``n_fft // 2 + 1``).
    hop_length : int or None
        Samples between frames (default ``win_length // 4``).
    window : str, tuple or array
        Any ``scipy.signal.get_window`` spec, periodic (as librosa).
    freq_scale : {'no', 'linear', 'log', 'log2'}
        ``'no'``: the FFT grid. ``'linear'``: ``freq_bins`` bins from ``fmin`` towards
        ``fmax``. ``'log'``/``'log2'`` (same grid): geometric spacing from ``fmin``.
    center : bool
        Pad ``n_fft // 2`` samples on both sides so frame ``t`` is centred at ``t * hop``.
    pad_mode : {'reflect', 'constant'}
    iSTFT : bool
        Also build synthesis kernels for :meth:`inverse` on the kernel path (the FFT path
        needs none). With ``freq_scale`` other than ``'no'`` a ``UserWarning`` says at
        construction that the grid is analysis-only (:meth:`inverse` raises).
    fmin, fmax : float
        Hz, for ``freq_scale`` other than ``'no'``.
    sr : float
        Sample rate in Hz (frequency grid and :meth:`frequencies`).
    trainable : bool
        Make the Fourier kernels ``nn.Parameter`` s (kernel path).
    output_format : {'Magnitude', 'Complex', 'Phase'}
        Default output, overridable per call.
    verbose : bool
        Accepted for nnAudio compatibility; nothing is printed.
    backend : {'auto', 'fft', 'conv'}
        See the module docstring; ``'fft'`` needs ``freq_scale='no'`` and frozen kernels.

    Shapes
    ------
    Input ``(samples,)``, ``(batch, samples)``, ``(batch, 1, samples)`` -> ``(batch, freq_bins,
    frames)``; any other ``(..., samples)`` -> ``(..., freq_bins, frames)``. ``'Complex'``
    appends a real/imaginary axis of size 2; ``'Magnitude'`` is ``|X|``; ``'Phase'`` is
    ``angle(X)`` in radians. ``frames = 1 + (samples + 2 * (n_fft // 2) - n_fft) // hop_length``
    when ``center`` (``1 + samples // hop_length`` for even ``n_fft``).
    Complex values follow numpy/librosa's sign convention (``librosa.stft`` equals
    ``out[..., 0] + 1j * out[..., 1]``).
    """

    def __init__(
        self,
        n_fft: int = 2048,
        win_length: Optional[int] = None,
        freq_bins: Optional[int] = None,
        hop_length: Optional[int] = None,
        window: filters.WindowSpec = "hann",
        freq_scale: str = "no",
        center: bool = True,
        pad_mode: str = "reflect",
        iSTFT: bool = False,
        fmin: float = 50.0,
        fmax: float = 6000.0,
        sr: float = 22050,
        trainable: bool = False,
        output_format: str = "Complex",
        verbose: bool = True,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self._remember_config(locals())
        check_choice("freq_scale", freq_scale, filters.FREQ_SCALES)
        check_choice("pad_mode", pad_mode, PAD_MODES)
        check_choice("output_format", output_format, OUTPUT_FORMATS)
        check_choice("backend", backend, BACKENDS)
        checks.check_stft(
            n_fft, win_length, hop_length, sr, window, freq_scale, fmin, fmax, freq_bins,
            kernel_path=trainable or backend == "conv" or freq_scale != "no",
        )
        win_length, hop_length = resolve_lengths(n_fft, win_length, hop_length)
        freq_bins = n_fft // 2 + 1 if freq_bins is None else int(freq_bins)
        if freq_bins < 1 or (freq_scale == "no" and freq_bins > n_fft // 2 + 1):
            raise ParameterError(
                f"freq_bins={freq_bins} must be between 1 and n_fft // 2 + 1 = {n_fft // 2 + 1}"
            )
        if iSTFT and freq_scale != "no":
            inverse_stft.warn_analysis_only("STFT(iSTFT=True)", freq_scale)
        fft_ok = freq_scale == "no" and not trainable
        if backend == "fft" and not fft_ok:
            raise ParameterError(
                "backend='fft' needs freq_scale='no' and trainable=False; use backend='conv'"
            )
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.freq_bins = freq_bins
        self.freq_scale = freq_scale
        self.center = center
        self.pad_mode = pad_mode
        self.output_format = output_format
        self.trainable = trainable
        self.sr = sr
        self.use_fft = fft_ok and backend != "conv"
        # CPU work is cut into blocks of about this many frame samples (cache-sized)
        self.cpu_block_samples = AF.CPU_BLOCK_SAMPLES

        win = filters.get_window(window, win_length, n_fft)
        self._freqs = filters.stft_frequencies(n_fft, sr, freq_bins, freq_scale, fmin, fmax)
        self.register_buffer("window_mask", _tensor(win))
        if self.use_fft:
            empty = torch.zeros(0, 1, n_fft)
            self.register_buffer("wcos", empty, persistent=False)
            self.register_buffer("wsin", empty.clone(), persistent=False)
        else:
            cos_k, sin_k = filters.fourier_kernels(self._freqs, n_fft, sr, win, np.float32)
            if trainable:
                self.wcos = _kernel(cos_k, True)
                self.wsin = _kernel(sin_k, True)
            else:
                self.register_buffer("wcos", _kernel(cos_k, False))
                self.register_buffer("wsin", _kernel(sin_k, False))
        if iSTFT and not self.use_fft and freq_scale == "no":
            icos, isin = filters.inverse_fourier_kernels(n_fft, win)
            self.register_buffer("icos", _kernel(icos, False))
            self.register_buffer("isin", _kernel(isin, False))
            self.inverse_fft = False
        else:
            self.register_buffer("icos", torch.zeros(0, 1, n_fft), persistent=False)
            self.register_buffer("isin", torch.zeros(0, 1, n_fft), persistent=False)
            self.inverse_fft = True

    def frequencies(self) -> np.ndarray:
        """Centre frequency of each output bin in Hz, shape (freq_bins,)."""
        return self._freqs.copy()

    def pad(self, x: Tensor) -> Tensor:
        """Centre-pad a packed ``(batch', samples)`` waveform as this transform does."""
        return AF.pad_signal(x, self.n_fft, self.center, self.pad_mode)

    def segments(self, padded: Tensor) -> Tuple[List[Tensor], int]:
        """Cache-sized pieces of a padded waveform, see :func:`functional.split_frames`."""
        max_frames = AF.block_frames(padded, self.n_fft, self.cpu_block_samples)
        return AF.split_frames(padded, self.n_fft, self.hop_length, max_frames)

    def real_imag(self, padded: Tensor) -> Tuple[Tensor, Tensor]:
        """Real and imaginary parts, each ``(batch', freq_bins, frames)``, of an already padded
        ``(batch', samples)`` waveform (see :meth:`pad`)."""
        if self.use_fft:
            return AF.stft_fft(
                padded, self.window_mask, self.n_fft, self.hop_length, self.freq_bins
            )
        return AF.stft_conv(padded, self.wcos, self.wsin, self.hop_length)

    def power_spectrum(self, padded: Tensor, power: float = 2.0) -> Tensor:
        """``|X| ** power`` of an already padded ``(batch', samples)`` waveform, shape
        ``(batch', freq_bins, frames)`` (the input of the mel and gammatone banks)."""
        real, imag = self.real_imag(padded)
        spec = real * real + imag * imag
        if self.trainable:
            spec = spec + 1e-8  # keeps the root differentiable at 0, as 'Magnitude'
        if power != 2.0:
            spec = AF.root_power(spec, power / 2.0)
        return spec

    def forward(self, x: Tensor, output_format: Optional[str] = None) -> Tensor:
        """Spectrogram of ``x``.

        Parameters
        ----------
        x : Tensor, shape (..., samples)
        output_format : str or None; overrides the constructor's choice for this call

        Returns
        -------
        Tensor, shape (..., freq_bins, frames) or (..., freq_bins, frames, 2) for 'Complex'
        """
        fmt = self.output_format if output_format is None else output_format
        x2, lead = AF.pack_batch(x)
        x2 = x2.to(self.window_mask.dtype)  # the dtype rule: see the module docstring
        if AF.is_eager_cpu(x2):
            return AF.unpack_batch(self._blocks(x2, fmt), lead)
        segments, time_blocks = self.segments(self.pad(x2))
        parts: List[Tensor] = []
        for seg in segments:
            real, imag = self.real_imag(seg)
            parts.append(self._format(real, imag, fmt))
        return AF.unpack_batch(AF.join_frames(parts, time_blocks), lead)

    @torch.jit.unused
    def _blocks(self, x: Tensor, fmt: str) -> Tensor:
        """:meth:`forward` of packed audio with its segments, each transformed and formatted,
        on the block workers (see :mod:`nnaudio_core.workers`)."""
        return workers.map_segments(functools.partial(self._formatted, fmt=fmt), self, x)

    # TorchScript compiles forward's call of this eager-only method from its signature, and
    # cannot read this module's string annotations (from __future__): give it the real ones
    _blocks.__annotations__ = {"x": Tensor, "fmt": str, "return": Tensor}

    def _formatted(self, seg: Tensor, fmt: str) -> Tensor:
        real, imag = self.real_imag(seg)
        return self._format(real, imag, fmt)

    def _format(self, real: Tensor, imag: Tensor, fmt: str) -> Tensor:
        if fmt == "Magnitude":
            power = real * real + imag * imag
            if self.trainable:
                power = power + 1e-8  # keeps sqrt differentiable at 0
            out = AF.root_power(power)
        elif fmt == "Complex":
            out = torch.stack((real, imag), dim=-1)
        elif fmt == "Phase":
            out = torch.atan2(imag, real)
        else:
            raise ParameterError(
                f"output_format='{fmt}' is not one of 'Magnitude', 'Complex', 'Phase'"
            )
        return out

    @torch.jit.export
    def inverse(
        self,
        X: Tensor,
        onesided: bool = True,
        length: Optional[int] = None,
        refresh_win: Optional[bool] = None,
    ) -> Tensor:
        """Waveform from a ``'Complex'`` STFT (overlap-add with window-sum-square division).

        Exact (float32 round-off) for ``freq_scale='no'`` with all ``n_fft // 2 + 1`` bins;
        raises :class:`~nnaudio_core.errors.NonInvertibleError` (a ``RuntimeError``) naming
        ``freq_scale`` for any other grid.

        Parameters
        ----------
        X : Tensor, shape (..., freq_bins, frames, 2)
        onesided : bool
            Accepted for nnAudio compatibility; a two-sided ``n_fft``-bin input is detected
            from its shape.
        length : int or None
            Samples to return (pass the original length for exact alignment); ``None``
            gives ``hop_length * (frames - 1)`` when ``center``.
        refresh_win : ignored (nnAudio compatibility; nothing is cached)

        Returns
        -------
        Tensor, shape (..., samples); a single ``(freq_bins, frames, 2)`` gives ``(1, samples)``
        """
        inverse_stft.check_invertible(self.freq_scale, self.freq_bins, self.n_fft)
        return inverse_stft.inverse_stft(
            X,
            self.window_mask,
            self.icos,
            self.isin,
            self.inverse_fft,
            self.hop_length,
            self.center,
            length,
        )

    def extra_repr(self) -> str:
        return (
            f"n_fft={self.n_fft}, hop_length={self.hop_length}, freq_bins={self.freq_bins}, "
            f"freq_scale={self.freq_scale!r}, output_format={self.output_format!r}, "
            f"path={'fft' if self.use_fft else 'conv'}"
        )


class iSTFT(STFTBase):
    """Inverse STFT as an ``nn.Module`` (nnAudio2's ``iSTFT``).

    Parameters
    ----------
    n_fft, win_length, hop_length, window, center, sr : as :class:`STFT`
    freq_bins, fmin, fmax : accepted for nnAudio compatibility; inversion needs the full grid
    freq_scale : str
        Must be ``'no'`` for :meth:`forward` (otherwise ``NonInvertibleError``, a
        ``RuntimeError``, naming ``freq_scale``).
    trainable_kernels : bool
        Learn the synthesis kernels (kernel path, ``conv_transpose1d``).
    trainable_window : bool
        Learn the synthesis window (also used for the overlap-add normaliser).
    verbose, refresh_win : accepted for nnAudio compatibility.
    backend : {'auto', 'fft', 'conv'}
        ``'auto'`` uses ``irfft`` unless the kernels are trainable.

    Shapes
    ------
    ``(..., n_fft // 2 + 1, frames, 2) -> (..., samples)``; ``(bins, frames, 2) -> (1, samples)``.
    """

    def __init__(
        self,
        n_fft: int = 2048,
        win_length: Optional[int] = None,
        freq_bins: Optional[int] = None,
        hop_length: Optional[int] = None,
        window: filters.WindowSpec = "hann",
        freq_scale: str = "no",
        center: bool = True,
        fmin: float = 50.0,
        fmax: float = 6000.0,
        sr: float = 22050,
        trainable_kernels: bool = False,
        trainable_window: bool = False,
        verbose: bool = True,
        refresh_win: bool = True,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self._remember_config(locals())
        check_choice("freq_scale", freq_scale, filters.FREQ_SCALES)
        check_choice("backend", backend, BACKENDS)
        if backend == "fft" and trainable_kernels:
            raise ParameterError("backend='fft' cannot train kernels; use backend='conv'")
        checks.check_stft(
            n_fft, win_length, hop_length, sr, window,
            kernel_path=trainable_kernels or backend == "conv",
        )
        if freq_scale != "no":
            inverse_stft.warn_analysis_only("iSTFT", freq_scale)
        win_length, hop_length = resolve_lengths(n_fft, win_length, hop_length)
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.freq_scale = freq_scale
        self.center = center
        self.sr = sr
        self.freq_bins = n_fft // 2 + 1 if freq_bins is None else int(freq_bins)
        self.use_fft = not trainable_kernels and backend != "conv"
        win = filters.get_window(window, win_length, n_fft)
        if trainable_window:
            self.window_mask = nn.Parameter(_tensor(win))
        else:
            self.register_buffer("window_mask", _tensor(win))
        if self.use_fft:
            self.register_buffer("icos", torch.zeros(0, 1, n_fft), persistent=False)
            self.register_buffer("isin", torch.zeros(0, 1, n_fft), persistent=False)
        else:
            icos, isin = filters.inverse_fourier_kernels(n_fft, win)
            if trainable_kernels:
                self.icos = _kernel(icos, True)
                self.isin = _kernel(isin, True)
            else:
                self.register_buffer("icos", _kernel(icos, False))
                self.register_buffer("isin", _kernel(isin, False))

    #: the STFT parameters an inverse takes over (:meth:`from_stft`)
    SHARED_WITH_STFT = (
        "n_fft", "win_length", "freq_bins", "hop_length", "window", "freq_scale", "center",
        "fmin", "fmax", "sr", "verbose", "backend",
    )

    @classmethod
    def from_stft(cls, stft: STFT | dict[str, Any], **overrides: Any) -> iSTFT:
        """The inverse of an :class:`STFT`: same ``n_fft``, ``win_length``, ``hop_length``,
        ``window``, ``center``, ``freq_scale`` (``fmin``, ``fmax``, ``freq_bins``), ``sr`` and
        ``backend``.

        Parameters
        ----------
        stft : STFT, or its ``get_config()`` (``{"transform": "STFT", "params": {...}}``,
            or the ``params`` alone; parameters left out take STFT's defaults)
        **overrides
            iSTFT parameters to set instead (e.g. ``center=False``, ``trainable_window``).
        """
        if isinstance(stft, STFT):
            params = dict(stft._config)
        else:
            if stft.get("transform", "STFT") != "STFT":
                raise ParameterError(f"iSTFT inverts an STFT, not a {stft['transform']}")
            given = stft.get("params", stft) if "transform" in stft else stft
            defaults = {
                n: p.default for n, p in inspect.signature(STFT).parameters.items()
            }
            params = {**defaults, **given}
        kw = {k: params[k] for k in cls.SHARED_WITH_STFT if k in params}
        return cls(**{**kw, **overrides})

    def frequencies(self) -> np.ndarray:
        """Frequency (Hz) of each expected input bin, shape (n_fft // 2 + 1,)."""
        return filters.stft_frequencies(self.n_fft, self.sr, self.n_fft // 2 + 1)

    def forward(
        self,
        X: Tensor,
        onesided: bool = False,
        length: Optional[int] = None,
        refresh_win: Optional[bool] = None,
    ) -> Tensor:
        """Waveform from a Complex STFT ``(..., bins, frames, 2)`` -> ``(..., samples)``.

        See :meth:`STFT.inverse` for ``length``; ``onesided``/``refresh_win`` are accepted
        for nnAudio compatibility (the bin count is read from the input's shape).
        """
        inverse_stft.check_invertible(self.freq_scale, self.n_fft // 2 + 1, self.n_fft)
        return inverse_stft.inverse_stft(
            X,
            self.window_mask,
            self.icos,
            self.isin,
            self.use_fft,
            self.hop_length,
            self.center,
            length,
        )
