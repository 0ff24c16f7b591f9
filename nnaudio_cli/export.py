"""Deployable front ends: a preset's transform written as ONNX, ``torch.export`` or TorchScript.

:func:`export_frontend` builds the transform of a resolved configuration, writes it with a
dynamic batch and length (``audio``: float32 ``(batch, samples)`` at the configuration's rate),
reads the written file back, runs it on a generated signal of a *different* batch and length
than the one it was traced with, and compares it with the eager module. Only a file that
agrees (within :data:`TOLERANCE` of the eager output's peak) is renamed onto the output path;
otherwise nothing is written (an existing file is kept) and the error says by how much it
differed.

``precision="float64"`` computes inside the front end in float64 (input and output stay
float32). CFP needs it for ONNX: its ``|X| ** 0.24`` compression lifts float32 round-off of
onnxruntime's DFT of odd lengths (N = fs / fr = 11025) to ~2e-3 of the peak, while the float64
graph agrees with eager to 1e-11.

Formats, chosen by the file's suffix:

========  ==================================================  ============================
suffix    written with                                        read back with
========  ==================================================  ============================
.onnx     ``torch.onnx.export(dynamo=True)`` (opset 18+)      onnxruntime (CPU)
.pt2      ``torch.export.export`` + ``torch.export.save``     ``torch.export.load``
.ts/.pt   ``torch.jit.script`` + ``torch.jit.save``           ``torch.jit.load``
========  ==================================================  ============================
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nnaudio_cli.errors import CliError
from nnaudio_cli.plumbing.outputs import replacing

FORMATS = {".onnx": "onnx", ".pt2": "torch.export", ".ts": "torchscript", ".pt": "torchscript"}
#: Largest allowed ``max |exported - eager| / max |eager|`` on the check signal.
TOLERANCE = 1e-4
INPUT_NAME, OUTPUT_NAME = "audio", "features"


class ExportError(CliError):
    """The front end cannot be written or does not reproduce the eager module."""


@dataclass
class ExportReport:
    """What :func:`export_frontend` wrote.

    Attributes
    ----------
    path, format : the file and its format (a value of :data:`FORMATS`)
    transform, sr : the transform's class name and its sample rate in Hz
    input_shape, output_shape : symbolic shapes, e.g. ``["batch", "samples"]`` and
        ``["batch", 84, "frames"]``
    min_samples : the shortest input the front end accepts, in samples
    check_shape : shape of the check signal, ``(batch, samples)``
    max_error : ``max |exported - eager| / max |eager|`` on the check signal
    precision : the dtype the front end computes in
    seconds : time to write and check, in seconds
    """

    path: Path
    format: str
    transform: str
    sr: float
    input_shape: list[Any]
    output_shape: list[Any]
    min_samples: int
    check_shape: tuple[int, int]
    max_error: float
    seconds: float
    precision: str = "float32"
    names: dict[str, str] = field(default_factory=lambda: {"input": INPUT_NAME,
                                                           "output": OUTPUT_NAME})

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.format, "transform": self.transform,
                "sr": self.sr, "input": {"name": INPUT_NAME, "shape": self.input_shape,
                                         "dtype": "float32"},
                "output": {"name": OUTPUT_NAME, "shape": self.output_shape, "dtype": "float32"},
                "min_samples": self.min_samples, "check_shape": list(self.check_shape),
                "precision": self.precision, "max_error": self.max_error,
                "seconds": self.seconds}


def format_of(path: Path) -> str:
    """The export format named by ``path``'s suffix; a usage error for any other suffix."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ExportError(f"{path.name}: unknown front-end format {path.suffix or '(none)'!r}; "
                          f"use {', '.join(FORMATS)}", usage=True)
    return fmt


def min_samples(module: Any) -> int:
    """The shortest input that gives at least two frames: one frame span (times the lowest
    octave's decimation on nnAudio's multirate CQT path) plus one hop."""
    span = 0
    for m in module.modules():
        for name in ("n_fft", "N"):
            value = getattr(m, name, None)
            if isinstance(value, int):
                span = max(span, value)
        factor = getattr(m, "min_input_factor", None)  # nnAudio's multirate CQT path
        if callable(factor):
            span *= int(factor())
    return max(span, 64) + int(getattr(module, "hop_length", 512))


def _signal(batch: int, samples: int, sr: float) -> np.ndarray:
    """Seeded check signal: a log chirp (0.5, 40 Hz to 0.45 sr) plus white noise (0.1 rms),
    ``(batch, samples)``."""
    rng = np.random.default_rng(0)
    t = np.arange(samples) / sr
    f0, f1 = 40.0, 0.45 * sr
    k = math.log(f1 / f0) / max(t[-1], 1e-9)
    rows = []
    for b in range(batch):
        phase = 2 * math.pi * f0 * (np.expm1(k * t) / k) + b
        rows.append(0.5 * np.sin(phase) + 0.1 * rng.standard_normal(samples))
    return np.stack(rows).astype(np.float32)


def _shape_names(out_shape: tuple[int, ...], traced: tuple[int, int], check: tuple[int, int],
                 check_shape: tuple[int, ...]) -> list[Any]:
    """Symbolic output shape: ``batch`` where it follows the batch, ``frames`` where it
    follows the length, the size otherwise."""
    names: list[Any] = []
    for i, (a, b) in enumerate(zip(out_shape, check_shape, strict=True)):
        if i == 0 and a == traced[0] and b == check[0]:
            names.append("batch")
        elif a != b:
            names.append("frames")
        else:
            names.append(int(a))
    return names


