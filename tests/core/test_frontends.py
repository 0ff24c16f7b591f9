"""The model front ends equal their references: Kaldi fbank/MFCC (``kaldi-native-fbank``,
dither 0), Whisper (``openai-whisper`` and ``transformers``, without and with the 30 s pad),
AST (``transformers``' ``ASTFeatureExtractor``), PANNs (``torchlibrosa``) and VGGish (the
published front end, written out here in float64 numpy from its description).

Signals: synthetic speech, espeak speech when installed, a harmonic tone, noise, silence and
a clip just longer than one window, given at 8 to 48 kHz and resampled once with soxr (as the
extractor does) before both sides see them. Tolerance: 1e-3 absolute on log-domain values
(every front end here but MFCC), 1e-4 of the clip's peak for MFCCs (2e-4 from an 8 kHz source:
see the test).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import signals
import soxr
import torch

from nnaudio_core import features as F
from nnaudio_core.features import kaldi

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

LOG_ATOL = 1e-3


def _signal(kind: str, sr: int, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    rng = np.random.default_rng(7)
    if kind == "speech":
        return signals.speech_like(sr, 2.0)
    if kind == "espeak":
        got = signals.espeak_speech(tmp_path_factory.mktemp("espeak"))
        if got is None:
            pytest.skip("espeak-ng is not installed")
        y, sr_in = got
        return soxr.resample(y, sr_in, sr, quality="HQ").astype(np.float32)
    if kind == "music":
        return signals.harmonic_tone(sr)[: int(1.5 * sr)].astype(np.float32)
    if kind == "noise":
        return (0.3 * rng.standard_normal(int(1.1 * sr))).astype(np.float32)
    if kind == "silence":
        return np.zeros(int(0.5 * sr), np.float32)
    if kind == "short":  # just over one 25 ms window
        return (0.2 * rng.standard_normal(int(0.027 * sr))).astype(np.float32)
    raise ValueError(kind)


KINDS = ("speech", "espeak", "music", "noise", "silence", "short")
RATES = (8000, 22050, 44100, 48000)


def at(kind: str, sr_in: int, sr: int, factory: pytest.TempPathFactory) -> np.ndarray:
    """A ``kind`` signal made at ``sr_in`` and resampled to ``sr`` (soxr HQ)."""
    y = _signal(kind, sr_in, factory)
    if sr_in != sr:
        y = soxr.resample(y, sr_in, sr, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(y)


def ours(m: torch.nn.Module, y: np.ndarray) -> np.ndarray:
    """``m``'s features of one clip, frames first ``(frames, bins)``."""
    with torch.no_grad():
        return m(torch.from_numpy(y))[0].T.numpy()


def close(got: np.ndarray, want: np.ndarray, atol: float) -> None:
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=atol)


def close_log(got: np.ndarray, want: np.ndarray, log=np.exp, strong: float = 1e-6) -> None:
    """Natural-log (``log=np.exp``) or dB values: within 1e-3 absolute where the linear value
    is at least ``strong`` times the clip's peak (1e-6: 60 dB of a power, 1e-3 for
    magnitudes), and within 1e-4 of the peak everywhere. Below that, both sides' float32
    FFTs are at their round-off (1e-7 of the peak power) and the logs of round-off differ
    by more than 1e-3."""
    assert got.shape == want.shape
    lin_got, lin_want = log(got.astype(np.float64)), log(want.astype(np.float64))
    peak = float(lin_want.max()) if lin_want.size else 0.0
    above = lin_want >= strong * peak
    np.testing.assert_allclose(got[above], want[above], rtol=0, atol=LOG_ATOL)
    np.testing.assert_allclose(lin_got, lin_want, rtol=0, atol=1e-4 * peak)


# --- Kaldi ---------------------------------------------------------------------------------


def _knf(y: np.ndarray, sr: int, opts) -> np.ndarray:
    knf = pytest.importorskip("kaldi_native_fbank")
    opts.frame_opts.dither = 0.0
    opts.frame_opts.samp_freq = sr
    comp = (knf.OnlineMfcc if isinstance(opts, knf.MfccOptions) else knf.OnlineFbank)(opts)
    comp.accept_waveform(float(sr), y.tolist())
    comp.input_finished()
    return np.stack([np.asarray(comp.get_frame(i)) for i in range(comp.num_frames_ready)])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sr_in", RATES)
@pytest.mark.parametrize("energy", [False, True])
def test_kaldi_fbank_equals_kaldi_native_fbank(kind, sr_in, energy, tmp_path_factory):
    knf = pytest.importorskip("kaldi_native_fbank")
    y = at(kind, sr_in, 16000, tmp_path_factory)
    opts = knf.FbankOptions()
    opts.mel_opts.num_bins = 80
    opts.use_energy = energy
    want = _knf(y, 16000, opts)
    got = ours(F.KaldiFbank(sr=16000, num_mel_bins=80, use_energy=energy), y)
    close_log(got, want)


