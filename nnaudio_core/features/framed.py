"""What the model front ends framed from the signal's start share (Kaldi fbank/MFCC, AST,
VGGish): :class:`FramedFilterbank`.

These front ends cut frames of ``frame_span`` samples every ``hop_length`` samples from the
first sample on, without centre padding (Kaldi's ``snip_edges=true``): a clip of ``L``
samples has ``1 + (L - frame_span) // hop_length`` frames. Each frame is optionally made
zero-mean (``remove_dc_offset``) and pre-emphasised (``y[n] = x[n] - c x[n-1]``,
``y[0] = (1 - c) x[0]``), windowed, zero-padded to ``n_fft`` samples and transformed; the
power (or magnitude) spectrum goes through a filter bank.

Two paths compute the spectrum, with the same numbers to float32 round-off:
``torch.fft.rfft`` of the frames (eager and TorchScript, the fast one) and ``conv1d`` with
real kernels that hold the DC removal, pre-emphasis and window folded into the DFT (under
``torch.export``/ONNX, ``backend='conv'``, MPS), which needs neither complex tensors nor
framing by ``unfold``.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nnaudio_core import checks, workers
from nnaudio_core import functional as AF
from nnaudio_core.errors import ParameterError
from nnaudio_core.features.base import BACKENDS, Transform, check_choice


def frame_samples(sr: float, milliseconds: float, name: str, rounded: bool = False) -> int:
    """Samples in ``milliseconds`` at ``sr`` Hz, >= 1: truncated as Kaldi does
    (``int(sr * 0.001 * ms)``: 1102 for 25 ms at 44.1 kHz), or ``rounded`` to the nearest."""
    checks.check_positive(name, milliseconds)
    exact = sr * 0.001 * milliseconds
    n = int(np.floor(exact + 0.5)) if rounded else int(exact)
    if n < 1:
        raise ParameterError(f"{name}={milliseconds} ms is less than one sample at sr={sr:g}")
    return n


class FramedFilterbank(Transform):
    """Base class: frames from the signal's start, a DFT and a filter bank (see the module
    docstring). Subclasses call :meth:`_build` in ``__init__`` and compute their values from
    :meth:`bank_energies`.

    Attributes read by the extractor (``nnaudio extract``) to segment long files exactly:
    ``frame_span`` (samples one frame spans), ``hop_length``, ``center`` (False) and
    ``pad_mode``.
    """

    center = False
    pad_mode = "constant"

    def _build(
        self,
        sr: float,
        frame_span: int,
        hop_length: int,
        n_fft: int,
        window: np.ndarray,
        bank: np.ndarray,
        power: bool,
        remove_dc_offset: bool,
        preemphasis: float,
        trainable_bank: bool,
        backend: str,
    ) -> None:
        check_choice("backend", backend, BACKENDS)
        if n_fft < frame_span:
            raise ParameterError(f"the FFT size {n_fft} is shorter than the frame {frame_span}")
        checks.check_range("preemphasis_coefficient", preemphasis, 0.0, 1.0 + 1e-12)
        self.sr = sr
        self.frame_span = int(frame_span)
        self.hop_length = int(hop_length)
        self.n_fft = int(n_fft)
        self.power = bool(power)
        self.remove_dc = bool(remove_dc_offset)
        self.preemph = float(preemphasis)
        self.use_conv = backend == "conv"
        n_freq = n_fft // 2 + 1
        # the frame's linear pre-processing (DC removal, pre-emphasis, window) as one matrix,
        # folded into the DFT for the real-kernel path: kernel_k = DFT_k @ diag(w) P D
        pre = np.eye(frame_span)
        if remove_dc_offset:
            pre = pre - 1.0 / frame_span
        if preemphasis:
            emph = np.eye(frame_span) - preemphasis * np.eye(frame_span, k=-1)
            emph[0, 0] = 1.0 - preemphasis
            pre = emph @ pre
        pre = window[:, None] * pre  # (frame_span, frame_span)
        phase = 2.0 * np.pi * np.arange(n_freq)[:, None] * np.arange(frame_span)[None, :] / n_fft
        self.register_buffer("window", torch.from_numpy(window.astype(np.float32)))
        self.first_weight = float(window[0])
        # (n_freq, 1, frame_span): conv1d kernels of the real DFT of the processed frame
        self.register_buffer("dft_cos", torch.from_numpy((np.cos(phase) @ pre).astype(
            np.float32))[:, None, :])
        self.register_buffer("dft_sin", torch.from_numpy((np.sin(phase) @ pre).astype(
            np.float32))[:, None, :])
        # (frame_span, 1, frame_span): the processed frame itself, for the windowed energy
        self.register_buffer("processing", torch.from_numpy(pre.astype(np.float32))[:, None, :])
        bank_t = torch.from_numpy(np.ascontiguousarray(bank.T).astype(np.float32))
        if trainable_bank:
            self.bank = nn.Parameter(bank_t)  # (n_freq, n_bands)
        else:
            self.register_buffer("bank", bank_t)

    def min_samples(self) -> int:
        """The shortest clip with one frame, in samples."""
        return self.frame_span

    def check_length(self, x: Tensor) -> None:
        """Raise :class:`ParameterError` for packed audio shorter than one frame."""
        if x.shape[-1] < self.frame_span:
            raise ParameterError(
                f"input of {x.shape[-1]} samples is shorter than one frame "
                f"({self.frame_span} samples); give at least {self.frame_span} samples"
            )

    def kernel_path(self, x: Tensor) -> bool:
        """Whether the real-kernel (``conv1d``) path computes ``x``."""
        return self.use_conv or AF.is_exporting() or x.device.type == "mps"

    def frames(self, x: Tensor) -> Tensor:
        """Frames of packed audio ``(batch, samples) -> (batch, frames, frame_span)``, after
        the DC offset removal (not pre-emphasised or windowed)."""
        frames = x.unfold(-1, self.frame_span, self.hop_length)
        if self.remove_dc:
            frames = frames - frames.mean(dim=-1, keepdim=True)
        return frames

    def emphasised(self, frames: Tensor) -> Tensor:
        """Pre-emphasis of frames ``(..., frame_span)``: ``y[n] = x[n] - c x[n - 1]``, with
        ``x[-1] = x[0]`` as Kaldi."""
        if self.preemph == 0.0:
            return frames
        prev = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        return frames - self.preemph * prev

    def bank_energies(self, x: Tensor, need_raw: bool = False) -> Tuple[Tensor, Tensor]:
        """Filter-bank energies and the frames' raw energies of packed audio.

        Returns
        -------
        (energies, raw) : Tensors of shapes (batch, frames, n_bands) and (batch, frames):
        ``raw`` is the energy of each frame after the DC offset removal, before
        pre-emphasis and window (Kaldi's ``raw_energy``); shape (0,) unless ``need_raw``
        """
        x = x.to(self.window.dtype)
        self.check_length(x)
        if self.kernel_path(x):
            xs = x.unsqueeze(1)
            re = F.conv1d(xs, self.dft_cos, stride=self.hop_length)
            im = F.conv1d(xs, self.dft_sin, stride=self.hop_length)
            spec = re * re + im * im
            if not self.power:  # before the transpose: no stride guard in export
                spec = AF.root_power(spec)
            raw = x.new_zeros(0)
            if need_raw:
                ones = torch.ones_like(self.window).reshape(1, 1, -1)
                raw = F.conv1d(xs * xs, ones, stride=self.hop_length)[:, 0]
                if self.remove_dc:
                    total = F.conv1d(xs, ones, stride=self.hop_length)[:, 0]
                    raw = raw - total * total / self.frame_span
            return torch.matmul(spec.transpose(1, 2), self.bank), raw
        # cache-sized blocks of frames (the STFT's blocking), each (b, n_bands, frames)
        # in frame-major memory, as join_frames expects
        segments, time_blocks = AF.split_frames(
            x, self.frame_span, self.hop_length, AF.block_frames(x, self.frame_span))
        if AF.is_eager_cpu(x):
            parts = self._on_workers(segments, need_raw, x)
        else:
            parts = [self._fft_energies(seg, need_raw) for seg in segments]
        bands = [b.transpose(1, 2) for b, _ in parts]
        if not need_raw:
            return AF.join_frames(bands, time_blocks).transpose(1, 2), x.new_zeros(0)
        raws = [r.unsqueeze(1) for _, r in parts]
        return (AF.join_frames(bands, time_blocks).transpose(1, 2),
                AF.join_frames(raws, time_blocks)[:, 0])

    @torch.jit.unused
    def _on_workers(self, segments: List[Tensor], need_raw: bool,
                    x: Tensor) -> List[Tuple[Tensor, Tensor]]:
        """:meth:`_fft_energies` of each segment on the block workers
        (:mod:`nnaudio_core.workers`: a busy neighbour delays one segment, not every
        operation)."""
        grad = workers.tracks_grad(self, x)
        with workers.one_thread(workers.parallel(x, len(segments), grad) > 0):
            return workers.map_blocks(lambda seg: self._fft_energies(seg, need_raw), segments,
                                      x, grad)

    # TorchScript reads the signature of this eager-only method from its annotations, which
    # this module's ``from __future__ import annotations`` makes strings: the real ones
    _on_workers.__annotations__ = {"segments": List[Tensor], "need_raw": bool, "x": Tensor,
                                   "return": List[Tuple[Tensor, Tensor]]}

    def _fft_energies(self, x: Tensor, need_raw: bool) -> Tuple[Tensor, Tensor]:
        """:meth:`bank_energies` of one block by ``rfft``, with the frame pre-processing
        rewritten on the signal: pre-emphasis ``p`` of the whole block once (``p[0] = (1 - c)
        x[0]``), so a frame at ``s`` is ``P (f - m) = p[s:s+W] - (1 - c) m`` but for its first
        sample, which differs by ``c (x[s-1] - x[s])`` (``s > 0``; a term the Povey and
        Hanning windows multiply by 0)."""
        span, hop, c = self.frame_span, self.hop_length, self.preemph
        frames = x.unfold(-1, span, hop)  # a view
        raw = x.new_zeros(0)
        if need_raw and self.remove_dc:
            raw = frames.var(dim=-1, unbiased=False) * span
        elif need_raw:
            raw = (frames * frames).sum(dim=-1)
        if c != 0.0:
            emph = torch.cat([x[:, :1] * (1.0 - c), x[:, 1:] - c * x[:, :-1]], dim=1)
            work = emph.unfold(-1, span, hop)
        else:
            work = frames
        if self.remove_dc:
            work = work - frames.mean(dim=-1, keepdim=True) * (1.0 - c)
        work = work * self.window
        if c != 0.0 and self.first_weight != 0.0 and work.shape[1] > 1:
            starts = x[:, hop : hop * (work.shape[1] - 1) + 1 : hop]
            before = x[:, hop - 1 : hop * (work.shape[1] - 1) : hop]
            work[:, 1:, 0] += self.first_weight * c * (before - starts)
        spec = torch.view_as_real(torch.fft.rfft(work, n=self.n_fft, dim=-1))
        power = spec.square().sum(dim=-1)
        if not self.power:
            power = AF.root_power(power)
        return torch.matmul(power, self.bank), raw

    def windowed_energy(self, x: Tensor) -> Tensor:
        """Energy of each emphasised, windowed frame ``(batch, frames)`` (Kaldi's
        ``raw_energy=false``)."""
        x = x.to(self.window.dtype)
        if self.kernel_path(x):
            processed = F.conv1d(x.unsqueeze(1), self.processing, stride=self.hop_length)
            return (processed * processed).sum(dim=1)
        frames = self.emphasised(self.frames(x)) * self.window
        return (frames * frames).sum(dim=-1)


def log_floor(x: Tensor, floor: float) -> Tensor:
    """``log(max(x, floor))``, natural log."""
    return torch.log(torch.clamp(x, min=floor))


def place_energy(feats: Tensor, energy: Optional[Tensor], last: bool) -> Tensor:
    """Bands ``(batch, T, n)`` with the log energy ``(batch, T)`` as the first column
    (``last``: as the last, Kaldi's ``htk_compat``); unchanged when ``energy`` is None."""
    if energy is None:
        return feats
    e = energy.unsqueeze(-1)
    return torch.cat([feats, e], dim=-1) if last else torch.cat([e, feats], dim=-1)
