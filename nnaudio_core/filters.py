"""What the filter banks are: windows, Fourier kernels, mel, DCT, constant-/variable-Q,
gammatone, CFP, multirate and Kaldi banks, and the FFT path's sparse kernel spectra.

The rule (asteroid-filterbanks' split): every kernel or filter bank a transform uses is built
here, in plain numpy (float64 for accuracy), torch-free; the modules under
:mod:`nnaudio_core.features` only choose a bank, cast it to float32 tensors once in
``__init__``, and apply it. So this module is the one place to read (and test against
librosa, scipy or nnAudio) what a transform's kernels are, and ``tests/core/test_layout.py``
checks that no transform module builds an array of its own. Frequencies are in Hz, lengths
in samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from nnaudio_core.errors import ParameterError

WindowSpec = str | tuple | Sequence[float] | np.ndarray

FREQ_SCALES = ("no", "linear", "log", "log2")


#: Cosine-sum coefficients of the common windows (scipy.signal's definitions).
_COSINE_WINDOWS = {
    "hann": (0.5, 0.5),
    "hanning": (0.5, 0.5),
    "hamming": (0.54, 0.46),
    "blackman": (0.42, 0.50, 0.08),
    "boxcar": (1.0,),
    "rect": (1.0,),
    "rectangular": (1.0,),
    "ones": (1.0,),
}


def named_window(window: str | tuple, length: int, fftbins: bool = True) -> np.ndarray:
    """``scipy.signal.get_window(window, length, fftbins)``. The common cosine windows are
    computed here (equal to scipy's to float64 round-off); ``scipy.signal``, which costs
    ~0.7 s to import, is imported only for the others."""
    coeffs = _COSINE_WINDOWS.get(window) if isinstance(window, str) else None
    if coeffs is None or length < 1:
        from scipy.signal import get_window

        return get_window(window, length, fftbins=fftbins)
    if length == 1:
        return np.ones(1)
    m = length + 1 if fftbins else length  # periodic: one more point, then drop it
    phase = 2.0 * np.pi * np.arange(m) / (m - 1)
    win = np.zeros(m)
    for k, a in enumerate(coeffs):
        win += (-1) ** k * a * np.cos(k * phase)
    return win[:length]


def pad_center(data: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad a 1-D array on both sides to ``size`` (extra sample on the right).

    Parameters
    ----------
    data : np.ndarray, shape (n,)
    size : int, >= n

    Returns
    -------
    np.ndarray, shape (size,)
    """
    n = data.shape[-1]
    if n > size:
        raise ParameterError(
            f"cannot pad a window of length {n} to n_fft={size}: need {n} <= n_fft"
        )
    left = (size - n) // 2
    return np.pad(data, (left, size - n - left))


def window_spec(window: WindowSpec) -> WindowSpec:
    """Normalise a window spec: a JSON round trip turns ``("kaiser", 8.0)`` into a list."""
    if isinstance(window, list) and window and isinstance(window[0], str):
        return tuple(window)
    return window


def get_window(window: WindowSpec, win_length: int, n_fft: int) -> np.ndarray:
    """A periodic analysis window of ``win_length`` samples, zero-padded (centred) to ``n_fft``.

    Parameters
    ----------
    window : str, tuple or array
        Any window name or ``(name, param)`` tuple that ``scipy.signal.get_window`` knows
        (e.g. ``'hann'``, ``('kaiser', 8.0)``), or the window samples themselves.
    win_length : int
        Window length in samples, ``1 <= win_length <= n_fft``.
    n_fft : int
        Length of the returned array.

    Returns
    -------
    np.ndarray, shape (n_fft,), float64
        Same as librosa's ``pad_center(get_window(window, win_length, fftbins=True), n_fft)``.
    """
    if not 1 <= win_length <= n_fft:
        raise ParameterError(f"win_length={win_length} must be between 1 and n_fft={n_fft}")
    window = window_spec(window)
    if isinstance(window, str | tuple):
        try:
            win = named_window(window, win_length, fftbins=True)
        except (ValueError, TypeError) as exc:
            raise ParameterError(f"unknown window {window!r}: {exc}") from None
    else:
        win = np.asarray(window, dtype=np.float64)
        if win.ndim != 1 or win.shape[0] != win_length:
            raise ParameterError(
                f"a window given as samples must have shape ({win_length},), got {win.shape}"
            )
    return pad_center(np.asarray(win, dtype=np.float64), n_fft)


def stft_frequencies(
    n_fft: int,
    sr: float,
    freq_bins: int,
    freq_scale: str = "no",
    fmin: float = 50.0,
    fmax: float = 6000.0,
) -> np.ndarray:
    """Centre frequency (Hz) of every STFT bin, nnAudio's grids.

    ``'no'``: the FFT grid ``k * sr / n_fft`` for ``k < freq_bins``.
    ``'linear'``: ``fmin + (fmax - fmin) * k / freq_bins``.
    ``'log'`` and ``'log2'`` (the same geometric grid, two names kept for nnAudio):
    ``fmin * (fmax / fmin) ** (k / freq_bins)``.

    Returns
    -------
    np.ndarray, shape (freq_bins,), float64, Hz
    """
    if freq_scale not in FREQ_SCALES:
        raise ParameterError(f"freq_scale={freq_scale!r} is not one of {', '.join(FREQ_SCALES)}")
    k = np.arange(freq_bins, dtype=np.float64)
    if freq_scale == "no":
        return k * sr / n_fft
    if not 0 < fmin < fmax:
        raise ParameterError(f"freq_scale={freq_scale!r} needs 0 < fmin < fmax, got {fmin}, {fmax}")
    if freq_scale == "linear":
        return fmin + (fmax - fmin) * k / freq_bins
    return fmin * (fmax / fmin) ** (k / freq_bins)


#: elements of the float64 phase block :func:`fourier_kernels` computes at a time (32 MiB)
_PHASE_BLOCK = 1 << 22


def fourier_kernels(
    frequencies: np.ndarray,
    n_fft: int,
    sr: float,
    window: np.ndarray,
    dtype: type[np.floating] = np.float64,
) -> tuple[np.ndarray, np.ndarray]:
    """Windowed cosine and sine analysis kernels at arbitrary frequencies.

    ``real = conv(x, cos_kernel)`` and ``imag = -conv(x, sin_kernel)`` reproduce the DFT
    (``e^{-i 2 pi f n / sr}`` convention, as numpy and librosa) of each windowed frame.

    Parameters
    ----------
    frequencies : np.ndarray, shape (freq_bins,), Hz
    n_fft : int
    sr : float, Hz
    window : np.ndarray, shape (n_fft,)
    dtype : numpy float type of the result
        Computed in float64 a block of rows at a time and rounded once to ``dtype``, so
        ``np.float32`` gives the float64 kernels' float32 rounding at half their memory
        and none of their temporaries (``n_fft = 32768``: 4.3 GB instead of ~17 GB peak).

    Returns
    -------
    (cos_kernel, sin_kernel) : two np.ndarray of shape (freq_bins, n_fft), ``dtype``
    """
    frequencies = np.asarray(frequencies, dtype=np.float64)
    n = np.arange(n_fft, dtype=np.float64)
    cos_k = np.empty((frequencies.size, n_fft), dtype=dtype)
    sin_k = np.empty_like(cos_k)
    rows = max(1, _PHASE_BLOCK // max(n_fft, 1))
    for r0 in range(0, frequencies.size, rows):
        phase = 2.0 * np.pi * np.outer(frequencies[r0 : r0 + rows], n) / sr
        cos_k[r0 : r0 + rows] = np.cos(phase) * window
        sin_k[r0 : r0 + rows] = np.sin(phase) * window
    return cos_k, sin_k


def inverse_fourier_kernels(n_fft: int, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Windowed synthesis kernels of the one-sided inverse real DFT.

    For one frame ``X`` of ``n_fft // 2 + 1`` bins,
    ``window * irfft(X) == Re(X) @ cos_kernel - Im(X) @ sin_kernel``.

    Returns
    -------
    (cos_kernel, sin_kernel) : two np.ndarray of shape (n_fft // 2 + 1, n_fft), float64
    """
    n_bins = n_fft // 2 + 1
    k = np.arange(n_bins, dtype=np.float64)
    weight = np.full(n_bins, 2.0)
    weight[0] = 1.0
    if n_fft % 2 == 0:
        weight[-1] = 1.0
    phase = 2.0 * np.pi * np.outer(k, np.arange(n_fft)) / n_fft
    scale = (weight / n_fft)[:, None] * window[None, :]
    return np.cos(phase) * scale, np.sin(phase) * scale


def hz_to_mel(frequencies: np.ndarray | float, htk: bool = False) -> np.ndarray:
    """Hz to mels: HTK formula or Slaney's (linear below 1 kHz, log above), as librosa."""
    f = np.asarray(frequencies, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    mels = f / f_sp
    above = f >= min_log_hz
    return np.where(
        above, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep, mels
    )


def mel_to_hz(mels: np.ndarray | float, htk: bool = False) -> np.ndarray:
    """Mels to Hz, the inverse of :func:`hz_to_mel`."""
    m = np.asarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_frequencies(n_mels: int, fmin: float, fmax: float, htk: bool = False) -> np.ndarray:
    """``n_mels`` frequencies (Hz) evenly spaced on the mel scale from fmin to fmax inclusive."""
    mels = np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels)
    return mel_to_hz(mels, htk)


def mel_filterbank(
    sr: float,
    n_fft: int,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | float | None = "slaney",
) -> np.ndarray:
    """Triangular mel filter bank, numerically the same as ``librosa.filters.mel``.

    Parameters
    ----------
    sr : float, Hz
    n_fft : int
    n_mels : int
    fmin, fmax : float, Hz (``fmax=None`` means ``sr / 2``)
    htk : bool
        HTK mel formula instead of Slaney's.
    norm : None, 'slaney', 1 or a float
        ``'slaney'`` divides each triangle by its width in Hz (constant energy per band).
        ``1`` also means Slaney's area normalisation (nnAudio's convention, kept so that
        ``MelSpectrogram(norm=1)`` ports unchanged); any other number ``p`` scales each
        filter to unit ``p``-norm, as librosa does.

    Returns
    -------
    np.ndarray, shape (n_mels, n_fft // 2 + 1), float64
    """
    if fmax is None:
        fmax = sr / 2.0
    if not 0 <= fmin < fmax:
        raise ParameterError(f"mel filters need 0 <= fmin < fmax, got fmin={fmin}, fmax={fmax}")
    if n_mels < 1:
        raise ParameterError(f"n_mels={n_mels} must be >= 1")
    fftfreqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = mel_frequencies(n_mels + 2, fmin, fmax, htk)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney" or (not isinstance(norm, str) and norm == 1):
        weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    elif norm is not None:
        if isinstance(norm, str):
            raise ParameterError(f"norm={norm!r} must be None, 'slaney' or a number")
        length = np.linalg.norm(weights, ord=float(norm), axis=-1, keepdims=True)
        weights = weights / np.where(length < np.finfo(np.float64).tiny, 1.0, length)
    return weights


def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II matrix (``scipy.fft.dct(..., type=2, norm='ortho')`` as a matmul).

    Returns
    -------
    np.ndarray, shape (n_out, n_in), float64; ``y = D @ x`` for ``x`` of shape (n_in, ...).
    """
    if not 1 <= n_out <= n_in:
        raise ParameterError(f"need 1 <= n_mfcc <= n_mels, got n_mfcc={n_out}, n_mels={n_in}")
    k = np.arange(n_out, dtype=np.float64)[:, None]
    n = np.arange(n_in, dtype=np.float64)[None, :]
    basis = np.cos(np.pi * k * (2.0 * n + 1.0) / (2.0 * n_in)) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return basis


def cqt_frequencies(n_bins: int, fmin: float, bins_per_octave: int = 12) -> np.ndarray:
    """Geometric centre frequencies ``fmin * 2 ** (k / bins_per_octave)``, shape (n_bins,), Hz."""
    return fmin * 2.0 ** (np.arange(n_bins, dtype=np.float64) / bins_per_octave)


BANDWIDTH_RULES = ("nnaudio", "librosa")


def check_bandwidth(bandwidth: str) -> None:
    """Raise :class:`ParameterError` unless ``bandwidth`` is one of :data:`BANDWIDTH_RULES`."""
    if bandwidth not in BANDWIDTH_RULES:
        raise ParameterError(
            f"bandwidth={bandwidth!r} is not one of {', '.join(map(repr, BANDWIDTH_RULES))}"
        )


def _local_bins_per_octave(frequencies: np.ndarray) -> np.ndarray:
    logf = np.log2(frequencies)
    if logf.size < 2:
        raise ParameterError("a constant-Q bank needs at least 2 bins")
    bpo = np.empty_like(logf)
    bpo[0] = 1.0 / (logf[1] - logf[0])
    bpo[-1] = 1.0 / (logf[-1] - logf[-2])
    bpo[1:-1] = 2.0 / (logf[2:] - logf[:-2])
    return bpo


def relative_bandwidth(
    frequencies: np.ndarray, bandwidth: str = "librosa", bins_per_octave: float | None = None
) -> np.ndarray:
    """Relative bandwidth ``alpha`` of each filter of a log-spaced bank (``Q = 1 / alpha``).

    ``bandwidth='librosa'``: ``alpha = (2 ** (2 / b) - 1) / (2 ** (2 / b) + 1)`` with ``b``
    the local bins per octave (centred difference of ``log2(f)``, one-sided at the ends).
    ``bandwidth='nnaudio'``: ``alpha = 2 ** (1 / b) - 1`` (nnAudio's ``Q = 1 / (2^(1/b) - 1)``,
    about 2.4% longer filters at 12 bins per octave). ``bins_per_octave`` given: ``b`` is that
    number for every bin (bit-for-bit nnAudio's arithmetic). Constant for a CQT grid.
    """
    check_bandwidth(bandwidth)
    if bins_per_octave is None:
        bpo = _local_bins_per_octave(frequencies)
    else:
        bpo = np.full(np.shape(frequencies), float(bins_per_octave))
    if bandwidth == "nnaudio":
        return 2.0 ** (1.0 / bpo) - 1.0
    r = 2.0 ** (2.0 / bpo)
    return (r - 1.0) / (r + 1.0)


def wavelet_lengths(
    frequencies: np.ndarray,
    sr: float,
    filter_scale: float = 1.0,
    gamma: float = 0.0,
    bandwidth: str = "librosa",
    bins_per_octave: float | None = None,
) -> np.ndarray:
    """Filter length (samples) of each variable-Q filter.

    ``Q = filter_scale / alpha`` (``alpha`` from :func:`relative_bandwidth`) and
    ``length = Q * sr / (f + gamma / alpha)``: the CQT for ``gamma = 0``, a variable-Q
    transform (wider bands at low frequencies) for ``gamma > 0``. This is the one formula
    behind both CQT and VQT kernels. ``'librosa'`` lengths are fractional (as librosa's);
    ``'nnaudio'`` lengths are rounded up to whole samples, as nnAudio's.
    """
    if filter_scale <= 0:
        raise ParameterError(f"filter_scale={filter_scale} must be > 0")
    if gamma < 0:
        raise ParameterError(f"gamma={gamma} must be >= 0")
    alpha = relative_bandwidth(frequencies, bandwidth, bins_per_octave)
    if bandwidth == "nnaudio":
        q = float(filter_scale) / alpha
        return np.ceil(q * sr / (frequencies + gamma / alpha))
    return (filter_scale / alpha) * sr / (frequencies + gamma / alpha)


def variable_q_kernels(
    frequencies: np.ndarray,
    sr: float,
    filter_scale: float = 1.0,
    gamma: float = 0.0,
    window: WindowSpec = "hann",
    norm: float | None = 1,
    bandwidth: str = "librosa",
    bins_per_octave: float | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Time-domain constant-/variable-Q kernels in correlation form.

    The output of a kernel bank is ``out[t] = sum_m x[t * hop - n_fft // 2 + m] * kernel[m]``.

    * ``bandwidth='librosa'``: each filter is librosa's wavelet (``window * exp(2j pi f n /
      sr)`` over ``ceil(length)`` samples, normalised to unit ``norm``-norm), stored
      time-reversed so that the output equals ``librosa.vqt``'s response before its
      ``sqrt(length)`` scaling.
    * ``bandwidth='nnaudio'``: nnAudio's kernels (``create_cqt_kernels``): integer lengths,
      ``window * exp(2j pi f n / sr) / length`` for ``n`` in ``[-(l // 2), l // 2)`` placed
      at ``n_fft // 2 + n``, correlated with the conjugate; ``n_fft`` is nnAudio's span
      (the next power of two >= the longest filter).

    Returns
    -------
    kernels : np.ndarray, shape (n_bins, n_fft), complex128
    lengths : np.ndarray, shape (n_bins,), filter lengths in samples
    n_fft : int, the kernel span (a power of two holding the longest filter)
    """
    if np.any(frequencies <= 0):
        raise ParameterError("constant-Q frequencies must be > 0")
    lengths = wavelet_lengths(frequencies, sr, filter_scale, gamma, bandwidth, bins_per_octave)
    window = window_spec(window)
    if bandwidth == "nnaudio":
        n_fft = int(2 ** np.ceil(np.log2(int(lengths.max()))))
    else:
        n_fft = int(2 ** np.ceil(np.log2(np.ceil(lengths.max()) + 2)))
    kernels = np.zeros((frequencies.size, n_fft), dtype=np.complex128)
    centre = n_fft // 2
    for k, (length, freq) in enumerate(zip(lengths, frequencies, strict=True)):
        n = np.arange(-length // 2, length // 2, dtype=np.float64)
        size = n.size
        win = (
            named_window(window, size, fftbins=True)
            if isinstance(window, str | tuple)
            else np.interp(np.linspace(0, 1, size), np.linspace(0, 1, len(window)), window)
        )
        sig = win * np.exp(2j * np.pi * freq * n / sr)
        if bandwidth == "nnaudio":
            sig = sig / length
            if norm:
                sig = sig / np.linalg.norm(sig, ord=norm)
            first = centre + int(n[0])
            kernels[k, first : first + size] = np.conj(sig)
            continue
        if norm:
            sig = sig / np.linalg.norm(sig, ord=norm)
        # reversed so that correlation with the kernel is librosa's convolution
        offset = (size + 1) // 2
        kernels[k, centre + offset - size + 1 : centre + offset + 1] = sig[::-1]
    return kernels, lengths, n_fft


def window_bandwidth(window: WindowSpec, n: int = 1 << 13) -> float:
    """Equivalent noise bandwidth of a window in bins: ``n * sum(w^2) / sum(w)^2`` (Hann: 1.5)."""
    window = window_spec(window)
    if not isinstance(window, str | tuple):
        window = np.asarray(window, dtype=np.float64)
        return float(window.size * np.sum(window**2) / np.sum(window) ** 2)
    w = named_window(window, n, fftbins=True)
    return float(n * np.sum(w**2) / np.sum(w) ** 2)


def sparse_spectral_kernels(
    kernels: np.ndarray,
    hop_length: int,
    segment_frames: int,
    rel_tol: float = 1e-5,
    sparsity: float = 0.0,
    m: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Kernels as sparse spectra for correlation by FFT over segments, decimated by ``hop``.

    A segment of ``n_seg = hop_length * m`` samples is correlated with every kernel at once in
    the frequency domain; sampling the result every ``hop_length`` samples folds the spectrum
    modulo ``m`` bins, so each bin's frames are an ``m``-point inverse FFT. Only spectral
    values above ``rel_tol`` times each kernel's peak are kept (or, with ``sparsity > 0``,
    all but the smallest values adding up to that fraction of the L1 mass, like librosa);
    the negative-frequency tail of wide low kernels is kept too.

    Parameters
    ----------
    kernels : np.ndarray, shape (n_bins, n_fft), complex
    hop_length : int
    segment_frames : int
        Frames per segment; ``m`` is the smallest power of two with
        ``hop_length * m >= n_fft + hop_length * (segment_frames - 1)``.
    rel_tol : float
    m : int or None
        Use this folded length instead (``hop_length * m`` must hold the kernel span).

    Returns
    -------
    (entries sorted by ``(dst, src)``, no duplicates)
    src : np.ndarray (nnz,), int64, row to read: rfft bin ``f`` of the segment for
        ``src < n_seg // 2 + 1``, else ``conj`` of rfft bin ``src - (n_seg // 2 + 1)``, which is
        the real input's spectrum at a negative frequency
    dst : np.ndarray (nnz,), int64, ``bin * m + (src mod m)``: where it folds to
    values : np.ndarray (nnz, 2), float64, real and imaginary parts of the kernel spectrum
    m : int, folded spectrum length (segment length ``hop_length * m``)
    """
    n_bins, n_fft = kernels.shape
    if m is None:
        need = n_fft + hop_length * (max(1, segment_frames) - 1)
        m = 1 << int(np.ceil(np.log2(max(2, -(-need // hop_length)))))
    elif hop_length * m < n_fft:
        raise ParameterError(f"m={m} segments of hop {hop_length} cannot hold span {n_fft}")
    n_seg = hop_length * m
    src, dst, vals = [], [], []
    for k in range(n_bins):
        # G(f) = sum_n kernel[n] exp(+2 pi i f n / n_seg): correlation's spectrum
        spec = np.fft.ifft(kernels[k], n=n_seg) * n_seg
        mag = np.abs(spec)
        if sparsity > 0:  # drop the smallest values that add up to `sparsity` of the L1 mass
            order = np.sort(mag)
            cut = order[np.searchsorted(np.cumsum(order), sparsity * order.sum())]
            keep = mag >= cut
        else:
            keep = mag >= rel_tol * mag.max()
        half = n_seg // 2
        for lo, hi in ((0, half + 1), (half + 1, n_seg)):
            kept = np.nonzero(keep[lo:hi])[0]
            if kept.size == 0:
                continue
            f = np.arange(lo + kept[0], lo + kept[-1] + 1)
            # negative frequency f reads conj(rfft[n_seg - f]), stored after the rfft rows
            src.append(f if lo == 0 else (half + 1) + (n_seg - f))
            dst.append(k * m + f % m)
            vals.append(spec[f])
    values = np.concatenate(vals)
    src_a = np.concatenate(src).astype(np.int64)
    dst_a = np.concatenate(dst).astype(np.int64)
    # sorted by (dst, src) and unique: a COO matrix built from these is already coalesced
    order = np.lexsort((src_a, dst_a))
    values = values[order]
    return (
        src_a[order],
        dst_a[order],
        np.stack([values.real, values.imag], axis=-1),
        m,
    )


def kernel_supports(kernels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last nonzero column of every kernel row, shape (n_bins,) each."""
    nz = np.abs(kernels) > 0
    first = np.argmax(nz, axis=1)
    last = kernels.shape[1] - np.argmax(nz[:, ::-1], axis=1)
    return first, last


def support_groups(
    first: np.ndarray, last: np.ndarray, lengths: np.ndarray, start_bin: int = 0
) -> list[tuple[int, int, int, int]]:
    """Split bins ``start_bin:`` into runs of similar filter length, each cut to the common
    support of its kernels.

    Bins whose ``lengths`` round up to the same power of two form one group (a group's
    kernels are then of similar support, so little of the cut is zeros).

    Parameters
    ----------
    first, last : np.ndarray, shape (n_bins,), int, first and one-past-last nonzero column of
        each kernel row (:func:`kernel_supports`)
    lengths : np.ndarray, shape (n_bins,), the filter lengths in samples

    Returns
    -------
    list of ``(bin0, bin1, a, z)``: bins ``bin0:bin1`` are zero outside columns ``a:z``
    """
    n_bins = len(lengths)
    key = np.ceil(np.log2(np.maximum(np.asarray(lengths, dtype=np.float64), 1.0))).astype(int)
    groups = []
    b0 = start_bin
    for b in range(start_bin + 1, n_bins + 1):
        if b == n_bins or key[b] != key[b0]:
            groups.append((b0, b, int(np.min(first[b0:b])), int(np.max(last[b0:b]))))
            b0 = b
    return groups


def direct_groups(
    kernels: np.ndarray, lengths: np.ndarray, start_bin: int
) -> list[tuple[int, int, int, np.ndarray]]:
    """Split bins ``start_bin:`` (short kernels) into groups of similar length for direct
    (time-domain, dense matrix product) correlation (:func:`support_groups`), so a group
    costs about ``2 * span`` real multiply-adds per bin and frame.

    Returns
    -------
    list of ``(bin0, bin1, offset, matrix)``: bins ``bin0:bin1``, their support starting at
    column ``offset`` of the kernel span, and ``matrix`` of shape (span, 2 * n) float64 holding
    ``[Re(K).T | Im(K).T]``.
    """
    if start_bin >= kernels.shape[0]:
        return []
    first, last = kernel_supports(kernels)
    out = []
    for b0, b1, a, z in support_groups(first, last, lengths, start_bin):
        sub = kernels[b0:b1, a:z]
        out.append((b0, b1, a, np.concatenate([sub.real.T, sub.imag.T], axis=1)))
    return out


# ------------------------------------------------------------------------ gammatone ----

#: Glasberg & Moore's ERB parameters as used by Slaney's auditory toolbox:
#: ``ERB(f) = f / EAR_Q + MIN_BW`` (Hz).
EAR_Q = 9.26449
MIN_BW = 24.7


def erb_space(n_bins: int, fmin: float, fmax: float) -> np.ndarray:
    """Centre frequencies (Hz, ascending) equally spaced on the ERB-rate scale.

    ``f_k = (fmin + c) * ((fmax + c) / (fmin + c)) ** (k / n_bins) - c`` with
    ``c = EAR_Q * MIN_BW`` for ``k = 0 .. n_bins - 1``: the lowest centre is ``fmin``, the
    highest one step below ``fmax`` (Slaney's ``ERBSpace`` read from the bottom).

    Returns
    -------
    np.ndarray, shape (n_bins,), float64, Hz
    """
    c = EAR_Q * MIN_BW
    k = np.arange(n_bins, dtype=np.float64)
    return (fmin + c) * ((fmax + c) / (fmin + c)) ** (k / n_bins) - c


def _gammatone_response(z: np.ndarray, cf: np.ndarray, sr: float, width: float) -> np.ndarray:
    """``|H(z)|`` of Slaney's 4th-order gammatone (four biquads: one conjugate pole pair of
    multiplicity 4 and four real zeros) for every centre in ``cf`` (rows) at every point
    ``z`` on the unit circle (columns), unnormalised."""
    bw = 1.019 * 2.0 * np.pi * width * (cf / EAR_Q + MIN_BW)  # rad/s
    r = np.exp(-bw / sr)[:, None]
    theta = (2.0 * np.pi * cf / sr)[:, None]
    pole = r * np.exp(1j * theta)
    mag = np.abs((z - pole) * (z - np.conj(pole))) ** -4.0
    for s in (np.sqrt(3.0 + 2.0**1.5), np.sqrt(3.0 - 2.0**1.5)):
        for sign in (1.0, -1.0):
            mag = mag * np.abs(z - r * (np.cos(theta) + sign * s * np.sin(theta)))
    return mag


def gammatone_filterbank(
    sr: float,
    n_fft: int,
    n_bins: int = 64,
    fmin: float = 0.0,
    fmax: float | None = None,
    width: float = 1.0,
) -> np.ndarray:
    """Gammatone weights that map FFT bins to ERB-spaced bands (nnAudio's ``get_gammatone``,
    after Ellis' ``fft2gammatonemx``).

    Band ``k`` is the magnitude response of a 4th-order gammatone filter centred at
    ``erb_space(n_bins, fmin, fmax)[k]`` with bandwidth ``1.019 * width * ERB(f_k)``,
    normalised to 1 at its centre frequency and scaled by ``1 / n_fft``.

    Parameters
    ----------
    sr : float, Hz
    n_fft : int
    n_bins : int
    fmin, fmax : float, Hz (``fmax=None`` means ``sr / 2``)
    width : float
        Bandwidth in ERBs.

    Returns
    -------
    np.ndarray, shape (n_bins, n_fft // 2 + 1), float64
    """
    if fmax is None:
        fmax = sr / 2.0
    if n_bins < 1:
        raise ParameterError(f"n_bins={n_bins} must be >= 1")
    if not 0 <= fmin < fmax:
        raise ParameterError(f"gammatone bands need 0 <= fmin < fmax, got {fmin}, {fmax}")
    cf = erb_space(n_bins, fmin, fmax)
    z = np.exp(2j * np.pi * np.arange(n_fft // 2 + 1) / n_fft)[None, :]
    at_centre = _gammatone_response(np.exp(2j * np.pi * cf / sr)[:, None], cf, sr, width)
    return _gammatone_response(z, cf, sr, width) / at_centre / n_fft


# ------------------------------------------------------------------------------ CFP ----


def blackmanharris(length: int) -> np.ndarray:
    """Symmetric Blackman-Harris window, ``scipy.signal.windows.blackmanharris(length)``."""
    from scipy.signal import windows

    return np.asarray(windows.blackmanharris(length), dtype=np.float64)


def cfp_frequencies(fc: float, tc: float, num_per_oct: int) -> np.ndarray:
    """The log-frequency grid of CFP: ``fc * 2 ** (i / num_per_oct)`` below ``1 / tc`` (Hz)."""
    count = int(np.ceil(np.log2((1.0 / tc) / fc)) * num_per_oct)
    grid = fc * 2.0 ** (np.arange(max(count, 0), dtype=np.float64) / num_per_oct)
    return grid[grid < 1.0 / tc]


def _triangles(
    centres: np.ndarray, axis_hz: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Rows ``1 .. len(centres) - 2`` are triangles rising from ``centres[i - 1]`` to 1 at
    ``centres[i]`` and falling to ``centres[i + 1]``, sampled at ``axis_hz`` but only at
    columns ``lo[i] <= j < hi[i]`` (strict inequalities: a column exactly on a corner gets
    0); row 0 stays zero. Shape (len(centres) - 1, len(axis_hz))."""
    out = np.zeros((centres.size - 1, axis_hz.size))
    cols = np.arange(axis_hz.size)
    for i in range(1, centres.size - 1):
        a, b, c = centres[i - 1], centres[i], centres[i + 1]
        f = axis_hz
        inside = (cols >= lo[i]) & (cols < hi[i])
        up = inside & (f > a) & (f < b)
        down = inside & (f > b) & (f < c)
        out[i, up] = (f[up] - a) / (b - a)
        out[i, down] = (c - f[down]) / (c - b)
    return out


def cfp_edge_mask(n: int, cutoff: int) -> np.ndarray:
    """The CFP's high-pass lifter / frequency mask: ``n`` ones (float32) with the first and
    last ``cutoff`` entries zeroed (none for ``cutoff = 0``)."""
    m = np.ones(n, dtype=np.float32)
    if cutoff > 0:
        m[:cutoff] = 0.0
        m[-cutoff:] = 0.0
    return m


def cfp_matrices(
    fs: float, fr: float, fc: float, tc: float, num_per_oct: int
) -> tuple[np.ndarray, np.ndarray]:
    """Spectrum-to-log-frequency and quefrency-to-log-frequency triangle banks of CFP,
    nnAudio's numerics (Su & Yang 2015, as in nnAudio's ``create_logfreq_matrix``).

    Row ``i`` is centred at ``cfp_frequencies(fc, tc, num_per_oct)[i]``; row 0 is all zero
    and the grid's last frequency has no row (as in nnAudio).

    * Spectrum: columns are the first ``round(1 / (tc * fr)) + 1`` FFT bins of an
      ``N = int(fs / fr)``-point FFT, placed at nnAudio's grid
      ``j * (fs / 2) / (N // 2 - 1)`` Hz (``linspace(0, fs / 2, N // 2)``, about
      ``1 / (N // 2)`` above the true ``j * fs / N``); only bins
      ``round(f_{i-1} / fr) .. round(f_{i+1} / fr)`` count, and a band narrower than one bin
      gets weight 1 at bin ``round(f_{i-1} / fr)``.
    * Quefrency: columns are lags ``j = 0 .. round(fs / fc)`` samples, at frequency
      ``fs / j``, for ``j`` from ``round(fs / f_{i+1})`` to ``round(fs / f_{i-1})``.

    Returns
    -------
    (spectral, quefrency) : np.ndarray, shapes (n_rows, round(1 / (tc fr)) + 1) and
        (n_rows, round(fs / fc) + 1), float64, with ``n_rows = len(grid) - 1``
    """
    centres = cfp_frequencies(fc, tc, num_per_oct)
    if centres.size < 3:
        raise ParameterError(
            f"fc={fc} and tc={tc} leave {centres.size} CFP bands at NumPerOct={num_per_oct}; "
            f"need at least 3 (raise NumPerOct or widen fc .. 1 / tc)"
        )
    n = int(fs / fr)
    high_freq = int(round((1.0 / tc) / fr) + 1)
    high_quef = int(round(fs / fc) + 1)
    f_hz = 0.5 * fs * np.arange(high_freq, dtype=np.float64) / (n // 2 - 1)
    lo = np.rint(np.concatenate([[0.0], centres[:-1]]) / fr).astype(int)
    hi = np.rint(np.concatenate([centres[1:], [0.0]]) / fr).astype(int) + 1
    spectral = _triangles(centres, f_hz, lo, hi)
    for i in range(1, centres.size - 1):
        if lo[i] >= hi[i] - 1:  # narrower than one bin
            spectral[i] = 0.0
            spectral[i, lo[i]] = 1.0
    lags = np.arange(high_quef, dtype=np.float64)
    with np.errstate(divide="ignore"):
        q_hz = fs / lags
    q_lo = np.rint(fs / np.concatenate([centres[1:], [np.inf]])).astype(int)
    q_hi = np.rint(fs / np.concatenate([[np.inf], centres[:-1]])).astype(int) + 1
    # row i reads lags round(fs / f_{i+1}) .. round(fs / f_{i-1})
    quefrency = _triangles(centres, q_hz, q_lo, q_hi)
    return spectral, quefrency


# --- multirate constant-Q (nnAudio2's CQT2010 / CQT2010v2 / VQT algorithm) ---------------

#: Taps of the anti-aliasing low-pass filters of the multirate CQT (nnAudio's choice).
LOWPASS_TAPS = 256
#: Relative transition half-width of the halving filter and of the early-downsampling filter.
HALVING_TRANSITION = 0.001
EARLY_TRANSITION = 0.03


def lowpass_fir(
    band_center: float, n_taps: int = LOWPASS_TAPS, transition: float = HALVING_TRANSITION
) -> np.ndarray:
    """Linear-phase FIR low-pass for downsampling (``scipy.signal.firwin2`` design).

    Gain 1 from 0 to ``band_center / (1 + transition)``, 0 from ``band_center * (1 +
    transition)`` to Nyquist, linear in between; frequencies are relative to the Nyquist
    frequency of the signal *before* downsampling (``band_center = 1 / factor`` for a
    downsampling by ``factor``). The design of nnAudio's ``create_lowpass_filter``.

    Returns
    -------
    np.ndarray, shape (n_taps,), float32 (the precision nnAudio stores it in)
    """
    if not 0 < band_center * (1 + transition) < 1:
        raise ParameterError(f"low-pass band edge {band_center} must be inside (0, 1)")
    from scipy.signal import firwin2

    edges = [0.0, band_center / (1 + transition), band_center * (1 + transition), 1.0]
    return firwin2(n_taps, edges, [1.0, 1.0, 0.0, 0.0]).astype(np.float32)


def early_downsample_count(
    nyquist: float, filter_cutoff: float, hop_length: int, n_octaves: int
) -> int:
    """How many times (``k``, factor ``2 ** k``) a multirate CQT may halve the input first.

    As librosa's and nnAudio's rule: as long as the top filter's cutoff stays below
    ~0.85 of the new Nyquist frequency, keeping one spare octave, and as long as the hop
    stays divisible by ``2 ** (n_octaves - 1)`` afterwards.
    """
    by_band = max(0, int(np.ceil(np.log2(0.85 * nyquist / filter_cutoff)) - 1) - 1)
    by_hop = max(0, int(np.floor(np.log2(hop_length))) - n_octaves + 1)
    return min(by_band, by_hop)


class MultirateLayout(NamedTuple):
    """Octave layout of a multirate CQT, see :func:`multirate_layout`."""

    n_octaves: int
    fmin_top: float
    fmax_top: float
    factor: int
    sr: float
    hop_length: int


def octaves_share_hop(layout: MultirateLayout) -> bool:
    """Whether every octave's hop is a whole number of samples: the (early-downsampled) hop
    is divisible by ``2 ** (n_octaves - 1)``."""
    step = 2 ** (layout.n_octaves - 1)
    return layout.hop_length >= step and layout.hop_length % step == 0


def multirate_layout(
    sr: float,
    hop_length: int,
    fmin: float,
    n_bins: int,
    bins_per_octave: int,
    filter_scale: float = 1.0,
    earlydownsample: bool = True,
) -> MultirateLayout:
    """Octaves, top-octave band and early downsampling of nnAudio's multirate CQT.

    The bins are computed ``bins_per_octave`` at a time from the top: one bank of
    ``min(bins_per_octave, n_bins)`` filters (the top octave, whose highest filter is the
    top bin) is applied to the input, then to the input halved ``1, 2, ...,
    n_octaves - 1`` times. With ``earlydownsample`` the input is first reduced by
    ``factor = 2 ** k`` (:func:`early_downsample_count`, cutoff of the top filter
    ``fmax_top * (1 + 0.75 / Q)``, Hann's bandwidth as nnAudio assumes for any window).

    Returns
    -------
    MultirateLayout with fields ``n_octaves``; ``fmin_top``, ``fmax_top`` (Hz, lowest and
    highest centre frequency of the top-octave bank); ``factor`` (early downsampling, 1 if
    none); ``sr`` and ``hop_length`` after early downsampling (the kernels' rate and the top
    octave's hop).
    """
    n_octaves = int(np.ceil(float(n_bins) / bins_per_octave))
    remainder = n_bins % bins_per_octave
    top_of_first = fmin * 2 ** (n_octaves - 1)
    steps = (bins_per_octave if remainder == 0 else remainder) - 1
    fmax_top = top_of_first * 2 ** (steps / bins_per_octave)
    fmin_top = fmax_top / 2 ** (1 - 1 / bins_per_octave)
    if fmax_top > sr / 2:
        raise ParameterError(
            f"the top bin ({fmax_top:.1f} Hz) is above the Nyquist frequency {sr / 2:.1f} Hz: "
            "lower n_bins or raise sr"
        )
    factor = 1
    if earlydownsample:
        q = float(filter_scale) / (2 ** (1 / bins_per_octave) - 1)
        cutoff = fmax_top * (1 + 0.5 * 1.5 / q)
        factor = 2 ** early_downsample_count(sr // 2, cutoff, hop_length, n_octaves)
    if factor > 1:
        sr = sr / float(factor)
        hop_length = hop_length // factor
    return MultirateLayout(n_octaves, fmin_top, fmax_top, factor, sr, hop_length)


def octave_kernels(
    layout: MultirateLayout,
    n_filters: int,
    bins_per_octave: int,
    filter_scale: float = 1.0,
    gamma: float = 0.0,
    window: WindowSpec = "hann",
    norm: float | None = 1,
    sr: float | None = None,
) -> tuple[np.ndarray, list[int]]:
    """The filter banks of a multirate constant-/variable-Q transform, one per octave.

    Octave ``i`` (0 = top) analyses the input downsampled by ``2 ** i`` (after the early
    downsampling of ``layout``) with ``n_filters`` nnAudio kernels (:func:`variable_q_kernels`,
    ``bandwidth='nnaudio'``) from ``layout.fmin_top / 2 ** i`` at ``sr / 2 ** i``.
    For ``gamma = 0`` every octave's bank is the same, so only one is returned.
    ``sr`` defaults to ``layout.sr``, the rate the top bank really runs at. (nnAudio2's
    ``VQT`` designs its banks at the original rate even after early downsampling by ``2 ** k``,
    which tunes every bin ``k`` octaves too high; passing the original ``sr`` reproduces it.)

    Returns
    -------
    kernels : np.ndarray, shape (n_banks, n_filters, span), complex128, correlation form;
        bank ``i`` is centred in the common ``span`` (the largest bank's power-of-two span)
    spans : list of int, the own span of each bank (its kernels sit in columns
        ``(span - spans[i]) // 2`` to ``(span + spans[i]) // 2``)
    """
    n_banks = layout.n_octaves if gamma > 0 else 1
    sr = layout.sr if sr is None else sr
    banks = []
    for i in range(n_banks):
        freqs = cqt_frequencies(n_filters, layout.fmin_top * 2.0**-i, bins_per_octave)
        kernels, _, n_fft = variable_q_kernels(
            freqs, sr / 2**i, filter_scale, gamma, window, norm, "nnaudio",
            bins_per_octave,
        )
        banks.append(kernels)
    spans = [bank.shape[1] for bank in banks]
    span = max(spans)
    out = np.zeros((n_banks, n_filters, span), dtype=np.complex128)
    for i, bank in enumerate(banks):
        left = (span - spans[i]) // 2
        out[i, :, left : left + spans[i]] = bank
    return out, spans


class MultirateBank(NamedTuple):
    """Everything the multirate CQT needs
    (:func:`nnaudio_core.features.multirate.multirate_correlate`), from its parameters.

    Attributes
    ----------
    layout : MultirateLayout
    kernels : np.ndarray, shape (n_banks * n_filters, span), complex128, correlation form
        (one bank for a CQT, one per octave for a VQT with ``gamma > 0``; top octave first)
    spans : list of int, each bank's own kernel span (samples)
    n_filters : int, filters per bank (``min(bins_per_octave, n_bins)``)
    lowpass : np.ndarray, shape (256,), float32, the halving filter
    early : np.ndarray, shape (256,) or (0,), float32, the early-downsampling filter
    lengths : np.ndarray, shape (n_bins,), float64, nnAudio's filter lengths at the early-
        downsampled rate, ``ceil(Q * sr / (f + gamma / alpha))``: the ``'librosa'``
        normalisation multiplies bin ``k`` by ``sqrt(lengths[k])``
    """

    layout: MultirateLayout
    kernels: np.ndarray
    spans: list[int]
    n_filters: int
    lowpass: np.ndarray
    early: np.ndarray
    lengths: np.ndarray


def multirate_bank(
    layout: MultirateLayout,
    fmin: float,
    n_bins: int,
    bins_per_octave: int,
    filter_scale: float = 1.0,
    gamma: float = 0.0,
    window: WindowSpec = "hann",
    norm: float | None = 1,
    kernel_sr: float | None = None,
) -> MultirateBank:
    """Build the filters of a multirate CQT/VQT with nnAudio2's parameters, on ``layout``
    (:func:`multirate_layout` of the same ``fmin``, ``n_bins``, ...).

    ``kernel_sr``: the rate the banks are designed at, default the early-downsampled rate
    (correct tuning); see :func:`octave_kernels` for nnAudio2's ``VQT``, which passes the
    original ``sr``.

    Raises :class:`ParameterError` where the octaves cannot share one frame grid: the hop
    (after early downsampling) must be divisible by ``2 ** (n_octaves - 1)``.
    """
    if not octaves_share_hop(layout):
        step = 2 ** (layout.n_octaves - 1)
        raise ParameterError(
            f"the multirate CQT halves the hop {layout.n_octaves - 1} times: hop_length="
            f"{layout.hop_length * layout.factor} must be a multiple of {step * layout.factor}"
            f" for {n_bins} bins at {bins_per_octave} per octave; use backend='auto' (exact) "
            "for this hop"
        )
    n_filters = min(bins_per_octave, n_bins)
    kernels, spans = octave_kernels(
        layout, n_filters, bins_per_octave, filter_scale, gamma, window, norm, kernel_sr
    )
    freqs = cqt_frequencies(n_bins, fmin, bins_per_octave)
    lengths = wavelet_lengths(
        freqs, layout.sr, filter_scale, gamma, "nnaudio", bins_per_octave
    )
    early = (
        lowpass_fir(1.0 / layout.factor, transition=EARLY_TRANSITION)
        if layout.factor > 1
        else np.zeros(0, dtype=np.float32)
    )
    return MultirateBank(
        layout=layout,
        kernels=kernels.reshape(-1, kernels.shape[-1]),
        spans=spans,
        n_filters=n_filters,
        lowpass=lowpass_fir(0.5),
        early=early,
        lengths=lengths,
    )


def spectral_kernels(kernels: np.ndarray) -> np.ndarray:
    """Positive-frequency spectra of correlation kernels, for nnAudio's STFT-product CQT.

    nnAudio's ``CQT1992``/``CQT2010`` multiply a rectangular-window STFT (``n_fft`` = the
    kernel span) by ``fft(basis)[:, :n_fft // 2 + 1]``, where ``basis = conj(kernels)`` in
    complex64; the FFT runs in single precision, as theirs.

    Parameters
    ----------
    kernels : np.ndarray, shape (n_bins, n_fft), complex, correlation form

    Returns
    -------
    np.ndarray, shape (n_bins, n_fft // 2 + 1), complex64
    """
    from scipy.fft import fft

    n_fft = kernels.shape[-1]
    return fft(np.conj(kernels).astype(np.complex64), axis=-1)[:, : n_fft // 2 + 1]


#: Frame windows of Kaldi's feature extraction (``--window-type``).
KALDI_WINDOWS = ("povey", "hanning", "hamming", "rectangular", "blackman", "sine")


def kaldi_window(window_type: str, length: int, blackman_coeff: float = 0.42) -> np.ndarray:
    """Kaldi's frame window (``feature-window.cc``), symmetric, length ``length``.

    ``a = 2 pi / (length - 1)``; hanning ``0.5 - 0.5 cos(a n)``, hamming ``0.54 - 0.46 cos(a n)``,
    povey the hanning window to the power 0.85, blackman
    ``c - 0.5 cos(a n) + (0.5 - c) cos(2 a n)``, sine ``sin(a n / 2)``, rectangular ones.

    Returns
    -------
    np.ndarray, shape (length,), float64
    """
    if window_type not in KALDI_WINDOWS:
        raise ParameterError(
            f"window_type={window_type!r} is not one of {', '.join(map(repr, KALDI_WINDOWS))}"
        )
    if length == 1:
        return np.ones(1)
    a = 2.0 * np.pi / (length - 1)
    n = np.arange(length, dtype=np.float64)
    if window_type == "hanning":
        return 0.5 - 0.5 * np.cos(a * n)
    if window_type == "hamming":
        return 0.54 - 0.46 * np.cos(a * n)
    if window_type == "povey":
        return (0.5 - 0.5 * np.cos(a * n)) ** 0.85
    if window_type == "blackman":
        return blackman_coeff - 0.5 * np.cos(a * n) + (0.5 - blackman_coeff) * np.cos(2 * a * n)
    if window_type == "sine":
        return np.sin(0.5 * a * n)
    return np.ones(length)


def mel_space_triangles(
    sr: float, n_fft: int, n_bins: int, fmin: float, fmax: float, zero_dc: bool = False,
    allow_empty: bool = False,
) -> np.ndarray:
    """Triangles evenly spaced on the HTK mel scale ``1127 ln(1 + f / 700)`` and linear in
    mels, unnormalised, over the ``n_fft // 2 + 1`` FFT bins: the filter bank of Kaldi
    (``mel-computations.cc``, which leaves out the Nyquist bin: it is never inside a band, as
    ``fmax <= sr / 2``) and of the VGGish front end (``zero_dc``: the DC bin gets weight 0).

    Band ``b`` rises from mel edge ``b`` to ``b + 1`` and falls to ``b + 2`` of ``n_bins + 2``
    edges evenly spaced from ``mel(fmin)`` to ``mel(fmax)``; a bin exactly on an edge gets 0.
    A band that holds no FFT bin is an error, as in Kaldi, unless ``allow_empty`` (the AST
    front end's 128 bands on a 512-point FFT have some).

    Returns
    -------
    np.ndarray, shape (n_bins, n_fft // 2 + 1), float64
    """
    if not 0 <= fmin < fmax <= sr / 2:
        raise ParameterError(
            f"mel bands need 0 <= low_freq < high_freq <= sr / 2 = {sr / 2:g} Hz, "
            f"got {fmin:g} and {fmax:g}"
        )
    if n_bins < 1:
        raise ParameterError(f"num_mel_bins={n_bins} must be >= 1")

    def mel(f: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)

    edges = np.linspace(mel(fmin), mel(fmax), n_bins + 2)
    bins = mel(np.arange(n_fft // 2 + 1) * (sr / n_fft))
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (bins[None, :] - left) / (centre - left)
    fall = (right - bins[None, :]) / (right - centre)
    weights = np.maximum(0.0, np.minimum(rise, fall))
    if zero_dc:
        weights[:, 0] = 0.0
    if not allow_empty and not (weights > 0).any(axis=1).all():
        empty = int(np.flatnonzero(~(weights > 0).any(axis=1))[0])
        raise ParameterError(
            f"mel band {empty} of {n_bins} contains no FFT bin: use fewer num_mel_bins, "
            f"a wider band or a longer FFT (n_fft={n_fft})"
        )
    return weights
