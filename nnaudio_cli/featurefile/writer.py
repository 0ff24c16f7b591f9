"""Writing a feature file: :class:`FeatureWriter` appends inputs' rows to ``PATH.partial``
(buffered, hashed, optionally with statistics) and renames it into place on commit."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from nnaudio_cli.featurefile.checksum import ArrayDigest, digest_rows, file_checksum
from nnaudio_cli.featurefile.encoding import Storage
from nnaudio_cli.featurefile.layout import (
    CHUNK_BYTES,
    COMPRESSIONS,
    INDEX_COLUMNS,
    LAYOUT_VERSION,
    STR,
    WRITE_BYTES,
    column_default,
)
from nnaudio_cli.featurefile.stats import BinStats
from nnaudio_cli.plumbing.outputs import fsync_path, partial_path
from nnaudio_cli.plumbing.text import stored_key

#: HDF5 handles of writers that failed mid-write (never closed; see FeatureWriter.abort).
LEAKED: list[Any] = []


def compression_kwargs(name: str) -> dict[str, Any]:
    """h5py ``create_dataset`` keywords of a ``--compression`` name."""
    if name == "lzf":
        return {"compression": "lzf", "shuffle": True}
    if name == "gzip":
        return {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    if name == "none":
        return {}
    raise ValueError(f"compression={name!r} is not one of {', '.join(COMPRESSIONS)}")



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
            self.digest = digest_rows(self.data)
        return self.spec.name, self.digest, offsets


class FeatureWriter:
    """Appends the features of inputs, input by input, to ``PATH.partial``; :meth:`commit`
    renames it to PATH. Used for the final output, merged copies and the part files of a run.

    For each input: append its rows of every feature (:meth:`append` takes float32 values
    and stores them as the feature's :class:`~nnaudio_cli.featurefile.encoding.Storage` says;
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
        nnaudio_cli.featurefile.encoding.StorageError
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
            values = [r.get(col, column_default(dtype)) for r in self.rows]
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

