"""The transforms, with nnAudio2's class names.

``TRANSFORMS`` maps each class name to its class; :func:`build` rebuilds a module from
``get_config()`` output. :class:`InverseMelScale` (mel bands back to linear frequency) is
built from a filter bank, not a config, and is not in ``TRANSFORMS``.
"""

from __future__ import annotations

from typing import Any

from nnaudio_core.errors import ParameterError
from nnaudio_core.features.base import Transform
from nnaudio_core.features.cfp import CFP, Combined_Frequency_Periodicity
from nnaudio_core.features.cqt import (
    CQT,
    CQT1992,
    CQT2010,
    CQT1992v2,
    CQT2010v2,
    VariableQ,
)
from nnaudio_core.features.gammatone import Gammatonegram
from nnaudio_core.features.griffin_lim import Griffin_Lim, spectral_convergence
from nnaudio_core.features.icqt import iCQT
from nnaudio_core.features.inverse_mel import InverseMelScale
from nnaudio_core.features.kaldi import ASTFbank, KaldiFbank, KaldiMFCC
from nnaudio_core.features.mel import MFCC, MelSpectrogram
from nnaudio_core.features.panns import PANNsLogMel
from nnaudio_core.features.stft import STFT, STFTBase, iSTFT
from nnaudio_core.features.vggish import VGGishLogMel, vggish_examples
from nnaudio_core.features.vqt import VQT
from nnaudio_core.features.whisper import WhisperLogMel

TRANSFORMS: dict[str, type[Transform]] = {
    cls.__name__: cls
    for cls in (
        STFT,
        iSTFT,
        MelSpectrogram,
        MFCC,
        CQT,
        CQT1992,
        CQT2010,
        CQT1992v2,
        CQT2010v2,
        VQT,
        VariableQ,
        iCQT,
        Griffin_Lim,
        Gammatonegram,
        CFP,
        Combined_Frequency_Periodicity,
        KaldiFbank,
        KaldiMFCC,
        ASTFbank,
        WhisperLogMel,
        VGGishLogMel,
        PANNsLogMel,
    )
}


def build(config: dict[str, Any]) -> Transform:
    """Rebuild a transform from ``{"transform": name, "params": {...}}``."""
    name = config.get("transform")
    if name not in TRANSFORMS:
        raise ParameterError(f"unknown transform {name!r}; known: {', '.join(sorted(TRANSFORMS))}")
    return TRANSFORMS[name].from_config(config)


__all__ = [
    *TRANSFORMS, "InverseMelScale", "STFTBase", "TRANSFORMS", "Transform", "build",
    "spectral_convergence", "vggish_examples",
]
