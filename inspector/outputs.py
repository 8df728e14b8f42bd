"""Where a command or the daemon will write: checked before any work, so a bad place fails in one line.

A folder that is in fact a file, a file name that is an existing folder, or a path that runs through a
file (``notes.txt/report.json``) otherwise surfaces as an OSError after minutes of training, or, in the
daemon, as an error logged at shutdown while the run itself "succeeds" (no summary, no recordings).
Nothing is created here: ``--check`` and argument parsing leave the disk as it was.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


def _ancestor_problem(path: Path) -> str | None:
    """Why nothing can be created at ``path`` because of what is above it (None: nothing in the way)."""
    for parent in path.parents:
        if parent.is_dir():
            return None if os.access(parent, os.W_OK | os.X_OK) else f"cannot write in {parent} (permission denied)"
        if parent.exists() or parent.is_symlink():
            return f"{parent} is a file, not a folder"
    return None


def folder_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be (or become) a folder to write in, one phrase; None when it can."""
    path = Path(path)
    if path.is_dir():
        return None if os.access(path, os.W_OK | os.X_OK) else f"cannot write in {path} (permission denied)"
    if path.exists() or path.is_symlink():
        return f"{path} exists and is not a folder"
    return _ancestor_problem(path)


def file_problem(path: str | Path) -> str | None:
    """Why a file cannot be written at ``path``, one phrase; None when it can (an existing file is replaced).

    Only a regular file is replaced: outputs are written in place or renamed over the old file, so a device,
    pipe or socket there is refused (``subscribe --state /dev/null`` renamed its state over /dev/null, which a
    root user then lost for the whole machine; reading ``--state /dev/zero`` back never ended, until the
    kernel killed the subscriber for memory; a pipe blocked it for good).
    """
    path = Path(path)
    if path.is_dir():
        return f"{path} is a folder, not a file name"
    if path.exists() and not path.is_file():
        return f"{path} is not a regular file (a device, pipe or socket)"
    if path.exists():
        return None if os.access(path, os.W_OK) else f"cannot write {path} (permission denied)"
    return _ancestor_problem(path)


def link_new(tmp: Path, path: Path) -> None:
    """Give the file ``tmp`` the name ``path``; FileExistsError when it is taken (never replaces a file). Where
    the file system has no hard links (FAT, some network shares) it is renamed, after checking the name is free."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
        os.rename(tmp, path)
