"""One error policy: every bad argument or input raises ``ParameterError`` (a ``ValueError``);
inverting a non-invertible STFT raises ``NonInvertibleError``, also nnAudio2's
``RuntimeError``. Each case checks the type exactly and that the message is one line naming
the problem."""

from __future__ import annotations

import warnings

import pytest
import torch

from nnaudio_core import STFT, CQT1992v2, NonInvertibleError, ParameterError, iSTFT
from nnaudio_core.features import Griffin_Lim, iCQT, spectral_convergence
from nnaudio_core.functional import pack_batch, pad_signal


def _icqt() -> iCQT:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return iCQT(sr=8000, fmin=100, n_bins=24, hop_length=64)


BAD_INPUTS = [
    ("scalar waveform", lambda: pack_batch(torch.tensor(1.0)), "scalar"),
    ("empty waveform", lambda: pad_signal(torch.zeros(1, 0), 256, True, "reflect"), "0 samples"),
    ("short uncentred", lambda: STFT(n_fft=512, center=False)(torch.zeros(1, 100)), "n_fft=512"),
    ("stft format", lambda: STFT(n_fft=256)(torch.zeros(1, 512), output_format="Mag"), "Mag"),
    ("cqt format", lambda: CQT1992v2(sr=8000, fmin=100, n_bins=24)(
        torch.zeros(1, 2000), output_format="Power"), "Power"),
    ("cqt normalization", lambda: CQT1992v2(sr=8000, fmin=100, n_bins=24)(
        torch.zeros(1, 2000), normalization_type="peak"), "peak"),
    ("istft bins", lambda: iSTFT(n_fft=512)(torch.zeros(1, 200, 10, 2)), "257"),
    ("istft magnitude", lambda: iSTFT(n_fft=512)(torch.zeros(1, 257, 10)), "Complex"),
    ("griffin-lim bins", lambda: Griffin_Lim(n_fft=512)(torch.zeros(1, 200, 10)), "257"),
    ("griffin-lim complex", lambda: Griffin_Lim(n_fft=512)(
        torch.zeros(1, 257, 10, dtype=torch.complex64)), "complex"),
    ("griffin-lim angles", lambda: Griffin_Lim(n_fft=512).reconstruct(
        torch.zeros(1, 257, 10), init_angles=torch.zeros(1, 257, 9, 2)), "init_angles"),
    ("convergence shapes", lambda: spectral_convergence(torch.zeros(257, 10), torch.zeros(100)),
     "stft="),
    ("icqt shape", lambda: _icqt()(torch.zeros(1, 23, 10, 2)), "Complex CQT"),
    # 0 frames: a RuntimeError from reshape before these checks
    ("icqt no frames", lambda: _icqt()(torch.zeros(1, 24, 0, 2)), "1 frame"),
    ("istft no frames", lambda: iSTFT(n_fft=256)(torch.zeros(1, 129, 0, 2)), "1 frame"),
    ("stft.inverse no frames", lambda: STFT(n_fft=256, iSTFT=True, backend="conv").inverse(
        torch.zeros(1, 129, 0, 2)), "1 frame"),
    ("griffin-lim no frames", lambda: Griffin_Lim(n_fft=256)(torch.zeros(1, 129, 0)), "1 frame"),
]


@pytest.mark.parametrize("call, needle", [b[1:] for b in BAD_INPUTS],
                         ids=[b[0] for b in BAD_INPUTS])
def test_bad_inputs_raise_parameter_error(call, needle):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ParameterError) as info:
            call()
    assert type(info.value) is ParameterError
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_non_invertible_stft_is_a_parameter_error_and_nnaudio2s_runtime_error():
    assert issubclass(NonInvertibleError, ParameterError)
    assert issubclass(NonInvertibleError, RuntimeError)
    X = STFT(n_fft=256, hop_length=64)(torch.randn(1, 2000))
    with pytest.warns(UserWarning, match="analysis-only"):
        inv = iSTFT(n_fft=256, hop_length=64, freq_scale="log")
    with pytest.raises(NonInvertibleError, match="freq_scale='log'"):
        inv(X)
    m = STFT(n_fft=256, hop_length=64, freq_bins=100, iSTFT=True)
    with pytest.raises(NonInvertibleError, match="129"):
        m.inverse(m(torch.randn(1, 2000)))
