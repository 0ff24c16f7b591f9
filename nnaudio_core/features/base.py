"""What every transform module shares.

* :class:`Transform`, the base class: describing itself so that it can be rebuilt.
* The choices of the string parameters (:data:`OUTPUT_FORMATS`, :data:`PAD_MODES`,
  :data:`BACKENDS`, :data:`NORMALIZATION_TYPES`) and :func:`check_choice`.
* :func:`resolve_lengths`: the STFT-family defaults of ``win_length`` and ``hop_length``.
* :func:`require_frames`, :func:`working_length`, :func:`fit_length`: the inverses' frame
  count check and output length (shared by Griffin-Lim and iCQT).
* :class:`ParamSpec`, :meth:`Transform.param_spec`: each transform's parameter schema.
"""

from __future__ import annotations

import collections.abc
import inspect
import sys
import types
import typing
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor, nn

from nnaudio_core import filters
from nnaudio_core.errors import ParameterError
from nnaudio_core.params import ParamSpec

#: Output formats of the analysis transforms.
OUTPUT_FORMATS = ("Magnitude", "Complex", "Phase")
#: Centre-padding modes.
PAD_MODES = ("reflect", "constant")
#: Computation paths (see :mod:`nnaudio_core.features.stft`).
BACKENDS = ("auto", "fft", "conv")
#: Output scalings of the constant-/variable-Q transforms.
NORMALIZATION_TYPES = ("librosa", "convolutional", "wrap")


