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
