"""The inverse STFT shared by :meth:`STFT.inverse <nnaudio_core.features.stft.STFT.inverse>`
and :class:`~nnaudio_core.features.stft.iSTFT`: when it is exact
(:func:`check_invertible`, :func:`warn_analysis_only`) and its computation,
:func:`inverse_stft` (``irfft`` or ``conv_transpose1d`` frames, overlap-add, window
normalisation, trimming).
"""

from __future__ import annotations

import warnings
from typing import Optional

from torch import Tensor

from nnaudio_core import functional as AF
from nnaudio_core.errors import NonInvertibleError, ParameterError
from nnaudio_core.features.base import require_frames


def warn_analysis_only(what: str, freq_scale: str) -> None:
    """The construction-time warning for an inverse that cannot be exact (nnAudio2 #136)."""
    warnings.warn(
        f"{what} with freq_scale={freq_scale!r}: non-uniform frequency scales are "
        f"analysis-only; the inverse is only exact for freq_scale='no' and raises "
        f"NonInvertibleError (a RuntimeError) when called",
        UserWarning,
        stacklevel=3,
    )


def check_invertible(freq_scale: str, n_bins: int, n_fft: int) -> None:
    """Raise :class:`NonInvertibleError` unless the STFT is on the full uniform grid."""
    if freq_scale != "no":
        raise NonInvertibleError(
            f"inverse STFT is only exact for freq_scale='no', this transform has "
            f"freq_scale='{freq_scale}'; invert a freq_scale='no' STFT or use Griffin-Lim"
        )
    if n_bins != n_fft // 2 + 1:
        raise NonInvertibleError(
            f"inverse STFT needs all n_fft // 2 + 1 = {n_fft // 2 + 1} bins, got {n_bins}; "
            f"leave freq_bins=None"
        )


def inverse_stft(
    X: Tensor,
    window: Tensor,
    icos: Tensor,
    isin: Tensor,
    use_fft: bool,
    hop_length: int,
    center: bool,
    length: Optional[int],
) -> Tensor:
    """Body of STFT.inverse and iSTFT.forward: ``(..., bins, frames, 2) -> (..., samples)``."""
    n_fft = window.shape[0]
    n_half = n_fft // 2 + 1
    if X.dim() < 3 or X.shape[-1] != 2:
        raise ParameterError(
            "inverse STFT expects a Complex spectrogram of shape (..., freq_bins, frames, 2)"
        )
    if X.shape[-3] == n_fft and n_fft != n_half:
        X = X[..., :n_half, :, :]  # two-sided input (onesided=False): keep the positive half
    if X.shape[-3] != n_half:
        raise ParameterError(f"inverse STFT expects {n_half} frequency bins, got {X.shape[-3]}")
    require_frames(X.shape[-2], "inverse STFT")
    if X.dim() == 3:
        X = X.unsqueeze(0)
    X = X.to(window.dtype)  # the dtype rule, see nnaudio_core.features.stft
    lead = list(X.shape[:-3])
    X = X.reshape(-1, X.shape[-3], X.shape[-2], 2)
    real = X[..., 0]
    imag = X[..., 1]
    n_frames = X.shape[-2]
    if use_fft:
        y = AF.istft_fft(real, imag, window, hop_length)
    else:
        y = AF.istft_conv(real, imag, icos, isin, hop_length)
    y = AF.normalise_and_trim(y, window, hop_length, n_frames, center, length)
    return y.reshape(lead + [y.shape[-1]])
