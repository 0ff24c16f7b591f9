"""The constant-Q transforms with nnAudio2's names: ``CQT1992v2``, ``CQT2010v2``, ``CQT1992``,
``CQT2010``, and ours, ``CQT`` (imported by users from :mod:`nnaudio_core.features.cqt`,
nnAudio2's path, with ``iCQT``).

Each writes its constructor out (nnAudio2's parameter names, order and defaults, visible to
IDEs and type checkers) and hands its arguments to one builder, :meth:`NamedQ._build`, which
builds the engine, :class:`~nnaudio_core.features.variable_q.VariableQ`.
"""

from typing import Any, Optional

from nnaudio_core import filters
from nnaudio_core.features.variable_q import VariableQ

__all__ = ["CQT", "CQT1992", "CQT2010", "CQT1992v2", "CQT2010v2", "NamedQ", "VariableQ"]


# --- the nnAudio2-named classes: written-out constructors, one shared builder ------------


class NamedQ(VariableQ):
    """What the nnAudio2-named classes share: each writes its constructor out (nnAudio2's
    parameter names, order and defaults) and hands its arguments to :meth:`_build`."""

    def _build(self, params: dict[str, Any]) -> None:
        """Build the engine from a constructor's ``locals()``: :meth:`VariableQ.engine_params`
        translates nnAudio's keywords, and the arguments as given are remembered."""
        params = {k: v for k, v in params.items() if k not in ("self", "__class__")}
        VariableQ.__init__(self, **self.engine_params(params))
        self._remember_config(params)


