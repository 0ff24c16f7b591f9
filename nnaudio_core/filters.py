"""Windows, Fourier kernels, mel filter banks and DCT matrices.

Every transform builds its kernels here, once, in ``__init__``. All builders are plain
numpy (float64 for accuracy); the transforms cast the result to float32 tensors.
Frequencies are in Hz, lengths in samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.signal

from nnaudio_core.errors import ParameterError

WindowSpec = str | tuple | Sequence[float] | np.ndarray

FREQ_SCALES = ("no", "linear", "log", "log2")


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
    if isinstance(window, str | tuple):
        try:
            win = scipy.signal.get_window(window, win_length, fftbins=True)
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


def fourier_kernels(
    frequencies: np.ndarray, n_fft: int, sr: float, window: np.ndarray
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

    Returns
    -------
    (cos_kernel, sin_kernel) : two np.ndarray of shape (freq_bins, n_fft), float64
    """
    n = np.arange(n_fft, dtype=np.float64)
    phase = 2.0 * np.pi * np.outer(frequencies, n) / sr
    return np.cos(phase) * window, np.sin(phase) * window


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
