"""Parameter validation (issue 12, section 4): every impossible or meaningless parameter is a
:class:`ParameterError` naming the parameter, its value and the valid range, raised before
any kernel is built."""

from __future__ import annotations

import numpy as np
import pytest

from nnaudio_core import checks, filters
from nnaudio_core.errors import ParameterError
from nnaudio_core.features import (
    MFCC,
    STFT,
    VQT,
    CQT1992v2,
    CQT2010v2,
    Griffin_Lim,
    MelSpectrogram,
    VariableQ,
    iCQT,
    iSTFT,
)

BAD = [
    # mel: the band must lie below Nyquist and every band must hold an FFT bin
    (lambda: MelSpectrogram(sr=22050, fmax=30000), r"fmax=30000 .*Nyquist .*11025"),
    (lambda: MFCC(sr=16000, fmax=8001.0), r"fmax=8001.0 .*Nyquist .*8000"),
    (lambda: MelSpectrogram(fmin=-5.0), r"fmin=-5.0 must be >= 0"),
    (lambda: MelSpectrogram(fmin=4000.0, fmax=4000.0), r"fmin=4000.0 must be below fmax=4000"),
    (lambda: MelSpectrogram(sr=8000, fmin=4000.0), r"fmin=4000.0 .*Nyquist"),
    (lambda: MelSpectrogram(n_fft=256, n_mels=128), r"n_mels=128 is too many for n_fft=256"),
    (lambda: MelSpectrogram(n_fft=2048, n_mels=64, fmin=0.0, fmax=50.0),
     r"n_mels=64 .*contain no FFT bin"),
    (lambda: MelSpectrogram(sr=0), r"sr=0 must be > 0"),
    (lambda: MelSpectrogram(sr=float("nan")), r"sr=nan must be a finite number"),
    (lambda: MelSpectrogram(n_fft=2048.5), r"n_fft=2048.5 must be an integer"),
    (lambda: MelSpectrogram(n_fft=512, win_length=1024), r"win_length=1024 .*n_fft=512"),
    (lambda: MelSpectrogram(hop_length=0), r"hop_length=0 must be >= 1"),
    (lambda: MelSpectrogram(n_mels=-3), r"n_mels=-3 must be >= 1"),
    (lambda: MelSpectrogram(power=-1.0), r"power=-1.0 must be > 0"),
    (lambda: MelSpectrogram(window="nope"), r"window='nope' is not a known window"),
    # MFCC
    (lambda: MFCC(n_mfcc=0), r"n_mfcc=0 must be >= 1"),
    (lambda: MFCC(n_mfcc=200), r"n_mfcc=200 must be between 1 and n_mels=128"),
    (lambda: MFCC(ref=0.0), r"ref=0.0 must be > 0"),
    (lambda: MFCC(top_db=-1.0), r"top_db=-1.0 must be >= 0"),
    # STFT / iSTFT / Griffin-Lim
    (lambda: STFT(sr=-1), r"sr=-1 must be > 0"),
    (lambda: STFT(freq_scale="linear", sr=8000, fmax=6000.0), r"fmax=6000.0 .*Nyquist .*4000"),
    (lambda: STFT(freq_scale="log", fmin=-1.0), r"fmin=-1.0 must be > 0"),
    (lambda: STFT(n_fft=256, win_length=300), r"win_length=300 must be between 1 and n_fft=256"),
    (lambda: STFT(hop_length=-4), r"hop_length=-4 must be >= 1"),
    (lambda: STFT(freq_bins=0), r"freq_bins=0 must be >= 1"),
    (lambda: STFT(window=[]), r"window given as samples"),
    (lambda: iSTFT(sr=0), r"sr=0 must be > 0"),
    (lambda: iSTFT(n_fft=512, win_length=1024), r"win_length=1024 .*n_fft=512"),
    (lambda: iSTFT(window="nope"), r"window='nope'"),
    (lambda: Griffin_Lim(n_fft=512, hop_length=0), r"hop_length=0 must be >= 1"),
    (lambda: Griffin_Lim(n_fft=512, win_length=600), r"win_length=600 .*n_fft=512"),
    (lambda: Griffin_Lim(n_fft=512, window="nope"), r"window='nope'"),
    # constant-/variable-Q
    (lambda: CQT1992v2(fmax=30000.0), r"fmax=30000.0 .*Nyquist .*11025"),
    (lambda: CQT1992v2(fmin=0.0), r"fmin=0.0 must be > 0"),
    (lambda: CQT1992v2(fmin=100.0, fmax=100.0), r"fmin=100.0 must be below fmax=100.0"),
    (lambda: CQT1992v2(bins_per_octave=0), r"bins_per_octave=0 must be >= 1"),
    (lambda: CQT1992v2(n_bins=0), r"n_bins=0 must be >= 2"),
    (lambda: CQT1992v2(sr=0), r"sr=0 must be > 0"),
    (lambda: CQT1992v2(hop_length=0), r"hop_length=0 must be >= 1"),
    (lambda: CQT1992v2(filter_scale=0), r"filter_scale=0 must be > 0"),
    (lambda: CQT1992v2(window="nope"), r"window='nope' is not a known window"),
    (lambda: CQT1992v2(sparsity=1.0), r"sparsity=1.0 must be in \[0.0, 1.0\)"),
    (lambda: CQT1992v2(norm=-1), r"norm=-1 must be None"),
    (lambda: CQT2010v2(bins_per_octave=-12), r"bins_per_octave=-12 must be >= 1"),
    (lambda: VQT(gamma=-1.0), r"gamma=-1.0 must be >= 0"),
    (lambda: VariableQ(fmin=-2.0), r"fmin=-2.0 must be > 0"),
    (lambda: iCQT(fmax=20000.0, sr=22050), r"fmax=20000.0 .*Nyquist"),
    (lambda: iCQT(bins_per_octave=0), r"bins_per_octave=0 must be >= 1"),
]


