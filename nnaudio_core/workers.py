"""Block-parallel execution of a transform's independent pieces on the CPU.

PyTorch parallelises each operation on its own: every elementwise product, FFT or matrix
product forks the intra-op threads and waits for the slowest. A transform that works in
cache-sized blocks runs many such small parallel regions, and when another process keeps a
core busy, a descheduled thread stalls every one of them (measured on 2 cores with one
spinning neighbour: the blocked STFT ran 17x slower, torch.stft 1.4x).

:func:`map_blocks` parallelises at the coarser grain instead: the pieces (time segments or
groups of clips) go to the calling thread and ``torch.get_num_threads() - 1`` worker
threads, each running its pieces single-threaded and taking the next piece when it is
done. One join per call instead of one per operation, and a descheduled worker only delays
the piece it holds, while the others take the rest.

Only eager CPU calls that track no gradient use the workers (autograd and grad mode stay
with the caller's thread); everything else, TorchScript, ``torch.compile`` and
``torch.export`` included, runs the pieces in order in the calling thread.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Sequence, Tuple, TypeVar

import torch
from torch import Tensor, nn

from nnaudio_core.functional import join_frames

_POOLS: Dict[Tuple[int, int], ThreadPoolExecutor] = {}
_LOCK = threading.Lock()
# .threads: the count one_thread() took away; .mapping: inside map_blocks
_CALLER = threading.local()
T = TypeVar("T")
R = TypeVar("R")


def _single_threaded(barrier: threading.Barrier) -> None:
    """Worker initialiser: one intra-op thread in this worker (torch's and MKL's thread
    counts are per thread under OpenMP), then wait until every worker has started."""
    torch.set_num_threads(1)
    barrier.wait()


def _pool(n: int) -> ThreadPoolExecutor:
    """The pool of ``n`` single-threaded workers of this process (made on first use; a
    forked child makes its own, since threads do not survive a fork)."""
    key = (os.getpid(), n)
    with _LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            barrier = threading.Barrier(n + 1)
            pool = ThreadPoolExecutor(
                n, thread_name_prefix="nnaudio-block", initializer=_single_threaded,
                initargs=(barrier,),
            )
            for _ in range(n):  # start all n now, so that the barrier is reached
                pool.submit(int)
            barrier.wait()
            # torch.set_num_threads(1) in a worker also set the count new threads start
            # with: give it back (this thread's own count, which the workers left alone)
            torch.set_num_threads(torch.get_num_threads())
            _POOLS[key] = pool
        return pool


def _threads() -> int:
    """The caller's torch thread count (the one it had before :func:`one_thread`)."""
    return getattr(_CALLER, "threads", 0) or torch.get_num_threads()


@contextmanager
def one_thread(active: bool = True) -> Iterator[None]:
    """The calling thread computes with one intra-op thread for the duration (its count
    given back afterwards), while :func:`map_blocks` still uses the count it had for its
    workers: the glue around the pieces (joining them) then runs no parallel region that
    a busy neighbour could stall either. ``active=False``: no change."""
    n = torch.get_num_threads()
    if not active or n == 1 or getattr(_CALLER, "threads", 0):
        yield
        return
    _CALLER.threads = n
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
        _CALLER.threads = 0


def tracks_grad(module: nn.Module, x: Tensor) -> bool:
    """Whether a call of ``module`` on ``x`` records an autograd graph."""
    if not torch.is_grad_enabled():
        return False
    return x.requires_grad or any(p.requires_grad for p in module.parameters())


def parallel(x: Tensor, n_blocks: int, grad: bool) -> int:
    """Workers :func:`map_blocks` would use for ``n_blocks`` pieces of ``x`` (0: run them in
    order here): eager CPU, no gradient, more than one piece and more than one torch thread
    (one inside the workers, so nested calls run in order)."""
    if n_blocks < 2 or grad or x.device.type != "cpu" or getattr(_CALLER, "mapping", False):
        return 0
    if torch.jit.is_scripting() or torch.compiler.is_compiling():
        return 0
    n = _threads()
    return min(n, n_blocks) if n > 1 else 0