@pytest.mark.parametrize("sr", [8000, 16000, 44100])
@pytest.mark.parametrize("options", [
    dict(window_type="hamming", preemphasis_coefficient=0.0, remove_dc_offset=False),
    dict(window_type="hanning", use_power=False, low_freq=100.0, high_freq=-400.0),
    dict(use_energy=True, raw_energy=False, energy_floor=1.0, htk_compat=True),
    dict(round_to_power_of_two=False, frame_length=20.0, frame_shift=8.0, num_mel_bins=40),
])
def test_kaldi_fbank_options_equal_kaldi_native_fbank(sr, options):
    knf = pytest.importorskip("kaldi_native_fbank")
    y = signals.speech_like(sr, 1.0)
    opts = knf.FbankOptions()
    fo, mo = opts.frame_opts, opts.mel_opts
    mo.num_bins = options.get("num_mel_bins", 23)
    for key, target in (("window_type", fo), ("remove_dc_offset", fo),
                        ("round_to_power_of_two", fo), ("low_freq", mo), ("high_freq", mo),
                        ("use_energy", opts), ("raw_energy", opts), ("energy_floor", opts),
                        ("htk_compat", opts), ("use_power", opts)):
        if key in options:
            setattr(target, key, options[key])
    if "preemphasis_coefficient" in options:
        fo.preemph_coeff = options["preemphasis_coefficient"]
    if "frame_length" in options:
        fo.frame_length_ms, fo.frame_shift_ms = options["frame_length"], options["frame_shift"]
    want = _knf(y, sr, opts)
    got = ours(F.KaldiFbank(sr=sr, **options), y)
    close_log(got, want, strong=1e-6 if options.get("use_power", True) else 1e-3)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sr_in", [8000, 48000])
def test_kaldi_mfcc_equals_kaldi_native_fbank(kind, sr_in, tmp_path_factory):
    knf = pytest.importorskip("kaldi_native_fbank")
    y = at(kind, sr_in, 16000, tmp_path_factory)
    want = _knf(y, 16000, knf.MfccOptions())
    got = ours(F.KaldiMFCC(sr=16000), y)
    # an 8 kHz source has no energy above 4 kHz: those bands are float32 FFT round-off on
    # both sides (~1e-13 of the peak power), and the DCT spreads their log differences into
    # every cepstrum: 1.1e-4 of the peak seen on noise, hence 2e-4 there
    rel = 2e-4 if sr_in < 16000 else 1e-4
    close(got, want, rel * max(1.0, float(np.abs(want).max())))


def test_kaldi_mfcc_without_energy_and_htk_order_equal_kaldi_native_fbank():
    knf = pytest.importorskip("kaldi_native_fbank")
    y = signals.speech_like(16000, 1.0)
    for energy, htk in ((False, False), (False, True), (True, True)):
        opts = knf.MfccOptions()
        opts.use_energy, opts.htk_compat = energy, htk
        want = _knf(y, 16000, opts)
        got = ours(F.KaldiMFCC(sr=16000, use_energy=energy, htk_compat=htk), y)
        close(got, want, 1e-4 * float(np.abs(want).max()))


def test_kaldi_waveform_scale_shifts_the_log_energies():
    """Scaling the input by s adds 2 log(s) to every log band (WeNet's 32768)."""
    y = (0.1 * np.random.default_rng(3).standard_normal(16000)).astype(np.float32)
    base = ours(F.KaldiFbank(num_mel_bins=40), y)
    scaled = ours(F.KaldiFbank(num_mel_bins=40, waveform_scale=32768.0), y)
    assert base.min() > np.log(kaldi.KALDI_EPSILON) + 1  # no band at the floor
    close(scaled - base, np.full_like(base, 2 * np.log(32768.0)), 1e-3)


def test_kaldi_refusals_name_the_parameter():
    with pytest.raises(ValueError, match="snip_edges"):
        F.KaldiFbank(snip_edges=False)
    with pytest.raises(ValueError, match="window_type"):
        F.KaldiFbank(window_type="kaiser")
    with pytest.raises(ValueError, match="contains no FFT bin"):
        F.KaldiFbank(num_mel_bins=200)
    with pytest.raises(ValueError, match="shorter than one frame"):
        F.KaldiFbank()(torch.zeros(399))


