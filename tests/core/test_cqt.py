"""Constant-/variable-Q transforms against librosa, closed-form tones and the deploy paths."""

from __future__ import annotations

import json

import librosa
import numpy as np
import pytest
import signals
import torch

from nnaudio_core import ParameterError
from nnaudio_core.features import CQT, VQT, CQT1992v2, CQT2010v2, build

SR = 22050
HOP = 512


def median_rel_error(ours: np.ndarray, ref: np.ndarray) -> float:
    """Median over all bins and frames of |ours - ref| / |ref|."""
    return float(np.median(np.abs(ours - ref) / np.maximum(np.abs(ref), 1e-8)))


def _signal(kind: str) -> np.ndarray:
    if kind == "piano":
        t = np.arange(2 * SR) / SR
        rng = np.random.default_rng(4)
        y = np.zeros_like(t)
        for onset, midi in [(0.0, 45), (0.5, 57), (1.0, 64), (1.4, 72)]:
            f0 = 440.0 * 2 ** ((midi - 69) / 12)
            env = (t >= onset) * np.exp(-3.0 * np.clip(t - onset, 0, None))
            for h in range(1, 7):
                y += env * 0.5**h * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 6.28))
        return (0.5 * y / np.abs(y).max() + 0.003 * rng.standard_normal(t.size)).astype(np.float32)
    if kind == "speech":
        y = signals.speech_like(sr=SR, duration=2.0)
        return y.astype(np.float32)
    if kind == "chirp_noise":
        return signals.chirp_with_noise(SR, duration=2.0).astype(np.float32)
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["piano", "speech", "chirp_noise"])
@pytest.mark.parametrize("cls", [CQT1992v2, CQT2010v2])
def test_cqt_matches_librosa(kind: str, cls: type) -> None:
    y = _signal(kind)
    ours = cls(sr=SR, hop_length=HOP, n_bins=84, pad_mode="constant", bandwidth="librosa")(
        torch.from_numpy(y)
    )[0]
    ref = np.abs(librosa.cqt(y, sr=SR, hop_length=HOP, n_bins=84, tuning=0.0))
    assert ours.shape == ref.shape
    assert median_rel_error(ours.numpy(), ref) <= 0.02


def test_cqt_complex_matches_librosa_phase() -> None:
    y = _signal("piano")
    out = CQT(sr=SR, hop_length=HOP, pad_mode="constant", output_format="Complex")(
        torch.from_numpy(y)
    )[0].numpy()
    ours = out[..., 0] + 1j * out[..., 1]
    ref = librosa.cqt(y, sr=SR, hop_length=HOP, n_bins=84, tuning=0.0)
    strong = np.abs(ref) > 0.1 * np.abs(ref).max()
    phase_err = np.abs(np.angle(ours[strong] / ref[strong]))
    assert np.median(phase_err) < 0.05  # radians


@pytest.mark.parametrize("gamma", [0.0, 2.0, 10.0])
def test_vqt_matches_librosa(gamma: float) -> None:
    y = _signal("speech")
    ours = VQT(sr=SR, hop_length=HOP, gamma=gamma, pad_mode="constant", bandwidth="librosa")(
        torch.from_numpy(y)
    )[0]
    ref = np.abs(librosa.vqt(y, sr=SR, hop_length=HOP, n_bins=84, gamma=gamma, tuning=0.0))
    # librosa's VQT resamples octave by octave and sparsifies its filters; ours is exact
    assert median_rel_error(ours.numpy(), ref) <= 0.025


@pytest.mark.parametrize("gamma", [0.0, 5.0])
def test_vqt_filter_lengths_are_librosas(gamma: float) -> None:
    """VQT's filter lengths (librosa's bandwidth rule) equal librosa's own
    ``wavelet_lengths``; gamma=0 is the CQT's. The buffer is float32: rtol 1e-6."""
    v = VQT(sr=SR, gamma=gamma, bandwidth="librosa")
    ref = librosa.filters.wavelet_lengths(freqs=v.frequencies(), sr=SR, gamma=gamma,
                                          filter_scale=1)[0]
    np.testing.assert_allclose(v.lengths.numpy(), ref, rtol=1e-6)


@pytest.mark.parametrize("midi", [24, 36, 45, 57, 69, 81, 93, 100])
def test_sine_peak_lands_on_its_note(midi: int) -> None:
    freq = 440.0 * 2 ** ((midi - 69) / 12)
    cqt = CQT1992v2(sr=SR, hop_length=HOP, fmin=librosa.note_to_hz("C1"), n_bins=84)
    t = np.arange(2 * SR) / SR
    spec = cqt(torch.from_numpy(np.sin(2 * np.pi * freq * t).astype(np.float32)))[0]
    peak = int(spec[:, 10:-10].mean(-1).argmax())
    assert abs(cqt.frequencies()[peak] - freq) / freq < 1e-3
    assert peak == midi - 24


