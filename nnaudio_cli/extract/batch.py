"""Duration-based batching: pieces of clips are grouped by total audio seconds per batch.

In frame mode every piece is cut into chunks of ``K`` frames (the last chunk of a piece is
zero-filled) and its chunks form one ``(channels * n_chunks, n_fft + (K-1)*hop)`` tensor;
``K`` is chosen per piece to minimise the computed samples, so padding costs at most one
partial chunk per piece. In whole mode (transforms that are not frame-local) each clip is
run as it is: no padding at all.

Each piece is computed **on its own** (one transform call per piece): batched matrix
products give different float32 round-off for different batch shapes (measured for every
transform here, the CQT family even at a fixed shape), and ``--resume`` changes which clips
share a batch. Computing pieces separately makes every clip's features depend only on the
clip (and ``--segment-seconds`` for long files), so a resumed run is bit-identical to a
clean one. A batch is still the unit of scheduling and of committing a part file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nnaudio_cli.engine import Engine

#: Upper bound on frames per chunk.
MAX_CHUNK_FRAMES = 4096


@dataclass
class Piece:
    """A frame-aligned part of one clip.

    Attributes
    ----------
    clip : int
        Index of the clip (row in the index).
    samples : np.ndarray, shape (channels, n)
        Padded samples (frame mode) or the raw clip (whole mode).
    frames : int
        Frames this piece produces (frame mode; 0 in whole mode).
    last : bool
        Last piece of its clip.
    """

    clip: int
    samples: np.ndarray
    frames: int
    last: bool


def choose_chunk_frames(frames: np.ndarray, overlap: float, cap: int) -> int:
    """Frames per chunk minimising ``sum(ceil(f / K) * (K + overlap))`` over pieces.

    Parameters
    ----------
    frames : frame counts of the pieces (one entry per channel row)
    overlap : ``(n_fft - hop) / hop``, the extra cost of a chunk in frame units
    cap : largest K allowed
    """
    top = int(min(max(int(frames.max()), 1), cap))
    cands = {1 << i for i in range(int(np.log2(top)) + 1)} | {top}
    uniq = np.unique(np.minimum(frames, top))
    if uniq.size > 48:
        uniq = uniq[np.linspace(0, uniq.size - 1, 48).astype(int)]
    cands |= {int(u) for u in uniq}
    k = np.array(sorted(cands), dtype=np.float64)
    cost = (np.ceil(frames[:, None] / k[None, :]) * (k[None, :] + overlap)).sum(axis=0)
    return int(k[int(np.argmin(cost))])


class Batcher:
    """Collects pieces until a batch holds ``batch_seconds`` of audio, then runs it.

    Parameters
    ----------
    engine : Engine
    batch_seconds : audio seconds (summed over stored channels) per batch
    on_output : called as ``on_output(piece, features)`` for every piece, in the order the
        pieces were added; ``features`` has shape (channels, frames, *row_shape)
    after_flush : called after the outputs of each batch were handed over
    """

    def __init__(
        self,
        engine: Engine,
        batch_seconds: float,
        on_output: Callable[[Piece, np.ndarray], Any],
        after_flush: Callable[[], Any] | None = None,
    ) -> None:
        self.engine = engine
        self.after_flush = after_flush
        self.limit = float(batch_seconds) * float(engine.sr)
        self.on_output = on_output
        self.pending: list[Piece] = []
        self.pending_samples = 0
        self.batches = 0
        self.compute_seconds = 0.0

    def _size(self, piece: Piece) -> int:
        if self.engine.mode == "frames":
            return piece.frames * self.engine.hop * piece.samples.shape[0]
        return piece.samples.shape[1] * piece.samples.shape[0]

    def add(self, piece: Piece) -> None:
        """Queue a piece; runs the pending batch first if the piece would overflow it."""
        size = self._size(piece)
        if self.pending and self.pending_samples + size > self.limit:
            self.flush()
        self.pending.append(piece)
        self.pending_samples += size
        if self.pending_samples >= self.limit:
            self.flush()

    def flush(self) -> None:
        """Run every pending piece and hand the results to ``on_output`` in order."""
        if not self.pending:
            return
        pieces, self.pending, self.pending_samples = self.pending, [], 0
        t0 = time.perf_counter()
        if self.engine.mode == "frames":
            outs = self._run_frames(pieces)
        else:
            outs = self._run_whole(pieces)
        self.compute_seconds += time.perf_counter() - t0
        self.batches += 1
        for piece, out in zip(pieces, outs, strict=True):
            self.on_output(piece, out)
        if self.after_flush is not None:
            self.after_flush()

    def _run_frames(self, pieces: list[Piece]) -> list[np.ndarray]:
        return [self._run_piece(p) for p in pieces]

    def _run_piece(self, p: Piece) -> np.ndarray:
        """Features of one piece, computed on its own: the tensor shape and contents depend
        only on this piece, so the values do not depend on what else is in the batch."""
        eng = self.engine
        channels = p.samples.shape[0]
        frames = np.full(channels, p.frames, dtype=np.int64)
        k = choose_chunk_frames(frames, (eng.n_fft - eng.hop) / eng.hop, MAX_CHUNK_FRAMES)
        width = eng.n_fft + (k - 1) * eng.hop
        step = k * eng.hop
        n = int((p.frames + k - 1) // k)
        if n == 0:
            return np.zeros((channels, 0) + eng.computed_row_shape, dtype=np.float32)
        batch = np.zeros((channels * n, width), dtype=np.float32)
        for c in range(channels):
            sig = p.samples[c]
            full = max(0, min(n, (sig.shape[0] - width) // step + 1))
            if full:
                view = np.lib.stride_tricks.sliding_window_view(sig, width)[::step][:full]
                batch[c * n : c * n + full] = view
            for j in range(full, n):
                seg = sig[j * step : j * step + width]
                batch[c * n + j, : seg.shape[0]] = seg
        # (chunks, bins, K[, 2]) -> (chunks, K, bins[, 2]): time-major
        out = np.moveaxis(eng.run_chunks(torch.from_numpy(batch)).numpy(), 2, 1)
        out = out.reshape((channels, n * k) + out.shape[2:])[:, : p.frames]
        return np.ascontiguousarray(out)

    def _run_whole(self, pieces: list[Piece]) -> list[np.ndarray]:
        eng = self.engine
        return [
            np.moveaxis(eng.run_whole(torch.from_numpy(p.samples)).numpy(), 2, 1)
            for p in pieces
        ]
