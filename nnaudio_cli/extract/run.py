"""The wiring of the extract stages: :func:`run_extract` and the :class:`Extraction` that owns
one run's moving parts (see the package docstring for the data flow)."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import soundfile as sf
import soxr
import torch

import nnaudio_core
from nnaudio_cli.config import ExtractConfig, canonical_json
from nnaudio_cli.errors import CliError
from nnaudio_cli.extract import audio
from nnaudio_cli.extract.assemble import assemble
from nnaudio_cli.extract.batch import (
    Batch,
    ClipFramer,
    Packed,
    Piece,
    WholeClip,
    pack,
    plan_batches,
)
from nnaudio_cli.extract.clips import (
    ClipSet,
    DecibelFinisher,
    Finisher,
    LaneClips,
    MfccFinisher,
    WhisperFinisher,
)
from nnaudio_cli.extract.compute import DeviceRunner, Engine
from nnaudio_cli.extract.decode import (
    DecodeSettings,
    Job,
    cpu_count,
    default_workers,
    make_decoder,
)
from nnaudio_cli.extract.discover import (
    Header,
    read_headers,
)
from nnaudio_cli.extract.inputs import select_inputs
from nnaudio_cli.extract.listing import Input, InputList
from nnaudio_cli.extract.parts import PartStore, ResumeError, remove_parts
from nnaudio_cli.extract.shard import plan_hash, shard_batches
from nnaudio_cli.featurefile.encoding import Storage, StorageError, db_for
from nnaudio_cli.featurefile.writer import FeatureSpec
from nnaudio_cli.plumbing import interrupts, text
from nnaudio_cli.plumbing.outputs import OutputError, check_owned
from nnaudio_cli.plumbing.progress import Reporter
from nnaudio_cli.plumbing.text import stored_key
from nnaudio_core import ParameterError

#: Compression of the part files (the output gets ``--compression``).
PART_COMPRESSION = "none"
#: Times a part that fails verification before assembly is recomputed before giving up.
VERIFY_ROUNDS = 3


class ExtractError(CliError, RuntimeError):
    """A fatal problem that stops the extraction (exit code 1), one line."""


class Interrupted(Exception):
    """The run was interrupted (SIGINT/SIGTERM); ``kept`` of ``total`` inputs are committed.

    ``assembling`` is True when it happened while the output was being assembled (every
    input is then kept; ``--resume`` only assembles).
    """

    def __init__(self, kept: int, total: int, assembling: bool = False) -> None:
        super().__init__(f"interrupted; {kept} of {text.count(total, 'input')} kept")
        self.kept = kept
        self.total = total
        self.assembling = assembling


@dataclass
class ExtractOptions:
    """Everything ``nnaudio extract`` needs besides the configuration."""

    #: the folder searched (None with ``input_list``)
    input_dir: Path | None
    output: Path
    #: the features of the pass, in stored order (distinct ``name``s)
    features: list[ExtractConfig]
    device: torch.device
    mono: bool = True
    workers: int = 1
    batch_seconds: float = 60.0
    segment_seconds: float | None = None
    compression: str = "lzf"
    command_line: list[str] = field(default_factory=list)
    resume: bool = False
    overwrite: bool = False
    nan_policy: str = "reject"
    note: Callable[[str], Any] = lambda msg: None
    #: ``(index, count)``: extract only that shard of the inputs (see
    #: :mod:`~nnaudio_cli.extract.shard`); ``output`` is then the shard's own file
    shard: tuple[int, int] | None = None
    #: stored dtype of every feature: float32, float16 or bfloat16
    dtype: str = "float32"
    #: store decibels (``--db``), with librosa's ``power_to_db`` parameters
    db: bool = False
    db_ref: float = 1.0
    db_amin: float | None = None
    db_top_db: float | None = 80.0
    #: ``--files``: the inputs of a list (then ``input_dir`` is not searched)
    input_list: InputList | None = None
    #: ``--include``/``--exclude`` glob patterns for searching ``input_dir``
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    #: the merged output of a sharded run (its files are never taken as inputs either)
    target: Path | None = None
    #: ``-v``: list the skipped files as notes
    verbose: bool = False


@dataclass
class Summary:
    """Counts and timings of a finished extraction (``--json`` prints :meth:`as_dict`)."""

    output: str
    files: int = 0
    ok: int = 0
    failed: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    frames: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    compute_seconds: float = 0.0
    batches: int = 0
    streamed: int = 0
    resumed: int = 0
    device: str = "cpu"
    workers: int = 0
    threads: int = 1
    transform: str = ""
    config_hash: str = ""
    features: list[str] = field(default_factory=list)
    #: entries of the input folder not taken, per extension (see ``Discovery``)
    skipped: dict[str, int] = field(default_factory=dict)
    #: ``--files``: ``{"name": LIST, "sha256": ...}``
    input_list: dict[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary including rates and the exit code."""
        wall = max(self.wall_seconds, 1e-9)
        return {
            "output": self.output,
            "files": self.files,
            "ok": self.ok,
            "failed": self.failed,
            "failures": self.failures,
            "frames": self.frames,
            "audio_seconds": round(self.audio_seconds, 3),
            "wall_seconds": round(self.wall_seconds, 3),
            "compute_seconds": round(self.compute_seconds, 3),
            "audio_seconds_per_second": round(self.audio_seconds / wall, 2),
            "files_per_second": round(self.files / wall, 2),
            "batches": self.batches,
            "streamed_files": self.streamed,
            "resumed_files": self.resumed,
            "computed_files": self.files - self.resumed,
            "device": self.device,
            "workers": self.workers,
            "threads": self.threads,
            "transform": self.transform,
            "features": self.features,
            "config_hash": self.config_hash,
            "skipped": self.skipped,
            "input_list": self.input_list,
            "exit_code": 3 if self.failed else 0,
        }


