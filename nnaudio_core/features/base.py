"""What every transform module shares.

* :class:`Transform`, the base class: describing itself so that it can be rebuilt.
* The choices of the string parameters (:data:`OUTPUT_FORMATS`, :data:`PAD_MODES`,
  :data:`BACKENDS`, :data:`NORMALIZATION_TYPES`) and :func:`check_choice`.
* :func:`resolve_lengths`: the STFT-family defaults of ``win_length`` and ``hop_length``.
* :func:`require_frames`: the inverses' check of their input's frame count.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from torch import nn

from nnaudio_core.errors import ParameterError

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
    def from_config(cls, config: dict[str, Any]) -> Transform:
        """Rebuild a module from :meth:`get_config`'s output (or from its ``params`` alone)."""
        params = config.get("params", config) if "transform" in config else config
        if "transform" in config and config["transform"] != cls.__name__:
            raise ParameterError(f"config describes a {config['transform']}, not a {cls.__name__}")
        return cls(**params)

    def frequencies(self) -> np.ndarray:
        """Centre frequency of each output bin in Hz, shape (n_bins,).

        Transforms without a frequency axis (MFCC) return bin indices instead.
        """
        raise NotImplementedError
