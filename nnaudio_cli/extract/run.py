"""The extraction pipeline: worker processes decode while the main process computes.

* Files are taken in sorted order. A :class:`~concurrent.futures.ProcessPoolExecutor` decodes
  and resamples them (:func:`nnaudio_cli.audio.decode_task`), with a bounded number of files
  in flight, so decoding overlaps the transform and memory stays bounded.
* A file longer than ``segment_seconds`` is not decoded by a worker; the main process streams
  it (a reader thread decodes and resamples block by block into a small queue) and feeds it
  to the transform in pieces of at most ``segment_seconds``.
* Pieces are grouped into batches by audio duration (:class:`~nnaudio_cli.batching.Batcher`),
  computed on the device (each piece on its own, so values do not depend on the batch) and
  appended to the current part file in input order; a part is committed after each batch
  (:mod:`nnaudio_cli.parts`) and ``OUTPUT.h5`` is assembled from the parts at the end
  (:mod:`nnaudio_cli.finalize`). The output depends neither on ``--workers`` nor on
  ``--batch-seconds`` nor on interruptions and ``--resume``.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
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
from nnaudio_cli import audio
from nnaudio_cli.assemble import ClipSink
from nnaudio_cli.batching import Batcher, Piece
from nnaudio_cli.config import ExtractConfig, canonical_json
from nnaudio_cli.discover import find_audio
from nnaudio_cli.engine import ClipFramer, Engine
from nnaudio_cli.finalize import assemble
from nnaudio_cli.parts import PartStore, ResumeError, remove_parts
from nnaudio_cli.progress import Reporter
from nnaudio_cli.store import LAYOUT_VERSION, OutputError

#: Upper bound on decoded audio waiting in the prefetch queue.
PREFETCH_BYTES = 512 * 1024 * 1024


class ExtractError(RuntimeError):
    """A fatal problem that stops the extraction (exit code 1), one line."""


class Interrupted(Exception):
    """The run was interrupted (SIGINT/SIGTERM); ``kept`` of ``total`` inputs are committed."""

    def __init__(self, kept: int, total: int) -> None:
        super().__init__(f"interrupted; {kept} of {total} inputs kept")
        self.kept = kept
        self.total = total


@dataclass
class ExtractOptions:
    """Everything ``nnaudio extract`` needs besides the configuration."""

    input_dir: Path
    output: Path
    config: ExtractConfig
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
    transform: str = ""
    config_hash: str = ""

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
            "transform": self.transform,
            "config_hash": self.config_hash,
            "exit_code": 3 if self.failed else 0,
        }


def cpu_count() -> int:
    """CPU cores this process may use."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, n or 1)


def default_workers() -> int:
    """Decoder processes: one per CPU core left after the main process, 1 to 8."""
    return max(1, min(8, cpu_count() - 1))


def default_threads(device: torch.device, workers: int) -> int:
    """torch CPU threads: the cores the decoders leave free (oversubscription is costly)."""
    if device.type != "cpu":
        return max(1, min(4, cpu_count()))
    return max(1, cpu_count() - workers)


def _mp_context() -> multiprocessing.context.BaseContext:
    # forkserver/spawn: never fork a process that has started torch's thread pools
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


class _InlineExecutor:
    """``--workers 0``: decode in the main process (debugging, tiny jobs)."""

    def submit(self, fn: Any, *args: Any) -> Future:
        fut: Future = Future()
        fut.set_result(fn(*args))
        return fut

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def _threaded(it_factory: Any, depth: int = 2) -> Iterator[Any]:
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
        item = q.get()
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def config_hash(config: dict[str, Any], keep_channels: bool) -> str:
    """SHA-256 of the stored config JSON, the channel mode and the resampler."""
    text = canonical_json(
        {"config": config, "keep_channels": keep_channels, "resampler": resampler_name()}
    )
    return hashlib.sha256(text.encode()).hexdigest()


def resampler_name() -> str:
    """Description of the resampler stored in the attributes."""
    return f"soxr {soxr.__version__} quality={audio.SOXR_QUALITY}"


def _root_attrs(opts: ExtractOptions, engine: Engine, summary: Summary) -> dict[str, Any]:
    keep = not opts.mono
    return {
        "layout_version": LAYOUT_VERSION,
        "transform": engine.name,
        "config_json": canonical_json(engine.config),
        "config_hash": summary.config_hash,
        "sr": engine.sr,
        "hop_length": engine.hop,
        "n_bins": engine.n_bins,
        "dtype": "float32",
        "value_layout": (
            ("frames_channels_bins" if keep else "frames_bins")
            + ("_reim" if engine.is_complex else "")
        ),
        "keep_channels": keep,
        "resampler": resampler_name(),
        "compression": opts.compression,
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
    }


