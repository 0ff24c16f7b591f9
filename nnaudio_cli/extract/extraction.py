"""Computing one run's batches: :class:`Extraction` drives them through the stages.

Every input is decoded once (:mod:`~nnaudio_cli.extract.decode`) and resampled once per
distinct rate of the features; each feature (:class:`~nnaudio_cli.extract.lanes.Lane`)
frames, packs and computes the batch on its own; the clips go to the part being written
(:mod:`~nnaudio_cli.extract.clips`), and every batch is committed as one part
(:mod:`~nnaudio_cli.extract.parts`). Long inputs are streamed block by block.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnaudio_cli.extract import audio, reasons, resample
from nnaudio_cli.extract.batch import Batch, ClipFramer, Packed, Piece, WholeClip, pack
from nnaudio_cli.extract.clips import ClipSet, LaneClips
from nnaudio_cli.extract.compute import Engine
from nnaudio_cli.extract.decode import DecodeSettings, Job
from nnaudio_cli.extract.discover import Header
from nnaudio_cli.extract.lanes import Lane, lane_framer
from nnaudio_cli.extract.listing import Input
from nnaudio_cli.extract.options import ExtractOptions
from nnaudio_cli.extract.parts import PartStore
from nnaudio_cli.extract.summary import Summary
from nnaudio_cli.featurefile.encoding import StorageError
from nnaudio_cli.plumbing import interrupts
from nnaudio_cli.plumbing.outputs import OutputError
from nnaudio_cli.plumbing.progress import Reporter


def _threaded(it_factory: Callable[[], Iterator[Any]], depth: int = 2) -> Iterator[Any]:
    """Run a generator in a background thread, handing items over through a bounded queue."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def run() -> None:
        try:
            for item in it_factory():
                q.put(item)
            q.put(done)
        except BaseException as e:  # noqa: BLE001 - forwarded to the consumer
            q.put(e)

    threading.Thread(target=run, daemon=True).start()
    while True:
        try:  # bounded waits: a signal is acted on even if the reader is stuck in I/O
            item = q.get(timeout=0.2)
        except queue.Empty:
            interrupts.check()
            continue
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


@dataclass
class _Item:
    """One input of a batch on its way through compute: failed, or its pieces per lane."""

    clip: int
    info: audio.SourceInfo | None
    reason: str = ""
    pieces: list[list[Piece]] = field(default_factory=list)


@dataclass
class _LaneBatch:
    """One lane's share of a submitted batch."""

    packed: list[Packed]
    handles: list[Any]
    whole: bool

    def outputs(self, engine: Engine) -> list[np.ndarray]:
        """Per-piece features (channels, frames, *computed_row_shape), in piece order."""
        out: list[np.ndarray] = []
        for packed, handle in zip(self.packed, self.handles, strict=True):
            if handle is None:  # nothing to compute (pieces without frames)
                out += [np.zeros((p.samples.shape[0], 0) + engine.computed_row_shape,
                                 np.float32) for p in packed.pieces]
            elif self.whole:
                out.append(handle.result())
            else:
                out += packed.unpack(handle.result())
        return out


@dataclass
class _Submitted:
    """A batch whose transforms were started (one :class:`_LaneBatch` per lane)."""

    items: list[_Item]
    lanes: list[_LaneBatch]


