"""iCQT: waveform from a complex CQT1992v2 output by preconditioned conjugate gradients."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import signals
import torch
from support import snr_db

from nnaudio_core.errors import ParameterError
from nnaudio_core.features.cqt import CQT1992v2, CQT2010v2
from nnaudio_core.features.icqt import iCQT, max_hop_length

# a well-sampled configuration: 84 bins from C1 at 16 kHz (top 3951 Hz), hop 32 (limit 72)
SR = 16000
WELL = dict(sr=SR, hop_length=32, fmin=32.70, n_bins=84)


def band_limit(y: np.ndarray, sr: float, lo: float, hi: float) -> np.ndarray:
    spec = np.fft.rfft(y.astype(np.float64))
    f = np.fft.rfftfreq(y.shape[-1], 1.0 / sr)
    spec[..., (f < lo) | (f > hi)] = 0
    return np.fft.irfft(spec, n=y.shape[-1]).astype(np.float32)


def music_like(sr: int, duration: float = 1.0, seed: int = 3) -> np.ndarray:
    """Three harmonic notes (G3, C4, E4) with staggered onsets and decays."""
    rng = np.random.default_rng(seed)
    n = int(sr * duration)
    t = np.arange(n) / sr
    y = np.zeros(n)
    for f0, onset in ((196.0, 0.0), (261.63, 0.25), (329.63, 0.5)):
        env = np.where(t >= onset, np.exp(-3.0 * np.clip(t - onset, 0, None)), 0.0)
        env *= np.clip((t - onset) / 0.01, 0, 1)  # 10 ms attack
        for k in range(1, 9):
            y += env * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture(scope="module")
def well():
    """(forward, inverse) for the well-sampled configuration."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a well-sampled configuration must not warn
        return CQT1992v2(output_format="Complex", **WELL), iCQT(**WELL)


def in_band(y: np.ndarray, fwd: CQT1992v2) -> np.ndarray:
    freqs = fwd.frequencies()
    return band_limit(y, SR, freqs[0] * 1.03, freqs[-1] * 0.97)


def test_tone_44k_hop512_bar():
    """1 s 440 Hz at 44.1 kHz, hop 512, 84 bins from C1: >= 40 dB with the defaults
    (nnAudio2 ~39 dB; Landweber with 32 iterations > 30 dB)."""
    sr = 44100
    x = torch.from_numpy(signals.sine(440.0, sr))[None]
    fwd = CQT1992v2(sr=sr, hop_length=512, output_format="Complex")
    with pytest.warns(UserWarning, match="undersamples 17 of 84 bins"):
        inv = iCQT(sr=sr, hop_length=512)
    C = fwd(x)
    t0 = time.perf_counter()
    with pytest.warns(UserWarning, match="undersamples"):
        rec = inv(C, length=x.shape[-1])
    wall = time.perf_counter() - t0
    assert rec.shape == x.shape
    assert snr_db(x, rec) >= 40.0
    assert wall < 30.0  # ~1 s on 2 cores


@pytest.mark.parametrize("kind", ["speech", "music"])
def test_in_band_signals(well, kind):
    fwd, inv = well
    y = signals.speech_like(SR) if kind == "speech" else music_like(SR)
    x = torch.from_numpy(in_band(y, fwd))[None]
    rec = inv(fwd(x), length=x.shape[-1])
    assert snr_db(x, rec) >= 30.0  # measured ~85 dB


def test_more_iterations_help(well):
    fwd, _ = well
    inv = iCQT(tol=0.0, **WELL)
    x = torch.from_numpy(in_band(signals.speech_like(SR, duration=0.6), fwd))[None]
    C = fwd(x)
    few = snr_db(x, inv(C, length=x.shape[-1], n_iter=1))
    many = snr_db(x, inv(C, length=x.shape[-1], n_iter=8))
    assert many > few + 20.0


def test_batch_and_channels_match_single_items(well):
    fwd, inv = well
    rng = np.random.default_rng(0)
    n = 9000
    y = np.stack([in_band(rng.standard_normal(n).astype(np.float32), fwd) for _ in range(6)])
    x = torch.from_numpy(y).reshape(2, 3, n)
    x[1, 2] *= 1e-3  # very different scales: each item has its own CG scalars
    C = fwd(x)
    assert C.shape[:3] == (2, 3, 84)
    rec = inv(C, length=n)
    assert rec.shape == (2, 3, n)
    for i, j in ((0, 0), (1, 2)):
        single = inv(C[i, j : j + 1], length=n)
        torch.testing.assert_close(rec[i, j], single[0], rtol=1e-3, atol=1e-3 * float(
            single.abs().max()))
        assert snr_db(x[i, j], rec[i, j]) >= 30.0


def test_length_argument(well):
    fwd, inv = well
    n = 9000 + 17  # not a hop multiple
    x = torch.from_numpy(in_band(signals.speech_like(SR)[:n].copy(), fwd))[None]
    C = fwd(x)
    frames = C.shape[-2]
    assert frames == 1 + n // 32
    default = inv(C)
    assert default.shape == (1, 32 * (frames - 1))
    exact = inv(C, length=n)
    assert exact.shape == (1, n)
    assert snr_db(x, exact) >= 30.0
    longer = inv(C, length=n + 100)
    assert longer.shape == (1, n + 100)
    assert torch.all(longer[:, n + 31 :] == 0)  # beyond what the frames describe
    single = inv(C[0])  # (n_bins, frames, 2) -> (1, samples)
    assert single.shape == default.shape
    as_complex = inv(torch.view_as_complex(C.contiguous()), length=n)
    torch.testing.assert_close(as_complex, exact)