def check_choice(name: str, value: object, choices: tuple) -> None:
    """Raise :class:`ParameterError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ParameterError(f"{name}={value!r} is not one of {', '.join(map(repr, choices))}")


def require_frames(n_frames: int, what: str) -> None:
    """Raise :class:`ParameterError` when an inverse is handed a spectrogram of 0 frames."""
    if n_frames < 1:
        raise ParameterError(f"{what} needs at least 1 frame, got {n_frames}")


def resolve_lengths(
    n_fft: int, win_length: Optional[int], hop_length: Optional[int]
) -> tuple[int, int]:
    """``(win_length, hop_length)`` with the STFT defaults filled in (``win_length = n_fft``,
    ``hop_length = win_length // 4``), in samples."""
    if n_fft < 1:
        raise ParameterError(f"n_fft={n_fft} must be >= 1")
    win_length = n_fft if win_length is None else int(win_length)
    hop_length = max(1, win_length // 4) if hop_length is None else int(hop_length)
    if hop_length < 1:
        raise ParameterError(f"hop_length={hop_length} must be >= 1")
    return win_length, hop_length


def working_length(
    n_frames: int,
    length: Optional[int],
    n_fft: int,
    hop_length: int,
    center: bool,
    min_samples: int = 1,
) -> int:
    """The signal length, in samples, an inverse reconstructs for ``n_frames`` frames:
    ``length`` when a signal that long gives ``n_frames`` frames, else the shortest that does.

    With ``center`` the shortest is ``hop_length * (n_frames - 1)`` (at least
    ``min_samples``; reflect padding needs more than ``n_fft // 2``), without it
    ``n_fft + hop_length * (n_frames - 1)``.
    """
    hop = hop_length
    if center:
        lo, hi = max(hop * (n_frames - 1), min_samples, 1), hop * n_frames - 1
    else:
        lo, hi = n_fft + hop * (n_frames - 1), n_fft + hop * n_frames - 1
    if lo > hi:
        raise ParameterError(
            f"{n_frames} frames cannot come from center={center} with n_fft={n_fft}, "
            f"hop_length={hop} (at least {min_samples} samples)"
        )
    if length is not None and lo <= length <= hi:
        return int(length)
    return lo


def fit_length(x: Tensor, length: int) -> Tensor:
    """``x`` (..., samples) trimmed or zero-padded at the end to ``length`` samples."""
    n = x.shape[-1]
    if length < n:
        return x[..., :length]
    if length > n:
        return torch.nn.functional.pad(x, [0, length - n])
    return x


#: The string parameters with a fixed set of values, by name (any transform).
CHOICES: dict[str, tuple] = {
    "pad_mode": PAD_MODES,
    "output_format": OUTPUT_FORMATS,
    "backend": BACKENDS,
    "normalization_type": NORMALIZATION_TYPES,
    "freq_scale": filters.FREQ_SCALES,
    "bandwidth": filters.BANDWIDTH_RULES,
}

def _accepted_types(annotation: Any) -> tuple[type, ...]:
    """The Python types an annotation (a typing object, not text) accepts."""
    if annotation in (inspect.Parameter.empty, Any):
        return (object,)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        out: list[type] = []
        for arg in typing.get_args(annotation):
            out.extend(t for t in _accepted_types(arg) if t not in out)
        return tuple(out)
    if origin is not None:  # Sequence[float], tuple[...]: a list or tuple from TOML
        return (list, tuple) if origin in (collections.abc.Sequence, list, tuple) else (origin,)
    if annotation is float:
        return (float, int)
    return (annotation,) if isinstance(annotation, type) else (object,)


class Transform(nn.Module):
    """Base class of the nnaudio transforms.

    Subclasses call :meth:`_remember_config` with their constructor arguments; then
    ``type(m).from_config(m.get_config())`` rebuilds an equal module (kernels re-derived
    from the parameters; trained weights travel through ``state_dict``).
    """

    def _remember_config(self, params: dict[str, Any]) -> None:
        self._config = {k: v for k, v in params.items() if k not in ("self", "__class__", "kwargs")}

    def get_config(self) -> dict[str, Any]:
        """The constructor parameters of this module, as ``{"transform": name, "params": {...}}``.

        Values are JSON-compatible (numpy arrays become lists).
        """
        params = {
            k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self._config.items()
        }
        return {"transform": type(self).__name__, "params": params}

    @classmethod
    def param_spec(cls) -> dict[str, ParamSpec]:
        """The schema of this transform's constructor: parameter name -> :class:`ParamSpec`.

        Read from the constructor's signature and its (evaluated) type hints, the
        same with or without ``from __future__ import annotations``; parameters passed on
        through ``**kwargs`` come from :meth:`delegated_spec`.
        """
        init = cls.__init__
        module = vars(sys.modules[cls.__module__])
        try:
            hints = typing.get_type_hints(init)
        except (NameError, TypeError):
            hints = {}
        spec: dict[str, ParamSpec] = {}
        for p in inspect.signature(cls).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            ann = hints.get(p.name, p.annotation)
            if isinstance(ann, str):  # a declared signature from a postponed-annotation module
                ann = eval(ann, module)  # noqa: S307 (the module's own annotation)
            spec[p.name] = ParamSpec(p.name, _accepted_types(ann), p.default,
                                     CHOICES.get(p.name, ()))
        for name, extra in cls.delegated_spec().items():
            spec.setdefault(name, extra)
        return spec

    @classmethod
    def delegated_spec(cls) -> dict[str, ParamSpec]:
        """Parameters this transform accepts through ``**kwargs`` and passes on (none)."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Transform:
        """Rebuild a module from :meth:`get_config`'s output (or from its ``params`` alone)."""
        params = config.get("params", config) if "transform" in config else config
        if "transform" in config and config["transform"] != cls.__name__:
            raise ParameterError(f"config describes a {config['transform']}, not a {cls.__name__}")
        return cls(**params)

    @classmethod
    def fixed_length(cls, params: dict[str, Any]) -> bool:
        """Whether a module of these constructor ``params`` pads or cuts every clip to one
        length (so its frames are not a clip's alone: the extractor runs it on whole
        clips). None here."""
        return False

    def to_linear(self, y: Tensor) -> Tensor:
        """The linear values this module's output ``y`` stands for (the identity here; the
        log-valued front ends undo their log). Two computations of a log-valued output are
        compared on these: float32 round-off far below the peak, which a log lifts, is not
        a difference there."""
        return y

    def frequencies(self) -> np.ndarray:
        """Centre frequency of each output bin in Hz, shape (n_bins,).

        Transforms without a frequency axis (MFCC) return bin indices instead.
        """
        raise NotImplementedError
