"""The VGGish/YAMNet front end (``VGGishLogMel``): the published AudioSet VGGish input,
``log(mel + 0.01)`` of a 25 ms / 10 ms magnitude spectrogram in 64 HTK mel bands from 125 to
7500 Hz at 16 kHz, and its framing into 0.96 s examples (:func:`vggish_examples`)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from nnaudio_core import checks, filters
from nnaudio_core import functional as AF
from nnaudio_core.errors import ParameterError
from nnaudio_core.features.framed import FramedFilterbank, frame_samples


class VGGishLogMel(FramedFilterbank):
    """VGGish's log mel spectrogram.

    Frames of ``window_seconds`` every ``hop_seconds`` from the first sample (no padding),
    a periodic Hann window, an FFT of the next power of two, the *magnitude* spectrum,
    ``n_mels`` unnormalised triangles on the HTK mel scale from ``fmin`` to ``fmax`` (the DC
    bin left out), and ``log(mel + log_offset)``.

    Parameters
    ----------
    sr : float
        Sample rate in Hz (VGGish: 16000).
    n_mels : int
    fmin, fmax : float, Hz
    window_seconds, hop_seconds : float, s
    log_offset : float
        0.01 for VGGish, 0.001 for YAMNet.
    trainable_mel : bool
    backend : {'auto', 'fft', 'conv'}

    Shapes
    ------
    ``(samples,)``, ``(batch, samples)``, ``(batch, 1, samples)`` -> ``(batch, n_mels,
    frames)``; other ``(..., samples)`` -> ``(..., n_mels, frames)``. The model takes
    ``(examples, 96, 64)``: see :func:`vggish_examples`.
    """

    def __init__(
        self,
        sr: float = 16000,
        n_mels: int = 64,
        fmin: float = 125.0,
        fmax: float = 7500.0,
        window_seconds: float = 0.025,
        hop_seconds: float = 0.010,
        log_offset: float = 0.01,
        trainable_mel: bool = False,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self._remember_config(locals())
        sr = checks.check_sr(sr)
        checks.check_positive("log_offset", log_offset)
        checks.check_band(fmin, fmax, sr, fmin_positive=False)
        span = frame_samples(sr, 1000.0 * window_seconds, "window_seconds", rounded=True)
        hop = frame_samples(sr, 1000.0 * hop_seconds, "hop_seconds", rounded=True)
        n_fft = 1 << int(np.ceil(np.log2(span)))
        checks.check_int("n_mels", n_mels, 1, n_fft // 2)
        window = filters.named_window("hann", span, fftbins=True)
        bank = filters.mel_space_triangles(sr, n_fft, n_mels, fmin, fmax, zero_dc=True)
        self._build(sr, span, hop, n_fft, window, bank, power=False, remove_dc_offset=False,
                    preemphasis=0.0, trainable_bank=trainable_mel, backend=backend)
        self.n_mels = int(n_mels)
        self.log_offset = float(log_offset)
        mels = np.linspace(filters.hz_to_mel(fmin, True), filters.hz_to_mel(fmax, True),
                           n_mels + 2)[1:-1]
        self._freqs = filters.mel_to_hz(mels, True)

    def frequencies(self) -> np.ndarray:
        """Centre frequency of each mel band in Hz, shape (n_mels,)."""
        return self._freqs.copy()

    def to_linear(self, y: Tensor) -> Tensor:
        """``mel + log_offset``, what the values are logs of."""
        return torch.exp(y)

    def forward(self, x: Tensor) -> Tensor:
        """VGGish log mel spectrogram of ``x``: ``(..., samples) -> (..., n_mels, frames)``."""
        x2, lead = AF.pack_batch(x)
        mel, _ = self.bank_energies(x2)
        return AF.unpack_batch(torch.log(mel + self.log_offset).transpose(1, 2), lead)


def vggish_examples(features: Tensor, frames: int = 96, hop: int = 96) -> Tensor:
    """Frame a log mel spectrogram into the model's examples, as VGGish's
    ``waveform_to_examples``: windows of ``frames`` frames every ``hop`` frames, the partial
    last one dropped.

    Parameters
    ----------
    features : Tensor, shape (..., n_mels, T) as :class:`VGGishLogMel` returns it
    frames, hop : int (96, 96: 0.96 s without overlap)

    Returns
    -------
    Tensor, shape (..., examples, frames, n_mels), ``examples = 1 + (T - frames) // hop``
    (0 when ``T < frames``)
    """
    if frames < 1 or hop < 1:
        raise ParameterError(f"frames={frames} and hop={hop} must be >= 1")
    t = features.transpose(-1, -2)  # (..., T, n_mels)
    if t.shape[-2] < frames:
        return t.new_zeros(t.shape[:-2] + (0, frames, t.shape[-1]))
    return t.unfold(-2, frames, hop).transpose(-1, -2)
