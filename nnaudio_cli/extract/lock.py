"""The work folder's lock: an exclusive ``fcntl.flock`` on ``OUTPUT.h5.parts/lock``.

A run holds it from start to end, assembly included; the file holds the owner's PID, so a
second run on the same output stops with one line naming it. The kernel drops the lock when
its holder dies: a SIGKILLed run leaves no stale lock.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from nnaudio_cli.errors import CliError

LOCK = "lock"


class ResumeError(CliError, ValueError):
    """Resuming (or starting) is not possible as asked; one line.

    ``usage`` is True when the user should change the flags (exit 2), False otherwise
    (exit 1).
    """


class WorkLock:
    """An exclusive ``flock`` on ``FOLDER/lock``, held for the whole run.

    Raises
    ------
    ResumeError
        Another live process holds it (the message names its PID).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.fd: int | None = None

    def acquire(self) -> None:
        path = self.folder / LOCK
        for _ in range(20):  # the folder may be removed by a run that is just finishing
            try:
                self.folder.mkdir(exist_ok=True)
                # read-only: a descriptor open for writing would keep the file system
                # from being remounted read-only (the PID is written through another one)
                fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
                    os.close(fd)
                    raise
                owner = _read_owner(fd)
                os.close(fd)
                raise ResumeError(
                    f"another nnaudio run{owner} is writing {self.folder.name[:-6]}; wait for "
                    "it to finish or stop it, then rerun with --resume"
                ) from None
            try:  # still the lock file of the folder (not one removed in the meantime)?
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                try:
                    with open(path, "w", encoding="ascii") as fh:
                        fh.write(f"{os.getpid()}\n")
                except OSError:
                    self.release()
                    raise
                return
            os.close(fd)
        raise ResumeError(f"{self.folder}: cannot take the lock (the folder keeps changing)")

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None


def _read_owner(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (PID {pid})" if pid.isdigit() else ""
