"""Every name nnAudio2 exports from its transform modules imports from the same module here.

The lists are read from the installed ``nnAudio2`` package (test extra, pinned 2.0.3), so a
new nnAudio2 name shows up as a failure instead of a user's ``ImportError``. The rule for
"a name nnAudio2 exports" from a module ``nnAudio2.features[.X]``:

* every name in the module's ``__all__`` (none of nnAudio2 2.0.3's modules defines one), and
* every public class or function in its namespace that nnAudio2's ``features`` package
  defines (``obj.__module__`` starts with ``nnAudio2.features``): the module's own classes
  and the ones it re-exports from a sibling (``STFT`` from ``features.mel``, ``CQT1992v2``
  from ``features.vqt``, ``iCQT`` from ``features.cqt``).

Not counted: what every nnAudio2 module star-imports from ``nnAudio2.utils`` and
``nnAudio2.librosa_functions`` (kernel helpers such as ``create_cqt_kernels`` with numpy
signatures of their own: our equivalents are :mod:`nnaudio_core.filters`, with different
signatures, and are not part of the drop-in promise), and stdlib/numpy/torch/scipy objects.
"""

from __future__ import annotations

import importlib
import inspect
import os

import pytest

os.environ.setdefault("NNAUDIO_DISABLE_CITATION_REMINDER", "1")
pytest.importorskip("nnAudio2.features")

MODULES = (
    "features",
    "features.stft",
    "features.mel",
    "features.cqt",
    "features.vqt",
    "features.gammatone",
    "features.cfp",
    "features.griffin_lim",
)


def nnaudio2_exports(module: str) -> set[str]:
    """The names ``nnAudio2.<module>`` exports, by the rule in the module docstring."""
    mod = importlib.import_module(f"nnAudio2.{module}")
    names = set(getattr(mod, "__all__", ()))
    for name, obj in vars(mod).items():
        if name.startswith("_") or not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if (getattr(obj, "__module__", None) or "").startswith("nnAudio2.features"):
            names.add(name)
    return names


def test_the_rule_finds_nnaudio2s_transforms() -> None:
    """Guard against a rule that silently matches nothing (e.g. after a package rename)."""
    assert {"STFT", "STFTBase", "iSTFT"} <= nnaudio2_exports("features.stft")
    assert {"CQT1992v2", "iCQT", "CQT"} <= nnaudio2_exports("features.cqt")
    assert {"VQT", "CQT1992v2"} == nnaudio2_exports("features.vqt")
    assert "create_cqt_kernels" not in nnaudio2_exports("features")  # a utils helper
    assert len(nnaudio2_exports("features")) >= 16


@pytest.mark.parametrize("module", MODULES)
def test_every_nnaudio2_name_imports_from_the_same_module(module: str) -> None:
    ours = importlib.import_module(f"nnaudio_core.{module}")
    missing = sorted(n for n in nnaudio2_exports(module) if not hasattr(ours, n))
    assert not missing, f"nnaudio_core.{module} lacks nnAudio2's {missing}"


@pytest.mark.parametrize("module", MODULES)
def test_reexports_are_the_same_objects(module: str) -> None:
    """One implementation of each class: ``features.cqt.iCQT is features.icqt.iCQT``."""
    import nnaudio_core.features as top

    ours = importlib.import_module(f"nnaudio_core.{module}")
    for name in nnaudio2_exports(module):
        assert getattr(ours, name) is getattr(top, name), f"{module}.{name}"


def test_readme_import_line() -> None:
    # nnAudio2's README: from nnAudio2.features.cqt import CQT1992v2, iCQT
    from nnaudio_core.features.cqt import CQT1992v2, iCQT
    from nnaudio_core.features.stft import STFT, STFTBase, iSTFT

    assert issubclass(STFT, STFTBase) and issubclass(iSTFT, STFTBase)
    assert iCQT.from_cqt(CQT1992v2(hop_length=64, output_format="Complex")).n_bins == 84