def default_threads(device: torch.device) -> int:
    """torch CPU threads. A function of the machine only, never of ``--workers``: the thread
    count changes float32 sums, and the same command must give the same bytes whatever
    ``--workers`` is."""
    if device.type != "cpu":
        return max(1, min(4, cpu_count()))
    return max(1, cpu_count() - default_workers())


def config_hash(config: dict[str, Any], keep_channels: bool) -> str:
    """SHA-256 of the stored config JSON, the channel mode and the resampler."""
    text = canonical_json(
        {"config": config, "keep_channels": keep_channels, "resampler": resampler_name()}
    )
    return hashlib.sha256(text.encode()).hexdigest()


def resampler_name() -> str:
    """Description of the resampler stored in the attributes."""
    return f"soxr {soxr.__version__} quality={audio.SOXR_QUALITY}"


def resume_hash(chash: str, segment_samples: int, nan_policy: str, batch_samples: int,
                rows_hash: str | None = None) -> str:
    """Hash of everything the stored values depend on (checked by ``--resume``): the
    configuration, the segment length, the NaN policy and the batch plan's size, and for a
    ``--files`` list its rows (:attr:`~nnaudio_cli.extract.listing.InputList.rows_hash`:
    a list whose keys or spans changed is refused, where a folder may gain files)."""
    fields: dict[str, Any] = {"config_hash": chash, "segment_samples": segment_samples,
                              "nan_policy": nan_policy, "batch_samples": batch_samples}
    if rows_hash is not None:
        fields["input_rows"] = rows_hash
    text = canonical_json(fields)
    return hashlib.sha256(text.encode()).hexdigest()


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


def _meta(info: audio.SourceInfo) -> dict[str, Any]:
    return {
        "sr": float(info.sr),
        "samples": int(info.samples),
        "channels": int(info.channels),
        "duration": float(info.duration),
        "size": int(info.size),
        "mtime": float(info.mtime),
    }


def _stat_all(inputs: list[Input]) -> dict[str, tuple[int, float]]:
    """Key -> (size, mtime) of each input's source file (resume compares them)."""
    out: dict[str, tuple[int, float]] = {}
    for inp in inputs:
        try:
            st = os.stat(inp.path)
        except OSError:
            continue
        out[inp.key] = (int(st.st_size), float(st.st_mtime))
    return out


def _span_header(h: Header, inp: Input) -> Header:
    """The header of a segment for planning: its length (0 when it does not fit the file:
    decoding then fails the row with the reason)."""
    span = inp.span
    if span is None or not h.sr:
        return h
    try:
        start, stop = audio.span_frames(span, h.sr, h.samples)
    except audio.InputError:
        return Header(h.sr, 0, h.channels)
    return Header(h.sr, stop - start, h.channels)


