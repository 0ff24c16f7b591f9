"""Gammatonegram: ERB-spaced centres and bandwidths, sines land in their band, parity with
nnAudio2 2.0.3 (and where nnAudio2 ignores its own parameters)."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import signals
import torch

from nnaudio_core import Gammatonegram, ParameterError, filters

SR = 22050
EAR_Q, MIN_BW = 9.26449, 24.7  # Glasberg & Moore via Slaney: ERB(f) = f / EAR_Q + MIN_BW


@pytest.mark.parametrize(("sr", "n_bins", "fmin", "fmax"),
                         [(22050, 64, 0.0, None), (16000, 40, 50.0, 7000.0)])
def test_band_centres_follow_the_erb_rate_scale(sr, n_bins, fmin, fmax):
    """Centres are equally spaced in ERB-rate ``log(f + EAR_Q * MIN_BW)``, from ``fmin``
    to one step below ``fmax``."""
    top = sr / 2 if fmax is None else fmax
    c = EAR_Q * MIN_BW
    k = np.arange(n_bins)
    want = np.exp(np.log(fmin + c) + k * np.log((top + c) / (fmin + c)) / n_bins) - c
    got = Gammatonegram(sr=sr, n_bins=n_bins, fmin=fmin, fmax=fmax).frequencies()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
    assert got[0] == pytest.approx(fmin, abs=1e-9)
    assert got[-1] < top < (got[-1] + c) * ((top + c) / (fmin + c)) ** (1 / n_bins)


def test_bandwidths_are_one_erb():
    """The power response of each filter has an equivalent rectangular bandwidth of
    ``ERB(f_k)`` (``1.019 * ERB`` is the 4th-order gammatone's ``b`` for exactly that),
    and its peak, at the centre, is ``1 / n_fft``."""
    n_fft = 1 << 16
    w = filters.gammatone_filterbank(SR, n_fft, 64)
    cf = filters.erb_space(64, 0.0, SR / 2)
    df = SR / n_fft
    erb = (w**2).sum(1) * df / (w**2).max(1)
    mid = slice(3, 60)  # away from 0 Hz (one-sided) and Nyquist (digital warping)
    np.testing.assert_allclose(erb[mid], (cf / EAR_Q + MIN_BW)[mid], rtol=1e-2)
    peak_hz = np.argmax(w, axis=1) * df
    np.testing.assert_allclose(peak_hz[mid], cf[mid], atol=2 * df + 0.002 * cf[mid].max())
    np.testing.assert_allclose(w.max(1)[mid] * n_fft, 1.0, rtol=2e-2)


@pytest.mark.parametrize("offset", [0.0, -0.2, 0.2])
def test_a_sine_peaks_in_the_band_whose_centre_is_nearest(offset):
    m = Gammatonegram(sr=SR)
    cf = m.frequencies()
    for k in range(12, 63, 3):  # bands above ~220 Hz: wider than an FFT bin (10.8 Hz)
        step = cf[k + 1] - cf[k] if offset > 0 else cf[k] - cf[k - 1]
        f = cf[k] + offset * step
        assert int(np.argmin(np.abs(cf - f))) == k
        y = torch.from_numpy(signals.sine(f, SR, 0.5).astype(np.float32))
        energy = m(y)[0, :, 2:-2].mean(-1)
        assert int(energy.argmax()) == k, (f, cf[int(energy.argmax())])


def test_power_and_leading_dims():
    x = torch.from_numpy(np.stack([signals.speech_like(SR, 0.5, seed=s) for s in range(6)]))
    m2 = Gammatonegram(sr=SR, n_fft=512, hop_length=128)
    m1 = Gammatonegram(sr=SR, n_fft=512, hop_length=128, power=1.0)
    out = m2(x.reshape(2, 3, -1).float())
    assert out.shape == (2, 3, 64, 1 + x.shape[-1] // 128)
    torch.testing.assert_close(out.reshape(6, 64, -1), m2(x.float()), rtol=1e-5, atol=1e-9)
    mag = m2.stft(x.float(), output_format="Magnitude")
    torch.testing.assert_close(m1(x.float()), m1.gammatone_basis @ mag, rtol=1e-4, atol=1e-7)


def test_bad_parameters_raise():
    with pytest.raises(ParameterError, match="fmax"):
        Gammatonegram(sr=16000, fmax=9000.0)
    with pytest.raises(ParameterError, match="n_bins"):
        Gammatonegram(n_bins=0)
    with pytest.raises(ParameterError, match="bogus"):
        Gammatonegram(bogus=1)


# ------------------------------------------------------------------- nnAudio2 parity ----

os.environ.setdefault("NNAUDIO_DISABLE_CITATION_REMINDER", "1")


def theirs(**kwargs):
    nn2 = pytest.importorskip("nnAudio2.features")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nn2.Gammatonegram(verbose=False, **kwargs)


def make(kind: str, sr: int) -> torch.Tensor:
    y = {
        "sweep": lambda: signals.chirp_with_noise(sr, 1.0),
        "tone": lambda: signals.harmonic_tone(sr, 1.0, f0=196.0),
        "speech": lambda: signals.speech_like(sr, 1.0),
    }[kind]()
    return torch.from_numpy(np.asarray(y, np.float32))[None]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("kind", ["sweep", "tone", "speech"])
def test_equals_nnaudio2_at_its_defaults(kind):
    x = make(kind, SR)
    out, ref = Gammatonegram()(x), theirs()(x)
    assert out.shape == ref.shape == (1, 64, 44)
    assert rel_err(out, ref) <= 1e-4


@pytest.mark.parametrize(
    "kwargs",
    [{"sr": 16000, "n_fft": 512, "hop_length": 160, "n_bins": 40, "fmin": 50.0,
      "fmax": 7000.0},
     {"sr": 16000, "n_fft": 1024, "win_length": 800, "window": "hamming", "power": 1.0,
      "center": False, "n_bins": 128},
     {"sr": 16000, "n_fft": 400, "hop_length": 100, "pad_mode": "constant", "fmin": 100.0}],
    ids=["band", "power1-uncentred", "odd-constant"],
)
def test_equals_nnaudio2_elsewhere(kwargs):
    x = make("speech", kwargs["sr"])
    out, ref = Gammatonegram(**kwargs)(x), theirs(**kwargs)(x)
    assert out.shape == ref.shape
    assert rel_err(out, ref) <= 1e-4


def test_nnaudio2_ignores_htk_and_norm_and_we_say_so():
    """nnAudio2 documents ``htk`` and ``norm`` (copied from the mel class) but never passes
    them to its filter bank: every value gives the same output. We keep its output (ported
    models see the same features) and warn instead of ignoring them silently."""
    x = make("speech", SR)
    ref = theirs()(x)
    for kwargs in ({"htk": True}, {"norm": None}, {"norm": 2.0}):
        torch.testing.assert_close(theirs(**kwargs)(x), ref, rtol=0, atol=0)
        with pytest.warns(UserWarning, match="no effect"):
            ours = Gammatonegram(**kwargs)
        assert rel_err(ours(x), ref) <= 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Gammatonegram(htk=False, norm=1)  # the defaults: no warning
