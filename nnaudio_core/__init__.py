"""nnaudio_core: differentiable audio time-frequency transforms for PyTorch.

Depends on torch, numpy and scipy only; does no file I/O.

Importing the package is cheap: the transforms (and torch) load on first use of one of
them (``from nnaudio_core import STFT`` or ``nnaudio_core.STFT``), so ``__version__`` and
:mod:`nnaudio_core.errors` can be read without importing torch (``nnaudio --version``).
"""

from __future__ import annotations

from typing import Any

from nnaudio_core.errors import NonInvertibleError, ParameterError

__version__ = "0.1.0"
#: the transforms, loaded from :mod:`nnaudio_core.features` on first use
_TRANSFORMS = (
    "CFP",
    "CQT",
    "CQT1992",
    "CQT2010",
    "CQT1992v2",
    "CQT2010v2",
    "Combined_Frequency_Periodicity",
    "Gammatonegram",
    "MFCC",
    "STFT",
    "VQT",
    "MelSpectrogram",
    "iSTFT",
)
__all__ = [*_TRANSFORMS, "NonInvertibleError", "ParameterError"]


def __getattr__(name: str) -> Any:
    if name in _TRANSFORMS:
        from nnaudio_core import features

        return getattr(features, name)
    raise AttributeError(f"module 'nnaudio_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
