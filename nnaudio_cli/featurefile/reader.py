"""Reading a feature file: :class:`FeatureFile` (``ff[key] -> np.ndarray``), opened by
:func:`open_features` after :func:`~nnaudio_cli.featurefile.validate.validate_layout`."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from nnaudio_cli.featurefile.encoding import Storage
from nnaudio_cli.featurefile.layout import attr_value, feature_group, feature_names
from nnaudio_cli.featurefile.stats import BinStats
from nnaudio_cli.featurefile.validate import FeatureFileError, validate_layout
from nnaudio_cli.plumbing.text import one_line, shown_key, stored_key

#: Transforms whose stored config may predate the ``bandwidth`` keyword (see
#: :attr:`FeatureFile.config`).
_CONSTANT_Q = frozenset({"CQT", "CQT1992v2", "CQT2010v2", "VQT", "VariableQ"})


class FeatureFile(Mapping[str, np.ndarray]):
    """Read access to one feature of a feature file: ``ff[key] -> np.ndarray``.

    Iterating gives the keys (relative paths) of the inputs that were written, in stored
    order. Arrays are time-major: ``(frames, n_bins)``, ``(frames, n_bins, 2)`` for complex
    outputs (real, imaginary), and with ``keep_channels`` ``(frames, channels, n_bins[, 2])``,
    float32 whatever the stored dtype (``dtype=None``: as stored; bfloat16 as its uint16 bit
    patterns).

    Parameters
    ----------
    path : an HDF5 file written by ``nnaudio extract``
    feature : which feature to read; may be omitted when the file holds one
    dtype : ``"float32"`` (default) or None

    Raises
    ------
    FeatureFileError
        A damaged or crafted file, or a merged file whose shard is missing or changed
        (:func:`validate_layout`; a ``ValueError``, one line naming the file and defect).
    ValueError
        ``feature`` missing (the file holds several) or not in the file (one line naming
        the choices).
    OSError
        Not an HDF5 file, or unreadable.
    """

    def __init__(self, path: str | os.PathLike[str], feature: str | None = None,
                 dtype: str | None = "float32") -> None:
        self.path = Path(path)
        self.h5 = h5py.File(self.path, "r")
        try:
            self._open(feature, dtype)
        except BaseException:
            self.h5.close()
            raise

    def _open(self, feature: str | None, dtype: str | None) -> None:
        path = self.path
        if dtype not in ("float32", None):
            raise ValueError(f"dtype={dtype!r}: expected 'float32' or None (as stored)")
        self.index: dict[str, np.ndarray] = validate_layout(self.h5, path)
        self.version = int(self.h5.attrs["layout_version"])
        self.features: list[str] = feature_names(self.h5)
        if feature is None:
            if len(self.features) != 1:
                raise ValueError(f"{path} holds {len(self.features)} features "
                                 f"({', '.join(self.features)}); say which: feature=NAME "
                                 "(--feature NAME)")
            feature = self.features[0]
        elif feature not in self.features:
            raise ValueError(f"{path} has no feature {feature!r}; it holds "
                             f"{', '.join(self.features)}")
        self.feature = feature
        self.group = feature_group(self.h5, feature)
        self.attrs: dict[str, Any] = {k: attr_value(v) for k, v in self.h5.attrs.items()}
        self.attrs.update({k: attr_value(v) for k, v in self.group.attrs.items()})
        self.storage = Storage.from_attrs(self.attrs)
        self.decode = dtype is not None
        self.offsets = self.group["offsets"][()]
        self.data = self.group["data"]
        if "frames" not in self.index:  # layout 2: per feature, from its offsets
            ch = np.maximum(np.asarray(self.index["stored_channels"], np.int64), 1)
            self.index["frames"] = np.diff(self.offsets).astype(np.int64) // ch
        self._row = {k: i for i, k in enumerate(self.index["key"])}
        self._ok = [k for k, s in zip(self.index["key"], self.index["status"], strict=True)
                    if s == "ok"]

    # Mapping interface -------------------------------------------------------------
    def _find(self, key: str) -> int | None:
        """Row of ``key``: as stored, or as :func:`os.fsdecode` gives a file name that is
        not UTF-8 (stored as its ``repr``, see :func:`nnaudio_cli.plumbing.text.stored_key`)."""
        i = self._row.get(key)
        if i is None and isinstance(key, str):
            i = self._row.get(stored_key(key))
        return i

    def row(self, key: str) -> int:
        """The index row of ``key``, whatever its status.

        Parameters
        ----------
        key : str
            A stored key, or the :func:`os.fsdecode` form of a non-UTF-8 file name.

        Returns
        -------
        int
            Row ``i`` of the index columns (:meth:`info`); with ``status == "ok"`` its data
            are rows ``offsets[i]:offsets[i + 1]`` of this feature (:meth:`rows`):
            ``frames * channels`` of them with ``keep_channels``, frame-major.

        Raises
        ------
        KeyError
            ``key`` is not in the index.
        """
        i = self._find(key)
        if i is None:
            raise KeyError(key)
        return i

    def __getitem__(self, key: str) -> np.ndarray:
        i = self.row(key)
        if self.index["status"][i] != "ok":
            raise KeyError(f"{key}: extraction failed ({self.index['reason'][i]})")
        block = self.rows(int(self.offsets[i]), int(self.offsets[i + 1]))
        if self.keep_channels:
            ch = int(self.index["stored_channels"][i])
            block = block.reshape((block.shape[0] // ch, ch) + block.shape[1:])
        return block

    def __iter__(self) -> Iterator[str]:
        return iter(self._ok)

    def __len__(self) -> int:
        return len(self._ok)

    def __contains__(self, key: object) -> bool:
        i = self._find(key) if isinstance(key, str) else None
        return i is not None and self.index["status"][i] == "ok"

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Stored rows ``[start, stop)`` of this feature's data (float32 unless
        ``dtype=None``); a chunk HDF5 cannot read (damaged bytes) is a
        :class:`FeatureFileError` naming the file and the rows."""
        try:
            block = self.data[start:stop]
        except OSError as e:
            raise FeatureFileError(
                f"{shown_key(str(self.path))}: cannot read rows {start}..{stop} of "
                f"{self.data.name} ({one_line(e)}); the file is damaged") from None
        return self.storage.decode(block) if self.decode else block

    # Metadata ----------------------------------------------------------------------
    @property
    def keep_channels(self) -> bool:
        """True when channels were stored separately."""
        return bool(self.attrs.get("keep_channels", False))

    @property
    def config(self) -> dict[str, Any]:
        """The transform's ``get_config()`` as stored (rebuild with :meth:`transform`).

        Files written before the constant-Q classes had a ``bandwidth`` keyword were made
        with librosa's rule; it is filled in so they rebuild the transform that made them.
        """
        config = json.loads(self.attrs["config_json"])
        params = config.get("params", {})
        if config.get("transform") in _CONSTANT_Q and "bandwidth" not in params:
            params["bandwidth"] = "librosa"
        return config

    @property
    def frequencies(self) -> np.ndarray:
        """Hz per bin (coefficient index for MFCC)."""
        return self.group["frequencies"][()]

    @property
    def stats(self) -> BinStats | None:
        """Per-bin count, mean and variance of every stored row of this feature (None in
        files written before statistics were stored, and in part files)."""
        return BinStats.read(self.group)

    @property
    def failed(self) -> dict[str, str]:
        """Inputs that could not be processed: key -> reason."""
        return {
            k: r
            for k, s, r in zip(
                self.index["key"], self.index["status"], self.index["reason"], strict=True
            )
            if s != "ok"
        }

    def info(self, key: str) -> dict[str, Any]:
        """Index row of ``key`` as a dict (status, reason, sr, samples, channels, frames of
        this feature, ...)."""
        i = self.row(key)
        return {col: attr_value(arr[i]) for col, arr in self.index.items()}

    def transform(self) -> Any:
        """Rebuild the transform module that made this feature."""
        from nnaudio_core.features import build

        return build(self.config)

    def close(self) -> None:
        """Close the HDF5 file."""
        self.h5.close()

    def __enter__(self) -> FeatureFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_features(path: str | os.PathLike[str], feature: str | None = None,
                  dtype: str | None = "float32") -> FeatureFile:
    """Open one feature of a feature file for reading (use as a context manager or call
    ``close()``); ``feature`` may be omitted when the file holds one. See
    :class:`FeatureFile`."""
    return FeatureFile(path, feature, dtype)

