"""TorchScript, torch.export and torch.compile give the eager outputs."""

from __future__ import annotations

import numpy as np
import pytest
import signals
import torch

from nnaudio_core import features as F

# torch 2.13 deprecates TorchScript; it is still part of the supported surface
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script.*is deprecated:DeprecationWarning"
)

SR = 16000
N = 4000


def audio(batch: int = 2) -> torch.Tensor:
    return torch.from_numpy(
        np.stack([signals.speech_like(SR, 0.5, seed=s)[:N] for s in range(batch)])
    )


MODULES = {
    "stft-complex": lambda: F.STFT(n_fft=256, hop_length=64, sr=SR, output_format="Complex"),
    "stft-magnitude": lambda: F.STFT(n_fft=256, hop_length=64, sr=SR, output_format="Magnitude"),
    "stft-log": lambda: F.STFT(n_fft=256, hop_length=64, sr=SR, freq_scale="log", fmin=60.0,
                             fmax=7000.0, output_format="Magnitude"),
    "stft-trainable": lambda: F.STFT(n_fft=256, hop_length=64, sr=SR, trainable=True),
    "mel": lambda: F.MelSpectrogram(sr=SR, n_fft=256, hop_length=64, n_mels=32),
    "mfcc": lambda: F.MFCC(sr=SR, n_fft=256, hop_length=64, n_mels=32, n_mfcc=13),
    "stft-center-false": lambda: F.STFT(n_fft=256, hop_length=64, center=False, sr=SR),
    "stft-constant-conv-bins": lambda: F.STFT(n_fft=256, hop_length=64, pad_mode="constant",
                                            freq_bins=60, backend="conv", sr=SR),
    "mel-power1-conv": lambda: F.MelSpectrogram(sr=SR, n_fft=256, hop_length=64, n_mels=32,
                                              power=1.0, backend="conv"),
    "mel-trainable": lambda: F.MelSpectrogram(sr=SR, n_fft=256, hop_length=64, n_mels=32,
                                            trainable_mel=True, trainable_STFT=True),
    "mfcc-no-top-db": lambda: F.MFCC(sr=SR, n_fft=256, hop_length=64, n_mels=32, n_mfcc=13,
                                   top_db=None),
    "istft": lambda: F.iSTFT(n_fft=256, hop_length=64, sr=SR),
    "istft-conv": lambda: F.iSTFT(n_fft=256, hop_length=64, sr=SR, backend="conv"),
    "istft-trainable": lambda: F.iSTFT(n_fft=256, hop_length=64, sr=SR, trainable_kernels=True,
                                     trainable_window=True),
    "gammatone": lambda: F.Gammatonegram(sr=SR, n_fft=256, hop_length=64, n_bins=32),
    "gammatone-trainable": lambda: F.Gammatonegram(sr=SR, n_fft=256, hop_length=64,
                                                 n_bins=32, power=1.0, trainable_bins=True,
                                                 trainable_STFT=True),
    "cfp": lambda: F.CFP(fs=SR, hop_length=320),
    "cfp-combined": lambda: F.Combined_Frequency_Periodicity(fs=SR, g=[0.3, 0.6, 1.0, 0.0]),
}


def inputs(name: str) -> tuple[tuple, dict]:
    x = audio()
    if name.startswith("istft"):
        return (F.STFT(n_fft=256, hop_length=64, sr=SR)(x),), {"length": N}
    return (x,), {}


def assert_same(got, want) -> None:
    if isinstance(want, tuple):  # F.Combined_Frequency_Periodicity: four outputs
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert_same(g, w)
        return
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))


@pytest.mark.parametrize("name", list(MODULES))
def test_torchscript_matches_eager(name):
    m = MODULES[name]()
    args, kwargs = inputs(name)
    s = torch.jit.script(m)
    with torch.no_grad():
        assert_same(s(*args, **kwargs), m(*args, **kwargs))
        if not name.startswith("istft"):
            # scripted code is shape-generic: other layouts and lengths too
            x = audio(3)[:, : N - 123].reshape(1, 3, -1)
            assert_same(s(x), m(x))
            assert_same(s(x[0, 0]), m(x[0, 0]))


@pytest.mark.parametrize("fmt", ["Complex", "Magnitude", "Phase"])
def test_torchscript_output_format_override(fmt):
    m = F.STFT(n_fft=256, hop_length=64, sr=SR, output_format="Complex")
    s = torch.jit.script(m)
    x = audio()
    out, ref = s(x, fmt), m(x, fmt)
    if fmt == "Phase":  # compare on the unit circle
        out, ref = torch.view_as_real(torch.polar(torch.ones_like(out), out)), torch.view_as_real(
            torch.polar(torch.ones_like(ref), ref))
    assert_same(out, ref)


@pytest.mark.parametrize("backend", ["auto", "conv"])
def test_torchscript_stft_inverse(backend):
    m = F.STFT(n_fft=256, hop_length=64, sr=SR, iSTFT=True, backend=backend)
    s = torch.jit.script(m)
    x = audio()
    X = s(x)
    assert_same(X, m(x))
    rec = s.inverse(X, length=N)
    assert_same(rec, m.inverse(X, length=N))
    assert_same(rec, x)
    assert_same(s.inverse(X), m.inverse(X))  # length=None


def test_torchscript_with_cache_blocks():
    m = F.MelSpectrogram(sr=SR, n_fft=256, hop_length=64, n_mels=32)
    m.stft.cpu_block_samples = 256 * 10  # force several blocks, also in the scripted module
    s = torch.jit.script(m)
    x = audio(3)
    whole = F.MelSpectrogram(sr=SR, n_fft=256, hop_length=64, n_mels=32)(x)
    assert_same(s(x), whole)
    assert_same(m(x), whole)


@pytest.mark.parametrize("name", list(MODULES))
def test_torch_export_matches_eager(name):
    m = MODULES[name]()
    args, kwargs = inputs(name)
    ep = torch.export.export(m, args, kwargs=kwargs).module()
    with torch.no_grad():
        assert_same(ep(*args, **kwargs), m(*args, **kwargs))


# torch.compile is slow on a small CPU: a handful of small configurations
@pytest.mark.parametrize("name", ["stft-complex", "stft-log", "stft-trainable", "mel", "mfcc",
                                  "istft", "gammatone", "cfp-combined"])
def test_torch_compile_fullgraph_matches_eager(name):
    torch._dynamo.reset()
    m = MODULES[name]()
    args, kwargs = inputs(name)
    c = torch.compile(m, fullgraph=True)
    with torch.no_grad():
        assert_same(c(*args, **kwargs), m(*args, **kwargs))
