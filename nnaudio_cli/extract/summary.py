"""What a finished extraction reports: :class:`Summary` (``--json`` prints it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nnaudio_cli.extract.parts import Source
from nnaudio_cli.plumbing.text import stored_key


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

    def tally(self, keys: list[str], sources: Mapping[str, Source]) -> None:
        """Counts over every input (computed now or taken from earlier parts): ``sources``
        holds each key's row."""
        self.ok = self.failed = self.frames = 0
        self.audio_seconds = 0.0
        self.failures = []
        for k in keys:
            row = sources[k].row
            if row.ok:
                self.ok += 1
                first = self.features[0] if self.features else ""
                channels = max(1, int(row.stored_channels))
                self.frames += int(row.n_rows.get(first, 0)) // channels
                self.audio_seconds += float(row.duration)
            else:
                self.failed += 1
                self.failures.append({"key": stored_key(k), "reason": str(row.reason)})
