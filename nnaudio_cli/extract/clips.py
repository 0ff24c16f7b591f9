"""Stage 5a, clips: from per-piece features to stored clips in the part being written.

Every feature of the pass (a *lane*) has a :class:`LaneClips` that receives its pieces'
features in clip order and appends them to the current part
(:class:`~nnaudio_cli.extract.parts.PartStore`) under the feature's name. :class:`ClipSet`
ties the lanes of one input together: it remembers where the input's rows start in every
feature, and when every lane has its last piece (:meth:`ClipSet.close`) it adds the one
index row, or rolls every feature back and records a failed row. Frames are stored
time-major; with several stored channels a frame's channels are consecutive rows
(``(frames, channels, bins)`` flattened).

Some values depend on the whole clip (a :class:`Finisher`): MFCC's ``top_db`` floor (then the
DCT), and the ``top_db`` floor of ``--db``. A clip in one piece is finished at once; the
values of a clip in several pieces (a long file) are spilled to an anonymous temporary file
and finished when its last piece has arrived, so memory stays bounded by the piece size.

Features that are not finite (NaN/Inf, e.g. from out-of-range float input) are never
stored: the clip's rows are rolled back in every feature and it becomes a failed row.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import IO, Protocol

import numpy as np
import torch

from nnaudio_cli.extract.audio import SourceInfo
from nnaudio_cli.extract.batch import Piece
from nnaudio_cli.extract.parts import PartStore
from nnaudio_cli.extract.rows import IndexRow
from nnaudio_cli.featurefile.encoding import Decibels
from nnaudio_core.features.whisper import whisper_scale

#: Reason given to a clip whose features came out NaN/Inf.
NONFINITE_REASON = "features contain NaN/Inf (input samples out of range?)"


class Finisher(Protocol):
    """Values of a piece as computed -> stored float32 values, with a clip-wide step.

    ``needs_peak``: whether :meth:`finish` needs the clip's peak (then a clip in several
    pieces is spilled until its last piece)."""

    needs_peak: bool

    def prepare(self, feats: np.ndarray) -> np.ndarray:
        """A piece's computed features ``(channels, frames, ...)`` -> values to keep."""
        ...

    def finish(self, values: np.ndarray, peak: np.ndarray | None) -> np.ndarray:
        """Kept values of the clip ``(channels, frames, ...)`` and its per-channel peak
        ``(channels,)`` -> stored float32 values ``(channels, frames, *row_shape)``."""
        ...


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
        self.needs_peak = top_db is not None

    def prepare(self, feats: np.ndarray) -> np.ndarray:
        return feats

    def finish(self, values: np.ndarray, peak: np.ndarray | None) -> np.ndarray:
        """MFCCs from mel decibels ``(channels, frames, n_mels)`` -> ``(channels, frames,
        n_mfcc)``, float32; ``peak``: the clip's maximum decibel value per channel."""
        t = torch.from_numpy(np.require(values, np.float32, ["C", "W"]))
        if self.top_db is not None and peak is not None:
            floor = torch.from_numpy(peak.astype(np.float32) - np.float32(self.top_db))
            t = torch.maximum(t, floor.reshape(-1, 1, 1))
        return torch.matmul(t, self.dct.T).numpy()


class WhisperFinisher:
    """Whisper's clip-wide step on log10 mel values: the floor ``dynamic_range`` below the
    clip's peak (per channel), then ``(x + 4) / 4``
    (:func:`nnaudio_core.features.whisper.whisper_scale`)."""

    def __init__(self, dynamic_range: float | None) -> None:
        self.dynamic_range = dynamic_range
        self.needs_peak = dynamic_range is not None

    def prepare(self, feats: np.ndarray) -> np.ndarray:
        return feats

    def finish(self, values: np.ndarray, peak: np.ndarray | None) -> np.ndarray:
        t = torch.from_numpy(np.require(values, np.float32, ["C", "W"]))
        p = None if peak is None else torch.from_numpy(peak.astype(np.float32))
        return whisper_scale(t, self.dynamic_range, p).numpy()


class DecibelFinisher:
    """``--db``: decibels of a magnitude or power feature, floored ``top_db`` below the
    clip's peak over all its channels (librosa's ``power_to_db`` on the clip's array)."""

    def __init__(self, db: Decibels) -> None:
        self.db = db
        self.needs_peak = db.top_db is not None

    def prepare(self, feats: np.ndarray) -> np.ndarray:
        return self.db.to_db(feats)

    def finish(self, values: np.ndarray, peak: np.ndarray | None) -> np.ndarray:
        if peak is None or not peak.size:
            return values
        return self.db.floor(values, float(np.max(peak)))


@dataclass
class _Clip:
    bad: bool = False
    done: bool = False
    frames: int = 0
    channels: int = 0
    peak: np.ndarray | None = None
    spill: IO[bytes] | None = None
    spilled: list[tuple[int, ...]] = field(default_factory=list)  # shapes of spilled values


