"""Stage 6, assemble: ``OUTPUT.h5`` from the committed part files, in sorted key order.

The final file is written to ``OUTPUT.h5.partial`` by a
:class:`~nnaudio_cli.featurefile.writer.FeatureWriter` (flushed, fsynced, renamed into place),
taking
each input's index row and feature rows from the part that holds it. Data are copied in
blocks of bounded size (runs of consecutive rows in one part are merged), so memory does not
grow with the size of an input or of the dataset. Because the order is the sorted key order
and every input is computed in the batch the fixed plan gives it, the result is the same
whatever the number of interruptions or the order the parts were written in. The output carries the
checksum of its arrays (root attribute ``digest``), like every part, and every feature's per-bin
statistics, computed while copying: they depend only on the stored rows in key order (fixed
blocks, :class:`~nnaudio_cli.featurefile.stats.BinStats`), so a resumed run stores the same bits.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from nnaudio_cli.extract.parts import Source
from nnaudio_cli.featurefile.layout import feature_group
from nnaudio_cli.featurefile.writer import FeatureSpec, FeatureWriter
from nnaudio_cli.plumbing.outputs import OutputError

#: Part files kept open at once while copying.
OPEN_FILES = 16
#: Bytes of feature rows copied per read.
COPY_BYTES = 16 * 1024 * 1024


class _Readers:
    """A small LRU of open part files."""

    def __init__(self) -> None:
        self.files: OrderedDict[Path, h5py.File] = OrderedDict()

    def data(self, path: Path, name: str) -> h5py.Dataset:
        f = self.files.pop(path, None)
        if f is None:
            f = h5py.File(path, "r")
            if len(self.files) >= OPEN_FILES:
                _, old = self.files.popitem(last=False)
                old.close()
        self.files[path] = f
        return feature_group(f, name)["data"]

    def close(self) -> None:
        for f in self.files.values():
            f.close()
        self.files.clear()


def _runs(keys: list[str], sources: dict[str, Source],
          name: str) -> list[tuple[Path, int, int]]:
    """``(part, start, stop)`` data ranges of feature ``name`` in key order, consecutive
    ranges merged."""
    runs: list[tuple[Path, int, int]] = []
    for key in keys:
        src = sources[key]
        n = int(src.row.n_rows.get(name, 0))
        if n == 0:
            continue
        start = src.start[name]
        if runs and runs[-1][0] == src.path and runs[-1][2] == start:
            runs[-1] = (src.path, runs[-1][1], start + n)
        else:
            runs.append((src.path, start, start + n))
    return runs


def assemble(
    output: Path,
    keys: list[str],
    sources: dict[str, Source],
    specs: list[FeatureSpec],
    compression: str,
    attrs: dict[str, Any],
) -> None:
    """Write the final file from the parts, with every feature's statistics.

    Parameters
    ----------
    output : final path (written as ``OUTPUT.partial`` and renamed)
    keys : every input, sorted; each must be in ``sources``
    sources : where each input's row and features are
    specs : the features, in stored order
    compression : of the features' data
    attrs : root attributes

    Raises
    ------
    OutputError
        The output could not be written (the parts are untouched).
    """
    readers = _Readers()
    try:
        writer = FeatureWriter(output, specs, compression, stats=True)
    except OSError as e:
        raise OutputError(output, e) from None
    try:
        for spec in specs:
            row_bytes = int(np.prod(spec.row_shape)) * spec.storage.numpy_dtype.itemsize
            block_rows = max(1, COPY_BYTES // row_bytes)
            for path, start, stop in _runs(keys, sources, spec.name):
                data = readers.data(path, spec.name)
                for a in range(start, stop, block_rows):
                    writer.append_stored(spec.name, data[a : min(stop, a + block_rows)])
        for key in keys:
            row = sources[key].row
            writer.add_row(row.n_rows, **row.as_fields())
        writer.commit(attrs)
    except (OSError, RuntimeError) as e:  # h5py: "Can't flush cache"
        writer.abort(broken=True)
        raise OutputError(output, e) from None
    except BaseException:
        writer.abort()
        raise
    finally:
        readers.close()
