"""Every forward transform deploys: TorchScript, torch.export, torch.compile(fullgraph=True)
and ONNX (``torch.onnx.export(dynamo=True)`` run in onnxruntime) give eager's outputs (the
exported program is saved with ``torch.export.save`` and loaded back before it runs).

Outputs are compared at 1e-4 of the eager output's peak. torch.export and ONNX are exported
with a dynamic batch and length and run at a second shape; every module also survives
``.to(torch.float64)`` and a ``get_config()`` + ``state_dict`` rebuild. The FFT fast paths
need no flag: under export/compile/ONNX the transforms pick graph-friendly paths themselves.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import signals
import torch

from nnaudio_core import features as F

pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script.*is deprecated:DeprecationWarning",
    "ignore::UserWarning",
)

SR = 16000
CQT_KW = dict(sr=SR, fmin=65.4, n_bins=48, bins_per_octave=12, hop_length=128)

FORWARD: dict[str, Callable[[], torch.nn.Module]] = {
    "STFT": lambda: F.STFT(n_fft=256, hop_length=64, sr=SR, output_format="Magnitude"),
    "STFT-complex": lambda: F.STFT(n_fft=256, hop_length=64, sr=SR, output_format="Complex"),
    "MelSpectrogram": lambda: F.MelSpectrogram(sr=SR, n_fft=256, hop_length=64, n_mels=32),
    "MFCC": lambda: F.MFCC(sr=SR, n_fft=256, hop_length=64, n_mels=32, n_mfcc=13),
    "CQT": lambda: F.CQT(**CQT_KW),
    "CQT1992v2": lambda: F.CQT1992v2(**CQT_KW),
    "CQT2010v2": lambda: F.CQT2010v2(**CQT_KW),
    "CQT1992": lambda: F.CQT1992(**CQT_KW),
    "CQT2010": lambda: F.CQT2010(**CQT_KW),
    "VQT": lambda: F.VQT(gamma=5.0, **CQT_KW),
    "Gammatonegram": lambda: F.Gammatonegram(sr=SR, n_fft=256, hop_length=64, n_bins=32),
    "CFP": lambda: F.CFP(fs=SR, hop_length=320),
    "Combined_Frequency_Periodicity": lambda: F.Combined_Frequency_Periodicity(fs=SR),
    "KaldiFbank": lambda: F.KaldiFbank(sr=SR, num_mel_bins=40, use_energy=True),
    "KaldiMFCC": lambda: F.KaldiMFCC(sr=SR),
    # max_frames=None: a fixed frame count is a branch on the length, which export specialises
    "ASTFbank": lambda: F.ASTFbank(sr=SR, max_frames=None),
    "WhisperLogMel": lambda: F.WhisperLogMel(sr=SR),
    "VGGishLogMel": lambda: F.VGGishLogMel(sr=SR),
    "PANNsLogMel": lambda: F.PANNsLogMel(sr=SR, n_fft=512, hop_length=160, fmax=7000.0),
}
#: CFP's |X| ** 0.24 lifts float32 round-off of onnxruntime's DFT of odd lengths (N = fs / fr)
#: to ~2e-3 of the peak; its ONNX graph is checked in float64 (agrees to ~1e-11).
ONNX_IN_FLOAT64 = {"CFP", "Combined_Frequency_Periodicity"}


def test_every_forward_transform_is_covered() -> None:
    """A new transform cannot be added without joining this module."""
    inverse_or_base = {"iSTFT", "iCQT", "Griffin_Lim", "VariableQ"}  # test_export.py has them
    covered = {name.split("-")[0] for name in FORWARD}
    assert set(F.TRANSFORMS) - inverse_or_base == covered


def audio(batch: int, samples: int) -> torch.Tensor:
    rows = [signals.speech_like(SR, samples / SR + 0.01, seed=s)[:samples] for s in range(batch)]
    return torch.from_numpy(np.stack(rows))


def inputs(m: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The export shape and a second one, both long enough for ``m``."""
    n = max(9000, shortest(m) + 500)
    return audio(2, n), audio(3, n + 3011)


def shortest(m: torch.nn.Module) -> int:
    """A length every module accepts: its longest frame (kernel span) in samples, times the
    decimation of the lowest octave on nnAudio's multirate path; for the front ends framed
    from the first sample, two frames (torch.export specialises a dimension of size 1)."""
    if hasattr(m, "frame_span"):
        return int(m.frame_span) + int(m.hop_length)
    spans = [getattr(s, a) for s in m.modules() for a in ("n_fft", "N")
             if isinstance(getattr(s, a, None), int)]
    # the multirate path (features.multirate.Multirate) says how much it decimates
    factors = [int(s.min_input_factor()) for s in m.modules()
               if callable(getattr(s, "min_input_factor", None))]
    return max(spans, default=1024) * max(factors, default=1)