def test_fft_path_equals_conv_path() -> None:
    x = torch.from_numpy(_signal("speech"))[None]
    fft = CQT1992v2(sr=SR, output_format="Complex")
    conv = CQT1992v2(sr=SR, output_format="Complex", backend="conv")
    a, b = fft(x), conv(x)
    assert (torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b)).item() < 1e-4
    # librosa-style sparsified kernels trade exactness for speed, on request
    sparse = CQT1992v2(sr=SR, output_format="Complex", sparsity=0.01)(x)
    assert (torch.linalg.vector_norm(sparse - b) / torch.linalg.vector_norm(b)).item() < 1e-2


def test_shapes_and_multichannel() -> None:
    cqt = CQT1992v2(sr=SR, n_bins=60, output_format="Complex")
    x = torch.randn(2, 3, 12000)
    out = cqt(x)
    assert out.shape == (2, 3, 60, 1 + 12000 // HOP, 2)
    # a batch and one clip take different conv1d algorithms: float32 sums over kernels of
    # thousands of taps agree to ~2e-6 of the peak
    peak = float(out.abs().max())
    torch.testing.assert_close(out[1, 2], cqt(x[1, 2])[0], rtol=0, atol=1e-5 * peak)
    assert cqt(x[0, 0]).shape == (1, 60, 24, 2)
    assert cqt(x[:, :1]).shape == (2, 60, 24, 2)
    assert CQT(sr=SR)(x[0]).shape == (3, 84, 24)
    phase = cqt(x[0], output_format="Phase")
    torch.testing.assert_close(phase.pow(2).sum(-1), torch.ones(phase.shape[:-1]))


def test_short_clip_reflect_pads_like_numpy() -> None:
    # 0.2 s at 44.1 kHz is shorter than the kernel's half span (nnAudio2 crashes here)
    cqt = CQT1992v2(sr=44100, fmin=librosa.note_to_hz("C1"), pad_mode="reflect")
    x = torch.randn(int(0.2 * 44100))
    assert x.numel() <= cqt.n_fft // 2
    padded = np.pad(x.double().numpy(), cqt.n_fft // 2, mode="reflect")
    cqt0 = CQT1992v2(sr=44100, fmin=librosa.note_to_hz("C1"), center=False)
    ref = cqt0(torch.from_numpy(padded).float())
    torch.testing.assert_close(cqt(x), ref, rtol=1e-4, atol=1e-4 * float(ref.max()))


def test_short_clip_constant_padding_works() -> None:
    y = np.sin(2 * np.pi * 440 * np.arange(int(0.2 * 44100)) / 44100).astype(np.float32)
    cqt = CQT(sr=44100, fmin=librosa.note_to_hz("C1"), pad_mode="constant")
    spec = cqt(torch.from_numpy(y))[0]
    assert spec.shape == (84, 1 + y.size // HOP)
    assert int(spec.mean(-1).argmax()) == 69 - 24
    ref = np.abs(librosa.cqt(y, sr=44100, hop_length=HOP, n_bins=84, tuning=0.0))
    strong = ref > 0.1 * ref.max()
    assert np.median(np.abs(spec.numpy()[strong] - ref[strong]) / ref[strong]) < 0.02


def test_trainable_gets_gradients_and_changes() -> None:
    cqt = CQT1992v2(sr=8000, fmin=100, n_bins=24, trainable=True)
    params = dict(cqt.named_parameters())
    assert set(params) == {"cqt_kernels_real", "cqt_kernels_imag"}
    before = {k: v.detach().clone() for k, v in params.items()}
    opt = torch.optim.SGD(cqt.parameters(), lr=1e-2)
    loss = cqt(torch.randn(2, 4000)).mean()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params.values())
    opt.step()
    assert all(not torch.equal(before[k], v) for k, v in params.items())
    assert list(CQT1992v2(sr=8000, fmin=100, n_bins=24).parameters()) == []


def test_input_gradient_through_fft_path() -> None:
    """<grad, v> equals the central finite difference (L(x + eps v) - L(x - eps v)) / 2 eps
    of the weighted-sum loss, in float64 (rtol 1e-6)."""
    m = CQT1992v2(sr=8000, fmin=100, n_bins=24).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 6000, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(1, 6000, generator=g, dtype=torch.float64)
    w = torch.rand(m(x).shape, generator=g, dtype=torch.float64)

    def loss(z: torch.Tensor) -> torch.Tensor:
        return (m(z) * w).sum()

    loss(x).backward()
    eps = 1e-4
    with torch.no_grad():
        fd = (loss(x + eps * v) - loss(x - eps * v)) / (2 * eps)
    assert float((x.grad * v).sum()) == pytest.approx(float(fd), rel=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda: CQT1992v2(sr=8000, fmin=100, n_bins=24, output_format="Complex"),
        lambda: VQT(sr=8000, fmin=100, n_bins=24, gamma=5, pad_mode="constant"),
        lambda: CQT2010v2(sr=8000, fmin=100, n_bins=24, trainable=True),
    ],
)
def test_script_export_compile_equal_eager(make) -> None:
    m = make()
    x = torch.randn(2, 3, 5000)
    eager = m(x).detach()
    scale = float(eager.detach().abs().max())
    # eager CPU runs the CPU plan (direct products for short kernels, fitted segment FFTs);
    # script/export/compile run the general FFT path: both within ~2e-5 of the exact CQT
    atol = 5e-5 * scale
    torch.testing.assert_close(torch.jit.script(m)(x), eager, rtol=1e-4, atol=atol)
    exported = torch.export.export(m, (x,)).module()
    torch.testing.assert_close(exported(x), eager, rtol=1e-4, atol=atol)
    compiled = torch.compile(m, fullgraph=True)
    torch.testing.assert_close(compiled(x), eager, rtol=1e-4, atol=atol)


def test_get_config_rebuilds() -> None:
    m = VQT(sr=16000, fmin=55, n_bins=48, gamma=3.0, output_format="Complex")
    cfg = json.loads(json.dumps(m.get_config()))
    assert cfg["transform"] == "VQT"
    m2 = build(cfg)
    x = torch.randn(8000)
    torch.testing.assert_close(m2(x), m(x), rtol=0, atol=0)
    assert sorted(m2.state_dict()) == sorted(m.state_dict())


def test_fmax_sets_n_bins_and_nyquist_is_checked() -> None:
    assert CQT1992v2(sr=SR, fmin=55.0, fmax=880.0).n_bins == 48
    with pytest.raises(ParameterError, match="Nyquist"):  # a centre above 4 kHz
        CQT1992v2(sr=8000, fmin=32.7, n_bins=96)
    with pytest.raises(ParameterError, match="normalization_type"):
        CQT1992v2(sr=SR, normalization_type="bogus")


@pytest.mark.parametrize("k", [20, 45, 70])
def test_normalization_types(k: int) -> None:
    """A sine of amplitude A at bin k's centre: mean magnitude A/2 ("convolutional": unit-sum
    kernels), A ("wrap": twice that) and A/2 * sqrt(N_k) ("librosa"), with N_k = ceil(Q sr /
    f_k) and nnAudio's Q = 1 / (2^(1/12) - 1): closed-form values, not the module's buffers."""
    m = CQT1992v2(sr=SR, hop_length=HOP)
    f_k = float(m.frequencies()[k])
    amp = 0.5
    t = np.arange(2 * SR) / SR
    x = torch.from_numpy((amp * np.sin(2 * np.pi * f_k * t)).astype(np.float32))
    q = 1.0 / (2 ** (1 / 12) - 1)
    want = {"convolutional": amp / 2, "wrap": amp,
            "librosa": amp / 2 * np.sqrt(np.ceil(q * SR / f_k))}
    for norm, value in want.items():
        got = float(m(x, normalization_type=norm)[0, k, 20:-20].mean())
        assert got == pytest.approx(value, rel=1e-4), (norm, got, value)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_to_dtype_keeps_the_complex_kernel_spectra(dtype: torch.dtype) -> None:
    """Regression: ``Module.to(torch.float32)`` cast the FFT path's complex sparse kernel
    spectra to real (dropping their imaginary parts): outputs were 80% off, silently."""
    m = CQT(sr=SR, hop_length=HOP)
    x = torch.from_numpy(_signal("piano"))
    want = m(x)
    got = m.to(dtype)(x.to(dtype)).float()
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4 * float(want.abs().max()))
    plan = m.path.plan
    spectra = [m.path.sparse("spectral_matrix")] + [plan.sparse(n) for _, n, _, _ in plan.long]
    assert len(spectra) > 1
    want_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    assert all(s.is_complex() and s.dtype == want_dtype for s in spectra)
    torch.testing.assert_close(m.to(torch.float32)(x), want, rtol=0,
                               atol=1e-4 * float(want.abs().max()))


