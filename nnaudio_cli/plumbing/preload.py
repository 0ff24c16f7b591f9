"""Import the heavy modules (torch, the transforms, HDF5) in a background thread.

``nnaudio extract`` starts its decoder processes, then this thread, then discovers the
inputs and reads their headers while torch loads (the import is most of a short run's
start-up). It also keeps start-up signals away from C extensions: CPython runs signal
handlers in the main thread only, so a Ctrl-C can never raise inside torch's pybind11
initialisers here (a ``KeyboardInterrupt`` raised in one escapes as a C++ exception and
aborts the process), and the main thread, waiting in :meth:`Preload.wait`, acts on it at
once instead of after the import.

The main thread must not import these modules itself before :meth:`Preload.wait` returns
(two threads importing the same modules meet in the import locks): it imports what it needs
during the overlap (numpy, soundfile, the decoders) before starting the thread.
"""

from __future__ import annotations

import importlib
import threading

from nnaudio_cli.plumbing import interrupts

#: What :class:`Preload` imports, in order: torch, the transforms (scipy), the extract
#: pipeline (h5py, soxr, rich).
EXTRACT_MODULES = ("torch", "nnaudio_core.features", "nnaudio_cli.extract.run")


def running() -> bool:
    """Whether a :class:`Preload` thread is still importing (the program must then leave
    with ``os._exit``: an interpreter teardown beside a half-done import can crash)."""
    return any(t.name == _NAME and t.is_alive() for t in threading.enumerate())


_NAME = "nnaudio-preload"


class Preload:
    """Import ``modules`` in a daemon thread, started at construction.

    Parameters
    ----------
    modules : module names, imported in order
    """

    def __init__(self, modules: tuple[str, ...] = EXTRACT_MODULES) -> None:
        self.modules = modules
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._load, name=_NAME, daemon=True)
        self.thread.start()

    def _load(self) -> None:
        try:
            for name in self.modules:
                importlib.import_module(name)
        except BaseException as e:  # noqa: BLE001 - re-raised by wait() in the main thread
            self.error = e

    def wait(self) -> None:
        """Return once every module is imported; re-raise the import's error. The wait is
        short slices, so SIGINT/SIGTERM raise :class:`KeyboardInterrupt` here at once."""
        while self.thread.is_alive():
            self.thread.join(0.05)
            interrupts.check()
        if self.error is not None:
            raise self.error
