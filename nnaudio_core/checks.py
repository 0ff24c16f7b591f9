"""Parameter checks shared by every transform, run at the top of ``__init__``.

Each check raises :class:`~nnaudio_core.errors.ParameterError` with a one-line message
that names the parameter, its value and the valid range. The per-transform entry points
(:func:`check_stft`, :func:`check_mel`, :func:`check_mfcc`, :func:`check_variable_q`) only
look at the parameters, never build a kernel, and also refuse sizes whose kernels would not
fit in memory (:data:`MAX_N_FFT`, :data:`MAX_KERNEL_BYTES`), so a bad size fails at once
instead of after allocating gigabytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

from nnaudio_core.errors import ParameterError
from nnaudio_core.filters import named_window

#: Largest FFT size / window length accepted (2**20 samples: 23.8 s at 44.1 kHz).
MAX_N_FFT = 1 << 20
#: Largest memory (bytes) the kernels of one transform may need while being built.
MAX_KERNEL_BYTES = 4 << 30


def _fmt(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def check_int(
    name: str, value: Any, low: int = 1, high: int | None = None, whole_float: bool = False
) -> int:
    """An integer in ``[low, high]`` (``high=None``: no upper bound); returns it as ``int``.

    ``whole_float``: also accept a float with an integer value (``512.0``), for parameters
    the transforms convert with ``int()`` themselves.
    """
    if whole_float and isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ParameterError(f"{name}={_fmt(value)} must be an integer >= {low}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise ParameterError(f"{name}={value} must be {bound}")
    return int(value)


def _real(name: str, value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ParameterError(f"{name}={_fmt(value)} must be a finite number {what}")
    return float(value)


def check_positive(name: str, value: Any) -> float:
    """A finite number ``> 0``."""
    v = _real(name, value, "> 0")
    if v <= 0:
        raise ParameterError(f"{name}={value} must be > 0")
    return v


def check_nonnegative(name: str, value: Any) -> float:
    """A finite number ``>= 0``."""
    v = _real(name, value, ">= 0")
    if v < 0:
        raise ParameterError(f"{name}={value} must be >= 0")
    return v


def check_range(name: str, value: Any, low: float, high: float) -> float:
    """A finite number in ``[low, high)``."""
    v = _real(name, value, f"in [{low}, {high})")
    if not low <= v < high:
        raise ParameterError(f"{name}={value} must be in [{low}, {high})")
    return v


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    """One of ``choices`` (exact match)."""
    if value not in choices:
        raise ParameterError(f"{name}={value!r} is not one of {', '.join(map(repr, choices))}")


def check_sr(sr: Any) -> float:
    """A sample rate: a finite number of Hz ``> 0``."""
    return check_positive("sr", sr)


def check_band(
    fmin: Any,
    fmax: Any,
    sr: float,
    fmin_positive: bool = True,
    fmin_name: str = "fmin",
    fmax_name: str = "fmax",
) -> None:
    """``0 < fmin < fmax <= sr / 2`` (``0 <= fmin`` when not ``fmin_positive``).

    ``fmax=None`` stands for the Nyquist frequency and is always allowed.
    """
    fmin_v = check_positive(fmin_name, fmin) if fmin_positive else check_nonnegative(
        fmin_name, fmin
    )
    nyquist = sr / 2.0
    if fmax is None:
        if fmin_v >= nyquist:
            raise ParameterError(
                f"{fmin_name}={fmin} must be below the Nyquist frequency sr / 2 = {nyquist:g} Hz"
            )
        return
    fmax_v = check_positive(fmax_name, fmax)
    if fmax_v > nyquist:
        raise ParameterError(
            f"{fmax_name}={fmax} Hz is above the Nyquist frequency sr / 2 = {nyquist:g} Hz "
            f"(sr={sr:g}): it must be <= {nyquist:g}"
        )
    if fmin_v >= fmax_v:
        low = "0 <" if fmin_positive else "0 <="
        raise ParameterError(
            f"{fmin_name}={fmin} must be below {fmax_name}={fmax} "
            f"(need {low} {fmin_name} < {fmax_name} <= sr / 2 = {nyquist:g} Hz)"
        )


def check_window(window: Any) -> None:
    """A window that ``scipy.signal.get_window`` knows, or a 1-D array of finite samples.

    Lengths are checked where the window is built; this only rejects unknown names early.
    """
    if isinstance(window, list) and window and isinstance(window[0], str):
        window = tuple(window)  # a JSON round trip turns ("kaiser", 8.0) into a list
    if isinstance(window, str | tuple):
        try:
            named_window(window, 16, fftbins=True)
        except (ValueError, TypeError) as exc:
            raise ParameterError(f"window={window!r} is not a known window: {exc}") from None
        return
    try:
        arr = np.asarray(window, dtype=np.float64)
    except (ValueError, TypeError):
        raise ParameterError(
            f"window={window!r} must be a scipy window name, a (name, parameter) tuple or "
            f"an array of samples"
        ) from None
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ParameterError(
            f"window given as samples must be a non-empty 1-D array of finite values, "
            f"got shape {arr.shape}"
        )


def check_kernel_bytes(what: str, nbytes: float, hint: str) -> None:
    """Refuse kernels that would need more than :data:`MAX_KERNEL_BYTES` to build."""
    if nbytes > MAX_KERNEL_BYTES:
        raise ParameterError(
            f"{what} would need {nbytes / 2**30:.1f} GiB of kernels (limit "
            f"{MAX_KERNEL_BYTES / 2**30:.0f} GiB): {hint}"
        )


def check_frames(
    n_fft: Any, win_length: Any, hop_length: Any, name: str = "n_fft"
) -> tuple[int, int, int]:
    """FFT size, window length and hop of a short-time transform.

    ``1 <= n_fft <= MAX_N_FFT``, ``1 <= win_length <= n_fft``, ``hop_length >= 1``;
    ``None`` for ``win_length``/``hop_length`` means the default (``n_fft``,
    ``win_length // 4``).

    Returns
    -------
    (n_fft, win_length, hop_length) resolved
    """
    n = check_int(name, n_fft, 1, MAX_N_FFT)
    win = n if win_length is None else check_int("win_length", win_length, 1, whole_float=True)
    if win > n:
        raise ParameterError(f"win_length={win} must be between 1 and {name}={n}")
    hop = (
        max(1, win // 4)
        if hop_length is None
        else check_int("hop_length", hop_length, 1, whole_float=True)
    )
    return n, win, hop


def check_stft(
    n_fft: Any,
    win_length: Any,
    hop_length: Any,
    sr: Any,
    window: Any,
    freq_scale: str = "no",
    fmin: Any = None,
    fmax: Any = None,
    freq_bins: Any = None,
    kernel_path: bool = False,
) -> None:
    """Everything an STFT-like transform (STFT, iSTFT, Griffin_Lim) needs, before building.

    ``fmin``/``fmax`` are only checked when ``freq_scale`` is not ``'no'`` (they are unused
    otherwise). ``kernel_path``: the Fourier kernels (``freq_bins x n_fft`` cosines and sines)
    will be built, so their size is checked too.
    """
    sr_v = check_sr(sr)
    n, _, _ = check_frames(n_fft, win_length, hop_length)
    check_window(window)
    bins = (
        n // 2 + 1 if freq_bins is None else check_int("freq_bins", freq_bins, 1, whole_float=True)
    )
    if freq_scale not in ("no", None):
        check_band(fmin, fmax, sr_v)
    if kernel_path:
        # float64 phase, cosine and sine tables while building
        check_kernel_bytes(
            f"n_fft={n} with {bins} frequency bins on the kernel path",
            3.0 * 8 * bins * n,
            "lower n_fft or freq_bins, or use the FFT path (freq_scale='no', trainable=False)",
        )


def check_mel(
    sr: Any, n_fft: Any, n_mels: Any, fmin: Any, fmax: Any, htk: bool, power: Any
) -> None:
    """Mel filter bank parameters, and that every band contains at least one FFT bin."""
    from nnaudio_core.filters import mel_frequencies

    sr_v = check_sr(sr)
    n = check_int("n_fft", n_fft, 1, MAX_N_FFT)
    m = check_int("n_mels", n_mels, 1)
    check_positive("power", power)
    check_band(fmin, fmax, sr_v, fmin_positive=False)
    check_kernel_bytes(
        f"n_mels={m} with n_fft={n}", 2.0 * 8 * m * (n // 2 + 1), "lower n_mels or n_fft"
    )
    top = sr_v / 2.0 if fmax is None else float(fmax)
    edges = mel_frequencies(m + 2, float(fmin), top, bool(htk))
    fft_hz = np.arange(n // 2 + 1, dtype=np.float64) * sr_v / n
    # band k is non-zero exactly at the FFT bins strictly between edges k and k + 2
    first = np.searchsorted(fft_hz, edges[:-2], side="right")
    last = np.searchsorted(fft_hz, edges[2:], side="left")
    empty = np.nonzero(first >= last)[0]
    if empty.size:
        k = int(empty[0])
        raise ParameterError(
            f"n_mels={m} is too many for n_fft={n} at sr={sr_v:g} between fmin={fmin} and "
            f"fmax={top:g} Hz: {empty.size} mel band(s) (the first: band {k}, "
            f"{edges[k]:.1f}-{edges[k + 2]:.1f} Hz) contain no FFT bin ({sr_v / n:.1f} Hz "
            f"apart) and would always be zero; lower n_mels, raise n_fft or narrow the band"
        )


def check_mfcc(n_mfcc: Any, n_mels: Any, ref: Any, amin: Any, top_db: Any) -> None:
    """MFCC parameters: ``1 <= n_mfcc <= n_mels``, ``ref > 0``, ``amin > 0``, ``top_db >= 0``."""
    check_int("n_mfcc", n_mfcc, 1)
    if isinstance(n_mels, Integral) and not isinstance(n_mels, bool) and n_mfcc > n_mels:
        raise ParameterError(f"n_mfcc={n_mfcc} must be between 1 and n_mels={n_mels}")
    check_positive("ref", ref)
    check_positive("amin", amin)
    if top_db is not None:
        check_nonnegative("top_db", top_db)


def check_variable_q(
    sr: Any,
    hop_length: Any,
    fmin: Any,
    fmax: Any,
    n_bins: Any,
    bins_per_octave: Any,
    filter_scale: Any,
    gamma: Any,
    norm: Any,
    window: Any,
    sparsity: Any,
) -> None:
    """Constant-/variable-Q parameters, and an upper bound of the kernel memory.

    The Nyquist check of the top filter's band edge stays with the transform (it depends on
    the bandwidth rule); here ``fmax`` (when given) must not exceed ``sr / 2``.
    """
    sr_v = check_sr(sr)
    check_int("hop_length", hop_length, 1)
    bpo = check_int("bins_per_octave", bins_per_octave, 1, whole_float=True)
    fs = check_positive("filter_scale", filter_scale)
    check_nonnegative("gamma", gamma)
    check_band(fmin, fmax, sr_v)
    if fmax is None:
        bins = check_int("n_bins", n_bins, 2)
    else:
        bins = max(1, int(np.ceil(bpo * np.log2(float(fmax) / float(fmin)))))
        if bins < 2:
            raise ParameterError(
                f"fmin={fmin} and fmax={fmax} give n_bins={bins} at bins_per_octave={bpo}; "
                f"need n_bins >= 2: widen the band"
            )
    if norm is not None and (not isinstance(norm, Real) or not norm >= 0):
        raise ParameterError(f"norm={norm!r} must be None, 0 (unscaled) or a norm order > 0")
    check_window(window)
    check_range("sparsity", sparsity, 0.0, 1.0)
    # the longest filter is at fmin: Q * sr / fmin samples, Q ~ filter_scale / (2^(1/b) - 1)
    longest = fs / (2.0 ** (1.0 / bpo) - 1.0) * sr_v / float(fmin)
    n_fft = 2.0 ** math.ceil(math.log2(math.ceil(longest) + 2))
    check_kernel_bytes(
        f"fmin={fmin} Hz (longest filter ~{longest:.0f} samples, span {n_fft:.0f}) with "
        f"n_bins={bins}",
        16.0 * bins * n_fft,
        "raise fmin, lower n_bins or filter_scale",
    )
