"""nnAudio2 keyword compatibility of the constant-/variable-Q classes: names, order and
defaults of each constructor as ``inspect.signature`` shows them (the classes share one
declared parameter spec, so this pins what each one exposes), positional calls, and the
schema ``param_spec()`` derived from it."""

from __future__ import annotations

import inspect
import warnings

import pytest

from nnaudio_core import ParameterError
from nnaudio_core.features import TRANSFORMS

DEFAULTS = dict(
    sr=22050, hop_length=512, fmin=32.70, fmax=None, n_bins=84, bins_per_octave=12,
    filter_scale=1, gamma=0.0, norm=1, window="hann", center=True, pad_mode="reflect",
    trainable=False, output_format="Magnitude", normalization_type="librosa", backend="auto",
    sparsity=0.0, bandwidth="nnaudio", verbose=True, basis_norm=1, earlydownsample=True,
    trainable_STFT=False, trainable_CQT=False, n_iter=16, tol=1e-4, out_of_band_weight=100.0,
)
HEAD = "sr hop_length fmin fmax n_bins "
EXPECTED = {
    "VariableQ": (
        HEAD + "bins_per_octave filter_scale gamma norm window center pad_mode trainable "
        "output_format normalization_type backend sparsity bandwidth verbose earlydownsample",
        {"bandwidth": "librosa"},
    ),
    "CQT1992v2": (
        HEAD + "bins_per_octave filter_scale norm window center pad_mode trainable "
        "output_format normalization_type backend sparsity bandwidth verbose",
        {"backend": "nnaudio2"},
    ),
    "CQT": (
        HEAD + "bins_per_octave filter_scale norm window center pad_mode trainable "
        "output_format normalization_type backend sparsity bandwidth verbose",
        {"bandwidth": "librosa"},
    ),
    "CQT2010v2": (
        HEAD + "filter_scale bins_per_octave norm basis_norm window pad_mode trainable "
        "output_format earlydownsample normalization_type center backend sparsity bandwidth "
        "verbose",
        {"norm": True, "backend": "nnaudio2"},
    ),
    "CQT1992": (
        HEAD + "trainable_STFT trainable_CQT bins_per_octave filter_scale output_format norm "
        "window center pad_mode normalization_type backend bandwidth verbose",
        {"fmin": 220, "backend": "nnaudio2"},
    ),
    "CQT2010": (
        HEAD + "bins_per_octave norm basis_norm window pad_mode trainable_STFT filter_scale "
        "trainable_CQT output_format earlydownsample normalization_type center backend "
        "bandwidth verbose",
        {"norm": True, "backend": "nnaudio2"},
    ),
    "VQT": (
        HEAD + "filter_scale bins_per_octave norm window gamma center pad_mode trainable "
        "output_format normalization_type backend sparsity bandwidth basis_norm "
        "earlydownsample verbose",
        {"basis_norm": None, "backend": "nnaudio2"},
    ),
    "iCQT": (
        HEAD + "bins_per_octave filter_scale norm window center pad_mode normalization_type "
        "gamma backend sparsity bandwidth n_iter tol out_of_band_weight verbose",
        {},
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_constructor_signature_is_nnaudio2s(name):
    names, overrides = EXPECTED[name]
    sig = inspect.signature(TRANSFORMS[name])
    assert list(sig.parameters) == names.split()
    want = {n: overrides.get(n, DEFAULTS[n]) for n in names.split()}
    got = {n: p.default for n, p in sig.parameters.items()}
    assert got == want
    assert all(type(got[n]) is type(want[n]) for n in want)
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in sig.parameters.values())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_positional_and_keyword_calls_agree(name):
    names = EXPECTED[name][0].split()
    cls = TRANSFORMS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        a = cls(8000, 64, 110.0, None, 24)
        b = cls(**dict(zip(names[:5], (8000, 64, 110.0, None, 24), strict=True)))
    assert a.get_config() == b.get_config()
    assert a.get_config()["params"]["hop_length"] == 64
    with pytest.raises(TypeError):
        cls(8000, 64, 110.0, None, 24, *range(30))
    with pytest.raises(TypeError, match="no_such"):
        cls(no_such=1)


_CLASS_SOURCE = '''
from typing import Optional
from nnaudio_core.features.base import Transform

class Toy(Transform):
    def __init__(self, n: int = 4, x: float = 1, w: Optional[int] = None, on: bool = False,
                 mode: str = "reflect", pad_mode: str = "reflect", **kwargs) -> None:
        super().__init__()
'''


@pytest.mark.parametrize("future", [False, True], ids=["plain", "postponed-annotations"])
def test_param_spec_reads_types_not_annotation_text(future):
    """The same class gives the same schema with and without postponed annotations."""
    import sys
    import types

    mod = types.ModuleType(f"toy_{future}")
    sys.modules[mod.__name__] = mod
    try:
        src = ("from __future__ import annotations\n" if future else "") + _CLASS_SOURCE
        exec(compile(src, mod.__name__, "exec"), mod.__dict__)
        spec = mod.Toy.param_spec()
    finally:
        del sys.modules[mod.__name__]
    assert {n: s.kind for n, s in spec.items()} == {
        "n": "int", "x": "float", "w": "int", "on": "bool", "mode": "str", "pad_mode": "str"
    }
    assert spec["w"].accepts_none and not spec["n"].accepts_none
    assert spec["pad_mode"].choices == ("reflect", "constant")
    assert spec["n"].coerce(512.0) == 512 and spec["x"].coerce(2) == 2.0
    assert spec["on"].coerce("yes") is True
    with pytest.raises(ParameterError, match="n takes an integer"):
        spec["n"].coerce(1.5)


def test_param_spec_of_every_transform_covers_its_signature():
    for name, cls in TRANSFORMS.items():
        spec = cls.param_spec()
        named = [p for p, v in inspect.signature(cls).parameters.items()
                 if v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)]
        assert set(named) <= set(spec), name
        assert all(s.kind != "any" or n in ("window", "norm", "device") for n, s in spec.items())
    assert set(TRANSFORMS["MFCC"].param_spec()) >= {"n_mels", "n_fft", "backend", "n_mfcc"}
    assert TRANSFORMS["MFCC"].param_spec()["norm"].kind == "str"  # MFCC's own norm wins
    assert TRANSFORMS["CQT2010v2"].param_spec()["norm"].kind == "bool"
    assert TRANSFORMS["VQT"].param_spec()["bandwidth"].choices == ("nnaudio", "librosa")
