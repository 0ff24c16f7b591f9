"""Kaldi's filter-bank and MFCC features (``KaldiFbank``, ``KaldiMFCC``) and the AST/BEATs
front end built on them (``ASTFbank``), equal to ``kaldi-native-fbank`` (dither 0) and to
``transformers``' ``ASTFeatureExtractor``.

Keywords follow ``torchaudio.compliance.kaldi.fbank``/``mfcc`` (Kaldi's option names, with
``sr`` for ``sample_frequency``); frames are cut with ``snip_edges=true``. ``dither`` is not
offered: features are deterministic (Kaldi's ``--dither=0``).

Input scale: Kaldi reads integer samples; ``kaldi-native-fbank``, Lhotse and icefall feed
floats in [-1, 1], WeNet multiplies by 32768 first. ``waveform_scale`` multiplies the input
(default 1: floats as given); the log values differ by ``2 log(scale)``.
"""

from __future__ import annotations

import inspect
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from nnaudio_core import checks, filters
from nnaudio_core import functional as AF
from nnaudio_core.errors import ParameterError
from nnaudio_core.features.framed import FramedFilterbank, frame_samples, log_floor, place_energy

#: ``std::numeric_limits<float>::epsilon()``: Kaldi's floor before every log.
KALDI_EPSILON = float(np.finfo(np.float32).eps)


def _padded(frame_span: int, round_to_power_of_two: bool) -> int:
    return 1 << int(np.ceil(np.log2(frame_span))) if round_to_power_of_two else frame_span


def _band(sr: float, low_freq: float, high_freq: float) -> tuple[float, float]:
    """Kaldi's band: ``high_freq <= 0`` counts back from the Nyquist frequency."""
    nyquist = sr / 2.0
    high = nyquist + high_freq if high_freq <= 0 else float(high_freq)
    checks.check_nonnegative("low_freq", low_freq)
    if not 0 <= low_freq < high <= nyquist:
        raise ParameterError(
            f"low_freq={low_freq:g} and high_freq={high_freq:g} give the band "
            f"[{low_freq:g}, {high:g}] Hz; it must lie in [0, sr / 2 = {nyquist:g}] Hz"
        )
    return float(low_freq), high


