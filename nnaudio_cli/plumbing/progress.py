"""Progress reporting: a rich progress bar on a terminal, plain log lines otherwise.

The total is the number of inputs this run computes, each counted once: an input computed
again (its part failed verification) is taken back with :meth:`Reporter.redo` first, so
the count never passes the total and the ETA is never negative.
"""

from __future__ import annotations

import sys
import time
from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from nnaudio_cli.plumbing.text import count


class Reporter:
    """Base reporter: counts files and audio; subclasses display them."""

    label = "extract"  # the command the progress belongs to

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.failed = 0
        self.audio_seconds = 0.0
        self.t0 = time.perf_counter()

    def start(self, total: int) -> None:
        """Begin a run over ``total`` files."""
        self.total = total
        self.t0 = time.perf_counter()

    def advance(self, audio_seconds: float, failed: bool = False) -> None:
        """One more file finished (``audio_seconds`` of its original audio)."""
        self.done += 1
        self.failed += int(failed)
        self.audio_seconds += audio_seconds

    def redo(self, n: int, failed: int = 0, audio_seconds: float = 0.0) -> None:
        """``n`` inputs finished in this run (``failed`` of them failed; ``audio_seconds`` of
        audio) are to be computed again: they leave the done count, the total stays."""
        self.done = max(0, self.done - n)
        self.failed = max(0, min(self.failed - failed, self.done))
        self.audio_seconds = max(0.0, self.audio_seconds - audio_seconds)

    def extend(self, n: int) -> None:
        """``n`` more inputs to compute (kept from an earlier run, then found damaged)."""
        self.total += n

    def eta(self) -> float | None:
        """Seconds left at the rate so far (never negative); None before the first input."""
        rate = self.rate()
        if not self.done or rate <= 0:
            return None
        return max(self.total - self.done, 0) / rate

    def finish(self) -> None:
        """The run is over (successfully or not)."""

    def rate(self) -> float:
        """Files per second so far."""
        return self.done / max(time.perf_counter() - self.t0, 1e-9)


class NullReporter(Reporter):
    """Shows nothing (``--quiet``)."""


class PlainReporter(Reporter):
    """One log line every ``interval`` seconds and at the end (for logs and CI).

    Parameters
    ----------
    stream : where to write (stderr by default)
    interval : seconds between lines
    """

    def __init__(self, stream: IO[str] | None = None, interval: float = 5.0) -> None:
        super().__init__()
        self.stream = stream or sys.stderr
        self.interval = interval
        self.last = 0.0

    def _line(self) -> str:
        left = self.eta()
        # no rate before the first file: show "--" rather than a made-up (or nan) time
        eta = "--" if left is None else f"{left:.0f} s"
        return (
            f"{self.label}: {self.done}/{count(self.total, 'file')}, {self.failed} failed, "
            f"{self.audio_seconds / 3600:.3f} h audio, {self.rate():.1f} files/s, ETA {eta}"
        )

    def advance(self, audio_seconds: float, failed: bool = False) -> None:
        super().advance(audio_seconds, failed)
        now = time.perf_counter()
        if now - self.last >= self.interval and self.done < self.total:
            self.last = now
            print(self._line(), file=self.stream, flush=True)

    def finish(self) -> None:
        print(self._line(), file=self.stream, flush=True)


class RichReporter(Reporter):
    """A rich progress bar: files, audio hours, files/s, elapsed and ETA."""

    def __init__(self, console: Console | None = None, label: str = "extract") -> None:
        super().__init__()
        self.label = label
        self.progress = Progress(
            TextColumn(f"[bold]{self.label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TextColumn("{task.fields[hours]:.3f} h audio"),
            TextColumn("{task.fields[rate]:.1f} files/s"),
            TextColumn("{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self.task = None

    def start(self, total: int) -> None:
        super().start(total)
        self.progress.start()
        self.task = self.progress.add_task(self.label, total=total, hours=0.0, rate=0.0,
                                           failed=0, unit=count(total, "file").split()[1])

    def advance(self, audio_seconds: float, failed: bool = False) -> None:
        super().advance(audio_seconds, failed)
        if self.task is not None:
            self.progress.update(
                self.task,
                advance=1,
                hours=self.audio_seconds / 3600,
                rate=self.rate(),
                failed=self.failed,
            )

    def redo(self, n: int, failed: int = 0, audio_seconds: float = 0.0) -> None:
        super().redo(n, failed, audio_seconds)
        self._refresh()

    def extend(self, n: int) -> None:
        super().extend(n)
        self._refresh()

    def _refresh(self) -> None:
        if self.task is not None:
            self.progress.update(self.task, total=self.total, completed=self.done,
                                 hours=self.audio_seconds / 3600, failed=self.failed,
                                 unit=count(self.total, "file").split()[1])

    def finish(self) -> None:
        self.progress.stop()


def make_reporter(quiet: bool = False, label: str = "extract") -> Reporter:
    """Rich bar when stderr is a terminal, plain lines otherwise, nothing when ``quiet``."""
    if quiet:
        reporter: Reporter = NullReporter()
    elif sys.stderr.isatty():
        return RichReporter(label=label)
    else:
        reporter = PlainReporter()
    reporter.label = label
    return reporter
