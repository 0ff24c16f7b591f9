"""What a benchmark ran on: CPU, GPU, library versions, git commit, threads, the load average
and the cores this process may use; JSON-safe values.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np

from nnaudio_cli import DISTRIBUTION


def usable_cores() -> int:
    """CPU cores this process may run on (affinity-aware)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def load_average() -> Optional[float]:
    """The 1-minute load average, None where the OS does not report it."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


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
        "nnaudio": package_version(DISTRIBUTION),
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


def load_warning() -> str | None:
    """One line when the 1-minute load average is above the cores this process may use
    (other processes then take CPU time from the measurement), else ``None``."""
    load, cores = load_average(), usable_cores()
    if load is None or load <= cores:
        return None
    return (f"load average {load:.1f} is above the {cores} usable core(s): other processes "
            "compete for the CPU, so the times are slower and noisier than on an idle machine")


def as_numpy_free(report: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe copy (numpy scalars to Python)."""
    def conv(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        if isinstance(v, np.generic):
            return v.item()
        return v

    return conv(report)