def _full_conv(m: CQT1992v2, x: torch.Tensor) -> torch.Tensor:
    """``m``'s kernel path as one full-length conv1d (what it runs when the kernels track
    gradients), as magnitudes (batch, n_bins, frames)."""
    from nnaudio_core import functional as AF

    padded = AF.pad_signal(x, m.n_fft, True, m.pad_mode)
    with torch.no_grad():
        real, imag = AF.stft_conv(padded, m.cqt_kernels_real, -m.cqt_kernels_imag, HOP)
        return torch.sqrt(real**2 + imag**2) * m.output_scale()


def test_kernel_path_skips_zeros_and_follows_edited_kernels() -> None:
    x = torch.from_numpy(np.stack([_signal("piano"), _signal("speech")]))
    m = CQT1992v2(sr=SR, hop_length=HOP)  # nnAudio2's default: the kernel path
    assert m.extra_repr().endswith("path=conv")
    peak = float(_full_conv(m, x).max())
    # grouped on each bin group's support: the same products as the full conv1d, summed in
    # conv1d's own order (0.0 apart here; 1e-5 of the peak allows another CPU's blocking)
    torch.testing.assert_close(m(x), _full_conv(m, x), rtol=0, atol=1e-5 * peak)
    # a tap outside every kernel's support, written in place: the groups follow it
    lo = int(torch.nonzero(m.cqt_kernels_real[-1, 0]).min())
    with torch.no_grad():
        m.cqt_kernels_real[-1, 0, lo - 3000] = 0.05
    edited = m(x)
    assert (edited[:, -1] - CQT1992v2(sr=SR, hop_length=HOP)(x)[:, -1]).abs().max() > 1e-3
    torch.testing.assert_close(edited, _full_conv(m, x), rtol=0, atol=1e-5 * peak)
    # kernels loaded from a state dict (trained elsewhere, nonzero everywhere)
    fresh = CQT1992v2(sr=SR, hop_length=HOP)
    fresh(x)  # its groups are remembered for the kernels it was built with
    state = {k: v + 1e-3 * torch.randn_like(v) if k.startswith("cqt_kernels") else v
             for k, v in fresh.state_dict().items()}
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh(x), _full_conv(fresh, x), rtol=0, atol=1e-5 * peak)
    # kernels that learn: the full conv1d, so every tap gets its gradient
    trained = CQT1992v2(sr=SR, hop_length=HOP, trainable=True)
    trained(x).sum().backward()
    assert bool((trained.cqt_kernels_real.grad[-1, 0, : lo - 100] != 0).any())


