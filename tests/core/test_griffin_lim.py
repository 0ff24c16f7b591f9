"""Griffin_Lim (fast Griffin-Lim with momentum) and spectral_convergence."""

from __future__ import annotations

import numpy as np
import pytest
import signals
import torch

from nnaudio_core.errors import ParameterError
from nnaudio_core.features.griffin_lim import Griffin_Lim, spectral_convergence
from nnaudio_core.features.stft import STFT

SR = 16000
KW = dict(n_fft=512, hop_length=128)


@pytest.fixture(scope="module")
def speech():
    """(waveform (1, samples), magnitude (1, 257, frames), magnitude STFT module)."""
    x = torch.from_numpy(signals.speech_like(SR))[None]
    stft = STFT(output_format="Magnitude", **KW)
    return x, stft(x), stft


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_convergence_improves_with_iterations(speech):
    x, S, _ = speech
    gl = Griffin_Lim(**KW)
    y4 = gl(S, length=x.shape[-1], n_iter=4, generator=seeded())
    y32 = gl(S, length=x.shape[-1], n_iter=32, generator=seeded())
    sc4 = float(gl.spectral_convergence(S, y4)[0])
    sc32 = float(gl.spectral_convergence(S, y32)[0])
    assert sc32 < 0.5 * sc4  # measured 0.27 -> 0.065
    assert sc32 < 0.1


def test_history_matches_final_estimate(speech):
    x, S, stft = speech
    gl = Griffin_Lim(n_iter=16, **KW)
    y, history = gl.reconstruct(S, generator=seeded())
    assert history.shape == (1, 16)
    assert y.shape == (1, 128 * (S.shape[-1] - 1))
    assert float(history[0, -1]) == pytest.approx(float(spectral_convergence(S, y, stft)[0]),
                                                  rel=1e-4)
    h = history[0].numpy()
    assert h[-1] < h[0] and np.all(np.diff(h) < 0.01)  # decreasing (up to momentum wiggles)


def test_momentum_beats_classic(speech):
    x, S, _ = speech
    fast = Griffin_Lim(n_iter=24, **KW).reconstruct(S, generator=seeded())[1][0, -1]
    classic = Griffin_Lim(n_iter=24, momentum=0.0, **KW).reconstruct(S, generator=seeded())[1]
    assert float(fast) < 0.8 * float(classic[0, -1])


def test_tone_comes_back():
    """A steady tone from zero phase: close magnitude, same level."""
    x = torch.from_numpy(signals.sine(440.0, SR, duration=0.5))[None]
    S = STFT(output_format="Magnitude", **KW)(x)
    gl = Griffin_Lim(n_iter=32, rand_init=False, **KW)
    y = gl(S, length=x.shape[-1])
    assert float(gl.spectral_convergence(S, y)[0]) < 0.15  # measured 0.12
    # the phase is lost, the level is not
    assert float(y.pow(2).mean()) == pytest.approx(float(x.pow(2).mean()), rel=0.02)


def test_gradients_reach_the_magnitude(speech):
    x, S, _ = speech
    gl = Griffin_Lim(n_iter=8, **KW)
    mag = S[..., :40].detach().clone().requires_grad_(True)
    y = gl(mag, generator=seeded())
    y.pow(2).sum().backward()
    assert mag.grad is not None and torch.isfinite(mag.grad).all()
    assert float(mag.grad.abs().max()) > 0


def test_seeding_and_zero_phase(speech):
    x, S, _ = speech
    S = S[..., :60]
    gl = Griffin_Lim(n_iter=4, **KW)
    a = gl(S, generator=seeded(1))
    b = gl(S, generator=seeded(1))
    c = gl(S, generator=seeded(2))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    zero = Griffin_Lim(n_iter=4, rand_init=False, **KW)
    ones = torch.stack([torch.ones_like(S), torch.zeros_like(S)], dim=-1)  # angle 0
    want = zero.reconstruct(S, init_angles=ones)[0]
    torch.testing.assert_close(zero(S), want, rtol=0, atol=0)


