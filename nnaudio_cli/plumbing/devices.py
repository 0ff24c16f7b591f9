"""Choosing the torch device: ``auto`` (cuda, then mps, then cpu), ``cpu``, ``cuda[:N]``,
``mps``."""

from __future__ import annotations

import re

import torch

from nnaudio_cli.errors import CliError

_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class DeviceError(CliError, ValueError):
    """A device that is malformed (``usage``: exit 2) or not available here (exit 1)."""


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(spec: str) -> torch.device:
    """Turn a ``--device`` value into an available :class:`torch.device`.

    Raises
    ------
    DeviceError
        Unknown spelling (``usage=True``) or a device this machine does not have.
    """
    s = spec.strip().lower()
    if not _PATTERN.match(s):
        raise DeviceError(
            f"--device {spec!r} is not one of auto, cpu, cuda, cuda:N, mps", usage=True
        )
    if s == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if s == "cpu":
        return torch.device("cpu")
    if s == "mps":
        if not _mps_available():
            raise DeviceError("--device mps: MPS is not available on this machine")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise DeviceError(f"--device {spec}: CUDA is not available on this machine")
    index = int(s.split(":")[1]) if ":" in s else 0
    n = torch.cuda.device_count()
    if index >= n:
        from nnaudio_cli.plumbing.text import count

        raise DeviceError(
            f"--device {spec}: only {count(n, 'CUDA device')} (cuda:0..cuda:{n - 1})"
        )
    return torch.device(f"cuda:{index}")
