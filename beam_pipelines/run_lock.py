"""One writer per output folder: a lock held for the life of the process that writes there.

`octojax train` (its run_dir), `octojax run` (its run_dir) and the CommitPack pipeline (its
--output) take `RunLock(folder)`; a second writer is refused at once, naming the holder (host,
PID, command, since when). The lock is an exclusive `flock` on `<folder>/.lock`, so the kernel
releases it when its process dies however it dies; the holder's description stays in the file,
and the next writer says whose lock it took over. Plain stdlib: every stage imports it (it lives
in the first stage's package, since no stage imports a later one; no Beam, no jax).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

LOCK_NAME = ".lock"


class FolderLocked(RuntimeError):
    """Another live process is writing to the folder."""


class RunLock:
    """`with RunLock(folder, "octojax train"):` or `acquire()` / `release()`."""

    def __init__(self, folder: str | os.PathLike, what: str, *, beside: bool = False):
        """beside: the lock file is `.<name>.lock` next to the folder, for a folder that is
        itself swapped whole when published (beam_pipelines/atomic_publish.py)."""
        self.folder, self.what = Path(folder), what
        self.path = (
            self.folder.parent / f".{self.folder.name}{LOCK_NAME}"
            if beside
            else self.folder / LOCK_NAME
        )
        self._fd: int | None = None
        self.took_over: dict | None = None  # the dead holder whose lock this one took over

    def acquire(self) -> RunLock:
        """Take the lock or raise FolderLocked naming its holder; says whose stale lock it took."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(_read(fd))
            os.close(fd)
            raise FolderLocked(
                f"{self.folder}: in use by {holder}; one writer at a time: wait for it to end "
                "or stop it (a lock of a process that died is taken over by itself)"
            ) from None
        previous = _read(fd)
        if previous:
            self.took_over = previous
            print(
                f"[lock] {self.folder}: took over the lock of {_describe(previous)}, which is no "
                "longer running",
                file=sys.stderr,
                flush=True,
            )
        _write(fd, _holder(self.what))
        self._fd = fd
        return self

    def release(self) -> None:
        """Clear the holder's description and unlock (a clean end leaves no stale holder)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(what: str) -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "command": what,
            "since": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip


def _describe(holder: dict | None) -> str:
    if not holder:
        return "another process"
    return (
        f"{holder.get('command', '?')} (PID {holder.get('pid', '?')} on "
        f"{holder.get('host', '?')}, since {holder.get('since', '?')})"
    )


def _read(fd: int) -> dict | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 65536)
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError:
        return {"command": "an unreadable lock"}


def _write(fd: int, holder: dict) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(holder) + "\n").encode())
    os.fsync(fd)