@dataclass
class Lane:
    """One feature of the pass: its name, engine, device runner and how it is stored.

    Attributes
    ----------
    name : the feature's group in the output
    engine : the transform, built once
    runner : runs packed batches on the device
    spec : the stored feature (row shape, storage, group attributes)
    finisher : its clip-wide step (MFCC, ``--db``), or None
    max_frames : frames per piece of a streamed input
    """

    name: str
    engine: Engine
    runner: DeviceRunner
    spec: FeatureSpec
    finisher: Finisher | None
    max_frames: int


@dataclass
class _Item:
    """One input of a batch on its way through compute: failed, or its pieces per lane."""

    clip: int
    meta: dict[str, Any]
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
        self.rates = audio.rates_of([ln.engine.sr for ln in lanes])
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
        n = sum(audio.resampled_length(h.samples, h.sr or r, r) for r in self.rates)
        inp = self.inputs[i]
        return Job(i, inp.path, inp.key, 4 * n * channels, inp.span)

    def _item(self, job: Job, res: audio.DecodeResult) -> _Item:
        item = _Item(job.clip, _meta(res.info))
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
            framer = _framer(lane)
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
                self.clips.fail(key, item.meta, item.reason)
                self.reporter.advance(0.0, failed=True)
                continue
            self._put(item, outs)
            status = self.clips.close(item.clip, key, item.meta)
            self.reporter.advance(item.meta["duration"] if status == "ok" else 0.0,
                                  failed=status != "ok")
        self.store.commit()

    def _stream(self, i: int) -> None:
        """A long input: decode block by block, compute segment by segment, one part."""
        key, path = self.keys[i], self.inputs[i].path
        probe = audio.decode_task(path, key, self.rates, self.opts.mono, 0,
                                  self.opts.nan_policy, self.inputs[i].span)  # header only
        info = probe.info
        if probe.status == "failed":
            self.clips.fail(key, _meta(info), probe.reason)
            self.reporter.advance(0.0, failed=True)
            self.store.commit()
            return
        self.summary.streamed += 1
        framers = [_framer(lane) for lane in self.lanes]
        pending: _Submitted | None = None
        start, stop = probe.extra.get("span", (0, None))
        try:
            blocks = _threaded(lambda: audio.stream_rates(
                path, info, self.rates, self.opts.mono, nan_policy=self.opts.nan_policy,
                start=start, stop=stop))
            for x, last in blocks:
                interrupts.check()
                item = _Item(i, {}, pieces=[
                    self._pieces(lane, i, x[lane.engine.sr], last, framer)
                    for lane, framer in zip(self.lanes, framers, strict=True)])
                submitted = self._submit([item])
                if pending is not None:
                    self._put(pending.items[0], self._outputs(pending))
                pending = submitted
            if pending is not None:
                self._put(pending.items[0], self._outputs(pending))
            status = self.clips.close(i, key, _meta(info))  # the stream has ended: final meta
        except (OutputError, StorageError):
            raise
        except Exception as e:  # noqa: BLE001 - a broken file is a failed row
            self.clips.abort(i)
            self.clips.fail(key, _meta(info), audio.failure_reason(e))
            status = "failed"
        self.reporter.advance(info.duration if status == "ok" else 0.0, failed=status != "ok")
        self.store.commit()


def _framer(lane: Lane) -> ClipFramer | WholeClip:
    """How a streamed input's blocks become pieces: frame-exact pieces, or the whole clip
    (up to the most samples the transform reads) with its last block."""
    eng = lane.engine
    if eng.mode != "frames":
        return WholeClip(eng.max_samples)
    return ClipFramer(eng.n_fft, eng.hop, eng.pad, eng.pad_mode, lane.max_frames)


def _value_layout(engine: Engine, keep: bool) -> str:
    return (("frames_channels_bins" if keep else "frames_bins")
            + ("_reim" if engine.is_complex else ""))


