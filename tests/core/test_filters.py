"""Kernel builders of :mod:`nnaudio_core.filters` checked against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from nnaudio_core import filters


@pytest.mark.parametrize("n_fft", [16, 511, 4096])  # 4096: three row blocks of 1024
def test_fourier_kernels_are_the_windowed_dft(n_fft: int) -> None:
    rng = np.random.default_rng(3)
    frame = rng.standard_normal(n_fft)
    window = np.hanning(n_fft)
    freqs = np.arange(n_fft // 2 + 1) * 8000.0 / n_fft
    cos_k, sin_k = filters.fourier_kernels(freqs, n_fft, 8000.0, window)
    spectrum = np.fft.rfft(frame * window)
    assert cos_k.dtype == np.float64
    np.testing.assert_allclose(cos_k @ frame, spectrum.real, atol=1e-9 * n_fft)
    np.testing.assert_allclose(-(sin_k @ frame), spectrum.imag, atol=1e-9 * n_fft)


def test_fourier_kernels_float32_is_the_float64_rounded() -> None:
    freqs = np.linspace(0.0, 11025.0, 2049)
    window = np.hanning(4096)
    exact = filters.fourier_kernels(freqs, 4096, 22050.0, window)
    single = filters.fourier_kernels(freqs, 4096, 22050.0, window, np.float32)
    for a, b in zip(exact, single, strict=True):
        assert b.dtype == np.float32
        np.testing.assert_array_equal(a.astype(np.float32), b)


def test_fourier_kernels_do_not_depend_on_the_block_size(monkeypatch) -> None:
    freqs = np.linspace(30.0, 7000.0, 37)
    window = np.hamming(300)
    whole = filters.fourier_kernels(freqs, 300, 16000.0, window)
    monkeypatch.setattr(filters, "_PHASE_BLOCK", 7 * 300)  # blocks of 7 rows, the last of 2
    blocked = filters.fourier_kernels(freqs, 300, 16000.0, window)
    for a, b in zip(whole, blocked, strict=True):
        np.testing.assert_array_equal(a, b)