def test_batch_shapes_and_length(speech):
    x, S, stft = speech
    n = 4000 + 37
    xs = torch.stack([x[0, :n], 0.5 * x[0, 4000 : 4000 + n], x[0, 8000 : 8000 + n]])
    xs = torch.stack([xs, xs.flip(-1)])  # (2, 3, n)
    mags = stft(xs)
    assert mags.shape == (2, 3, 257, 1 + n // 128)
    gl = Griffin_Lim(n_iter=16, **KW)
    y, history = gl.reconstruct(mags, length=n, generator=seeded())
    assert y.shape == (2, 3, n)
    assert history.shape == (2, 3, 16)
    sc = gl.spectral_convergence(mags, y)
    assert sc.shape == (2, 3)
    assert torch.all(sc < 0.3)
    single = gl(mags[0, 0], generator=seeded())  # (bins, frames) -> (1, samples)
    assert single.shape == (1, 128 * (mags.shape[-1] - 1))
    longer = gl(mags[0, :1], length=n + 500, n_iter=2, generator=seeded())
    assert longer.shape == (1, n + 500)
    assert torch.all(longer[:, n + 128 :] == 0)


def test_spectral_convergence_helper(speech):
    x, S, stft = speech
    """||S - T||_F / ||S||_F per item, against numpy on a perturbed T and a scaled waveform."""
    noise = torch.from_numpy(np.random.default_rng(0).standard_normal(S.shape).astype(np.float32))
    T = S * (1 + 0.1 * noise)
    want = np.linalg.norm((S - T).double().numpy()) / np.linalg.norm(S.double().numpy())
    assert float(spectral_convergence(S, T)[0]) == pytest.approx(want, rel=1e-5)
    assert float(spectral_convergence(S, 0.5 * x, stft)[0]) == pytest.approx(0.5, rel=1e-5)
    with pytest.raises(ParameterError, match="pass stft="):
        spectral_convergence(S, x)


def test_config_rebuild_and_errors():
    gl = Griffin_Lim(n_fft=400, n_iter=10, hop_length=100, window="hamming", momentum=0.9,
                     device="cpu")
    again = Griffin_Lim.from_config(gl.get_config())
    assert again.get_config() == gl.get_config()
    assert again.hop_length == 100 and again.stft.n_fft == 400
    assert Griffin_Lim(n_fft=512).hop_length == 128  # win_length // 4, as nnAudio
    with pytest.raises(ParameterError):
        Griffin_Lim(n_fft=512, momentum=1.0)
    with pytest.raises(ParameterError):
        Griffin_Lim(n_fft=512, n_iter=0)
    with pytest.raises(ParameterError, match="257"):
        Griffin_Lim(n_fft=512)(torch.ones(1, 256, 10))


def test_large_batch_runs_in_chunks_with_the_same_numbers(speech, monkeypatch):
    """A batch larger than one cache-sized chunk is iterated a few items at a time; each
    item's waveform and convergence equal those of the item inverted alone."""
    import nnaudio_core.features.griffin_lim as gl_mod

    _, mag, _ = speech
    batch = torch.cat([mag, 0.5 * mag, 2.0 * mag])  # (3, 257, frames)
    per_item = 257 * mag.shape[-1]
    monkeypatch.setattr(gl_mod, "CACHE_VALUES", per_item)  # one item per chunk
    gl = Griffin_Lim(n_iter=8, **KW)
    angles = torch.rand(batch.shape, generator=seeded(5)) * (2 * torch.pi)
    init = torch.stack((torch.cos(angles), torch.sin(angles)), -1)
    with torch.no_grad():
        wav, hist = gl.reconstruct(batch, init_angles=init, keep_history=False)
        for i in range(3):
            w1, h1 = gl.reconstruct(batch[i : i + 1], init_angles=init[i : i + 1],
                                    keep_history=False)
            scale = float(w1.abs().max())
            assert float((wav[i] - w1[0]).abs().max()) <= 1e-5 * scale
            assert abs(float(hist[i, -1]) - float(h1[0, -1])) < 1e-5
