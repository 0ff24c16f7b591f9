"""Measuring one candidate, shared by every mode: time (medians of timed passes, the device
synchronised), host and device memory, and ratios against ours.

Memory. Host memory is read from ``/proc/self/status``: before each measured candidate the
high-water mark ``VmHWM`` is reset to the current RSS by writing ``5`` to
``/proc/self/clear_refs`` (Linux >= 4.0), and a sampling thread reads ``VmRSS`` every few
milliseconds as a fallback. The peak is the larger of the two. Where ``/proc`` is absent
(macOS, Windows) ``resource.getrusage`` is used: its ``ru_maxrss`` is the peak of the whole
process lifetime, which the JSON records as the method so that figures are not misread.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from typing import Any

from nnaudio_cli.bench.peers import (
    OURS,
    Candidate,
)
from nnaudio_cli.bench.workload import (
    Workload,
)

_STATUS = "/proc/self/status"


_CLEAR_REFS = "/proc/self/clear_refs"


def _status_kb(field: str) -> int | None:
    try:
        with open(_STATUS, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open(_CLEAR_REFS, "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def memory_method() -> str:
    """How :class:`MemoryMeter` measures host memory here (recorded in the JSON)."""
    if _status_kb("VmRSS") is None:
        return "ru_maxrss (process lifetime peak)"
    if _reset_hwm():
        return "VmHWM after clear_refs reset, and VmRSS sampled every 5 ms"
    return "VmRSS sampled every 5 ms"


class MemoryMeter:
    """Peak host RSS (MB) and peak CUDA allocation (MB) while the ``with`` block runs.

    Attributes after exit: ``baseline_mb`` (RSS at entry), ``peak_mb`` (peak RSS during the
    block), ``delta_mb`` (``peak_mb - baseline_mb``), ``device_peak_mb`` (CUDA
    ``max_memory_allocated`` over the block, else ``None``).
    """

    def __init__(self, device: Any = None, interval: float = 0.005) -> None:
        self.device = device
        self.interval = interval
        self.baseline_mb: float | None = None
        self.peak_mb: float | None = None
        self.delta_mb: float | None = None
        self.device_peak_mb: float | None = None
        self._max_kb = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc = _status_kb("VmRSS") is not None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            kb = _status_kb("VmRSS")
            if kb is not None and kb > self._max_kb:
                self._max_kb = kb

    def __enter__(self) -> MemoryMeter:
        import gc

        gc.collect()
        if self._cuda():
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        if self._proc:
            _reset_hwm()
            self._max_kb = _status_kb("VmRSS") or 0
            self.baseline_mb = self._max_kb / 1024
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        else:
            self.baseline_mb = _ru_maxrss_mb()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._proc:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=5.0)  # the sampler wakes every interval
            hwm = _status_kb("VmHWM") or 0
            now = _status_kb("VmRSS") or 0
            self.peak_mb = max(self._max_kb, hwm, now) / 1024
        else:
            self.peak_mb = _ru_maxrss_mb()
        if self.peak_mb is not None and self.baseline_mb is not None:
            self.delta_mb = max(0.0, self.peak_mb - self.baseline_mb)
        if self._cuda():
            import torch

            torch.cuda.synchronize(self.device)
            self.device_peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20

    def _cuda(self) -> bool:
        return getattr(self.device, "type", None) == "cuda"


def _ru_maxrss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 2**20 if sys.platform == "darwin" else kb / 1024  # bytes on macOS


def synchronize(device: Any) -> None:
    import torch

    kind = getattr(device, "type", "cpu")
    if kind == "cuda":
        torch.cuda.synchronize(device)
    elif kind == "mps":
        torch.mps.synchronize()


def measure(c: Candidate, w: Workload, staged: dict[str, list[Any]]) -> dict[str, Any]:
    """Build, warm up and time one candidate; returns its result row (without ratios)."""
    import torch

    device = w.device if c.on_device else torch.device("cpu")
    batches = staged["numpy"] if c.takes == "numpy" else staged["torch"]
    meter = MemoryMeter(device)
    shapes: list[Any] = []
    with meter, torch.inference_mode():
        t0 = time.perf_counter()
        fn = c.build()
        synchronize(device)
        build = time.perf_counter() - t0

        t0 = time.perf_counter()
        seen = set()
        for b in batches:  # one batch of each distinct shape (the last one may be short)
            if tuple(b.shape) in seen:
                continue
            seen.add(tuple(b.shape))
            out = fn(b)
            shapes.append(list(out.shape[1:]))
            del out
        synchronize(device)
        warmup = time.perf_counter() - t0

        times = []
        for _ in range(w.repeat):
            t0 = time.perf_counter()
            for b in batches:
                fn(b)
            synchronize(device)
            times.append(time.perf_counter() - t0)
        del fn
    median = statistics.median(times)
    n = w.clips.shape[0]
    return {
        "transform": c.transform,
        "impl": c.impl,
        "detail": c.detail,
        "device": str(device),
        "build_seconds": round(build, 6),
        "warmup_seconds": round(warmup, 6),
        "seconds": median,
        "seconds_all": times,
        "clips_per_second": n / median,
        "audio_seconds_per_second": w.audio_seconds / median,
        "peak_rss_mb": _r(meter.peak_mb),
        "rss_delta_mb": _r(meter.delta_mb),
        "device_peak_mb": _r(meter.device_peak_mb),
        "output_shape_per_clip": shapes[0] if shapes else None,
    }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """``speedup_vs_ours`` = row seconds / nnaudio seconds for the rows of one transform."""
    ours = next(r for r in rows if r["impl"] == OURS)
    for r in rows:
        r["ours_seconds"] = ours["seconds"]
        r["speedup_vs_ours"] = r["seconds"] / ours["seconds"]


SPEEDUP_DEFINITION = (
    "speedup_vs_ours = peer seconds / nnaudio seconds (medians of the same run); "
    "> 1 means nnaudio is faster"
)
