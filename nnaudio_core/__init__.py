"""nnaudio_core: differentiable audio time-frequency transforms for PyTorch.

Depends on torch, numpy and scipy only; does no file I/O.
"""

from nnaudio_core.errors import NonInvertibleError, ParameterError
from nnaudio_core.features import (
    CFP,
    CQT,
    CQT1992,
    CQT2010,
    MFCC,
    STFT,
    VQT,
    Combined_Frequency_Periodicity,
    CQT1992v2,
    CQT2010v2,
    Gammatonegram,
    MelSpectrogram,
    iSTFT,
)

__version__ = "0.1.0"
__all__ = [
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
    "NonInvertibleError",
    "ParameterError",
    "iSTFT",
]
