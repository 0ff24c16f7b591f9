"""Gammatone spectrogram (``Gammatonegram``), nnAudio2's numerics."""

from __future__ import annotations

import warnings
from typing import Any, List, Optional

import numpy as np
import torch
from torch import Tensor, nn

from nnaudio_core import checks, filters
from nnaudio_core import functional as AF
from nnaudio_core.errors import ParameterError
from nnaudio_core.features.base import Transform
from nnaudio_core.features.mel import band_stft
from nnaudio_core.features.stft import STFT


class Gammatonegram(Transform):
    """Gammatone spectrogram (nnAudio2's ``Gammatonegram``).

    ``gammatone_basis @ |STFT(x)| ** power``: ``n_bins`` 4th-order gammatone filters
    (Slaney's ERB filters, Ellis' ``fft2gammatonemx``) with centres equally spaced on the
    ERB-rate scale from ``fmin`` (the lowest centre) towards ``fmax`` (one step above the
    highest), each weighting the FFT bins by its magnitude response normalised to 1 at its
    centre and divided by ``n_fft`` (see :func:`nnaudio_core.filters.gammatone_filterbank`).
    Equal to nnAudio2 2.0.3's ``Gammatonegram`` (float32 round-off) at the same parameters.

    Parameters
    ----------
    sr, n_fft, win_length, hop_length, window, center, pad_mode, power, trainable_STFT :
        as :class:`~nnaudio_core.features.mel.MelSpectrogram` (the same signature, nnAudio2's,
        with ``n_bins`` and ``trainable_bins`` for ``n_mels`` and ``trainable_mel``).
    n_bins : int
        Number of gammatone bands (nnAudio2's default 64).
    htk, norm : accepted for nnAudio compatibility, **no effect**
        nnAudio2 documents them as mel-triangle options but never uses them (its output is
        the same for every value); we give the same output and a ``UserWarning`` when they
        are not the defaults (``htk=False``, ``norm=1``), instead of ignoring them silently.
    fmin, fmax : float
        Lowest centre and upper end of the ERB grid in Hz (``fmax=None``: ``sr / 2``).
        ``fmin=0`` (the default) puts the first band at 0 Hz, as in nnAudio2.
    trainable_bins : bool
        Learn the filter bank (``gammatone_basis`` becomes an ``nn.Parameter``).
    verbose : bool
        Accepted for nnAudio compatibility; nothing is printed.
    **kwargs
        ``backend`` for the inner :class:`STFT`.

    Differences from nnAudio2: ``fmax`` above ``sr / 2`` is refused (centres above Nyquist);
    input of any leading shape is accepted.

    Shapes
    ------
    ``(samples,)``, ``(batch, samples)``, ``(batch, 1, samples)`` -> ``(batch, n_bins, frames)``;
    other ``(..., samples)`` -> ``(..., n_bins, frames)``; ``frames`` as :class:`STFT`.
    Values are (magnitude ** power) in the units of the input squared (power 2).
    """

    def __init__(
        self,
        sr: float = 22050,
        n_fft: int = 2048,
        win_length: Optional[int] = None,
        n_bins: int = 64,
        hop_length: int = 512,
        window: filters.WindowSpec = "hann",
        center: bool = True,
        pad_mode: str = "reflect",
        power: float = 2.0,
        htk: bool = False,
        fmin: float = 0.0,
        fmax: Optional[float] = None,
        norm: Any = 1,
        trainable_bins: bool = False,
        trainable_STFT: bool = False,
        verbose: bool = True,
        **kwargs: Any,
    ) -> None:
        p = {k: v for k, v in locals().items() if k not in ("self", "__class__", "kwargs")}
        super().__init__()
        self._remember_config({**p, **kwargs})
        unknown = set(kwargs) - {"backend"}
        if unknown:
            raise ParameterError(f"unknown Gammatonegram parameter(s) {', '.join(sorted(unknown))}")
        sr_v = checks.check_sr(sr)
        checks.check_int("n_fft", n_fft, 1, checks.MAX_N_FFT)
        checks.check_int("n_bins", n_bins, 1)
        checks.check_positive("power", power)
        checks.check_band(fmin, fmax, sr_v, fmin_positive=False)
        if htk is not False or not (norm == 1 and not isinstance(norm, (bool, str))):
            warnings.warn(
                f"Gammatonegram: htk={htk!r} and norm={norm!r} have no effect (as in nnAudio2, "
                f"whose output ignores them); the gammatone bank is fixed",
                UserWarning,
                stacklevel=2,
            )
        self.stft = band_stft(p, kwargs)
        self.sr = sr
        self.power = float(power)
        self.hop_length = self.stft.hop_length
        self.n_bins = n_bins
        top = sr_v / 2.0 if fmax is None else float(fmax)
        self._freqs = filters.erb_space(n_bins, float(fmin), top)
        basis = filters.gammatone_filterbank(sr_v, n_fft, n_bins, float(fmin), top)
        basis_t = torch.from_numpy(basis.astype(np.float32))
        if trainable_bins:
            self.gammatone_basis = nn.Parameter(basis_t)
        else:
            self.register_buffer("gammatone_basis", basis_t)

    def frequencies(self) -> np.ndarray:
        """Centre frequency of each gammatone band in Hz, shape (n_bins,), ascending."""
        return self._freqs.copy()

    def _bands(self, padded: Tensor) -> Tensor:
        """Band energies of an already padded ``(batch', samples)`` segment:
        ``(batch', n_bins, frames)``."""
        spec = self.stft.power_spectrum(padded, self.power)
        return torch.einsum("kf,bft->bkt", self.gammatone_basis, spec)

    def forward(self, x: Tensor) -> Tensor:
        """Gammatonegram of ``x``: ``(..., samples) -> (..., n_bins, frames)``."""
        x2, lead = AF.pack_batch(x)
        x2 = x2.to(self.stft.window_mask.dtype)  # the dtype rule, see features.stft
        segments, time_blocks = self.stft.segments(self.stft.pad(x2))
        parts: List[Tensor] = []
        for seg in segments:
            parts.append(self._bands(seg))
        return AF.unpack_batch(AF.join_frames(parts, time_blocks), lead)

    def extra_repr(self) -> str:
        return f"n_bins={self.n_bins}, n_fft={self.stft.n_fft}, hop_length={self.hop_length}"


#: nnAudio2's ``features.gammatone`` also exports ``STFT`` (the stage the filters apply to)
__all__ = ["STFT", "Gammatonegram"]
