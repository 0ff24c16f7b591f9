"""Variable-Q transform (``VQT``): the constant-Q engine with a bandwidth offset ``gamma``."""

from __future__ import annotations

from typing import Optional

from nnaudio_core import filters
from nnaudio_core.features.cqt import VariableQ


class VQT(VariableQ):
    """Variable-Q transform (nnAudio2's ``VQT``), as ``librosa.vqt(..., tuning=0.0)``.

    Filter lengths are ``Q * sr / (f + gamma / alpha)``: ``gamma`` (Hz) widens the low
    bands. ``VQT(gamma=0)`` *is* :class:`~nnaudio_core.features.cqt.CQT1992v2`: the same
    kernel builder, where the bandwidth term is zero (no special case).

    Parameters
    ----------
    sr, hop_length, fmin, fmax, n_bins, bins_per_octave, filter_scale, norm, window, center,
    pad_mode, trainable, output_format, normalization_type, backend, verbose :
        see :class:`~nnaudio_core.features.cqt.VariableQ`.
    gamma : float
        Bandwidth offset in Hz (>= 0).
    bandwidth : {'nnaudio', 'librosa'}
        Filter-bandwidth rule (default nnAudio's, as the other nnAudio2-named classes);
        ``'librosa'`` equals ``librosa.vqt``.
    basis_norm : float or None
        nnAudio2's name for the kernel norm; when given it replaces ``norm``.
    earlydownsample : bool
        Accepted for nnAudio compatibility (the exact engine does not resample).

    Shapes
    ------
    ``(..., samples) -> (..., n_bins, frames)`` (``(..., n_bins, frames, 2)`` for Complex).
    """

    def __init__(
        self,
        sr: float = 22050,
        hop_length: int = 512,
        fmin: float = 32.70,
        fmax: Optional[float] = None,
        n_bins: int = 84,
        filter_scale: float = 1,
        bins_per_octave: int = 12,
        norm: Optional[float] = 1,
        window: filters.WindowSpec = "hann",
        gamma: float = 0.0,
        center: bool = True,
        pad_mode: str = "reflect",
        trainable: bool = False,
        output_format: str = "Magnitude",
        normalization_type: str = "librosa",
        backend: str = "auto",
        sparsity: float = 0.0,
        bandwidth: str = "nnaudio",
        basis_norm: Optional[float] = None,
        earlydownsample: bool = True,
        verbose: bool = True,
    ) -> None:
        super().__init__(
            sr=sr,
            hop_length=hop_length,
            fmin=fmin,
            fmax=fmax,
            n_bins=n_bins,
            bins_per_octave=bins_per_octave,
            filter_scale=filter_scale,
            gamma=gamma,
            norm=norm if basis_norm is None else basis_norm,
            window=window,
            center=center,
            pad_mode=pad_mode,
            trainable=trainable,
            output_format=output_format,
            normalization_type=normalization_type,
            backend=backend,
            sparsity=sparsity,
            bandwidth=bandwidth,
            verbose=verbose,
        )
        self._remember_config(locals())
