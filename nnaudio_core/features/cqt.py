"""nnAudio2's ``features.cqt`` namespace: the constant-Q classes and their inverse.

The transforms are defined in :mod:`nnaudio_core.features.constant_q` (the nnAudio2-named
classes), :mod:`nnaudio_core.features.variable_q` (their engine, :class:`VariableQ`) and
:mod:`nnaudio_core.features.icqt` (:class:`iCQT`); this module gathers them under the path
nnAudio2's README uses (``from nnAudio2.features.cqt import CQT1992v2, iCQT``), so a port
changes one import. It defines nothing itself, which keeps the import graph acyclic
(``icqt`` imports the engine).
"""

from nnaudio_core.features.constant_q import CQT, CQT1992, CQT2010, CQT1992v2, CQT2010v2
from nnaudio_core.features.icqt import iCQT
from nnaudio_core.features.variable_q import VariableQ

__all__ = [
    "CQT",
    "CQT1992",
    "CQT1992v2",
    "CQT2010",
    "CQT2010v2",
    "VariableQ",
    "iCQT",
]
