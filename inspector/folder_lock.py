"""An exclusive advisory lock (flock(2)) on a folder itself, held by one process for as long as it writes there.

Used where two processes writing one folder destroy each other's work: the daemon's recorder.dir
(:mod:`inspector.pipeline.recorder`) and a training's run folder (:mod:`inspector.training.loop`). The lock
is on the directory, not on a lock file in it: nothing is added to the folder, and the kernel drops the
lock when the process ends, crashed or not, so there is never a stale lock to remove by hand. Readers
(evaluate, export, a tail of history.json) never take it: files there are replaced atomically.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class FolderBusy(Exception):
    """Another process holds the folder; ``holder`` is its pid (a string; 'unknown' without /proc/locks)."""

    def __init__(self, root: Path, holder: str) -> None:
        super().__init__(f"{root} is locked by pid {holder}")
        self.root, self.holder = root, holder


def lock_folder(root: Path, create: bool = True) -> int | None:
    """The directory ``root`` (made first if ``create``) open and flock'ed (LOCK_EX | LOCK_NB): the open
    descriptor, whose closing releases the lock. None where the file system cannot lock (ENOLCK, EOPNOTSUPP:
    some network shares; the caller warns). :class:`FolderBusy` when another process holds it; OSError
    when it cannot be made or opened."""
    if create:
        root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = lock_holder(fd)
        os.close(fd)
        raise FolderBusy(root, holder) from None
    except OSError:
        os.close(fd)
        return None
    return fd


def lock_holder(fd: int, locks: str = "/proc/locks") -> str:
    """The pid holding a flock on the file ``fd`` is open on, from Linux's /proc/locks (proc(5): "id: FLOCK
    ADVISORY WRITE pid major:minor:inode start end", device numbers in hex); 'unknown' elsewhere."""
    try:
        st = os.fstat(fd)
        with open(locks, encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return "unknown"
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK" or fields[0] == "->":  # "->": a waiter, not the holder
            continue
        major, minor, inode = (fields[5].split(":") + ["", "", ""])[:3]
        try:
            if (int(major, 16), int(minor, 16), int(inode)) == (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino):
                return fields[4]
        except ValueError:
            continue
    return "unknown"
