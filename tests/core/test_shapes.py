"""Shape contracts, multichannel input, short clips, frequency grids and blocked computation."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import signals
import torch

from nnaudio_core import CFP, MFCC, STFT, Gammatonegram, MelSpectrogram, ParameterError, iSTFT

SR = 16000


def multichannel(n: int = 6000) -> torch.Tensor:
    """(2, 3, n): six different signals."""
    makers = [
        lambda s: signals.chirp_with_noise(SR, 1.0, seed=s),
        lambda s: signals.speech_like(SR, 1.0, seed=s),
        lambda s: signals.harmonic_tone(SR, 1.0, f0=150.0 + 40 * s, seed=s),
    ]
    rows = [[makers[c](b)[:n] for c in range(3)] for b in range(2)]
    return torch.from_numpy(np.array(rows, dtype=np.float32))


MODULES = {
    "stft-complex": lambda: STFT(n_fft=256, hop_length=64, sr=SR, output_format="Complex"),
    "stft-magnitude": lambda: STFT(n_fft=256, hop_length=64, sr=SR, output_format="Magnitude"),
    "stft-phase": lambda: STFT(n_fft=256, hop_length=64, sr=SR, output_format="Phase"),
    "stft-conv-log": lambda: STFT(n_fft=256, hop_length=64, sr=SR, freq_scale="log", fmin=60.0,
                                  fmax=7000.0, output_format="Magnitude"),
    "mel": lambda: MelSpectrogram(sr=SR, n_fft=256, hop_length=64, n_mels=32),
    "mfcc": lambda: MFCC(sr=SR, n_fft=256, hop_length=64, n_mels=32, n_mfcc=13),
    "gammatone": lambda: Gammatonegram(sr=SR, n_fft=256, hop_length=64, n_bins=32),
    "cfp": lambda: CFP(fs=SR, hop_length=64),
}
# bins and trailing dims of each module's output for 6000 samples at hop 64: 94 frames
OUT_TAIL = {
    "stft-complex": (129, 94, 2),
    "stft-magnitude": (129, 94),
    "stft-phase": (129, 94),
    "stft-conv-log": (129, 94),
    "mel": (32, 94),
    "mfcc": (13, 94),
    "gammatone": (32, 94),
    "cfp": (174, 94),
}


def assert_per_item_close(a: torch.Tensor, b: torch.Tensor, phase: bool = False) -> None:
    if phase:  # compare angles on the unit circle
        a, b = torch.polar(torch.ones_like(a), a), torch.polar(torch.ones_like(b), b)
        a, b = torch.view_as_real(a), torch.view_as_real(b)
    scale = float(b.abs().max())
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("name", list(MODULES))
def test_multichannel_equals_each_channel_alone(name):
    m = MODULES[name]()
    x = multichannel()
    out = m(x)
    assert out.shape == (2, 3) + OUT_TAIL[name]
    for b in range(2):
        for c in range(3):
            alone = m(x[b, c])
            assert alone.shape == (1,) + OUT_TAIL[name]
            if name == "stft-phase":  # only where the magnitude is not tiny
                mag = STFT(n_fft=256, hop_length=64)(x[b, c], output_format="Magnitude")[0]
                loud = mag > 1e-3 * mag.max()
                assert_per_item_close(out[b, c][loud], alone[0][loud], phase=True)
            else:
                assert_per_item_close(out[b, c], alone[0])


@pytest.mark.parametrize("backend", ["auto", "conv"])
def test_istft_multichannel_equals_each_channel_alone(backend):
    x = multichannel()
    fwd = STFT(n_fft=256, hop_length=64, sr=SR)
    X = fwd(x)
    inv = iSTFT(n_fft=256, hop_length=64, sr=SR, backend=backend)
    rec = inv(X, length=x.shape[-1])
    assert rec.shape == x.shape
    for b in range(2):
        for c in range(3):
            alone = inv(X[b, c], length=x.shape[-1])
            assert alone.shape == (1, x.shape[-1])
            assert_per_item_close(rec[b, c], alone[0])
    torch.testing.assert_close(rec, x, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", list(MODULES))
def test_input_layouts(name):
    m = MODULES[name]()
    x = multichannel()[0]  # (3, n)
    tail = OUT_TAIL[name]
    batch = m(x)
    assert batch.shape == (3,) + tail
    single = m(x[0])  # (samples,) -> (1, F, T)
    assert single.shape == (1,) + tail
    mono_channel = m(x[:, None, :])  # (B, 1, samples) -> (B, F, T)
    assert mono_channel.shape == (3,) + tail
    torch.testing.assert_close(mono_channel, batch, rtol=0, atol=0)
    assert_per_item_close(single[0], batch[0], phase=name == "stft-phase")


def test_stft_output_format_override_per_call():
    x = multichannel()[0]
    m = STFT(n_fft=256, hop_length=64, output_format="Magnitude")
    c = m(x, output_format="Complex")
    assert c.shape[-1] == 2
    torch.testing.assert_close(m(x), c.pow(2).sum(-1).sqrt(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m(x, "Phase"), torch.atan2(c[..., 1], c[..., 0]))
    with pytest.raises(ParameterError, match="Mag"):
        m(x, output_format="Mag")


# ------------------------------------------------------------------ short clips ----


@pytest.mark.parametrize("n_fft", [512, 2048, 511])
@pytest.mark.parametrize("make", [
    lambda n_fft: STFT(n_fft=n_fft, hop_length=128),
    lambda n_fft: MelSpectrogram(n_fft=n_fft, hop_length=128, n_mels=16),
    lambda n_fft: MFCC(n_fft=n_fft, hop_length=128, n_mels=16, n_mfcc=8),
], ids=["stft", "mel", "mfcc"])
def test_reflect_padding_works_for_any_length_like_numpy(make, n_fft):
    # shorter than the pad: reflected back and forth as numpy.pad(mode="reflect")
    m = make(n_fft)
    pad = n_fft // 2
    for n in (1, 2, n_fft // 4, pad, pad + 1):
        x = torch.randn(1, n)
        out = m(x)
        assert out.shape[2] == 1 + (n + 2 * pad - n_fft) // 128
        padded = np.pad(x[0].double().numpy(), pad, mode="reflect")
        # same frames as the transform of the numpy-padded signal without centring
        twin = make(n_fft)
        (twin.stft if hasattr(twin, "stft") else twin).center = False
        if hasattr(twin, "melspec"):
            twin.melspec.stft.center = False
        ref = twin(torch.from_numpy(padded).float()[None])
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


@pytest.mark.filterwarnings("ignore:n_fft=.*is too large:UserWarning")  # librosa's
@pytest.mark.parametrize("n", [1, 7, 100, 300])
@pytest.mark.parametrize("backend", ["auto", "conv"])
def test_constant_padding_works_on_very_short_clips(n, backend):
    y = signals.chirp_with_noise(SR)[:n]
    m = STFT(n_fft=512, hop_length=128, pad_mode="constant", backend=backend)
    out = m(torch.from_numpy(y))
    assert out.shape == (1, 257, 1 + n // 128, 2)
    ref = librosa.stft(y.astype(np.float64), n_fft=512, hop_length=128, pad_mode="constant")
    ours = out[0, ..., 0].double().numpy() + 1j * out[0, ..., 1].double().numpy()
    assert np.linalg.norm(ours - ref) / np.linalg.norm(ref) <= 1e-5
    mel = MelSpectrogram(sr=SR, n_fft=512, hop_length=128, n_mels=16, pad_mode="constant",
                         backend=backend)(torch.from_numpy(y))
    assert mel.shape == (1, 16, 1 + n // 128) and torch.isfinite(mel).all()


@pytest.mark.parametrize("make", [
    lambda: STFT(n_fft=512, hop_length=128, center=False),
    lambda: STFT(n_fft=512, hop_length=128, center=False, backend="conv"),
    lambda: MelSpectrogram(n_fft=512, hop_length=128, n_mels=16, center=False),
    lambda: MFCC(n_fft=512, hop_length=128, n_mels=16, n_mfcc=8, center=False),
    lambda: Gammatonegram(n_fft=512, hop_length=128, n_bins=16, center=False),
    lambda: CFP(fr=31.25, fs=16000, hop_length=128, window_size=511, center=False),
], ids=["stft", "stft-conv", "mel", "mfcc", "gammatone", "cfp"])
def test_center_false_needs_one_frame(make):
    m = make()
    for n in (1, 300, 511):
        with pytest.raises(ParameterError, match="n_fft=512"):
            m(torch.randn(1, n))
    assert m(torch.randn(1, 512)).shape[2] == 1
    assert m(torch.randn(1, 512 + 127)).shape[2] == 1
    assert m(torch.randn(1, 512 + 128)).shape[2] == 2


def test_scalar_input_rejected():
    with pytest.raises(ParameterError, match="scalar"):
        STFT(n_fft=64, pad_mode="constant")(torch.tensor(1.0))


# regression: pack_batch used reshape(-1, 0), a RuntimeError before the ValueError below
@pytest.mark.parametrize("shape", [(1, 0), (0,), (2, 3, 0), (4, 1, 0)])
@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
def test_empty_input_raises_value_error(pad_mode, shape):
    for m in (STFT(n_fft=64, pad_mode=pad_mode),
              MelSpectrogram(n_fft=64, n_mels=8, pad_mode=pad_mode),
              STFT(n_fft=64, center=False)):
        with pytest.raises(ParameterError, match="0 samples"):
            m(torch.zeros(shape))


# ------------------------------------------------------------------ frequency grids ----


def mean_magnitude(m: STFT, y: np.ndarray) -> np.ndarray:
    mag = m(torch.from_numpy(y), output_format="Magnitude")[0].double().numpy()
    return mag[:, 2:-2].mean(axis=1)  # skip the padded edge frames


@pytest.mark.parametrize("backend", ["auto", "conv"])
@pytest.mark.parametrize("sr", [16000, 22050])
def test_sine_peak_on_the_fft_grid(sr, backend):
    m = STFT(n_fft=1024, hop_length=256, sr=sr, backend=backend)
    freqs = m.frequencies()
    np.testing.assert_allclose(freqs, librosa.fft_frequencies(sr=sr, n_fft=1024), rtol=1e-12)
    for k in (3, 37, 200, 480):
        y = signals.sine(freqs[k], sr, 0.5, phase=0.3)
        assert np.argmax(mean_magnitude(m, y)) == k


@pytest.mark.parametrize("freq_scale", ["linear", "log", "log2"])
def test_sine_peak_on_linear_and_log_grids(freq_scale):
    sr, fmin, fmax, bins = 16000, 100.0, 7500.0, 120
    m = STFT(n_fft=4096, hop_length=1024, sr=sr, freq_bins=bins, freq_scale=freq_scale,
             fmin=fmin, fmax=fmax, output_format="Magnitude")
    freqs = m.frequencies()
    k = np.arange(bins)
    if freq_scale == "linear":
        expected = fmin + (fmax - fmin) * k / bins
    else:
        expected = fmin * (fmax / fmin) ** (k / bins)
    np.testing.assert_allclose(freqs, expected, rtol=1e-12)
    assert freqs.shape == (bins,)
    assert m(torch.zeros(1, 8000)).shape == (1, bins, 8)
    # bins spaced at least ~2 FFT bins (7.8 Hz) apart: the resolution tells them apart
    picks = [j for j in range(0, bins, 7) if j + 1 < bins and freqs[j + 1] - freqs[j] > 7.8]
    assert len(picks) >= 8
    for j in picks:
        y = signals.sine(freqs[j], sr, 1.0, phase=1.1)
        assert np.argmax(mean_magnitude(m, y)) == j, (j, freqs[j])


@pytest.mark.parametrize("freq_scale", ["linear", "log", "log2"])
def test_frequency_grids_are_nnaudio2s(freq_scale: str):
    """The bin centres of every frequency scale equal nnAudio2's independently written
    ``bins2freq`` (measured 1e-11 Hz apart)."""
    nn2 = pytest.importorskip("nnAudio2.features")
    kw = dict(n_fft=1024, sr=16000, freq_bins=100, fmin=50.0, fmax=8000.0)
    ours = STFT(freq_scale=freq_scale, **kw).frequencies()
    theirs = nn2.STFT(freq_scale=freq_scale, verbose=False, **kw).bins2freq
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-9)


@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize("norm", [None, 1, 2.0])
def test_mel_peak_band_matches_frequencies(htk, norm):
    sr = 16000
    m = MelSpectrogram(sr=sr, n_fft=2048, hop_length=512, n_mels=40, fmin=0.0, htk=htk,
                       norm=norm)
    freqs = m.frequencies()
    np.testing.assert_allclose(
        freqs, librosa.mel_frequencies(42, fmin=0.0, fmax=sr / 2, htk=htk)[1:-1], rtol=1e-12
    )
    # the centre of each triangle is its peak
    basis = m.mel_basis.double().numpy()
    fft_freqs = librosa.fft_frequencies(sr=sr, n_fft=2048)
    assert np.all(np.abs(fft_freqs[basis.argmax(axis=1)] - freqs) <= sr / 2048)
    for j in (2, 8, 17, 25, 33, 38):
        y = signals.sine(freqs[j], sr, 0.5)
        mel = m(torch.from_numpy(y))[0].double().numpy()[:, 2:-2].mean(axis=1)
        assert np.argmax(mel) == j


def test_mfcc_and_istft_frequencies():
    assert np.array_equal(MFCC(n_mfcc=13).frequencies(), np.arange(13))
    np.testing.assert_allclose(iSTFT(n_fft=512, sr=16000).frequencies(),
                               np.arange(257) * 16000 / 512)


def test_frequencies_returns_a_copy():
    m = STFT(n_fft=256, sr=16000)
    f = m.frequencies()
    f[:] = -1
    assert m.frequencies()[1] == 16000 / 256


# ------------------------------------------------------------------ blocked computation ----


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize(
    ("block_samples", "n_segments"),
    [(512 * 7, (12, 11)), (512 * 40, (2, 2)), (512 * 100, (1, 1)), (512 * 200, (1, 1)),
     (512 * 1000, (1, 1))],
)
@pytest.mark.parametrize("backend", ["auto", "conv"])
def test_cache_blocks_do_not_change_the_result(
    backend, block_samples, n_segments, batch, center
):
    """The CPU path cuts the work into blocks of frames (along the batch or along time);
    any block size gives the same spectrogram as one block."""
    rng = np.random.default_rng(11)
    x = torch.from_numpy(rng.standard_normal((batch, 12345)).astype(np.float32))
    kw = dict(n_fft=512, hop_length=160, sr=SR, center=center, backend=backend)
    whole = STFT(**kw)
    whole.cpu_block_samples = 1 << 40
    blocked = STFT(**kw)
    blocked.cpu_block_samples = block_samples
    # 78 frames (center) or 74 per item: split along time (per item) or grouped along the batch
    parts, time_blocks = blocked.segments(blocked.pad(x))
    max_frames = block_samples // 512
    n_frames = 78 if center else 74
    if n_frames * batch <= max_frames:
        assert len(parts) == 1
    elif n_frames < max_frames:
        per = max_frames // n_frames
        assert time_blocks == 1 and len(parts) == -(-batch // per)
    else:
        assert time_blocks == n_segments[0 if center else 1] and len(parts) == batch * time_blocks
    for fmt in ("Complex", "Magnitude", "Phase"):
        a, b = blocked(x, fmt), whole(x, fmt)
        assert a.shape == b.shape
        if fmt == "Phase":
            continue  # angles of ~0 bins are round-off; Complex covers the same numbers
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))
    mel_whole = MelSpectrogram(sr=SR, n_fft=512, hop_length=160, n_mels=32, center=center,
                               backend=backend)
    mel_whole.stft.cpu_block_samples = 1 << 40
    mel_blocked = MelSpectrogram(sr=SR, n_fft=512, hop_length=160, n_mels=32, center=center,
                                 backend=backend)
    mel_blocked.stft.cpu_block_samples = block_samples
    a, b = mel_blocked(x), mel_whole(x)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))


def test_long_clip_default_blocks_match_librosa():
    """A clip long enough that the default block size splits it along time."""
    y = np.concatenate([signals.speech_like(SR, 1.0, seed=s) for s in range(10)])
    m = STFT(n_fft=2048, hop_length=256, sr=SR)
    assert (1 + len(y) // 256) > (m.cpu_block_samples // 2048)  # more frames than one block
    out = m(torch.from_numpy(y))[0].double().numpy()
    ours = out[..., 0] + 1j * out[..., 1]
    ref = librosa.stft(y.astype(np.float64), n_fft=2048, hop_length=256, pad_mode="reflect")
    assert ours.shape == ref.shape
    assert np.linalg.norm(ours - ref) / np.linalg.norm(ref) <= 1e-5
