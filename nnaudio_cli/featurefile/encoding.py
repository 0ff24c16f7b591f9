"""How feature values are stored: the on-disk dtype and an optional decibel scale.

A :class:`Storage` turns float32 feature values into the array written to HDF5 and back:

- ``float32``: stored as is;
- ``float16``: IEEE half precision (largest finite value 65504); values that would become
  ``inf`` are an error, never silent;
- ``bfloat16``: the upper 16 bits of the float32, rounded to nearest even (as
  ``torch.Tensor.to(torch.bfloat16)``), stored as ``uint16`` bit patterns because HDF5 and numpy
  have no bfloat16 type.

With a :class:`Decibels` the values are converted to dB before encoding, with librosa's
``power_to_db`` / ``amplitude_to_db`` convention. Its ``top_db`` floor needs the peak of the
whole clip, so the caller applies :meth:`Decibels.floor` per clip.

HDF5 attributes (:meth:`Storage.attrs`, read back by :meth:`Storage.from_attrs`)::

    dtype      "float32" | "float16" | "bfloat16"
    scale      "linear" | "db"
    db_kind    "power" (10*log10) | "magnitude" (20*log10)      (scale "db" only)
    db_ref     float                                          (scale "db" only)
    db_amin    float                                          (scale "db" only)
    db_top_db  float, or the string "none" for no floor       (scale "db" only)

Files without these attributes (written before they existed) read as float32, linear.
Light to import: numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnaudio_cli.errors import CliError

#: The dtypes ``--dtype`` accepts.
DTYPES = ("float32", "float16", "bfloat16")

#: Largest finite value of each stored dtype.
DTYPE_MAX = {
    "float32": float(np.finfo(np.float32).max),
    "float16": float(np.finfo(np.float16).max),
    "bfloat16": float(np.uint32(0x7F7F0000).view(np.float32)),
}

#: Decibel kinds: the factor k in ``k * log10(x)``.
DB_FACTOR = {"power": 10.0, "magnitude": 20.0}

#: The ``db_top_db`` attribute value that means "no top_db floor".
NO_TOP_DB = "none"

#: The filter-bank spectrograms whose ``power`` parameter is the exponent of ``|STFT|``.
_POWERED = ("MelSpectrogram", "Gammatonegram")
#: The constant-/variable-Q transforms (``output_format`` Magnitude / Complex / Phase).
_CQ_FAMILY = ("CQT", "CQT1992", "CQT2010", "CQT1992v2", "CQT2010v2", "VQT", "VariableQ")


class StorageError(CliError, ValueError):
    """A storage problem (value overflow, ``--db`` on a feature it cannot apply to, unknown
    dtype), reported as one line; exit code 1 unless ``usage``."""


def default_amin(kind: str) -> float:
    """librosa's default ``amin``: 1e-10 for ``power_to_db``, 1e-5 for ``amplitude_to_db``."""
    _check_kind(kind)
    return 1e-10 if kind == "power" else 1e-5


def _check_kind(kind: str) -> None:
    if kind not in DB_FACTOR:
        raise StorageError(f"decibel kind {kind!r}: expected 'power' or 'magnitude'")


