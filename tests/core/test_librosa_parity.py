"""Numerical agreement of STFT / MelSpectrogram / MFCC / mel filters with librosa 0.11.

References are computed by librosa in float64 from the same float32 samples; ours run in
float32. Errors are relative Frobenius errors ``||ours - ref|| / ||ref||``.
"""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import signals
import torch

from nnaudio_core import MFCC, STFT, MelSpectrogram, filters


def rel_err(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


def as_complex(out: torch.Tensor) -> np.ndarray:
    """Our Complex output ``(1, F, T, 2)`` -> complex128 ``(F, T)``."""
    assert out.shape[0] == 1 and out.shape[-1] == 2
    a = out[0].double().numpy()
    return a[..., 0] + 1j * a[..., 1]


# (n_fft, hop_length, win_length, window)
STFT_CONFIGS = [
    (512, 128, None, "hann"),
    (1024, 256, 800, "hamming"),
    (2048, 512, None, ("kaiser", 8.0)),
    (500, 120, 400, "blackman"),
    (511, 100, None, "hann"),  # odd n_fft
]
STFT_IDS = [f"n{c[0]}-h{c[1]}-w{c[2]}-{c[3] if isinstance(c[3], str) else c[3][0]}" for c in
            STFT_CONFIGS]


@pytest.mark.parametrize("backend", ["auto", "conv"])
@pytest.mark.parametrize("pad_mode", ["reflect", "constant"])
@pytest.mark.parametrize("cfg", STFT_CONFIGS, ids=STFT_IDS)
def test_stft_complex_matches_librosa(core_audio, cfg, pad_mode, backend):
    y, sr = core_audio
    n_fft, hop, win_length, window = cfg
    m = STFT(
        n_fft=n_fft, hop_length=hop, win_length=win_length, window=window, pad_mode=pad_mode,
        sr=sr, backend=backend, output_format="Complex",
    )
    assert m.use_fft == (backend == "auto")
    ours = as_complex(m(torch.from_numpy(y)))
    ref = librosa.stft(
        y.astype(np.float64), n_fft=n_fft, hop_length=hop, win_length=win_length,
        window=window, center=True, pad_mode=pad_mode,
    )
    assert ours.shape == ref.shape
    assert ref.shape[1] == 1 + (len(y) + 2 * (n_fft // 2) - n_fft) // hop
    assert rel_err(ours, ref) <= 1e-5


@pytest.mark.parametrize("backend", ["auto", "conv"])
@pytest.mark.parametrize("cfg", STFT_CONFIGS[:3], ids=STFT_IDS[:3])
def test_stft_center_false_matches_librosa(speech_synth, cfg, backend):
    y, sr = speech_synth
    n_fft, hop, win_length, window = cfg
    m = STFT(n_fft=n_fft, hop_length=hop, win_length=win_length, window=window, center=False,
             sr=sr, backend=backend)
    ours = as_complex(m(torch.from_numpy(y)))
    ref = librosa.stft(y.astype(np.float64), n_fft=n_fft, hop_length=hop,
                       win_length=win_length, window=window, center=False)
    assert ours.shape == ref.shape
    assert rel_err(ours, ref) <= 1e-5


@pytest.mark.parametrize("backend", ["auto", "conv"])
@pytest.mark.parametrize("pad_mode", ["reflect", "constant"])
@pytest.mark.parametrize("cfg", STFT_CONFIGS[:3], ids=STFT_IDS[:3])
def test_stft_magnitude_and_phase_match_librosa(core_audio, cfg, pad_mode, backend):
    y, sr = core_audio
    n_fft, hop, win_length, window = cfg
    m = STFT(n_fft=n_fft, hop_length=hop, win_length=win_length, window=window,
             pad_mode=pad_mode, sr=sr, backend=backend, output_format="Complex")
    ref = librosa.stft(y.astype(np.float64), n_fft=n_fft, hop_length=hop,
                       win_length=win_length, window=window, pad_mode=pad_mode)
    x = torch.from_numpy(y)
    mag = m(x, output_format="Magnitude")[0].double().numpy()
    phase = m(x, output_format="Phase")[0].double().numpy()
    assert mag.shape == phase.shape == ref.shape
    assert rel_err(mag, np.abs(ref)) <= 1e-5
    # same through the constructor's output_format
    m_mag = STFT(n_fft=n_fft, hop_length=hop, win_length=win_length, window=window,
                 pad_mode=pad_mode, sr=sr, backend=backend, output_format="Magnitude")
    np.testing.assert_array_equal(m_mag(x)[0].double().numpy(), mag)

    loud = np.abs(ref) > 1e-3 * np.abs(ref).max()
    assert loud.sum() >= 100  # the comparison covers many time-frequency bins
    wrapped = np.angle(np.exp(1j * (phase - np.angle(ref))))
    assert np.abs(wrapped[loud]).max() <= 1e-3
    assert np.all(np.abs(phase) <= np.pi + 1e-6)


@pytest.mark.parametrize("freq_bins", [100, 257])
def test_stft_truncated_bins_match_librosa_rows(speech_synth, freq_bins):
    y, sr = speech_synth
    ref = librosa.stft(y.astype(np.float64), n_fft=512, hop_length=128, pad_mode="reflect")
    ref = ref[:freq_bins]
    for backend in ("auto", "conv"):
        m = STFT(n_fft=512, hop_length=128, freq_bins=freq_bins, sr=sr, backend=backend)
        ours = as_complex(m(torch.from_numpy(y)))
        assert ours.shape == ref.shape
        assert rel_err(ours, ref) <= 1e-5


def test_default_hop_is_a_quarter_window_like_librosa(speech_synth):
    y, sr = speech_synth
    m = STFT(n_fft=512, win_length=400, sr=sr)
    assert m.hop_length == 100
    ours = as_complex(m(torch.from_numpy(y)))
    ref = librosa.stft(y.astype(np.float64), n_fft=512, win_length=400, pad_mode="reflect")
    assert ours.shape == ref.shape
    assert rel_err(ours, ref) <= 1e-5
    assert MelSpectrogram(sr=sr).hop_length == 512  # nnAudio's and librosa's default


# ------------------------------------------------------------------ mel filter bank ----

MEL_NORMS = [(None, None), ("slaney", "slaney"), (1, "slaney"), (2.0, 2.0), (np.inf, np.inf)]
MEL_NORM_IDS = ["none", "slaney", "one-is-slaney", "l2", "linf"]


@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize(("norm", "librosa_norm"), MEL_NORMS, ids=MEL_NORM_IDS)
@pytest.mark.parametrize(
    ("sr", "n_fft", "n_mels", "fmin", "fmax"),
    [(16000, 512, 40, 0.0, None), (22050, 2048, 128, 30.0, 8000.0), (16000, 1024, 64, 300.0,
                                                                      6000.0)],
)
def test_mel_filterbank_matches_librosa(sr, n_fft, n_mels, fmin, fmax, htk, norm, librosa_norm):
    ours = filters.mel_filterbank(sr, n_fft, n_mels, fmin, fmax, htk, norm)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk,
                              norm=librosa_norm, dtype=np.float64)
    assert ours.shape == ref.shape == (n_mels, n_fft // 2 + 1)
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-14 * np.abs(ref).max())


def test_mel_filterbank_module_buffer_is_the_librosa_bank():
    m = MelSpectrogram(sr=22050, n_fft=1024, n_mels=80, fmin=20.0, fmax=9000.0, htk=True,
                       norm=1)
    ref = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=20.0, fmax=9000.0,
                              htk=True, norm="slaney")
    assert m.mel_basis.dtype == torch.float32
    np.testing.assert_allclose(m.mel_basis.numpy(), ref, rtol=1e-6, atol=1e-9)


def test_mel_norm_one_is_slaney_not_l1():
    """nnAudio's ``norm=1`` is Slaney area normalisation, not the unit L1 norm."""
    slaney = filters.mel_filterbank(16000, 512, 40, norm="slaney")
    np.testing.assert_array_equal(filters.mel_filterbank(16000, 512, 40, norm=1), slaney)
    l1 = librosa.filters.mel(sr=16000, n_fft=512, n_mels=40, norm=1.0, dtype=np.float64)
    assert not np.allclose(slaney, l1)


def test_hz_mel_round_trip_matches_librosa():
    f = np.array([0.0, 50.0, 440.0, 999.9, 1000.0, 1000.1, 4000.0, 11025.0])
    for htk in (False, True):
        np.testing.assert_allclose(filters.hz_to_mel(f, htk), librosa.hz_to_mel(f, htk=htk),
                                   rtol=1e-12)
        np.testing.assert_allclose(filters.mel_to_hz(filters.hz_to_mel(f, htk), htk), f,
                                   rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(filters.mel_frequencies(30, 20.0, 8000.0, htk),
                                   librosa.mel_frequencies(30, fmin=20.0, fmax=8000.0, htk=htk),
                                   rtol=1e-12)


# ------------------------------------------------------------------ MelSpectrogram ----


@pytest.mark.parametrize("power", [1.0, 2.0])
@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize(("norm", "librosa_norm"), MEL_NORMS[:4], ids=MEL_NORM_IDS[:4])
@pytest.mark.parametrize(("fmin", "fmax"), [(0.0, None), (80.0, 7000.0)])
def test_melspectrogram_matches_librosa(core_audio, fmin, fmax, norm, librosa_norm, htk, power):
    y, sr = core_audio
    kw = dict(sr=sr, n_fft=1024, hop_length=256, n_mels=64, fmin=fmin, fmax=fmax, htk=htk,
              power=power)
    m = MelSpectrogram(norm=norm, pad_mode="reflect", **kw)
    ours = m(torch.from_numpy(y))[0].double().numpy()
    ref = librosa.feature.melspectrogram(y=y.astype(np.float64), norm=librosa_norm,
                                         pad_mode="reflect", **kw)
    assert ours.shape == ref.shape == (64, 1 + len(y) // 256)
    assert rel_err(ours, ref) <= 1e-5


@pytest.mark.parametrize("backend", ["auto", "conv"])
@pytest.mark.parametrize("pad_mode", ["reflect", "constant"])
@pytest.mark.parametrize(
    ("n_fft", "hop", "win_length", "window"),
    [(2048, 512, None, "hann"), (512, 160, 400, "hamming")],
)
def test_melspectrogram_stft_options_match_librosa(
    speech_synth, n_fft, hop, win_length, window, pad_mode, backend
):
    y, sr = speech_synth
    kw = dict(sr=sr, n_fft=n_fft, hop_length=hop, win_length=win_length, window=window,
              n_mels=40, pad_mode=pad_mode)
    m = MelSpectrogram(backend=backend, **kw)
    assert m.stft.use_fft == (backend == "auto")
    ours = m(torch.from_numpy(y))[0].double().numpy()
    ref = librosa.feature.melspectrogram(y=y.astype(np.float64), **kw)
    assert rel_err(ours, ref) <= 1e-5


# ------------------------------------------------------------------ MFCC ----


@pytest.mark.parametrize(("n_mfcc", "n_mels"), [(13, 40), (20, 128), (40, 40)])
def test_mfcc_matches_librosa(core_audio, n_mfcc, n_mels):
    y, sr = core_audio
    m = MFCC(sr=sr, n_mfcc=n_mfcc, n_mels=n_mels)
    ours = m(torch.from_numpy(y))[0].double().numpy()
    ref = librosa.feature.mfcc(y=y.astype(np.float64), sr=sr, n_mfcc=n_mfcc, n_mels=n_mels,
                               pad_mode="reflect")
    assert ours.shape == ref.shape == (n_mfcc, 1 + len(y) // 512)
    assert rel_err(ours, ref) <= 1e-4


@pytest.mark.parametrize(
    "kw",
    [
        dict(n_fft=512, hop_length=128, fmin=50.0, fmax=7000.0, htk=True),
        dict(n_fft=1024, hop_length=160, win_length=400, top_db=None),
        dict(n_fft=512, hop_length=256, top_db=40.0, ref=10.0, amin=1e-6),
    ],
    ids=["htk-band", "no-top-db", "ref-amin-topdb"],
)
def test_mfcc_options_match_librosa(speech_synth, kw):
    y, sr = speech_synth
    m = MFCC(sr=sr, n_mfcc=20, n_mels=64, **kw)
    ours = m(torch.from_numpy(y))[0].double().numpy()
    mel_kw = {k: v for k, v in kw.items() if k not in ("top_db", "ref", "amin")}
    S = librosa.feature.melspectrogram(y=y.astype(np.float64), sr=sr, n_mels=64,
                                       pad_mode="reflect", **mel_kw)
    db = librosa.power_to_db(S, ref=kw.get("ref", 1.0), amin=kw.get("amin", 1e-10),
                             top_db=kw.get("top_db", 80.0))
    ref = librosa.feature.mfcc(S=db, n_mfcc=20)
    assert rel_err(ours, ref) <= 1e-4


def test_dct_matrix_is_scipy_ortho_dct():
    import scipy.fft

    x = np.random.default_rng(0).standard_normal((40, 7))
    D = filters.dct_matrix(13, 40)
    np.testing.assert_allclose(D @ x, scipy.fft.dct(x, type=2, norm="ortho", axis=0)[:13],
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(D @ D.T, np.eye(13), atol=1e-12)


# ------------------------------------------------------------------ FFT path vs kernel path ----


@pytest.mark.parametrize("fmt", ["Complex", "Magnitude"])
@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("cfg", STFT_CONFIGS, ids=STFT_IDS)
def test_fft_and_conv_paths_agree(cfg, center, fmt):
    y = signals.chirp_with_noise(16000)
    n_fft, hop, win_length, window = cfg
    kw = dict(n_fft=n_fft, hop_length=hop, win_length=win_length, window=window, sr=16000,
              center=center, output_format=fmt)
    fft_m, conv_m = STFT(backend="fft", **kw), STFT(backend="conv", **kw)
    assert fft_m.use_fft and not conv_m.use_fft
    x = torch.from_numpy(y)
    a, b = fft_m(x).double().numpy(), conv_m(x).double().numpy()
    assert a.shape == b.shape
    assert rel_err(b, a) <= 1e-5


def test_mel_and_mfcc_fft_and_conv_paths_agree(speech_synth):
    y, sr = speech_synth
    x = torch.from_numpy(y)
    kw = dict(sr=sr, n_fft=1024, hop_length=256, n_mels=48)
    a = MelSpectrogram(backend="auto", **kw)(x).double().numpy()
    b = MelSpectrogram(backend="conv", **kw)(x).double().numpy()
    assert rel_err(b, a) <= 1e-5
    a = MFCC(n_mfcc=20, backend="auto", **kw)(x).double().numpy()
    b = MFCC(n_mfcc=20, backend="conv", **kw)(x).double().numpy()
    assert rel_err(b, a) <= 1e-5
