"""File-system faults a test can put on a real folder."""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal
import subprocess
from pathlib import Path
from typing import Callable, Iterator


def read_only_folder(folder: Path) -> Callable[[], None] | None:
    """Make ``folder`` read-only for this process: nothing can be created, renamed or deleted in it (a 0o555
    mode; for root, who ignores modes, the immutable attribute). Returns the undo, or None where neither is
    possible here (e.g. ``chattr`` missing or the file system without the attribute)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return lambda: folder.chmod(0o755)
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        return None
    return lambda: subprocess.run(["chattr", "-i", str(folder)], check=True)


def disk_full_at(monkeypatch, name: str) -> None:
    """The disk is full when a file named ``name`` (or a temporary of it: a name that holds ``name``) is made
    durable: ``os.fsync`` of it fails with ENOSPC, as on a file system with delayed allocation, where a full disk
    shows only when the data goes to disk. Other files are written as usual (the fault hits one output of a
    set). Linux: the file's name is read from /proc/self/fd."""
    real = os.fsync

    def fsync(fd: int) -> None:
        if name in os.path.basename(os.readlink(f"/proc/self/fd/{fd}")):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@contextlib.contextmanager
def file_size_limit(nbytes: int) -> Iterator[None]:
    """For the block, no file of this process may grow past ``nbytes``: a write past it fails part-way with EFBIG
    (RLIMIT_FSIZE, SIGXFSZ ignored), as a full disk fails one with ENOSPC; a real kernel fault, no root needed.
    Keep the block to the write under test (it holds for every file this process writes)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def permissions_enforced() -> list[str] | None:
    """The command prefix that runs a child process to which file modes apply: none needed when this process is
    not root; for root, ``setpriv`` dropping CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (root ignores modes only
    through them), so a folder's permission taken away is a real EACCES. None where neither is possible here."""
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
              "--bounding-set=-dac_override,-dac_read_search"]
    try:
        probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return prefix if probe.returncode == 0 else None