class CQT1992v2(NamedQ):
    """Constant-Q transform (nnAudio2's ``CQT1992v2``): :class:`VariableQ` with ``gamma = 0``.

    Parameters are nnAudio2's (``sr, hop_length, fmin, fmax, n_bins, bins_per_octave,
    filter_scale, norm, window, center, pad_mode, trainable, output_format, verbose``) plus
    ``normalization_type``, ``backend``, ``sparsity`` and ``bandwidth``; see
    :class:`VariableQ`. With the default ``bandwidth='nnaudio'`` the kernels are nnAudio2's
    (outputs equal to ``nnAudio2``'s ``CQT1992v2`` within float32 round-off); with
    ``bandwidth='librosa'`` numerically equal to ``librosa.cqt(..., tuning=0.0)`` computed at
    full rate.
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
        trainable: bool = False,
        output_format: str = "Magnitude",
        normalization_type: str = "librosa",
        backend: str = "nnaudio2",
        sparsity: float = 0.0,
        bandwidth: str = "nnaudio",
        verbose: bool = True,
    ) -> None:
        self._build(locals())


class CQT2010v2(NamedQ):
    """Constant-Q transform with nnAudio2's ``CQT2010v2`` interface and numbers.

    By default (``backend='nnaudio2'``) it is nnAudio's multirate algorithm
    (:mod:`nnaudio_core.features.multirate`: the top octave's kernels applied to the input
    halved octave by octave, after early downsampling where ``earlydownsample`` allows),
    equal to nnAudio2 2.0.3's ``CQT2010v2`` to float32 round-off. It approximates the exact
    CQT (:class:`CQT1992v2`) to a median 0.3-0.8% per bin. ``backend='auto'`` computes the
    exact transform instead (faster on CPU). Where nnAudio2 cannot compute it
    (``center=False``, ``fmax`` given, a hop that is not a multiple of ``2 ** (octaves -
    1)``) the default falls back to ``'auto'``. ``basis_norm`` is the kernel norm
    (nnAudio's name for ``norm``); ``norm`` (bool) keeps nnAudio's meaning of "apply the
    ``normalization_type`` scaling".
    """

    norm_is_flag = True

    def __init__(
        self,
        sr: float = 22050,
        hop_length: int = 512,
        fmin: float = 32.70,
        fmax: Optional[float] = None,
        n_bins: int = 84,
        filter_scale: float = 1,
        bins_per_octave: int = 12,
        norm: bool = True,
        basis_norm: Optional[float] = 1,
        window: filters.WindowSpec = "hann",
        pad_mode: str = "reflect",
        trainable: bool = False,
        output_format: str = "Magnitude",
        earlydownsample: bool = True,
        normalization_type: str = "librosa",
        center: bool = True,
        backend: str = "nnaudio2",
        sparsity: float = 0.0,
        bandwidth: str = "nnaudio",
        verbose: bool = True,
    ) -> None:
        self._build(locals())

    def _nnaudio2_backend(self, gamma: float) -> str:
        return self._multirate_or_auto("multirate")


class CQT(CQT1992v2):
    """Our constant-Q transform: :class:`CQT1992v2` with ``bandwidth='librosa'`` and
    ``backend='auto'`` (exact, fast) by default, numerically ``librosa.cqt(..., tuning=0.0)``
    (same parameters as :class:`CQT1992v2`)."""

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
        trainable: bool = False,
        output_format: str = "Magnitude",
        normalization_type: str = "librosa",
        backend: str = "auto",
        sparsity: float = 0.0,
        bandwidth: str = "librosa",
        verbose: bool = True,
    ) -> None:
        self._build(locals())


class CQT1992(NamedQ):
    """nnAudio's original ``CQT1992`` class (STFT times spectral kernels).

    Takes nnAudio's keywords (``sr, hop_length, fmin=220, fmax, n_bins, trainable_STFT,
    trainable_CQT, bins_per_octave, filter_scale, output_format, norm, window, center,
    pad_mode``). By default (``backend='nnaudio2'``) computed as nnAudio does: a
    rectangular-window STFT (``conv1d``) times the kernels' positive-frequency spectra,
    equal to nnAudio2's ``CQT1992`` to float32 round-off; it differs from the exact
    correlation (:class:`CQT1992v2`, ``backend='conv'``/``'auto'``) by the kernels'
    negative-frequency leakage (~1e-5 of the peak). ``trainable_STFT`` or ``trainable_CQT``
    makes the kernel spectra trainable (the STFT stage is fixed).
    """

    def __init__(
        self,
        sr: float = 22050,
        hop_length: int = 512,
        fmin: float = 220,
        fmax: Optional[float] = None,
        n_bins: int = 84,
        trainable_STFT: bool = False,
        trainable_CQT: bool = False,
        bins_per_octave: int = 12,
        filter_scale: float = 1,
        output_format: str = "Magnitude",
        norm: Optional[float] = 1,
        window: filters.WindowSpec = "hann",
        center: bool = True,
        pad_mode: str = "reflect",
        normalization_type: str = "librosa",
        backend: str = "nnaudio2",
        bandwidth: str = "nnaudio",
        verbose: bool = True,
    ) -> None:
        self._build(locals())

    def _nnaudio2_backend(self, gamma: float) -> str:
        return "stft_product" if self._config["center"] else "auto"


class CQT2010(CQT2010v2):
    """nnAudio's original ``CQT2010`` class, with its keywords (``trainable_STFT``,
    ``trainable_CQT``, ``earlydownsample``, ``norm``/``basis_norm`` as in
    :class:`CQT2010v2`). By default (``backend='nnaudio2'``) nnAudio's numbers: the
    multirate algorithm of :class:`CQT2010v2` with each octave computed as STFT times kernel
    spectra, which conjugates the phase (imaginary part of the opposite sign to
    ``CQT2010v2``) and, after early downsampling by ``2 ** k``, leaves the output
    ``2 ** k`` times smaller, as nnAudio2's ``CQT2010``."""

    def __init__(
        self,
        sr: float = 22050,
        hop_length: int = 512,
        fmin: float = 32.70,
        fmax: Optional[float] = None,
        n_bins: int = 84,
        bins_per_octave: int = 12,
        norm: bool = True,
        basis_norm: Optional[float] = 1,
        window: filters.WindowSpec = "hann",
        pad_mode: str = "reflect",
        trainable_STFT: bool = False,
        filter_scale: float = 1,
        trainable_CQT: bool = False,
        output_format: str = "Magnitude",
        earlydownsample: bool = True,
        normalization_type: str = "librosa",
        center: bool = True,
        backend: str = "nnaudio2",
        bandwidth: str = "nnaudio",
        verbose: bool = True,
    ) -> None:
        self._build(locals())

    def _nnaudio2_backend(self, gamma: float) -> str:
        return self._multirate_or_auto("stft_product_multirate")
