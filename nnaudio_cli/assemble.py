"""From per-piece features to stored clips: ordering, channels, MFCC's clip-wide floor.

:class:`ClipSink` receives the batcher's outputs (in clip order) and appends them to the
:class:`~nnaudio_cli.store.FeatureWriter`. Frames are stored time-major; with several stored
channels a frame's channels are consecutive rows (``(frames, channels, bins)`` flattened).

For MFCC with ``top_db`` the floor depends on the whole clip's peak: a clip in one piece is
finished at once; the mel decibels of a clip in several pieces (a long file) are spilled to
an anonymous temporary file and finished when its last piece has arrived, so memory stays
bounded by the piece size.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from nnaudio_cli.batching import Piece
from nnaudio_cli.engine import Engine, MfccFinisher
from nnaudio_cli.store import FeatureWriter


@dataclass
class _ClipState:
    mark: int
    frames: int = 0
    channels: int = 0
    peak: np.ndarray | None = None
    spill: IO[bytes] | None = None
    spilled: list[tuple[int, int]] = field(default_factory=list)  # (channels, frames) per piece


class ClipSink:
    """Writes piece outputs to the writer and records each finished clip in the index.

    Parameters
    ----------
    engine : Engine
    writer : FeatureWriter
    on_done : called with the clip index when its last piece is stored
    """

    def __init__(
        self, engine: Engine, writer: FeatureWriter, on_done: Callable[[int, int], Any]
    ) -> None:
        self.engine = engine
        self.writer = writer
        self.on_done = on_done
        self.finisher = MfccFinisher(engine) if engine.is_mfcc else None
        self.state: dict[int, _ClipState] = {}

    def __call__(self, piece: Piece, feats: np.ndarray) -> None:
        """Store one piece's features, shape (channels, frames, *row_shape)."""
        st = self.state.get(piece.clip)
        if st is None:
            st = self.state[piece.clip] = _ClipState(mark=self.writer.total_rows)
        st.channels = feats.shape[0]
        if self.finisher is None:
            self._append(feats)
        elif piece.last and st.spill is None and feats.shape[1]:
            peak = feats.reshape(feats.shape[0], -1).max(axis=1)
            self._append(self.finisher.finish(feats, peak))
        else:
            self._spill(st, feats)
        st.frames += feats.shape[1]
        if piece.last:
            if st.spill is not None:
                self._unspill(st)
            del self.state[piece.clip]
            self.writer.set_row(
                piece.clip,
                status="ok",
                frames=st.frames,
                stored_channels=st.channels,
                n_rows=st.frames * st.channels,
            )
            self.on_done(piece.clip, st.frames)

    def abort(self, clip: int) -> None:
        """Forget a clip whose input failed part-way: its stored rows are rolled back."""
        st = self.state.pop(clip, None)
        if st is not None:
            self.writer.rollback(st.mark)
            if st.spill is not None:
                st.spill.close()

    def _append(self, feats: np.ndarray) -> None:
        # (channels, frames, *row) -> (frames * channels, *row), channels fastest
        rows = np.moveaxis(feats, 0, 1)
        self.writer.append(rows.reshape((-1,) + rows.shape[2:]))

    def _spill(self, st: _ClipState, db: np.ndarray) -> None:
        if db.shape[1] == 0:
            return
        if st.spill is None:
            st.spill = tempfile.TemporaryFile(prefix="nnaudio-mfcc-")
        peak = db.reshape(db.shape[0], -1).max(axis=1)
        st.peak = peak if st.peak is None else np.maximum(st.peak, peak)
        st.spill.write(np.ascontiguousarray(db, dtype=np.float32).tobytes())
        st.spilled.append((db.shape[0], db.shape[1]))

    def _unspill(self, st: _ClipState) -> None:
        assert self.finisher is not None and st.spill is not None and st.peak is not None
        n_mels = self.engine.computed_row_shape[0]
        st.spill.seek(0)
        for channels, frames in st.spilled:
            count = channels * frames * n_mels
            db = np.frombuffer(st.spill.read(count * 4), dtype=np.float32, count=count)
            self._append(self.finisher.finish(db.reshape(channels, frames, n_mels), st.peak))
        st.spill.close()
        st.spill = None
