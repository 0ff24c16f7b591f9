"""What every transform shares: describing itself so that it can be rebuilt."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from nnaudio_core.errors import ParameterError


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
