"""``nnaudio export``: front ends written from presets, read back by their own runtimes
(onnxruntime, torch.export.load, torch.jit.load) and compared with eager here, independently
of the command's own check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import signals
import torch
from support import invoke

from nnaudio_cli.config import resolve
from nnaudio_core.features import build

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def eager(preset: str, x: np.ndarray, float64: bool = False) -> np.ndarray:
    """The preset's eager output (in float64 inside when ``float64``), as the linear values
    a log-valued front end stands for (``Transform.to_linear``)."""
    module = build(resolve(preset).as_core_config())
    if float64:
        module = module.double()
    with torch.no_grad():
        y = module(torch.from_numpy(x).to(torch.float64 if float64 else torch.float32))
        return linear(preset, y.float().numpy())


def linear(preset: str, y: np.ndarray) -> np.ndarray:
    """``y`` of ``preset`` as linear values (identity but for the log-valued front ends)."""
    module = build(resolve(preset).as_core_config())
    return module.to_linear(torch.from_numpy(np.asarray(y, np.float64))).numpy()


def speech(batch: int, samples: int, sr: int) -> np.ndarray:
    return np.stack([signals.speech_like(sr, samples / sr + 0.01, seed=s)[:samples]
                     for s in range(batch)]).astype(np.float32)


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert float(np.abs(got - want).max()) <= 1e-4 * float(np.abs(want).max())


def test_onnx_mel_front_end_runs_in_onnxruntime(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "mel.onnx"
    r = invoke("export", "-c", "mel128", "-o", out, "--json")
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["format"] == "onnx" and report["transform"] == "MelSpectrogram"
    assert report["input"] == {"name": "audio", "shape": ["batch", "samples"],
                               "dtype": "float32"}
    assert report["output"]["shape"] == ["batch", 128, "frames"]
    assert report["max_error"] <= 1e-4
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["audio"]
    for batch, samples in ((1, 22050), (4, 30011)):  # dynamic batch and length
        x = speech(batch, samples, 22050)
        assert_close(session.run(None, {"audio": x})[0], eager("mel128", x))


@pytest.mark.parametrize("suffix", [".pt2", ".ts"])
def test_torch_formats_round_trip(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"stft{suffix}"
    r = invoke("export", "-c", "stft_complex", "-o", out)
    assert r.exit_code == 0, r.stderr
    assert "input  audio: float32 [batch, samples]" in r.stdout
    assert "output features: float32 [batch, " in r.stdout
    runner = (torch.export.load(str(out)).module() if suffix == ".pt2"
              else torch.jit.load(str(out)))
    x = speech(3, 17000, 22050)
    with torch.no_grad():
        assert_close(runner(torch.from_numpy(x)).numpy(), eager("stft_complex", x))


def test_cfp_onnx_needs_float64_and_says_so(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    out = tmp_path / "cfp.onnx"
    r = invoke("export", "-c", "cfp", "-o", out)
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--precision float64" in lines[0] and "nothing was kept" in lines[0]
    assert not out.exists()
    r = invoke("export", "-c", "cfp", "-o", out, "--precision", "float64", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["precision"] == "float64" and out.exists()


def test_mistakes_are_one_line(tmp_path: Path) -> None:
    cases = [
        (["-c", "mel128", "-o", tmp_path / "x.wav"], 2, "unknown front-end format '.wav'"),
        (["-o", tmp_path / "x.onnx"], 2, "pass --config PRESET or --transform NAME"),
        (["-c", "mel128", "-o", tmp_path / "no" / "x.pt2"], 1, "does not exist"),
        (["-c", "mel12", "-o", tmp_path / "x.pt2"], 2, "did you mean 'mel128'"),
    ]
    for args, code, needle in cases:
        r = invoke("export", *args)
        assert r.exit_code == code, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, r.stderr
    (tmp_path / "x.ts").write_bytes(b"keep")
    r = invoke("export", "-c", "mel128", "-o", tmp_path / "x.ts")
    assert r.exit_code == 2 and "--overwrite" in r.stderr
    assert (tmp_path / "x.ts").read_bytes() == b"keep"


# --- the README's deploy promise: every preset in every format ---------------------------

#: (preset, suffix) pairs over ~10 s to write and check on 2 busy cores: marked slow (CI runs
#: them); every ONNX export (15-120 s each) and the torch.export of the larger presets
_QUICK_PT2 = {"stft", "stft_complex", "mel128", "gammatone", "vqt"}


def _preset_formats() -> list:
    from nnaudio_cli.presets import preset_files

    out = []
    for path in preset_files():
        for suffix in (".ts", ".pt2", ".onnx"):
            slow = suffix == ".onnx" or (suffix == ".pt2" and path.stem not in _QUICK_PT2)
            marks = [pytest.mark.slow] if slow else []
            out.append(pytest.param(path.stem, suffix, marks=marks, id=f"{path.stem}{suffix}"))
    return out


@pytest.mark.parametrize(("preset", "suffix"), _preset_formats())
def test_every_preset_exports_in_every_format(tmp_path: Path, preset: str, suffix: str) -> None:
    """``nnaudio export`` of every shipped preset writes a file its runtime loads and runs
    like eager (cqt84/vqt's .pt2 failed on the sparse kernel spectra before they stopped being
    buffers). CFP's ONNX needs ``--precision float64`` (test_cfp_onnx_needs_float64...)."""
    if suffix == ".onnx":
        ort = pytest.importorskip("onnxruntime")
    out = tmp_path / f"{preset}{suffix}"
    extra = ["--precision", "float64"] if (preset == "cfp" and suffix == ".onnx") else []
    r = invoke("export", "-c", preset, "-o", out, "--json", *extra)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["max_error"] <= 1e-4
    sr = int(resolve(preset).sr)
    x = speech(2, max(3 * sr // 2, int(json.loads(r.stdout)["min_samples"]) + 1000), sr)
    if suffix == ".onnx":
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = session.run(None, {"audio": x})[0]
    else:
        runner = (torch.export.load(str(out)).module() if suffix == ".pt2"
                  else torch.jit.load(str(out)))
        with torch.no_grad():
            got = runner(torch.from_numpy(x)).numpy()
    assert_close(linear(preset, got), eager(preset, x, float64=bool(extra)))