class Extraction:
    """One run's stages wired together: decoder, framing, device, clip writers, parts.

    Every input is decoded once and resampled once per distinct rate of the features; each
    feature (:class:`Lane`) frames, packs and computes the batch on its own. Batches are
    computed in plan order with one batch in flight: batch *i + 1* is decoded, packed and
    submitted before the outputs of batch *i* are stored, so on a GPU the host-side work
    overlaps the device. Every batch is committed as one part.
    """

    def __init__(self, opts: ExtractOptions, lanes: list[Lane], inputs: list[Input],
                 headers: list[Header], store: PartStore, decoder: Any, reporter: Reporter,
                 summary: Summary, batch_samples: int) -> None:
        self.opts = opts
        self.lanes = lanes
        self.inputs = inputs
        self.keys = [inp.key for inp in inputs]
        self.headers = headers
        self.store = store
        self.decoder = decoder
        self.reporter = reporter
        self.summary = summary
        self.clips = ClipSet([LaneClips(ln.name, store, ln.finisher, ln.engine.dropped_frames)
                              for ln in lanes], store)
        self.batch_samples = batch_samples
        self.rates = resample.rates_of([ln.engine.sr for ln in lanes])
        self.settings = DecodeSettings(self.rates, opts.mono, opts.nan_policy)

    def _named(self, lane: Lane, why: str) -> str:
        return f"{lane.name}: {why}" if len(self.lanes) > 1 else why

    # -- driving ----------------------------------------------------------------------
    def run(self, batches: list[Batch]) -> None:
        """Compute and commit ``batches`` (each restricted to the inputs still to do)."""
        jobs = [self._job(i) for b in batches if not b.streamed for i in b.clips]
        budget = min(max(2 * 4 * self.batch_samples, 64 << 20), 512 << 20)  # ~2 batches
        results = self.decoder.decode(jobs, self.settings, budget=budget)
        pending: _Submitted | None = None
        for batch in batches:
            interrupts.check()
            if batch.streamed:
                self._store(pending)
                pending = None
                self._stream(batch.clips[0])
                continue
            items = [self._item(*next(results)) for _ in batch.clips]
            submitted = self._submit(items)
            self._store(pending)
            pending = submitted
        self._store(pending)

    def _job(self, i: int) -> Job:
        h = self.headers[i]
        channels = 1 if self.opts.mono else max(h.channels, 1)
        n = sum(resample.resampled_length(h.samples, h.sr or r, r) for r in self.rates)
        inp = self.inputs[i]
        return Job(i, inp.path, inp.key, 4 * n * channels, inp.span)

    def _item(self, job: Job, res: audio.DecodeResult) -> _Item:
        item = _Item(job.clip, res.info)
        if res.status != "ok" or res.audio is None:
            item.reason = res.reason or "could not be decoded"
            return item
        for lane in self.lanes:
            x = res.resampled[lane.engine.sr]
            why = lane.engine.check_length(x.shape[1])
            if why:
                item.reason = self._named(lane, why)
                item.pieces = []
                return item
            item.pieces.append(self._pieces(lane, job.clip, x, True, None))
        return item

    def _pieces(self, lane: Lane, clip: int, x: np.ndarray, last: bool,
                framer: ClipFramer | WholeClip | None) -> list[Piece]:
        eng = lane.engine
        if eng.mode != "frames" and framer is None:
            return [Piece(clip, x, 0, True)]
        if framer is None:
            framer = lane_framer(lane)
        cut = framer.push(x, last)
        if last and not cut:  # nothing left to compute: close the clip explicitly
            cut = [(x[:, :0], 0)]
        return [Piece(clip, s, k, last and j == len(cut) - 1) for j, (s, k) in enumerate(cut)]

    # -- compute ------------------------------------------------------------------------
    def _submit(self, items: list[_Item]) -> _Submitted:
        t0 = time.perf_counter()
        out = []
        for li, lane in enumerate(self.lanes):
            eng = lane.engine
            pieces = [p for it in items if it.pieces for p in it.pieces[li]]
            if eng.mode == "frames":
                packs = [pack(pieces, eng.n_fft, eng.hop)] if pieces else []
                handles = [lane.runner.submit(p.chunks) if p.chunks.shape[0] else None
                           for p in packs]
            else:  # whole clips, one call each
                packs = [Packed(p.samples, 0, [p], [p.samples.shape[0]]) for p in pieces]
                handles = [lane.runner.submit(p.samples, whole=True) for p in pieces]
            out.append(_LaneBatch(packs, handles, whole=eng.mode != "frames"))
        self.summary.compute_seconds += time.perf_counter() - t0
        self.summary.batches += 1
        return _Submitted(items, out)

    def _outputs(self, sub: _Submitted) -> list[Iterator[np.ndarray]]:
        t0 = time.perf_counter()
        outs = [iter(lb.outputs(lane.engine))
                for lb, lane in zip(sub.lanes, self.lanes, strict=True)]
        self.summary.compute_seconds += time.perf_counter() - t0
        return outs

    def _put(self, item: _Item, outs: list[Iterator[np.ndarray]]) -> None:
        for li, pieces in enumerate(item.pieces):
            for piece in pieces:
                self.clips.put(item.clip, li, piece, next(outs[li]))

    def _store(self, sub: _Submitted | None) -> None:
        """Wait for a submitted batch, store its clips in order and commit the part."""
        if sub is None:
            return
        outs = self._outputs(sub)
        for item in sub.items:
            key = self.keys[item.clip]
            if not item.pieces:
                self.clips.fail(key, item.info, item.reason)
                self.reporter.advance(0.0, failed=True)
                continue
            self._put(item, outs)
            status = self.clips.close(item.clip, key, item.info)
            self.reporter.advance(float(item.info.duration) if status == "ok" else 0.0,
                                  failed=status != "ok")
        self.store.commit()

    def _stream(self, i: int) -> None:
        """A long input: decode block by block, compute segment by segment, one part."""
        key, path = self.keys[i], self.inputs[i].path
        probe = audio.decode_task(path, key, self.rates, self.opts.mono, 0,
                                  self.opts.nan_policy, self.inputs[i].span)  # header only
        info = probe.info
        if probe.status == "failed":
            self.clips.fail(key, info, probe.reason)
            self.reporter.advance(0.0, failed=True)
            self.store.commit()
            return
        self.summary.streamed += 1
        framers = [lane_framer(lane) for lane in self.lanes]
        pending: _Submitted | None = None
        start, stop = probe.extra.get("span", (0, None))
        try:
            blocks = _threaded(lambda: audio.stream_rates(
                path, info, self.rates, self.opts.mono, nan_policy=self.opts.nan_policy,
                start=start, stop=stop))
            for x, last in blocks:
                interrupts.check()
                item = _Item(i, None, pieces=[
                    self._pieces(lane, i, x[lane.engine.sr], last, framer)
                    for lane, framer in zip(self.lanes, framers, strict=True)])
                submitted = self._submit([item])
                if pending is not None:
                    self._put(pending.items[0], self._outputs(pending))
                pending = submitted
            if pending is not None:
                self._put(pending.items[0], self._outputs(pending))
            status = self.clips.close(i, key, info)  # the stream has ended: final length
        except (OutputError, StorageError):
            raise
        except Exception as e:  # noqa: BLE001 - a broken file is a failed row
            self.clips.abort(i)
            self.clips.fail(key, info, reasons.failure_reason(e))
            status = "failed"
        self.reporter.advance(info.duration if status == "ok" else 0.0, failed=status != "ok")
        self.store.commit()
