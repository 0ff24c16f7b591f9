"""The HDF5 feature file: layout constants, a crash-safe writer and the reader.

Layout (``layout_version`` 2; see the README)::

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
                                  :mod:`nnaudio_cli.storage`)
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

import functools
import json
import os
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from nnaudio_cli.errors import CliError
from nnaudio_cli.stats import BinStats
from nnaudio_cli.storage import Storage
from nnaudio_cli.text import shown_key, stored_key

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

#: Transforms whose stored config may predate the ``bandwidth`` keyword (see
#: :attr:`FeatureFile.config`).
_CONSTANT_Q = frozenset({"CQT", "CQT1992v2", "CQT2010v2", "VQT", "VariableQ"})

#: HDF5 handles of writers that failed mid-write (never closed; see FeatureWriter.abort).
LEAKED: list[Any] = []


class OutputError(CliError, OSError):
    """Writing the output (or a part file) failed: disk full, read-only, no permission.

    Parameters
    ----------
    path : the file that could not be written
    exc : the underlying error
    """

    def __init__(self, path: Path, exc: BaseException) -> None:
        super().__init__(f"cannot write {path}: {disk_reason(exc)}")
        self.path = Path(path)


def disk_reason(exc: BaseException) -> str:
    """A short reason for a write error (h5py hides errno inside its message text)."""
    text = " ".join(str(exc).split())
    for needle in ("No space left on device", "Read-only file system", "Permission denied",
                   "Disk quota exceeded", "Operation not permitted"):
        if needle.lower() in text.lower():
            return needle.lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return text[:200] or type(exc).__name__


def partial_path(path: Path) -> Path:
    """Where the file is written before it is complete: ``OUTPUT.h5.partial``."""
    return path.with_name(path.name + ".partial")


def compression_kwargs(name: str) -> dict[str, Any]:
    """h5py ``create_dataset`` keywords of a ``--compression`` name."""
    if name == "lzf":
        return {"compression": "lzf", "shuffle": True}
    if name == "gzip":
        return {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    if name == "none":
        return {}
    raise ValueError(f"compression={name!r} is not one of {', '.join(COMPRESSIONS)}")


def fsync_path(path: Path, directory: bool = False) -> None:
    """fsync a file (or a folder, so a rename in it is durable); folders: best effort."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


# -- checksums ------------------------------------------------------------------------
class ArrayDigest:
    """Running CRC-32 (zlib's) of one feature's data rows, in order, as stored (float32 rows
    of a ``layout_version`` 1 file hash exactly as before). A checksum against accidental
    damage (a disk, a crash, a stray write), not an authenticity check; CRC-32 runs at
    several GB/s, so verifying costs little next to reading."""

    def __init__(self) -> None:
        self.crc = 0
        self.nbytes = 0

    def data(self, block: np.ndarray) -> None:
        """Add the next stored rows."""
        arr = np.ascontiguousarray(block)
        self.crc = zlib.crc32(memoryview(arr).cast("B"), self.crc)
        self.nbytes += arr.nbytes


def _index_crc(crc: int, index: Mapping[str, np.ndarray], columns: Mapping[str, Any]) -> int:
    for col, dtype in columns.items():
        crc = zlib.crc32(col.encode(), crc)
        arr = index.get(col)
        if arr is None:
            continue
        if dtype is STR:
            text = "\0".join(str(v) for v in arr)
            crc = zlib.crc32(text.encode("utf-8", "surrogateescape"), crc)
        else:
            crc = zlib.crc32(np.ascontiguousarray(arr, dtype=dtype).tobytes(), crc)
    return crc


def _offsets_bytes(offsets: np.ndarray) -> bytes:
    return np.ascontiguousarray(offsets, dtype=np.int64).tobytes()


def file_checksum(
    features: Sequence[tuple[str, ArrayDigest, np.ndarray]], index: Mapping[str, np.ndarray]
) -> str:
    """The ``digest`` of a ``layout_version`` 2 file: every feature's name, data and offsets
    in stored order, then the index columns."""
    crc, nbytes = 0, 0
    for name, digest, offsets in features:
        crc = zlib.crc32(name.encode() + digest.crc.to_bytes(4, "little"), crc)
        crc = zlib.crc32(_offsets_bytes(offsets), crc)
        nbytes += digest.nbytes
    crc = _index_crc(crc, index, INDEX_COLUMNS)
    return f"crc32:{crc:08x}:{nbytes}"


