"""The file system a path lies on, from Linux's /proc/self/mountinfo (proc(5)); standard library only.

Fields of a mountinfo line: id, parent, major:minor, root, mount point, options…, ``-``, type, source, options.
Elsewhere (no /proc) every type is unknown (None). Types are kept per device number: mount points rarely change.
"""

from __future__ import annotations

import os
from pathlib import Path

# Kernel file systems (proc(5), sysfs(5), cgroups(7)…): their folders refuse new entries (mkdir in /proc: ENOENT)
# and their files are kernel settings, although access(2) tells a root user they are writable
KERNEL_TYPES = frozenset({"proc", "sysfs", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs", "configfs",
                          "pstore", "bpf", "efivarfs", "devpts", "mqueue", "fusectl", "binfmt_misc", "nsfs",
                          "selinuxfs", "hugetlbfs", "rpc_pipefs", "autofs"})
_types: dict[int, str | None] = {}  # device number → file system type


def fs_type(dev: int) -> str | None:
    """The type of the mounted file system with device number ``dev`` (``os.stat(…).st_dev``), e.g. ``ext4``,
    ``nfs4``, ``proc``; None where unknown."""
    if dev not in _types:
        _types[dev] = _read_fs_type(f"{os.major(dev)}:{os.minor(dev)}")
    return _types[dev]


def _read_fs_type(major_minor: str) -> str | None:
    try:
        lines = Path("/proc/self/mountinfo").read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 2 and fields[2] == major_minor and " - " in line:
            after = line.split(" - ", 1)[1].split()
            return after[0] if after else None
    return None


def path_fs_type(path: str | Path) -> str | None:
    """The type of the file system that holds ``path``, or would hold it once made: that of its nearest existing
    folder (links followed); None where unknown."""
    for place in (Path(path), *Path(path).parents):
        try:
            return fs_type(os.stat(place).st_dev)
        except OSError:
            continue
    return None


class MountWatch:
    """The mount point an output folder (recorder.dir, ``subscribe --save-dir``) lay under when it was opened,
    to tell when that file system is no longer mounted there (:meth:`gone`): a USB evidence disk pulled or
    unmounted, a network share dropped. The folder's path then leads into the bare mount-point directory on the
    disk beneath (the system disk, usually), and a writer that makes its folder again there (as it does after a
    user deleted it) filled the system disk with evidence that the next mount hides from every reader.

    ``point`` is the nearest of ``path`` (links resolved) and its parents that is a mount point (os.path.ismount:
    on another device than its parent, or the root); a folder on the root file system gives ``/``, which never
    goes. A bind mount of a folder of the same file system is not seen as a mount point (no device change)."""

    def __init__(self, path: str | Path) -> None:
        place = Path(os.path.realpath(path))  # /data/rec with /data a link to a disk's mount point: that disk
        while not os.path.ismount(place):
            place = place.parent
        self.point = place

    def gone(self) -> bool:
        """Whether ``point`` is no longer a mount point (unmounted; its directory removed too). A stat or two.
        Before saying so, a look inside it: an automounted share (autofs) expired while idle is mounted again by
        that, as by the next write, and is not gone."""
        if os.path.ismount(self.point):
            return False
        try:
            os.stat(os.path.join(self.point, "."))  # follows into it: autofs mounts it
        except OSError:
            return True
        return not os.path.ismount(self.point)
