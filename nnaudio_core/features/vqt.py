"""Variable-Q transform (``VQT``): the constant-Q engine with a bandwidth offset ``gamma``."""

from __future__ import annotations

from typing import Optional

from nnaudio_core import filters
from nnaudio_core.features.constant_q import CQT1992v2, NamedQ


class VQT(NamedQ):
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
    backend : str
        Default ``'nnaudio2'``: nnAudio2's algorithm, ``'conv'`` for ``gamma = 0`` (its VQT is
        then its ``CQT1992v2``), ``'multirate'`` for ``gamma > 0`` (see
        :class:`~nnaudio_core.features.cqt.VariableQ`); ``'auto'`` for the exact, fast path.
    earlydownsample : bool
        ``'multirate'`` only (see :class:`~nnaudio_core.features.cqt.VariableQ`). nnAudio2's
        ``VQT(gamma > 0)`` designs its kernels at the input rate even after early
        downsampling by ``2 ** k``, which tunes its bins ``2 ** k`` too high; the default
        reproduces that (with a ``UserWarning``), an explicit ``backend='multirate'`` does not.

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
        backend: str = "nnaudio2",
        sparsity: float = 0.0,
        bandwidth: str = "nnaudio",
        basis_norm: Optional[float] = None,
        earlydownsample: bool = True,
        verbose: bool = True,
    ) -> None:
        self._build(locals())

    def _nnaudio2_backend(self, gamma: float) -> str:
        return "conv" if gamma == 0 else self._multirate_or_auto("multirate")

    def _vqt_kernel_sr(self, gamma: float) -> Optional[float]:
        # nnAudio2's VQT designs its banks at the input rate, even after early downsampling
        return self.sr if self.nnaudio2_numerics else None


#: nnAudio2's ``features.vqt`` also exports ``CQT1992v2`` (``VQT(gamma=0)``'s equal)
__all__ = ["CQT1992v2", "VQT"]
