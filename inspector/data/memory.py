"""Whether a set of images fits in memory once decoded, said in one line before any is decoded.

A set too large for the machine was killed by the kernel for memory with no message (``model.image_size:
[8192, 8192]`` on ten images: 1.9 GiB per copy); within the schema's sizes a large data set can still do it.
What each command keeps per pixel of the model's input:

- training decodes every good image once into uint8 (N, H, W, 3) arrays and keeps them (training/loop.py
  ``load_training_images``): the decoded set, then its train and validation copies (:data:`TRAINING_BYTES`);
- evaluation keeps the test set decoded (3 bytes), its float32 maps twice while they are joined (8), and the masks
  (1) (:data:`EVALUATION_BYTES`);
- calibration decodes 64 images at a time but keeps every float32 map, twice while they are joined
  (:data:`CALIBRATION_BYTES`).
"""

from __future__ import annotations

from pathlib import Path

from inspector.errors import DataError

COPIES = 2  # the decoded set and its train/validation copies, alive together while they are split
TRAINING_BYTES = COPIES * 3
EVALUATION_BYTES = 3 + 2 * 4 + 1
CALIBRATION_BYTES = 2 * 4
_GIB = 1 << 30


def available_memory_bytes(meminfo: str = "/proc/meminfo", proc_cgroup: str = "/proc/self/cgroup",
                           cgroup_root: str = "/sys/fs/cgroup") -> int | None:
    """Memory a new allocation can get without swapping or being killed, in bytes: the kernel's estimate
    (MemAvailable), and no more than this process's memory cgroup leaves below its limit (:func:`cgroup_memory_left`:
    in a container the kernel kills at the cgroup's limit whatever MemAvailable says); None where neither is
    known (not Linux, an old kernel, unreadable files)."""
    known = [n for n in (_meminfo_available(meminfo), cgroup_memory_left(proc_cgroup, cgroup_root)) if n is not None]
    return min(known) if known else None


def _meminfo_available(meminfo: str) -> int | None:
    try:
        with open(meminfo, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


_NO_LIMIT = 1 << 62  # cgroup v1 writes "no limit" as a page-rounded 2**63 - 1


def cgroup_memory_left(proc_cgroup: str = "/proc/self/cgroup", cgroup_root: str = "/sys/fs/cgroup") -> int | None:
    """Bytes this process's memory cgroup and its parents leave below their limits (limit − usage, the least over
    the levels that have one); None where no limit is set or none can be read.

    The group's path is its line in ``/proc/self/cgroup`` (the kernel's cgroup(7)): cgroup v2 ``0::/path`` with
    ``memory.max`` ("max": none) and ``memory.current``; v1 ``N:memory:/path`` with ``memory.limit_in_bytes`` and
    ``memory.usage_in_bytes`` under the ``memory`` hierarchy. In a cgroup namespace the path is ``/``: the mount
    point is the group itself."""
    try:
        with open(proc_cgroup, encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    left: list[int] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            mount, files = Path(cgroup_root), ("memory.max", "memory.current", "inactive_file")
        elif "memory" in parts[1].split(","):
            mount, files = Path(cgroup_root) / "memory", ("memory.limit_in_bytes", "memory.usage_in_bytes",
                                                          "total_inactive_file")
        else:
            continue
        folder = mount / parts[2].lstrip("/")
        while True:
            level = _cgroup_level_left(folder, *files)
            if level is not None:
                left.append(level)
            if folder == mount or mount not in folder.parents:
                break
            folder = folder.parent
    return min(left) if left else None


def _cgroup_level_left(folder: Path, limit_file: str, usage_file: str, inactive_key: str) -> int | None:
    """limit − (usage − inactive file cache) of one level. The usage counts the page cache, which the kernel
    reclaims before it kills: a dataset just read fills it, and without this a container would refuse work it
    can do (the working set, as Docker's ``stats`` and the kubelet's eviction compute it)."""
    try:
        limit_text = (folder / limit_file).read_text(encoding="ascii").strip()
        if limit_text == "max":
            return None
        limit, usage = int(limit_text), int((folder / usage_file).read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    if limit >= _NO_LIMIT:
        return None
    return max(0, limit - max(0, usage - _memory_stat(folder / "memory.stat", inactive_key)))


def _memory_stat(path: Path, key: str) -> int:
    """One counter of a cgroup's ``memory.stat`` in bytes; 0 where it is absent or unreadable."""
    try:
        for line in path.read_text(encoding="ascii").splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def require_image_memory(n_images: int, height: int, width: int, where: str, *, bytes_per_pixel: int = TRAINING_BYTES,
                         what: str = "training image(s)",
                         advice: str = "lower model.image_size or data.input_pixels, or train on fewer images") -> None:
    """DataError naming ``where`` when ``n_images`` at ``height``×``width`` (the model's input), at
    ``bytes_per_pixel`` each (:data:`TRAINING_BYTES`, :data:`EVALUATION_BYTES`, :data:`CALIBRATION_BYTES`), would
    not fit in the memory available now; nothing when they fit or the memory is not known."""
    need = bytes_per_pixel * n_images * height * width
    available = available_memory_bytes()
    if available is not None and need > available:
        raise DataError(f"{where}: {n_images} {what} at {height}x{width} need about {need / _GIB:.1f} GiB of "
                        f"memory, {available / _GIB:.1f} GiB is available: {advice}")
