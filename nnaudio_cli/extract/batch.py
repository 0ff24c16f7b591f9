"""Stage 3, batch: fixed batch boundaries, framing clips into pieces, packing pieces into
one tensor per batch and unpacking the result.

**Plan.** :func:`plan_batches` cuts the sorted input list into batches of at most
``batch_seconds`` of audio, from the durations in the file headers. The plan depends only on
the inputs and the settings (never on worker timing or on what an earlier, interrupted run
finished), so a batch holds the same clips in every run. A file longer than the segment
length is a batch of its own and is streamed in segments.

**Framing.** For frame-local transforms each frame ``t`` depends only on samples
``[t*hop, t*hop + n_fft)`` of the centre-padded signal. :class:`ClipFramer` pads a clip
exactly as the core does with ``center=True`` (reflect or zero padding of ``n_fft // 2``)
and cuts it, given whole or block by block, into *pieces*: stretches of the padded signal
holding whole frames, at most ``max_frames`` each. The frames of consecutive pieces
concatenate to the frames of the whole clip.

**Packing.** :func:`pack` turns every piece of a batch into *chunks* of ``K`` frames
(``n_fft + (K-1)*hop`` samples; the last chunk of a piece is zero-filled) stacked into one
``(rows, n_fft + (K-1)*hop)`` array, ``K`` chosen per batch to minimise the samples
computed. One transform call computes the whole batch (the ``center=False`` twin of the
transform, :mod:`nnaudio_cli.extract.compute`); :meth:`Packed.unpack` cuts its output back
into per-piece features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Upper bound on frames per chunk.
MAX_CHUNK_FRAMES = 4096


@dataclass(frozen=True)
class Batch:
    """A unit of computing and of committing: consecutive inputs in key order.

    Attributes
    ----------
    clips : indices of the inputs (into the sorted key list)
    streamed : one long input, decoded block by block and computed in segments
    """

    clips: tuple[int, ...]
    streamed: bool = False


def plan_batches(costs: Sequence[int], limit: int, long_limit: int) -> list[Batch]:
    """Cut inputs, in order, into batches of at most ``limit`` samples.

    Parameters
    ----------
    costs : samples each input will have at the target rate, times its stored channels
        (from its header; 0 when unknown)
    limit : samples per batch (``batch_seconds * sr``); an input larger than this but not
        larger than ``long_limit`` is a batch of its own
    long_limit : inputs with more samples than this are streamed (a batch of their own)

    Returns
    -------
    list of Batch, covering every input once, in order
    """
    out: list[Batch] = []
    cur: list[int] = []
    size = 0
    for i, cost in enumerate(costs):
        if cost > long_limit:
            if cur:
                out.append(Batch(tuple(cur)))
                cur, size = [], 0
            out.append(Batch((i,), streamed=True))
            continue
        if cur and size + cost > limit:
            out.append(Batch(tuple(cur)))
            cur, size = [], 0
        cur.append(i)
        size += cost
    if cur:
        out.append(Batch(tuple(cur)))
    return out


@dataclass
class Piece:
    """A frame-aligned part of one clip.

    Attributes
    ----------
    clip : index of the input
    samples : np.ndarray, shape (channels, n): padded samples (frame mode) or the raw clip
        (whole mode)
    frames : frames this piece produces (frame mode; 0 in whole mode)
    last : last piece of its clip
    """

    clip: int
    samples: np.ndarray
    frames: int
    last: bool


def pad_start(x: np.ndarray, pad: int, mode: str) -> np.ndarray:
    """Left padding of ``x`` (channels, samples) as ``torch.nn.functional.pad`` does it."""
    if pad == 0:
        return x[:, :0]
    if mode == "reflect":
        return x[:, 1 : pad + 1][:, ::-1]
    return np.zeros((x.shape[0], pad), dtype=x.dtype)


def pad_end(tail: np.ndarray, pad: int, mode: str) -> np.ndarray:
    """Right padding from the last ``pad + 1`` samples ``tail`` (channels, pad + 1)."""
    if pad == 0:
        return tail[:, :0]
    if mode == "reflect":
        return tail[:, -pad - 1 : -1][:, ::-1]
    return np.zeros((tail.shape[0], pad), dtype=tail.dtype)


class ClipFramer:
    """Turns one clip, given whole or as consecutive blocks, into frame-aligned pieces.

    Each piece is ``(samples, k)`` with ``samples`` of shape (channels, n_fft + (k-1)*hop):
    a stretch of the centre-padded signal holding exactly ``k`` whole frames.

    Parameters
    ----------
    n_fft, hop, pad : frame geometry in samples (``pad`` on each side of the clip)
    pad_mode : ``"reflect"`` or ``"constant"``
    max_frames : most frames per piece (bounds memory for long files)
    """

    def __init__(self, n_fft: int, hop: int, pad: int, pad_mode: str, max_frames: int) -> None:
        self.n_fft, self.hop, self.pad, self.mode = n_fft, hop, pad, pad_mode
        self.max_frames = max(1, int(max_frames))
        self.buf: np.ndarray | None = None  # padded samples from the next frame's start
        self.head: list[np.ndarray] = []  # raw samples before the start padding is known
        self.tail: np.ndarray | None = None  # last pad + 1 raw samples
        self.raw = 0

    def push(self, x: np.ndarray, last: bool) -> list[tuple[np.ndarray, int]]:
        """Add the next block (channels, n) of the clip; return the pieces now complete."""
        self.raw += x.shape[1]
        keep = self.pad + 1
        self.tail = x[:, -keep:] if self.tail is None else np.concatenate(
            [self.tail, x], axis=1
        )[:, -keep:]
        if self.buf is None:
            self.head.append(x)
            if self.raw < keep and not last:
                return []
            raw = np.concatenate(self.head, axis=1) if len(self.head) > 1 else self.head[0]
            self.head = []
            if last:  # the whole clip at once: both ends as the core pads them, which for a
                # clip shorter than the pad means numpy's repeated reflection
                mode = "reflect" if self.mode == "reflect" else "constant"
                self.buf = np.pad(raw, ((0, 0), (self.pad, self.pad)), mode=mode)
                return self._emit(True)
            self.buf = np.concatenate([pad_start(raw, self.pad, self.mode), raw], axis=1)
        else:
            self.buf = np.concatenate([self.buf, x], axis=1)
        if last:
            self.buf = np.concatenate([self.buf, pad_end(self.tail, self.pad, self.mode)], axis=1)
        return self._emit(last)

    def _emit(self, last: bool) -> list[tuple[np.ndarray, int]]:
        assert self.buf is not None
        out = []
        while True:
            n = self.buf.shape[1]
            avail = 0 if n < self.n_fft else 1 + (n - self.n_fft) // self.hop
            if avail == 0 or (not last and avail < self.max_frames):
                break
            k = min(avail, self.max_frames)
            out.append((np.ascontiguousarray(self.buf[:, : self.n_fft + (k - 1) * self.hop]), k))
            self.buf = self.buf[:, k * self.hop :]
        if last:
            self.buf = None
        return out


class WholeClip:
    """The whole-clip counterpart of :class:`ClipFramer` for a streamed input: keeps its
    blocks (at most ``cap`` samples, the most the transform reads: a transform that pads or
    cuts every clip to one length) and gives the clip as one piece with its last block."""

    def __init__(self, cap: int | None) -> None:
        self.cap = cap
        self.blocks: list[np.ndarray] = []
        self.kept = 0

    def push(self, x: np.ndarray, last: bool) -> list[tuple[np.ndarray, int]]:
        """Add the next block (channels, n); the whole clip once ``last``."""
        room = x.shape[1] if self.cap is None else max(0, self.cap - self.kept)
        if room:
            self.blocks.append(x[:, :room])
            self.kept += min(room, x.shape[1])
        if not last:
            return []
        whole = np.concatenate(self.blocks, axis=1) if self.blocks else x[:, :0]
        self.blocks, self.kept = [], 0
        return [(np.ascontiguousarray(whole), 0)]


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


@dataclass
class Packed:
    """The pieces of one batch as one array of chunks.

    Attributes
    ----------
    chunks : np.ndarray, shape (rows, n_fft + (K-1)*hop), float32
    k : frames per chunk
    pieces : the pieces, in order
    rows : chunk rows of each piece (``channels * ceil(frames / K)``)
    """

    chunks: np.ndarray
    k: int
    pieces: list[Piece]
    rows: list[int]

    def unpack(self, out: np.ndarray) -> list[np.ndarray]:
        """Per-piece features from the time-major output of the whole batch.

        Parameters
        ----------
        out : np.ndarray, shape (rows, K, *row_shape)

        Returns
        -------
        list of np.ndarray, one per piece, shape (channels, frames, *row_shape)
        """
        res = []
        r0 = 0
        for p, n in zip(self.pieces, self.rows, strict=True):
            ch = p.samples.shape[0]
            block = out[r0 : r0 + n]
            r0 += n
            block = block.reshape((ch, (n // ch) * self.k) + block.shape[2:])[:, : p.frames]
            res.append(np.ascontiguousarray(block))
        return res


def pack(pieces: list[Piece], n_fft: int, hop: int) -> Packed:
    """Cut frame-mode pieces into chunks of one common size ``K`` (see module docstring).

    Parameters
    ----------
    pieces : frame-aligned pieces (``samples`` of shape (channels, n_fft + (frames-1)*hop))
    n_fft, hop : frame geometry in samples

    Returns
    -------
    Packed (``chunks`` has 0 rows when no piece has frames)
    """
    per_row = [p.frames for p in pieces for _ in range(p.samples.shape[0])]
    frames = np.asarray(per_row or [1], dtype=np.int64)
    k = choose_chunk_frames(frames, (n_fft - hop) / hop, MAX_CHUNK_FRAMES)
    width = n_fft + (k - 1) * hop
    step = k * hop
    rows = [p.samples.shape[0] * (-(-p.frames // k)) for p in pieces]
    chunks = np.zeros((sum(rows), width), dtype=np.float32)
    r0 = 0
    for p, n_rows in zip(pieces, rows, strict=True):
        ch = p.samples.shape[0]
        n = n_rows // ch if ch else 0
        for c in range(ch):
            sig = p.samples[c]
            base = r0 + c * n
            full = max(0, min(n, (sig.shape[0] - width) // step + 1))
            if full:
                view = np.lib.stride_tricks.sliding_window_view(sig, width)[::step][:full]
                chunks[base : base + full] = view
            for j in range(full, n):
                seg = sig[j * step : j * step + width]
                chunks[base + j, : seg.shape[0]] = seg
        r0 += n_rows
    return Packed(chunks, k, pieces, rows)
