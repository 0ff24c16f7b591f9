"""The PANNs front end (``PANNsLogMel``): ``torchlibrosa``'s ``Spectrogram`` and
``LogmelFilterBank`` at the settings of the pretrained audio neural networks (32 kHz, 1024 /
320, 64 Slaney mel bands 50-14000 Hz, power in dB without a floor)."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor

from nnaudio_core import checks
from nnaudio_core import functional as AF
from nnaudio_core.features.base import Transform
from nnaudio_core.features.mel import MelSpectrogram


class PANNsLogMel(Transform):
    """``10 log10(max(mel, amin)) - 10 log10(max(amin, ref))`` of a mel power spectrogram
    (librosa's filters and ``power_to_db``), floored ``top_db`` below each item's peak when
    that is set (PANNs: None).

    Parameters
    ----------
    sr : float, Hz
    n_fft, hop_length, win_length : int, samples
    n_mels : int
    fmin, fmax : float, Hz
    ref, amin : float
    top_db : float or None
    center : bool
    trainable_mel, trainable_STFT : bool
    backend : {'auto', 'fft', 'conv'}

    Shapes
    ------
    ``(samples,)``, ``(batch, samples)``, ``(batch, 1, samples)`` -> ``(batch, n_mels,
    frames)``; other ``(..., samples)`` -> ``(..., n_mels, frames)``. torchlibrosa's layout is
    ``(batch, 1, frames, n_mels)``: ``y.transpose(-1, -2).unsqueeze(1)``.
    """

    def __init__(
        self,
        sr: float = 32000,
        n_fft: int = 1024,
        hop_length: int = 320,
        win_length: Optional[int] = None,
        n_mels: int = 64,
        fmin: float = 50.0,
        fmax: Optional[float] = 14000.0,
        ref: float = 1.0,
        amin: float = 1e-10,
        top_db: Optional[float] = None,
        center: bool = True,
        trainable_mel: bool = False,
        trainable_STFT: bool = False,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self._remember_config(locals())
        checks.check_positive("ref", ref)
        checks.check_positive("amin", amin)
        if top_db is not None:
            checks.check_nonnegative("top_db", top_db)
        self.melspec = MelSpectrogram(
            sr=sr, n_fft=n_fft, win_length=win_length, n_mels=n_mels, hop_length=hop_length,
            window="hann", center=center, pad_mode="reflect", power=2.0, htk=False,
            fmin=fmin, fmax=fmax, norm="slaney", trainable_mel=trainable_mel,
            trainable_STFT=trainable_STFT, backend=backend,
        )
        self.sr = sr
        self.hop_length = self.melspec.hop_length
        self.ref = float(ref)
        self.amin = float(amin)
        self.top_db = None if top_db is None else float(top_db)

    def frequencies(self) -> np.ndarray:
        """Centre frequency of each mel band in Hz, shape (n_mels,)."""
        return self.melspec.frequencies()

    def to_linear(self, y: Tensor) -> Tensor:
        """The mel power the decibels stand for (relative to ``ref``)."""
        return torch.pow(10.0, y / 10.0)

    def forward(self, x: Tensor) -> Tensor:
        """Log mel spectrogram of ``x`` in dB: ``(..., samples) -> (..., n_mels, frames)``."""
        x2, lead = AF.pack_batch(x)
        mel = self.melspec.packed(x2)
        return AF.unpack_batch(AF.power_to_db(mel, self.ref, self.amin, self.top_db), lead)
