"""Downmixing and resampling decoded audio with soxr (torch-free: decoder workers use it).

Resampling uses **soxr** at quality ``"HQ"`` (``soxr_hq``), the resampler and quality that
``librosa.resample`` uses by default; downmixing to mono is the mean of the channels, taken
before resampling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import soxr

#: soxr quality used for every file (librosa's default ``res_type='soxr_hq'``).
SOXR_QUALITY = "HQ"


def resampled_length(samples: int, sr_in: float, sr_out: float) -> int:
    """Approximate length after resampling (for planning only; soxr decides exactly)."""
    return samples if sr_in == sr_out else int(math.ceil(samples * sr_out / sr_in))


def rates_of(sr_out: float | Sequence[float]) -> tuple[float, ...]:
    """Target rates as a tuple without repeats, in the given order."""
    rates = (sr_out,) if isinstance(sr_out, (int, float)) else tuple(sr_out)
    if not rates:
        raise ValueError("no target rate")
    return tuple(dict.fromkeys(rates))


def prepare(x: np.ndarray, sr_in: float, sr_out: float, mono: bool) -> np.ndarray:
    """Downmix and resample decoded audio.

    Parameters
    ----------
    x : np.ndarray, shape (samples, channels), float32 (soundfile's layout)
    sr_in, sr_out : sample rates in Hz
    mono : average the channels into one

    Returns
    -------
    np.ndarray, shape (channels', samples'), float32, C-contiguous
    """
    if mono and x.shape[1] > 1:
        x = x.mean(axis=1, keepdims=True, dtype=np.float32)
    if sr_in != sr_out:
        x = soxr.resample(np.ascontiguousarray(x), sr_in, sr_out, quality=SOXR_QUALITY)
    return np.ascontiguousarray(x.T, dtype=np.float32)
