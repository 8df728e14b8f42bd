"""One trainer per run folder: an exclusive flock(2) on the folder for the life of a training.

Two trainers on one folder (``train --out runs/x`` running, a second ``train --out runs/x --resume``
started) overwrote each other's best.pt, history.json and config.yaml mid-run. Readers (evaluate,
export, enroll, predict) take no lock: the trainer replaces best.pt atomically (temp file + rename) and a
run still training is refused by ``load_model`` until its phases are done.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from inspector.errors import ConfigError
from inspector.folder_lock import FolderBusy, lock_folder

log = logging.getLogger(__name__)


@contextmanager
def hold_run_folder(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir`` (made if missing) for this block. ConfigError naming the folder and the holder's pid
    when another process trains there; where the file system cannot lock, a warning and no lock."""
    made = not run_dir.exists()
    try:
        fd = lock_folder(run_dir, create=True)
    except FolderBusy as busy:
        raise _busy(run_dir, busy) from None
    if fd is None:
        log.warning("cannot lock run folder %s; make sure no other training writes there", run_dir)
    try:
        yield
    except BaseException:  # an error or Ctrl-C before anything was written: no empty run folder left behind
        if made:
            _remove_if_empty(run_dir)
        raise
    finally:
        if fd is not None:
            os.close(fd)  # the only descriptor of the open file: closing it releases the flock


def refuse_if_held(run_dir: Path) -> None:
    """ConfigError naming the holder's pid when another training holds ``run_dir`` now; nothing otherwise (no
    folder, a free one, a file system that cannot lock). ``train`` asks this before it looks at what the folder
    holds: a second ``train --out`` on a folder still being trained was told "holds config.yaml … move them" (and
    ``--resume``, "nothing to resume") about files the running training was writing."""
    if not run_dir.is_dir():
        return
    try:
        fd = lock_folder(run_dir, create=False)
    except FolderBusy as busy:
        raise _busy(run_dir, busy) from None
    except OSError:  # cannot be opened: the training's own lock, or its first write, says why
        return
    if fd is not None:
        os.close(fd)


def _busy(run_dir: Path, busy: FolderBusy) -> ConfigError:
    return ConfigError(f"{run_dir}: another training (pid {busy.holder}) is writing this run folder; "
                       f"wait for it to end, or train into another --out")


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()  # only ever an empty folder: rmdir(2) refuses any other
    except OSError:
        pass
