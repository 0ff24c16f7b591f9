"""Checksums of feature and part files: CRC-32 of every feature's rows and offsets and the
index (the ``digest`` attribute), recomputed and compared (:func:`verify_file`)."""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from nnaudio_cli.featurefile.layout import (
    INDEX_COLUMNS,
    INDEX_COLUMNS_V1,
    STR,
    attr_value,
    feature_group,
    feature_names,
    read_index,
)
from nnaudio_cli.featurefile.validate import (
    OPEN_ERRORS,
    FeatureFileError,
    merged_shards,
    validate_layout,
)
from nnaudio_cli.plumbing.text import one_line, shown_key


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


def digest_rows(dataset: h5py.Dataset) -> ArrayDigest:
    digest = ArrayDigest()
    row_bytes = max(1, int(np.prod(dataset.shape[1:])) * dataset.dtype.itemsize)
    step = max(1, (8 << 20) // row_bytes)
    for a in range(0, dataset.shape[0], step):
        digest.data(dataset[a : a + step])
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
        stored = str(attr_value(h5.attrs.get("digest", "")))
        index = read_index(h5)
        if int(h5.attrs.get("layout_version", -1)) == 1:
            actual = _checksum_v1(digest_rows(h5["features/data"]),
                                  h5["features/offsets"][()], index)
            return stored, actual
        parts = []
        for name in feature_names(h5):
            g = feature_group(h5, name)
            parts.append((name, digest_rows(g["data"]), g["offsets"][()]))
        return stored, file_checksum(parts, index)



def verify_file(path: str | os.PathLike[str]) -> list[str]:
    """Full verification: recompute every checksum the file depends on (its own, or for a
    merged master each shard's, against the one recorded at the merge). Reads every stored
    row once (CRC-32: about as fast as the disk; see docs/file-format.md).

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
    except OPEN_ERRORS as e:
        raise FeatureFileError(f"{what} cannot be read ({one_line(e)})") from None
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
