"""Stage 2, decode: worker processes decode and resample inputs ahead of the compute stage.

:class:`DecoderPool` starts ``workers`` processes (:mod:`nnaudio_cli.extract.worker`, no
torch) when it is created, so they start while the main process builds the transform.
:meth:`DecoderPool.decode` hands out jobs in input order, keeps a bounded amount of decoded
audio in flight (by bytes, from the header durations) and yields the results **in input
order**, whichever worker finished first. A worker that dies (a decoder crash) fails the
file it was reading, with a reason, and is replaced. :meth:`DecoderPool.close` ends the
workers without waiting for them beyond a fixed bound (SIGTERM, then SIGKILL).

``workers=0`` decodes in the main process (:class:`InlineDecoder`; debugging, tiny jobs).
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import nnaudio_cli
from nnaudio_cli import audio
from nnaudio_cli.extract.worker import _HEAD, send

#: Upper bound on decoded audio in flight (bytes).
PREFETCH_BYTES = 512 * 1024 * 1024
#: Most files in flight.
MAX_IN_FLIGHT = 1024
#: Tasks queued per worker (one being decoded, one waiting).
PER_WORKER = 2
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
    nbytes : expected size of the decoded audio (float32 at the target rate)
    """

    clip: int
    path: str
    key: str
    nbytes: int


@dataclass(frozen=True)
class DecodeSettings:
    """What every job is decoded to: rate in Hz, mono, NaN policy."""

    sr: float
    mono: bool
    nan_policy: str

    def args(self, job: Job) -> tuple:
        # no streaming decisions in the worker: the batch plan made them
        return (job.path, job.key, self.sr, self.mono, sys.maxsize, self.nan_policy)


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
    """One decoder process and the jobs sent to it, oldest first."""

    def __init__(self) -> None:
        rfd, wfd = os.pipe()
        env = dict(os.environ, OMP_NUM_THREADS="1")
        root = str(Path(nnaudio_cli.__file__).resolve().parents[1])  # the same code as here
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "nnaudio_cli.extract.worker", str(wfd)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, pass_fds=(wfd,), env=env,
            )
        finally:
            os.close(wfd)
        self.rfd = rfd
        self.jobs: deque[Job] = deque()

    def submit(self, job: Job, settings: DecodeSettings) -> None:
        assert self.proc.stdin is not None
        send(self.proc.stdin.fileno(), (job.clip, settings.args(job)))
        self.jobs.append(job)

    def receive(self) -> tuple[int, audio.DecodeResult] | None:
        head = _read_exact(self.rfd, _HEAD.size)
        if head is None:
            return None
        body = _read_exact(self.rfd, _HEAD.unpack(head)[0])
        if body is None:
            return None
        return pickle.loads(body)

    def stop(self) -> None:
        """Close its pipes and signal it (not waiting)."""
        for close in (lambda: self.proc.stdin and self.proc.stdin.close(),
                      lambda: os.close(self.rfd)):
            try:
                close()
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
        self.workers = [_Worker() for _ in range(max(1, workers))]

    def decode(
        self, jobs: Iterable[Job], settings: DecodeSettings, budget: int = PREFETCH_BYTES
    ) -> Iterator[tuple[Job, audio.DecodeResult]]:
        """Decode ``jobs``, yielding ``(job, result)`` in the order of ``jobs``.

        At most ``budget`` bytes of expected decoded audio (and :data:`MAX_IN_FLIGHT` files)
        are in flight; one job always is.
        """
        todo = deque(jobs)
        order: deque[Job] = deque()  # submitted, not yet yielded
        done: dict[int, audio.DecodeResult] = {}
        in_flight = 0
        while todo or order:
            while todo and len(order) < MAX_IN_FLIGHT and (
                not order or in_flight + todo[0].nbytes <= budget
            ):
                w = min(self.workers, key=lambda w: len(w.jobs))
                if len(w.jobs) >= PER_WORKER:
                    break
                job = todo.popleft()
                self._submit(w, job, settings)
                order.append(job)
                in_flight += job.nbytes
            head = order[0]
            while head.clip not in done:
                self._collect(done, settings)
            order.popleft()
            in_flight -= head.nbytes
            yield head, done.pop(head.clip)

    def _submit(self, w: _Worker, job: Job, settings: DecodeSettings) -> None:
        try:
            w.submit(job, settings)
        except OSError:  # the worker is gone: replace it, then send the job there
            self._replace(w, {}, settings)
            self.workers[-1].submit(job, settings)

    def _collect(self, done: dict[int, audio.DecodeResult], settings: DecodeSettings) -> None:
        """Wait for the next result of any busy worker (a dead worker fails its job)."""
        busy = {w.rfd: w for w in self.workers if w.jobs}
        ready, _, _ = select.select(list(busy), [], [])
        for fd in ready:
            w = busy[fd]
            msg = w.receive()
            if msg is None:
                self._replace(w, done, settings)
                continue
            clip, result = msg
            w.jobs.remove(next(j for j in w.jobs if j.clip == clip))
            done[clip] = result

    def _replace(self, w: _Worker, done: dict[int, audio.DecodeResult],
                 settings: DecodeSettings) -> None:
        """A worker died: fail the job it was decoding, move the rest to a new worker."""
        code = w.proc.poll()
        if code is None:
            time.sleep(0.05)
            code = w.proc.poll()
        w.stop()
        self.workers.remove(w)
        fresh = _Worker()
        self.workers.append(fresh)
        if w.jobs:
            first = w.jobs.popleft()
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            done[first.clip] = audio.DecodeResult(
                audio.SourceInfo(key=first.key), "failed",
                reason=f"the decoder process died ({how}) while reading this file",
            )
            for job in w.jobs:
                fresh.submit(job, settings)

    def close(self) -> None:
        """End every worker: close pipes, SIGTERM, SIGKILL after :data:`STOP_GRACE` s."""
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
