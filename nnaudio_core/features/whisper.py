"""Whisper's log-mel input (``WhisperLogMel``), equal to ``openai-whisper``'s
``log_mel_spectrogram`` and to ``transformers``' ``WhisperFeatureExtractor``."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from nnaudio_core import checks
from nnaudio_core import functional as AF
from nnaudio_core.features.base import Transform, fit_length
from nnaudio_core.features.mel import MelSpectrogram


def whisper_scale(
    log_mel: Tensor, dynamic_range: Optional[float], peak: Optional[Tensor]
) -> Tensor:
    """Whisper's clip-wide step on ``log10`` mel values ``(batch, ...)``: floor each item at its
    peak minus ``dynamic_range`` (``peak``: per item, shape (batch,); None: the item's own
    maximum), then ``(x + 4) / 4``."""
    if dynamic_range is not None:
        if peak is None:
            peak = log_mel.amax(dim=list(range(1, log_mel.dim())))
        floor = (peak - dynamic_range).reshape([-1] + [1] * (log_mel.dim() - 1))
        log_mel = torch.maximum(log_mel, floor)
    return (log_mel + 4.0) / 4.0


class WhisperLogMel(Transform):
    """Whisper's input features.

    ``|STFT|**2`` (Hann window of ``n_fft``, centred with reflection) without its last frame,
    ``n_mels`` Slaney mel bands (librosa's filters, as Whisper's ``mel_filters.npz``),
    ``log10(max(mel, 1e-10))``, floored ``dynamic_range`` below the clip's peak, then
    ``(x + 4) / 4``.

    Parameters
    ----------
    sr : float
        Sample rate in Hz (Whisper: 16000).
    n_mels : int
        80 (Whisper up to large-v2) or 128 (large-v3).
    n_fft, hop_length : int, samples
    chunk_length : float or None, seconds
        Pad with zeros or cut every clip to this length first (``WhisperFeatureExtractor``'s
        default and ``whisper.pad_or_trim``: 30 s, 3000 frames); None: the clip as it is
        (``log_mel_spectrogram(audio)``), ``len // hop_length`` frames.
    dynamic_range : float or None
        The floor below each clip's peak, in log10 units (8: 80 dB); None: no floor.
    center : bool
        Centre the frames (Whisper's STFT does).
    trainable_mel, trainable_STFT : bool
        Learn the mel bank / the Fourier kernels.
    backend : {'auto', 'fft', 'conv'}
        Passed on to :class:`~nnaudio_core.features.stft.STFT`.

    Shapes
    ------
    ``(samples,)``, ``(batch, samples)``, ``(batch, 1, samples)`` -> ``(batch, n_mels,
    frames)``; other ``(..., samples)`` -> ``(..., n_mels, frames)``. The floor takes each
    ``(n_mels, frames)`` item's own peak.
    """

    def __init__(
        self,
        sr: float = 16000,
        n_mels: int = 80,
        n_fft: int = 400,
        hop_length: int = 160,
        chunk_length: Optional[float] = None,
        dynamic_range: Optional[float] = 8.0,
        center: bool = True,
        trainable_mel: bool = False,
        trainable_STFT: bool = False,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self._remember_config(locals())
        if chunk_length is not None:
            checks.check_positive("chunk_length", chunk_length)
        if dynamic_range is not None:
            checks.check_positive("dynamic_range", dynamic_range)
        self.melspec = MelSpectrogram(
            sr=sr, n_fft=n_fft, n_mels=n_mels, hop_length=hop_length, window="hann",
            center=center, pad_mode="reflect", power=2.0, htk=False, fmin=0.0, fmax=None,
            norm="slaney", trainable_mel=trainable_mel, trainable_STFT=trainable_STFT,
            backend=backend,
        )
        self.sr = sr
        self.n_mels = int(n_mels)
        self.hop_length = int(hop_length)
        self.center = bool(center)
        self.chunk_samples: Optional[int] = (
            None if chunk_length is None else int(round(chunk_length * sr))
        )
        self.dynamic_range = None if dynamic_range is None else float(dynamic_range)
        #: frames dropped at the clip's end (Whisper drops the centred STFT's last frame)
        self.trailing_frames_dropped = 1 if center else 0

    def frequencies(self) -> np.ndarray:
        """Centre frequency of each mel band in Hz, shape (n_mels,)."""
        return self.melspec.frequencies()

    @classmethod
    def fixed_length(cls, params: dict[str, Any]) -> bool:
        """``chunk_length`` set: every clip padded or cut to it."""
        return params.get("chunk_length") is not None

    def to_linear(self, y: Tensor) -> Tensor:
        """The mel power the values stand for: ``10 ** (4 y - 4)``."""
        return torch.pow(10.0, 4.0 * y - 4.0)

    def max_samples(self) -> Optional[int]:
        """The most samples of a clip the features depend on (``chunk_length``), or None."""
        return self.chunk_samples

    def log_mel(self, x: Tensor) -> Tensor:
        """``log10(max(mel, 1e-10))`` of packed audio, every frame: ``(batch, samples) ->
        (batch, n_mels, frames)`` (before dropping the last frame and the clip-wide step)."""
        mel = self.melspec.packed(x.to(self.melspec.mel_basis.dtype))
        return torch.log10(torch.clamp(mel, min=1e-10))

    def forward(self, x: Tensor) -> Tensor:
        """Whisper features of ``x``: ``(..., samples) -> (..., n_mels, frames)``."""
        x2, lead = AF.pack_batch(x)
        chunk = self.chunk_samples
        if chunk is not None:
            x2 = fit_length(x2, chunk)
        log_mel = self.log_mel(x2)
        if self.trailing_frames_dropped:
            log_mel = log_mel[..., : log_mel.shape[-1] - self.trailing_frames_dropped]
        return AF.unpack_batch(whisper_scale(log_mel, self.dynamic_range, None), lead)
