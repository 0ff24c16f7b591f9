"""Inverse constant-Q transform (``iCQT``): waveform from a complex ``CQT1992v2`` output.

The forward CQT is a real-linear map ``A: x -> (Re C, Im C)``; :class:`iCQT` solves the
(lightly regularised) normal equations ``(A^T A + R) x = A^T C`` by preconditioned conjugate
gradients (PCG), with independent CG scalars per batch item. ``A^T A p`` costs one forward
and one adjoint pass of a frozen copy of the forward transform. On the CPU in float32 the
adjoint is written out for the forward's eager-CPU plan (:meth:`_correlate_adjoint`:
transposed dense products and overlap-add for the short kernels; FFT, the conjugate-transposed
sparse kernel matrix, a half-weighted inverse real FFT and overlap-add for the long ones),
equal to autograd's vector-Jacobian product to float32 round-off and about 4x cheaper;
elsewhere (accelerators, float64, the kernel path) the adjoint is autograd's, so padding,
centring and the kernel path are the forward's exactly. The preconditioner is the frame
operator's diagonal in frequency: for a tone at frequency ``f``,
``A^T A ~ (1 / hop) * sum_k s_k^2 (|G_k(f)|^2 + |G_k(-f)|^2) / 2``
with ``G_k`` the spectrum of kernel ``k`` and ``s_k`` its output scale (``sqrt(length_k)``
for the librosa normalisation); it is tabulated once in ``__init__`` on a grid 4x finer
than the kernel span and interpolated to each input's rfft grid. ``R`` is zero inside the
band the CQT measures and a large multiple of the band-edge diagonal outside it (below
``fmin``, above the top bin), so the unmeasured bands stay empty instead of collecting noise.

Compared with Landweber iteration (step ``1 / ||A^T A||`` from a power iteration), the
1 s 440 Hz tone at 44.1 kHz (hop 512, 84 bins from C1) comes back at 68 dB SNR after 12
PCG iterations (~1 s on 2 CPU cores) instead of ~22 dB after 32 plain Landweber steps.
"""

from __future__ import annotations

import inspect
import math
import warnings
from typing import Any, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from nnaudio_core import checks, correlate, filters, workers
from nnaudio_core import functional as AF
from nnaudio_core.errors import ParameterError
from nnaudio_core.features import constant_q as cqt
from nnaudio_core.features.base import (
    Transform,
    fit_length,
    require_frames,
    working_length,
)
from nnaudio_core.features.variable_q import VariableQ
from nnaudio_core.features.vqt import VQT


def max_hop_length(sr: float, f_max: float, bins_per_octave: int = 12) -> int:
    """Largest hop at which a constant-Q transform up to ``f_max`` Hz stays invertible.

    Near ``f_max`` the bins are ``df = f_max * (1 - 2 ** (-1 / bins_per_octave))`` Hz apart
    and each gives ``sr / hop`` complex values per second: a band ``df`` wide (``2 df`` real
    degrees of freedom per second) is measured ``2 * sr / hop`` times per second, so the
    transform can only be injective there when ``sr / hop >= df``, i.e.
    ``hop <= sr / (f_max * (1 - 2 ** (-1 / bins_per_octave)))`` (``~ Q * sr / f_max``, the
    length of the shortest filter at ``filter_scale = 1``). Conjugate gradients converge
    quickly at half this hop or less and slow down as the hop approaches it.

    Returns
    -------
    int, samples (at least 1)
    """
    spacing = f_max * (1.0 - 2.0 ** (-1.0 / bins_per_octave))
    return max(1, int(math.floor(sr / spacing)))


class _Operator(VariableQ):
    """The frozen forward of an :class:`iCQT`: a :class:`VariableQ` that keeps its kernel
    bank until the iCQT has tabulated its preconditioner from it."""

    def _kernels_built(self, kernels: np.ndarray) -> None:
        self.kernel_bank = kernels


#: the transforms whose configs :meth:`iCQT.from_config` accepts
INVERTIBLE = (VariableQ, cqt.CQT1992v2, cqt.CQT, cqt.CQT1992, cqt.CQT2010v2, cqt.CQT2010, VQT)


