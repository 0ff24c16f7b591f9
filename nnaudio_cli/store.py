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

import json
import os
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from nnaudio_cli.errors import CliError
from nnaudio_cli.stats import BinStats
from nnaudio_cli.storage import Storage
from nnaudio_cli.text import stored_key

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
    out: dict[str, np.ndarray] = {}
    for col, ds in h5["index"].items():
        arr = ds[()]
        if arr.dtype.kind == "O":
            arr = np.array([a.decode() if isinstance(a, bytes) else a for a in arr],
                           dtype=object)
        out[col] = arr
    return out


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
    ValueError
        Not a readable feature file, a merged file whose shard is missing, or ``feature``
        missing (the file holds several) or not in the file (one line naming the choices).
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
        version = int(self.h5.attrs.get("layout_version", -1))
        if version not in READABLE_VERSIONS:
            raise ValueError(f"{path}: layout_version {version}, this reader reads "
                             f"{', '.join(map(str, READABLE_VERSIONS))}")
        if dtype not in ("float32", None):
            raise ValueError(f"dtype={dtype!r}: expected 'float32' or None (as stored)")
        self.version = version
        try:
            self.features: list[str] = feature_names(self.h5)
        except KeyError as e:
            raise ValueError(f"{path}: {e.args[0]}") from None
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
        self.index: dict[str, np.ndarray] = read_index(self.h5)
        self.offsets = self.group["offsets"][()]
        self.data = self.group["data"]
        if "frames" not in self.index:  # layout 2: per feature, from its offsets
            ch = np.maximum(np.asarray(self.index["stored_channels"], np.int64), 1)
            self.index["frames"] = np.diff(self.offsets).astype(np.int64) // ch
        if self.data.is_virtual:  # a merged master (nnaudio merge): its shards must be there
            for src in self.data.virtual_sources():
                if not (self.path.parent / src.file_name).is_file():
                    raise ValueError(f"{path}: shard file {src.file_name} is missing (the "
                                     "merged file reads it in place)")
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
        ``dtype=None``)."""
        block = self.data[start:stop]
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


def validate_layout(h5: h5py.File) -> None:
    """Check the index of an open feature file before anything trusts it.

    For every feature, offsets must be ``n_inputs + 1`` non-negative, non-decreasing integers
    that start at 0 and end inside its data; every index column must have ``n_inputs`` rows,
    and with ``keep_channels`` every stored block must hold whole frames.

    Raises
    ------
    ValueError
        One line starting with ``damaged feature file:`` naming the first problem found.
    """
    def damaged(why: str) -> ValueError:
        return ValueError(f"damaged feature file: {why}")

    try:
        columns = {col: h5["index"][col].shape for col in h5["index"]}
        names = feature_names(h5)
        groups = [(n, feature_group(h5, n)) for n in names]
        arrays = [(n, g["data"], np.asarray(g["offsets"][()])) for n, g in groups]
    except (KeyError, TypeError) as e:
        raise damaged(f"missing dataset ({' '.join(str(e).split())})") from None
    n_keys = columns.get("key", (None,))[0]
    if n_keys is None or "status" not in columns:
        raise damaged("the index has no key or status column")
    bad_cols = [c for c, shape in columns.items() if shape[:1] != (n_keys,)]
    if bad_cols:
        raise damaged(f"index column(s) {', '.join(bad_cols)} do not have {n_keys} rows")
    for name, data, offsets in arrays:
        where = "" if len(arrays) == 1 else f"{name}: "
        if offsets.ndim != 1 or offsets.dtype.kind not in "iu":
            raise damaged(f"{where}offsets are {offsets.dtype} {offsets.shape}, not 1-D "
                          "integers")
        if offsets.size != n_keys + 1:
            raise damaged(f"{where}{offsets.size} offsets for {n_keys} keys (need "
                          f"{n_keys + 1})")
        if offsets.size and int(offsets[0]) != 0:
            raise damaged(f"{where}offsets start at {int(offsets[0])}, not 0")
        if (offsets < 0).any():
            raise damaged(f"{where}negative offset at position {int(np.argmax(offsets < 0))}")
        steps = np.diff(offsets)
        if (steps < 0).any():
            raise damaged(f"{where}offsets decrease at position "
                          f"{int(np.argmax(steps < 0)) + 1}")
        if offsets.size and int(offsets[-1]) > data.shape[0]:
            raise damaged(f"{where}offsets end at row {int(offsets[-1])}, past the "
                          f"{data.shape[0]} stored rows")
        if bool(h5.attrs.get("keep_channels", False)) and "stored_channels" in columns:
            ch = np.asarray(h5["index/stored_channels"][()], dtype=np.int64)
            ok = ch > 0
            if (steps[ok] % ch[ok] != 0).any() or ((steps > 0) & ~ok).any():
                raise damaged(f"{where}a stored block does not hold whole frames of its "
                              "channels")
