"""Per-bin streaming statistics of stored feature rows (count, mean, variance).

:class:`BinStats` keeps, for every element of a feature row (a frame: ``(n_bins,)``, or
``(n_bins, 2)`` for complex features), the count, the mean and ``m2`` (the sum of squared
deviations from the mean) in float64. Rows are gathered into blocks of
:attr:`BinStats.BLOCK_ROWS` rows of the row stream; each block's mean and ``m2`` are computed
with two passes (mean, then squared deviations) and folded into the totals with Chan et al.'s
pairwise update, which is also how parts (files, shards, resumed runs) are merged. Large
offsets (mean 1e4, std 1) therefore lose nothing to a naive sum of squares.

The result depends only on the sequence of rows, never on how :meth:`BinStats.update` calls
slice it: the same rows give the same bits.

HDF5 layout (:meth:`BinStats.write`)::

    <group>/<name>/count   int64,   row shape
    <group>/<name>/mean    float64, row shape
    <group>/<name>/var     float64, row shape (ddof 0; NaN where count is 0)
    <group>/<name>/m2      float64, row shape (sum of squared deviations: exact merging)
    attrs: ddof = 0, method = "chan"
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import h5py

#: Columns (row elements) converted to float64 at a time when a block is reduced.
_COLUMNS = 512


def _fold(count: np.ndarray, mean: np.ndarray, m2: np.ndarray, n_b: np.ndarray,
          mean_b: np.ndarray, m2_b: np.ndarray) -> None:
    """Chan et al.'s combination of ``(n_b, mean_b, m2_b)`` into the first three, in place.

    Where either side has count 0 the other side is kept exactly.
    """
    n_a = count.astype(np.float64)
    nb = np.asarray(n_b, dtype=np.float64)
    n = n_a + nb
    safe = np.where(n > 0, n, 1.0)
    delta = mean_b - mean
    new_mean = mean + delta * (nb / safe)
    new_m2 = m2 + m2_b + delta * delta * (n_a * nb / safe)
    keep_a, keep_b = nb == 0, n_a == 0
    new_mean = np.where(keep_a, mean, np.where(keep_b, mean_b, new_mean))
    new_m2 = np.where(keep_a, m2, np.where(keep_b, m2_b, new_m2))
    mean[...] = new_mean
    m2[...] = new_m2
    count += np.asarray(n_b, dtype=np.int64)


class BinStats:
    """Per-bin count, mean and variance (ddof=0) of feature rows, float64, streaming.

    Parameters
    ----------
    row_shape : tuple of int
        Shape of one stored row, e.g. ``(n_bins,)`` or ``(n_bins, 2)``; the statistics are per
        element of the row.

    Attributes
    ----------
    count : np.ndarray
        int64, ``row_shape``: rows folded in so far.
    mean : np.ndarray
        float64, ``row_shape``.
    m2 : np.ndarray
        float64, ``row_shape``: sum of squared deviations from the mean.

    Notes
    -----
    :meth:`update` buffers rows into fixed blocks of :attr:`BLOCK_ROWS` rows of the row
    stream (float32 rows are buffered as float32, wider ones as float64: exact either way),
    so the result depends only on the sequence of rows. Call :meth:`finish` before reading
    the statistics of a stream whose last block is not full.
    """

    BLOCK_ROWS = 8192

    def __init__(self, row_shape: tuple[int, ...]) -> None:
        self.row_shape = tuple(int(d) for d in row_shape)
        self.count = np.zeros(self.row_shape, dtype=np.int64)
        self.mean = np.zeros(self.row_shape, dtype=np.float64)
        self.m2 = np.zeros(self.row_shape, dtype=np.float64)
        self._size = int(np.prod(self.row_shape, dtype=np.int64))
        self._buf: np.ndarray | None = None
        self._fill = 0
        self._finished = False

    # -- streaming -------------------------------------------------------------------------

    def update(self, rows: np.ndarray) -> None:
        """Add rows.

        Parameters
        ----------
        rows : np.ndarray
            ``(n, *row_shape)``, any real float dtype (float32 usually); ``n`` may be 0.
        """
        if self._finished:
            raise RuntimeError("BinStats.update() after finish()")
        x = np.asarray(rows)
        if x.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {x.shape[1:]} given to BinStats of row shape "
                             f"{self.row_shape}")
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"BinStats rows must be floating point, not {x.dtype}")
        x = x.reshape(len(x), self._size)
        self._ensure_buffer(x.dtype)
        assert self._buf is not None
        start = 0
        while start < len(x):
            take = min(self.BLOCK_ROWS - self._fill, len(x) - start)
            self._buf[self._fill:self._fill + take] = x[start:start + take]
            self._fill += take
            start += take
            if self._fill == self.BLOCK_ROWS:
                self._flush()

    def _ensure_buffer(self, dtype: np.dtype) -> None:
        """Allocate the block buffer, or widen it to float64 when wider rows arrive."""
        want = np.float32 if np.dtype(dtype).itemsize <= 4 else np.float64
        if self._buf is None:
            self._buf = np.empty((self.BLOCK_ROWS, self._size), dtype=want)
        elif self._buf.dtype != np.float64 and want == np.float64:
            wide = np.empty(self._buf.shape, dtype=np.float64)
            wide[:self._fill] = self._buf[:self._fill]  # exact widening of the buffered rows
            self._buf = wide

    def _flush(self) -> None:
        """Fold the buffered rows (a full block, or the last partial one) into the totals."""
        n = self._fill
        if n == 0 or self._buf is None:
            return
        block = self._buf[:n]
        mean_b = np.empty(self._size, dtype=np.float64)
        m2_b = np.empty(self._size, dtype=np.float64)
        for c in range(0, self._size, _COLUMNS):
            cols = block[:, c:c + _COLUMNS].astype(np.float64)
            mu = cols.sum(axis=0) / n
            cols -= mu
            np.square(cols, out=cols)  # elementwise, then a plain sum: no order-dependent FMA
            mean_b[c:c + _COLUMNS] = mu
            m2_b[c:c + _COLUMNS] = cols.sum(axis=0)
        _fold(self.count, self.mean, self.m2, np.full(self.row_shape, n, dtype=np.int64),
              mean_b.reshape(self.row_shape), m2_b.reshape(self.row_shape))
        self._fill = 0

    def finish(self) -> BinStats:
        """Fold the partial block in and free the buffer; idempotent. Returns ``self``."""
        if not self._finished:
            self._flush()
            self._buf = None
            self._finished = True
        return self

    # -- combining -------------------------------------------------------------------------

    def merge(self, other: BinStats) -> BinStats:
        """Fold ``other``'s statistics into these (Chan's parallel combination), in place.

        Both are finished first (:meth:`finish`). Merging with an empty ``BinStats`` leaves
        the other side unchanged, bit for bit. Returns ``self``.
        """
        if other.row_shape != self.row_shape:
            raise ValueError(f"cannot merge BinStats of row shapes {self.row_shape} and "
                             f"{other.row_shape}")
        self.finish()
        other.finish()
        _fold(self.count, self.mean, self.m2, other.count, other.mean, other.m2)
        return self

    @classmethod
    def combine(cls, parts: Iterable[BinStats]) -> BinStats:
        """A new ``BinStats``: the parts merged in the given order (the parts are finished,
        not otherwise changed). At least one part is needed (it gives the row shape)."""
        result: BinStats | None = None
        for part in parts:
            if result is None:
                result = cls(part.row_shape).finish()
            result.merge(part)
        if result is None:
            raise ValueError("BinStats.combine() needs at least one part")
        return result

    # -- results ---------------------------------------------------------------------------

    @property
    def var(self) -> np.ndarray:
        """Variance (ddof=0), float64, ``row_shape``; NaN where count is 0."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.m2 / np.maximum(self.count, 1), np.nan)

    @property
    def std(self) -> np.ndarray:
        """Standard deviation (ddof=0), float64, ``row_shape``; NaN where count is 0."""
        return np.sqrt(self.var)

    def __repr__(self) -> str:
        total = int(self.count.max()) if self.count.size else 0
        return f"BinStats(row_shape={self.row_shape}, rows={total})"

    # -- HDF5 ------------------------------------------------------------------------------

    def write(self, group: h5py.Group, name: str = "stats") -> None:
        """Store the (finished) statistics as ``group[name]``, replacing an existing one.

        Datasets ``count`` (int64), ``mean``, ``var``, ``m2`` (float64); attributes
        ``ddof = 0`` and ``method = "chan"``.
        """
        self.finish()
        if name in group:
            del group[name]
        g = group.create_group(name)
        g.create_dataset("count", data=self.count)
        g.create_dataset("mean", data=self.mean)
        g.create_dataset("var", data=self.var)
        g.create_dataset("m2", data=self.m2)
        g.attrs["ddof"] = 0
        g.attrs["method"] = "chan"

    @classmethod
    def read(cls, group: h5py.Group, name: str = "stats") -> BinStats | None:
        """The statistics stored by :meth:`write` (finished), or None when absent."""
        if name not in group:
            return None
        g = group[name]
        mean = np.asarray(g["mean"][()], dtype=np.float64)
        stats = cls(mean.shape)
        stats.count[...] = g["count"][()]
        stats.mean[...] = mean
        if "m2" in g:
            stats.m2[...] = g["m2"][()]
        else:
            var = np.asarray(g["var"][()], dtype=np.float64)
            stats.m2[...] = np.where(stats.count > 0, var * stats.count, 0.0)
        return stats.finish()
