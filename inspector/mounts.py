"""The file system a path lies on, from Linux's /proc/self/mountinfo (proc(5)); standard library only.

Fields of a mountinfo line: id, parent, major:minor, root, mount point, options…, ``-``, type, source, options.
Elsewhere (no /proc) every type is unknown (None). Types are kept per device number: mount points rarely change.
"""

from __future__ import annotations

import os
import re
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


FSTAB = "/etc/fstab"  # fstab(5): the file systems this machine mounts, and where (read by :class:`MountWatch`)
_MOUNTINFO = "/proc/self/mountinfo"


def _unescaped(field: str) -> str:
    """A path field of fstab or mountinfo as the path itself: both write space, tab, newline and backslash as
    octal escapes (``\\040`` …)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def listed_mount_points(fstab: str | Path | None = None) -> list[Path]:
    """The mount points fstab(5) lists (second field; swap and ``none`` left out), links resolved; [] when it
    cannot be read."""
    try:
        lines = Path(fstab or FSTAB).read_text(errors="replace").splitlines()
    except OSError:
        return []
    points = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and not fields[0].startswith("#") and fields[1].startswith("/"):
            points.append(Path(os.path.realpath(_unescaped(fields[1]))))
    return points


def is_mounted(point: Path) -> bool:
    """Whether a file system is mounted at ``point`` now: os.path.ismount, or, for a bind mount of a folder of the
    same file system (no device change, which ismount cannot see), its line in /proc/self/mountinfo."""
    if os.path.ismount(point):
        return True
    try:
        lines = Path(_MOUNTINFO).read_text(errors="replace").splitlines()
    except OSError:
        return False
    return any(len(fields := line.split()) > 4 and Path(_unescaped(fields[4])) == point for line in lines)


class MountWatch:
    """The mount point an output folder (recorder.dir, ``subscribe --save-dir``) lay under when it was opened,
    to tell when that file system is no longer mounted there (:meth:`gone`): a USB evidence disk pulled or
    unmounted, a network share dropped. The folder's path then leads into the bare mount-point directory on the
    disk beneath (the system disk, usually), and a writer that makes its folder again there (as it does after a
    user deleted it) filled the system disk with evidence that the next mount hides from every reader.

    ``point`` is the nearest of ``path`` (links resolved) and its parents that is a mount point (os.path.ismount:
    on another device than its parent, or the root); a folder on the root file system gives ``/``, which never
    goes. A bind mount of a folder of the same file system is not seen as a mount point (no device change).

    A mount point that fstab(5) lists at or above ``path``, below ``point`` and not mounted now (a USB disk or
    share mounted ``nofail`` that is not there yet when the daemon starts at boot) is the one watched instead
    (``listed``): it is gone until it is mounted. Else the writer made its folder in the bare mount-point directory
    and wrote there, on the system disk, until the disk was mounted over it and hid those files from every reader."""

    def __init__(self, path: str | Path) -> None:
        real = Path(os.path.realpath(path))  # /data/rec with /data a link to a disk's mount point: that disk
        place = real
        while not os.path.ismount(place):
            place = place.parent
        self.point, self.listed = place, False
        awaited = [point for point in listed_mount_points() if point != place and place in point.parents
                   and (point == real or point in real.parents) and not is_mounted(point)]
        if awaited:
            self.point, self.listed = max(awaited, key=lambda point: len(point.parts)), True

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
        return not (is_mounted(self.point) if self.listed else os.path.ismount(self.point))
