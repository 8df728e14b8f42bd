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



# the top-level boxes an ISO base media file (MP4, MOV, 3GP) may begin with (ISO/IEC 14496-12 §4.3: ftyp first;
# QuickTime files written before it begin with the others)
_BMFF_FIRST = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")
_BMFF_MAX_BOXES = 4096  # top-level boxes walked at most (a fragmented recording has two per fragment)


def bmff_being_recorded(path: str | Path) -> bool:
    """Whether the file ``path`` is an ISO base media file (MP4, MOV …) as a muxer leaves it while recording: no
    ``moov`` box (the index every MP4 needs, written last) and a last box of size 0 (ISO/IEC 14496-12 §4.2: it
    runs to the end of the file; FFmpeg's, GStreamer's and OpenCV's writers put ``mdat`` so until they know its
    size). A muxer buffers what it writes, so a low-bitrate recording may not change for longer than
    :data:`SETTLE_S`: such a file is still being written while it changed within :data:`STALLED_S`. A finished
    file cut short (its boxes' sizes run past its end) is not this. False for any other file, or one that cannot
    be read."""
    try:
        with open(path, "rb") as fh:
            return _open_ended_without_index(fh, os.fstat(fh.fileno()).st_size)
    except OSError:
        return False


def _open_ended_without_index(fh, size: int) -> bool:
    """:func:`bmff_being_recorded` of the open file ``fh`` of ``size`` bytes."""
    pos = 0
    for _ in range(_BMFF_MAX_BOXES):
        fh.seek(pos)
        head = fh.read(16)
        if len(head) < 8 or (pos == 0 and head[4:8] not in _BMFF_FIRST) or head[4:8] == b"moov":
            return False
        n = int.from_bytes(head[:4], "big")
        if n == 0:
            return True  # the last box, to the end of the file, and no index before it
        if n == 1:
            n = int.from_bytes(head[8:16], "big") if len(head) == 16 else 0
        if n < 8:
            return False  # malformed: corrupt, not being written
        pos += n
    return False