@functools.cache
def _to_linear(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    return FORWARD[name]().to_linear


def assert_same(got: Any, want: Any, tol: float = 1e-4, name: str = "") -> None:
    """Equal within ``tol`` of the peak of ``want`` (each output of a tuple on its own; the
    output of ``FORWARD[name]`` as ``to_linear`` gives it: a log-valued front end's linear
    values, since two float32 paths' round-off far below the peak is lifted by a log)."""
    if isinstance(want, (tuple, list)):  # Combined_Frequency_Periodicity: four outputs
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert_same(g, w, tol)
        return
    got = torch.as_tensor(got)
    if name:  # a log-valued front end: compared on the linear values it stands for
        to_linear = _to_linear(name)
        assert got.shape == want.shape
        got, want = to_linear(got.double()), to_linear(want.double())
    assert got.shape == want.shape
    scale = float(want.abs().max())
    torch.testing.assert_close(got.to(want.dtype), want, rtol=0, atol=tol * scale)


def dynamic(m: torch.nn.Module) -> tuple[dict[int, torch.export.Dim], ...]:
    return ({0: torch.export.Dim("batch", min=1, max=1024),
             1: torch.export.Dim("samples", min=shortest(m), max=1 << 24)},)


@pytest.mark.parametrize("name", list(FORWARD))
def test_torchscript(name: str) -> None:
    m = FORWARD[name]()
    X1, X2 = inputs(m)
    s = torch.jit.script(m)
    with torch.no_grad():
        for x in (X1, X2):
            assert_same(s(x), m(x), name=name)


@pytest.mark.parametrize("name", list(FORWARD))
def test_torch_export_dynamic(name: str) -> None:
    m = FORWARD[name]()
    X1, X2 = inputs(m)
    program = torch.export.export(m, (X1,), dynamic_shapes=dynamic(m))
    # what users ship is the saved program: it must serialise (no sparse kernel buffers)
    buf = io.BytesIO()
    torch.export.save(program, buf)
    buf.seek(0)
    ep = torch.export.load(buf).module()
    with torch.no_grad():
        for x in (X1, X2):
            assert_same(ep(x), m(x), name=name)


@pytest.mark.parametrize("name", list(FORWARD))
def test_torch_compile_fullgraph(name: str) -> None:
    torch._dynamo.reset()
    m = FORWARD[name]()
    X1, X2 = inputs(m)
    c = torch.compile(m, fullgraph=True, dynamic=False)
    with torch.no_grad():
        assert_same(c(X1), m(X1), name=name)


@pytest.mark.parametrize("name", list(FORWARD))
def test_onnx_in_onnxruntime(name: str, tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    m = FORWARD[name]()
    X1, X2 = inputs(m)
    dtype = torch.float64 if name in ONNX_IN_FLOAT64 else torch.float32
    m = m.to(dtype)
    path = tmp_path / f"{name}.onnx"
    quiet = logging.getLogger("torch.onnx")
    level, _ = quiet.level, quiet.setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(m, (X1.to(dtype),), dynamo=True,
                                    dynamic_shapes=dynamic(m), verbose=False)
    quiet.setLevel(level)
    program.save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    with torch.no_grad():
        for x in (X1.to(dtype), X2.to(dtype)):
            want = m(x)
            got = session.run(None, {feed: x.numpy()})
            assert_same(got if isinstance(want, tuple) else got[0], want, name=name)


@pytest.mark.parametrize("name", list(FORWARD))
def test_float64_and_state_dict_round_trip(name: str) -> None:
    m = FORWARD[name]()
    X1, X2 = inputs(m)
    with torch.no_grad():
        want = m(X1)
        want64 = tuple(w.double() for w in want) if isinstance(want, tuple) else want.double()
        # float32 CFP is ~4e-3 of the peak from float64 (its root compression), as nnAudio2's
        assert_same(m.to(torch.float64)(X1.double()), want64,
                    1e-2 if name in ONNX_IN_FLOAT64 else 1e-4, name=name)
        m = m.to(torch.float32)
        again = type(m).from_config(m.get_config())
        again.load_state_dict(m.state_dict())
        assert_same(again(X1), want, name=name)
