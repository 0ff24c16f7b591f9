"""nnAudio2's own test parameter sets construct and run here and agree with nnAudio2.

The parameter sets are those of nnAudio2's repository tests (``Installation/tests``:
``test_cqt.py``, ``test_vqt.py``, ``test_stft.py``, ``tests_mel.py``, ``test_cfp.py`` and
their ``parameters.py``; the wheel ships no tests, so they are written out here). nnAudio2's
tests feed librosa's example recordings; ours feed generated signals (no downloads): the log
sweep 55 Hz - Nyquist of its CQT tests, and speech-like audio. Both libraries get the same
float32 input and the same constructor arguments; ``max |ours - nnAudio2| <= 1e-4 * peak``
(phases as angles where the magnitude is above 1e-3 of the peak, see
test_nnaudio2_parity.py).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import signals
import torch
from scipy.signal import chirp

os.environ.setdefault("NNAUDIO_DISABLE_CITATION_REMINDER", "1")
nn2 = pytest.importorskip("nnAudio2.features")

import nnaudio_core.features as ours  # noqa: E402
from nnaudio_core import ParameterError  # noqa: E402

TOL = 1e-4
FORMATS = ("Magnitude", "Complex", "Phase")


def log_sweep(sr: int = 44100) -> torch.Tensor:
    """nnAudio2's CQT test input: a 1 s logarithmic chirp from 55 Hz to 22.05 kHz."""
    s = np.linspace(0, 1, sr)
    return torch.from_numpy(chirp(s, 55, 1, 22050, method="logarithmic").astype(np.float32))[None]


def speech(sr: int = 22050) -> torch.Tensor:
    return torch.from_numpy(signals.speech_like(sr, 1.0).astype(np.float32))[None]


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max() / b.abs().max())


def assert_formats_agree(a, b, x: torch.Tensor) -> None:
    """Magnitude and Complex to 1e-4 of the peak; Phase as angles where it matters."""
    mag = quiet(b, x, output_format="Magnitude")
    assert rel(a(x, output_format="Magnitude"), mag) <= TOL
    assert rel(a(x, output_format="Complex"), quiet(b, x, output_format="Complex")) <= TOL
    pa, pb = a(x, output_format="Phase"), quiet(b, x, output_format="Phase")
    ang_a = torch.atan2(pa[..., 1], pa[..., 0]).double()
    ang_b = torch.atan2(pb[..., 1], pb[..., 0]).double()
    d = torch.remainder(ang_a - ang_b + torch.pi, 2 * torch.pi) - torch.pi
    strong = mag.double() > 1e-3 * mag.max()
    assert float((d.abs() * mag.double())[strong].max()) <= 2 * TOL * float(mag.max())


# (class, sr or None for the class default, keywords), from nnAudio2's test_cqt.py
CQT_SETS = [
    pytest.param("CQT1992", 44100, dict(fmin=220, n_bins=80, bins_per_octave=24),
                 marks=pytest.mark.slow, id="CQT1992-220Hz-80"),
    pytest.param("CQT1992", 44100, dict(fmin=220, n_bins=160, bins_per_octave=24),
                 marks=pytest.mark.slow, id="CQT1992-220Hz-160-past-Nyquist"),
    pytest.param("CQT2010", 44100, dict(fmin=110, n_bins=160, bins_per_octave=24),
                 id="CQT2010-110Hz-160"),
    pytest.param("CQT1992v2", 44100, dict(fmin=55, n_bins=207, bins_per_octave=24),
                 id="CQT1992v2-55Hz-207"),
    pytest.param("CQT2010v2", 44100, dict(fmin=55, n_bins=207, bins_per_octave=24),
                 id="CQT2010v2-55Hz-207"),
    # the DataParallel tests' modules (class defaults, 22.05 kHz)
    pytest.param("CQT1992", None, dict(fmin=110, n_bins=60, bins_per_octave=12),
                 id="CQT1992-110Hz-60"),
    pytest.param("CQT1992v2", None, {}, id="CQT1992v2-defaults"),
    pytest.param("CQT2010", None, {}, id="CQT2010-defaults"),
    pytest.param("CQT2010v2", None, {}, id="CQT2010v2-defaults"),
]


@pytest.mark.parametrize(("name", "sr", "kw"), CQT_SETS)
def test_cqt_sets_equal_nnaudio2(name: str, sr: int | None, kw: dict) -> None:
    if sr is not None:
        kw = {"sr": sr, **kw}
    x = log_sweep(sr or 22050)
    b = quiet(getattr(nn2, name), **kw)
    a = quiet(getattr(ours, name), **kw)
    assert_formats_agree(a, b, x)


def test_a_band_past_nyquist_warns_under_nnaudio2_names_errors_under_librosas() -> None:
    """nnAudio2 computes CQT1992(sr=44100, fmin=220, n_bins=160, bins_per_octave=24): its
    top bin (21.7 kHz) has a band reaching 22.2 kHz. Under nnAudio's bandwidths that is a
    UserWarning here; librosa's rule (``CQT``, ``bandwidth='librosa'``) refuses it, as
    librosa.cqt does; a centre above Nyquist is refused everywhere."""
    kw = dict(sr=44100, fmin=220, n_bins=160, bins_per_octave=24)
    for cls in (ours.CQT1992v2, ours.CQT2010v2, ours.VQT):
        with pytest.warns(UserWarning, match=r"21714\.3 Hz\) reaches 22191\.5 Hz"):
            m = cls(**kw, backend="auto")
        assert torch.isfinite(m(log_sweep())).all()
    with pytest.raises(ParameterError, match="reaches .* above the Nyquist"):
        ours.CQT(**kw)
    with pytest.raises(ParameterError, match="reaches .* above the Nyquist"):
        ours.VQT(**kw, bandwidth="librosa")
    for cls in (ours.CQT1992v2, ours.CQT1992, ours.CQT, ours.VQT, ours.CQT2010v2):
        with pytest.raises(ParameterError, match=r"top bin \(\d+\.\d Hz\) is above the Nyquist"):
            cls(sr=44100, fmin=220, n_bins=161, bins_per_octave=24)


