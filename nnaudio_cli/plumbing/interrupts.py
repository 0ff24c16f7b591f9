"""Ctrl-C and SIGTERM for long commands: stop promptly, never print a stray traceback.

:func:`install` makes SIGINT and SIGTERM raise :class:`KeyboardInterrupt` at once (so a
blocking wait ends promptly) and also record the signal. The ``nnaudio`` program installs it
for the whole invocation (:mod:`nnaudio_cli.app`), commands again for their own work. When
the exception lands where Python cannot propagate it (a weakref callback, a ``__del__``),
CPython would print "Exception ignored ... KeyboardInterrupt" and carry on: the
``sys.unraisablehook`` installed here keeps that silent, and the recorded signal makes the
next :func:`check` (called by the pipeline between batches and while waiting for decoders)
raise it again, so the run still stops.

One place must not see the exception: C++ code that calls back into Python. ``import torch``
runs pybind11 module initialisers that do; a ``KeyboardInterrupt`` raised inside one escapes
as ``pybind11::error_already_set`` and the process aborts (SIGABRT, "terminate called ...").
So the heavy imports run in a background thread (:mod:`nnaudio_cli.plumbing.preload`): CPython runs
signal handlers in the main thread only. After a signal the program leaves with
``os._exit`` (:func:`interrupted_exit`), so no interpreter teardown runs over a module whose
import was cut short.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import Any

#: Signals received since :func:`install` (SIGINT/SIGTERM numbers).
RECEIVED: list[int] = []


def _handler(signum: int, frame: Any) -> None:
    RECEIVED.append(signum)
    raise KeyboardInterrupt


def _unraisable(default: Callable[[Any], None]) -> Callable[[Any], None]:
    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            return  # recorded in RECEIVED; check() raises it where it can propagate
        default(unraisable)

    return hook


def can_install() -> bool:
    """Whether :func:`install` can run here (signal handlers belong to the main thread)."""
    import threading

    return threading.current_thread() is threading.main_thread()


def install() -> Callable[[], None]:
    """Take over SIGINT and SIGTERM; returns a function that restores the previous state."""
    RECEIVED.clear()
    old = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    old_hook = sys.unraisablehook
    sys.unraisablehook = _unraisable(old_hook)

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)
        sys.unraisablehook = old_hook

    return restore


def check() -> None:
    """Raise :class:`KeyboardInterrupt` if a signal arrived (a safe point of a loop)."""
    if RECEIVED:
        raise KeyboardInterrupt


def exit_code() -> int:
    """143 when SIGTERM was received, else 130."""
    return 143 if signal.SIGTERM in RECEIVED else 130


def flush_streams() -> None:
    """Flush stdout and stderr, ignoring a closed or broken stream."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def is_program() -> bool:
    """True when this process is the ``nnaudio`` program (not a test runner calling it)."""
    import os

    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return (spec is not None and spec.name == "nnaudio_cli.__main__") or (
        os.path.basename(getattr(main, "__file__", "") or "") == "nnaudio")


def interrupted_exit(code: int) -> int:
    """Exit code of an interrupted run. As the real program, exit at once: a signal that
    interrupted an import can leave CPython set to re-raise SIGINT at exit, which would turn
    exit code 143 into a death by SIGINT. Within a test runner (CliRunner), just return."""
    import os

    if is_program():
        flush_streams()
        os._exit(code)
    return code
