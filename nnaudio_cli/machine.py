"""What a benchmark ran on (CPU, GPU, library versions, git commit, threads) and how much
memory it used (host RSS on Linux, device peak on CUDA).

Host memory is read from ``/proc/self/status``: before each measured candidate the
high-water mark ``VmHWM`` is reset to the current RSS by writing ``5`` to
``/proc/self/clear_refs`` (Linux >= 4.0), and a sampling thread reads ``VmRSS`` every few
milliseconds as a fallback. The peak is the larger of the two. Where ``/proc`` is absent
(macOS, Windows) ``resource.getrusage`` is used: its ``ru_maxrss`` is the peak of the whole
process lifetime, which the JSON records as the method so that figures are not misread.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``, ``sysctl`` on macOS), else the arch."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True, text=True, timeout=5, check=False,
            )
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    """CPU cores this process may run on (affinity-aware)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def package_version(dist: str) -> str | None:
    """Installed version of a distribution, or ``None``."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit(start: Path | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the checkout holding this code."""
    where = start or Path(__file__).resolve().parents[1]
    info: dict[str, Any] = {"commit": None, "dirty": None}
    try:
        sha = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False,
        )
        if sha.returncode == 0:
            info["commit"] = sha.stdout.strip()
            st = subprocess.run(
                ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True, text=True, timeout=10, check=False,
            )
            info["dirty"] = bool(st.stdout.strip()) if st.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def thread_info() -> dict[str, Any]:
    """torch intra/inter-op threads, the thread environment variables and BLAS pools."""
    import torch

    info: dict[str, Any] = {
        "torch_intraop": torch.get_num_threads(),
        "torch_interop": torch.get_num_interop_threads(),
        "env": {
            k: os.environ[k]
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
            if k in os.environ
        },
        # librosa's FFTs are numpy.fft (pocketfft), single-threaded
        "librosa_fft": 1,
    }
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {"api": p.get("internal_api"), "threads": p.get("num_threads")}
            for p in threadpool_info()
        ]
    except Exception:  # noqa: BLE001 - optional, informational only
        pass
    return info


def gpu_name(device: Any = None) -> str | None:
    """Name of the CUDA device (the one benchmarked, else device 0), ``"mps"`` or ``None``."""
    import torch

    if torch.cuda.is_available():
        dev = device if device is not None and getattr(device, "type", "") == "cuda" else 0
        return torch.cuda.get_device_name(dev)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "Apple MPS"
    return None


def machine_info(device: Any = None) -> dict[str, Any]:
    """Everything needed to tell two benchmark runs' machines apart."""
    import numpy as np
    import torch

    git = git_commit()
    info = {
        "cpu_model": cpu_model(),
        "cores": usable_cores(),
        "cores_total": os.cpu_count(),
        "gpu": gpu_name(device),
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "librosa": package_version("librosa"),
        "nnaudio2": package_version("nnaudio2"),
        "nnaudio": package_version("nnaudio"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        "threads": thread_info(),
    }
    try:
        info["memory_total_mb"] = round(
            os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
        )
    except (ValueError, OSError, AttributeError):
        info["memory_total_mb"] = None
    return info


# --------------------------------------------------------------------------- memory


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
                self._thread.join()
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
