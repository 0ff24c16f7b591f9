"""nnaudio_core: differentiable audio time-frequency transforms for PyTorch.

Depends on torch, numpy and scipy only; does no file I/O.
"""

from nnaudio_core.errors import ParameterError
from nnaudio_core.features import MFCC, STFT, MelSpectrogram, iSTFT

__version__ = "0.1.0"
__all__ = ["MFCC", "STFT", "MelSpectrogram", "ParameterError", "iSTFT"]
