"""From per-piece features to stored clips: ordering, channels, MFCC's clip-wide floor.

:class:`ClipSink` receives the batcher's outputs (in clip order) and appends them to the
current part's :class:`~nnaudio_cli.store.FeatureWriter`. Frames are stored time-major; with
several stored channels a frame's channels are consecutive rows
(``(frames, channels, bins)`` flattened).

For MFCC with ``top_db`` the floor depends on the whole clip's peak: a clip in one piece is
finished at once; the mel decibels of a clip in several pieces (a long file) are spilled to
an anonymous temporary file and finished when its last piece has arrived, so memory stays
bounded by the piece size.

Features that are not finite (NaN/Inf, e.g. from out-of-range float input) are never
stored: the clip is rolled back and reported through ``on_failed``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from nnaudio_cli.batching import Piece
from nnaudio_cli.engine import Engine, MfccFinisher
from nnaudio_cli.store import FeatureWriter, OutputError

#: Reason given to a clip whose features came out NaN/Inf.
NONFINITE_REASON = "features contain NaN/Inf (input samples out of range?)"


@dataclass
class _ClipState:
    mark: int
    writer: FeatureWriter
    bad: bool = False
    frames: int = 0
    channels: int = 0
    peak: np.ndarray | None = None
    spill: IO[bytes] | None = None
    spilled: list[tuple[int, int]] = field(default_factory=list)  # (channels, frames) per piece


class ClipSink:
    """Writes piece outputs to the current writer and reports each finished clip.

    Parameters
    ----------
    engine : Engine
    get_writer : returns the writer a clip starting now goes to (the current part)
    on_done : ``on_done(clip, frames, stored_channels, n_rows)`` when a clip's last piece
        is stored; the caller then adds the clip's index row to the writer
    on_failed : ``on_failed(clip, reason)`` for a clip whose features were not finite
    """

    def __init__(
        self,
        engine: Engine,
        get_writer: Callable[[], FeatureWriter],
        on_done: Callable[[int, int, int, int], Any],
        on_failed: Callable[[int, str], Any],
    ) -> None:
        self.engine = engine
        self.get_writer = get_writer
        self.on_done = on_done
        self.on_failed = on_failed
        self.finisher = MfccFinisher(engine) if engine.is_mfcc else None
        self.state: dict[int, _ClipState] = {}

    @property
    def busy(self) -> bool:
        """True while a clip has some but not all of its rows written."""
        return bool(self.state)

    def __call__(self, piece: Piece, feats: np.ndarray) -> None:
        """Store one piece's features, shape (channels, frames, *row_shape)."""
        st = self.state.get(piece.clip)
        if st is None:
            w = self.get_writer()
            st = self.state[piece.clip] = _ClipState(mark=w.total_rows, writer=w)
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
        if piece.last:
            if st.spill is not None and not st.bad:
                self._unspill(st)
            if st.bad:
                self.abort(piece.clip)
                self.on_failed(piece.clip, NONFINITE_REASON)
                return
            del self.state[piece.clip]
            self.on_done(piece.clip, st.frames, st.channels, st.frames * st.channels)

    def abort(self, clip: int) -> None:
        """Forget a clip whose input failed part-way: its stored rows are rolled back."""
        st = self.state.pop(clip, None)
        if st is not None:
            st.writer.rollback(st.mark)
            if st.spill is not None:
                st.spill.close()

    def _append(self, st: _ClipState, feats: np.ndarray) -> None:
        # (channels, frames, *row) -> (frames * channels, *row), channels fastest
        rows = np.moveaxis(feats, 0, 1)
        try:
            st.writer.append(rows.reshape((-1,) + rows.shape[2:]))
        except (OSError, RuntimeError) as e:  # h5py: "Can't flush cache"
            raise OutputError(st.writer.path, e) from None

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
            self._append(st, self.finisher.finish(db.reshape(channels, frames, n_mels), st.peak))
        st.spill.close()
        st.spill = None
