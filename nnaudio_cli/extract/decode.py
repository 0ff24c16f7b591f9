"""Stage 2, decode: worker processes decode and resample inputs ahead of the compute stage.

:class:`DecoderPool` starts ``workers`` processes (:mod:`nnaudio_cli.extract.worker`, no
torch) when it is created, so they start while the main process builds the transform.
:meth:`DecoderPool.decode` hands out jobs in input order, keeps a bounded amount of decoded
audio in flight (by bytes, from the header durations) and yields the results **in input
order**, whichever worker finished first. A thread per worker reads its results as they
come (into memory, within the byte budget), so decoding runs ahead while the main thread
computes instead of stalling on a full pipe. A worker that dies (a decoder crash) fails the
file it was reading, with a reason, and is replaced. :meth:`DecoderPool.close` ends the
workers without waiting for them beyond a fixed bound (SIGTERM, then SIGKILL).

``workers=0`` decodes in the main process (:class:`InlineDecoder`; debugging, tiny jobs).
"""

from __future__ import annotations

import fcntl
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nnaudio_cli
from nnaudio_cli.extract import audio, reasons
from nnaudio_cli.extract.worker import _HEAD, send
from nnaudio_cli.plumbing import interrupts
from nnaudio_cli.plumbing.text import shown_key

#: Upper bound on decoded audio in flight (bytes).
PREFETCH_BYTES = 512 * 1024 * 1024
#: Most files in flight.
MAX_IN_FLIGHT = 1024
#: fcntl command that sets a pipe's buffer size (Linux).
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
#: Seconds a worker is given to exit after SIGTERM before SIGKILL.
STOP_GRACE = 0.5


@dataclass(frozen=True)
class Job:
    """One input to decode.

    Attributes
    ----------
    clip : index of the input
    path : file to read
    key : its relative path
    nbytes : expected size of the decoded audio (float32 at every target rate)
    span : ``(start, end)`` seconds of a segment (``end`` None: to the file's end), or None
    """

    clip: int
    path: str
    key: str
    nbytes: int
    span: tuple[float, float | None] | None = None


@dataclass(frozen=True)
class DecodeSettings:
    """What every job is decoded to: the target rates in Hz (each input is resampled once
    per rate), mono, NaN policy."""

    rates: tuple[float, ...]
    mono: bool
    nan_policy: str

    def args(self, job: Job) -> tuple:
        # no streaming decisions in the worker: the batch plan made them
        return (job.path, job.key, self.rates, self.mono, sys.maxsize, self.nan_policy,
                job.span)


def _read_exact(fd: int, n: int) -> bytes | None:
    parts = []
    while n:
        b = os.read(fd, min(n, 1 << 20))
        if not b:
            return None
        parts.append(b)
        n -= len(b)
    return b"".join(parts)