def _root_attrs(opts: ExtractOptions, lanes: list[Lane], summary: Summary) -> dict[str, Any]:
    keep = not opts.mono
    return {
        "sr": lanes[0].engine.sr,
        "keep_channels": keep,
        "resampler": resampler_name(),
        "compression": opts.compression,
        "config_hash": summary.config_hash,
        "package_version": nnaudio_core.__version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "h5py_version": h5py.__version__,
        "soxr_version": soxr.__version__,
        "soundfile_version": sf.__version__,
        "command_line": json.dumps(opts.command_line),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "n_inputs": summary.files,
        "n_ok": summary.ok,
        "n_failed": summary.failed,
        "skipped_json": canonical_json(summary.skipped),
        **({} if opts.input_list is None else {
            "input_list": opts.input_list.name, "input_list_sha256": opts.input_list.sha256,
            "input_rows_hash": opts.input_list.rows_hash}),
    }


def _summarise(summary: Summary, keys: list[str], store: PartStore) -> None:
    """Counts over every input (computed now or taken from earlier parts)."""
    summary.ok = summary.failed = summary.frames = 0
    summary.audio_seconds = 0.0
    summary.failures = []
    for k in keys:
        row = store.sources[k].row
        if row.get("status") == "ok":
            summary.ok += 1
            first = summary.features[0] if summary.features else ""
            channels = max(1, int(row.get("stored_channels", 1)))
            summary.frames += int(row["n_rows"].get(first, 0)) // channels
            summary.audio_seconds += float(row.get("duration", 0.0))
        else:
            summary.failed += 1
            summary.failures.append({"key": stored_key(k), "reason": str(row.get("reason", ""))})


class _WorkFolder:
    """The identity of the parts folder when the run took it: a folder moved or deleted
    mid-run makes writes fail with "no such file", which must not read as a full disk."""

    def __init__(self, folder: Path, output: Path) -> None:
        self.folder = folder
        self.output = output
        self.ident = self._ident()

    def _ident(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.folder)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def check(self) -> None:
        """Raise :class:`ExtractError` saying what happened when the folder is no longer
        the one this run created (gone, or replaced by another)."""
        now = self._ident()
        if self.ident is None or now == self.ident:
            return
        what = "deleted or moved away" if now is None else "replaced by another folder"
        raise ExtractError(
            f"the work folder {self.folder}/ was {what} during the run (the parts of the "
            f"inputs finished so far went with it); nothing was written to {self.output}; "
            "put the folder back and rerun with --resume, or rerun to start again"
        )


def _recount(reporter: Reporter, lost: list[str], before: dict[str, Any],
             computed: set[str]) -> None:
    """Progress after inputs lost their parts (checksum failures) and are computed again:
    those finished in this run leave the done count, those kept from an earlier run join
    the total, so it never shows more done than there are inputs (``before``: the sources
    before the check)."""
    again = [k for k in lost if k in computed]
    rows = [before[k].row for k in again]
    reporter.redo(len(again), failed=sum(r.get("status") != "ok" for r in rows),
                  audio_seconds=sum(float(r.get("duration", 0.0)) for r in rows
                                    if r.get("status") == "ok"))
    reporter.extend(len(lost) - len(again))
    computed.update(lost)


def _todo(plan: list[Batch], keys: list[str], store: PartStore) -> list[Batch]:
    """The plan restricted to inputs without a committed source (empty batches dropped)."""
    out = []
    for b in plan:
        left = tuple(i for i in b.clips if keys[i] not in store.sources)
        if left:
            out.append(Batch(left, b.streamed))
    return out


def run_extract(opts: ExtractOptions, reporter: Reporter, decoder: Any = None,
                found: tuple[list[Input], dict[str, int], list[Header]] | None = None,
                ) -> Summary:
    """Extract features of every audio file under ``opts.input_dir`` into ``opts.output``.

    ``decoder``: decoder processes started earlier by the caller (from
    :func:`~nnaudio_cli.extract.decode.make_decoder`, e.g. before importing torch, so they
    start while it loads); closed here. None: started here. ``found``: the inputs and
    skipped counts (:func:`~nnaudio_cli.extract.inputs.select_inputs`) and their headers
    (:func:`~nnaudio_cli.extract.discover.read_headers`) when the caller read them already
    (while torch loaded); None: read here.

    Returns
    -------
    Summary (``failed > 0`` means some inputs could not be read; they are in the index)

    Raises
    ------
    ExtractError
        Fatal problems (no audio files, unwritable output: the parts are kept).
    Interrupted
        SIGINT/SIGTERM: committed parts are kept for ``--resume``.
    ResumeError
        Another run holds the output, leftovers of an earlier run, or ``--resume`` with
        different settings.
    nnaudio_core.ParameterError
        The transform rejected its parameters.
    """
    t_start = time.perf_counter()
    try:
        if found is None:
            inputs, skipped = select_inputs(
                opts.input_dir, opts.input_list, opts.include, opts.exclude, opts.output,
                opts.target, opts.note if opts.verbose else None)
            headers = None
        else:
            inputs, skipped, headers = found
        if decoder is None:
            decoder = make_decoder(opts.workers)  # they start while the kernels are built
        return _run(opts, reporter, inputs, skipped, decoder, t_start, headers)
    finally:
        if decoder is not None:
            decoder.close()