def resume_hash(chash: str, segment_samples: int, nan_policy: str) -> str:
    """Hash of everything the stored values depend on (checked by ``--resume``)."""
    text = canonical_json(
        {"config_hash": chash, "segment_samples": segment_samples, "nan_policy": nan_policy}
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _stat_all(root: Path, keys: list[str]) -> dict[str, tuple[int, float]]:
    out: dict[str, tuple[int, float]] = {}
    for k in keys:
        try:
            st = os.stat(root / k)
        except OSError:
            continue
        out[k] = (int(st.st_size), float(st.st_mtime))
    return out


def _summarise(summary: Summary, keys: list[str], store: PartStore) -> None:
    """Counts over every input (computed now or taken from earlier parts)."""
    summary.ok = summary.failed = summary.frames = 0
    summary.audio_seconds = 0.0
    summary.failures = []
    for k in keys:
        row = store.sources[k].row
        if row.get("status") == "ok":
            summary.ok += 1
            summary.frames += int(row.get("frames", 0))
            summary.audio_seconds += float(row.get("duration", 0.0))
        else:
            summary.failed += 1
            summary.failures.append({"key": k, "reason": str(row.get("reason", ""))})


def run_extract(opts: ExtractOptions, reporter: Reporter) -> Summary:
    """Extract features of every audio file under ``opts.input_dir`` into ``opts.output``.

    Progress is committed to part files in ``OUTPUT.parts/`` (:mod:`nnaudio_cli.parts`);
    the output is assembled from them at the end (:mod:`nnaudio_cli.finalize`).

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
        Leftovers of an earlier run, or ``--resume`` with different settings.
    nnaudio_core.ParameterError
        The transform rejected its parameters.
    """
    t_start = time.perf_counter()
    keys = find_audio(opts.input_dir)
    if not keys:
        raise ExtractError(
            f"no audio files under {opts.input_dir} "
            "(looked for .wav .flac .ogg .oga .opus .mp3 .aiff .aif .au .caf ...)"
        )
    engine = Engine(opts.config.as_core_config(), opts.device)
    keep = not opts.mono
    seg_seconds = opts.segment_seconds or opts.batch_seconds
    seg_samples = max(int(seg_seconds * engine.sr), engine.n_fft + engine.hop, 1)
    chash = config_hash(engine.config, keep)
    rhash = resume_hash(chash, seg_samples, opts.nan_policy)
    summary = Summary(
        output=str(opts.output),
        files=len(keys),
        device=str(opts.device),
        workers=opts.workers,
        transform=engine.name,
        config_hash=chash,
    )
    manifest = {
        "resume_hash": rhash, "config_hash": chash, "transform": engine.name,
        "segment_samples": seg_samples, "nan_policy": opts.nan_policy, "keep_channels": keep,
    }
    freqs = engine.transform.frequencies()
    store = PartStore(opts.output, manifest, engine.row_shape, opts.compression, freqs)
    store.open(opts.resume, opts.overwrite)
    if opts.resume:
        previous = opts.output if opts.output.is_file() else None
        summary.resumed = store.load(_stat_all(opts.input_dir, keys), previous)
    part_attrs = {"layout_version": LAYOUT_VERSION, "config_hash": chash,
                  "transform": engine.name}
    todo = [i for i, k in enumerate(keys) if k not in store.sources]
    try:
        _run(opts, engine, keys, todo, store, part_attrs, summary, reporter, seg_samples)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt this
        store.abort()
        raise Interrupted(store.kept(keys), len(keys)) from None
    except OutputError as e:
        store.abort(broken=True)
        raise ExtractError(
            f"{e}; {store.kept(keys)} of {len(keys)} inputs are kept in {store.folder}/; "
            "free space (or make it writable) and rerun with --resume"
        ) from None
    _summarise(summary, keys, store)
    summary.wall_seconds = time.perf_counter() - t_start
    attrs = _root_attrs(opts, engine, summary)
    attrs.update(resume_hash=rhash, segment_samples=seg_samples, nan_policy=opts.nan_policy)
    try:
        assemble(opts.output, keys, store.sources, engine.row_shape, opts.compression, attrs,
                 freqs)
    except OutputError as e:
        raise ExtractError(
            f"{e}; all {len(keys)} inputs are kept in {store.folder}/; free space (or make "
            "it writable) and rerun with --resume"
        ) from None
    try:
        remove_parts(store.folder)
    except (OSError, ResumeError):
        pass  # the output is complete; a leftover work folder is harmless
    summary.wall_seconds = time.perf_counter() - t_start
    return summary


def _stop_workers(executor: Any) -> None:
    """End decoder processes at once (on interrupt): no waiting for running tasks."""
    procs = list((getattr(executor, "_processes", None) or {}).values())
    for proc in procs:
        try:
            proc.terminate()
        except Exception:  # noqa: BLE001 - already gone
            pass
    for proc in procs:
        proc.join(timeout=2)
    executor.shutdown(wait=True, cancel_futures=True)


def _run(
    opts: ExtractOptions,
    engine: Engine,
    keys: list[str],
    todo: list[int],
    store: PartStore,
    part_attrs: dict[str, Any],
    summary: Summary,
    reporter: Reporter,
    seg_samples: int,
) -> None:
    sr = engine.sr
    max_frames = max(1, seg_samples // engine.hop)
    meta: dict[int, dict[str, Any]] = {}

    def on_done(clip: int, frames: int, channels: int, n_rows: int) -> None:
        m = meta.pop(clip)
        store.add_row(keys[clip], dict(m, status="ok", reason="", frames=frames,
                                       stored_channels=channels, n_rows=n_rows))
        reporter.advance(m["duration"])

    def fail_row(i: int, reason: str) -> None:
        m = meta.pop(i, None) or {}
        store.add_row(keys[i], dict(m, status="failed", reason=reason, n_rows=0))
        reporter.advance(0.0, failed=True)
        if store.uncommitted >= 256 and not sink.busy:
            store.commit(part_attrs)

    def fail(i: int, info: audio.SourceInfo, reason: str) -> None:
        meta[i] = _meta(info)
        fail_row(i, reason)

    def after_flush() -> None:
        if not sink.busy:
            store.commit(part_attrs)

    sink = ClipSink(engine, store.writer, on_done, fail_row)
    batcher = Batcher(engine, opts.batch_seconds, sink, after_flush)

    def feed(i: int, blocks: Iterator[tuple[np.ndarray, bool]]) -> None:
        framer = ClipFramer(engine, max_frames) if engine.mode == "frames" else None
        whole: list[np.ndarray] = []
        for x, last in blocks:
            if framer is None:
                whole.append(x)
                if last:
                    batcher.add(Piece(i, np.concatenate(whole, axis=1), 0, True))
                continue
            pieces = framer.push(x, last)
            if last and not pieces:  # nothing left to compute: close the clip explicitly
                pieces = [(x[:, :0], 0)]
            for j, (samples, k) in enumerate(pieces):
                batcher.add(Piece(i, samples, k, last and j == len(pieces) - 1))

    executor: Any
    if opts.workers > 0:
        executor = ProcessPoolExecutor(max_workers=opts.workers, mp_context=_mp_context(),
                                       initializer=audio.ignore_interrupts,
                                       initargs=(os.getpid(),))
    else:
        executor = _InlineExecutor()
    # decode ahead: about two batches of files, at most PREFETCH_BYTES of decoded audio
    min_window = max(4, 4 * opts.workers)
    window = min_window
    decoded_bytes = decoded_files = 0
    in_flight: deque[Future] = deque()
    nxt = 0
    reporter.start(len(todo))
    clean = False
    try:
        for pos in range(len(todo)):
            while nxt < len(todo) and len(in_flight) < window:
                k = keys[todo[nxt]]
                in_flight.append(executor.submit(
                    audio.decode_task, str(opts.input_dir / k), k, sr, opts.mono, seg_samples,
                    opts.nan_policy,
                ))
                nxt += 1
            i = todo[pos]
            res: audio.DecodeResult = in_flight.popleft().result()
            info = res.info
            if res.audio is not None:
                decoded_bytes += res.audio.nbytes
                decoded_files += 1
                per_file = max(decoded_bytes / decoded_files, 1.0)
                per_batch = opts.batch_seconds * sr * 4 / per_file
                window = int(min(max(min_window, 2 * per_batch), PREFETCH_BYTES / per_file, 1024))
                window = max(window, 2)
            if res.status == "failed":
                fail(i, info, res.reason)
                continue
            if res.status == "ok":
                assert res.audio is not None
                why = engine.check_length(res.audio.shape[1])
                if why:
                    fail(i, info, why)
                    continue
                meta[i] = _meta(info)
                feed(i, iter([(res.audio, True)]))
                continue
            # long file: commit what is finished, then stream it here, block by block
            batcher.flush()
            summary.streamed += 1
            path = str(opts.input_dir / keys[i])
            meta[i] = _meta(info)
            try:
                blocks = _threaded(
                    lambda p=path, inf=info: audio.stream_file(
                        p, inf, sr, opts.mono, nan_policy=opts.nan_policy
                    )
                )
                feed(i, blocks)
            except OutputError:
                raise
            except Exception as e:  # noqa: BLE001 - a broken file is a failed row
                batcher.flush()
                sink.abort(i)
                meta.pop(i, None)
                fail(i, info, audio.one_line(e))
                continue
        batcher.flush()
        store.commit(part_attrs)
        clean = True
    finally:
        for fut in in_flight:
            fut.cancel()
        if clean:
            executor.shutdown(wait=True, cancel_futures=True)
        else:
            _stop_workers(executor)
        reporter.finish()
    summary.batches = batcher.batches
    summary.compute_seconds = batcher.compute_seconds


def _meta(info: audio.SourceInfo) -> dict[str, Any]:
    return {
        "sr": float(info.sr),
        "samples": int(info.samples),
        "channels": int(info.channels),
        "duration": float(info.duration),
        "size": int(info.size),
        "mtime": float(info.mtime),
    }