def test_gradients_reach_the_cqt(well):
    fwd, inv = well
    g = torch.Generator().manual_seed(0)
    x = torch.from_numpy(in_band(signals.speech_like(SR)[:9000].copy(), fwd))[None]
    C = fwd(x).detach().requires_grad_(True)
    w = torch.randn(1, 9000, generator=g)
    (inv(C, length=9000) * w).sum().backward()
    assert C.grad is not None and torch.isfinite(C.grad).all()
    assert float(C.grad.abs().max()) > 0
    # the inverse is linear in C: <dL/dC, D> equals <w, iCQT(D)> (backward is its adjoint)
    D = torch.randn(C.shape, generator=g)
    lhs = float((C.grad * D).sum())
    rhs = float((w * inv(D, length=9000)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-3)


def test_gradient_through_round_trip(well):
    """x -> CQT -> iCQT is (nearly) the identity on in-band audio, gradients included."""
    fwd, inv = well
    x = torch.from_numpy(in_band(signals.speech_like(SR)[:9000].copy(), fwd))[None]
    x.requires_grad_(True)
    rec = inv(fwd(x), length=9000)
    (rec * x.detach()).sum().backward()
    assert float((x.grad - x.detach()).norm() / x.detach().norm()) < 0.05


def test_undersampled_configuration_warns():
    assert max_hop_length(SR, 3950.68) == 72
    with pytest.warns(UserWarning, match=r"hop_length=256 undersamples .*hop_length <= 72"):
        inv = iCQT(sr=SR, hop_length=256)
    assert inv.undersampled_bins.size > 0
    fwd = CQT1992v2(sr=SR, hop_length=256, output_format="Complex")
    with pytest.warns(UserWarning, match="undersamples"):
        inv(fwd(torch.zeros(1, 9000)))


def test_zero_input_gives_zero_output(well):
    fwd, inv = well
    C = torch.zeros(1, 84, 300, 2)
    rec = inv(C)
    assert torch.isfinite(rec).all() and torch.all(rec == 0)


def test_get_config_rebuild_and_from_cqt(well):
    fwd, inv = well
    again = iCQT.from_config(inv.get_config())
    assert again.get_config() == inv.get_config()
    assert again.get_config()["transform"] == "iCQT"
    from_fwd = iCQT.from_cqt(fwd)
    assert from_fwd.get_config()["params"]["hop_length"] == 32
    x = torch.from_numpy(in_band(signals.speech_like(SR)[:9000].copy(), fwd))[None]
    C = fwd(x)
    torch.testing.assert_close(again(C, length=9000), inv(C, length=9000))
    torch.testing.assert_close(from_fwd(C, length=9000), inv(C, length=9000))
    # a CQT2010v2 config (norm=bool, basis_norm) maps onto the same operator
    c2010 = CQT2010v2(output_format="Complex", **WELL)
    inv2010 = iCQT.from_config(c2010.get_config(), n_iter=4)
    assert inv2010.get_config()["params"]["n_iter"] == 4
    assert inv2010.get_config()["params"]["normalization_type"] == "librosa"
    with pytest.raises(ParameterError, match="cannot invert"):
        iCQT.from_config({"transform": "MelSpectrogram", "params": {}})


def test_parameter_and_shape_errors(well):
    _, inv = well
    with pytest.raises(ParameterError):
        iCQT(n_iter=0, **WELL)
    with pytest.raises(ParameterError):
        iCQT(pad_mode="wrap", **WELL)
    with pytest.raises(ParameterError, match="Complex CQT"):
        inv(torch.zeros(1, 84, 10))
    with pytest.raises(ParameterError, match="Complex CQT"):
        inv(torch.zeros(1, 80, 10, 2))


@pytest.mark.parametrize(
    "params, n",
    [
        (dict(sr=22050, hop_length=512, n_bins=84), 44100),  # cqt84: long + direct kernels
        (dict(sr=22050, hop_length=512, n_bins=84), 3000),  # clip shorter than the span
        (dict(sr=22050, hop_length=128, n_bins=84, normalization_type="wrap",
              pad_mode="constant"), 60000),
        (dict(sr=16000, hop_length=64, n_bins=60, center=False), 50000),
    ],
)
def test_explicit_adjoint_equals_autograd(params, n):
    """The hand-written adjoint of the eager-CPU CQT plan (used by the solver) is the
    autograd vector-Jacobian product of the forward, to float32 round-off."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        inv = iCQT(**params)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, n, generator=gen)
    frames = inv.cqt(x).shape[-2]
    c = torch.randn(3, inv.n_bins, frames, 2, generator=gen)
    assert inv._fast(c) and inv._fast(x)
    fast_adj = inv._adjoint(c, n)
    fast_normal = inv._normal(x)
    with torch.enable_grad():
        z = torch.zeros(3, n, requires_grad=True)
        (ref_adj,) = torch.autograd.grad(inv.cqt(z), z, c)
        p = x.clone().requires_grad_(True)
        y = inv.cqt(p)
        (g,) = torch.autograd.grad(0.5 * (y * y).sum(), p)
    ref_normal = g + inv._filter(x, inv.penalty)
    assert float((fast_adj - ref_adj).norm() / ref_adj.norm()) < 1e-5
    assert float((fast_normal - ref_normal).norm() / ref_normal.norm()) < 1e-5