def map_blocks(
    fn: Callable[[T], R], blocks: Sequence[T], x: Tensor, grad: bool = False
) -> List[R]:
    """``[fn(b) for b in blocks]``, on the calling thread and the worker pool where
    :func:`parallel` allows.

    The calling thread works too (single-threaded for the duration, its thread count given
    back afterwards), so ``n`` torch threads mean ``n - 1`` workers; each thread takes the
    next piece when it is done with one.

    Parameters
    ----------
    fn : the work on one piece; it must not depend on the others
    blocks : the pieces (tensors, or what ``fn`` takes)
    x : the tensor the pieces come from (its device decides)
    grad : whether the call tracks gradients (see :func:`tracks_grad`); True runs in order

    Returns
    -------
    list of ``fn``'s results, in the order of ``blocks``
    """
    n = parallel(x, len(blocks), grad)
    if not n:
        return [fn(b) for b in blocks]
    pool = _pool(n - 1)
    enabled = torch.is_grad_enabled()
    inference = torch.is_inference_mode_enabled()
    results: List[Any] = [None] * len(blocks)
    order = iter(range(len(blocks)))
    lock = threading.Lock()
    stop = threading.Event()  # set on the first error: the others take no more pieces

    def drain() -> None:
        with torch.inference_mode(inference), torch.set_grad_enabled(enabled):
            while not stop.is_set():
                with lock:
                    i = next(order, None)
                if i is None:
                    return
                try:
                    results[i] = fn(blocks[i])
                except BaseException:
                    stop.set()
                    raise

    futures = [pool.submit(drain) for _ in range(n - 1)]
    try:
        with one_thread():
            _CALLER.mapping = True  # a piece's own map_blocks runs in order
            try:
                drain()
            finally:
                _CALLER.mapping = False
    finally:
        for f in futures:  # wait for every worker, also when this thread failed
            f.exception()
    for f in futures:
        f.result()  # a worker's error, raised here
    return results


#: Input samples per group of clips in :func:`map_clips` (6 clips of 40,000 samples).
CLIP_BLOCK_SAMPLES = 1 << 18


def clips_per_block(x: Tensor) -> int:
    """Clips of ``(batch, ...)`` per group in :func:`map_clips`."""
    return max(1, CLIP_BLOCK_SAMPLES // max(1, x[0].numel())) if x.shape[0] else 1


def map_clips(fn: Callable[[Tensor], Tensor], x: Tensor, module: nn.Module) -> Tensor:
    """``fn(x)`` for a ``fn`` that treats each clip of ``(batch, ...)`` on its own, computed
    on groups of about :data:`CLIP_BLOCK_SAMPLES` samples with :func:`map_blocks` and joined
    along the batch (one call of ``fn`` where that would not run in parallel)."""
    blocks = list(x.split(clips_per_block(x), 0))
    grad = tracks_grad(module, x)
    if not parallel(x, len(blocks), grad):
        return fn(x)
    with one_thread():
        return torch.cat(map_blocks(fn, blocks, x, grad), 0)


def map_segments(
    fn: Callable[[Tensor], Tensor], stft: nn.Module, x: Tensor, module: nn.Module | None = None
) -> Tensor:
    """An STFT-framed transform of packed ``(batch, samples)`` audio: ``stft`` pads ``x`` and
    cuts it into cache-sized segments (its ``pad`` and ``segments``), ``fn`` transforms each
    (on :func:`map_blocks`), and the parts are joined as
    :func:`nnaudio_core.functional.join_frames` does. ``module`` (default ``stft``) is the
    one whose parameters decide whether gradients are tracked."""
    grad = tracks_grad(stft if module is None else module, x)
    segments, time_blocks = stft.segments(stft.pad(x))
    with one_thread(parallel(x, len(segments), grad) > 0):
        return join_frames(map_blocks(fn, segments, x, grad), time_blocks)
