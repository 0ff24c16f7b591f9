"""Trainable kernels: gradients, optimiser steps, state_dict round trips; frozen modules have
no parameters."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import signals
import torch

from nnaudio_core import CFP, MFCC, STFT, Gammatonegram, MelSpectrogram, iSTFT

SR = 16000


def audio(batch: int = 2, seconds: float = 0.5) -> torch.Tensor:
    n = int(SR * seconds)
    rows = [signals.speech_like(SR, seconds, seed=s)[:n] for s in range(batch)]
    return torch.from_numpy(np.stack(rows))


def weighted_loss(out: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A loss whose gradient does not vanish at the initial (exact) kernels."""
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(out.shape, generator=g)
    return (out * w).sum()


def spectrogram(m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(m, iSTFT):
        X = STFT(n_fft=m.n_fft, hop_length=m.hop_length, sr=SR)(x)
        return m(X, length=x.shape[-1])
    return m(x)


TRAINABLE = {
    "stft-complex": (
        lambda: STFT(n_fft=256, hop_length=64, sr=SR, trainable=True),
        ["wcos", "wsin"],
    ),
    "stft-magnitude-log": (
        lambda: STFT(n_fft=256, hop_length=64, sr=SR, trainable=True, freq_scale="log",
                     fmin=80.0, fmax=7000.0, output_format="Magnitude"),
        ["wcos", "wsin"],
    ),
    "mel-both": (
        lambda: MelSpectrogram(sr=SR, n_fft=256, hop_length=64, n_mels=32, trainable_mel=True,
                               trainable_STFT=True),
        ["mel_basis", "stft.wcos", "stft.wsin"],
    ),
    "mel-only-mel": (
        lambda: MelSpectrogram(sr=SR, n_fft=256, hop_length=64, n_mels=32, trainable_mel=True),
        ["mel_basis"],
    ),
    "mel-only-stft": (
        lambda: MelSpectrogram(sr=SR, n_fft=256, hop_length=64, n_mels=32, power=1.0,
                               trainable_STFT=True),
        ["stft.wcos", "stft.wsin"],
    ),
    "mfcc-both": (
        lambda: MFCC(sr=SR, n_mfcc=13, n_fft=256, hop_length=64, n_mels=32, trainable_mel=True,
                     trainable_STFT=True),
        ["melspec.mel_basis", "melspec.stft.wcos", "melspec.stft.wsin"],
    ),
    "istft-kernels": (
        lambda: iSTFT(n_fft=256, hop_length=64, sr=SR, trainable_kernels=True),
        ["icos", "isin"],
    ),
    "istft-window": (
        lambda: iSTFT(n_fft=256, hop_length=64, sr=SR, trainable_window=True),
        ["window_mask"],
    ),
    "istft-both": (
        lambda: iSTFT(n_fft=256, hop_length=64, sr=SR, trainable_kernels=True,
                      trainable_window=True),
        ["icos", "isin", "window_mask"],
    ),
    "gammatone-both": (
        lambda: Gammatonegram(sr=SR, n_fft=256, hop_length=64, n_bins=32, trainable_bins=True,
                              trainable_STFT=True),
        ["gammatone_basis", "stft.wcos", "stft.wsin"],
    ),
    "gammatone-only-bins": (
        lambda: Gammatonegram(sr=SR, n_fft=256, hop_length=64, n_bins=32, power=1.0,
                              trainable_bins=True),
        ["gammatone_basis"],
    ),
}


@pytest.mark.parametrize("name", list(TRAINABLE))
def test_gradients_flow_and_a_step_changes_parameters(name):
    make, expected = TRAINABLE[name]
    m = make()
    params = dict(m.named_parameters())
    assert sorted(params) == sorted(expected)
    x = audio()
    loss = weighted_loss(spectrogram(m, x))
    loss.backward()
    for pname, p in params.items():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().max() > 0, pname
        assert (p.grad != 0).float().mean() > 0.01, pname  # not a stray element
    before = {k: v.detach().clone() for k, v in params.items()}
    torch.optim.SGD(m.parameters(), lr=1e-3).step()
    for pname, p in params.items():
        assert not torch.equal(p.detach(), before[pname]), pname
    with torch.no_grad():
        assert not torch.equal(spectrogram(m, x), spectrogram(make(), x))


@pytest.mark.parametrize("name", list(TRAINABLE))
def test_state_dict_round_trip_after_training(name):
    make, _ = TRAINABLE[name]
    m = make()
    x = audio()
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for seed in range(2):
        opt.zero_grad()
        weighted_loss(spectrogram(m, x), seed).backward()
        opt.step()
    fresh = type(m).from_config(m.get_config())
    with torch.no_grad():
        trained_out = spectrogram(m, x)
        assert not torch.allclose(spectrogram(fresh, x), trained_out)
        assert fresh.state_dict().keys() == m.state_dict().keys()
        fresh.load_state_dict(m.state_dict())
        torch.testing.assert_close(spectrogram(fresh, x), trained_out, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["stft-complex", "mel-both", "mfcc-both", "istft-both",
                                  "gammatone-both"])
def test_trainable_modules_start_at_the_frozen_transform(name):
    make, _ = TRAINABLE[name]
    m = make()
    cfg = m.get_config()["params"]
    for key in ("trainable", "trainable_mel", "trainable_STFT", "trainable_kernels",
                "trainable_window", "trainable_bins"):
        if key in cfg:
            cfg[key] = False
    frozen = type(m)(**cfg)
    assert not list(frozen.parameters())
    x = audio()
    with torch.no_grad():
        a, b = spectrogram(m, x).double(), spectrogram(frozen, x).double()
    # the trainable path adds 1e-8 to the power spectrum (keeps sqrt differentiable at 0),
    # which shifts MFCCs of quiet bands slightly: MFCCs get the 1e-4 MFCC tolerance
    assert float((a - b).norm() / b.norm()) <= (1e-4 if name.startswith("mfcc") else 1e-5)


FROZEN = {
    "stft-auto": lambda: STFT(n_fft=256, sr=SR),
    "stft-conv": lambda: STFT(n_fft=256, sr=SR, backend="conv", iSTFT=True),
    "stft-log": lambda: STFT(n_fft=256, sr=SR, freq_scale="log", fmin=50.0, fmax=7000.0),
    "istft-auto": lambda: iSTFT(n_fft=256, sr=SR),
    "istft-conv": lambda: iSTFT(n_fft=256, sr=SR, backend="conv"),
    "mel-auto": lambda: MelSpectrogram(sr=SR, n_fft=256, n_mels=32),
    "mel-conv": lambda: MelSpectrogram(sr=SR, n_fft=256, n_mels=32, backend="conv"),
    "mfcc": lambda: MFCC(sr=SR, n_fft=256, n_mels=32),
    "gammatone": lambda: Gammatonegram(sr=SR, n_fft=256, n_bins=32),
    "cfp": lambda: CFP(fs=SR),
}


@pytest.mark.parametrize("name", list(FROZEN))
def test_frozen_modules_have_no_parameters(name):
    m = FROZEN[name]()
    assert list(m.parameters()) == []
    assert all(not b.requires_grad for b in m.buffers())


def _torch_stft(x: torch.Tensor) -> torch.Tensor:
    """``torch.stft`` with our defaults (periodic Hann, centred, reflect), (..., 129, frames, 2)."""
    spec = torch.stft(x, 256, hop_length=64, window=torch.hann_window(256), center=True,
                      pad_mode="reflect", return_complex=True)
    return torch.view_as_real(spec)


def _librosa_mel(x: torch.Tensor) -> torch.Tensor:
    fb = torch.from_numpy(librosa.filters.mel(sr=SR, n_fft=256, n_mels=32))
    return fb @ _torch_stft(x).pow(2).sum(-1)


@pytest.mark.parametrize(
    ("make", "reference"),
    [
        (lambda: STFT(n_fft=256, hop_length=64, sr=SR, output_format="Complex"), _torch_stft),
        (lambda: STFT(n_fft=256, hop_length=64, sr=SR, output_format="Complex",
                      backend="conv"), _torch_stft),
        (lambda: MelSpectrogram(sr=SR, n_fft=256, hop_length=64, n_mels=32), _librosa_mel),
    ],
    ids=["stft-fft", "stft-conv", "mel"],
)
def test_input_gradient_equals_torch_stft_gradient(make, reference):
    """Input gradients of the frozen transforms equal those through ``torch.stft`` (and
    librosa's mel matrix): same weighted loss, rtol 1e-4 of the largest gradient."""
    x = audio(1).requires_grad_(True)
    y = audio(1).requires_grad_(True)
    weighted_loss(make()(x)).backward()
    weighted_loss(reference(y)).backward()
    assert x.grad is not None and y.grad is not None
    torch.testing.assert_close(x.grad, y.grad, rtol=0, atol=1e-4 * float(y.grad.abs().max()))


def test_input_gradient_is_finite_through_mfcc():
    x = audio(1).requires_grad_(True)
    weighted_loss(MFCC(sr=SR, n_fft=256, n_mels=32)(x)).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().max() > 0


def silence_with_a_burst() -> torch.Tensor:
    x = torch.zeros(1, 4000)
    x[:, 2000:2100] = torch.randn(100, generator=torch.Generator().manual_seed(0))
    return x.requires_grad_(True)


# regression: sqrt/pow of an exactly-zero power spectrum used to give NaN input gradients
@pytest.mark.parametrize(
    "make",
    [
        lambda: STFT(n_fft=256, hop_length=64, pad_mode="constant", output_format="Magnitude"),
        lambda: STFT(n_fft=256, hop_length=64, pad_mode="constant", output_format="Magnitude",
                     backend="conv"),
        lambda: MelSpectrogram(n_fft=256, hop_length=64, n_mels=16, pad_mode="constant",
                               power=1.0),
    ],
    ids=["stft-magnitude-fft", "stft-magnitude-conv", "mel-power-1"],
)
def test_input_gradient_is_finite_on_silence(make):
    x = silence_with_a_burst()
    out = make()(x)
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().max() > 0
    # silent frames stay (numerically) silent
    assert float(out.detach()[..., :2].abs().max()) <= 1e-15


def test_reference_torch_stft_abs_gradient_is_finite_on_silence():
    """What the test above expects: torch's own |STFT| has a finite gradient on silence."""
    x = silence_with_a_burst()
    spec = torch.stft(x, 256, 64, window=torch.hann_window(256), center=True,
                      pad_mode="constant", return_complex=True)
    spec.abs().sum().backward()
    assert torch.isfinite(x.grad).all()