class iCQT(Transform):
    """Inverse of :class:`~nnaudio_core.features.cqt.CQT1992v2` (complex output).

    Parameters
    ----------
    sr, hop_length, fmin, fmax, n_bins, bins_per_octave, filter_scale, norm, window, center,
    pad_mode, normalization_type, backend, sparsity, bandwidth :
        The forward transform's parameters (see
        :class:`~nnaudio_core.features.cqt.VariableQ`); they must match the transform that
        produced the input.
    gamma : float
        Bandwidth offset in Hz (0: CQT; > 0 inverts a :class:`~nnaudio_core.features.VQT`).
    bandwidth : {'nnaudio', 'librosa'}
        The forward transform's filter-bandwidth rule; the default is ``CQT1992v2``'s
        (``'nnaudio'``), so ``iCQT(...)(CQT1992v2(...)(x))`` works unchanged;
        :meth:`from_cqt` copies the forward module's rule.
    n_iter : int
        Conjugate-gradient iterations (each costs one forward and one backward CQT).
    tol : float
        Stop early once every batch item's preconditioned residual has fallen by this factor
        (0: always run ``n_iter`` iterations).
    out_of_band_weight : float
        Preconditioner weight of the frequencies the CQT does not measure (below ``fmin``,
        above the top bin), relative to the band edge. Large values (default 100) keep the
        reconstruction band-limited instead of filling the unmeasured bands with noise.
    verbose : bool
        Accepted for nnAudio compatibility.

    Shapes
    ------
    ``(..., n_bins, frames, 2)`` (real, imag; or a complex ``(..., n_bins, frames)``) ->
    ``(..., samples)``; a single ``(n_bins, frames, 2)`` gives ``(1, samples)``. ``samples``
    is ``length`` if given, else ``hop_length * (frames - 1)`` when ``center``
    (``n_fft + hop_length * (frames - 1)`` otherwise). Output in the same units as the
    waveform the CQT was computed from, float32.

    Invertibility
    -------------
    Only content between ``fmin`` and the top bin is measured, so only that band comes back.
    Within it, the condition used is a sampling (counting) one: near frequency ``f`` adjacent
    bins are ``df = f * (1 - 2 ** (-1 / bins_per_octave))`` Hz apart (``~ f / Q`` with
    ``Q = 1 / alpha ~ bins_per_octave / ln 2``) and each yields ``sr / hop`` complex values a
    second, so the ``2 df`` real degrees of freedom per second of that band are measured
    ``2 sr / hop`` times: the transform is injective there only if ``sr / hop >= df``::

        hop_length <= sr / (f_max * (1 - 2 ** (-1 / bins_per_octave)))  ~  Q * sr / f_max

    i.e. at most the length of the shortest filter (:func:`max_hop_length`). The stricter
    per-bin rule, that each bin's own Hann main lobe ``4 f / Q`` fits in the frame rate
    (``hop <= Q * sr / (4 f_max)``), is not needed: neighbouring bins overlap and resolve
    each other's aliasing (a 16 kHz, 84-bin CQT inverts to 70 dB at hop 64, where the top
    bin aliases a third of its energy). Conjugate gradients converge in a few iterations at
    half the limiting hop and slow down as the hop approaches it. At 44.1 kHz, 84 bins from
    C1 (top 3951 Hz) the limit is hop 198; hop 512 undersamples the bins above ~1.5 kHz: a
    440 Hz tone still comes back at 70+ dB, broadband content above 1.5 kHz does not.
    :class:`iCQT` warns (``UserWarning``, at construction and at every reconstruction) when
    any bin is undersampled, naming the bins and the largest hop that satisfies the rule;
    their indices are in ``undersampled_bins``.

    Gradients
    ---------
    The output is differentiable with respect to the input CQT: the backward pass solves
    ``A^T A z = dL/dx`` with the same PCG and returns ``A z`` (the adjoint of the
    least-squares inverse, exact when the solver has converged). Double backward is not
    supported. Not scriptable (``torch.autograd.Function``).
    """

    def __init__(
        self,
        sr: float = 22050,
        hop_length: int = 512,
        fmin: float = 32.70,
        fmax: Optional[float] = None,
        n_bins: int = 84,
        bins_per_octave: int = 12,
        filter_scale: float = 1,
        norm: Optional[float] = 1,
        window: filters.WindowSpec = "hann",
        center: bool = True,
        pad_mode: str = "reflect",
        normalization_type: str = "librosa",
        gamma: float = 0.0,
        backend: str = "auto",
        sparsity: float = 0.0,
        bandwidth: str = "nnaudio",
        n_iter: int = 16,
        tol: float = 1e-4,
        out_of_band_weight: float = 100.0,
        verbose: bool = True,
    ) -> None:
        params = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        super().__init__()
        self._remember_config(params)
        n_iter = params.pop("n_iter")
        tol = params.pop("tol")
        out_of_band_weight = params.pop("out_of_band_weight")
        checks.check_int("n_iter", n_iter, 1)
        checks.check_nonnegative("tol", tol)
        checks.check_positive("out_of_band_weight", out_of_band_weight)
        self.cqt = _Operator(**params, trainable=False, output_format="Complex")
        self.cqt.requires_grad_(False)
        self.sr = params["sr"]
        self.hop_length = self.cqt.hop_length
        self.n_bins = self.cqt.n_bins
        self.n_fft = self.cqt.n_fft
        self.center = self.cqt.center
        self.pad_mode = self.cqt.pad_mode
        self.n_iter = int(n_iter)
        self.tol = float(tol)

        freqs = self.cqt.frequencies()
        sr = self.sr
        n_fft = self.n_fft
        scale2 = self._output_scale().double().numpy()[:, 0] ** 2
        # |G_k|^2 on a grid 4x finer than the kernel span: the lowest kernels are narrow
        n_grid = 4 * n_fft
        diag_full = np.zeros(n_grid)
        for k in range(freqs.size):
            diag_full += scale2[k] * np.abs(np.fft.fft(self.cqt.kernel_bank[k], n=n_grid)) ** 2
        del self.cqt.kernel_bank
        diag_full /= self.hop_length
        # a real signal sees the mean of +f and -f
        diag_sym = 0.5 * (diag_full + np.roll(diag_full[::-1], 1))
        diag = diag_sym[: n_grid // 2 + 1]
        # Frequencies the CQT does not measure (below fmin, above the top bin) get a Tikhonov
        # penalty R(f) = out_of_band_weight * (band-edge value of the diagonal): the system
        # solved is (A^T A + R) x = A^T C, positive definite, so the solution keeps no
        # unmeasured content and forward and backward are adjoint linear maps.
        grid_hz = np.arange(diag.size) * sr / n_grid
        lo_i = int(np.searchsorted(grid_hz, freqs[0]))
        hi_i = min(int(np.searchsorted(grid_hz, freqs[-1])), diag.size - 1)
        penalty = np.zeros_like(diag)
        penalty[:lo_i] = out_of_band_weight * diag[lo_i]
        penalty[hi_i + 1 :] = out_of_band_weight * diag[hi_i]
        inv_diag = 1.0 / (diag + penalty + 1e-6 * diag.max())
        # both on the grid f = j / n_grid cycles per sample, j = 0 .. n_grid // 2
        self.register_buffer(
            "penalty", torch.from_numpy(penalty.astype(np.float32)), persistent=False
        )
        self.register_buffer(
            "inv_diagonal", torch.from_numpy(inv_diag.astype(np.float32)), persistent=False
        )
        self.n_grid = n_grid

        # the forward's long-kernel matrices, conjugate-transposed once for the adjoint
        self._long_h: dict[str, Tensor] = {}
        if self.cqt.use_fft:
            plan = self.cqt.path.plan
            for _m, name, _neg, _nnz in plan.long:
                mat = plan.sparse(name).coalesce().t().conj().coalesce()
                with warnings.catch_warnings():  # "sparse CSR support is in beta"
                    warnings.simplefilter("ignore", UserWarning)
                    self._long_h[name] = mat.to_sparse_csr()

        # invertibility: bins spaced wider than the frame rate are undersampled
        bins_per_octave = params["bins_per_octave"]
        spacing = freqs * (1.0 - 2.0 ** (-1.0 / bins_per_octave))
        self.undersampled_bins = np.nonzero(spacing > sr / self.hop_length)[0]
        self._warning: Optional[str] = None
        if self.undersampled_bins.size:
            bad = self.undersampled_bins
            limit = max_hop_length(sr, float(freqs[-1]), bins_per_octave)
            self._warning = (
                f"iCQT: hop_length={self.hop_length} undersamples {bad.size} of {freqs.size} "
                f"bins ({freqs[bad[0]]:.1f}-{freqs[-1]:.1f} Hz: adjacent bins there are "
                f"{spacing[bad[0]]:.1f} Hz or more apart, above the frame rate "
                f"{sr / self.hop_length:.1f} Hz); broadband content there cannot be "
                f"reconstructed. Use hop_length <= {limit} (about {max(1, limit // 2)} "
                f"for fast convergence), fewer bins or a lower fmax"
            )
            warnings.warn(self._warning, UserWarning, stacklevel=2)

    @classmethod
    def from_config(cls, config: dict[str, Any], **overrides: Any) -> iCQT:
        """Build the inverse of a transform from its ``get_config()``.

        Accepts an ``iCQT`` config as well as the configs of ``CQT1992v2``, ``CQT2010v2``,
        ``VariableQ`` and ``VQT`` (parameters that do not affect the numbers, such as
        ``output_format`` and ``trainable``, are dropped). ``overrides`` set iteration
        parameters (``n_iter``, ``tol``, ...).
        """
        name = config.get("transform", cls.__name__)
        params = dict(config.get("params", config) if "transform" in config else config)
        if name != cls.__name__:
            source = {c.__name__: c for c in INVERTIBLE}.get(name)
            if source is None:
                raise ParameterError(f"config describes a {name}, which iCQT cannot invert")
            bound = inspect.signature(source).bind(**params)
            bound.apply_defaults()  # the source class's defaults, e.g. CQT's bandwidth
            params = source.engine_params(dict(bound.arguments))
            if params.pop("trainable", False):
                warnings.warn(
                    "iCQT inverts the kernels rebuilt from the config; trained kernel "
                    "weights are not used",
                    UserWarning,
                    stacklevel=2,
                )
            params.pop("output_format", None)
            params.pop("earlydownsample", None)  # the inverse is of the exact transform
        if params.get("backend") in ("nnaudio2", "multirate"):
            params["backend"] = "auto"  # the inverse of the exact transform (nnAudio2's too)
        params.update(overrides)
        return cls(**params)

    @classmethod
    def from_cqt(cls, cqt: VariableQ, **overrides: Any) -> iCQT:
        """The inverse of an existing CQT/VQT module (``from_config(cqt.get_config())``)."""
        return cls.from_config(cqt.get_config(), **overrides)

    def frequencies(self) -> np.ndarray:
        """Centre frequency of each expected input bin in Hz, shape (n_bins,)."""
        return self.cqt.frequencies()

    # --- the operator -------------------------------------------------------------------

    def _fast(self, x: Tensor) -> bool:
        """Whether the explicit adjoint applies: the forward's eager-CPU float32 plan."""
        return (
            self.cqt.use_fft and AF.is_eager_cpu(x) and x.dtype == torch.float32
            and not x.requires_grad
        )

    def _output_scale(self) -> Tensor:
        """Per-bin factor (n_bins, 1) the forward applies after the correlation."""
        return self.cqt.output_scale()

    def _correlate_adjoint(self, real: Tensor, imag: Tensor, n_samples: int) -> Tensor:
        """Adjoint of ``self.cqt.real_imag`` (eager-CPU plan) for (batch, n_bins, frames)
        real/imag parts: a signal of shape (batch, n_samples)."""
        plan = self.cqt.path.plan
        hop = self.hop_length
        n_frames = real.shape[-1]
        batch = real.shape[0]
        with torch.enable_grad():
            z = real.new_zeros(batch, n_samples).requires_grad_(True)
            padded = AF.pad_signal(z, self.n_fft, self.center, self.pad_mode)
        grad = real.new_zeros(batch, padded.shape[1])
        b = 0
        if plan.long_bins:
            k, span, off = plan.long_bins, plan.long_span, plan.long_offset
            m, name, neg = plan.long_segment_choice(n_frames)
            seg_len = (n_frames - 1) * hop + span
            grad[:, off : off + seg_len] += correlate.correlate_fft_adjoint(
                real[:, :k], imag[:, :k], self._long_h[name], k, span, hop, m, neg, seg_len
            )
            b = k
        for _b0, _b1, off, name in plan.direct:
            mat = plan.direct_matrix(name)
            nb = mat.shape[1] // 2
            part = correlate.correlate_direct_adjoint(
                real[:, b : b + nb], imag[:, b : b + nb], mat, hop
            )
            grad[:, off : off + part.shape[1]] += part
            b += nb
        (g,) = torch.autograd.grad(padded, z, grad)
        return g

    def _normal(self, p: Tensor) -> Tensor:
        """``(A^T A + R) p`` for ``p`` of shape (batch, samples)."""
        if self._fast(p):  # each clip on its own: groups of clips on the block workers
            return workers.map_clips(self._normal_fast, p, self)
        with torch.enable_grad():
            p = p.detach().requires_grad_(True)
            y = self.cqt(p)
            (g,) = torch.autograd.grad(0.5 * (y * y).sum(), p)
        return g + self._filter(p.detach(), self.penalty)

    def _normal_fast(self, p: Tensor) -> Tensor:
        """:meth:`_normal` by the forward's eager-CPU plan and its explicit adjoint."""
        real, imag = self.cqt.real_imag(p)
        s2 = self._output_scale() ** 2
        g = self._correlate_adjoint(real * s2, imag * s2, p.shape[-1])
        return g + self._filter(p, self.penalty)

    def _adjoint(self, c: Tensor, n_samples: int) -> Tensor:
        """``A^T c`` for ``c`` of shape (batch, n_bins, frames, 2)."""
        if self._fast(c):
            s = self._output_scale()
            return self._correlate_adjoint(c[..., 0] * s, c[..., 1] * s, n_samples)
        with torch.enable_grad():
            z = torch.zeros(c.shape[0], n_samples, dtype=c.dtype, device=c.device)
            z.requires_grad_(True)
            y = self.cqt(z)
            (g,) = torch.autograd.grad(y, z, c)
        return g

    def _filter(self, r: Tensor, table: Tensor) -> Tensor:
        """Multiply the spectrum of ``r`` (batch, samples) by ``table`` (on the fine grid,
        linearly interpolated to the rfft grid of ``r``): a symmetric circulant operator."""
        n = r.shape[-1]
        spec = torch.fft.rfft(r, dim=-1)
        top = self.n_grid // 2
        pos = torch.arange(spec.shape[-1], device=r.device, dtype=torch.float64)
        pos = pos * (self.n_grid / n)
        lo = pos.floor().long().clamp(max=top)
        hi = (lo + 1).clamp(max=top)
        frac = (pos - lo.double()).to(r.dtype)
        w = table[lo] * (1 - frac) + table[hi] * frac
        return torch.fft.irfft(spec * w, n=n, dim=-1)

    def _apply_preconditioner(self, r: Tensor) -> Tensor:
        return workers.map_clips(lambda b: self._filter(b, self.inv_diagonal), r, self)

    def _solve(self, b: Tensor, n_iter: int, tol: float) -> Tensor:
        """PCG for ``A^T A x = b``, ``b`` of shape (batch, samples); per-item scalars."""
        x = torch.zeros_like(b)
        r = b
        z = self._apply_preconditioner(r)
        p = z
        rz = (r * z).sum(-1, keepdim=True)
        rz0 = rz.clone()
        for _ in range(n_iter):
            if tol > 0 and bool(torch.all(rz <= (tol * tol) * rz0)):
                break
            q = self._normal(p)
            pq = (p * q).sum(-1, keepdim=True)
            alpha = torch.where(pq > 0, rz / torch.where(pq > 0, pq, torch.ones_like(pq)), 0)
            x = x + alpha * p
            r = r - alpha * q
            z = self._apply_preconditioner(r)
            rz_new = (r * z).sum(-1, keepdim=True)
            beta = torch.where(rz > 0, rz_new / torch.where(rz > 0, rz, torch.ones_like(rz)), 0)
            p = z + beta * p
            rz = rz_new
        return x

    def forward(
        self, C: Tensor, length: Optional[int] = None, n_iter: Optional[int] = None
    ) -> Tensor:
        """Waveform whose CQT is closest (least squares) to ``C``.

        Parameters
        ----------
        C : Tensor, shape (..., n_bins, frames, 2), or complex (..., n_bins, frames)
            Complex CQT as returned by ``CQT1992v2(output_format='Complex')`` with the same
            parameters.
        length : int or None
            Samples to return (pass the original length); ``None`` gives
            ``hop_length * (frames - 1)`` when ``center``.
        n_iter : int or None
            Overrides the constructor's iteration count for this call.

        Returns
        -------
        Tensor, shape (..., samples), float32 (the dtype of the operator)
        """
        if self._warning is not None:
            warnings.warn(self._warning, UserWarning, stacklevel=2)
        if torch.is_complex(C):
            C = torch.view_as_real(C)
        if C.dim() < 3 or C.shape[-1] != 2 or C.shape[-3] != self.n_bins:
            raise ParameterError(
                f"iCQT expects a Complex CQT of shape (..., {self.n_bins}, frames, 2), "
                f"got {tuple(C.shape)}"
            )
        require_frames(C.shape[-2], "iCQT")
        if C.dim() == 3:
            C = C.unsqueeze(0)
        lead: List[int] = list(C.shape[:-3])
        n_frames = C.shape[-2]
        c2 = C.reshape(-1, self.n_bins, n_frames, 2).to(self.inv_diagonal.dtype)
        reflect = self.center and self.pad_mode == "reflect"
        n_work = working_length(n_frames, length, self.n_fft, self.hop_length, self.center,
                                self.n_fft // 2 + 1 if reflect else 1)
        iters = self.n_iter if n_iter is None else int(n_iter)
        x = _PCGInverse.apply(c2, self, n_work, iters, self.tol)
        if length is None:
            length = self.hop_length * (n_frames - 1) + (0 if self.center else self.n_fft)
        return fit_length(x, int(length)).reshape(lead + [int(length)])

    def extra_repr(self) -> str:
        return (
            f"n_bins={self.n_bins}, hop_length={self.hop_length}, n_fft={self.n_fft}, "
            f"n_iter={self.n_iter}"
        )


class _PCGInverse(torch.autograd.Function):
    """``x = (A^T A)^-1 A^T C`` by PCG; backward ``dC = A (A^T A)^-1 dx`` by the same PCG."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, c: Tensor, module: iCQT, n_samples: int, n_iter: int, tol: float
    ) -> Tensor:
        ctx.module = module
        ctx.n_iter = n_iter
        ctx.tol = tol
        # with groups of clips on the block workers (in _normal), the solver's own vector
        # steps run single-threaded too: no parallel region a busy neighbour could stall
        blocks = -(-c.shape[0] // workers.clips_per_block(c.new_empty(1, n_samples)))
        with workers.one_thread(workers.parallel(c, blocks, False) > 0 and module._fast(c)):
            b = module._adjoint(c, n_samples)
            return module._solve(b, n_iter, tol)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(  # type: ignore[override]
        ctx: Any, grad_x: Tensor
    ) -> Tuple[Optional[Tensor], None, None, None, None]:
        module: iCQT = ctx.module
        z = module._solve(grad_x.contiguous(), ctx.n_iter, ctx.tol)
        with torch.no_grad():
            grad_c = module.cqt(z)
        return grad_c, None, None, None, None