# --- AST -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sr_in", [8000, 44100])
def test_ast_equals_transformers(kind, sr_in, tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    y = at(kind, sr_in, 16000, tmp_path_factory)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fe = transformers.ASTFeatureExtractor()
        want = fe(y, sampling_rate=16000, return_tensors="np")["input_values"][0]
    got = ours(F.ASTFbank(), y)
    assert got.shape == (1024, 128)
    unnormalised = 2 * kaldi.AUDIOSET_STD  # back to log energies before comparing
    close_log(got * unnormalised, want * unnormalised)


def test_ast_long_clip_is_cut_and_unlimited_keeps_every_frame():
    y = signals.speech_like(16000, 12.0)
    full = ours(F.ASTFbank(max_frames=None), y)
    assert full.shape == (1 + (y.size - 400) // 160, 128)
    close(ours(F.ASTFbank(), y), full[:1024], 1e-6)


# --- Whisper -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n_mels", [80, 128])
def test_whisper_equals_openai_whisper(kind, n_mels, tmp_path_factory):
    whisper = pytest.importorskip("whisper")
    y = at(kind, 22050, 16000, tmp_path_factory)
    x = torch.from_numpy(y)
    want = whisper.log_mel_spectrogram(x, n_mels=n_mels).numpy().T
    got = ours(F.WhisperLogMel(n_mels=n_mels), y)
    assert got.shape[0] == y.size // 160
    close(got, want, LOG_ATOL)
    padded = whisper.log_mel_spectrogram(whisper.pad_or_trim(x), n_mels=n_mels).numpy().T
    close(ours(F.WhisperLogMel(n_mels=n_mels, chunk_length=30.0), y), padded, LOG_ATOL)


@pytest.mark.parametrize("kind", ["speech", "noise", "silence"])
@pytest.mark.parametrize("n_mels", [80, 128])
def test_whisper_equals_transformers_with_and_without_the_pad(kind, n_mels, tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    y = at(kind, 48000, 16000, tmp_path_factory)
    fe = transformers.WhisperFeatureExtractor(feature_size=n_mels)
    padded = fe(y, sampling_rate=16000, return_tensors="np")["input_features"][0].T
    close(ours(F.WhisperLogMel(n_mels=n_mels, chunk_length=30.0), y), padded, LOG_ATOL)
    assert padded.shape == (3000, n_mels)
    loose = fe(y, sampling_rate=16000, padding="longest", return_tensors="np")
    unpadded = loose["input_features"][0].T
    close(ours(F.WhisperLogMel(n_mels=n_mels), y), unpadded, LOG_ATOL)


def test_whisper_long_clip_is_cut_at_30_seconds():
    y = signals.speech_like(16000, 31.0)
    whole = ours(F.WhisperLogMel(dynamic_range=None), y)
    cut = ours(F.WhisperLogMel(dynamic_range=None, chunk_length=30.0), y)
    assert cut.shape == (3000, 80)
    close(cut[:2990], whole[:2990], 1e-5)


# --- PANNs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sr_in", [16000, 44100])
def test_panns_equals_torchlibrosa(kind, sr_in, tmp_path_factory):
    stft = pytest.importorskip("torchlibrosa.stft")
    y = at(kind, sr_in, 32000, tmp_path_factory)
    spec = stft.Spectrogram(n_fft=1024, hop_length=320, win_length=1024, window="hann",
                            center=True, pad_mode="reflect", freeze_parameters=True)
    logmel = stft.LogmelFilterBank(sr=32000, n_fft=1024, n_mels=64, fmin=50, fmax=14000,
                                   ref=1.0, amin=1e-10, top_db=None, freeze_parameters=True)
    with torch.no_grad():
        want = logmel(spec(torch.from_numpy(y)[None]))[0, 0].numpy()  # (frames, mels)
    close_log(ours(F.PANNsLogMel(), y), want, lambda db: 10 ** (db / 10))


# --- VGGish --------------------------------------------------------------------------------


def vggish_reference(y: np.ndarray, sr: int = 16000) -> np.ndarray:
    """The published VGGish front end, float64, from its description: 25 ms frames every
    10 ms (no padding), periodic Hann, |FFT| of 512 points, 64 HTK-mel triangles 125-7500 Hz
    over the FFT bins (DC weight 0), ``log(mel + 0.01)``; ``(frames, 64)``."""
    win, hop, n_fft = 400, 160, 512
    n = 1 + (y.size - win) // hop
    frames = np.stack([y[i * hop : i * hop + win] for i in range(n)]).astype(np.float64)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    mag = np.abs(np.fft.rfft(frames * window, n_fft))

    def mel(f):
        return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)

    bins = mel(np.linspace(0.0, sr / 2, n_fft // 2 + 1))
    edges = np.linspace(mel(125.0), mel(7500.0), 66)
    weights = np.zeros((n_fft // 2 + 1, 64))
    for b in range(64):
        lo, mid, hi = edges[b : b + 3]
        up, down = (bins - lo) / (mid - lo), (hi - bins) / (hi - mid)
        weights[:, b] = np.maximum(0.0, np.minimum(up, down))
    weights[0] = 0.0
    return np.log(mag @ weights + 0.01)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sr_in", [8000, 48000])
def test_vggish_equals_the_published_front_end(kind, sr_in, tmp_path_factory):
    y = at(kind, sr_in, 16000, tmp_path_factory)
    close_log(ours(F.VGGishLogMel(), y), vggish_reference(y), strong=1e-3)


def test_vggish_examples_are_096_s_windows():
    y = signals.speech_like(16000, 3.0)
    feats = F.VGGishLogMel()(torch.from_numpy(y)[None])  # (1, 64, 298)
    ex = F.vggish_examples(feats)
    assert ex.shape == (1, 3, 96, 64)
    torch.testing.assert_close(ex[0, 1], feats[0].T[96:192])
    assert F.vggish_examples(feats[..., :95]).shape == (1, 0, 96, 64)
