"""Mel spectrogram and MFCC (``MelSpectrogram``, ``MFCC``), librosa's numerics."""

from __future__ import annotations

import inspect
from typing import Any, List, Optional

import numpy as np
import torch
from torch import Tensor, nn

from nnaudio_core import checks, filters, workers
from nnaudio_core import functional as AF
from nnaudio_core.errors import ParameterError
from nnaudio_core.features.base import ParamSpec, Transform
from nnaudio_core.features.stft import STFT


def band_stft(params: dict[str, Any], kwargs: dict[str, Any]) -> STFT:
    """The inner :class:`STFT` of a filter-bank spectrogram (mel, gammatone) from its
    constructor arguments: the uniform grid, Magnitude, ``backend`` from ``kwargs``."""
    return STFT(
        n_fft=params["n_fft"],
        win_length=params["win_length"],
        hop_length=params["hop_length"],
        window=params["window"],
        freq_scale="no",
        center=params["center"],
        pad_mode=params["pad_mode"],
        sr=params["sr"],
        trainable=params["trainable_STFT"],
        output_format="Magnitude",
        backend=kwargs.get("backend", "auto"),
    )


class MelSpectrogram(Transform):
    """Mel-frequency spectrogram (nnAudio2's ``MelSpectrogram``).

    ``mel_basis @ |STFT(x)| ** power``, with ``mel_basis`` equal to
    ``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk,
    norm=norm)``.

    Parameters
    ----------
    sr : float
        Sample rate in Hz.
    n_fft, win_length, hop_length, window, center, pad_mode : as :class:`STFT`
        (``hop_length`` defaults to 512 as in nnAudio).
    n_mels : int
        Number of mel bands.
    power : float
        Exponent of the magnitude (2: power, 1: magnitude).
    htk : bool
        HTK mel formula instead of Slaney's.
    fmin, fmax : float
        Band edges in Hz (``fmax=None``: ``sr / 2``).
    norm : None, 'slaney', 1 or float
        Filter normalisation; ``1`` means Slaney area normalisation, as in nnAudio.
    trainable_mel : bool
        Learn the mel filter bank (``mel_basis`` becomes an ``nn.Parameter``).
    trainable_STFT : bool
        Learn the Fourier kernels (STFT kernel path).
    verbose : bool
        Accepted for nnAudio compatibility.
    **kwargs
        Passed on to :class:`STFT` (e.g. ``backend``).

    Shapes
    ------
    ``(samples,)``, ``(batch, samples)``, ``(batch, 1, samples)`` -> ``(batch, n_mels, frames)``;
    other ``(..., samples)`` -> ``(..., n_mels, frames)``.
    """

    def __init__(
        self,
        sr: float = 22050,
        n_fft: int = 2048,
        win_length: Optional[int] = None,
        n_mels: int = 128,
        hop_length: int = 512,
        window: filters.WindowSpec = "hann",
        center: bool = True,
        pad_mode: str = "reflect",
        power: float = 2.0,
        htk: bool = False,
        fmin: float = 0.0,
        fmax: Optional[float] = None,
        norm: Any = 1,
        trainable_mel: bool = False,
        trainable_STFT: bool = False,
        verbose: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self._remember_config({**locals(), **kwargs})
        unknown = set(kwargs) - {"backend", "freq_bins", "iSTFT"}
        if unknown:
            raise ParameterError(
                f"unknown MelSpectrogram parameter(s) {', '.join(sorted(unknown))}"
            )
        checks.check_mel(sr, n_fft, n_mels, fmin, fmax, htk, power)
        self.stft = band_stft(locals(), kwargs)
        self.power = float(power)
        self.sr = sr
        self.hop_length = self.stft.hop_length
        self.n_mels = n_mels
        basis = filters.mel_filterbank(sr, n_fft, n_mels, fmin, fmax, htk, norm)
        self._freqs = filters.mel_frequencies(
            n_mels + 2, fmin, sr / 2 if fmax is None else fmax, htk
        )[1:-1]
        basis_t = torch.from_numpy(basis.astype(np.float32))
        if trainable_mel:
            self.mel_basis = nn.Parameter(basis_t)
        else:
            self.register_buffer("mel_basis", basis_t)

    @classmethod
    def delegated_spec(cls) -> dict[str, ParamSpec]:
        """``backend``, passed on to :class:`STFT`."""
        return {"backend": STFT.param_spec()["backend"]}

    def frequencies(self) -> np.ndarray:
        """Centre frequency of each mel band in Hz, shape (n_mels,)."""
        return self._freqs.copy()

    def _mel(self, padded: Tensor) -> Tensor:
        """Mel spectrogram of an already padded ``(batch', samples)`` segment."""
        spec = self.stft.power_spectrum(padded, self.power)
        if spec.stride(-1) == 1:  # (bins, frames) memory: filters on the left
            return torch.matmul(self.mel_basis, spec)
        # frame-major memory (FFT path): one GEMM over all frames, no transposing copy
        return torch.matmul(spec.transpose(1, 2), self.mel_basis.t()).transpose(1, 2)

    def packed(self, x: Tensor) -> Tensor:
        """Mel spectrogram of packed audio: ``(batch', samples) -> (batch', n_mels, frames)``."""
        x = x.to(self.stft.window_mask.dtype)  # the dtype rule, see nnaudio_core.features.stft
        if AF.is_eager_cpu(x):
            return self._mel_blocks(x)
        segments, time_blocks = self.stft.segments(self.stft.pad(x))
        parts: List[Tensor] = []
        for seg in segments:
            parts.append(self._mel(seg))
        return AF.join_frames(parts, time_blocks)

    @torch.jit.unused
    def _mel_blocks(self, x: Tensor) -> Tensor:
        """:meth:`packed` with :meth:`_mel` of each segment on the block workers
        (:mod:`nnaudio_core.workers`)."""
        return workers.map_segments(self._mel, self.stft, x, self)

    # real annotations for TorchScript (see STFT._blocks)
    _mel_blocks.__annotations__ = {"x": Tensor, "return": Tensor}

    def forward(self, x: Tensor) -> Tensor:
        """Mel spectrogram of ``x``: ``(..., samples) -> (..., n_mels, frames)``."""
        x2, lead = AF.pack_batch(x)
        return AF.unpack_batch(self.packed(x2), lead)


_MEL_DEFAULT_N_MELS = inspect.signature(MelSpectrogram).parameters["n_mels"].default


class MFCC(Transform):
    """Mel-frequency cepstral coefficients (nnAudio2's ``MFCC``), as ``librosa.feature.mfcc``.

    ``DCT-II(power_to_db(MelSpectrogram(x), ref, amin, top_db))[:n_mfcc]`` with an orthonormal
    DCT. ``top_db`` clips relative to the maximum of each batch item.

    Parameters
    ----------
    sr : float, Hz
    n_mfcc : int
    norm : {'ortho'}
        DCT normalisation (only the orthonormal DCT-II, librosa's default, is offered).
    verbose : bool
        Accepted for nnAudio compatibility.
    ref, amin : float
        Decibel reference and floor (``10 * log10(max(S, amin) / ref)``).
    top_db : float or None
        Dynamic range kept below each item's peak, in dB.
    **kwargs
        Passed on to :class:`MelSpectrogram` (``n_fft``, ``n_mels``, ``hop_length``, ...).

    Shapes
    ------
    ``(batch, samples) -> (batch, n_mfcc, frames)``; ``(..., samples) -> (..., n_mfcc, frames)``.
    """

    def __init__(
        self,
        sr: float = 22050,
        n_mfcc: int = 20,
        norm: str = "ortho",
        verbose: bool = True,
        ref: float = 1.0,
        amin: float = 1e-10,
        top_db: Optional[float] = 80.0,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self._remember_config({**locals(), **kwargs})
        if norm != "ortho":
            raise ParameterError(f"norm={norm!r}: only 'ortho' (DCT-II) is supported")
        n_mels = kwargs.get("n_mels", _MEL_DEFAULT_N_MELS)
        checks.check_mfcc(n_mfcc, n_mels, ref, amin, top_db)
        self.melspec = MelSpectrogram(sr=sr, **kwargs)
        # resolved set: the mel/STFT defaults too, so the config alone rebuilds this module
        self._config = {**self.melspec._config, **self._config}
        self.n_mfcc = n_mfcc
        self.sr = sr
        self.hop_length = self.melspec.hop_length
        self.ref = float(ref)
        self.amin = float(amin)
        self.top_db = None if top_db is None else float(top_db)
        dct = filters.dct_matrix(n_mfcc, self.melspec.n_mels)
        self.register_buffer("dct", torch.from_numpy(dct.astype(np.float32)))

    @classmethod
    def delegated_spec(cls) -> dict[str, ParamSpec]:
        """:class:`MelSpectrogram`'s parameters, passed on to it."""
        return MelSpectrogram.param_spec()

    def frequencies(self) -> np.ndarray:
        """MFCCs have no frequency axis: coefficient indices 0..n_mfcc-1."""
        return np.arange(self.n_mfcc, dtype=np.float64)

    def forward(self, x: Tensor) -> Tensor:
        """MFCCs of ``x``: ``(..., samples) -> (..., n_mfcc, frames)``."""
        x2, lead = AF.pack_batch(x)
        if AF.is_eager_cpu(x2):
            return AF.unpack_batch(self._packed_blocks(x2), lead)
        return AF.unpack_batch(self._packed(x2), lead)

    def _packed(self, x: Tensor) -> Tensor:
        """MFCCs of packed audio: ``(batch', samples) -> (batch', n_mfcc, frames)``."""
        mel = self.melspec.packed(x)
        db = AF.power_to_db(mel, self.ref, self.amin, self.top_db)
        return torch.matmul(self.dct, db)

    @torch.jit.unused
    def _packed_blocks(self, x: Tensor) -> Tensor:
        """:meth:`_packed` on groups of clips on the block workers (:mod:`nnaudio_core.workers`)."""
        return workers.map_clips(self._packed, x, self)

    _packed_blocks.__annotations__ = {"x": Tensor, "return": Tensor}  # see STFT._blocks
