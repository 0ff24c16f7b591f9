"""Mel bands back to linear frequency (``InverseMelScale``), as torchaudio's module.

A mel spectrogram is ``B @ |X| ** power`` with a filter bank ``B`` of shape
``(n_mels, n_freq)``; :class:`InverseMelScale` finds, frame by frame, the non-negative
``s`` (``n_freq`` values) that minimises ``||B s - m||^2`` and returns ``s ** (1 / power)``:
a linear-frequency magnitude for :class:`~nnaudio_core.features.griffin_lim.Griffin_Lim`.
With fewer mel bands than frequency bins the solution is not unique; the solver returns
the one its start (the clipped pseudo-inverse solution) leads to.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from nnaudio_core.errors import ParameterError

if TYPE_CHECKING:
    from nnaudio_core.features.mel import MelSpectrogram

#: Projected-gradient steps of the non-negative least-squares solve.
NNLS_STEPS = 50
#: Frames solved together (an ``n_freq x 256`` float32 block stays in the CPU cache).
NNLS_COLUMNS = 256


class InverseMelScale(nn.Module):
    """Mel power (or magnitude) bands -> linear-frequency magnitude, by batched NNLS.

    Minimises ``||B s - m||^2`` over ``s >= 0`` for every frame at once: start from the
    pseudo-inverse solution clipped at 0, then ``n_steps`` projected-gradient steps of size
    ``1 / ||B||_2^2``. The pseudo-inverse (float64 SVD, stored as float32) and the step are
    computed once, in the constructor; the frames are independent and are solved
    ``block_frames`` at a time. On the CPU the filter bank (mostly zeros) is applied as a
    sparse CSR matrix, elsewhere dense.

    Parameters
    ----------
    mel_basis : Tensor, shape (n_mels, n_freq)
        The filter bank that made the mel bands, e.g.
        :attr:`MelSpectrogram.mel_basis <nnaudio_core.features.mel.MelSpectrogram>`
        (see :meth:`from_mel`); ``n_freq = n_fft // 2 + 1``.
    power : float
        Exponent the magnitude was raised to before the bank (2: power, 1: magnitude);
        the output is ``s ** (1 / power)``. Must be > 0.
    n_steps : int
        Projected-gradient steps (0: the clipped pseudo-inverse solution only).
    block_frames : int
        Frames solved together (a speed setting; the result does not depend on it beyond
        float32 round-off).

    Shapes
    ------
    ``(..., n_mels, frames) -> (..., n_freq, frames)``, float32. The input is in the
    units of the mel spectrogram (``|X| ** power`` summed through the bank); the output is
    a non-negative magnitude in the units of ``|X|``.

    Raises
    ------
    ParameterError
        ``mel_basis`` not 2-D, empty or not finite; ``power <= 0``; ``n_steps < 0``;
        ``block_frames < 1``; or (when called) an input whose band axis is not ``n_mels``.

    Examples
    --------
    >>> mel = MelSpectrogram(sr=22050, n_fft=1024, n_mels=64)
    >>> x = torch.randn(2, 22050)  # (batch, samples)
    >>> InverseMelScale.from_mel(mel)(mel(x)).shape  # (batch, n_fft // 2 + 1, frames)
    torch.Size([2, 513, 44])
    """

    def __init__(
        self,
        mel_basis: Tensor,
        power: float = 2.0,
        n_steps: int = NNLS_STEPS,
        block_frames: int = NNLS_COLUMNS,
    ) -> None:
        super().__init__()
        if mel_basis.dim() != 2 or mel_basis.numel() == 0:
            raise ParameterError(f"mel_basis must be a non-empty (n_mels, n_freq) matrix, got "
                                 f"shape {tuple(mel_basis.shape)}")
        if not power > 0:
            raise ParameterError(f"power={power} must be > 0")
        if n_steps < 0:
            raise ParameterError(f"n_steps={n_steps} must be >= 0")
        if block_frames < 1:
            raise ParameterError(f"block_frames={block_frames} must be >= 1")
        b64 = mel_basis.detach().double().cpu().numpy()
        if not np.isfinite(b64).all():
            raise ParameterError("mel_basis has NaN or infinite values")
        u, sv, vt = np.linalg.svd(b64, full_matrices=False)  # one small SVD gives both
        if not sv[0] > 0:
            raise ParameterError("mel_basis is all zeros")
        keep = sv > sv[0] * max(b64.shape) * np.finfo(np.float64).eps
        pinv = (vt[keep].T / sv[keep]) @ u[:, keep].T
        self.power = float(power)
        self.n_steps = int(n_steps)
        self.block_frames = int(block_frames)
        #: gradient step ``1 / ||B||_2^2``
        self.step = float(1.0 / sv[0] ** 2)
        self.n_mels, self.n_freq = b64.shape
        dense = torch.from_numpy(b64.astype(np.float32))
        self.register_buffer("pinv", torch.from_numpy(pinv.astype(np.float32)))
        self.register_buffer("mel_basis", dense)

    @classmethod
    def from_mel(cls, mel: MelSpectrogram, **kwargs: Any) -> InverseMelScale:
        """The inverse of a :class:`~nnaudio_core.features.mel.MelSpectrogram` ``mel``: its
        ``mel_basis`` and ``power``; ``kwargs`` (``n_steps``, ``block_frames``) as the
        constructor."""
        return cls(mel.mel_basis, float(mel.power), **kwargs)

    def forward(self, mel: Tensor) -> Tensor:
        """Linear-frequency magnitude of mel bands ``(..., n_mels, frames)`` ->
        ``(..., n_freq, frames)``."""
        if mel.dim() < 2 or mel.shape[-2] != self.n_mels:
            raise ParameterError(f"expected (..., {self.n_mels}, frames) mel bands, got shape "
                                 f"{tuple(mel.shape)}")
        lead, (n_mels, frames) = mel.shape[:-2], mel.shape[-2:]
        m = mel.reshape(-1, n_mels, frames).permute(1, 0, 2).reshape(n_mels, -1)
        basis, basis_t = self._operators()
        width = self.block_frames
        s = torch.cat([self._solve(m[:, j : j + width], basis, basis_t)
                       for j in range(0, m.shape[1], width)], 1)
        s = s.reshape(-1, m.shape[1] // frames, frames).permute(1, 0, 2)
        return s.pow(1.0 / self.power).reshape(*lead, -1, frames)

    def _operators(self) -> tuple[Tensor, Tensor]:
        """``B`` and ``B^T`` as applied: sparse CSR on the CPU (~99 % zeros), else dense."""
        basis = self.mel_basis
        if basis.device.type != "cpu":
            return basis, basis.T
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            return basis.to_sparse_csr(), basis.T.contiguous().to_sparse_csr()

    def _solve(self, m: Tensor, basis: Tensor, basis_t: Tensor) -> Tensor:
        """Projected gradient for mel columns ``(n_mels, cols)`` -> ``(n_freq, cols)``."""
        s = (self.pinv @ m).clamp_(min=0)
        for _ in range(self.n_steps):
            s.sub_(basis_t @ (basis @ s - m), alpha=self.step).clamp_(min=0)
        return s

    def extra_repr(self) -> str:
        return (f"n_mels={self.n_mels}, n_freq={self.n_freq}, power={self.power}, "
                f"n_steps={self.n_steps}")