def _checksum_v1(digest: ArrayDigest, offsets: np.ndarray, index: Mapping[str, np.ndarray]) -> str:
    crc = zlib.crc32(_offsets_bytes(offsets), digest.crc)
    crc = _index_crc(crc, index, INDEX_COLUMNS_V1)
    return f"crc32:{crc:08x}:{digest.nbytes}"


def _digest_rows(dataset: h5py.Dataset) -> ArrayDigest:
    digest = ArrayDigest()
    row_bytes = max(1, int(np.prod(dataset.shape[1:])) * dataset.dtype.itemsize)
    step = max(1, (8 << 20) // row_bytes)
    for a in range(0, dataset.shape[0], step):
        digest.data(dataset[a : a + step])
    return digest


def feature_names(h5: h5py.File) -> list[str]:
    """The features of an open file, in stored order (``layout_version`` 1: its transform)."""
    if int(h5.attrs.get("layout_version", -1)) == 1:
        return [str(_attr(h5.attrs.get("transform", "features")))]
    try:
        names = json.loads(_attr(h5.attrs["features"]))
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


def file_digest(path: Path) -> tuple[str, str]:
    """``(stored, actual)`` checksums of a feature or part file: the ``digest`` attribute
    (``""`` when absent) and the one recomputed from its arrays.

    Raises
    ------
    OSError, KeyError, ValueError
        The file cannot be read (HDF5 reports a corrupt chunk as an OSError).
    """
    with h5py.File(path, "r") as h5:
        stored = str(_attr(h5.attrs.get("digest", "")))
        index = read_index(h5)
        if int(h5.attrs.get("layout_version", -1)) == 1:
            actual = _checksum_v1(_digest_rows(h5["features/data"]),
                                  h5["features/offsets"][()], index)
            return stored, actual
        parts = []
        for name in feature_names(h5):
            g = feature_group(h5, name)
            parts.append((name, _digest_rows(g["data"]), g["offsets"][()]))
        return stored, file_checksum(parts, index)


# -- writing --------------------------------------------------------------------------
@dataclass(frozen=True)
class FeatureSpec:
    """What one stored feature is.

    Attributes
    ----------
    name : its group name under ``/features``
    row_shape : shape of one stored row, ``(n_bins,)`` or ``(n_bins, 2)``
    frequencies : Hz per bin
    storage : stored dtype and scale
    attrs : attributes of its group (transform, config_json, config_hash, hop_length, ...)
    """

    name: str
    row_shape: tuple[int, ...]
    frequencies: np.ndarray
    storage: Storage = field(default_factory=Storage)
    attrs: Mapping[str, Any] = field(default_factory=dict)


class _Column:
    """One feature's rows being appended to its dataset (buffered, hashed, counted)."""

    def __init__(self, h5: h5py.File, spec: FeatureSpec, compression: str,
                 stats: bool) -> None:
        self.spec = spec
        dtype = spec.storage.numpy_dtype
        row_bytes = int(np.prod(spec.row_shape)) * dtype.itemsize
        self.chunk_rows = max(1, CHUNK_BYTES // row_bytes)
        self.write_rows = max(self.chunk_rows, WRITE_BYTES // row_bytes)
        self.committed = 0  # rows in the dataset
        self.buffer: list[np.ndarray] = []
        self.buffered = 0
        self.digest = ArrayDigest()
        self.rehash = False  # rows already hashed were rolled back: hash from the file
        self.stats = BinStats(spec.row_shape) if stats else None
        self.group = h5.create_group(f"features/{spec.name}")
        self.data = self.group.create_dataset(
            "data",
            shape=(0,) + spec.row_shape,
            maxshape=(None,) + spec.row_shape,
            dtype=dtype,
            chunks=(self.chunk_rows,) + spec.row_shape,
            **compression_kwargs(compression),
        )

    @property
    def total_rows(self) -> int:
        return self.committed + self.buffered

    def append(self, block: np.ndarray) -> None:
        if block.shape[0] == 0:
            return
        block = np.ascontiguousarray(block)
        if block.dtype != self.data.dtype or block.shape[1:] != self.spec.row_shape:
            raise RuntimeError(f"internal error: {self.spec.name}: rows {block.dtype} "
                               f"{block.shape[1:]}, stored {self.data.dtype} "
                               f"{self.spec.row_shape}")
        if self.stats is not None:
            self.stats.update(self.spec.storage.decode(block))
        self.buffer.append(block)
        self.buffered += block.shape[0]
        if self.buffered >= self.write_rows:
            self.flush()

    def flush(self) -> None:
        if not self.buffered:
            return
        block = np.concatenate(self.buffer) if len(self.buffer) > 1 else self.buffer[0]
        self.data.resize(self.committed + block.shape[0], axis=0)
        self.data[self.committed :] = block
        self.digest.data(block)
        self.committed += block.shape[0]
        self.buffer, self.buffered = [], 0

    def rollback(self, mark: int) -> None:
        if self.stats is not None and mark < self.total_rows:
            raise RuntimeError("internal error: rollback of a writer that keeps statistics")
        if mark >= self.committed:
            keep = mark - self.committed
            kept: list[np.ndarray] = []
            for b in self.buffer:
                if keep <= 0:
                    break
                kept.append(b[:keep])
                keep -= b.shape[0]
            self.buffer = kept
            self.buffered = mark - self.committed
        else:
            self.buffer, self.buffered = [], 0
            self.data.resize(mark, axis=0)
            self.committed = mark
            self.rehash = True

    def finish(self, n_rows: np.ndarray) -> tuple[str, ArrayDigest, np.ndarray]:
        """Write offsets, frequencies, attributes and statistics; the checksum inputs."""
        self.flush()
        offsets = np.concatenate([[0], np.cumsum(n_rows)]).astype(np.int64)
        if int(offsets[-1]) != self.committed:
            raise RuntimeError(f"internal error: {self.spec.name}: {offsets[-1]} indexed "
                               f"rows, {self.committed} written")
        g = self.group
        g.create_dataset("offsets", data=offsets)
        freqs = np.asarray(self.spec.frequencies, np.float64)
        g.create_dataset("frequencies", data=freqs)
        for k, v in {**self.spec.attrs, **self.spec.storage.attrs()}.items():
            g.attrs[k] = str(v) if isinstance(v, str) else v  # plain str, not subclasses
        if freqs.nbytes < 60000:
            g.attrs["frequencies"] = freqs
        if self.stats is not None:
            self.stats.finish().write(g)
        if self.rehash:
            self.digest = _digest_rows(self.data)
        return self.spec.name, self.digest, offsets


class FeatureWriter:
    """Appends the features of inputs, input by input, to ``PATH.partial``; :meth:`commit`
    renames it to PATH. Used for the final output, merged copies and the part files of a run.

    For each input: append its rows of every feature (:meth:`append` takes float32 values
    and stores them as the feature's :class:`~nnaudio_cli.storage.Storage` says;
    :meth:`append_stored` takes rows already in the stored dtype), then :meth:`add_row`.

    Parameters
    ----------
    path : final path
    specs : the features, in stored order
    compression : 'lzf', 'gzip' or 'none'
    stats : keep per-bin statistics of every feature (written by :meth:`commit`)
    """

    def __init__(self, path: Path, specs: Sequence[FeatureSpec], compression: str = "lzf",
                 stats: bool = False) -> None:
        self.path = Path(path)
        self.tmp = partial_path(self.path)
        self.specs = list(specs)
        names = [s.name for s in self.specs]
        if not names or len(set(names)) != len(names) or any("/" in n for n in names):
            raise ValueError(f"feature names must be distinct and free of '/': {names}")
        self.compression = compression
        self.rows: list[dict[str, Any]] = []
        self.digest_hex = ""  # the checksum written by commit()
        self.h5 = h5py.File(self.tmp, "w")
        self.columns = {s.name: _Column(self.h5, s, compression, stats) for s in self.specs}

    def total_rows(self, name: str) -> int:
        """Rows of feature ``name`` written or buffered so far."""
        return self.columns[name].total_rows

    def marks(self) -> dict[str, int]:
        """Every feature's :meth:`total_rows`, for :meth:`rollback`."""
        return {n: c.total_rows for n, c in self.columns.items()}

    def append(self, name: str, values: np.ndarray) -> None:
        """Append float32 rows ``(n, *row_shape)`` of feature ``name`` (encoded for storage).

        Raises
        ------
        nnaudio_cli.storage.StorageError
            The values do not fit the stored dtype (one line naming the remedy).
        """
        col = self.columns[name]
        col.append(col.spec.storage.encode(values, name))

    def append_stored(self, name: str, rows: np.ndarray) -> None:
        """Append rows of feature ``name`` already in its stored dtype (copying a file)."""
        self.columns[name].append(rows)

    def rollback(self, marks: Mapping[str, int]) -> None:
        """Drop every row after ``marks`` (from :meth:`marks`)."""
        for name, mark in marks.items():
            self.columns[name].rollback(mark)

    def add_row(self, n_rows: Mapping[str, int] | None = None, **fields: Any) -> None:
        """Add the index row of the next input: :data:`INDEX_COLUMNS` fields and the rows
        it has in each feature (``n_rows``; none for a failed input)."""
        self.rows.append({**fields, "n_rows": dict(n_rows or {})})

    def commit(self, attrs: dict[str, Any], durable: bool = True) -> None:
        """Write offsets, index and attributes, close, fsync and rename into place.

        ``durable=False`` skips the fsyncs of the file and of its folder (part files: a part
        that a power loss damages fails its checksum and is computed again). Either way the
        rename is atomic, so a killed process never leaves a half-written file in place."""
        parts = []
        for name, col in self.columns.items():
            n_rows = np.array([int(r["n_rows"].get(name, 0)) for r in self.rows], np.int64)
            parts.append(col.finish(n_rows))
        grp = self.h5.create_group("index")
        columns: dict[str, np.ndarray] = {}
        for col, dtype in INDEX_COLUMNS.items():
            default: Any = "" if dtype is STR else 0
            values = [r.get(col, default) for r in self.rows]
            if col == "key":  # a file name that is not UTF-8: see text.stored_key
                values = [stored_key(str(v)) for v in values]
            columns[col] = np.array(values, dtype=object if dtype is STR else dtype)
            grp.create_dataset(col, data=columns[col], dtype=dtype)
        self.digest_hex = file_checksum(parts, columns)
        for k, v in attrs.items():
            self.h5.attrs[k] = str(v) if isinstance(v, str) else v
        self.h5.attrs["layout_version"] = LAYOUT_VERSION
        self.h5.attrs["features"] = json.dumps(list(self.columns))
        self.h5.attrs["digest"] = self.digest_hex
        self.h5.flush()
        self.h5.close()
        if durable:
            fsync_path(self.tmp)
        os.replace(self.tmp, self.path)
        if durable:
            fsync_path(self.path.parent, directory=True)

    def abort(self, broken: bool = False) -> None:
        """Close and delete the partial file (the final path is left untouched).

        With ``broken`` (a write failed: disk full, read-only) the HDF5 handle is not
        closed (HDF5 may crash flushing it) but kept in :data:`LEAKED`; the caller should
        end the process with ``os._exit``.
        """
        if broken:
            LEAKED.append(self)  # with its dataset handles
        else:
            try:
                self.h5.close()
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        try:
            self.tmp.unlink()
        except OSError:
            pass


# -- reading --------------------------------------------------------------------------
def read_index(h5: h5py.File) -> dict[str, np.ndarray]:
    """The ``/index`` columns of an open feature or part file (strings decoded)."""
    return {col: _column(ds) for col, ds in h5["index"].items()}


def _attr(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.generic):
        return v.item()
    return v


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
        self.attrs: dict[str, Any] = {k: _attr(v) for k, v in self.h5.attrs.items()}
        self.attrs.update({k: _attr(v) for k, v in self.group.attrs.items()})
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
        not UTF-8 (stored as its ``repr``, see :func:`nnaudio_cli.text.stored_key`)."""
        i = self._row.get(key)
        if i is None and isinstance(key, str):
            i = self._row.get(stored_key(key))
        return i

    def __getitem__(self, key: str) -> np.ndarray:
        i = self._find(key)
        if i is None:
            raise KeyError(key)
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
                f"{self.data.name} ({_one(e)}); the file is damaged") from None
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
        i = self._find(key)
        if i is None:
            raise KeyError(key)
        return {col: _attr(arr[i]) for col, arr in self.index.items()}

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


# -- layout validation (every reader calls it on open) --------------------------------
class FeatureFileError(CliError, ValueError):
    """A feature file no reader may trust: damaged, crafted, a shard of a merged file that
    changed, or a file replaced while it was being read. One line naming the file and the
    defect (exit code 1); a ``ValueError``, as the readers documented before."""


#: Transform parameters that are sizes in samples or bins: when stored (not None) each must
#: be an integer from 1 to :data:`MAX_SIZE` (a crafted ``n_fft = 2**40`` would make the
#: inverse allocate terabytes).
SIZE_PARAMS = ("n_fft", "win_length", "hop_length", "window_size", "n_mels", "n_bins",
               "n_mfcc", "bins_per_octave", "freq_bins")
#: Transform parameters that are sample rates (a positive finite number when stored).
RATE_PARAMS = ("sr", "fs")
#: Largest size parameter a stored config may hold (2**24 samples: 6 minutes at 48 kHz).
MAX_SIZE = 2**24
#: What HDF5 raises on a member it cannot open (a dangling or looping link, a bad object).
_OPEN_ERRORS = (KeyError, RuntimeError, OSError, ValueError, TypeError)


def _one(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _number(v: Any) -> bool:
    """A finite real number (not a bool, not a string)."""
    return (isinstance(v, (int, float, np.integer, np.floating))
            and not isinstance(v, (bool, np.bool_)) and bool(np.isfinite(v)))


def _size(v: Any) -> bool:
    return (isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
            and 1 <= int(v) <= MAX_SIZE)


def _column(ds: h5py.Dataset) -> np.ndarray:
    arr = ds[()]
    if arr.dtype.kind == "O":
        arr = np.array([a.decode() if isinstance(a, bytes) else a for a in arr], dtype=object)
    return arr


def file_identity(h5: h5py.File) -> tuple[str, str, str]:
    """What tells one written file from another: its ``digest``, ``created`` stamp and
    ``shard_digests`` attributes (every write sets them; a merged master's digest is empty,
    its shards' checksums are not). A file replaced under the same path (``extract
    --overwrite`` or ``--resume``, ``merge --overwrite``, ``os.replace``) has another."""
    return tuple(str(_attr(h5.attrs.get(k, ""))) for k in  # type: ignore[return-value]
                 ("digest", "created", "shard_digests"))


def validate_layout(h5: h5py.File, path: str | os.PathLike[str] | None = None
                    ) -> dict[str, np.ndarray]:
    """Check an open feature file before anything trusts it; return its index columns.

    The one validation every reader runs on open (:class:`FeatureFile`, hence
    :func:`open_features` and the Dataset; ``info``, ``plot``, ``invert`` and ``merge``).
    It reads the attributes, the index and the offsets, never the feature rows:

    * ``layout_version`` is readable; the root ``sr`` is a positive number; ``features`` is a
      non-empty JSON list of distinct names;
    * ``/index`` has one row per input in every column; ``key`` and ``status`` are strings,
      keys are unique, each status is ``ok`` or ``failed``; numeric columns are numeric;
    * per feature: ``data``, ``offsets`` and ``frequencies`` are datasets (not groups, not
      dangling or looping links); data are ``(rows, bins)`` or ``(rows, bins, 2)`` in the
      dtype its ``dtype`` attribute names, with the ``db_*`` attributes a dB scale needs;
      one frequency per bin; ``config_json`` is a JSON ``{transform, params}`` whose size
      parameters (:data:`SIZE_PARAMS`) are integers from 1 to :data:`MAX_SIZE` and rates
      positive; the ``hop_length`` and ``sr`` attributes likewise; offsets are
      ``n_inputs + 1`` non-decreasing integers from 0 to at most the stored rows, whole
      frames of each input's channels with ``keep_channels``;
    * virtual data (a merged master): each source file is there, readable, with the rows
      mapped; a merged master's sources are its ``merged_from`` shards, each with the
      ``digest`` attribute recorded at the merge (``shard_digests``). This is cheap (an
      attribute and a shape per shard); the full checksums are :func:`verify_file`'s job.

    Parameters
    ----------
    h5 : the open file
    path : how to name it in messages (default: ``h5.filename``)

    Returns
    -------
    dict
        The ``/index`` columns (strings decoded), as :func:`read_index`.

    Raises
    ------
    FeatureFileError
        One line: ``PATH: damaged feature file: WHAT`` (or ``PATH: shard ...``).
    """
    where = shown_key(str(path if path is not None else h5.filename))
    damaged = functools.partial(_damaged, where)

    def dataset(g: h5py.Group, name: str) -> h5py.Dataset:
        try:
            obj = g[name]
        except KeyError:
            raise damaged(f"{g.name.rstrip('/')}/{name} is missing") from None
        except _OPEN_ERRORS as e:
            raise damaged(f"{g.name.rstrip('/')}/{name} cannot be opened ({_one(e)})") from None
        if not isinstance(obj, h5py.Dataset):
            raise damaged(f"{obj.name} is not a dataset (a {type(obj).__name__.lower()})")
        return obj

    version = _attr(h5.attrs.get("layout_version", -1))
    if not isinstance(version, int) or version not in READABLE_VERSIONS:
        raise FeatureFileError(f"{where}: not an nnaudio feature file (layout_version "
                               f"{version!r}; this reader reads "
                               f"{', '.join(map(str, READABLE_VERSIONS))})")
    root = {k: _attr(v) for k, v in h5.attrs.items()}
    if not (_number(root.get("sr")) and root["sr"] > 0):
        raise damaged(f"root attribute sr is {root.get('sr')!r}, not a sample rate")
    try:
        names = feature_names(h5)
    except KeyError as e:
        raise damaged(e.args[0]) from None
    if not names:
        raise damaged("no features (the root attribute 'features' is an empty list)")
    if len(set(names)) != len(names) or any(not n or "/" in n for n in names):
        raise damaged(f"feature names {names} repeat or are not plain names")

    try:
        grp = h5["index"]
    except _OPEN_ERRORS:
        raise damaged("/index is missing or cannot be opened") from None
    if not isinstance(grp, h5py.Group):
        raise damaged("/index is not a group")
    index: dict[str, np.ndarray] = {}
    for col in list(grp):
        ds = dataset(grp, col)
        if ds.ndim != 1:
            raise damaged(f"index column {col} is {ds.ndim}-D, not one value per input")
        text = h5py.check_string_dtype(ds.dtype) is not None or ds.dtype.kind in "SO"
        if col in ("key", "status", "reason") and not text:
            raise damaged(f"index column {col} holds {ds.dtype}, not strings")
        if col in INDEX_COLUMNS_V1 and col not in ("key", "status", "reason") \
                and ds.dtype.kind not in "iuf":
            raise damaged(f"index column {col} holds {ds.dtype}, not numbers")
        index[col] = _column(ds)
    if "key" not in index or "status" not in index:
        raise damaged("the index has no key or status column")
    keys, n_keys = index["key"], len(index["key"])
    bad_cols = [c for c, arr in index.items() if len(arr) != n_keys]
    if bad_cols:
        raise damaged(f"index column(s) {', '.join(bad_cols)} do not have {n_keys} rows")
    if len(set(keys)) != n_keys:
        first: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k in first:
                raise damaged(f"duplicate key {shown_key(str(k))} (index rows {first[k]} and "
                              f"{i})")
            first[k] = i
    odd = [i for i, s in enumerate(index["status"]) if s not in ("ok", "failed")]
    if odd:
        raise damaged(f"index status {index['status'][odd[0]]!r} at row {odd[0]} is neither "
                      "ok nor failed")

    keep = bool(root.get("keep_channels", False)) and "stored_channels" in index
    for name in names:
        label = f"feature {name}: "
        try:
            g = feature_group(h5, name)
        except _OPEN_ERRORS:
            raise damaged(f"{label}no group /features/{name}") from None
        if not isinstance(g, h5py.Group):
            raise damaged(f"{label}/features/{name} is not a group")
        data, off_ds, freq_ds = (dataset(g, m) for m in ("data", "offsets", "frequencies"))
        attrs = {**root, **{k: _attr(v) for k, v in g.attrs.items()}}
        if data.ndim not in (2, 3) or (data.ndim == 3 and data.shape[2] != 2):
            raise damaged(f"{label}data have shape {data.shape}, not (rows, bins) or "
                          "(rows, bins, 2)")
        try:
            storage = Storage.from_attrs(attrs)
        except KeyError as e:
            raise damaged(f"{label}scale db without its attribute {e.args[0]}") from None
        except (CliError, TypeError, ValueError) as e:
            raise damaged(f"{label}{_one(e)}") from None
        if data.dtype != storage.numpy_dtype:
            raise damaged(f"{label}data are {data.dtype}, its dtype attribute says "
                          f"{storage.dtype} ({storage.numpy_dtype})")
        if freq_ds.ndim != 1 or freq_ds.dtype.kind not in "iuf" \
                or freq_ds.shape[0] != data.shape[1]:
            raise damaged(f"{label}frequencies are {freq_ds.dtype} {freq_ds.shape}, not one "
                          f"per bin ({data.shape[1]})")
        try:
            config = json.loads(attrs["config_json"])
        except (KeyError, TypeError, ValueError):
            raise damaged(f"{label}config_json is missing or not valid JSON") from None
        params = config.get("params", {}) if isinstance(config, dict) else None
        if not isinstance(params, dict) or not isinstance(config.get("transform", ""), str):
            raise damaged(f"{label}config_json is not a {{transform, params}} object")
        for what, values, sizes in (("stored config", params, SIZE_PARAMS),
                                    ("attribute", attrs, ("hop_length",))):
            for k in sizes:
                if values.get(k) is not None and not _size(values[k]):
                    raise damaged(f"{label}{what} {k}={values[k]!r}, not a size from 1 to "
                                  f"{MAX_SIZE}")
            for k in RATE_PARAMS:
                if values.get(k) is not None and not (_number(values[k]) and values[k] > 0):
                    raise damaged(f"{label}{what} {k}={values[k]!r}, not a sample rate")
        offsets = np.asarray(off_ds[()])
        _check_offsets(offsets, n_keys, int(data.shape[0]),
                       index["stored_channels"] if keep else None, label, damaged)
    check_shards(h5, path)
    return index


def check_shards(h5: h5py.File, path: str | os.PathLike[str] | None = None) -> None:
    """The cheap check of a merged master's shards (see :func:`validate_layout`; nothing
    for a file without virtual data): the part of the validation a reader that opens the
    file again (a DataLoader worker) repeats.

    Raises
    ------
    FeatureFileError
        A shard is missing, unreadable, not one the merge recorded, or changed since.
    """
    where = shown_key(str(path if path is not None else h5.filename))
    # (file, dataset) -> the source shape mapped, or (when HDF5 kept none: a whole-dataset
    # mapping) the number of values mapped
    shards: dict[tuple[str, str], tuple[int, ...] | int] = {}
    for name in feature_names(h5):
        data = feature_group(h5, name)["data"]
        if data.is_virtual:
            for src in data.virtual_sources():
                shape = tuple(src.src_space.shape)
                shards[(src.file_name, src.dset_name)] = \
                    shape if shape else int(src.vspace.get_select_npoints())
    if shards:
        _check_shards(h5, where, shards, functools.partial(_damaged, where))


def _damaged(where: str, why: str) -> FeatureFileError:
    return FeatureFileError(f"{where}: damaged feature file: {why}")


def _check_offsets(offsets: np.ndarray, n_keys: int, rows: int, channels: np.ndarray | None,
                   label: str, damaged: Callable[[str], FeatureFileError]) -> None:
    """Offsets: ``n_keys + 1`` non-decreasing integers from 0 to at most ``rows``; with
    ``channels`` (keep_channels) whole frames per input."""
    if offsets.ndim != 1 or offsets.dtype.kind not in "iu":
        raise damaged(f"{label}offsets are {offsets.dtype} {offsets.shape}, not 1-D integers")
    if offsets.size != n_keys + 1:
        raise damaged(f"{label}{offsets.size} offsets for {n_keys} keys (need {n_keys + 1})")
    if int(offsets[0]) != 0:
        raise damaged(f"{label}offsets start at {int(offsets[0])}, not 0")
    if (offsets < 0).any():
        raise damaged(f"{label}negative offset at position {int(np.argmax(offsets < 0))}")
    steps = np.diff(offsets)
    if (steps < 0).any():
        raise damaged(f"{label}offsets decrease at position {int(np.argmax(steps < 0)) + 1}")
    if int(offsets[-1]) > rows:
        raise damaged(f"{label}offsets end at row {int(offsets[-1])}, past the {rows} stored "
                      "rows")
    if channels is not None:
        ch = np.asarray(channels, dtype=np.int64)
        ok = ch > 0
        if (steps[ok] % ch[ok] != 0).any() or ((steps > 0) & ~ok).any():
            raise damaged(f"{label}a stored block does not hold whole frames of its channels")


def merged_shards(h5: h5py.File) -> dict[str, str] | None:
    """A merged master's shards: relative path -> checksum recorded at the merge
    (``merged_from``, ``shard_digests``); None when the file is not a merge.

    Raises
    ------
    ValueError
        The two attributes are not JSON lists of strings of one length.
    """
    if "merged_from" not in h5.attrs:
        return None
    paths = json.loads(_attr(h5.attrs["merged_from"]))
    digests = json.loads(_attr(h5.attrs.get("shard_digests", "[]")))
    if not (isinstance(paths, list) and isinstance(digests, list) and len(paths) == len(digests)
            and all(isinstance(x, str) for x in paths + digests)):
        raise ValueError("merged_from and shard_digests are not lists of one length")
    return dict(zip(paths, digests, strict=True))


def _check_shards(h5: h5py.File, where: str,
                  sources: Mapping[tuple[str, str], tuple[int, ...] | int],
                  damaged: Callable[[str], FeatureFileError]) -> None:
    """The cheap check of virtual data's source files (see :func:`validate_layout`):
    ``sources`` maps (file, dataset) to the source shape mapped (or the number of values).
    A merged master's sources must be its recorded shards with their recorded checksums; a
    virtual file made otherwise (with h5py over extract outputs) needs its sources there,
    readable, with those shapes."""
    try:
        recorded = merged_shards(h5)
    except (TypeError, ValueError):
        raise damaged("merged_from / shard_digests are not a list of shards") from None
    strays = [name for name, _ in sources if recorded is not None and name not in recorded]
    if strays:
        raise damaged(f"its data are read from {shown_key(strays[0])}, which is not one of "
                      "its merged shards")
    what = "virtual source" if recorded is None else "shard"
    home = Path(h5.filename).parent
    for name in dict.fromkeys(f for f, _ in sources):
        shown = shown_key(name)
        if not (home / name).is_file():
            raise FeatureFileError(f"{where}: {what} file {shown} is missing (the file reads "
                                   "it in place)")
        try:
            with h5py.File(home / name, "r") as sh:
                digest = str(_attr(sh.attrs.get("digest", "")))
                held = {d: tuple(sh[d].shape) for f, d in sources if f == name}
        except _OPEN_ERRORS as e:
            raise FeatureFileError(f"{where}: {what} {shown} cannot be read ({_one(e)})"
                                   ) from None
        if recorded is not None and digest != recorded[name]:
            raise FeatureFileError(
                f"{where}: shard {shown} changed since the merge (checksum "
                f"{digest or 'none'}, merged {recorded[name] or 'none'}); merge the shards "
                "again")
        for dset, shape in held.items():
            want = sources[(name, dset)]
            if shape != want if isinstance(want, tuple) else int(np.prod(shape)) != want:
                mapped = want[0] if isinstance(want, tuple) else f"{want} values"
                raise FeatureFileError(
                    f"{where}: {what} {shown} holds {shape[0] if shape else 0} rows of "
                    f"{dset}, {mapped} were mapped; make the file again")


def verify_file(path: str | os.PathLike[str]) -> list[str]:
    """Full verification: recompute every checksum the file depends on (its own, or for a
    merged master each shard's, against the one recorded at the merge). Reads every stored
    row once (CRC-32: about as fast as the disk; see the README).

    Returns
    -------
    list of str
        What was verified, one line each (``PATH: checksum crc32:...`` per file).

    Raises
    ------
    FeatureFileError
        A checksum is missing or differs (one line naming the file).
    """
    where = shown_key(str(path))
    with h5py.File(path, "r") as h5:
        validate_layout(h5, path)
        recorded = merged_shards(h5)
    if recorded is None:
        return [_verified(Path(path), None)]
    home = Path(path).parent
    return [_verified(home / n, d, where) for n, d in recorded.items()]


def _verified(path: Path, expected: str | None, master: str = "") -> str:
    """Recompute ``path``'s checksum; it must equal its ``digest`` (and ``expected``)."""
    shown = shown_key(str(path))
    what = f"{master}: shard {shown}" if master else shown
    try:
        stored, actual = file_digest(path)
    except _OPEN_ERRORS as e:
        raise FeatureFileError(f"{what} cannot be read ({_one(e)})") from None
    check_digest(what, stored, actual)
    if expected is not None and stored != expected:
        raise FeatureFileError(f"{what} changed since the merge (checksum {stored}, merged "
                               f"{expected}); merge the shards again")
    return f"{shown}: checksum {stored}"


def check_digest(what: str, stored: str, actual: str) -> None:
    """Raise :class:`FeatureFileError` naming ``what`` unless the stored checksum (the
    ``digest`` attribute) is there and equals the one recomputed from the data."""
    if not stored:
        raise FeatureFileError(f"{what} has no checksum (digest attribute): not a complete "
                               "nnaudio output")
    if actual != stored:
        raise FeatureFileError(f"{what}: checksum mismatch (stored {stored}, data give "
                               f"{actual}): the file is damaged; extract it again")
