"""Multirate constant-/variable-Q transform: nnAudio2's ``CQT2010v2``/``VQT`` algorithm.

One bank of kernels spans the top octave. The input is (optionally) low-passed and
decimated by ``2 ** k`` first (early downsampling), the top bank is correlated with it at
hop ``hop / 2 ** k``, and then, octave by octave, the signal is low-passed (256-tap FIR,
cutoff half its Nyquist frequency) and halved, the hop halved, and the same bank (for a VQT
the octave's own bank) applied again, which gives the next octave down. Both the
downsampling and the kernel correlation are nnAudio's strided ``conv1d`` calls (on the CPU the
downsampling's sums are taken as block matrix products, 4x faster than a one-channel
``conv1d``), so the output equals nnAudio2's to float32 round-off.

The kernels are short (the top octave's; at 22.05 kHz, 84 bins from C1: 256 taps instead of
the exact transform's 16,384), so the transform is cheap, and approximate: the low-pass
filters' ripple and aliasing (about 1e-3 of the peak) and nnAudio's integer kernel lengths at
the reduced rates make it differ from the exact CQT (:class:`~nnaudio_core.features.cqt.
CQT1992v2`) by a median 0.3-0.8% of each bin's magnitude.

Builders (numpy) are :func:`nnaudio_core.filters.multirate_layout`,
:func:`~nnaudio_core.filters.octave_kernels` and :func:`~nnaudio_core.filters.lowpass_fir`;
:func:`~nnaudio_core.filters.multirate_bank` assembles them; :func:`multirate_correlate` is
the computation. :class:`Multirate`, built by :func:`multirate_path`, is the compute path of
a :class:`~nnaudio_core.features.variable_q.VariableQ` that uses it (the other paths are in
:mod:`nnaudio_core.features.constant_q_paths`).
"""

import warnings
from typing import List, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nnaudio_core import filters
from nnaudio_core import functional as AF
from nnaudio_core.errors import ParameterError

#: output samples per row of :func:`decimate`'s matrix products on the CPU
DECIMATE_BLOCK = 32


def decimate(x: Tensor, lowpass: Tensor, factor: int) -> Tensor:
    """Low-pass and keep every ``factor``-th sample, as nnAudio (zero-padded ``conv1d``).

    On the CPU (eager and TorchScript) the same sums are computed as matrix products on
    blocks of :data:`DECIMATE_BLOCK` outputs (a banded Toeplitz matrix): 4x faster than
    ``conv1d`` with one input channel, equal to it to float32 round-off.

    Parameters
    ----------
    x : Tensor, shape (batch, samples)
    lowpass : Tensor, shape (1, 1, taps), odd or even number of taps
    factor : int

    Returns
    -------
    Tensor, shape (batch, (samples + 2 * ((taps - 1) // 2) - taps) // factor + 1); for 256
    taps and ``factor = 2`` that is ``samples // 2``
    """
    pad = (lowpass.shape[-1] - 1) // 2
    if AF.cpu_blocking(x):
        return _decimate_blocks(F.pad(x, [pad, pad]), lowpass.reshape(-1), factor)
    return F.conv1d(x.unsqueeze(1), lowpass, stride=factor, padding=pad).squeeze(1)