@pytest.mark.parametrize(("taps", "factor", "samples"), [(256, 2, 40000), (255, 2, 777),
                                                          (101, 4, 10), (256, 8, 99999)])
def test_cpu_decimation_equals_conv1d(taps: int, factor: int, samples: int) -> None:
    from nnaudio_core.features.multirate import decimate

    torch.manual_seed(0)
    x, h = torch.randn(3, samples), torch.randn(1, 1, taps)
    ref = torch.nn.functional.conv1d(x[:, None], h, stride=factor, padding=(taps - 1) // 2)
    out = decimate(x, h, factor)
    assert out.shape == ref[:, 0].shape
    torch.testing.assert_close(out, ref[:, 0], rtol=0, atol=1e-5 * float(ref.abs().max()))


def test_small_hops_send_more_bins_to_the_segment_ffts_with_the_same_numbers() -> None:
    """The CPU plan's direct/FFT split follows the hop (direct_max_length): at hop 32 the
    kernels of 513-2048 samples go to the segment FFTs too, and the output stays within the
    FFT path's accuracy (its spectra are cut at 1e-5 of each kernel's peak: ~2e-5 of the
    peak output on white noise) of the split fixed at 2048 samples."""
    from nnaudio_core.features import constant_q_paths as CQ

    assert [CQ.direct_max_length(h) for h in (32, 64, 128, 256, 512, 2048)] == [
        512, 724, 1024, 1448, 2048, 2048]
    kw = dict(sr=22050, hop_length=32, fmin=32.70, n_bins=100, output_format="Complex",
              backend="auto", bandwidth="librosa", pad_mode="constant")
    m = CQT1992v2(**kw)
    x = torch.randn(2, 22050, generator=torch.Generator().manual_seed(3))
    original = CQ.direct_max_length
    try:
        CQ.direct_max_length = lambda hop: CQ.DIRECT_MAX_LENGTH
        fixed = CQT1992v2(**kw)
    finally:
        CQ.direct_max_length = original
    assert m.path.plan.long_bins > fixed.path.plan.long_bins
    with torch.inference_mode():
        a, b = m(x), fixed(x)
    torch.testing.assert_close(a, b, rtol=0, atol=5e-5 * float(b.abs().max()))
