"""get_config / from_config / build, JSON-serialisable configs, constructor errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import signals
import torch

import nnaudio_core
from nnaudio_core import (
    CFP,
    MFCC,
    STFT,
    Combined_Frequency_Periodicity,
    Gammatonegram,
    MelSpectrogram,
    ParameterError,
    iSTFT,
)
from nnaudio_core.features import TRANSFORMS, build

SR = 16000

CONFIGS = {
    "stft-default": lambda: STFT(),
    "stft-log-mag": lambda: STFT(n_fft=512, hop_length=100, freq_scale="log", fmin=40.0,
                                 fmax=7000.0, sr=SR, output_format="Magnitude"),
    "stft-conv-istft": lambda: STFT(n_fft=400, win_length=300, hop_length=80, window="hamming",
                                    center=False, backend="conv", iSTFT=True, sr=SR),
    "stft-array-window": lambda: STFT(n_fft=256, win_length=200, hop_length=64,
                                      window=np.hanning(200).astype(np.float64), sr=SR),
    "stft-trainable": lambda: STFT(n_fft=256, hop_length=64, trainable=True, sr=SR),
    "stft-kaiser": lambda: STFT(n_fft=256, hop_length=64, window=("kaiser", 8.0), sr=SR),
    "istft": lambda: iSTFT(n_fft=256, hop_length=64, sr=SR, backend="conv"),
    "istft-trainable": lambda: iSTFT(n_fft=256, hop_length=64, trainable_kernels=True,
                                     trainable_window=True),
    "mel-default": lambda: MelSpectrogram(),
    "mel-options": lambda: MelSpectrogram(sr=SR, n_fft=512, win_length=400, hop_length=160,
                                          n_mels=40, fmin=20.0, fmax=7600.0, htk=True, norm=2.0,
                                          power=1.0, pad_mode="constant", backend="conv"),
    "mel-trainable": lambda: MelSpectrogram(sr=SR, n_fft=256, hop_length=64, n_mels=24,
                                            trainable_mel=True, trainable_STFT=True),
    "mfcc-default": lambda: MFCC(),
    "mfcc-options": lambda: MFCC(sr=SR, n_mfcc=13, n_fft=512, hop_length=160, n_mels=40,
                                 htk=True, fmin=30.0, top_db=None, ref=2.0, amin=1e-8),
    "mfcc-kaiser": lambda: MFCC(sr=SR, n_mfcc=13, n_fft=512, hop_length=160, n_mels=40,
                                window=("kaiser", 6.0)),
    "gammatone-default": lambda: Gammatonegram(),
    "gammatone-options": lambda: Gammatonegram(sr=SR, n_fft=512, win_length=400, hop_length=160,
                                               n_bins=40, fmin=50.0, fmax=7000.0, power=1.0,
                                               window=("kaiser", 6.0), center=False,
                                               backend="conv"),
    "gammatone-trainable": lambda: Gammatonegram(sr=SR, n_fft=256, hop_length=64, n_bins=24,
                                                 trainable_bins=True, trainable_STFT=True),
    "cfp-default": lambda: CFP(),
    "cfp-options": lambda: CFP(fr=4, fs=SR, hop_length=160, window_size=1025, fc=60.0,
                               tc=1 / 2000, g=[0.3, 0.6, 1.0, 0.0], NumPerOct=24, center=False),
    "cfp-combined": lambda: Combined_Frequency_Periodicity(g=(0.24, 0.6)),
}


def run(m: torch.nn.Module) -> torch.Tensor:
    x = torch.from_numpy(signals.speech_like(SR, 0.5))[None]
    with torch.no_grad():
        if isinstance(m, iSTFT):
            X = STFT(n_fft=m.n_fft, hop_length=m.hop_length)(x)
            return m(X, length=x.shape[-1])
        out = m(x)
        return torch.stack(out) if isinstance(out, tuple) else out


@pytest.mark.parametrize("name", list(CONFIGS))
def test_from_config_rebuilds_an_identical_module(name):
    m = CONFIGS[name]()
    cfg = m.get_config()
    assert cfg["transform"] == type(m).__name__
    assert TRANSFORMS[cfg["transform"]] is type(m)
    for rebuilt in (type(m).from_config(cfg), build(cfg), type(m).from_config(cfg["params"])):
        assert type(rebuilt) is type(m)
        assert rebuilt.state_dict().keys() == m.state_dict().keys()
        assert [n for n, _ in rebuilt.named_parameters()] == [n for n, _ in m.named_parameters()]
        for k, v in m.state_dict().items():
            torch.testing.assert_close(rebuilt.state_dict()[k], v, rtol=0, atol=0)
        torch.testing.assert_close(run(rebuilt), run(m), rtol=0, atol=0)
        assert rebuilt.get_config() == cfg
        np.testing.assert_array_equal(rebuilt.frequencies(), m.frequencies())


@pytest.mark.parametrize("name", list(CONFIGS))
def test_config_is_json_serialisable(name):
    cfg = CONFIGS[name]().get_config()
    text = json.dumps(cfg)
    assert json.loads(text)["transform"] == cfg["transform"]


# regression for the kaiser configs: a (name, param) window tuple comes back from JSON as a
# list, which get_window used to read as window samples
@pytest.mark.parametrize("name", list(CONFIGS))
def test_config_survives_a_json_round_trip(name):
    """The CLI stores ``json.dumps(get_config())`` and rebuilds with ``build(json.loads(...))``."""
    m = CONFIGS[name]()
    rebuilt = build(json.loads(json.dumps(m.get_config())))
    assert rebuilt.state_dict().keys() == m.state_dict().keys()
    torch.testing.assert_close(run(rebuilt), run(m), rtol=0, atol=0)


def test_mfcc_config_carries_the_resolved_mel_parameters():
    params = MFCC(sr=SR, n_mfcc=13, n_mels=40).get_config()["params"]
    for key in ("n_fft", "hop_length", "n_mels", "window", "center", "pad_mode", "power",
                "htk", "fmin", "fmax"):
        assert key in params, key
    assert params["n_mels"] == 40 and params["hop_length"] == 512 and params["n_fft"] == 2048
    assert params["norm"] == "ortho"


def test_build_and_from_config_reject_mismatches():
    cfg = STFT(n_fft=256).get_config()
    with pytest.raises(ParameterError, match="MelSpectrogram"):
        MelSpectrogram.from_config(cfg)
    with pytest.raises(ParameterError, match="NoSuchTransform"):
        build({"transform": "NoSuchTransform", "params": {}})


# ------------------------------------------------------------------ constructor errors ----

BAD = [
    (lambda: STFT(freq_scale="mel"), "mel", "freq_scale"),
    (lambda: STFT(freq_scale="Log"), "Log", "freq_scale"),
    (lambda: STFT(output_format="Power"), "Power", "output_format"),
    (lambda: STFT(output_format="magnitude"), "magnitude", "output_format"),
    (lambda: STFT(pad_mode="circular"), "circular", "pad_mode"),
    (lambda: STFT(pad_mode="zeros"), "zeros", "pad_mode"),
    (lambda: STFT(backend="cuda"), "cuda", "backend"),
    (lambda: iSTFT(freq_scale="bark"), "bark", "freq_scale"),
    (lambda: MelSpectrogram(pad_mode="edge"), "edge", "pad_mode"),
    (lambda: MFCC(pad_mode="symmetric"), "symmetric", "pad_mode"),
    (lambda: STFT(window="no-such-window"), "no-such-window", "window"),
    (lambda: STFT(n_fft=256, win_length=300), "300", "win_length"),
    (lambda: STFT(n_fft=256, freq_bins=200), "200", "freq_bins"),
    (lambda: STFT(trainable=True, backend="fft"), "fft", "backend"),
    (lambda: STFT(freq_scale="log", backend="fft"), "fft", "backend"),
    (lambda: STFT(freq_scale="log", fmin=0.0), "fmin", "fmin"),
    (lambda: MelSpectrogram(fmin=9000.0, fmax=8000.0), "9000", "fmin"),
    (lambda: MelSpectrogram(norm="l2"), "l2", "norm"),
    (lambda: MelSpectrogram(power=0), "power", "power"),
    (lambda: MelSpectrogram(bogus=1), "bogus", "bogus"),
    (lambda: MFCC(n_mfcc=50, n_mels=40), "50", "n_mfcc"),
    (lambda: MFCC(norm=None), "None", "norm"),
    (lambda: STFT(n_fft=0), "n_fft=0", "n_fft"),
    (lambda: STFT(hop_length=0), "hop_length=0", "hop_length"),
    (lambda: STFT(n_fft=256, win_length=0), "win_length=0", "win_length"),
    (lambda: STFT(freq_scale="linear", fmin=500.0, fmax=100.0), "500", "fmin"),
    (lambda: MelSpectrogram(n_mels=0), "n_mels=0", "n_mels"),
    (lambda: MFCC(amin=0.0), "amin", "amin"),
    (lambda: iSTFT(trainable_kernels=True, backend="fft"), "fft", "backend"),
]


@pytest.mark.parametrize(("make", "value", "name"), BAD, ids=[f"{b[2]}={b[1]}" for b in BAD])
def test_bad_parameters_raise_parameter_error(make, value, name):
    with pytest.raises(ParameterError) as info:
        make()
    assert isinstance(info.value, ValueError)
    msg = str(info.value)
    assert value in msg and name in msg, msg


def test_parameter_error_is_exported_and_a_value_error():
    assert nnaudio_core.ParameterError is ParameterError
    assert issubclass(ParameterError, ValueError)
    with pytest.raises(ValueError):
        STFT(pad_mode="wrap")
