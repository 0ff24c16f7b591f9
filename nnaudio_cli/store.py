"""The HDF5 feature file: layout constants, a crash-safe writer and the reader.

Layout (``layout_version`` 1; see the README)::

    /features/data         float32 (total_rows, n_bins) or (total_rows, n_bins, 2) if complex,
                           chunked along rows, lzf by default. Rows are frames in time order;
                           with keep_channels a frame's channels are consecutive rows.
    /features/offsets      int64 (n_inputs + 1,): input i is data[offsets[i]:offsets[i+1]]
                           (empty for failed inputs)
    /features/frequencies  float64 (n_bins,), Hz per bin (also the root attr 'frequencies')
    /index/<column>        one row per input, sorted by key: key, status, reason, sr,
                           samples, channels, duration, size, mtime, frames, stored_channels
    root attributes        see :data:`ROOT_ATTRS`
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from nnaudio_cli.errors import CliError

LAYOUT_VERSION = 1
#: Target bytes per HDF5 chunk of /features/data.
CHUNK_BYTES = 512 * 1024
#: Rows buffered in memory before they are appended to /features/data.
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
    "frames": np.int64,
    "stored_channels": np.int32,
}
#: Root attributes every file has.
ROOT_ATTRS = (
    "layout_version", "transform", "config_json", "config_hash", "sr", "hop_length", "n_bins",
    "frequencies", "dtype", "value_layout", "keep_channels", "resampler", "compression",
    "package_version", "torch_version", "numpy_version", "h5py_version", "soxr_version",
    "soundfile_version", "command_line", "created", "n_inputs", "n_ok", "n_failed", "digest",
)


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


def _compression_kwargs(name: str) -> dict[str, Any]:
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


class ArrayDigest:
    """Checksum of a feature file's arrays: CRC-32 (zlib's) over the data rows in order
    (float32), the offsets (int64) and every index column (numbers in their stored type,
    strings as UTF-8 joined by NUL). Stored as the root attribute ``digest`` of every
    feature and part file; :func:`file_digest` recomputes it from a file. A checksum against
    accidental damage (a disk, a crash, a stray write), not an authenticity check; CRC-32 runs
    at several GB/s, so verifying costs little next to reading."""

    def __init__(self) -> None:
        self.crc = 0
        self.nbytes = 0

    def _update(self, data: Any) -> None:
        self.crc = zlib.crc32(data, self.crc)

    def data(self, block: np.ndarray) -> None:
        """Add the next rows of ``/features/data``."""
        arr = np.ascontiguousarray(block, dtype=np.float32)
        self._update(memoryview(arr).cast("B"))
        self.nbytes += arr.nbytes

    def hexdigest(self, offsets: np.ndarray, index: Mapping[str, np.ndarray]) -> str:
        """The checksum of the rows added so far, with these offsets and index columns."""
        crc = self.crc
        parts = [np.ascontiguousarray(offsets, dtype=np.int64).tobytes()]
        for col, dtype in INDEX_COLUMNS.items():
            parts.append(col.encode())
            arr = index.get(col)
            if arr is None:
                continue
            if dtype is STR:
                text = "\0".join(str(v) for v in arr)
                parts.append(text.encode("utf-8", "surrogateescape"))
            else:
                parts.append(np.ascontiguousarray(arr, dtype=dtype).tobytes())
        for p in parts:
            crc = zlib.crc32(p, crc)
        return f"crc32:{crc:08x}:{self.nbytes}"


def _digest_rows(dataset: h5py.Dataset, block_rows: int) -> ArrayDigest:
    digest = ArrayDigest()
    for a in range(0, dataset.shape[0], block_rows):
        digest.data(dataset[a : a + block_rows])
    return digest


def file_digest(path: Path) -> tuple[str, str]:
    """``(stored, actual)`` checksums of a feature or part file: the ``digest`` attribute
    (``""`` when absent) and the one recomputed from its arrays.

    Raises
    ------
    OSError, KeyError, ValueError
        The file cannot be read (HDF5 reports a corrupt chunk as an OSError).
    """
    with h5py.File(path, "r") as h5:
        stored = _attr(h5.attrs.get("digest", ""))
        data = h5["features/data"]
        row_bytes = max(1, int(np.prod(data.shape[1:])) * 4)
        digest = _digest_rows(data, max(1, (8 << 20) // row_bytes))
        actual = digest.hexdigest(h5["features/offsets"][()], read_index(h5))
    return str(stored), actual


class FeatureWriter:
    """Appends features clip by clip to ``PATH.partial``; :meth:`commit` renames it to PATH.

    Rows of the index are added in data order with :meth:`add_row` (after the clip's
    features were appended). Used for the final output and for the part files of a run.

    Parameters
    ----------
    path : final path
    row_shape : shape of one stored row, ``(n_bins,)`` or ``(n_bins, 2)``
    compression : 'lzf', 'gzip' or 'none'
    """

    def __init__(
        self, path: Path, row_shape: tuple[int, ...], compression: str = "lzf"
    ) -> None:
        self.path = Path(path)
        self.tmp = partial_path(self.path)
        self.row_shape = tuple(row_shape)
        row_bytes = int(np.prod(row_shape)) * 4
        self.chunk_rows = max(1, CHUNK_BYTES // row_bytes)
        self.write_rows = max(self.chunk_rows, WRITE_BYTES // row_bytes)
        self.compression = compression
        self.committed = 0  # rows in the dataset
        self.buffer: list[np.ndarray] = []
        self.buffered = 0
        self.rows: list[dict[str, Any]] = []
        self.digest = ArrayDigest()
        self.rehash = False  # rows already hashed were rolled back: hash from the file
        self.digest_hex = ""  # the checksum written by commit()
        self.h5 = h5py.File(self.tmp, "w")
        self.data = self.h5.create_dataset(
            "features/data",
            shape=(0,) + self.row_shape,
            maxshape=(None,) + self.row_shape,
            dtype=np.float32,
            chunks=(self.chunk_rows,) + self.row_shape,
            **_compression_kwargs(compression),
        )

    @property
    def total_rows(self) -> int:
        """Rows written or buffered so far."""
        return self.committed + self.buffered

    def append(self, block: np.ndarray) -> None:
        """Append rows (n, *row_shape) of the clip being written."""
        if block.shape[0] == 0:
            return
        self.buffer.append(np.ascontiguousarray(block, dtype=np.float32))
        self.buffered += block.shape[0]
        if self.buffered >= self.write_rows:
            self._flush()

    def _flush(self) -> None:
        if not self.buffered:
            return
        block = np.concatenate(self.buffer) if len(self.buffer) > 1 else self.buffer[0]
        self.data.resize(self.committed + block.shape[0], axis=0)
        self.data[self.committed :] = block
        self.digest.data(block)
        self.committed += block.shape[0]
        self.buffer, self.buffered = [], 0

    def rollback(self, mark: int) -> None:
        """Drop every row after ``mark`` (a previous :attr:`total_rows`)."""
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

    def add_row(self, **fields: Any) -> None:
        """Add the index row of the next input (:data:`INDEX_COLUMNS` and ``n_rows``)."""
        self.rows.append(fields)

    def commit(
        self, attrs: dict[str, Any], frequencies: np.ndarray, durable: bool = True
    ) -> None:
        """Write index, offsets and attributes, close, fsync and rename into place.

        ``durable=False`` skips the fsyncs of the file and of its folder (part files: a part
        that a power loss damages fails its checksum and is computed again). Either way the
        rename is atomic, so a killed process never leaves a half-written file in place."""
        self._flush()
        n_rows = np.array([int(r.get("n_rows", 0)) for r in self.rows], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(n_rows)]).astype(np.int64)
        if int(offsets[-1]) != self.committed:
            raise RuntimeError(
                f"internal error: {offsets[-1]} indexed rows, {self.committed} written"
            )
        self.h5.create_dataset("features/offsets", data=offsets)
        self.h5.create_dataset("features/frequencies", data=np.asarray(frequencies, np.float64))
        grp = self.h5.create_group("index")
        columns: dict[str, np.ndarray] = {}
        for col, dtype in INDEX_COLUMNS.items():
            default: Any = "" if dtype is STR else 0
            values = [r.get(col, default) for r in self.rows]
            columns[col] = np.array(values, dtype=object if dtype is STR else dtype)
            grp.create_dataset(col, data=columns[col], dtype=dtype)
        if self.rehash:
            self.digest = _digest_rows(self.data, self.write_rows)
        self.digest_hex = self.digest.hexdigest(offsets, columns)
        self.h5.attrs["digest"] = self.digest_hex
        for k, v in attrs.items():
            self.h5.attrs[k] = str(v) if isinstance(v, str) else v  # plain str, not subclasses
        freqs = np.asarray(frequencies, np.float64)
        if freqs.nbytes < 60000:
            self.h5.attrs["frequencies"] = freqs
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
    """Read access to a feature file: ``ff[key] -> np.ndarray``.

    Iterating gives the keys (relative paths) of the inputs that were written, in stored
    order. Arrays are time-major: ``(frames, n_bins)``, ``(frames, n_bins, 2)`` for complex
    outputs (real, imaginary), and with ``keep_channels`` ``(frames, channels, n_bins[, 2])``.

    Parameters
    ----------
    path : an HDF5 file written by ``nnaudio extract``
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.h5 = h5py.File(self.path, "r")
        version = int(self.h5.attrs.get("layout_version", -1))
        if version != LAYOUT_VERSION:
            self.h5.close()
            raise ValueError(
                f"{path}: layout_version {version}, this reader reads {LAYOUT_VERSION}"
            )
        self.attrs: dict[str, Any] = {k: _attr(v) for k, v in self.h5.attrs.items()}
        self.index: dict[str, np.ndarray] = read_index(self.h5)
        self.offsets = self.h5["features/offsets"][()]
        self.data = self.h5["features/data"]
        if self.data.is_virtual:  # a merged master (nnaudio merge): its shards must be there
            for src in self.data.virtual_sources():
                if not (self.path.parent / src.file_name).is_file():
                    self.h5.close()
                    raise ValueError(f"{path}: shard file {src.file_name} is missing (the "
                                     "merged file reads it in place)")
        self._row = {k: i for i, k in enumerate(self.index["key"])}
        self._ok = [k for k, s in zip(self.index["key"], self.index["status"], strict=True)
                    if s == "ok"]

    # Mapping interface -------------------------------------------------------------
    def __getitem__(self, key: str) -> np.ndarray:
        i = self._row.get(key)
        if i is None:
            raise KeyError(key)
        if self.index["status"][i] != "ok":
            raise KeyError(f"{key}: extraction failed ({self.index['reason'][i]})")
        block = self.data[int(self.offsets[i]) : int(self.offsets[i + 1])]
        if self.keep_channels:
            ch = int(self.index["stored_channels"][i])
            block = block.reshape((block.shape[0] // ch, ch) + block.shape[1:])
        return block

    def __iter__(self) -> Iterator[str]:
        return iter(self._ok)

    def __len__(self) -> int:
        return len(self._ok)

    def __contains__(self, key: object) -> bool:
        return key in self._row and self.index["status"][self._row[key]] == "ok"

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
        return self.h5["features/frequencies"][()]

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
        """Index row of ``key`` as a dict (status, reason, sr, samples, channels, ...)."""
        i = self._row[key]
        return {col: _attr(arr[i]) for col, arr in self.index.items()}

    def transform(self) -> Any:
        """Rebuild the transform module that made this file."""
        from nnaudio_core.features import build

        return build(self.config)

    def close(self) -> None:
        """Close the HDF5 file."""
        self.h5.close()

    def __enter__(self) -> FeatureFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_features(path: str | os.PathLike[str]) -> FeatureFile:
    """Open a feature file for reading (use as a context manager or call ``close()``)."""
    return FeatureFile(path)


def validate_layout(h5: h5py.File) -> None:
    """Check the index of an open feature file before anything trusts it.

    Offsets must be ``n_inputs + 1`` non-negative, non-decreasing integers that start at 0
    and end inside ``/features/data``; every index column must have ``n_inputs`` rows, and
    with ``keep_channels`` every stored block must hold whole frames.

    Raises
    ------
    ValueError
        One line starting with ``damaged feature file:`` naming the first problem found.
    """
    def damaged(why: str) -> ValueError:
        return ValueError(f"damaged feature file: {why}")

    try:
        data = h5["features/data"]
        offsets = np.asarray(h5["features/offsets"][()])
        columns = {col: h5["index"][col].shape for col in h5["index"]}
    except (KeyError, TypeError) as e:
        raise damaged(f"missing dataset ({' '.join(str(e).split())})") from None
    n_keys = columns.get("key", (None,))[0]
    if n_keys is None or "status" not in columns:
        raise damaged("the index has no key or status column")
    bad_cols = [c for c, shape in columns.items() if shape[:1] != (n_keys,)]
    if bad_cols:
        raise damaged(f"index column(s) {', '.join(bad_cols)} do not have {n_keys} rows")
    if offsets.ndim != 1 or offsets.dtype.kind not in "iu":
        raise damaged(f"/features/offsets is {offsets.dtype} {offsets.shape}, not 1-D integers")
    if offsets.size != n_keys + 1:
        raise damaged(f"{offsets.size} offsets for {n_keys} keys (need {n_keys + 1})")
    if offsets.size and int(offsets[0]) != 0:
        raise damaged(f"offsets start at {int(offsets[0])}, not 0")
    if (offsets < 0).any():
        raise damaged(f"negative offset at position {int(np.argmax(offsets < 0))}")
    steps = np.diff(offsets)
    if (steps < 0).any():
        raise damaged(f"offsets decrease at position {int(np.argmax(steps < 0)) + 1}")
    if offsets.size and int(offsets[-1]) > data.shape[0]:
        raise damaged(f"offsets end at row {int(offsets[-1])}, past the {data.shape[0]} "
                      "stored rows")
    if bool(h5.attrs.get("keep_channels", False)) and "stored_channels" in columns:
        ch = np.asarray(h5["index/stored_channels"][()], dtype=np.int64)
        ok = ch > 0
        if (steps[ok] % ch[ok] != 0).any() or ((steps > 0) & ~ok).any():
            raise damaged("a stored block does not hold whole frames of its channels")
