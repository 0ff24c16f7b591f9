"""Combined frequency and periodicity (``CFP``, ``Combined_Frequency_Periodicity``).

Su & Yang (2015), "Combining spectral and temporal representations for multipitch
estimation of polyphonic music", as nnAudio2 computes it:

1. ``S0``: magnitude of an ``N = int(fs / fr)``-point DFT of each frame (Blackman-Harris
   window of ``window_size`` samples, hop ``hop_length``), divided by the window's L2 norm;
2. the *generalised spectrum* and *generalised cepstrum* alternate, starting from
   ``S = relu(S0) ** g[0]``: for ``l = 1, 2, ...`` the odd layers compute
   ``C = sigma_g[l](Re DFT(S) / sqrt(N))`` with the lowest and highest ``round(fs * tc)``
   lags zeroed (high-pass in quefrency), the even layers
   ``S = sigma_g[l](Re DFT(C) / sqrt(N))`` with the lowest and highest ``round(fc / fr)``
   bins zeroed; ``sigma_g(v) = relu(v) ** g`` (``log(relu(v) + 1e-8)`` for ``g = 0``);
3. both are mapped to one log-frequency grid ``fc * 2 ** (i / NumPerOct)`` below ``1 / tc``
   by triangle filters: the spectrum by frequency, the cepstrum by ``fs / lag``
   (:func:`nnaudio_core.filters.cfp_matrices`), giving ``tfrLF`` (frequency) and ``tfrLQ``
   (periodicity); the pitch salience is ``Z = tfrLF * tfrLQ``: harmonics of ``f0`` show in
   the spectrum at ``k f0``, in the cepstrum at ``f0 / k``, and only ``f0`` in both.

All DFTs are ``torch.fft`` (the cepstral steps are whole-spectrum transforms with no
real-kernel equivalent of reasonable size), which TorchScript, ``torch.export``,
``torch.compile`` and ONNX (``DFT``) support.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from nnaudio_core import checks, filters
from nnaudio_core import functional as AF
from nnaudio_core.errors import ParameterError
from nnaudio_core.features.base import Transform


class _CFPBase(Transform):
    """The computation shared by :class:`CFP` and :class:`Combined_Frequency_Periodicity`."""

    def __init__(
        self,
        fr: float = 2,
        fs: float = 16000,
        hop_length: int = 320,
        window_size: int = 2049,
        fc: float = 80,
        tc: float = 1 / 1000,
        g: Sequence[float] = (0.24, 0.6, 1.0),
        NumPerOct: int = 48,
        center: bool = True,
    ) -> None:
        super().__init__()
        g = [float(v) for v in g] if isinstance(g, (list, tuple)) else g
        self._remember_config(locals())
        fs_v = checks.check_positive("fs", fs)
        fr_v = checks.check_positive("fr", fr)
        self.hop_length = checks.check_int("hop_length", hop_length, 1)
        n = int(fs_v / fr_v)
        checks.check_int("window_size", window_size, 1, min(n, checks.MAX_N_FFT))
        checks.check_int("NumPerOct", NumPerOct, 1)
        fc_v = checks.check_positive("fc", fc)
        tc_v = checks.check_positive("tc", tc)
        if not isinstance(g, (list, tuple)) or len(g) < 2:
            raise ParameterError(
                f"g={g!r} must be a list of at least 2 exponents (spectrum, cepstrum, ...)"
            )
        for v in g:
            checks.check_nonnegative("g", v)
        if not 2.0 * fr_v < fc_v < 1.0 / tc_v <= fs_v / 2.0:
            raise ParameterError(
                f"fc={fc} Hz and 1 / tc={1.0 / tc_v:g} Hz must satisfy 2 * fr={2.0 * fr_v:g} < "
                f"fc < 1 / tc <= fs / 2={fs_v / 2.0:g} Hz"
            )
        self.n_fft = n  # the DFT size; also the frame geometry the CLI reads
        self.window_size = int(window_size)
        self.center = bool(center)
        self.pad_mode = "constant"
        self.sr = fs
        self.g: List[float] = [float(v) for v in g]
        self.high_freq = int(round((1.0 / tc_v) / fr_v) + 1)
        self.high_quef = int(round(fs_v / fc_v) + 1)
        spectral, quefrency = filters.cfp_matrices(fs_v, fr_v, fc_v, tc_v, int(NumPerOct))
        self._freqs = filters.cfp_frequencies(fc_v, tc_v, int(NumPerOct))[:-1]
        win = filters.blackmanharris(self.window_size)
        self.register_buffer("window", torch.from_numpy(win.astype(np.float32)))
        self.register_buffer("freq2logfreq_matrix", torch.from_numpy(spectral.astype(np.float32)))
        self.register_buffer("quef2logfreq_matrix", torch.from_numpy(quefrency.astype(np.float32)))
        quef_mask = filters.cfp_edge_mask(n, int(round(fs_v * tc_v)))
        freq_mask = filters.cfp_edge_mask(n, int(round(fc_v / fr_v)))
        self.register_buffer("quef_mask", torch.from_numpy(quef_mask), persistent=False)
        self.register_buffer("freq_mask", torch.from_numpy(freq_mask), persistent=False)

    def frequencies(self) -> np.ndarray:
        """Centre frequency of each output row in Hz, ``fc * 2 ** (i / NumPerOct)``, shape
        (n_rows,). Row 0 is always zero (nnAudio's bank has no filter there)."""
        return self._freqs.copy()

    def _real_dft(self, v: Tensor) -> Tensor:
        """``Re DFT(v) / sqrt(N)`` along the last axis, all ``N`` entries (an even sequence)."""
        n = self.n_fft
        half = torch.fft.rfft(v, dim=-1).real
        return torch.cat((half, half[..., 1 : n - n // 2].flip(-1)), dim=-1) / (n**0.5)

    def _sigma(self, v: Tensor, g: float, mask: Tensor) -> Tensor:
        if g != 0.0:
            return torch.relu(v).pow(g) * mask
        return torch.log(torch.relu(v) + 1e-8) * mask  # nnAudio's floor for g = 0

    def _all(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(Z, tfrL0, tfrLF, tfrLQ)`` of packed audio ``(batch', samples)``, each
        ``(batch', n_rows, frames)``."""
        n = self.n_fft
        x = x.to(self.window.dtype)  # the dtype rule, see features.stft
        padded = AF.pad_signal(x, n, self.center, "constant")
        left = (n - self.window_size) // 2  # the window sits centred in the N-sample frame
        # N-sample frames, then the window's span inside each: no length arithmetic, so
        # torch.export keeps the length dynamic
        frames = padded.unfold(-1, n, self.hop_length)[..., left : left + self.window_size]
        frames = frames * self.window
        # |DFT| of the window-centred N-point frame: a circular shift leaves it unchanged
        mag = torch.fft.rfft(frames, n=n, dim=-1).abs() / torch.linalg.vector_norm(self.window)
        spec0 = torch.cat((mag, mag[..., 1 : n - n // 2].flip(-1)), dim=-1)  # (b, T, N)
        spec = torch.relu(spec0).pow(self.g[0])
        ceps = spec
        for layer in range(1, len(self.g)):
            if layer % 2 == 1:
                ceps = self._sigma(self._real_dft(spec), self.g[layer], self.quef_mask)
            else:
                spec = self._sigma(self._real_dft(ceps), self.g[layer], self.freq_mask)
        hf = self.high_freq
        tfr_l0 = torch.matmul(self.freq2logfreq_matrix, spec0[..., :hf].transpose(1, 2))
        tfr_lf = torch.matmul(self.freq2logfreq_matrix, spec[..., :hf].transpose(1, 2))
        tfr_lq = torch.matmul(self.quef2logfreq_matrix, ceps[..., : self.high_quef].transpose(1, 2))
        return tfr_lf * tfr_lq, tfr_l0, tfr_lf, tfr_lq


class CFP(_CFPBase):
    """Pitch salience by combined frequency and periodicity (nnAudio2's ``CFP``).

    See the module docstring for the algorithm. Returns only the salience ``Z``, one frame
    per hop like the other transforms (``Combined_Frequency_Periodicity`` also returns the
    intermediate representations and drops the first and last frames).

    Parameters
    ----------
    fr : float
        Frequency resolution in Hz: the DFT size is ``N = int(fs / fr)`` (default 2).
    fs : float
        Sample rate in Hz (default 16000).
    hop_length : int
        Samples between frames (default 320).
    window_size : int
        Blackman-Harris window length in samples, ``<= N`` (default 2049).
    fc : float
        Lowest frequency of the output grid in Hz, and the spectral high-pass: the lowest
        ``round(fc / fr)`` bins are cut from the generalised spectrum (default 80).
    tc : float
        Period in seconds of the highest frequency (``1 / tc`` Hz, default 1/1000), and the
        cepstral high-pass: the lowest ``round(fs * tc)`` lags are cut.
    g : list of float
        Exponents of the layers: ``g[0]`` compresses the magnitude spectrum, then cepstrum
        and spectrum alternate (default ``[0.24, 0.6, 1]``; at least 2 entries; ``0`` is
        a log).
    NumPerOct : int
        Output bins per octave (default 48).
    center : bool
        Zero-pad ``N // 2`` samples on both sides so frame ``t`` is centred at
        ``t * hop_length`` (nnAudio2 always does; ``False`` is what ``nnaudio extract``
        computes chunks with).

    Differences from nnAudio2 (same output wherever nnAudio2 gives one): a cut-off that
    rounds to 0 bins cuts nothing (nnAudio2's ``X[..., -0:] = 0`` zeroes the whole
    representation); ``len(g) == 1`` is refused (nnAudio2 fails in ``forward``); parameters
    are checked (``2 fr < fc < 1 / tc <= fs / 2``); input of any leading shape.
    Kept for parity: nnAudio2's spectral grid ``j * (fs / 2) / (N // 2 - 1)`` Hz (0.025%
    above the true bin frequencies at the defaults), and output row 0 is always zero.

    Shapes
    ------
    ``(samples,)``, ``(batch, samples)``, ``(batch, 1, samples)`` -> ``(batch, n_rows,
    frames)``; other ``(..., samples)`` -> ``(..., n_rows, frames)``;
    ``frames = 1 + (samples + 2 * (N // 2) - N) // hop_length`` with ``center``;
    ``n_rows = len(frequencies())`` (174 at the defaults). ``Z`` is a product of two
    compressed magnitudes, dimensionless.
    """

    def forward(self, x: Tensor) -> Tensor:
        """Salience ``Z`` of ``x``: ``(..., samples) -> (..., n_rows, frames)``."""
        x2, lead = AF.pack_batch(x)
        z, _, _, _ = self._all(x2)
        return AF.unpack_batch(z, lead)


class Combined_Frequency_Periodicity(_CFPBase):
    """CFP with its intermediate representations (nnAudio2's
    ``Combined_Frequency_Periodicity``); a separate class, not an alias of :class:`CFP`.

    Same parameters and numerics as :class:`CFP`; ``forward`` returns the tuple
    ``(Z, tfrL0, tfrLF, tfrLQ)``: the salience, the log-frequency magnitude spectrum, the
    generalised spectrum (frequency) and the generalised cepstrum (periodicity), and, as
    nnAudio2, **drops the first and last frames** (``frames - 2`` of them).

    Shapes
    ------
    ``(..., samples) ->`` four tensors ``(..., n_rows, frames - 2)``; ``(samples,)`` and
    ``(batch, 1, samples)`` as :class:`CFP`. ``tfrL0`` is in input units (magnitude over
    the window norm); ``tfrLF``, ``tfrLQ`` and ``Z`` are compressed, dimensionless.
    """

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(Z, tfrL0, tfrLF, tfrLQ)`` of ``x``, each ``(..., n_rows, frames - 2)``."""
        x2, lead = AF.pack_batch(x)
        z, l0, lf, lq = self._all(x2)
        return (
            AF.unpack_batch(z[..., 1:-1], lead),
            AF.unpack_batch(l0[..., 1:-1], lead),
            AF.unpack_batch(lf[..., 1:-1], lead),
            AF.unpack_batch(lq[..., 1:-1], lead),
        )
