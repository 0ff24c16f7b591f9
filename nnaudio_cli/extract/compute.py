"""Running a transform on clips frame-exactly, in chunks of frames (no per-clip padding waste).

For frame-local transforms (``STFT``, ``MelSpectrogram``, ``MFCC``) every output frame ``t``
depends only on samples ``[t*hop, t*hop + n_fft)`` of the centre-padded signal. The engine
therefore pads each clip itself, exactly as the core does with ``center=True`` (reflect or
zero padding of ``n_fft // 2``), and runs a twin of the transform built from the same config
with ``center=False`` on fixed-size *chunks* of the padded signal (``K`` frames each,
consecutive chunks overlapping by ``n_fft - hop`` samples). Any mix of clip lengths becomes
one uniform batch tensor, and a long file is just more chunks: its features equal those of
the one-piece computation.

``MFCC``'s ``top_db`` clips relative to the maximum of the whole clip, so for MFCC the twin
produces the unclipped mel decibels and :class:`MfccFinisher` applies the clip-wide floor and
the DCT once the clip is complete (see :mod:`nnaudio_cli.assemble`).

The constant-/variable-Q family (``CQT1992v2``, ``CQT2010v2``, ``VQT``) is frame-local in
the same way, with ``n_fft`` the kernel span. Any other transform runs on whole clips, batched
only with clips of identical length (``mode == "whole"``; no segmentation of long files).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from nnaudio_core import functional as AF
from nnaudio_core.features import build

#: Transforms the chunked, frame-exact path supports: each frame depends only on
#: ``n_fft`` samples of the centre-padded signal (the constant-/variable-Q family included).
FRAME_LOCAL = frozenset(
    {"STFT", "MelSpectrogram", "MFCC", "CQT", "CQT1992v2", "CQT2010v2", "VQT", "VariableQ"}
)


def frame_geometry(module: torch.nn.Module) -> tuple[int, bool, str] | None:
    """``(n_fft, center, pad_mode)`` of the (sub)module that frames the signal, if any."""
    for m in module.modules():
        if all(hasattr(m, a) for a in ("n_fft", "center", "pad_mode", "hop_length")):
            return int(m.n_fft), bool(m.center), str(m.pad_mode)
    return None


class Engine:
    """A transform, a ``center=False`` twin of it, and the geometry of its frames.

    Parameters
    ----------
    config : dict
        ``{"transform": name, "params": {...}}`` as for :func:`nnaudio_core.features.build`.
    device : torch.device

    Attributes
    ----------
    transform : the module as configured (the reference; its ``get_config()`` is stored)
    mode : ``"frames"`` (chunked, frame-exact) or ``"whole"``
    n_fft, hop, pad : frame geometry (``pad = n_fft // 2`` when ``center`` else 0)
    pad_mode : ``"reflect"`` or ``"constant"``
    is_complex : output has a trailing real/imag axis of size 2
    is_mfcc : output needs :class:`MfccFinisher`
    n_bins : bins per frame
    """

    def __init__(self, config: dict[str, Any], device: torch.device) -> None:
        self.device = device
        self.transform = build(config)
        self.config = self.transform.get_config()
        self.name = self.config["transform"]
        params = self.config["params"]
        self.sr = self.transform.sr
        self.hop = int(self.transform.hop_length)
        self.is_mfcc = self.name == "MFCC"
        geometry = frame_geometry(self.transform)
        if self.name in FRAME_LOCAL and geometry is not None and "center" in params:
            self.mode = "frames"
            self.n_fft, center, pad_mode = geometry
            self.pad = self.n_fft // 2 if center else 0
            self.pad_mode = pad_mode if center else "constant"
            twin_cfg = copy.deepcopy(self.config)
            twin_cfg["params"]["center"] = False
            if self.is_mfcc:
                twin_cfg["params"]["top_db"] = None
            self.twin = build(twin_cfg).to(device).eval()
            self.top_db = params.get("top_db") if self.is_mfcc else None
        else:
            self.mode = "whole"
            self.n_fft = self.pad = 0
            self.pad_mode = "constant"
            self.twin = copy.deepcopy(self.transform).to(device).eval()
            self.top_db = None
        self.n_bins = int(len(self.transform.frequencies()))
        self.row_shape = self._probe_row_shape()
        self.is_complex = self.row_shape[1:] == (2,)
        if self.is_mfcc:
            self.dct = self.twin.dct.detach().cpu()
            self.ref = float(params.get("ref", 1.0))
            self.amin = float(params.get("amin", 1e-10))

    @torch.inference_mode()
    def _probe_row_shape(self) -> tuple[int, ...]:
        """Shape of one stored frame, ``(n_bins,)`` or ``(n_bins, 2)`` (complex or phase
        pairs), read from the output of the transform on a short silent input."""
        n = max(self.n_fft, 2 * self.hop, 4096) if self.mode == "frames" else int(self.sr)
        out = self.transform(torch.zeros(1, n))
        return (int(out.shape[1]),) + tuple(int(s) for s in out.shape[3:])

    @property
    def computed_row_shape(self) -> tuple[int, ...]:
        """Shape of one frame as computed (MFCC: the mel decibels, before the DCT)."""
        if self.is_mfcc and self.mode == "frames":
            return (int(self.twin.melspec.n_mels),)
        return self.row_shape

    def n_frames(self, samples: int) -> int:
        """Frames of a clip of ``samples`` samples: ``1 + (L + 2 * pad - n_fft) // hop``."""
        return 1 + (samples + 2 * self.pad - self.n_fft) // self.hop

    def check_length(self, samples: int) -> str | None:
        """Why a clip of this length cannot be transformed, or None (mirrors the core's checks)."""
        if samples < 1:
            return "no audio samples after resampling"
        if self.mode != "frames":
            return None
        if self.pad and self.pad_mode == "reflect" and samples <= self.pad:
            return (
                f"too short: {samples} samples at {self.sr} Hz, center=True with "
                f"pad_mode='reflect' and n_fft={self.n_fft} needs at least {self.pad + 1}"
            )
        if samples + 2 * self.pad < self.n_fft:
            return f"too short: {samples} samples, needs at least {self.n_fft - 2 * self.pad}"
        return None

    @torch.inference_mode()
    def run_chunks(self, chunks: torch.Tensor) -> torch.Tensor:
        """Features of frame-aligned chunks.

        Parameters
        ----------
        chunks : Tensor (n, n_fft + (K - 1) * hop), on any device

        Returns
        -------
        Tensor (n, bins, K) or (n, bins, K, 2), float32 on the CPU; for MFCC the unclipped
        mel decibels (n, n_mels, K)
        """
        x = chunks.to(self.device, non_blocking=True)
        if self.is_mfcc:
            mel = self.twin.melspec(x)
            out = AF.power_to_db(mel, self.ref, self.amin, None)
        else:
            out = self.twin(x)
        return out.float().cpu()

    @torch.inference_mode()
    def run_whole(self, clips: torch.Tensor) -> torch.Tensor:
        """Features of equal-length whole clips ``(n, samples) -> (n, bins, frames[, 2])``."""
        return self.twin(clips.to(self.device)).float().cpu()


def pad_start(x: np.ndarray, pad: int, mode: str) -> np.ndarray:
    """Left padding of ``x`` (channels, samples) as ``torch.nn.functional.pad`` does it."""
    if pad == 0:
        return x[:, :0]
    if mode == "reflect":
        return x[:, 1 : pad + 1][:, ::-1]
    return np.zeros((x.shape[0], pad), dtype=x.dtype)


def pad_end(tail: np.ndarray, pad: int, mode: str) -> np.ndarray:
    """Right padding from the last ``pad + 1`` samples ``tail`` (channels, pad + 1)."""
    if pad == 0:
        return tail[:, :0]
    if mode == "reflect":
        return tail[:, -pad - 1 : -1][:, ::-1]
    return np.zeros((tail.shape[0], pad), dtype=tail.dtype)


class ClipFramer:
    """Turns a clip, given whole or as consecutive blocks, into frame-aligned padded pieces.

    Each piece is ``(samples, k)`` with ``samples`` of shape (channels, n_fft + (k-1)*hop): a
    stretch of the centre-padded signal holding exactly ``k`` whole frames. Consecutive
    pieces continue where the previous one's frames stopped, so their frames concatenate to
    the frames of the whole clip.

    Parameters
    ----------
    engine : Engine (frame mode)
    max_frames : most frames per piece (bounds memory for long files)
    """

    def __init__(self, engine: Engine, max_frames: int) -> None:
        self.n_fft, self.hop, self.pad, self.mode = (
            engine.n_fft, engine.hop, engine.pad, engine.pad_mode
        )
        self.max_frames = max(1, int(max_frames))
        self.buf: np.ndarray | None = None  # padded samples from the next frame's start
        self.head: list[np.ndarray] = []  # raw samples before the start padding is known
        self.tail: np.ndarray | None = None  # last pad + 1 raw samples
        self.raw = 0

    def push(self, x: np.ndarray, last: bool) -> list[tuple[np.ndarray, int]]:
        """Add the next block (channels, n) of the clip; return the pieces now complete."""
        self.raw += x.shape[1]
        keep = self.pad + 1
        self.tail = x[:, -keep:] if self.tail is None else np.concatenate(
            [self.tail, x], axis=1
        )[:, -keep:]
        if self.buf is None:
            self.head.append(x)
            if self.raw < keep and not last:
                return []
            raw = np.concatenate(self.head, axis=1) if len(self.head) > 1 else self.head[0]
            self.head = []
            self.buf = np.concatenate([pad_start(raw, self.pad, self.mode), raw], axis=1)
        else:
            self.buf = np.concatenate([self.buf, x], axis=1)
        if last:
            self.buf = np.concatenate([self.buf, pad_end(self.tail, self.pad, self.mode)], axis=1)
        return self._emit(last)

    def _emit(self, last: bool) -> list[tuple[np.ndarray, int]]:
        assert self.buf is not None
        out = []
        while True:
            n = self.buf.shape[1]
            avail = 0 if n < self.n_fft else 1 + (n - self.n_fft) // self.hop
            if avail == 0 or (not last and avail < self.max_frames):
                break
            k = min(avail, self.max_frames)
            out.append((np.ascontiguousarray(self.buf[:, : self.n_fft + (k - 1) * self.hop]), k))
            self.buf = self.buf[:, k * self.hop :]
        if last:
            self.buf = None
        return out


class MfccFinisher:
    """Clip-wide ``top_db`` floor and DCT, applied to mel decibels of a finished clip.

    Parameters
    ----------
    engine : Engine with ``is_mfcc``
    """

    def __init__(self, engine: Engine) -> None:
        self.dct = engine.dct
        self.top_db = engine.top_db

    def finish(self, db: np.ndarray, peak: np.ndarray) -> np.ndarray:
        """MFCCs from mel decibels.

        Parameters
        ----------
        db : np.ndarray, shape (channels, frames, n_mels)
        peak : np.ndarray, shape (channels,), the clip's maximum decibel value per channel

        Returns
        -------
        np.ndarray, shape (channels, frames, n_mfcc), float32
        """
        t = torch.from_numpy(np.require(db, np.float32, ["C", "W"]))
        if self.top_db is not None:
            floor = torch.from_numpy(peak.astype(np.float32) - np.float32(self.top_db))
            t = torch.maximum(t, floor.reshape(-1, 1, 1))
        return torch.matmul(t, self.dct.T).numpy()