@dataclass(frozen=True)
class Decibels:
    """A decibel conversion with librosa's conventions.

    Attributes
    ----------
    kind : {'power', 'magnitude'}
        ``power``: ``10 * log10``; ``magnitude``: ``20 * log10`` (of ``|x|``, as
        ``librosa.amplitude_to_db``).
    ref : float
        Reference value (0 dB), > 0, in the feature's units.
    amin : float
        Smallest value taken into account (> 0), in the feature's units (not squared for
        magnitudes: ``amplitude_to_db``'s ``amin``).
    top_db : float or None
        Floor ``peak - top_db`` (>= 0) applied per clip by :meth:`floor`; None: no floor.
    """

    kind: str
    ref: float = 1.0
    amin: float = 1e-10
    top_db: float | None = 80.0

    def __post_init__(self) -> None:
        _check_kind(self.kind)
        if not (math.isfinite(self.ref) and self.ref > 0):
            raise StorageError(f"--db ref={self.ref!r}: expected a positive number", usage=True)
        if not (math.isfinite(self.amin) and self.amin > 0):
            raise StorageError(f"--db amin={self.amin!r}: expected a positive number", usage=True)
        if self.top_db is not None and not (math.isfinite(self.top_db) and self.top_db >= 0):
            raise StorageError(f"--db top_db={self.top_db!r}: expected a number >= 0 or none",
                               usage=True)

    @property
    def factor(self) -> float:
        """10 for power, 20 for magnitude."""
        return DB_FACTOR[self.kind]

    def to_db(self, x: np.ndarray) -> np.ndarray:
        """Decibels of ``x`` without the ``top_db`` floor.

        ``k * log10(max(x, amin)) - k * log10(max(amin, ref))`` (``|x|`` for magnitudes),
        computed in float64: librosa's ``power_to_db`` / ``amplitude_to_db`` with
        ``top_db=None``.

        Parameters
        ----------
        x : np.ndarray
            Feature values, any shape, in linear units.

        Returns
        -------
        np.ndarray
            float32, same shape, in dB.
        """
        v = np.asarray(x, dtype=np.float64)
        if self.kind == "magnitude":
            v = np.abs(v)
        k = self.factor
        db = k * np.log10(np.maximum(v, self.amin))
        db -= k * math.log10(max(self.amin, self.ref))
        return db.astype(np.float32)

    def to_linear(self, db: np.ndarray) -> np.ndarray:
        """Linear values of decibels: the inverse of :meth:`to_db` above ``amin``.

        ``max(amin, ref) * 10 ** (db / k)`` computed in float64 (k = 10 for power, 20 for
        magnitude). Values that were clipped at ``amin`` or by the ``top_db`` floor come back
        as the clipped value; magnitudes come back non-negative (the sign is not stored).

        Parameters
        ----------
        db : np.ndarray
            Values in dB, any shape.

        Returns
        -------
        np.ndarray
            float32, same shape, in the feature's linear units; values past the float32
            range become ``inf`` (NaN stays NaN).
        """
        v = np.asarray(db, dtype=np.float64) / self.factor
        v += math.log10(max(self.amin, self.ref))
        with np.errstate(over="ignore"):
            return np.power(10.0, v).astype(np.float32)

    def floor(self, db: np.ndarray, peak: float) -> np.ndarray:
        """Apply ``top_db``: ``max(db, peak - top_db)``; ``db`` unchanged when top_db is None.

        Parameters
        ----------
        db : np.ndarray
            Values from :meth:`to_db` (one clip, or part of it).
        peak : float
            The largest dB value of the whole clip.
        """
        if self.top_db is None:
            return db
        return np.maximum(db, np.asarray(peak - self.top_db, dtype=db.dtype))

    def attrs(self) -> dict[str, Any]:
        """HDF5 attributes (``top_db`` None is stored as the string ``"none"``)."""
        return {
            "scale": "db",
            "db_kind": self.kind,
            "db_ref": float(self.ref),
            "db_amin": float(self.amin),
            "db_top_db": NO_TOP_DB if self.top_db is None else float(self.top_db),
        }


@dataclass(frozen=True)
class Storage:
    """The stored dtype and scale of a feature.

    Attributes
    ----------
    dtype : {'float32', 'float16', 'bfloat16'}
    db : Decibels or None
        None: linear values.
    """

    dtype: str = "float32"
    db: Decibels | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise StorageError(f"--dtype {self.dtype}: expected one of {', '.join(DTYPES)}",
                               usage=True)

    @property
    def numpy_dtype(self) -> np.dtype:
        """The dtype of the stored array (bfloat16 is ``uint16`` bit patterns)."""
        return np.dtype({"float32": np.float32, "float16": np.float16,
                         "bfloat16": np.uint16}[self.dtype])

    def encode(self, values: np.ndarray, feature: str) -> np.ndarray:
        """The array to store for ``values``.

        Parameters
        ----------
        values : np.ndarray
            Feature values (already in dB when :attr:`db` is set), any shape; float32
            (other float dtypes are converted to float32 first).
        feature : str
            The feature's name, for the error message.

        Returns
        -------
        np.ndarray
            Same shape, :attr:`numpy_dtype`. A float32 C-contiguous input stored as float32
            is returned as is (no copy).

        Raises
        ------
        StorageError
            A finite value does not fit the stored dtype (it would become +-inf).
        """
        x = np.asarray(values)
        if x.dtype != np.float32:
            with np.errstate(over="ignore"):
                wide = x
                x = x.astype(np.float32)
            self._check_overflow(wide, np.isinf(x), feature, "float32")
        if self.dtype == "float32":
            return np.ascontiguousarray(x)
        if self.dtype == "float16":
            with np.errstate(over="ignore"):
                out = x.astype(np.float16)
            self._check_overflow(x, np.isinf(out), feature, "float16")
            return out
        out = float32_to_bfloat16_bits(x)
        self._check_overflow(x, (out & 0x7FFF) == 0x7F80, feature, "bfloat16")
        return out

    def _check_overflow(self, before: np.ndarray, inf: np.ndarray, feature: str,
                        dtype: str) -> None:
        """Raise when a finite value of ``before`` is infinite once stored (mask ``inf``)."""
        if not inf.any() or not np.isfinite(before[inf]).any():
            return
        finite = before[np.isfinite(before)]
        largest = float(np.max(np.abs(finite.astype(np.float64))))
        unit = " dB" if self.db is not None else ""
        wider = "--dtype bfloat16 or float32" if dtype == "float16" else "--dtype float32"
        if dtype == "float32":
            advice = "values must fit float32"
        elif self.db is not None:
            advice = f"use {wider}"
        else:
            advice = f"store decibels with --db, or use {wider}"
        raise StorageError(
            f"feature {feature}: values up to {largest:.3g}{unit} overflow {dtype} "
            f"(largest {DTYPE_MAX[dtype]:.6g}); {advice}"
        )

    def decode(self, stored: np.ndarray) -> np.ndarray:
        """float32 values of a stored array (exact widening), same shape."""
        s = np.asarray(stored)
        if self.dtype == "bfloat16":
            if s.dtype != np.uint16:
                raise StorageError(f"bfloat16 data must be stored as uint16, found {s.dtype}")
            return bfloat16_bits_to_float32(s)
        return s.astype(np.float32, copy=False)

    def attrs(self) -> dict[str, Any]:
        """HDF5 attributes: ``dtype`` and ``scale`` (plus the ``db_*`` ones for decibels)."""
        if self.db is None:
            return {"dtype": self.dtype, "scale": "linear"}
        return {"dtype": self.dtype, **self.db.attrs()}

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> Storage:
        """Inverse of :meth:`attrs`; missing keys (older files) mean float32, linear."""
        dtype = _text(attrs.get("dtype", "float32"))
        scale = _text(attrs.get("scale", "linear"))
        if dtype not in DTYPES:
            raise StorageError(f"stored dtype {dtype!r} is not one of {', '.join(DTYPES)} "
                               "(written by a newer nnaudio?)")
        if scale == "linear":
            return cls(dtype)
        if scale != "db":
            raise StorageError(f"stored scale {scale!r} is not 'linear' or 'db'")
        kind = _text(attrs["db_kind"])
        top = attrs.get("db_top_db", NO_TOP_DB)
        top_db = None if _text(top) == NO_TOP_DB else float(top)
        db = Decibels(kind, ref=float(attrs.get("db_ref", 1.0)),
                      amin=float(attrs.get("db_amin", default_amin(kind))), top_db=top_db)
        return cls(dtype, db)