class KaldiFbank(FramedFilterbank):
    """Kaldi's log mel filter-bank features (``compute-fbank-feats``), as
    ``kaldi_native_fbank.OnlineFbank`` with ``dither=0``.

    Per frame of ``frame_length`` ms every ``frame_shift`` ms (``snip_edges``): DC offset
    removal, pre-emphasis, the window, a zero-padded FFT, the power spectrum, ``num_mel_bins``
    triangles on the HTK mel scale (``1127 ln(1 + f/700)``) from ``low_freq`` to ``high_freq``,
    and ``log(max(e, FLT_EPSILON))``. ``use_energy`` adds the frame's log energy as the first
    column (last with ``htk_compat``).

    Parameters
    ----------
    sr : float
        Sample rate in Hz (Kaldi's ``sample_frequency``).
    num_mel_bins : int
    frame_length, frame_shift : float, ms
    window_type : {'povey', 'hanning', 'hamming', 'rectangular', 'blackman', 'sine'}
    preemphasis_coefficient : float in [0, 1]
    remove_dc_offset : bool
    round_to_power_of_two : bool
        FFT size: the next power of two of the frame (else the frame length).
    low_freq, high_freq : float, Hz
        Band edges; ``high_freq <= 0`` means Nyquist plus ``high_freq``.
    use_energy, raw_energy, energy_floor, htk_compat : as Kaldi
    use_log_fbank, use_power : bool
    blackman_coeff : float
    waveform_scale : float
        The input is multiplied by this first (see the module docstring).
    snip_edges : bool
        Only ``True`` (frames from the first sample on) is offered.
    trainable_mel : bool
        Learn the filter bank.
    backend : {'auto', 'fft', 'conv'}
        ``'conv'`` forces the real DFT-product path (see :mod:`nnaudio_core.features.framed`).

    Shapes
    ------
    ``(samples,)``, ``(batch, samples)``, ``(batch, 1, samples)`` -> ``(batch, bins, frames)``
    with ``bins = num_mel_bins (+1 with use_energy)``; other ``(..., samples)`` ->
    ``(..., bins, frames)``. Kaldi's matrices are ``(frames, bins)``: transpose the last two.
    """

    def __init__(
        self,
        sr: float = 16000,
        num_mel_bins: int = 23,
        frame_length: float = 25.0,
        frame_shift: float = 10.0,
        window_type: str = "povey",
        preemphasis_coefficient: float = 0.97,
        remove_dc_offset: bool = True,
        round_to_power_of_two: bool = True,
        low_freq: float = 20.0,
        high_freq: float = 0.0,
        use_energy: bool = False,
        raw_energy: bool = True,
        energy_floor: float = 0.0,
        htk_compat: bool = False,
        use_log_fbank: bool = True,
        use_power: bool = True,
        blackman_coeff: float = 0.42,
        waveform_scale: float = 1.0,
        snip_edges: bool = True,
        trainable_mel: bool = False,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self._remember_config(locals())
        self._setup(locals())

    def _setup(self, p: dict[str, Any]) -> None:
        """Build the frames, window and bank from the constructor arguments ``p``."""
        sr = checks.check_sr(p["sr"])
        if not p["snip_edges"]:
            raise ParameterError(
                "snip_edges=False is not offered: frames start at the first sample "
                "(snip_edges=True, kaldi-native-fbank's default)"
            )
        span = frame_samples(sr, p["frame_length"], "frame_length")
        hop = frame_samples(sr, p["frame_shift"], "frame_shift")
        n_fft = _padded(span, bool(p["round_to_power_of_two"]))
        checks.check_int("num_mel_bins", p["num_mel_bins"], 1, n_fft // 2)
        checks.check_nonnegative("energy_floor", p["energy_floor"])
        checks.check_positive("waveform_scale", p["waveform_scale"])
        low, high = _band(sr, p["low_freq"], p["high_freq"])
        window = filters.kaldi_window(p["window_type"], span, p["blackman_coeff"])
        bank = filters.mel_space_triangles(sr, n_fft, p["num_mel_bins"], low, high,
                                           allow_empty=bool(p.get("allow_empty", False)))
        self._build(sr, span, hop, n_fft, window, bank, bool(p["use_power"]),
                    bool(p["remove_dc_offset"]), float(p["preemphasis_coefficient"]),
                    bool(p["trainable_mel"]), p["backend"])
        self.num_mel_bins = int(p["num_mel_bins"])
        self.use_energy = bool(p["use_energy"])
        self.raw_energy = bool(p["raw_energy"])
        self.energy_floor = float(p["energy_floor"])
        self.log_energy_floor = float(np.log(self.energy_floor)) if self.energy_floor > 0 else 0.0
        self.eps = KALDI_EPSILON
        self.htk_compat = bool(p["htk_compat"])
        self.use_log = bool(p["use_log_fbank"])
        self.scale = float(p["waveform_scale"])
        self._band_freqs = filters.mel_to_hz(
            np.linspace(filters.hz_to_mel(low, True), filters.hz_to_mel(high, True),
                        self.num_mel_bins + 2)[1:-1], True)

    def frequencies(self) -> np.ndarray:
        """Centre frequency of each mel band in Hz (the energy column, if any, as 0 Hz)."""
        if not self.use_energy:
            return self._band_freqs.copy()
        zero = np.zeros(1)
        parts = [self._band_freqs, zero] if self.htk_compat else [zero, self._band_freqs]
        return np.concatenate(parts)

    def to_linear(self, y: Tensor) -> Tensor:
        """The energies the values are logs of (``use_log_fbank``), else ``y``."""
        return torch.exp(y) if self.use_log else y

    def log_energy(self, x: Tensor, raw: Tensor) -> Tensor:
        """Kaldi's log frame energy ``(batch, frames)``, floored at ``log(energy_floor)``."""
        energy = raw if self.raw_energy else self.windowed_energy(x)
        out = log_floor(energy, self.eps)
        if self.energy_floor > 0.0:
            out = torch.clamp(out, min=self.log_energy_floor)
        return out

    def packed(self, x: Tensor) -> Tensor:
        """Features of packed audio, time-major: ``(batch, samples) -> (batch, frames, bins)``."""
        return self.fbank(x)

    def fbank(self, x: Tensor) -> Tensor:
        """Kaldi fbank of packed audio, time-major: ``(batch, samples) -> (batch, frames,
        bins)``."""
        x = x.to(self.window.dtype)
        if self.scale != 1.0:
            x = x * self.scale
        bands, raw = self.bank_energies(x, self.use_energy and self.raw_energy)
        if self.use_log:
            bands = log_floor(bands, self.eps)
        energy: Optional[Tensor] = None
        if self.use_energy:
            energy = self.log_energy(x, raw)
        return place_energy(bands, energy, self.htk_compat)

    def forward(self, x: Tensor) -> Tensor:
        """Filter-bank features of ``x``: ``(..., samples) -> (..., bins, frames)``."""
        x2, lead = AF.pack_batch(x)
        return AF.unpack_batch(self.packed(x2).transpose(1, 2), lead)


class KaldiMFCC(KaldiFbank):
    """Kaldi's MFCCs (``compute-mfcc-feats``), as ``kaldi_native_fbank.OnlineMfcc`` with
    ``dither=0``: the orthonormal DCT-II of :class:`KaldiFbank`'s log energies, the first
    ``num_ceps`` kept, liftered by ``1 + Q/2 sin(pi i / Q)`` (``cepstral_lifter`` Q), and
    with ``use_energy`` the log frame energy in place of C0.

    Parameters
    ----------
    num_ceps : int
        Cepstra kept (C0 included), at most ``num_mel_bins``.
    cepstral_lifter : float
        Q (0: no liftering).
    use_energy : bool
        C0 replaced by the log frame energy (Kaldi's default, true).
    htk_compat : bool
        C0/energy moved last and scaled as HTK (``sqrt(2)`` on C0 when not ``use_energy``).
    others : as :class:`KaldiFbank` (``num_mel_bins`` default 23).

    Shapes
    ------
    ``(..., samples) -> (..., num_ceps, frames)`` (nnAudio's batch conventions, as
    :class:`KaldiFbank`).
    """

    def __init__(
        self,
        sr: float = 16000,
        num_ceps: int = 13,
        num_mel_bins: int = 23,
        cepstral_lifter: float = 22.0,
        frame_length: float = 25.0,
        frame_shift: float = 10.0,
        window_type: str = "povey",
        preemphasis_coefficient: float = 0.97,
        remove_dc_offset: bool = True,
        round_to_power_of_two: bool = True,
        low_freq: float = 20.0,
        high_freq: float = 0.0,
        use_energy: bool = True,
        raw_energy: bool = True,
        energy_floor: float = 0.0,
        htk_compat: bool = False,
        blackman_coeff: float = 0.42,
        waveform_scale: float = 1.0,
        snip_edges: bool = True,
        trainable_mel: bool = False,
        backend: str = "auto",
    ) -> None:
        super(KaldiFbank, self).__init__()
        self._remember_config(locals())
        self._setup({**locals(), "use_log_fbank": True, "use_power": True})
        checks.check_int("num_ceps", num_ceps, 1, num_mel_bins)
        checks.check_nonnegative("cepstral_lifter", cepstral_lifter)
        self.num_ceps = int(num_ceps)
        dct = filters.dct_matrix(num_ceps, num_mel_bins)
        i = np.arange(num_ceps, dtype=np.float64)
        lifter = (1.0 + 0.5 * cepstral_lifter * np.sin(np.pi * i / cepstral_lifter)
                  if cepstral_lifter > 0 else np.ones(num_ceps))
        if htk_compat and not use_energy:
            lifter = lifter.copy()
            lifter[0] *= np.sqrt(2.0)
        # (n_mels, num_ceps): the DCT and the lifter in one product
        self.register_buffer("cepstra", torch.from_numpy((dct * lifter[:, None]).T.astype(
            np.float32)))

    def frequencies(self) -> np.ndarray:
        """MFCCs have no frequency axis: coefficient indices 0..num_ceps-1."""
        return np.arange(self.num_ceps, dtype=np.float64)

    def to_linear(self, y: Tensor) -> Tensor:
        """Cepstra are compared as they are."""
        return y

    def packed(self, x: Tensor) -> Tensor:
        """MFCCs of packed audio, time-major: ``(batch, samples) -> (batch, frames, num_ceps)``."""
        x = x.to(self.window.dtype)
        if self.scale != 1.0:
            x = x * self.scale
        bands, raw = self.bank_energies(x, self.use_energy and self.raw_energy)
        ceps = torch.matmul(log_floor(bands, self.eps), self.cepstra)
        if self.use_energy:
            energy = self.log_energy(x, raw)
            ceps = place_energy(ceps[..., 1:], energy, self.htk_compat)
        elif self.htk_compat:
            ceps = torch.cat([ceps[..., 1:], ceps[..., :1]], dim=-1)
        return ceps


#: AudioSet statistics of the AST front end (``ASTFeatureExtractor``'s defaults).
AUDIOSET_MEAN = -4.2677393
AUDIOSET_STD = 4.5689974


class ASTFbank(KaldiFbank):
    """The Audio Spectrogram Transformer's input (``transformers``' ``ASTFeatureExtractor``):
    Kaldi fbank with a Hanning window, 128 bands, no energy, then ``(x - mean) / (2 std)``
    with AudioSet's statistics.

    Parameters
    ----------
    mean, std : float
        Normalisation (AudioSet's by default).
    max_frames : int or None
        Frames per clip: shorter clips are padded with zero fbank values (before the
        normalisation, as the reference), longer ones cut (1024 in the reference);
        ``None``: every frame of the clip, no padding.
    others : as :class:`KaldiFbank`.

    Shapes
    ------
    ``(..., samples) -> (..., num_mel_bins, frames)``.
    """

    def __init__(
        self,
        sr: float = 16000,
        num_mel_bins: int = 128,
        max_frames: Optional[int] = 1024,
        mean: float = AUDIOSET_MEAN,
        std: float = AUDIOSET_STD,
        frame_length: float = 25.0,
        frame_shift: float = 10.0,
        window_type: str = "hanning",
        preemphasis_coefficient: float = 0.97,
        remove_dc_offset: bool = True,
        low_freq: float = 20.0,
        high_freq: float = 0.0,
        waveform_scale: float = 1.0,
        trainable_mel: bool = False,
        backend: str = "auto",
    ) -> None:
        super(KaldiFbank, self).__init__()
        self._remember_config(locals())
        self._setup({**locals(), "round_to_power_of_two": True, "use_energy": False,
                     "raw_energy": True, "energy_floor": 0.0, "htk_compat": True,
                     "use_log_fbank": True, "use_power": True, "blackman_coeff": 0.42,
                     "snip_edges": True, "allow_empty": True})
        if max_frames is not None:
            checks.check_int("max_frames", max_frames, 1)
        checks.check_positive("std", std)
        self.max_frames = max_frames
        self.mean = float(mean)
        self.std = float(std)

    def min_samples(self) -> int:
        """The shortest clip: one frame (padded up to ``max_frames`` when that is set)."""
        return self.frame_span

    @classmethod
    def fixed_length(cls, params: dict[str, Any]) -> bool:
        """``max_frames`` set (the default 1024): every clip padded or cut to it."""
        default = inspect.signature(cls).parameters["max_frames"].default
        return params.get("max_frames", default) is not None

    def max_samples(self) -> Optional[int]:
        """The most samples of a clip the features depend on (``max_frames`` frames), or
        None without ``max_frames``."""
        if self.max_frames is None:
            return None
        return self.frame_span + (self.max_frames - 1) * self.hop_length

    def packed(self, x: Tensor) -> Tensor:
        """AST input of packed audio, time-major: ``(batch, samples) -> (batch, frames,
        num_mel_bins)`` (``frames = max_frames`` when set)."""
        feats = self.fbank(x)
        max_frames = self.max_frames
        if max_frames is not None:  # a negative pad cuts: no branch on the length (export)
            feats = torch.nn.functional.pad(feats, [0, 0, 0, max_frames - feats.shape[1]])
        return (feats - self.mean) / (2.0 * self.std)

    def to_linear(self, y: Tensor) -> Tensor:
        """The filter-bank energies the values are normalised logs of."""
        return torch.exp(y * (2.0 * self.std) + self.mean)
