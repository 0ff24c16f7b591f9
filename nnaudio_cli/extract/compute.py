"""Stage 4, compute: the transform on packed batches, on the CPU, CUDA or MPS.

:class:`Engine` builds the transform **once**. For frame-local transforms (STFT, Mel,
MFCC and the constant-/variable-Q family) it builds the ``center=False`` *twin* of the
configured transform and computes frame-exact chunks of the centre-padded signal (see
:mod:`nnaudio_cli.extract.batch`); the configuration stored in the output is the configured
one (``center`` as asked). ``MFCC``'s ``top_db`` clips relative to the maximum of the whole
clip, so for MFCC the twin produces unclipped mel decibels and the clip writer applies the
clip-wide floor and the DCT (:mod:`nnaudio_cli.extract.clips`). Any other transform runs on
whole clips (``mode == "whole"``; no segmentation of long files).

:class:`DeviceRunner` runs one packed batch per call under ``torch.inference_mode``:

* CPU: computed at once; the result is time-major ``(rows, K, *row_shape)`` float32.
* CUDA: the batch is staged in pinned memory and copied with ``non_blocking`` on a copy
  stream, so the copy of batch *i + 1* overlaps the compute of batch *i* (the caller keeps
  one batch in flight); the result comes back in one pinned device-to-host copy per batch,
  waited for only when the caller asks for it (no sync per clip). A CUDA out-of-memory
  error halves the rows per call (one note) and carries on.
* MPS: complex FFTs are missing there, so the twin is built with ``backend='conv'``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from nnaudio_core import functional as AF
from nnaudio_core.features import TRANSFORMS, build

#: Transforms the chunked, frame-exact path supports: each frame depends only on
#: ``n_fft`` samples of the centre-padded signal (the constant-/variable-Q family included).
FRAME_LOCAL = frozenset(
    {"STFT", "MelSpectrogram", "MFCC", "CQT", "CQT1992v2", "CQT2010v2", "VQT", "VariableQ",
     "Gammatonegram", "CFP", "KaldiFbank", "KaldiMFCC", "ASTFbank", "VGGishLogMel",
     "PANNsLogMel", "WhisperLogMel"}
)

#: What the ``center=False`` twin turns off: the clip-wide steps the clip writer applies.
TWIN_VALUES: dict[str, Any] = {"center": False, "top_db": None, "dynamic_range": None,
                               "backend": "conv"}


def frame_geometry(module: torch.nn.Module) -> tuple[int, str] | None:
    """``(span, pad_mode)`` of the (sub)module that frames the signal, if any: ``span`` is
    the samples one frame covers (``frame_span`` of the front ends framed from the first
    sample, else ``n_fft``)."""
    for m in module.modules():
        if all(hasattr(m, a) for a in ("center", "pad_mode", "hop_length")):
            span = getattr(m, "frame_span", None) or getattr(m, "n_fft", None)
            if span is not None:
                return int(span), str(m.pad_mode)
    return None


def _defaults(name: str) -> dict[str, Any]:
    """Default constructor values of a transform class."""
    sig = inspect.signature(TRANSFORMS[name].__init__)
    return {k: p.default for k, p in sig.parameters.items()
            if p.default is not inspect.Parameter.empty}


class Engine:
    """A transform built once, and the geometry of its frames.

    Parameters
    ----------
    config : dict
        ``{"transform": name, "params": {...}}`` as for :func:`nnaudio_core.features.build`.
    device : torch.device

    Attributes
    ----------
    config : the configured transform's ``get_config()`` (what the output stores)
    module : the module that computes (the ``center=False`` twin in frame mode), on ``device``
    mode : ``"frames"`` (chunked, frame-exact) or ``"whole"``
    n_fft, hop, pad : frame geometry in samples (``pad = n_fft // 2`` when ``center``)
    pad_mode : ``"reflect"`` or ``"constant"``
    row_shape : shape of one stored frame, ``(n_bins,)`` or ``(n_bins, 2)``
    is_complex : output has a trailing real/imag axis of size 2
    is_mfcc : the clip writer finishes MFCCs (clip-wide ``top_db`` and DCT)
    is_whisper : the clip writer finishes Whisper features (clip-wide floor and scaling)
    dropped_frames : frames the configured transform drops at each clip's end
    frequencies : np.ndarray (n_bins,), Hz per bin
    """

    def __init__(self, config: dict[str, Any], device: torch.device) -> None:
        self.device = device
        name = str(config.get("transform"))
        params = dict(config.get("params", {}))
        defaults = _defaults(name) if name in TRANSFORMS else {}
        self.is_mfcc = name == "MFCC"
        self.is_whisper = name == "WhisperLogMel"
        # a transform that pads or cuts every clip to one length runs on whole clips
        frame_local = name in FRAME_LOCAL and not (
            name in TRANSFORMS and TRANSFORMS[name].fixed_length(params))
        # what the twin changes, and the configured values the output must record instead
        restore: dict[str, Any] = {}
        accepted = TRANSFORMS[name].param_spec() if name in TRANSFORMS else {}
        if frame_local:  # what the twin turns off, where the transform has it at all
            for key in ("center", "top_db" if self.is_mfcc else "",
                        "dynamic_range" if self.is_whisper else ""):
                if key in accepted:
                    restore[key] = params.get(key, defaults.get(key, accepted[key].default))
        if device.type == "mps" and "backend" in defaults:
            restore["backend"] = params.get("backend", defaults["backend"])
        twin_params = dict(params)
        for key in restore:
            twin_params[key] = TWIN_VALUES[key]
        module = build({"transform": name, "params": twin_params})
        self.config = module.get_config()
        stored = self.config["params"]
        # frame-exact chunks: a centre-padded transform's twin, or a front end framed from
        # the first sample
        frame_local = frame_local and ("center" in stored
                                       or getattr(module, "center", None) is False)
        stored.update({k: v for k, v in restore.items() if k in stored})
        self.name = self.config["transform"]
        self.sr = module.sr
        self.hop = int(module.hop_length)
        self.frequencies = np.asarray(module.frequencies(), np.float64)
        self.n_bins = int(len(self.frequencies))
        geometry = frame_geometry(module)
        if frame_local and geometry is not None:
            self.mode = "frames"
            self.n_fft, pad_mode = geometry
            center = bool(stored.get("center", getattr(module, "center", True)))
            self.pad = self.n_fft // 2 if center else 0
            self.pad_mode = pad_mode if center else "constant"
            self.top_db = stored.get("top_db") if self.is_mfcc else None
            self.dynamic_range = stored.get("dynamic_range") if self.is_whisper else None
            # frames the configured transform drops at a clip's end (Whisper: the last one)
            self.dropped_frames = 1 if self.is_whisper and center else 0
        else:
            self.mode = "whole"
            self.n_fft = self.pad = 0
            self.pad_mode = "constant"
            self.top_db = self.dynamic_range = None
            self.dropped_frames = 0
        #: the most samples of a clip the transform reads (None: all), e.g. AST's 1024 frames
        reads = getattr(module, "max_samples", None)
        self.max_samples: int | None = reads() if callable(reads) else None
        self.module = module.to(device).eval()
        self.row_shape = self._probe_row_shape()
        self.is_complex = self.row_shape[1:] == (2,)
        if self.is_mfcc:
            self.dct = self.module.dct.detach().cpu()
            self.ref = float(stored.get("ref", 1.0))
            self.amin = float(stored.get("amin", 1e-10))

    @torch.inference_mode()
    def _probe_row_shape(self) -> tuple[int, ...]:
        """Shape of one stored frame, read from the output on a short silent input."""
        if self.mode == "frames":
            out = self.module(torch.zeros(1, self.n_fft + self.hop, device=self.device))
        else:
            out = self.module(torch.zeros(1, max(int(self.sr), 4096), device=self.device))
        return (int(out.shape[1]),) + tuple(int(s) for s in out.shape[3:])

    @property
    def computed_row_shape(self) -> tuple[int, ...]:
        """Shape of one frame as computed (MFCC: the mel decibels, before the DCT)."""
        if self.is_mfcc and self.mode == "frames":
            return (int(self.module.melspec.n_mels),)
        return self.row_shape

    def n_frames(self, samples: int) -> int:
        """Frames of a clip of ``samples`` samples: ``1 + (L + 2 * pad - n_fft) // hop``,
        less the frames the transform drops at the end."""
        return 1 + (samples + 2 * self.pad - self.n_fft) // self.hop - self.dropped_frames

    def check_length(self, samples: int) -> str | None:
        """Why a clip of this length cannot be transformed, or None (mirrors the core's checks)."""
        if samples < 1:
            return "no audio samples after resampling"
        if self.mode != "frames":
            least = getattr(self.module, "min_samples", None)
            shortest = int(least()) if callable(least) else 1
            return f"too short: {samples} samples, needs at least {shortest}" if (
                samples < shortest) else None
        shortest = self.n_fft - 2 * self.pad + self.dropped_frames * self.hop
        if samples < shortest:
            return f"too short: {samples} samples, needs at least {shortest}"
        return None

    def forward_chunks(self, x: torch.Tensor) -> torch.Tensor:
        """Time-major features of frame-aligned chunks on the device.

        Parameters
        ----------
        x : Tensor (rows, n_fft + (K - 1) * hop), on ``device``

        Returns
        -------
        Tensor (rows, K, *computed_row_shape), float32, contiguous, on ``device``; for
        MFCC the unclipped mel decibels, for Whisper the log10 mel values of every frame
        """
        if self.is_mfcc:
            out = AF.power_to_db(self.module.melspec(x), self.ref, self.amin, None)
        elif self.is_whisper:
            out = self.module.log_mel(x)
        else:
            out = self.module(x)
        return out.transpose(1, 2).float().contiguous()

    def forward_whole(self, x: torch.Tensor) -> torch.Tensor:
        """Time-major features of equal-length whole clips ``(n, samples)`` on the device:
        ``(n, frames, *row_shape)``."""
        return self.module(x).transpose(1, 2).float().contiguous()


class _Done:
    """A result already on the host."""

    def __init__(self, value: np.ndarray) -> None:
        self.value = value

    def result(self) -> np.ndarray:
        return self.value


class _InFlight:
    """A CUDA result whose device-to-host copy was queued; waits only when asked."""

    def __init__(self, host: torch.Tensor, event: Any) -> None:
        self.host = host
        self.event = event

    def result(self) -> np.ndarray:
        self.event.synchronize()
        return self.host.numpy()


class DeviceRunner:
    """Runs packed batches on the engine's device (see the module docstring).

    Parameters
    ----------
    engine : Engine
    note : called with a one-line message when the batch is split after an out-of-memory
        error
    """

    def __init__(self, engine: Engine, note: Callable[[str], Any] | None = None) -> None:
        self.engine = engine
        self.device = engine.device
        self.note = note or (lambda msg: None)
        self.cuda = self.device.type == "cuda"
        self.copy_stream = torch.cuda.Stream(self.device) if self.cuda else None
        self.max_rows: int | None = None  # rows per call after an out-of-memory error

    def submit(self, chunks: np.ndarray, whole: bool = False) -> _Done | _InFlight:
        """Start computing one batch; ``.result()`` gives its time-major features.

        Parameters
        ----------
        chunks : np.ndarray (rows, samples), float32: packed chunks (frame mode) or
            equal-length clips (``whole``)

        Returns
        -------
        an object whose ``result()`` is np.ndarray (rows, K or frames, *row_shape)
        """
        fn = self.engine.forward_whole if whole else self.engine.forward_chunks
        with torch.inference_mode():
            host = torch.from_numpy(np.ascontiguousarray(chunks, dtype=np.float32))
            if self.device.type == "cpu":
                return _Done(self._split(fn, host).numpy())
            if not self.cuda:  # MPS and others: plain copies
                return _Done(self._split(fn, host.to(self.device)).cpu().numpy())
            assert self.copy_stream is not None
            staged = host.pin_memory()
            with torch.cuda.stream(self.copy_stream):
                x = staged.to(self.device, non_blocking=True)
            compute = torch.cuda.current_stream(self.device)
            compute.wait_stream(self.copy_stream)
            x.record_stream(compute)
            out = self._split(fn, x)
            back = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
            back.copy_(out, non_blocking=True)
            event = torch.cuda.Event()
            event.record(compute)
            return _InFlight(back, event)

    def _split(self, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``fn(x)``, in pieces of at most ``max_rows`` rows; halves them on CUDA OOM."""
        rows = x.shape[0]
        step = self.max_rows or rows
        if step >= rows:
            try:
                return fn(x)
            except torch.cuda.OutOfMemoryError:
                if rows <= 1:
                    raise
                torch.cuda.empty_cache()
                self.max_rows = max(1, rows // 2)
                self.note(f"CUDA out of memory on a batch of {rows} rows; computing "
                          f"{self.max_rows} rows per call from now on (lower --batch-seconds "
                          "to avoid this)")
                return self._split(fn, x)
        return torch.cat([self._split(fn, x[i : i + step]) for i in range(0, rows, step)])