def _text(value: Any) -> Any:
    """``str`` of an HDF5 string attribute (h5py may return bytes); other values as is."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.str_):
        return str(value)
    return value


def float32_to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (``uint16``) of float32 values, rounded to nearest even.

    NaN becomes the quiet NaN ``0x7FC0`` and values past the bfloat16 range become +-inf,
    as ``torch``'s float32 -> bfloat16 cast.
    """
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    r = bits >> 16
    r &= 1
    r += 0x7FFF  # round half to even: bias 0x7FFF, plus 1 when the kept part is odd
    r += bits
    r >>= 16
    out = r.astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        out[nan] = 0x7FC0
    return out


def bfloat16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """float32 values of bfloat16 bit patterns (``uint16``): exact widening."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def _param(config: dict[str, Any], key: str) -> Any:
    """A transform parameter from ``get_config()`` output, or its declared default."""
    params = config.get("params", {})
    if key in params:
        return params[key]
    from nnaudio_core.features import TRANSFORMS  # torch: only for incomplete configs

    spec = TRANSFORMS[config["transform"]].param_spec()
    return spec[key].default if key in spec else None


def _why_not(config: dict[str, Any]) -> tuple[str | None, str]:
    """``(kind, "")`` when ``--db`` applies, else ``(None, reason)``."""
    name = config.get("transform")
    if name == "STFT" or name in _CQ_FAMILY:
        fmt = _param(config, "output_format")
        if fmt == "Magnitude":
            return "magnitude", ""
        if fmt == "Complex":
            return None, "is complex (real, imag)"
        return None, f"is {str(fmt).lower()} (output_format={fmt!r}), not a magnitude"
    if name in _POWERED:
        power = _param(config, "power")
        if power == 2:
            return "power", ""
        if power == 1:
            return "magnitude", ""
        return None, f"is |X|**{power} (power={power}), neither a magnitude nor a power"
    if name == "MFCC":
        return None, "is MFCC (cepstra of a dB spectrogram already)"
    if name in ("CFP", "Combined_Frequency_Periodicity"):
        return None, "is CFP pitch salience, not a spectrum"
    return None, f"({name}) is not a magnitude or power spectrum"


def value_kind(config: dict[str, Any]) -> str | None:
    """What ``--db`` can convert for a transform's ``get_config()`` output.

    Parameters
    ----------
    config : dict
        ``{"transform": name, "params": {...}}``.

    Returns
    -------
    'power', 'magnitude' or None
        STFT / CQT family / VQT with ``output_format="Magnitude"``: magnitude;
        MelSpectrogram / Gammatonegram: power for ``power=2``, magnitude for ``power=1``;
        everything else (complex, phase, other powers, MFCC, CFP, unknown): None.
    """
    return _why_not(config)[0]


def db_for(config: dict[str, Any], feature: str, ref: float, amin: float | None,
           top_db: float | None) -> Decibels:
    """The :class:`Decibels` for a feature.

    Parameters
    ----------
    config : dict
        The transform's ``get_config()`` output.
    feature : str
        The feature's name (for the error message).
    ref, amin, top_db :
        As :class:`Decibels`; ``amin`` None: :func:`default_amin` of the feature's kind.

    Raises
    ------
    StorageError
        ``--db`` cannot apply to this feature (one line naming it and why).
    """
    kind, reason = _why_not(config)
    if kind is None:
        raise StorageError(
            f"--db: feature {feature} {reason}; decibels need a magnitude or power feature: "
            "drop --db or extract it in another run"
        )
    return Decibels(kind, ref=float(ref), amin=default_amin(kind) if amin is None else float(amin),
                    top_db=None if top_db is None else float(top_db))
