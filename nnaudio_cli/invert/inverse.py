"""The inverse operators of ``nnaudio invert``: one class per method, built once per file.

:func:`build_inverse` builds the object for a method. Each inverts stored frames two ways:
:meth:`Inverse.whole` (a batch of whole keys, with the centred inverse) and
:meth:`Inverse.piece` (one segment of a long key with its context frames, in the uncentred
layout), and says how a long key is cut (:attr:`Inverse.hop`, :attr:`Inverse.pad`,
:attr:`Inverse.context`). Griffin-Lim hands each segment's phase to the next
(:class:`PhaseState`), so segments join.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from nnaudio_cli.featurefile.reader import FeatureFile

if TYPE_CHECKING:
    from nnaudio_core.features import Griffin_Lim, InverseMelScale, iCQT

#: Default iterations per method (iCQT: conjugate-gradient steps; Griffin-Lim: iterations).
DEFAULT_ITERATIONS = {"icqt": 16, "griffin-lim": 32}
#: Default relative tolerance per method (0: always run every iteration).
DEFAULT_TOLERANCE = {"icqt": 1e-4, "griffin-lim": 0.0}


def _as_complex_batch(x: np.ndarray, device: torch.device) -> torch.Tensor:
    """(batch, frames, bins, 2) -> (batch, bins, frames, 2) float32 on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1, 3))).to(device)


@dataclass
class PhaseState:
    """What a Griffin-Lim segment hands to the next one.

    ``gl``: the module that made it; ``wav``: its waveform ``(batch, samples)``, starting at
    the segment's first frame; ``conv``: its spectral convergence per item, ``(batch,)``.
    """

    gl: Griffin_Lim
    wav: torch.Tensor
    conv: np.ndarray

    def initial_angles(self, prev_start: int, a0: int, b0: int) -> torch.Tensor:
        """Unit phases ``(batch, bins, b0 - a0, 2)`` for frames [a0, b0): this segment's
        where it covered them (its waveform started at frame ``prev_start``), random
        (torch's global generator) elsewhere."""
        spec = self.gl.stft(self.wav)  # (batch, bins, frames_prev, 2)
        n_prev = spec.shape[-2]
        frames = b0 - a0
        angles = torch.rand(spec.shape[0], spec.shape[1], frames, device=spec.device)
        angles = torch.stack((torch.cos(2 * torch.pi * angles),
                              torch.sin(2 * torch.pi * angles)), -1)
        first, last = a0 - prev_start, min(n_prev, b0 - prev_start)
        if last > first:
            overlap = spec[..., first:last, :]
            norm = torch.sqrt((overlap**2).sum(-1, keepdim=True) + 1e-16)
            angles[..., : last - first, :] = overlap / norm
        return angles