def _storage(opts: ExtractOptions, name: str, config: dict[str, Any]) -> Storage:
    db = None
    if opts.db:
        db = db_for(config, name, opts.db_ref, opts.db_amin, opts.db_top_db)
    return Storage(opts.dtype, db)


def _lanes(opts: ExtractOptions, seg_seconds: float) -> list[Lane]:
    """Build every feature's engine once (one line naming the feature if one is rejected)."""
    lanes = []
    keep = not opts.mono
    for cfg in opts.features:
        try:
            engine = Engine(cfg.as_core_config(), opts.device)
        except ParameterError as e:
            which = f" ({cfg.name})" if len(opts.features) > 1 else ""
            raise ExtractError(f"invalid {cfg.transform} parameters{which}: {e}") from None
        storage = _storage(opts, cfg.name, engine.config)
        finisher: Finisher | None = None
        if engine.is_mfcc:
            finisher = MfccFinisher(engine.dct, engine.top_db)
        elif engine.is_whisper and engine.mode == "frames":
            finisher = WhisperFinisher(engine.dynamic_range)
        elif storage.db is not None:
            finisher = DecibelFinisher(storage.db)
        attrs = {
            "transform": engine.name,
            "config_json": canonical_json(engine.config),
            "config_hash": config_hash(engine.config, keep),
            "sr": engine.sr,
            "hop_length": engine.hop,
            "n_bins": engine.n_bins,
            "value_layout": _value_layout(engine, keep),
        }
        spec = FeatureSpec(cfg.name, engine.row_shape, engine.frequencies, storage, attrs)
        seg = max(int(seg_seconds * engine.sr), engine.n_fft + engine.hop, 1)
        lanes.append(Lane(cfg.name, engine, DeviceRunner(engine, opts.note), spec, finisher,
                          max(1, seg // engine.hop)))
    return lanes


def _run(opts: ExtractOptions, reporter: Reporter, inputs: list[Input],
         skipped: dict[str, int], decoder: Any, t_start: float,
         headers: list[Header] | None = None) -> Summary:
    seg_seconds = opts.segment_seconds or opts.batch_seconds
    lanes = _lanes(opts, seg_seconds)
    sr = max(lane.engine.sr for lane in lanes)  # the plan's rate: the largest one
    keys = [inp.key for inp in inputs]
    if headers is None:
        headers = read_headers([inp.path for inp in inputs])
    headers = [_span_header(h, inp) for h, inp in zip(headers, inputs, strict=True)]
    stored_channels = [1 if opts.mono else max(h.channels, 1) for h in headers]
    costs = [audio.resampled_length(h.samples, h.sr or sr, sr) * c
             for h, c in zip(headers, stored_channels, strict=True)]
    batch_samples = max(1, int(opts.batch_seconds * sr))
    seg_samples = max(int(seg_seconds * sr),
                      *(ln.engine.n_fft + ln.engine.hop for ln in lanes), 1)
    plan = plan_batches(costs, batch_samples, seg_samples)
    all_keys = keys
    shard_attrs: dict[str, Any] = {}
    if opts.shard is not None:  # whole batches of the one plan: the same bytes as one run
        index, count = opts.shard
        shard_attrs = {"shard_index": index, "shard_count": count,
                       "shard_plan": plan_hash(all_keys, plan, count),
                       "n_inputs_total": len(all_keys)}
        plan = shard_batches(plan, costs, index, count)
        keys = [all_keys[i] for b in plan for i in b.clips]
    keep = not opts.mono
    names = [ln.name for ln in lanes]
    chash = hashlib.sha256(canonical_json(
        [{"name": ln.name, "config_hash": ln.spec.attrs["config_hash"],
          "storage": ln.spec.storage.attrs()} for ln in lanes]).encode()).hexdigest()
    listed = opts.input_list
    rhash = resume_hash(chash, seg_samples, opts.nan_policy, batch_samples,
                        None if listed is None else listed.rows_hash)
    summary = Summary(output=str(opts.output), files=len(keys), device=str(opts.device),
                      workers=opts.workers, threads=torch.get_num_threads(),
                      transform=", ".join(ln.engine.name for ln in lanes), config_hash=chash,
                      features=names, skipped=skipped,
                      input_list=None if listed is None else {"name": listed.name,
                                                              "sha256": listed.sha256})
    manifest = {
        "resume_hash": rhash, "config_hash": chash, "features": names,
        "segment_samples": seg_samples, "nan_policy": opts.nan_policy, "keep_channels": keep,
        "batch_samples": batch_samples,
        **({} if listed is None else {"input_rows": listed.rows_hash}),
    }
    part_attrs = {"config_hash": chash, "sr": lanes[0].engine.sr, "keep_channels": keep}
    specs = [ln.spec for ln in lanes]
    # parts are uncompressed: they are read back (verified, assembled) and deleted, so
    # compressing them would cost CPU three times for a file that lives minutes
    store = PartStore(opts.output, manifest, specs, PART_COMPRESSION, part_attrs, opts.note)
    # every refusal comes before the work folder is made: a refused run leaves nothing
    check_owned(opts.output, resume=opts.resume, overwrite=opts.overwrite)
    previous = opts.output if opts.resume and opts.output.is_file() else None
    if previous is not None:
        store.check_previous(previous)
    store.open(opts.resume, opts.overwrite)
    folder = _WorkFolder(store.folder, opts.output)
    try:
        if opts.resume:
            mine = set(keys)
            try:
                summary.resumed = store.load(
                    _stat_all([i for i in inputs if i.key in mine]), previous)
            except ResumeError:
                store.discard_created()
                raise
        interrupts.check()
        extraction = Extraction(opts, lanes, inputs, headers, store, decoder, reporter,
                                summary, batch_samples)
        todo = _todo(plan, all_keys, store)
        computed = {all_keys[i] for b in todo for i in b.clips}
        reporter.start(len(computed))
        try:
            for _ in range(VERIFY_ROUNDS):
                extraction.run(todo)
                before = dict(store.sources)
                lost = store.verify_sources()
                if not lost:
                    break
                folder.check()  # parts gone with their folder: say so, stop
                _recount(reporter, lost, before, computed)
                todo = _todo(plan, all_keys, store)
            else:
                raise ExtractError(f"parts in {store.folder} keep failing verification; the "
                                   "disk may be faulty")
        except KeyboardInterrupt:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt
            store.abort()
            raise Interrupted(store.kept(keys), len(keys)) from None
        except StorageError as e:
            store.abort()
            raise ExtractError(
                f"{e} ({store.kept(keys)} of {text.count(len(keys), 'input')} were written to "
                f"{store.folder}/; rerun with --overwrite)") from None
        except OutputError as e:
            store.abort(broken=True)
            folder.check()
            raise ExtractError(
                f"{e}; {store.kept(keys)} of {text.count(len(keys), 'input')} are kept in "
                f"{store.folder}/; free space (or make it writable) and rerun with --resume"
            ) from None
        finally:
            reporter.finish()
        _summarise(summary, keys, store)
        summary.wall_seconds = time.perf_counter() - t_start
        attrs = _root_attrs(opts, lanes, summary)
        attrs.update(resume_hash=rhash, segment_samples=seg_samples,
                     nan_policy=opts.nan_policy, batch_samples=batch_samples, **shard_attrs)
        try:
            assemble(opts.output, keys, store.sources, specs, opts.compression, attrs)
        except KeyboardInterrupt:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            raise Interrupted(len(keys), len(keys), assembling=True) from None
        except OutputError as e:
            folder.check()
            raise ExtractError(
                f"{e}; all {text.count(len(keys), 'input')} are kept in {store.folder}/; free "
                "space (or make it writable) and rerun with --resume"
            ) from None
        try:
            remove_parts(store.folder)
        except (OSError, ResumeError):
            pass  # the output is complete; a leftover work folder is harmless
    finally:
        store.close()
    summary.wall_seconds = time.perf_counter() - t_start
    return summary
