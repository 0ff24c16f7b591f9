"""CFP / Combined_Frequency_Periodicity: pitch salience on harmonic tones, parity with
nnAudio2 2.0.3, parameters, leading dims."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import signals
import torch

from nnaudio_core import CFP, Combined_Frequency_Periodicity, ParameterError

SR = 16000


def tone(f0: float, seconds: float = 1.0) -> torch.Tensor:
    return torch.from_numpy(signals.harmonic_tone(SR, seconds, f0=f0).astype(np.float32))[None]


def nearest_row(freqs: np.ndarray, f: float) -> int:
    return int(np.argmin(np.abs(np.log(freqs[1:] / f)))) + 1  # row 0 is always empty


def peaks(v: np.ndarray, rel: float) -> np.ndarray:
    """Rows that are local maxima above ``rel`` of the maximum."""
    inner = (v[1:-1] > v[:-2]) & (v[1:-1] >= v[2:]) & (v[1:-1] > rel * v.max())
    return np.nonzero(inner)[0] + 1


@pytest.mark.parametrize("f0", [110.0, 150.0, 220.0, 330.0, 440.0])
def test_salience_peaks_at_the_fundamental_in_frequency_and_periodicity(f0):
    """Harmonics ``k f0`` show in the generalised spectrum, the periods ``k / f0`` (at
    ``f0 / k`` Hz) in the generalised cepstrum: ``f0`` is a peak of both, and the only
    frequency they share, so it is the maximum of their product ``Z``."""
    m = Combined_Frequency_Periodicity()
    freqs = m.frequencies()
    z, _, lf, lq = (t[0].mean(-1).numpy() for t in m(tone(f0)))
    row = nearest_row(freqs, f0)
    assert abs(int(np.argmax(z)) - row) <= 1, freqs[np.argmax(z)]
    for rep, name in ((lf, "frequency"), (lq, "periodicity")):
        near = rep[row - 1 : row + 2].max()
        assert near >= 0.2 * rep.max(), name  # a strong peak at f0 ...
        assert np.any(np.abs(peaks(rep, 0.2) - row) <= 1), name  # ... that is a local maximum
    # every strong spectral peak is a harmonic, every strong periodicity peak a subharmonic
    for p in peaks(lf, 0.5):
        k = freqs[p] / f0
        assert abs(k - round(k)) < 0.05 * round(k), (freqs[p], f0)
    for p in peaks(lq, 0.5):
        k = f0 / freqs[p]
        assert abs(k - round(k)) < 0.05 * round(k), (freqs[p], f0)
    # and Z's maximum stands out from the harmonics' and subharmonics' residue
    others = np.delete(z, np.arange(row - 2, row + 3))
    assert z.max() >= 3 * others.max()


def test_cfp_is_the_combined_salience_with_all_frames():
    x = tone(220.0)
    z = CFP()(x)
    combined = Combined_Frequency_Periodicity()(x)
    assert z.shape == (1, 174, 1 + x.shape[-1] // 320)
    assert all(t.shape == (1, 174, z.shape[-1] - 2) for t in combined)
    torch.testing.assert_close(z[..., 1:-1], combined[0], rtol=0, atol=0)
    torch.testing.assert_close(combined[0], combined[2] * combined[3], rtol=1e-6, atol=0)


def test_frequencies_are_the_log_grid_and_row_zero_is_empty():
    m = CFP()
    f = m.frequencies()
    np.testing.assert_allclose(f, 80.0 * 2.0 ** (np.arange(174) / 48.0), rtol=1e-12)
    assert f[-1] < 1000.0 <= 80.0 * 2.0 ** (175 / 48.0)
    assert float(m(tone(220.0))[:, 0].abs().max()) == 0.0  # nnAudio's bank has no row 0 filter


def test_leading_dims_and_layouts():
    x = torch.cat([tone(150.0), tone(330.0), tone(220.0)])[:, :8000]
    m = CFP()
    out = m(x.reshape(3, 1, -1))
    assert out.shape == (3, 174, 26)
    torch.testing.assert_close(m(x.reshape(1, 3, -1))[0], out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m(x[1]), out[1:2], rtol=1e-5, atol=1e-6)
    combined = Combined_Frequency_Periodicity()(x.reshape(1, 3, -1))
    assert [t.shape for t in combined] == [(1, 3, 174, 24)] * 4


def test_center_false_frames_the_unpadded_signal():
    x = tone(220.0)
    n = 8000
    m = CFP(center=False)
    out = m(x[:, : n + 9 * 320])
    assert out.shape == (1, 174, 10)
    # centring is zero padding by n // 2: the uncentred transform of the padded signal
    centred = CFP()(x)
    padded = torch.nn.functional.pad(x, (n // 2, n // 2))
    torch.testing.assert_close(m(padded)[..., :20], centred[..., :20], rtol=0, atol=0)


BAD = [
    (dict(g=[0.24]), "g"),
    (dict(g=[0.24, -1.0]), "g"),
    (dict(window_size=9000), "window_size"),
    (dict(fc=2000.0), "fc"),
    (dict(tc=1 / 9000), "tc"),
    (dict(fs=0), "fs"),
    (dict(hop_length=0), "hop_length"),
    (dict(NumPerOct=0), "NumPerOct"),
]


@pytest.mark.parametrize(("kwargs", "name"), BAD, ids=[b[1] for b in BAD])
def test_bad_parameters_raise(kwargs, name):
    with pytest.raises(ParameterError, match=name):
        CFP(**kwargs)


# ------------------------------------------------------------------- nnAudio2 parity ----

os.environ.setdefault("NNAUDIO_DISABLE_CITATION_REMINDER", "1")


def theirs(cls_name: str, **kwargs):
    nn2 = pytest.importorskip("nnAudio2.features")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(nn2, cls_name)(**kwargs)


def run_theirs(m, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return m(x)


def noisy(kind: str) -> torch.Tensor:
    if kind == "sweep":
        y = signals.chirp_with_noise(SR, 1.0)
    elif kind == "noise":
        y = 0.1 * np.random.default_rng(7).standard_normal(SR)
    else:  # a harmonic tone over a -60 dB noise floor
        y = signals.harmonic_tone(SR, 1.0, f0=220.0)
        y = y + 1e-3 * np.random.default_rng(1).standard_normal(SR)
    return torch.from_numpy(np.asarray(y, np.float32))[None]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


@pytest.mark.parametrize("kind", ["sweep", "noise", "tone+noise"])
def test_equals_nnaudio2_at_defaults_float32(kind):
    x = noisy(kind)
    out = CFP()(x)
    ref = run_theirs(theirs("CFP"), x)
    assert out.shape == ref.shape == (1, 174, 51)
    assert rel_err(out, ref) <= 1e-4
    for a, b in zip(Combined_Frequency_Periodicity()(x),
                    run_theirs(theirs("Combined_Frequency_Periodicity"), x), strict=True):
        assert a.shape == b.shape == (1, 174, 49)
        assert rel_err(a, b) <= 1e-4


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"g": [0.3, 0.5]}, {"g": [0.24, 0.6, 1.0, 0.8]}, {"g": [0.24, 0.6, 0.0]},
     {"fr": 4, "fs": 22050, "hop_length": 256, "window_size": 1025, "fc": 60, "tc": 1 / 2000,
      "NumPerOct": 24}],
    ids=["defaults", "two-layers", "four-layers", "log-layer", "other-grid"],
)
@pytest.mark.parametrize("kind", ["tone", "speech"])
def test_equals_nnaudio2_float64_on_noiseless_signals(kwargs, kind):
    """On noiseless synthetic signals the compressed spectrum (``** 0.24``) lifts float32
    FFT round-off of the near-silent bins to ~0.3% of the peak in *both* libraries (each is
    that far from its own float64 result, see the next test); in float64 they agree to
    round-off, which is what "the same algorithm" means."""
    fs = kwargs.get("fs", SR)
    y = signals.harmonic_tone(fs, 1.0, f0=220.0) if kind == "tone" else signals.speech_like(fs)
    x = torch.from_numpy(np.asarray(y, np.float64))[None]
    ours = Combined_Frequency_Periodicity(**kwargs).double()(x)
    ref = run_theirs(theirs("Combined_Frequency_Periodicity", **kwargs).double(), x)
    for a, b in zip(ours, ref, strict=True):
        assert a.shape == b.shape
        assert rel_err(a, b) <= 1e-9
    torch.testing.assert_close(CFP(**kwargs).double()(x)[..., 1:-1], ours[0], rtol=0, atol=0)


def test_float32_limit_on_a_noiseless_tone_is_shared_with_nnaudio2():
    x = tone(220.0)
    truth = run_theirs(theirs("CFP").double(), x.double())
    ours32 = CFP()(x)
    theirs32 = run_theirs(theirs("CFP"), x)
    # both float32 results are a few 1e-3 of the peak from float64, and from each other
    assert 1e-4 < rel_err(theirs32, truth) < 1e-2
    assert rel_err(ours32, truth) < 1e-2
    assert rel_err(ours32, theirs32) < 1e-2