@pytest.mark.parametrize(("make", "pattern"), BAD, ids=[b[1][:40] for b in BAD])
def test_bad_parameters_name_the_parameter_value_and_range(make, pattern):
    with pytest.raises(ParameterError, match=pattern):
        make()


def test_mel_fmax_at_nyquist_is_accepted_and_has_no_empty_band():
    m = MelSpectrogram(sr=22050, fmax=11025.0)
    assert (m.mel_basis.max(dim=1).values > 0).all()


def test_empty_band_prediction_matches_the_built_filters():
    """The cheap check (no filter bank built) agrees with the filter bank's zero rows."""
    for sr, n_fft, n_mels, fmax in [(22050, 256, 128, None), (22050, 256, 40, None),
                                    (16000, 400, 64, 8000.0), (16000, 128, 64, None),
                                    (44100, 512, 96, 5000.0)]:
        w = filters.mel_filterbank(sr, n_fft, n_mels, 0.0, fmax, False, None)
        empty = bool(np.any(w.max(axis=1) <= 0))
        try:
            checks.check_mel(sr, n_fft, n_mels, 0.0, fmax, False, 2.0)
            refused = False
        except ParameterError:
            refused = True
        assert refused == empty, (sr, n_fft, n_mels, fmax)


def _no_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args, **kwargs):
        raise AssertionError("a kernel was built before the parameters were checked")

    for name in ("get_window", "fourier_kernels", "inverse_fourier_kernels",
                 "mel_filterbank", "variable_q_kernels", "sparse_spectral_kernels"):
        monkeypatch.setattr(filters, name, boom)


HUGE = [
    (lambda: STFT(n_fft=2**24), r"n_fft=16777216 must be between 1 and 1048576"),
    (lambda: iSTFT(n_fft=2**24), r"n_fft=16777216 must be between 1 and 1048576"),
    (lambda: MelSpectrogram(n_fft=2**24), r"n_fft=16777216 must be between 1 and 1048576"),
    (lambda: Griffin_Lim(n_fft=2**24), r"n_fft=16777216 must be between 1 and 1048576"),
    (lambda: STFT(n_fft=65536, backend="conv"), r"n_fft=65536 .*GiB of kernels"),
    (lambda: MelSpectrogram(n_mels=10**8), r"n_mels=100000000 .*GiB"),
    (lambda: CQT1992v2(fmin=0.01, n_bins=120), r"fmin=0.01 Hz .*GiB of kernels"),
    (lambda: iCQT(fmin=0.01, n_bins=120), r"fmin=0.01 Hz .*GiB of kernels"),
]


@pytest.mark.parametrize(("make", "pattern"), HUGE, ids=[h[1][:30] for h in HUGE])
def test_huge_sizes_fail_before_any_kernel_is_built(monkeypatch, make, pattern):
    _no_kernels(monkeypatch)
    with pytest.raises(ParameterError, match=pattern):
        make()


def test_whole_float_lengths_still_work_as_before():
    m = STFT(n_fft=2048, win_length=1024.0, hop_length=512.0)
    assert (m.win_length, m.hop_length) == (1024, 512)
    assert MelSpectrogram(hop_length=256.0).hop_length == 256
    with pytest.raises(ParameterError, match=r"hop_length=256.5 must be an integer"):
        STFT(hop_length=256.5)


def test_checks_do_not_reject_the_presets_and_defaults():
    for make in (STFT, iSTFT, MelSpectrogram, MFCC, CQT1992v2, VQT,
                 lambda: Griffin_Lim(n_fft=1024),
                 lambda: MelSpectrogram(sr=16000, n_fft=400, hop_length=160, n_mels=64,
                                        fmax=8000.0),
                 lambda: CQT1992v2(norm=np.inf, n_bins=24, fmin=200.0)):
        make()
