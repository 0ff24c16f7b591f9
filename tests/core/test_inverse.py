"""iSTFT / STFT.inverse: exact round trips on the uniform grid, refusal on the others."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import signals
import torch
from support import snr_db

from nnaudio_core import STFT, NonInvertibleError, ParameterError, iSTFT

# (n_fft, hop_length, win_length, window)
ROUND_TRIP_CONFIGS = [
    (512, 128, None, "hann"),
    (1024, 256, 800, "hann"),
    (400, 100, None, "hamming"),
    (511, 128, None, "hann"),
]
RT_IDS = [f"n{c[0]}-h{c[1]}-w{c[2]}-{c[3]}" for c in ROUND_TRIP_CONFIGS]


@pytest.mark.parametrize("backend", ["auto", "conv"])
@pytest.mark.parametrize("cfg", ROUND_TRIP_CONFIGS, ids=RT_IDS)
def test_stft_inverse_round_trip_center(core_audio, cfg, backend):
    y, sr = core_audio
    n_fft, hop, win_length, window = cfg
    m = STFT(n_fft=n_fft, hop_length=hop, win_length=win_length, window=window, sr=sr,
             iSTFT=True, backend=backend)
    assert m.inverse_fft == (backend == "auto")
    x = torch.from_numpy(y)[None]
    X = m(x)
    rec = m.inverse(X, length=x.shape[-1])
    assert rec.shape == x.shape
    assert snr_db(x, rec) >= 100.0


@pytest.mark.parametrize("backend", ["auto", "fft", "conv"])
@pytest.mark.parametrize("cfg", ROUND_TRIP_CONFIGS, ids=RT_IDS)
def test_istft_module_round_trip_center(core_audio, cfg, backend):
    y, sr = core_audio
    n_fft, hop, win_length, window = cfg
    kw = dict(n_fft=n_fft, hop_length=hop, win_length=win_length, window=window, sr=sr)
    inv = iSTFT(backend=backend, **kw)
    assert inv.use_fft == (backend != "conv")
    x = torch.from_numpy(y)[None]
    X = STFT(**kw)(x)
    rec = inv(X, length=x.shape[-1])
    assert rec.shape == x.shape
    assert snr_db(x, rec) >= 100.0


@pytest.mark.parametrize("backend", ["auto", "conv"])
def test_inverse_without_length_gives_hop_multiple(backend):
    y = signals.speech_like(16000)
    n = 16000 - 37  # not a hop multiple
    x = torch.from_numpy(y[:n])[None]
    m = STFT(n_fft=512, hop_length=128, iSTFT=True, backend=backend)
    X = m(x)
    rec = m.inverse(X)
    assert rec.shape[-1] == 128 * (X.shape[-2] - 1)
    k = min(n, rec.shape[-1])
    assert snr_db(x[..., :k], rec[..., :k]) >= 100.0
    # length longer than the signal: zero padded at the end
    longer = m.inverse(X, length=n + 300)
    assert longer.shape[-1] == n + 300
    torch.testing.assert_close(longer[..., :n], m.inverse(X, length=n), rtol=0, atol=0)
    available = 512 + 128 * (X.shape[-2] - 1) - 256  # overlap-added length minus the padding
    assert available < n + 300
    assert torch.all(longer[..., available:] == 0)
    assert torch.any(longer[..., available - 1] != 0)


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("length", [None, 15000, 16100])
@pytest.mark.parametrize("backend", ["auto", "conv"])
def test_istft_matches_librosa_istft(center, length, backend):
    """Same samples as librosa.istft for an arbitrary (not necessarily consistent) spectrum."""
    rng = np.random.default_rng(7)
    Xc = rng.standard_normal((257, 120)) + 1j * rng.standard_normal((257, 120))
    Xc[0].imag = 0
    Xc[-1].imag = 0
    X = torch.from_numpy(np.stack([Xc.real, Xc.imag], -1).astype(np.float32))[None]
    inv = iSTFT(n_fft=512, hop_length=128, window="hann", center=center, backend=backend)
    ours = inv(X, length=length)[0].double().numpy()
    ref = librosa.istft(Xc, hop_length=128, n_fft=512, window="hann", center=center,
                        length=length)
    assert ours.shape == ref.shape
    sl = slice(None) if center else slice(512, -512)  # edges: window sum-square ~ 0
    err = np.linalg.norm(ours[sl] - ref[sl]) / np.linalg.norm(ref[sl])
    assert err <= 1e-5


@pytest.mark.parametrize("backend", ["auto", "conv"])
@pytest.mark.parametrize("use_module", [False, True], ids=["STFT.inverse", "iSTFT"])
def test_round_trip_center_false(use_module, backend):
    """center=False: exact wherever the window sum-square is not ~0.

    A Hamming window (non-zero at its ends) with frames covering the whole signal is exact
    everywhere; a Hann window is exact away from the first/last ``n_fft`` samples.
    """
    n_fft, hop = 512, 128
    n = n_fft + hop * 120  # frames cover every sample
    y = torch.from_numpy(signals.chirp_with_noise(16000)[:n])[None]
    for window, margin in (("hamming", 0), ("hann", n_fft)):
        kw = dict(n_fft=n_fft, hop_length=hop, window=window, center=False, sr=16000)
        fwd = STFT(iSTFT=True, backend=backend, **kw)
        X = fwd(y)
        assert X.shape[-2] == 121
        if use_module:
            rec = iSTFT(backend=backend, **kw)(X, length=n)
            rec_none = iSTFT(backend=backend, **kw)(X)
        else:
            rec = fwd.inverse(X, length=n)
            rec_none = fwd.inverse(X)
        assert rec.shape == y.shape == rec_none.shape
        sl = slice(margin, n - margin)
        assert snr_db(y[..., sl], rec[..., sl]) >= 100.0, window
        torch.testing.assert_close(rec_none, rec, rtol=0, atol=0)


def test_istft_accepts_two_sided_and_unbatched_input():
    y = torch.from_numpy(signals.harmonic_tone(22050))
    m = STFT(n_fft=512, hop_length=128, iSTFT=True)
    X = m(y)  # (1, 257, T, 2)
    rec = iSTFT(n_fft=512, hop_length=128)(X[0], length=len(y))  # (257, T, 2) -> (1, n)
    assert rec.shape == (1, len(y))
    assert snr_db(y[None], rec) >= 100.0
    # a two-sided input (n_fft bins, onesided=False) is detected: its positive half is used
    X2 = torch.cat([X, torch.zeros(1, 512 - 257, X.shape[2], 2)], dim=1)
    rec2 = m.inverse(X2, length=len(y))
    torch.testing.assert_close(rec2, m.inverse(X, length=len(y)), rtol=0, atol=0)


@pytest.mark.parametrize("freq_scale", ["linear", "log", "log2"])
def test_inverse_refused_off_the_fft_grid(freq_scale):
    y = torch.from_numpy(signals.speech_like(16000))[None]
    X = STFT(n_fft=512, hop_length=128, sr=16000)(y)
    m = STFT(n_fft=512, hop_length=128, sr=16000, freq_scale=freq_scale, fmin=60.0,
             fmax=7000.0, iSTFT=True)
    Xs = m(y)
    assert Xs.shape == X.shape  # same number of bins, but not the FFT grid
    with pytest.raises(NonInvertibleError, match="freq_scale") as info:
        m.inverse(Xs)
    assert freq_scale in str(info.value)
    inv = iSTFT(n_fft=512, hop_length=128, sr=16000, freq_scale=freq_scale)
    with pytest.raises(NonInvertibleError, match="freq_scale") as info:
        inv(X)
    assert freq_scale in str(info.value)


def test_inverse_refused_with_truncated_bins():
    m = STFT(n_fft=512, hop_length=128, freq_bins=200, iSTFT=True)
    X = m(torch.randn(1, 4000))
    with pytest.raises(NonInvertibleError, match="257"):
        m.inverse(X)


def test_istft_rejects_wrong_bin_count_and_format():
    inv = iSTFT(n_fft=512, hop_length=128)
    with pytest.raises(ParameterError, match="257"):
        inv(torch.zeros(1, 200, 10, 2))
    with pytest.raises(ParameterError, match="Complex"):
        inv(torch.zeros(1, 257, 10))


def test_inverse_is_linear_and_batched():
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.standard_normal((4, 6000)).astype(np.float32))
    m = STFT(n_fft=256, hop_length=64, iSTFT=True)
    X = m(x)
    rec = m.inverse(X, length=6000)
    assert rec.shape == (4, 6000)
    for b in range(4):
        assert snr_db(x[b], rec[b]) >= 100.0
        torch.testing.assert_close(rec[b : b + 1], m.inverse(X[b : b + 1], length=6000),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("as_config", [False, True], ids=["module", "config"])
def test_istft_from_stft_inverts_a_non_default_stft(as_config):
    """from_stft takes over n_fft, win_length, hop_length, window and center: a hamming,
    uncentred STFT with win_length < n_fft comes back to float32 round-off."""
    x = torch.from_numpy(signals.speech_like(16000))[None]
    stft = STFT(n_fft=400, win_length=300, hop_length=80, window="hamming", center=False,
                sr=16000)
    inv = iSTFT.from_stft(stft.get_config() if as_config else stft)
    assert (inv.n_fft, inv.hop_length, inv.center, inv.sr) == (400, 80, False, 16000)
    y = inv(stft(x), length=x.shape[-1])
    # uncentred: the first and last n_fft samples are not fully covered by windows
    inner = slice(400, x.shape[-1] - 400)
    torch.testing.assert_close(y[..., inner], x[..., inner], atol=1e-4, rtol=0)


def test_istft_from_stft_overrides_and_refuses_other_transforms():
    stft = STFT(n_fft=256, hop_length=64)
    assert iSTFT.from_stft(stft, center=False).center is False
    assert iSTFT.from_stft({"n_fft": 512}).hop_length == 128  # STFT's defaults fill in
    with pytest.raises(ParameterError, match="MelSpectrogram"):
        iSTFT.from_stft({"transform": "MelSpectrogram", "params": {}})