class _Worker:
    """One decoder process, the jobs sent to it (oldest first), and a thread that reads its
    results as soon as they come, so the process never waits on a full pipe while the main
    thread computes.

    Parameters
    ----------
    sink : called from the reader thread as ``sink(worker, message)`` for each result, and
        with ``None`` once when the process has gone (exit, crash or :meth:`stop`)
    """

    def __init__(self, sink: Callable[[_Worker, Any], None]) -> None:
        rfd, wfd = os.pipe()
        env = dict(os.environ, OMP_NUM_THREADS="1")
        root = str(Path(nnaudio_cli.__file__).resolve().parents[1])  # the same code as here
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "nnaudio_cli.extract.worker", str(wfd),
                 str(os.getpid())],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, pass_fds=(wfd,), env=env,
            )
        except BaseException:
            os.close(rfd)
            raise
        finally:
            os.close(wfd)
        for fd in (rfd, self.proc.stdin.fileno() if self.proc.stdin else -1):
            try:  # 1 MiB pipes (Linux): a decoded clip crosses in a few reads, not dozens
                fcntl.fcntl(fd, F_SETPIPE_SZ, 1 << 20)
            except (OSError, ValueError):
                pass
        self.rfd = rfd
        self.jobs: deque[Job] = deque()
        self.sink = sink
        threading.Thread(target=self._read_all, daemon=True).start()

    def send(self, job: Job, settings: DecodeSettings) -> None:
        """Send a job already recorded in :attr:`jobs`. Never called with the pool's lock
        held: it may block until the process reads, and the process may first have to hand
        a result to the reader thread, which takes that lock."""
        assert self.proc.stdin is not None
        try:
            send(self.proc.stdin.fileno(), (job.clip, settings.args(job)))
        except (OSError, ValueError):
            pass  # the process is gone (or stopped): the reader thread reports it

    def _receive(self) -> tuple[int, audio.DecodeResult] | None:
        head = _read_exact(self.rfd, _HEAD.size)
        if head is None:
            return None
        body = _read_exact(self.rfd, _HEAD.unpack(head)[0])
        if body is None:
            return None
        return pickle.loads(body)

    def _read_all(self) -> None:
        try:
            while True:
                msg = self._receive()
                if msg is None:
                    break
                self.sink(self, msg)
        except (OSError, pickle.UnpicklingError, EOFError):
            pass
        finally:
            os.close(self.rfd)  # only this thread reads it: closed once it is done
            self.sink(self, None)

    def stop(self) -> None:
        """Close its input and signal it (not waiting); its reader thread then ends."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except OSError:
                pass


class DecoderPool:
    """Decoder processes and in-order delivery of their results.

    Parameters
    ----------
    workers : number of processes (>= 1)
    """

    def __init__(self, workers: int) -> None:
        self.cond = threading.Condition()
        self.done: dict[int, audio.DecodeResult] = {}
        self.dead: list[_Worker] = []
        self.closing = False
        self.workers = [_Worker(self._sink) for _ in range(max(1, workers))]

    def _sink(self, w: _Worker, msg: Any) -> None:
        with self.cond:
            if msg is None:
                if not self.closing:
                    self.dead.append(w)
            else:
                clip, result = msg
                for job in w.jobs:
                    if job.clip == clip:
                        w.jobs.remove(job)
                        break
                self.done[clip] = result
            self.cond.notify_all()

    def decode(
        self, jobs: Iterable[Job], settings: DecodeSettings, budget: int = PREFETCH_BYTES
    ) -> Iterator[tuple[Job, audio.DecodeResult]]:
        """Decode ``jobs``, yielding ``(job, result)`` in the order of ``jobs``.

        At most ``budget`` bytes of expected decoded audio (and :data:`MAX_IN_FLIGHT` files)
        are in flight; one job always is. Jobs go to the worker with the fewest.
        """
        todo = deque(jobs)
        order: deque[Job] = deque()  # submitted, not yet yielded
        in_flight = 0
        while todo or order:
            sends: list[tuple[_Worker, Job]] = []
            with self.cond:  # bookkeeping only: no I/O while the lock is held
                while todo and len(order) < MAX_IN_FLIGHT and (
                    not order or in_flight + todo[0].nbytes <= budget
                ):
                    job = todo.popleft()
                    w = min(self.workers, key=lambda w: len(w.jobs))
                    w.jobs.append(job)
                    sends.append((w, job))
                    order.append(job)
                    in_flight += job.nbytes
            for w, job in sends:
                w.send(job, settings)
            head = order[0]
            result = self._wait(head, settings)
            order.popleft()
            in_flight -= head.nbytes
            for message in result.extra.pop("warnings", []):
                warnings.warn(f"{shown_key(head.key)}: {message}", UserWarning, stacklevel=1)
            yield head, result

    def _wait(self, head: Job, settings: DecodeSettings) -> audio.DecodeResult:
        """The result of ``head``, replacing workers that died in the meantime."""
        while True:
            dead = None
            with self.cond:
                if head.clip in self.done:
                    return self.done.pop(head.clip)
                if self.dead:
                    dead = self.dead.pop(0)
                else:
                    self.cond.wait(timeout=0.2)
            if dead is not None:
                for w, job in self._replace(dead):
                    w.send(job, settings)
            interrupts.check()

    def _replace(self, w: _Worker) -> list[tuple[_Worker, Job]]:
        """A worker died: fail the job it was decoding and give the rest to a new worker.
        Returns the ``(worker, job)`` pairs the caller must send (outside the lock)."""
        code = w.proc.poll()
        if code is None:
            try:
                code = w.proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                code = None
        w.stop()
        fresh = _Worker(self._sink)
        with self.cond:
            self.workers.remove(w)
            self.workers.append(fresh)
            moved = list(w.jobs)
            w.jobs.clear()
            if moved:
                first = moved.pop(0)
                how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                reason = f"the decoder process died ({how}) while reading this file"
                if code == -signal.SIGKILL:  # the OOM killer's signal: --resume retries it
                    reason = reasons.transient(reason + " (out of memory?)")
                self.done[first.clip] = audio.DecodeResult(
                    audio.SourceInfo(key=first.key), "failed", reason=reason)
            fresh.jobs.extend(moved)
            self.cond.notify_all()
        return [(fresh, job) for job in moved]

    def close(self) -> None:
        """End every worker: close pipes, SIGTERM, SIGKILL after :data:`STOP_GRACE` s."""
        with self.cond:
            self.closing = True
        for w in self.workers:
            w.stop()
        deadline = time.monotonic() + STOP_GRACE
        for w in self.workers:
            try:
                w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.kill()
                try:
                    w.proc.wait(timeout=STOP_GRACE)
                except subprocess.TimeoutExpired:
                    pass  # unkillable (D state): never wait for it
        self.workers = []


class InlineDecoder:
    """``--workers 0``: decode in the main process, in order."""

    def decode(
        self, jobs: Iterable[Job], settings: DecodeSettings, budget: int = PREFETCH_BYTES
    ) -> Iterator[tuple[Job, audio.DecodeResult]]:
        for job in jobs:
            yield job, audio.decode_task(*settings.args(job))

    def close(self) -> None:
        pass


def cpu_count() -> int:
    """CPU cores this process may use."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, n or 1)


def default_workers() -> int:
    """Decoder processes: one per CPU core left after the main process, 1 to 8."""
    return max(1, min(8, cpu_count() - 1))


def make_decoder(workers: int) -> DecoderPool | InlineDecoder:
    """A pool of ``workers`` processes, or the inline decoder for 0."""
    return DecoderPool(workers) if workers > 0 else InlineDecoder()
