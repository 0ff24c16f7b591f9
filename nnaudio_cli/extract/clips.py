"""Stage 5a, clips: from per-piece features to stored clips in the part being written.

:class:`ClipWriter` receives each piece's features in clip order and appends them to the
current part (:class:`~nnaudio_cli.extract.parts.PartStore`); when a clip's last piece is
stored it adds the clip's index row. Frames are stored time-major; with several stored
channels a frame's channels are consecutive rows (``(frames, channels, bins)`` flattened).

For MFCC with ``top_db`` the floor depends on the whole clip's peak (:class:`MfccFinisher`):
a clip in one piece is finished at once; the mel decibels of a clip in several pieces (a long
file) are spilled to an anonymous temporary file and finished when its last piece has
arrived, so memory stays bounded by the piece size.

Features that are not finite (NaN/Inf, e.g. from out-of-range float input) are never
stored: the clip's rows are rolled back and it becomes a failed row.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import torch

from nnaudio_cli.extract.batch import Piece
from nnaudio_cli.extract.compute import Engine
from nnaudio_cli.extract.parts import PartStore
from nnaudio_cli.store import FeatureWriter, OutputError

#: Reason given to a clip whose features came out NaN/Inf.
NONFINITE_REASON = "features contain NaN/Inf (input samples out of range?)"


class MfccFinisher:
    """Clip-wide ``top_db`` floor and DCT, applied to mel decibels of a finished clip.

    Parameters
    ----------
    dct : Tensor (n_mfcc, n_mels), the transform's DCT matrix
    top_db : float or None
    """

    def __init__(self, dct: torch.Tensor, top_db: float | None) -> None:
        self.dct = dct
        self.top_db = top_db

    def finish(self, db: np.ndarray, peak: np.ndarray) -> np.ndarray:
        """MFCCs from mel decibels.

        Parameters
        ----------
        db : np.ndarray, shape (channels, frames, n_mels)
        peak : np.ndarray, shape (channels,), the clip's maximum decibel value per channel

        Returns
        -------
        np.ndarray, shape (channels, frames, n_mfcc), float32
        """
        t = torch.from_numpy(np.require(db, np.float32, ["C", "W"]))
        if self.top_db is not None:
            floor = torch.from_numpy(peak.astype(np.float32) - np.float32(self.top_db))
            t = torch.maximum(t, floor.reshape(-1, 1, 1))
        return torch.matmul(t, self.dct.T).numpy()


@dataclass
class _Clip:
    key: str
    meta: dict[str, Any]
    mark: int
    writer: FeatureWriter
    bad: bool = False
    frames: int = 0
    channels: int = 0
    peak: np.ndarray | None = None
    spill: IO[bytes] | None = None
    spilled: list[tuple[int, int]] = field(default_factory=list)  # (channels, frames)


class ClipWriter:
    """Stores finished clips and failed inputs in the part being written.

    Parameters
    ----------
    engine : Engine
    store : PartStore (its current part receives the rows)
    """

    def __init__(self, engine: Engine, store: PartStore) -> None:
        self.engine = engine
        self.store = store
        self.finisher = MfccFinisher(engine.dct, engine.top_db) if engine.is_mfcc else None
        self.open: dict[int, _Clip] = {}

    @property
    def busy(self) -> bool:
        """True while a clip has some but not all of its rows written."""
        return bool(self.open)

    def fail(self, key: str, meta: dict[str, Any], reason: str) -> None:
        """Record an input that produced no features."""
        self.store.add_row(key, dict(meta, status="failed", reason=reason, n_rows=0))

    def put(self, key: str, meta: dict[str, Any], piece: Piece, feats: np.ndarray) -> str | None:
        """Store one piece's features, shape (channels, frames, *computed_row_shape).

        Returns
        -------
        None while the clip is unfinished, else ``"ok"`` or ``"failed"`` (not finite)
        """
        st = self.open.get(piece.clip)
        if st is None:
            w = self.store.writer()
            st = self.open[piece.clip] = _Clip(key, meta, mark=w.total_rows, writer=w)
        st.channels = feats.shape[0]
        if not st.bad and not np.isfinite(feats).all():
            st.bad = True
        if st.bad:
            pass
        elif self.finisher is None:
            self._append(st, feats)
        elif piece.last and st.spill is None and feats.shape[1]:
            peak = feats.reshape(feats.shape[0], -1).max(axis=1)
            self._append(st, self.finisher.finish(feats, peak))
        else:
            self._spill(st, feats)
        st.frames += feats.shape[1]
        if not piece.last:
            return None
        if st.spill is not None and not st.bad:
            self._unspill(st)
        if st.bad:
            self.abort(piece.clip)
            self.fail(key, meta, NONFINITE_REASON)
            return "failed"
        del self.open[piece.clip]
        self.store.add_row(key, dict(meta, status="ok", reason="", frames=st.frames,
                                     stored_channels=st.channels,
                                     n_rows=st.frames * st.channels))
        return "ok"

    def abort(self, clip: int) -> None:
        """Forget a clip whose input failed part-way: its stored rows are rolled back."""
        st = self.open.pop(clip, None)
        if st is not None:
            st.writer.rollback(st.mark)
            if st.spill is not None:
                st.spill.close()

    def _append(self, st: _Clip, feats: np.ndarray) -> None:
        # (channels, frames, *row) -> (frames * channels, *row), channels fastest
        rows = np.moveaxis(feats, 0, 1)
        try:
            st.writer.append(rows.reshape((-1,) + rows.shape[2:]))
        except (OSError, RuntimeError) as e:  # h5py: "Can't flush cache"
            raise OutputError(st.writer.path, e) from None

    def _spill(self, st: _Clip, db: np.ndarray) -> None:
        if db.shape[1] == 0:
            return
        if st.spill is None:
            st.spill = tempfile.TemporaryFile(prefix="nnaudio-mfcc-")
        peak = db.reshape(db.shape[0], -1).max(axis=1)
        st.peak = peak if st.peak is None else np.maximum(st.peak, peak)
        st.spill.write(np.ascontiguousarray(db, dtype=np.float32).tobytes())
        st.spilled.append((db.shape[0], db.shape[1]))

    def _unspill(self, st: _Clip) -> None:
        assert self.finisher is not None and st.spill is not None and st.peak is not None
        n_mels = self.engine.computed_row_shape[0]
        st.spill.seek(0)
        for channels, frames in st.spilled:
            count = channels * frames * n_mels
            db = np.frombuffer(st.spill.read(count * 4), dtype=np.float32, count=count)
            self._append(st, self.finisher.finish(db.reshape(channels, frames, n_mels), st.peak))
        st.spill.close()
        st.spill = None
