"""Temporary files a process left behind when it died mid-write (SIGKILL, a power cut, the OOM killer).

A writer that names its temporaries with its own pid (``.subscribe-<pid>-<random>.part``) can tell, at its next
start, which ones will never be finished: their process is gone, or the pid now belongs to a process that started
after the file was last written (pids are reused; in a container the writer is pid 1 at every start). Only files
under the writer's own naming pattern are ever considered, so a user's file is never touched. Used by the recorder
and by ``subscribe --save-dir`` (standard library only: the subscriber does not import OpenCV).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

# a pid's start time is known to about a clock tick, a file's mtime to the file system's granularity
START_SLACK_S = 2.0


def pid_running(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (one of another user's counts too)."""
    if pid <= 0:  # no process's pid (and os.kill(0, …) would signal our process group)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OverflowError, ValueError):  # beyond any pid
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def process_start_s(pid: int) -> float | None:
    """When process ``pid`` started, in seconds since the epoch (Linux /proc, ±1 s); None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        btime = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
        return float(btime.split()[1]) + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def writer_gone(pid: int, mtime_s: float) -> bool:
    """Whether a temporary file written by process ``pid`` (last modified ``mtime_s``) will never be finished.
    Called at a start, before this process writes any: a file of its own pid is of an earlier life."""
    if pid == os.getpid():
        return True
    if not pid_running(pid):
        return True
    started = process_start_s(pid)
    return started is not None and mtime_s < started - START_SLACK_S


def remove_leftovers(folder: Path, pattern: re.Pattern, folders: bool = False) -> int:
    """Delete the regular files of ``folder`` (``folders``: the sub-folders instead, whole) whose name matches
    ``pattern`` (group 1: the writer's pid) and whose writer is gone (:func:`writer_gone`); returns how many. A
    link, or an entry of the other kind under such a name, is not ours and stays; one gone meanwhile, or refused,
    is left alone; a folder that cannot be listed gives 0."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    removed = 0
    kind = stat.S_ISDIR if folders else stat.S_ISREG
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if kind(st.st_mode) and writer_gone(int(match.group(1)), st.st_mtime):
                shutil.rmtree(entry.path) if folders else os.unlink(entry.path)
                removed += 1
        except OSError:
            pass
    return removed
