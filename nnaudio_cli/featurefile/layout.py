"""The HDF5 feature file's layout: constants, names, and reading its index.

Layout (``layout_version`` 2; see docs/file-format.md)::

    /features/<name>/data         (total_rows, n_bins) or (total_rows, n_bins, 2) if complex,
                                  in the stored dtype (float32, float16, or bfloat16 as uint16
                                  bit patterns), chunked along rows, lzf by default. Rows are
                                  frames in time order; with keep_channels a frame's channels
                                  are consecutive rows.
    /features/<name>/offsets      int64 (n_inputs + 1,): input i is data[offsets[i]:offsets[i+1]]
                                  (empty for failed inputs)
    /features/<name>/frequencies  float64 (n_bins,), Hz per bin
    /features/<name>/stats/       count (int64), mean, var (float64): per bin, over every
                                  stored row (the final output and merged files)
    /features/<name> attributes   transform, config_json, config_hash, hop_length, n_bins,
                                  value_layout, dtype, scale (linear|db) and db_* (see
                                  :mod:`nnaudio_cli.featurefile.encoding`)
    /index/<column>               one row per input, sorted by key: key, status, reason, sr,
                                  samples, channels, duration, size, mtime, stored_channels
    root attributes               layout_version, features (JSON list of names, in order),
                                  sr, keep_channels, versions, command line, counts, digest

One extraction pass may store several features; they share the index (an input is ``ok``
only if every feature was computed). ``layout_version`` 1 files (one feature, in
``/features/{data,offsets,frequencies}``, float32, an ``/index/frames`` column and the
transform's attributes at the root) are still read.
"""

from __future__ import annotations

import json
from typing import Any

import h5py
import numpy as np

LAYOUT_VERSION = 2
#: Layout versions the reader reads.
READABLE_VERSIONS = (1, 2)
#: Target bytes per HDF5 chunk of a feature's data.
CHUNK_BYTES = 512 * 1024
#: Bytes buffered in memory before they are appended to a feature's data.
WRITE_BYTES = 8 * 1024 * 1024
COMPRESSIONS = ("lzf", "gzip", "none")

STR = h5py.string_dtype("utf-8")
#: Index columns and their HDF5 types.
INDEX_COLUMNS: dict[str, Any] = {
    "key": STR,
    "status": STR,
    "reason": STR,
    "sr": np.float64,
    "samples": np.int64,
    "channels": np.int32,
    "duration": np.float64,
    "size": np.int64,
    "mtime": np.float64,
    "stored_channels": np.int32,
}
#: The index columns of ``layout_version`` 1 (with ``frames``; for its checksum).
INDEX_COLUMNS_V1: dict[str, Any] = {
    **{k: v for k, v in INDEX_COLUMNS.items() if k != "stored_channels"},
    "frames": np.int64,
    "stored_channels": np.int32,
}
#: Root attributes every file has.
ROOT_ATTRS = (
    "layout_version", "features", "sr", "keep_channels", "resampler", "compression",
    "package_version", "torch_version", "numpy_version", "h5py_version", "soxr_version",
    "soundfile_version", "command_line", "created", "n_inputs", "n_ok", "n_failed", "digest",
)
#: Attributes of every feature group.
FEATURE_ATTRS = ("transform", "config_json", "config_hash", "hop_length", "n_bins",
                 "value_layout", "dtype", "scale")



def column_default(dtype: Any) -> Any:
    """The value of an :data:`INDEX_COLUMNS` column a row (or an older file) leaves out."""
    return "" if dtype is STR else 0


def attr_value(v: Any) -> Any:
    """An HDF5 attribute as a plain Python value (bytes decoded, numpy scalars unwrapped)."""
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_column(ds: h5py.Dataset) -> np.ndarray:
    """One ``/index`` column (strings decoded)."""
    arr = ds[()]
    if arr.dtype.kind == "O":
        arr = np.array([a.decode() if isinstance(a, bytes) else a for a in arr], dtype=object)
    return arr


def read_index(h5: h5py.File) -> dict[str, np.ndarray]:
    """The ``/index`` columns of an open feature or part file (strings decoded)."""
    return {col: read_column(ds) for col, ds in h5["index"].items()}


def feature_names(h5: h5py.File) -> list[str]:
    """The features of an open file, in stored order (``layout_version`` 1: its transform)."""
    if int(h5.attrs.get("layout_version", -1)) == 1:
        return [str(attr_value(h5.attrs.get("transform", "features")))]
    try:
        names = json.loads(attr_value(h5.attrs["features"]))
    except (KeyError, TypeError, ValueError):
        raise KeyError("root attribute 'features' missing or not a JSON list") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise KeyError("root attribute 'features' is not a JSON list of names")
    return names


def feature_group(h5: h5py.File, name: str) -> h5py.Group:
    """The group of feature ``name`` (``/features`` itself in a ``layout_version`` 1 file)."""
    if int(h5.attrs.get("layout_version", -1)) == 1:
        return h5["features"]
    return h5[f"features/{name}"]
