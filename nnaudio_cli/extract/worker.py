"""The decoder process: ``python -m nnaudio_cli.extract.worker RESULT_FD [PARENT_PID]``.

Reads decode tasks from stdin and writes results to the file descriptor ``RESULT_FD``, both
as length-prefixed pickles (:func:`send`, :func:`receive`). It imports numpy, soundfile and
soxr (through :mod:`nnaudio_cli.extract.audio`), never torch, so it starts in a fraction of a
second.
Warnings raised while decoding travel back with the result
(``DecodeResult.extra["warnings"]``) instead of going to this process's stderr. It ignores
SIGINT (Ctrl-C reaches the whole process group; the main process ends the
workers) and exits when stdin closes, so a main process that dies, even by SIGKILL, leaves
no worker behind; on Linux the kernel also signals it when the parent dies
(``PR_SET_PDEATHSIG``), which covers a parent killed while the worker is still starting.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import warnings
from typing import IO, Any

_HEAD = struct.Struct("<Q")


def send(fd: int, obj: Any) -> None:
    """Write one message to a file descriptor (all of it)."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEAD.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def receive(stream: IO[bytes]) -> Any:
    """Read one message from a binary stream; None at end of stream."""
    head = stream.read(_HEAD.size)
    if len(head) < _HEAD.size:
        return None
    (n,) = _HEAD.unpack(head)
    body = stream.read(n)
    if len(body) < n:
        return None
    return pickle.loads(body)


def _die_with_parent(parent: int) -> None:
    """Linux: have the kernel end this process when its parent dies (even while it is still
    importing, before it could notice that stdin closed)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the call above
        os._exit(1)


def main() -> None:
    """Serve decode tasks ``(seq, args)`` with :func:`nnaudio_cli.extract.audio.decode_task`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if len(sys.argv) > 2:
        _die_with_parent(int(sys.argv[2]))
    out_fd = int(sys.argv[1])
    from nnaudio_cli.extract.audio import decode_task

    while True:
        task = receive(sys.stdin.buffer)
        if task is None:
            return
        seq, args = task
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = decode_task(*args)
        if caught:  # re-emitted by the main process, where the CLI shows them (or -q not)
            result.extra["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
        try:
            send(out_fd, (seq, result))
        except BrokenPipeError:
            return


if __name__ == "__main__":
    main()