class LaneClips:
    """One feature's pieces -> its rows in the part being written.

    Parameters
    ----------
    name : the feature (its group in the part)
    store : PartStore (its current part receives the rows)
    finisher : the clip-wide step, or None (values stored as computed)
    dropped_frames : frames the transform drops at each clip's end (cut from its last piece,
        before the clip-wide step sees them)
    """

    def __init__(self, name: str, store: PartStore, finisher: Finisher | None,
                 dropped_frames: int = 0) -> None:
        self.name = name
        self.store = store
        self.finisher = finisher
        self.dropped_frames = dropped_frames
        self.open: dict[int, _Clip] = {}

    def put(self, clip: int, piece: Piece, feats: np.ndarray) -> None:
        """Store one piece's features, shape (channels, frames, *computed_row_shape)."""
        if piece.last and self.dropped_frames:
            feats = feats[:, : max(0, feats.shape[1] - self.dropped_frames)]
        st = self.open.setdefault(clip, _Clip())
        st.channels = feats.shape[0]
        if not st.bad and not np.isfinite(feats).all():
            st.bad = True
        fin = self.finisher
        if st.bad:
            pass
        elif fin is None:
            self._append(feats)
        elif not fin.needs_peak:
            self._append(fin.finish(fin.prepare(feats), None))
        elif piece.last and st.spill is None and feats.shape[1]:
            values = fin.prepare(feats)
            self._append(fin.finish(values, _peak(values)))
        else:
            self._spill(st, fin.prepare(feats))
        st.frames += feats.shape[1]
        if piece.last:
            if st.spill is not None and not st.bad:
                self._unspill(st)
            st.done = True

    def result(self, clip: int) -> tuple[bool, int, int]:
        """``(finite, frames, channels)`` of a clip whose last piece was stored; forgets it."""
        st = self.open.pop(clip)
        if not st.done:
            raise RuntimeError(f"internal error: {self.name}: clip {clip} is not finished")
        return not st.bad, st.frames, st.channels

    def abort(self, clip: int) -> None:
        """Forget a clip (its rows are rolled back by :class:`ClipSet`)."""
        st = self.open.pop(clip, None)
        if st is not None and st.spill is not None:
            st.spill.close()

    def _append(self, values: np.ndarray) -> None:
        # (channels, frames, *row) -> (frames * channels, *row), channels fastest
        rows = np.moveaxis(values, 0, 1)
        self.store.append(self.name, rows.reshape((-1,) + rows.shape[2:]))

    def _spill(self, st: _Clip, values: np.ndarray) -> None:
        if values.shape[1] == 0:
            return
        if st.spill is None:
            st.spill = tempfile.TemporaryFile(prefix="nnaudio-clip-")
        peak = _peak(values)
        st.peak = peak if st.peak is None else np.maximum(st.peak, peak)
        st.spill.write(np.ascontiguousarray(values, dtype=np.float32).tobytes())
        st.spilled.append(values.shape)

    def _unspill(self, st: _Clip) -> None:
        assert self.finisher is not None and st.spill is not None and st.peak is not None
        st.spill.seek(0)
        for shape in st.spilled:
            count = int(np.prod(shape))
            values = np.frombuffer(st.spill.read(count * 4), dtype=np.float32, count=count)
            self._append(self.finisher.finish(values.reshape(shape), st.peak))
        st.spill.close()
        st.spill = None


def _peak(values: np.ndarray) -> np.ndarray:
    """Per-channel maximum of ``(channels, frames, ...)`` values."""
    return values.reshape(values.shape[0], -1).max(axis=1)


class ClipSet:
    """The lanes of one pass, and the index row of each input once all of them have it.

    Parameters
    ----------
    lanes : one :class:`LaneClips` per feature, in stored order
    store : PartStore
    """

    def __init__(self, lanes: list[LaneClips], store: PartStore) -> None:
        self.lanes = lanes
        self.store = store
        self.marks: dict[int, dict[str, int]] = {}  # clip -> rows before it, per feature

    def put(self, clip: int, lane: int, piece: Piece, feats: np.ndarray) -> None:
        """Store one piece of ``lane`` (see :meth:`LaneClips.put`)."""
        if clip not in self.marks:
            self.marks[clip] = self.store.marks()
        self.lanes[lane].put(clip, piece, feats)

    def close(self, clip: int, key: str, info: SourceInfo) -> str:
        """Every lane has stored its last piece of ``clip``: add the index row (``info``:
        its source, as decoded).

        Returns
        -------
        ``"ok"``, or ``"failed"`` (some feature was not finite: every feature's rows of the
        clip are rolled back and a failed row is added)
        """
        results = [lane.result(clip) for lane in self.lanes]
        marks = self.marks.pop(clip, None)
        bad = [lane.name for lane, r in zip(self.lanes, results, strict=True) if not r[0]]
        if bad:
            if marks is not None:
                self.store.rollback(marks)
            prefix = f"{', '.join(bad)}: " if len(self.lanes) > 1 else ""
            self.fail(key, info, prefix + NONFINITE_REASON)
            return "failed"
        channels = results[0][2]
        n_rows = {lane.name: frames * ch
                  for lane, (_, frames, ch) in zip(self.lanes, results, strict=True)}
        self.store.add_row(IndexRow.of(key, info, "ok", "", channels, n_rows))
        return "ok"

    def abort(self, clip: int) -> None:
        """Forget a clip whose input failed part-way: its stored rows are rolled back."""
        for lane in self.lanes:
            lane.abort(clip)
        marks = self.marks.pop(clip, None)
        if marks is not None:
            self.store.rollback(marks)

    def fail(self, key: str, info: SourceInfo, reason: str) -> None:
        """Record an input that produced no features (``info``: its source)."""
        self.store.add_row(IndexRow.of(key, info, "failed", reason))