def _decimate_blocks(
    padded: Tensor, h: Tensor, factor: int, block: int = DECIMATE_BLOCK
) -> Tensor:
    """``y[b, n] = sum_k h[k] * padded[b, factor * n + k]`` for every ``n`` with the
    filter inside ``padded``: each block of ``P = DECIMATE_BLOCK`` outputs is one row of
    ``padded``'s ``factor * (P - 1) + taps``-sample windows times ``T.T``, with
    ``T[i, j] = h[j - factor * i]``; windows are taken a few MiB at a time."""
    taps = h.shape[0]
    batch = padded.shape[0]
    n_out = (padded.shape[-1] - taps) // factor + 1
    window = factor * (block - 1) + taps
    n_blocks = (n_out + block - 1) // block
    need = factor * block * (n_blocks - 1) + window
    padded = F.pad(padded, [0, max(0, need - padded.shape[-1])])
    cols = torch.arange(window, device=h.device)
    rows = torch.arange(block, device=h.device)
    idx = cols.unsqueeze(0) - factor * rows.unsqueeze(1)
    inside = (idx >= 0) & (idx < taps)
    toeplitz_t = torch.where(inside, h[idx.clamp(0, taps - 1)], h.new_zeros(())).t()
    per = max(1, (1 << 20) // max(1, batch * window))  # blocks per product (~4 MiB windows)
    outs: List[Tensor] = []
    step = factor * block
    for b0 in range(0, n_blocks, per):
        b1 = min(n_blocks, b0 + per)
        part = padded[:, step * b0 : step * (b1 - 1) + window]
        outs.append(torch.matmul(part.unfold(-1, window, step), toeplitz_t).reshape(batch, -1))
    out = outs[0] if len(outs) == 1 else torch.cat(outs, 1)
    return out[:, :n_out]


def stft_product(
    padded: Tensor,
    fourier_cos: Tensor,
    fourier_sin: Tensor,
    spectra_real: Tensor,
    spectra_imag: Tensor,
    hop_length: int,
) -> Tuple[Tensor, Tensor]:
    """nnAudio's ``CQT1992``/``CQT2010`` per-octave step: rectangular-window STFT by
    ``conv1d``, then a complex matrix product with the kernels' positive-frequency spectra.

    Parameters
    ----------
    padded : Tensor, shape (batch, samples), already padded
    fourier_cos, fourier_sin : Tensor, shape (n_fft // 2 + 1, 1, n_fft),
        ``cos``/``sin(2 pi k n / n_fft)``
    spectra_real, spectra_imag : Tensor, shape (n_filters, n_fft // 2 + 1), from
        :func:`nnaudio_core.filters.spectral_kernels`

    Returns
    -------
    (real, imag), each (batch, n_filters, frames): ``n_fft`` times the correlation with the
    kernels, its imaginary part conjugated, less the kernels' negative-frequency leakage
    """
    xs = padded.unsqueeze(1)
    f_real = F.conv1d(xs, fourier_cos, stride=hop_length)
    f_imag = F.conv1d(xs, fourier_sin, stride=hop_length)
    real = torch.matmul(spectra_real, f_real) - torch.matmul(spectra_imag, f_imag)
    imag = torch.matmul(spectra_real, f_imag) + torch.matmul(spectra_imag, f_real)
    return real, imag


def multirate_correlate(
    x: Tensor,
    kernels_real: Tensor,
    kernels_imag: Tensor,
    spans: List[int],
    n_filters: int,
    lowpass: Tensor,
    early: Tensor,
    factor: int,
    hop_length: int,
    n_octaves: int,
    n_bins: int,
    pad_mode: str,
    fourier_cos: Tensor,
    fourier_sin: Tensor,
    gain: float = 1.0,
) -> Tuple[Tensor, Tensor]:
    """Multirate correlation of ``(batch, samples)`` audio with the octave banks.

    Parameters
    ----------
    x : Tensor, shape (batch, samples), not padded (each octave is padded by half its
        bank's span, ``pad_mode`` as :func:`nnaudio_core.functional.pad_signal`)
    kernels_real, kernels_imag : Tensor, shape (n_banks * n_filters, 1, span), real and
        imaginary parts of the correlation kernels (bank 0: the top octave)
    spans : each bank's own span (it is centred in the common ``span``)
    lowpass : Tensor, shape (1, 1, taps), the halving filter
    early : Tensor, shape (1, 1, taps), the early-downsampling filter (unused if
        ``factor == 1``)
    factor : int, early downsampling factor
    hop_length : int, hop of the top octave (after early downsampling)
    fourier_cos, fourier_sin : empty, or the STFT kernels of :func:`stft_product`: then
        ``kernels_real``/``kernels_imag`` are the bank's spectra ``(n_filters, 1, n_rfft)``
        and each octave is computed as nnAudio's ``CQT2010`` (one bank only)

    Returns
    -------
    (real, imag), each (batch, n_bins, frames), ``frames = 1 + len(x') // hop_length`` with
    ``x'`` the early-downsampled input; times ``gain`` (nnAudio's ``CQT2010v2`` and
    ``VQT`` pass the early-downsampling factor, its ``CQT2010`` passes 1)
    """
    if factor > 1:
        x = decimate(x, early, factor)
    spectral = fourier_cos.shape[0] > 0
    span = kernels_real.shape[-1]
    n_banks = len(spans)
    reals: List[Tensor] = []
    imags: List[Tensor] = []
    hop = hop_length
    for octave in range(n_octaves):
        if octave > 0:
            if x.shape[-1] < 2:
                raise ValueError(
                    f"input too short for {n_octaves} octaves of the multirate CQT; use "
                    "backend='auto' (exact) for short clips"
                )
            x = decimate(x, lowpass, 2)
            hop = hop // 2
        bank = min(octave, n_banks - 1)
        padded = AF.pad_signal(x, spans[bank], True, pad_mode)
        if spectral:
            real, imag = stft_product(
                padded, fourier_cos, fourier_sin, kernels_real[:, 0], kernels_imag[:, 0], hop
            )
        else:
            lo = (span - spans[bank]) // 2
            r0, r1 = bank * n_filters, (bank + 1) * n_filters
            k_real = kernels_real[r0:r1, :, lo : lo + spans[bank]]
            k_imag = kernels_imag[r0:r1, :, lo : lo + spans[bank]]
            real, imag = AF.stft_conv(padded, k_real, -k_imag, hop)
        reals.insert(0, real)
        imags.insert(0, imag)
    real = torch.cat(reals, 1)[:, -n_bins:]
    imag = torch.cat(imags, 1)[:, -n_bins:]
    if gain != 1.0:
        real = real * gain
        imag = imag * gain
    return real, imag


class Multirate(nn.Module):
    """The multirate compute path of a ``VariableQ`` (``backend='multirate'``, and nnAudio's
    STFT-times-kernel-spectra form of ``CQT1992``/``CQT2010``): :func:`multirate_correlate`
    with the transform's kernels. Build it with :func:`multirate_path`.

    Attributes
    ----------
    spans : list of int
        Each bank's own kernel span (samples).
    n_filters, factor, hop_length, n_octaves, n_bins : int
        As :func:`multirate_correlate`'s parameters.
    gain : float
        Factor on the output (nnAudio's early-downsampling rescale, or 1).
    negate_imag : bool
        Return the conjugate (nnAudio2's ``CQT1992`` sign).
    divisor : float
        What the transform divides its output scaling by (the STFT length of the
        STFT-product form, else 1).
    """

    spans: List[int]  # TorchScript: typed even when empty

    def __init__(self, spans: List[int], n_filters: int, factor: int, hop_length: int,
                 n_octaves: int, n_bins: int, pad_mode: str, lowpass: np.ndarray,
                 early: np.ndarray, gain: float, fourier: Tuple[np.ndarray, np.ndarray] | None,
                 negate_imag: bool) -> None:
        super().__init__()
        self.spans = list(spans)
        self.n_filters, self.factor, self.hop_length = n_filters, factor, hop_length
        self.n_octaves, self.n_bins, self.pad_mode = n_octaves, n_bins, pad_mode
        self.gain = float(gain)
        self.negate_imag = negate_imag
        self.divisor = 1.0
        # (1, 1, taps) filters, or (0, 1, 1) when unused (torch.export.save cannot store an
        # empty tensor of shape (1, 1, 0))
        for name, taps in (("lowpass", lowpass), ("early", early)):
            fir = (torch.from_numpy(np.array(taps, dtype=np.float32)).reshape(1, 1, -1)
                   if len(taps) else torch.zeros(0, 1, 1))
            self.register_buffer(name, fir, persistent=False)
        cos = sin = torch.zeros(0, 1, 1)
        if fourier is not None:
            cos = torch.from_numpy(np.asarray(fourier[0], dtype=np.float32)).unsqueeze(1)
            sin = torch.from_numpy(np.asarray(fourier[1], dtype=np.float32)).unsqueeze(1)
            self.divisor = float(self.spans[0])
        self.register_buffer("fourier_cos", cos, persistent=False)
        self.register_buffer("fourier_sin", sin, persistent=False)

    def forward(self, x: Tensor, kernels_real: Tensor, kernels_imag: Tensor,
                lengths: Tensor) -> Tuple[Tensor, Tensor]:
        """``(real, imag)``, each ``(batch', n_bins, frames)``, of unpadded ``(batch',
        samples)`` audio (each octave is padded on its own)."""
        real, imag = multirate_correlate(
            x, kernels_real, kernels_imag, self.spans, self.n_filters, self.lowpass,
            self.early, self.factor, self.hop_length, self.n_octaves, self.n_bins,
            self.pad_mode, self.fourier_cos, self.fourier_sin, self.gain,
        )
        if self.negate_imag:
            imag = -imag
        return real, imag

    def min_input_factor(self) -> int:
        """How much longer than one frame span the shortest input must be: the lowest
        octave's decimation, ``2 ** n_octaves * factor``."""
        return 2 ** self.n_octaves * max(1, self.factor)


def multirate_path(
    backend: str, freqs: np.ndarray, kernels: np.ndarray, lengths: np.ndarray, sr: float,
    hop_length: int, center: bool, pad_mode: str, fmin: float, bins_per_octave: int,
    filter_scale: float, gamma: float, window: filters.WindowSpec, norm: float | None,
    earlydownsample: bool, kernel_sr: float | None,
) -> tuple[Multirate, np.ndarray, np.ndarray]:
    """The multirate path of a ``VariableQ`` (``backend`` ``'multirate'``, or nnAudio's
    ``'stft_product'`` / ``'stft_product_multirate'`` forms of ``CQT1992`` / ``CQT2010``).

    ``kernels``, ``lengths``: the transform's full-rate bank (``'stft_product'`` uses it);
    ``kernel_sr``: the rate the octave banks are designed at (None: the true one).

    Returns
    -------
    (path, kernels, lengths): the path, the kernels the transform stores (the octave banks or
    their spectra, ``(n, span)``) and the lengths of its ``'librosa'`` scaling.
    """
    if not center:
        raise ParameterError(f"backend={backend!r} needs center=True")
    n_bins = freqs.size
    early = np.zeros(0, dtype=np.float32)
    lowpass = np.zeros(0, dtype=np.float32)
    if backend == "stft_product":  # nnAudio's CQT1992: one full-rate bank
        spans, n_filters, factor = [kernels.shape[1]], n_bins, 1
        hop, n_octaves = hop_length, 1
    else:
        layout = filters.multirate_layout(
            sr, hop_length, fmin, n_bins, bins_per_octave, filter_scale, earlydownsample,
        )
        bank = filters.multirate_bank(layout, fmin, n_bins, bins_per_octave, filter_scale,
                                      gamma, window, norm, kernel_sr)
        kernels, lengths, spans = bank.kernels, bank.lengths, bank.spans
        n_filters, factor = bank.n_filters, bank.layout.factor
        hop, n_octaves = bank.layout.hop_length, bank.layout.n_octaves
        lowpass = bank.lowpass
        if factor > 1:
            early = bank.early
        if kernel_sr is not None and factor > 1:
            warnings.warn(
                f"nnAudio2's VQT downsamples this input by {factor} first but designs its "
                f"kernels at the original rate, so every bin responds {factor} times "
                "above its labelled frequency; reproduced for nnAudio2 compatibility. "
                "Pass earlydownsample=False or backend='auto' for correctly tuned bins",
                UserWarning,
                stacklevel=5,
            )
    fourier = None
    gain = float(factor)
    if backend != "multirate":  # nnAudio's STFT x kernel spectra (CQT1992, CQT2010)
        n = spans[0]
        fourier = filters.fourier_kernels(np.arange(n // 2 + 1.0), n, n, np.ones(n),
                                          np.float32)
        kernels = filters.spectral_kernels(kernels)
        gain = 1.0  # nnAudio's CQT2010 does not rescale by the early factor
    path = Multirate(spans, n_filters, factor, hop, n_octaves, n_bins, pad_mode, lowpass,
                     early, gain, fourier, backend == "stft_product")
    return path, kernels, lengths