def _write_and_load(module: Any, fmt: str, path: Path, example: Any, lo: int) -> Any:
    """Write ``module`` to ``path`` in ``fmt``; return a callable that runs the written file
    on a float32 numpy array."""
    dims = ({0: torch.export.Dim("batch", min=1, max=1 << 16),
             1: torch.export.Dim("samples", min=lo, max=(1 << 31) - 1)},)
    if fmt == "torchscript":
        torch.jit.save(torch.jit.script(module), str(path))
        loaded = torch.jit.load(str(path))
        return lambda x: loaded(torch.from_numpy(x)).numpy()
    if fmt == "torch.export":
        program = torch.export.export(module, (example,), dynamic_shapes=dims)
        torch.export.save(program, str(path))
        runner = torch.export.load(str(path)).module()
        return lambda x: runner(torch.from_numpy(x)).numpy()
    try:
        import onnxruntime
        import onnxscript  # noqa: F401  (torch.onnx's dynamo exporter needs it)
    except ImportError as e:
        from nnaudio_cli.plumbing.text import install_hint

        raise ExportError(f"ONNX export needs the onnx extra ({e.name} is missing): "
                          f"{install_hint('onnx')}") from None
    quiet = logging.getLogger("torch.onnx")  # "torchvision is not installed" notes
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its progress
        program = torch.onnx.export(module, (example,), dynamo=True, dynamic_shapes=dims,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    verbose=False)
    quiet.setLevel(level)
    program.save(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {INPUT_NAME: x})[0]


def _write_and_check(module: Any, fmt: str, path: Path, example: Any, x: np.ndarray, lo: int,
                     core_config: dict[str, Any],
                     precision: str) -> tuple[float, tuple[int, ...]]:
    """Write ``module`` to ``path``, run the written file on ``x`` (batch, samples); return
    its largest error relative to eager's peak and eager's output shape.

    Raises
    ------
    ExportError
        The exporter failed, or the written file differs from eager (shape, or by more than
        :data:`TOLERANCE` of the peak).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = _write_and_load(module, fmt, path, example, lo)
            got = np.asarray(run(x))
    except ExportError:
        raise
    except Exception as e:  # the exporters raise many types; one line names the cause
        first = " ".join(str(e).split())[:300]
        raise ExportError(f"{core_config['transform']} cannot be written as {fmt}: "
                          f"{type(e).__name__}: {first}") from None
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    if got.shape != want.shape:
        raise ExportError(f"the written {fmt} front end returns shape {got.shape}, eager "
                          f"{want.shape}; nothing was kept")
    # a log-valued front end is compared on the linear values it stands for (Transform.to_linear)
    core = getattr(module, "inner", module)
    linear = getattr(core, "to_linear", None)
    if linear is not None:
        got = linear(torch.from_numpy(np.asarray(got, np.float64))).numpy()
        want = linear(torch.from_numpy(np.asarray(want, np.float64))).numpy()
    peak = float(np.abs(want).max()) or 1.0
    err = float(np.abs(got - want).max()) / peak
    if not err <= TOLERANCE:
        hint = ("; compute in float64 inside the front end with --precision float64"
                if precision == "float32" else "")
        raise ExportError(f"the written {fmt} front end differs from eager by {err:.2e} of the "
                          f"peak (allowed {TOLERANCE:g}); nothing was kept{hint}")
    return err, tuple(want.shape)


class InFloat64(torch.nn.Module):
    """``inner`` computing in float64 between float32 input and output: ``(batch, samples)``
    float32 -> the transform's output in float32."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner.double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.double()).float()


def export_frontend(core_config: dict[str, Any], path: Path,
                    precision: str = "float32") -> ExportReport:
    """Write the transform of ``core_config`` (``{"transform", "params"}``) to ``path`` and
    check the written file against the eager module.

    Raises
    ------
    ExportError
        Unknown suffix (usage), a missing ONNX dependency, a transform the format cannot
        express, or a written file that differs from eager by more than :data:`TOLERANCE`
        of the peak (nothing is written; an existing file at ``path`` is kept).
    """
    from nnaudio_core.features import build

    fmt = format_of(path)
    t0 = time.perf_counter()
    module = build(core_config).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    sr = float(module.sr) if hasattr(module, "sr") else float(getattr(module, "fs", 0.0))
    lo = min_samples(module)
    if precision == "float64":
        module = InFloat64(module)
    elif precision != "float32":
        raise ExportError(f"precision {precision!r}: use float32 or float64", usage=True)
    traced = (2, 2 * lo + 37)
    check = (3, 3 * lo + 101)  # another batch and length than the traced ones
    example = torch.from_numpy(_signal(*traced, sr or 22050.0))
    x = _signal(*check, sr or 22050.0)
    # written to a temporary file, checked, then renamed onto path: a failed export leaves
    # an existing file (and a symlink's target) as it was
    with replacing(path) as tmp:
        err, want_shape = _write_and_check(module, fmt, tmp, example, x, lo, core_config,
                                           precision)
    with torch.no_grad():
        out_traced = module(example).shape
    return ExportReport(
        path=path, format=fmt, transform=str(core_config["transform"]), sr=sr,
        input_shape=["batch", "samples"],
        output_shape=_shape_names(tuple(out_traced), traced, check, want_shape),
        min_samples=lo, check_shape=check, max_error=err,
        seconds=time.perf_counter() - t0, precision=precision,
    )
