"""Whether a file is still being written (a recording or a picture being copied in), for the file and folder cameras.

On a local file system a file changed within :data:`SETTLE_S` of our clock is still being written. A network file
system (NFS, SMB/CIFS, sshfs …) stamps modification times by its *server's* clock: a NAS whose clock runs more than
:data:`SETTLE_S` behind ours made a recording being copied in look finished, so a one-pass run ended at the end of
what was there (exit 0, the rest never inspected), and a picture half copied was counted corrupt. There a file
counts as being written until it has been seen unchanged (inode, size, modification time) for :data:`SETTLE_S` by
our own clock (:class:`SettleWatch`). A finished file on such a share therefore ends SETTLE_S later; on a local
file system nothing changes. Linux's /proc/self/mountinfo (proc(5)) tells the file system of a file by its device
number; elsewhere every file is judged local. Standard library only.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from inspector.mounts import fs_type
from inspector.pipeline.recording_ends import being_recorded

SETTLE_S = 2.0  # a file changed more recently than this is still being written
# a picture whose data ends cut short (images.ends_cut_short) changed more recently than this is still being written:
# a slow copy or a camera SDK writing in bursts pauses longer than SETTLE_S mid-file
STALLED_S = 30.0
# file systems whose times come from another machine's clock (mountinfo's fstype field; fuse.* by its subtype)
REMOTE_TYPES = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "fuse.glusterfs",
                          "afs", "davfs", "fuse.sshfs", "fuse.rclone", "fuse.s3fs", "lustre", "gpfs", "beegfs",
                          "ocfs2", "gfs2", "fuse.cephfs", "fuse.davfs2"})
_MAX_WATCHED = 4096  # files one watch remembers (a folder of corrupt files): the oldest are forgotten past it


def written_recently(mtime_s: float, within_s: float = SETTLE_S) -> bool:
    """Modified within the last ``within_s`` s by our clock. A modification time in the future (the writer's
    clock runs ahead, or ours went back) is not "recent" for ever."""
    return abs(time.time() - mtime_s) < within_s


def is_remote(dev: int) -> bool:
    return (fs_type(dev) or "") in REMOTE_TYPES


class SettleWatch:
    """Whether files are still being written, remembering when each was last seen to change (one per camera)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[tuple[int, int, int], float]] = {}  # path → (signature, first seen, monotonic)

    def still_written(self, path: str | Path, within_s: float = SETTLE_S) -> bool:
        """True while ``path`` is being written: changed within ``within_s`` s (SETTLE_S; STALLED_S for a
        picture cut short) by its modification time, or — on a network file system — not yet seen unchanged for
        ``within_s`` by our clock. False for a missing file."""
        try:
            st = os.stat(path)
        except OSError:
            return False
        if written_recently(st.st_mtime, within_s):
            return True
        if not is_remote(st.st_dev):
            return False
        key, signature, now = str(path), (st.st_ino, st.st_size, st.st_mtime_ns), time.monotonic()
        seen = self._seen.get(key)
        if seen is None or seen[0] != signature:
            if len(self._seen) >= _MAX_WATCHED:
                self._seen.pop(next(iter(self._seen)))
            self._seen[key] = seen = (signature, now)
        return now - seen[1] < within_s

    def recording_still_written(self, path: str | Path) -> bool:
        """:meth:`still_written` for a video file: within :data:`STALLED_S` where its bytes say its muxer has not
        finished it (:func:`inspector.pipeline.recording_ends.being_recorded`: a writer paused longer than SETTLE_S),
        :data:`SETTLE_S` otherwise."""
        return self.still_written(path) or (self.still_written(path, STALLED_S) and being_recorded(path))