class Inverse(ABC):
    """A method's operators for one file.

    Attributes
    ----------
    hop : int
        Samples between frames.
    pad : int
        Samples of centre padding (``n_fft // 2``; 0 when the features were not centred).
    context : int
        Frames inverted on each side of a segment (covering what its samples depend on).
    """

    def __init__(self, hop: int, n_fft: int, center: bool, context: int) -> None:
        self.hop = hop
        self.pad = n_fft // 2 if center else 0
        self.context = context

    @abstractmethod
    def whole(self, x: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Stored frames of a batch of keys ``(batch, frames, bins[, 2])`` -> waveforms
        ``(batch, length)`` and the convergence per item ``(batch,)`` (None when the method
        has none), with the centred inverse."""

    @abstractmethod
    def piece(self, x: np.ndarray, init: torch.Tensor | None
              ) -> tuple[np.ndarray, PhaseState | None]:
        """Frames of a segment with context ``(batch, frames, bins[, 2])`` -> samples
        ``(batch, samples)`` of the padded signal from the first frame on, and the state
        for the next segment; ``init``: :meth:`PhaseState.initial_angles` of the previous
        one (Griffin-Lim), else None."""


class IstftInverse(Inverse):
    """Complex STFT -> audio by the inverse STFT (one centred, one uncentred module)."""

    def __init__(self, config: dict[str, Any], device: torch.device, center: bool) -> None:
        from nnaudio_core.features import iSTFT

        self.device = device
        self.centred = iSTFT.from_stft(config).to(device)
        self.uncentred = iSTFT.from_stft(config, center=False).to(device)
        hop, n_fft = self.centred.hop_length, self.centred.n_fft
        super().__init__(hop, n_fft, center, math.ceil(n_fft / hop))

    @torch.no_grad()
    def whole(self, x: np.ndarray, length: int) -> tuple[np.ndarray, None]:
        y = self.centred(_as_complex_batch(x, self.device), length=length)
        return y.cpu().numpy(), None

    @torch.no_grad()
    def piece(self, x: np.ndarray, init: torch.Tensor | None) -> tuple[np.ndarray, None]:
        return self.uncentred(_as_complex_batch(x, self.device)).cpu().numpy(), None


class IcqtInverse(Inverse):
    """Complex CQT -> audio by iCQT's conjugate-gradient solve; the uncentred module is
    built on the first long key only (its kernels take ~1 s)."""

    def __init__(self, config: dict[str, Any], device: torch.device, center: bool,
                 n_iter: int, tol: float) -> None:
        from nnaudio_core.features import iCQT

        self.config, self.device, self.n_iter, self.tol = config, device, n_iter, tol
        self.centred = iCQT.from_config(config, n_iter=n_iter, tol=tol).to(device)
        self._uncentred: iCQT | None = None
        hop, n_fft = self.centred.hop_length, self.centred.n_fft
        super().__init__(hop, n_fft, center, 2 * math.ceil(n_fft / hop))

    @property
    def uncentred(self) -> iCQT:
        """The uncentred iCQT, built on first use."""
        if self._uncentred is None:
            from nnaudio_core.features import iCQT

            self._uncentred = iCQT.from_config(self.config, n_iter=self.n_iter, tol=self.tol,
                                               center=False).to(self.device)
        return self._uncentred

    def whole(self, x: np.ndarray, length: int) -> tuple[np.ndarray, None]:
        y = self.centred(_as_complex_batch(x, self.device), length=length)
        return y.detach().cpu().numpy(), None

    def piece(self, x: np.ndarray, init: torch.Tensor | None) -> tuple[np.ndarray, None]:
        module = self.uncentred
        return module(_as_complex_batch(x, self.device)).detach().cpu().numpy(), None


class GriffinLimInverse(Inverse):
    """Magnitude STFT (or the magnitude of a complex one), or mel bands mapped back to
    linear frequency by :class:`~nnaudio_core.features.InverseMelScale`, -> audio by
    Griffin-Lim from phases drawn by a generator of seed 0; in a segmented key the frames a
    segment does not share with the one before start from torch's global generator
    (:meth:`PhaseState.initial_angles`), so the run repeats from a fresh process."""

    def __init__(self, config: dict[str, Any], device: torch.device, center: bool,
                 n_iter: int, tol: float, to_linear: InverseMelScale | None) -> None:
        from nnaudio_core.features import Griffin_Lim

        params = config["params"]  # STFT and MelSpectrogram share these keys
        self.n_fft = params["n_fft"]
        hop = params.get("hop_length") or (params.get("win_length") or self.n_fft) // 4
        kw = dict(n_fft=self.n_fft, hop_length=hop, win_length=params.get("win_length"),
                  window=params.get("window", "hann"), n_iter=max(1, n_iter))
        gl_c = Griffin_Lim(center=center, pad_mode=params.get("pad_mode", "reflect"), **kw)
        gl_u = Griffin_Lim(center=False, **kw)
        self.centred, self.uncentred = gl_c.to(device), gl_u.to(device)
        self.center, self.device, self.tol = center, device, tol
        self.to_linear = to_linear.to(device) if to_linear is not None else None
        self.complex_input = params.get("output_format") == "Complex"
        self.generator = torch.Generator().manual_seed(0)
        super().__init__(hop, self.n_fft, center, 2 * math.ceil(self.n_fft / hop))

    def magnitude(self, x: np.ndarray) -> torch.Tensor:
        """Stored frames ``(batch, frames, bins[, 2])`` -> linear magnitude
        ``(batch, n_fft // 2 + 1, frames)`` on the device."""
        if self.complex_input:  # complex STFT asked to go through Griffin-Lim: use |X|
            x = np.sqrt((x.astype(np.float32) ** 2).sum(-1))
        mag = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1))).to(self.device)
        return self.to_linear(mag) if self.to_linear is not None else mag

    @torch.no_grad()
    def whole(self, x: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
        wav, hist = self.centred.reconstruct(self.magnitude(x), length=length,
                                             generator=self.generator, tol=self.tol,
                                             keep_history=False)
        return wav.cpu().numpy(), hist[..., -1].cpu().numpy()

    @torch.no_grad()
    def piece(self, x: np.ndarray, init: torch.Tensor | None) -> tuple[np.ndarray, PhaseState]:
        mag = self.magnitude(x)
        if not self.center:
            wav, hist = self.uncentred.reconstruct(mag, generator=self.generator, tol=self.tol,
                                                   init_angles=init, keep_history=False)
            return wav.cpu().numpy(), PhaseState(self.uncentred, wav, hist[..., -1].cpu().numpy())
        # the centred (faster) module on the segment: its sample 0 is the segment's first
        # frame centre, i.e. padded-signal sample n_fft // 2 of the uncentred layout; the
        # longest signal with these frames, so a last segment reaches the key's end
        wav, hist = self.centred.reconstruct(mag, length=self.hop * mag.shape[-1] - 1,
                                             generator=self.generator, tol=self.tol,
                                             init_angles=init, keep_history=False)
        y = np.pad(wav.cpu().numpy(), ((0, 0), (self.n_fft // 2, 0)))
        return y, PhaseState(self.centred, wav, hist[..., -1].cpu().numpy())


def build_inverse(
    ff: FeatureFile, method: str, device: torch.device, iterations: int | None,
    tolerance: float | None,
) -> Inverse:
    """The inverse operators of ``method`` (``istft``, ``icqt`` or ``griffin-lim``, as
    :func:`~nnaudio_cli.invert.plan.choose_method` gives it) for the feature of ``ff``,
    built once; ``iterations`` / ``tolerance`` None: :data:`DEFAULT_ITERATIONS` /
    :data:`DEFAULT_TOLERANCE`."""
    config = ff.config
    center = bool(config["params"].get("center", True))
    n_iter = iterations if iterations is not None else DEFAULT_ITERATIONS.get(method, 0)
    tol = tolerance if tolerance is not None else DEFAULT_TOLERANCE.get(method, 0.0)
    if method == "istft":
        return IstftInverse(config, device, center)
    if method == "icqt":
        return IcqtInverse(config, device, center, n_iter, tol)
    to_linear = None
    if config["transform"] == "MelSpectrogram":
        from nnaudio_core.features import InverseMelScale

        to_linear = InverseMelScale.from_mel(ff.transform())
    return GriffinLimInverse(config, device, center, n_iter, tol, to_linear)