@pytest.mark.parametrize("gamma", [0, 1, 2, 5, 10])
def test_vqt_gammas_equal_nnaudio2(gamma: float) -> None:
    """test_vqt.py: VQT(sr=22050, gamma) with the class defaults, Magnitude, librosa
    normalisation (nnAudio2 computes gamma > 0 multirate, and so does ours by default)."""
    x = speech(22050)
    b = quiet(nn2.VQT, sr=22050, gamma=gamma, verbose=False)
    a = quiet(ours.VQT, sr=22050, gamma=gamma, verbose=False)
    ya = a(x, output_format="Magnitude", normalization_type="librosa")
    yb = quiet(b, x, output_format="Magnitude", normalization_type="librosa")
    assert rel(ya, yb) <= TOL


def _stft_parameters() -> list[tuple]:
    out = [(n, h, w) for n in (1024, 2048) for w in ("ones", "hann", "hamming")
           for h in (128, 512, 1024) if h < n / 2]
    return out + [(256, None, "hann")]


@pytest.mark.parametrize(("n_fft", "hop_length", "window"), _stft_parameters())
def test_stft_sets_equal_nnaudio2_and_invert(n_fft: int, hop_length, window: str) -> None:
    """test_stft.py's stft_parameters: forward, iSTFT and STFT.inverse."""
    x = speech(22050)
    kw = dict(n_fft=n_fft, hop_length=hop_length, window=window)
    a = ours.STFT(**kw, iSTFT=True, output_format="Complex")
    b = quiet(nn2.STFT, **kw, iSTFT=True, output_format="Complex", verbose=False)
    ca, cb = a(x), quiet(b, x)
    assert rel(ca, cb) <= TOL
    ia, ib = ours.iSTFT(**kw), quiet(nn2.iSTFT, **kw, verbose=False)
    ya = ia(ca, onesided=True, length=x.shape[-1])
    assert rel(ya, quiet(ib, cb, onesided=True, length=x.shape[-1])) <= TOL
    assert rel(ya, x) <= 1e-4  # perfect reconstruction
    assert rel(a.inverse(ca, length=x.shape[-1]), x) <= 1e-4


@pytest.mark.parametrize(
    ("n_fft", "win_length", "hop_length"),
    [(n, w, h) for n in (512, 1024) for w in (400, 900) if w < n for h in (128, 256)
     if h < n / 2],
)
def test_stft_win_length_sets_equal_nnaudio2(n_fft: int, win_length: int, hop_length: int):
    x = speech(22050)
    kw = dict(n_fft=n_fft, win_length=win_length, hop_length=hop_length)
    ya = ours.STFT(**kw, output_format="Complex")(x)
    yb = quiet(quiet(nn2.STFT, **kw, output_format="Complex", verbose=False), x)
    assert rel(ya, yb) <= TOL


@pytest.mark.parametrize(("n_fft", "win_length"), [(512, 400), (1024, 1000)])
def test_mel_win_sets_equal_nnaudio2(n_fft: int, win_length: int) -> None:
    x = speech(22050)
    kw = dict(n_fft=n_fft, win_length=win_length, hop_length=512)
    ya = ours.MelSpectrogram(**kw)(x)
    yb = quiet(quiet(nn2.MelSpectrogram, **kw, verbose=False), x)
    assert rel(ya, yb) <= TOL


def test_mfcc_and_parallel_modules_equal_nnaudio2() -> None:
    x = speech(22050)
    assert rel(ours.MFCC(sr=22050)(x), quiet(quiet(nn2.MFCC, sr=22050, verbose=False), x)) <= TOL
    kw = dict(sr=22050, n_fft=2048, n_mels=128, hop_length=512, window="hann", center=True,
              pad_mode="reflect", power=2.0, htk=False, fmin=0.0, fmax=None, norm=1)
    ya = ours.MelSpectrogram(**kw, verbose=True)(x)
    assert rel(ya, quiet(quiet(nn2.MelSpectrogram, **kw, verbose=False), x)) <= TOL


CFP_KW = dict(fr=2, fs=44100, hop_length=320, window_size=2049, fc=80, tc=0.001,
              g=[0.24, 0.6, 1], NumPerOct=48)


def test_cfp_set_equals_nnaudio2() -> None:
    """test_cfp.py's parameters (44.1 kHz grid). Float64 for the exact comparison: in float32
    both libraries lift FFT round-off of near-silent bins by the ``** 0.24`` compression
    (see test_cfp.py and the README's CFP note); the float32 modules are compared at the
    looser level their own float32-vs-float64 difference sets."""
    x = torch.from_numpy(signals.speech_like(44100, 1.0))[None]
    for name in ("CFP", "Combined_Frequency_Periodicity"):
        a = getattr(ours, name)(**CFP_KW)
        b = quiet(getattr(nn2, name), **CFP_KW)
        ra, rb = a.double()(x.double()), quiet(b.double(), x.double())
        for u, v in zip(ra if isinstance(ra, tuple) else (ra,),
                        rb if isinstance(rb, tuple) else (rb,), strict=True):
            assert rel(u, v) <= 1e-9
