"""Recorder: defect frames to disk on its own thread, never in the way of inspection.

For each published defect event it writes, under ``<dir>/<camera>/``, the
original frame (PNG), the heat map (PNG, when the event has one) and the event
header (JSON), all named ``r<run number>-<run start>-<run id>-<frame_id>-<event seq>``
(e.g. ``r000042-20250131T120000Z-3f9c0a1b2c3d-000000017-000000004.png``): the run id
is random per daemon start, so a restart never overwrites an earlier run's
evidence; the run number counts the runs that recorded in ``dir`` (one more than any in the names there;
no file of its own), and retention orders runs by it, never by the start
time, which is the wall clock's (a clock that ran ahead before NTP synced it made an old run outrank every
later one, whose recordings retention then deleted first). Recordings named without a run number (written
before it existed) are older than any numbered run. Files are created exclusively (never replaced) and whole (written under a hidden
temporary name, then linked: a full disk or a crash never leaves a truncated recording). The queue is
bounded (full → counted drop), and nothing is written while the disk has less
than ``min_free_bytes`` free. Retention keeps the folder under ``max_events`` /
``max_bytes`` by deleting the oldest recordings (those moved out or deleted by someone else stop
counting; one that cannot be deleted is logged, counted as ``recorder.delete_errors`` and left), and only
recordings: a file
is a recording only if its name matches :data:`RECORDING_NAME` inside the folder of a camera of this run
and its header (.json) beside it is the event header of that name (:func:`is_header_of`) (it is never a symlink, and nor is the folder: a linked camera folder is neither scanned nor written
into, :func:`camera_folder_problem`); notes, photos, copies of recordings in other folders, the folders of
cameras no longer configured and anything else users keep in ``dir`` are neither counted nor deleted. Retention
deletes a name only while it holds the very file counted (same device, inode and mtime, :data:`FileId`), through
the camera folder opened without following a link: what was put at a recording's name since (a user's file, a
link, a folder) and a camera folder replaced by a link are left as they are. The one
exception: what a process that died mid-write left (:data:`TEMPORARY_NAME` in a camera folder, whose writer is
gone, and the half a recording it marks) is removed at start, else each crash left it for ever. A camera
folder that cannot take recordings (a file, a link, chattr +i) costs that camera's recordings only
(counted as ``recorder.unusable``); the others are recorded. So does a camera folder that was the mount
point of a disk of its own and is no longer mounted (:meth:`RecorderWorker._camera_unmounted`). Files it wrote that it cannot remove (an immutable file, an append-only
folder: chattr +i/+a stop root too) are named in one line, counted and left, and recording goes on. Write
errors are counted and logged;
a full or broken disk never stops inspection.

One daemon records in a ``dir`` at a time: :func:`lock_recorder_dir` holds an exclusive advisory lock
(flock(2)) on the directory itself for the whole run. Two daemons on one folder counted each other's
recordings, so one's retention deleted the other's evidence and max_events/max_bytes were shared between
them. The kernel drops the lock when its process ends, crashed or not: no stale lock to remove by hand.
If the path stops naming the locked folder mid-run (renamed, removed), the folder now there is locked and
recorded in (:meth:`RecorderWorker._follow_dir`); if another daemon holds it, recording stops and each
defect is counted ``recorder.unusable``.

A recording is whole or absent to a reader: its header (JSON) is written last and marks it whole; the files
of one whose header could not be written are removed (the event counted as ``recorder.errors``). The header is
staged under its temporary name before the images and named last, and retention renames it back before deleting
the rest: a crash's half always lies beside that marker and is removed at the next start; a half without one
(a header a user or a log shipper took) is kept (:meth:`RecorderWorker._settle_halves`).
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import math
import os
import queue
import re
import shutil
import stat
import struct
import threading
import time
import zlib
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from inspector.errors import ConfigError
from inspector.folder_lock import FolderBusy, lock_folder
from inspector.leftovers import writer_gone
from inspector.mounts import MountWatch
from inspector.outputs import folder_problem, link_new
from inspector.pipeline.config import RecorderSection
from inspector.pipeline.frame import Frame
from inspector.pipeline.worker import Throttled, Worker, WorkerContext
from inspector.pipeline.telemetry import Counters

log = logging.getLogger("inspector.recorder")
_RECHECK_S = 10.0  # retention checks its books against the disk at most this often
# <run start UTC>-<run id>-<frame id>-<seq>[.heat].png|.json: the only names retention may delete
# (frame id and seq have 9 digits, more once a camera passes 10⁹ frames: a year at 30 fps)
# optional r<run number>- (6 to 12 digits, _MAX_RUN; absent in names written before run numbers existed)
_RECORDING = r"((?:r\d{6,12}-)?\d{8}T\d{6}Z-[0-9a-f]{12}-\d{9,}-\d{9,})(\.heat\.png|\.png|\.json)"  # (stem)(suffix)
# The highest run number: a run a second for 30,000 years. Bounded because the next run's number comes from the
# names in the folder: one user file named with a 190-digit run number made every later name too long for the
# file system (ENAMETOOLONG), each defect of every later run lost. A longer number is not a recording name.
_MAX_RUN = 10**12 - 1
_STEM = re.compile(r"^(?:r(\d+)-)?(\w+)-(\w+)-(\d+)-(\d+)\Z", re.ASCII)  # run number, start, run id, frame id, seq
# \Z, not $: '$' also matches before a final newline, and '<recording name>\n' is a user's file, not ours;
# re.ASCII: \d also matched other scripts' digits ('٢٠٢٥…', fullwidth '２０２５…'), never in the recorder's names
RECORDING_NAME = re.compile(rf"^{_RECORDING}\Z", re.ASCII)
_CAMERA_DIR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")  # as pipeline.config requires of camera names
# .<recording name>.<pid>.part: _create's temporary file (whose writer's pid is the last number); one is left
# behind only when its process died mid-write, and is then removed at the next start (_is_leftover)
TEMPORARY_NAME = re.compile(rf"^\.{_RECORDING}\.(\d{{1,10}})\.part\Z", re.ASCII)
_writing: set[str] = set()  # names of the temporary files this process is writing now (any recorder)


_SBIT_SAMPLES = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # PNG colour type → sBIT bytes (PNG spec §11.3.3.4)


def png_with_sbit(data: bytes, bits: int) -> bytes:
    """A PNG (bytes, as ``cv2.imencode`` writes it: IHDR first, no sBIT) with an sBIT chunk saying ``bits``
    significant bits per sample (1..16), placed right after IHDR as the PNG spec (§11.3.3.4) requires of it:
    before PLTE and IDAT. Every reader of the project takes a PNG's sBIT before any bit-depth setting."""
    color_type = data[25]  # signature (8) + IHDR length and type (8) + width, height, depth (9)
    body = b"sBIT" + bytes([bits]) * _SBIT_SAMPLES[color_type]
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    return data[:33] + chunk + data[33:]  # IHDR ends at 8 + 4 + 4 + 13 + 4


def recording_prefix(run_id: str, started_utc: str) -> str:
    """``2025-01-31T12:00:00.123Z`` + run id → ``20250131T120000Z-<run id>`` (sorts by start time)."""
    stamp = re.sub(r"[^0-9T]", "", started_utc.split(".")[0]) + "Z"
    return f"{stamp}-{run_id}"


def _temporary(path: Path) -> Path:
    """The hidden temporary name of ``path`` in this process: ``.<name>.<pid>.part`` (:data:`TEMPORARY_NAME`)."""
    return path.with_name(f".{path.name}.{os.getpid()}.part")


def _stage(path: Path, data: bytes) -> Path:
    """Write ``data`` whole to ``path``'s temporary name (:func:`_temporary`), on disk (fsync) before it gets a
    recording name: after a power cut a file linked before its data was written back (ext4 delays allocation)
    came back empty or short under that name. Returns the temporary name, listed in ``_writing`` until
    :func:`_drop`: another recorder of this process starting now must not take it for a leftover. On an error
    (a full disk, a file size limit) nothing is left and the error is raised."""
    tmp = _temporary(path)
    _writing.add(tmp.name)
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            os.fsync(fh.fileno())
    except BaseException:
        _drop(tmp, [])
        raise
    return tmp


def _drop(tmp: Path, kept: list[tuple[Path, OSError]]) -> None:
    """Remove the temporary file ``tmp`` (gone already: nothing to do); one that cannot be removed is appended
    to ``kept`` with the reason, for the caller to tell, and left (the next start tries again)."""
    try:
        tmp.unlink(missing_ok=True)
    except OSError as exc:  # raised here it hid the outcome of the write (and kept tmp in _writing)
        kept.append((tmp, exc))
    finally:
        _writing.discard(tmp.name)


def _create(path: Path, data: bytes, kept: list[tuple[Path, OSError]]) -> None:
    """Write a new file whole or not at all; FileExistsError rather than replacing anything.

    The bytes go to a hidden temporary name beside ``path`` (:func:`_stage`, never a recording name) and are
    then hard-linked to ``path``, which fails if it exists: a full disk, a file size limit or a crash mid-write
    never leaves a truncated file under a recording name. Where the file system has no hard links (FAT,
    some network shares) it is renamed instead, after checking that nothing is there.

    A temporary name that cannot be removed afterwards is appended to ``kept`` with the reason, for the
    caller to tell, and left: the file is whole once linked. An append-only folder (chattr +a, evidence that
    may be added to, never removed) links but never unlinks; raising there counted each defect as a write
    error while its image stayed on disk without its header. The name left is a second name of the same
    data (no space of its own); the next start tries again (:meth:`RecorderWorker._scan_folder`).
    """
    tmp = _stage(path, data)
    try:
        link_new(tmp, path)
    finally:
        _drop(tmp, kept)


# counters of defects that were published but not kept as evidence, with what the summary calls them
RECORDING_LOSSES = (("recorder.dropped", "queue full"), ("recorder.errors", "write errors"),
                    ("recorder.skipped_low_disk", "low disk"), ("recorder.abandoned", "unwritten at shutdown"),
                    ("recorder.unusable", "recorder folder unusable"))


def recording_losses(totals: dict, shutdown_timeout_s: float | None = None) -> str | None:
    """``'5 defect recording(s) lost (queue full 3, write errors 2)'`` from the final stats' ``totals``
    (counter name → count); None when every recorded defect was kept. For the run's closing failure line: a loss
    counted only in the stats went unseen by whoever reads the log. ``shutdown_timeout_s`` (seconds), when given,
    is told with those unwritten at shutdown: ``'(unwritten at shutdown 6; shutdown_timeout_s 1 s)'``."""
    parts = [(label, int(totals.get(key, 0))) for key, label in RECORDING_LOSSES if totals.get(key, 0)]
    if not parts:
        return None
    detail = ", ".join(f"{label} {n}" for label, n in parts)
    if shutdown_timeout_s is not None and totals.get("recorder.abandoned", 0):
        detail += f"; shutdown_timeout_s {shutdown_timeout_s:g} s"
    return f"{sum(n for _, n in parts)} defect recording(s) lost ({detail})"


def _is_leftover(path: Path, pid: int, mtime_s: float) -> bool:
    """Whether the temporary file ``path``, written by process ``pid`` (last modified ``mtime_s``), will
    never be finished (:func:`inspector.leftovers.writer_gone`: its process is gone, or holds the pid only
    now). Ours is a leftover unless this process is writing it now."""
    if pid == os.getpid():
        return path.name not in _writing
    return writer_gone(pid, mtime_s)


# (st_dev, st_ino, st_mtime_ns) of a file the recorder wrote or counted at start: retention deletes a file only
# while the name still holds that very file (:func:`_own_at`), never what a user, a link or a folder put in its
# place since. The modification time is part of it because a file system hands a freed inode number to the next
# file made: a user's picture saved over a recording's name had the recording's inode number and was deleted
FileId = tuple[int, int, int]
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC  # a link in the folder's place: ELOOP


def _regular(path: Path) -> tuple[FileId, int] | None:
    """Identity and size in bytes of the regular file ``path`` (a symbolic link is not followed: it is not one);
    None if it is gone or something else (a link, a folder)."""
    try:
        st = path.lstat()
    except OSError:
        return None
    return ((st.st_dev, st.st_ino, st.st_mtime_ns), st.st_size) if stat.S_ISREG(st.st_mode) else None


def _identified(paths: Iterable[Path]) -> dict[Path, FileId]:
    """``paths`` that are regular files, with their identities (:func:`_regular`)."""
    return {path: found[0] for path in paths if (found := _regular(path)) is not None}


def _own_at(folder_fd: int, name: str, file_id: FileId) -> bool | None:
    """Whether ``name`` in the folder open as ``folder_fd`` is still the regular file ``file_id``; None when
    nothing is there. False: something else stands there now (a user's file, a link, a folder)."""
    try:
        st = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    return stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino, st.st_mtime_ns) == file_id


def _unlink_own(folder_fd: int, path: Path, file_id: FileId) -> bool:
    """Unlink ``path``'s name in the folder open as ``folder_fd`` if it still names the file ``file_id``; True
    also when it is gone (nothing to do). False: left, something else stands there now (:func:`_own_at`).
    OSError when it cannot be unlinked."""
    own = _own_at(folder_fd, path.name, file_id)
    if own:
        os.unlink(path.name, dir_fd=folder_fd)
    return own is not False


def _unlink_each(files: dict[Path, FileId]) -> list[tuple[Path, OSError]]:
    """Unlink each of ``files`` (of one folder) that still holds its file (:func:`_unlink_own`), through the
    folder opened without following a link; returns those that could not be, each with why."""
    if not files:
        return []
    try:
        fd = os.open(next(iter(files)).parent, _FOLDER_FLAGS)
    except FileNotFoundError:
        return []
    except OSError as exc:  # a link in the folder's place: nothing is removed through it
        return [(path, exc) for path in files]
    left: list[tuple[Path, OSError]] = []
    try:
        for path, file_id in files.items():
            try:
                _unlink_own(fd, path, file_id)
            except OSError as exc:
                left.append((path, exc))
    finally:
        os.close(fd)
    return left


def _run_number(stem_name: str) -> int:
    """The run number in a recording's stem; 0 for a name written before run numbers existed."""
    number = _STEM.match(stem_name).group(1)
    return int(number) if number else 0


def _age_order(stem: Path) -> tuple:
    """Sort key of a recording's stem, oldest first: run number (0 before run numbers existed), then run start
    (which orders only runs without a number: it is the wall clock's), run id, frame id and seq as numbers (a
    10-digit frame id comes after a 9-digit one), then the camera folder."""
    number, start, run_id, frame_id, seq = _STEM.match(stem.name).groups()
    return int(number or 0), start, run_id, int(frame_id), int(seq), str(stem.parent)


def _capture_ns(header: Path) -> int | None:
    """``capture.monotonic_ns`` of the event header ``header`` (a recording's .json); None if it is missing,
    unreadable or not a header (only the first 64 KiB are read: headers are ~1 KB)."""
    try:
        with open(header, "rb") as fh:
            value = json.loads(fh.read(65536))["capture"]["monotonic_ns"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) else None


def is_header_of(header: Path, stem: Path) -> bool:
    """Whether the file ``header`` is the event header the recorder wrote for the recording ``stem``: a JSON
    object whose ``seq`` is the one in the name, and whose camera, run id and frame id, where it has them (every
    daemon's header does), are the folder's and the name's. A name alone did not make a file the recorder's:
    a user's notes, an empty '{}' or a picture saved in a camera folder under a recording-like name were
    counted as the oldest recordings and deleted by retention. Only the first 8 MiB are read (a header is at
    most events.MAX_HEADER_BYTES on the wire, ~1 KB usually); a link is not followed."""
    try:
        fd = os.open(header, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            doc = json.loads(fh.read(8 * 2**20))
    except (OSError, ValueError, RecursionError):
        return False
    _, _, run_id, frame_id, seq = _STEM.match(stem.name).groups()
    named = {"seq": int(seq), "frame_id": int(frame_id), "run_id": run_id, "camera": stem.parent.name}
    return (isinstance(doc, dict) and type(doc.get("seq")) is int
            and all(doc[key] == value and type(doc[key]) is type(value) for key, value in named.items() if key in doc))


def _in_capture_order(stems: list[Path]) -> list[Path]:
    """The recordings ``stems`` of one run, in name order, merged across camera folders by capture time.

    Frame ids and seqs count per camera, so the names order one camera's recordings but not two cameras':
    ordered by frame id, a slow camera's latest recordings came before a fast one's earliest and the next
    start's retention deleted them first. The header's ``capture.monotonic_ns`` (one clock for the whole
    run: no wall-clock steps) interleaves the cameras; each camera keeps its name order (a recording whose
    header is missing or unreadable takes its predecessor's time). One camera: nothing is read."""
    cameras = {stem.parent for stem in stems}
    if len(cameras) < 2:
        return stems
    keyed: list[tuple[int, int, Path]] = []
    last: dict[Path, int] = {}
    for index, stem in enumerate(stems):
        t = _capture_ns(stem.with_name(stem.name + ".json"))
        t = last[stem.parent] = max(t if t is not None else -1, last.get(stem.parent, -1))
        keyed.append((t, index, stem))
    return [stem for _, _, stem in sorted(keyed, key=lambda k: k[:2])]


def _age_sorted(stems: list[Path]) -> list[Path]:
    """Recording ``stems`` oldest first: by :func:`_age_order`, each run's cameras merged by capture time."""
    ordered: list[Path] = []
    for _, run in itertools.groupby(sorted(stems, key=_age_order), key=lambda stem: _age_order(stem)[:3]):
        ordered += _in_capture_order(list(run))
    return ordered


def _abandoned(path: Path, pid: int) -> bool:
    """Whether ``path``, named as a temporary file of process ``pid``, is a plain file that will never be
    finished (:func:`_is_leftover`). A link or folder under such a name is not ours; gone meanwhile: False."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and _is_leftover(path, pid, st.st_mtime)


def _highest_run(folder: Path) -> int:
    """The highest run number in the recording names in ``folder`` (0: none, or none numbered)."""
    return max((_run_number(m.group(1)) for p in _entries(folder) if (m := RECORDING_NAME.match(p.name))),
               default=0)


def _next_run_number(highest_seen: int) -> int:
    """The number of the run starting to record: one more than the highest in the recordings' names.

    Kept in the names only, never in a file of its own: recorder.dir holds evidence, and a counter file
    rewritten by every run is a file of an earlier run changed by the next (a check of "nothing of run 1
    changed" cannot tell it from evidence). Retention always keeps the newest recording, so the highest
    number in use survives; if a user deletes the last run's recordings, their number is given again,
    with another run id (names never collide). At :data:`_MAX_RUN` (reached only through a name someone else
    wrote) that number is used again: the run id keeps names apart, the start time orders those runs."""
    return min(highest_seen + 1, _MAX_RUN)


class RecorderDirLock:
    """recorder.dir held by this process: an exclusive flock(2) on the directory open as ``fd``, which was at
    ``root`` when locked. The path can stop naming it while the run goes on (the folder renamed or removed by
    hand, a share remounted): the lock then stays on the renamed folder and a second daemon could lock and
    record in a new folder at the path. :meth:`follow` re-locks whatever is at the path now."""

    def __init__(self, root: Path, fd: int) -> None:
        self.root, self.fd = root, fd
        self._mutex = threading.Lock()  # the recorder's thread re-locks, the daemon's releases

    def holds_path(self) -> bool:
        """Whether ``root`` still names the locked directory (same st_dev and st_ino; False once released)."""
        with self._mutex:
            if self.fd < 0:
                return False
            try:
                here, held = os.stat(self.root), os.fstat(self.fd)
            except OSError:  # gone
                return False
        return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)

    def follow(self) -> None:
        """Lock the folder at ``root`` now (made if missing) in place of the one held, which is let go.
        ConfigError when another daemon holds it (the old lock is kept); OSError when it cannot be made or
        opened; nothing after :meth:`release` (the run is over)."""
        fd = _open_locked(self.root, create=True)
        with self._mutex:
            if self.fd < 0:  # released meanwhile
                if fd is not None:
                    os.close(fd)
                return
            if fd is not None:  # None: this file system cannot lock (warned): nothing to hold
                os.close(self.fd)
                self.fd = fd

    def release(self) -> None:
        with self._mutex:
            if self.fd >= 0:
                os.close(self.fd)  # closing the only descriptor of the open file releases its flock
                self.fd = -1


def lock_recorder_dir(path: str | Path, create: bool = True) -> RecorderDirLock | None:
    """Hold recorder.dir ``path`` for this process: an exclusive flock(2) on the directory itself, held until
    :func:`release_recorder_dir` or the end of the process (the kernel releases it then, after a crash too).
    No lock file: nothing is written into the evidence folder that a later run would change. Returns the
    lock; None when ``path`` does not exist and ``create`` is False (``--check``: nobody records there) or
    its file system has no locks (a warning; some network shares).

    ConfigError naming ``path`` and the holder's pid (from /proc/locks where there is one) when another
    daemon holds it: two daemons on one folder count each other's recordings (one's retention deletes the
    other's evidence; budgets shared)."""
    root = Path(path)
    if not create and not root.is_dir():
        return None
    try:
        fd = _open_locked(root, create)
    except OSError as exc:
        raise ConfigError(f"recorder.dir: cannot use {root} ({exc.strerror or exc})", field="recorder.dir") from None
    return RecorderDirLock(root, fd) if fd is not None else None


def _open_locked(root: Path, create: bool) -> int | None:
    """The directory ``root`` (made first if ``create``) open and flock'ed (:func:`inspector.folder_lock.lock_folder`);
    None where the file system cannot lock (warned). ConfigError when another process holds it; OSError when it
    cannot be made or opened."""
    try:
        fd = lock_folder(root, create)
    except FolderBusy as busy:
        raise ConfigError(f"recorder.dir: {root} is in use by another daemon (pid {busy.holder}); two daemons "
                          f"recording in one folder delete each other's evidence: give each its own "
                          f"recorder.dir", field="recorder.dir") from None
    if fd is None:  # ENOLCK / EOPNOTSUPP: the file system cannot lock
        log.warning("recorder.dir: cannot lock %s; make sure no other daemon records there", root)
    return fd


def release_recorder_dir(lock: RecorderDirLock | None) -> None:
    """Let go of the lock :func:`lock_recorder_dir` returned (None: nothing held)."""
    if lock is not None:
        lock.release()


def camera_folder_problem(folder: str | Path) -> str | None:
    """Why the recorder cannot keep a camera's recordings in ``folder`` (``<recorder.dir>/<camera>``), one
    phrase; None when it can (missing: made at the first defect).

    A symbolic link is refused: the start's scan skips linked folders (a link to an archive or another disk
    must never have retention delete there), so recordings written through one were never counted again: each
    run was run 1 anew and no later run's retention pruned them. The recorder writes only where it looks."""
    if os.path.islink(folder):
        return (f"{folder} is a symbolic link; recordings are kept only in a real folder there (retention does "
                f"not follow links): replace it with a folder, or point recorder.dir elsewhere")
    return folder_problem(folder)


def _entries(folder: Path) -> list[Path]:
    """The entries of ``folder``; [] if it cannot be listed (gone meanwhile, no permission)."""
    try:
        return list(folder.iterdir())
    except OSError:
        return []


class RecorderWorker(Worker):
    def __init__(self, cfg: RecorderSection, stop: threading.Event, counters: Counters, run_id: str,
                 started_utc: str, context: WorkerContext | None = None,
                 dir_lock: RecorderDirLock | None = None, *, cameras: Iterable[str],
                 offline_cameras: Iterable[str] = (), bit_depths: dict[str, int | None] | None = None) -> None:
        """``cameras``: the names of the cameras it records, whose folders ``<dir>/<name>`` are the recorder's
        (:meth:`_scan_existing`). ``offline_cameras``: those of them whose source is offline (capture's
        ``is_live`` false) and may wait: put() waits for room for their defects instead of dropping, as capture
        does for their frames (nothing is lost to time). The daemon names them only when no camera is live
        (:class:`Daemon`): put() runs on the publisher thread, which a live camera's events share.
        ``bit_depths``: per camera, the significant bits of its 16-bit frames (the preprocessing's; None: the
        container's), written into their recordings (:func:`png_with_sbit`)."""
        self._offline = frozenset(offline_cameras)
        self._bit_depths = dict(bit_depths or {})
        super().__init__("recorder", stop, context)
        self._cameras = set(cameras)
        self._blocked: set[str] = set()  # cameras whose folder cannot take recordings (told; _camera_unusable)
        self._dir_lost = False  # recorder.dir became another daemon's: nothing more is recorded
        self.cfg, self.counters = cfg, counters
        self._lock = dir_lock  # the daemon's hold on cfg.dir (lock_recorder_dir); None: nothing to follow
        self._run_prefix = recording_prefix(run_id, started_utc)
        self.prefix = f"r{0:06d}-{self._run_prefix}"  # the run number is known once the folder is scanned
        if not RECORDING_NAME.match(f"{self.prefix}-{0:09d}-{0:09d}.png"):
            raise ValueError(f"recorder: run id {run_id!r} does not fit the recording names")
        self.root = Path(cfg.dir)
        self._mount = MountWatch(self.root)  # the file system recorder.dir lies on (:meth:`_unmounted`)
        self._off_mount = False  # that file system is no longer mounted (told)
        # camera → (its folder's st_dev when looked at, its own mount or None): :meth:`_camera_unmounted`
        self._camera_mounts: dict[str, tuple[int, MountWatch | None]] = {}
        self.inbox: queue.Queue = queue.Queue(maxsize=cfg.queue_size)
        # the books: one entry per recording, (its files with their identities, bytes), oldest first
        self._kept: collections.deque[tuple[dict[Path, FileId], int]] = collections.deque()
        self._bytes = 0
        self._checked_at = -math.inf  # when the books were last checked against the disk (_forget_removed)
        self._finishing = threading.Event()  # finish() was called: exit once the queue is empty
        self._throttle = Throttled(log)
        self._told_too_small = False  # "one recording exceeds max_bytes" was logged (once a run)
        self._failing: list | None = None  # [reason, counter, defects since]: recording fails for it (_trouble)
        # Each event taken into the queue is settled once: counted by its outcome (written, errors,
        # skipped_low_disk, dropped) or, when the run ends before it is written, as abandoned (abandon())
        self._books_lock = threading.Lock()
        self._accepted = 0  # events taken into the queue
        self._settled = 0  # … of which the outcome is counted
        self._abandoned = False  # abandon() was called: nothing more is recorded
        self.abandoned = 0  # events abandon() counted as not written (a failure of the run when > 0)

    # -- producer side (publisher thread) --------------------------------------------------
    def put(self, frame: Frame, header: dict) -> None:
        """Queue one defect for recording. Of a live camera: never blocks; a full queue drops it, counted as
        ``recorder.dropped`` and logged (throttled). Of an offline camera (``offline_cameras``): waits for room
        (_put_waiting), as capture blocks for offline frames: nothing is lost to time."""
        waits = frame.camera in self._offline
        with self._books_lock:
            if self._abandoned:  # the run's final stats are being taken: this one is not written
                self.counters.add("recorder.abandoned")
                return
            try:
                self.inbox.put_nowait((frame, header))
                self._accepted += 1
                return
            except queue.Full:
                if not waits:
                    self.counters.add("recorder.dropped")
        if waits and self._put_waiting(frame, header):
            return
        self._throttle.warning("full", "recorder: queue full (recorder.queue_size %d); camera '%s' frame %d "
                               "not recorded", self.cfg.queue_size, frame.camera, frame.frame_id)

    def _put_waiting(self, frame: Frame, header: dict) -> bool:
        """Offline: wait for room in the queue (backpressure on the publisher) until it is taken, the run
        stops or is abandoned. True when taken; False counts it as ``recorder.dropped`` (told by put())."""
        while not self.stop_event.wait(0.02):
            with self._books_lock:  # taken and booked at once, as in put() (abandon() counts accepted - settled)
                if self._abandoned:
                    break
                try:
                    self.inbox.put_nowait((frame, header))
                except queue.Full:
                    continue
                self._accepted += 1
                return True
        self.counters.add("recorder.dropped")
        return False

    def finish(self) -> None:
        """No more events will come; the worker writes what is queued and exits.

        Never blocks. (An end marker put into a full queue timed out while a slow disk worked through a
        burst of defects, and the worker, which only looked for the marker, waited on for ever.)
        """
        self._finishing.set()

    def abandon(self) -> int:
        """finish() did not end the worker within the shutdown timeout (a slow disk behind a full queue): the
        events still queued or being written are counted as ``recorder.abandoned`` now, before the final
        stats are taken, and the worker records nothing more after the one it is writing. Returns how many
        (0 on a second call). Before, the process ended with them unwritten and no count said so: 400
        defects published, 128 recorded, the final stats told of no loss.

        The one being written may still be finished before the process ends; it stays counted as
        abandoned (the final stats were taken), and is never counted twice."""
        with self._books_lock:
            if self._abandoned:
                return 0
            self._abandoned = True
            n = self.abandoned = self._accepted - self._settled
        if n:
            self.counters.add("recorder.abandoned", n)
            log.error("recorder: %d defect recording(s) not written: the disk did not keep up before the "
                      "shutdown timeout (recorder.abandoned)", n)
        return n

    def _settle(self, outcome: str) -> None:
        """Count one dequeued event's ``outcome`` (a counter name), unless abandon() counted it already."""
        with self._books_lock:
            if not self._abandoned:
                self.counters.add(outcome)
            self._settled += 1

    # -- worker side -------------------------------------------------------------------------
    def loop(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._scan_existing()
            if not self._unmounted():  # recorder.dir's disk not mounted yet: told at start, not at the first defect
                for camera in sorted(self._cameras):  # each camera that cannot be recorded is told at start
                    self._camera_unusable(camera)
        except OSError as exc:
            # No count here: each defect this costs is counted once as it comes (recorder.unusable); an
            # extra recorder.errors made the run's "lost" total one more than the defects lost
            log.error("recorder.dir: cannot use %s (%s); recording disabled", self.root, exc.strerror or exc)
            self._discard_until_end()
            return
        while (item := self._next()) is not None:
            outcome = self.record(*item)
            self._settle(outcome)
            if self._dir_lost:  # recorder.dir is another daemon's now
                self._discard_until_end()
                return

    def _next(self) -> tuple[Frame, dict] | None:
        """The next queued event, waiting for one; None once finish() was called and the queue is empty,
        or once abandon() was called."""
        while not self._abandoned:
            finishing = self._finishing.is_set()  # read before the queue: an event put before finish() is seen
            try:
                return self.inbox.get(timeout=0.1)
            except queue.Empty:
                if finishing:
                    return None
        return None

    def _discard_until_end(self) -> None:
        """Recording is off for the rest of the run: each event still coming is counted lost, once, as
        ``recorder.unusable`` (not as a full queue, which it is not)."""
        while self._next() is not None:
            self._settle("recorder.unusable")

    def _scan_existing(self) -> None:
        """Existing recordings of this run's cameras (names matching RECORDING_NAME in ``<dir>/<camera>``,
        nothing else) count towards retention, oldest first (by the run number and sequence in the name, which
        a copy, a touch or a wrong clock does not change; a run's cameras merged by the headers' monotonic
        capture time, :func:`_in_capture_order`); this run's number is the next past every recording name in
        any folder of ``dir``.

        Only the folders of the cameras it records (``cameras``) are the recorder's: recording names in any
        other folder of ``dir`` (a user's copies in 'keep/', a camera no longer configured) are read for their
        run numbers only, never cleaned nor deleted by retention. Before, every folder with a camera-like
        name was under retention: copies a user kept in one were deleted as the oldest recordings."""
        groups: dict[Path, list[tuple[Path, FileId, int]]] = collections.defaultdict(list)
        marks: dict[Path, Path] = {}  # stem → the marker of a recording a crash cut short (_scan_folder)
        highest, others = 0, []
        for folder in self.root.iterdir():
            if not _CAMERA_DIR.match(folder.name) or folder.is_symlink() or not folder.is_dir():
                continue
            if folder.name in self._cameras:
                self._scan_folder(folder, groups, marks)
            elif run := _highest_run(folder):
                highest = max(highest, run)
                others.append(folder.name)
        if others:
            log.info("recorder: recordings in %s of %s (no camera of this run) are kept, not under retention",
                     self.root, ", ".join(sorted(others)))
        # Numbered past every recording here, halves too: a half that cannot be removed keeps its number, and
        # a run numbered without it shared that number (its order then left to the wall clock)
        number = _next_run_number(max([highest, *(_run_number(stem.name) for stem in [*groups, *marks])]))
        self._settle_halves(groups, marks)
        self._leave_foreign(groups)
        stems = _age_sorted(list(groups))
        self.prefix = f"r{number:06d}-{self._run_prefix}"
        for stem in stems:
            files = groups[stem]
            self._kept.append(({path: file_id for path, file_id, _ in files}, sum(n for *_, n in files)))
            self._bytes += self._kept[-1][1]
        self._tell_deleted_at_start(len(self._kept), self._enforce_retention())

    def _scan_folder(self, folder: Path, groups: dict[Path, list[tuple[Path, FileId, int]]],
                     marks: dict[Path, Path]) -> None:
        """The recordings of the camera folder ``folder`` into ``groups`` (stem → [(file, identity, bytes)],
        regular files only: a link or folder under a recording's name is not one); the header
        temporary files of writers that are gone into ``marks`` (stem → file: :meth:`_settle_halves`); other
        temporary files of writers that are gone (:func:`_abandoned`) removed, else each crash left one for
        ever. Entries may vanish while we look (another daemon's retention on the same dir, a user): they are
        skipped, never a reason to give up recording for the whole run."""
        removed, left = 0, []
        for path in _entries(folder):
            match = RECORDING_NAME.match(path.name)
            if match and (found := _regular(path)) is not None:
                groups[folder / match.group(1)].append((path, *found))
            elif (part := TEMPORARY_NAME.match(path.name)) and _abandoned(path, int(part.group(3))):
                if part.group(2) == ".json":
                    marks[folder / part.group(1)] = path
                else:
                    removed += self._remove_leftover(path, left)
        if removed:
            log.info("recorder: removed %d temporary file(s) left in %s by a crash mid-write", removed, folder)
        self._tell_left(left, "temporary file(s) of a crash mid-write")

    def _leave_foreign(self, groups: dict[Path, list[tuple[Path, FileId, int]]]) -> None:
        """Take off ``groups`` (stem → files, each with a header by now) the stems whose header is not one the
        recorder wrote for that name (:func:`is_header_of`): files a user named like recordings. Neither counted
        nor ever deleted; told in one line (``recorder.foreign``)."""
        foreign = [stem for stem, files in groups.items()
                   if not is_header_of(next(p for p, *_ in files if p.suffix == ".json"), stem)]
        for stem in foreign:
            del groups[stem]
        if foreign:
            self.counters.add("recorder.foreign", len(foreign))
            log.warning("recorder: %d file set(s) in %s are named like recordings but their .json is no event header "
                        "of that name, e.g. %s* (recorder.foreign); kept, not under retention", len(foreign),
                        self.root, min(foreign, key=_age_order))

    def _settle_halves(self, groups: dict[Path, list[tuple[Path, FileId, int]]], marks: dict[Path, Path]) -> None:
        """Recordings in ``groups`` (stem → files) without their header, which is written last.

        A crash's half is told by its marker, never by where it sits: the header is staged under its temporary
        name before any file of the recording is written and named last, and retention renames it back to
        that name before it deletes the rest (:meth:`_delete_recording`), so a recording cut short by a crash,
        written or deleted, always has its header's temporary file of a writer that is gone beside it
        (``marks``). Those halves are removed, then their markers (``recorder.incomplete_removed``,
        ``recorder.leftovers_removed``): a recording is whole or absent. Any other half is not the recorder's
        doing (headers moved out by a user or a log shipper, images copied in, a user's file with a
        recording-like name): it is kept, counted as ``recorder.incomplete``, and not under retention (nothing
        tells it is the recorder's: retention deleted such a lone picture as the oldest recording). Before, a half was taken for a crash's
        by its place (the newest of the last run in its folder): the image of the last recording, whose header
        a shipper had taken, or a user's copy alone in a folder, was deleted at the next start."""
        halves = {stem for stem, files in groups.items() if not any(p.suffix == ".json" for p, *_ in files)}
        crashed = {stem for stem in halves & marks.keys() if is_header_of(marks[stem], stem)}
        for stem in halves - crashed:
            del groups[stem]  # nothing tells they are the recorder's: never deleted (a user's lookalike name)
        if others := halves - crashed:
            self.counters.add("recorder.incomplete", len(others))
            first = min(others, key=_age_order)
            log.warning("recorder: %d recording(s) in %s have no event header, e.g. %s* (recorder.incomplete); "
                        "kept", len(others), self.root, first)
        left: list[tuple[Path, OSError]] = []
        removed = 0
        for stem in sorted(crashed, key=_age_order):
            kept = self._remove_half({path: file_id for path, file_id, _ in groups.pop(stem)})
            left += kept
            removed += not kept
        if removed:  # only those removed: "removed 1" was said of a half that stayed
            self.counters.add("recorder.incomplete_removed", removed)
            log.info("recorder: removed %d recording(s) without an event header from %s (a crash between "
                     "files)", removed, self.root)
        self._tell_left(left, "file(s) of recordings without an event header (counted as recorder.incomplete)")
        left = []  # the markers last: a crash before this point leaves the halves marked for the next start
        if removed := sum(self._remove_leftover(marker, left) for marker in marks.values()):
            log.info("recorder: removed %d temporary file(s) left in %s by a crash mid-write", removed, self.root)
        self._tell_left(left, "temporary file(s) of a crash mid-write")

    def _remove_leftover(self, path: Path, left: list[tuple[Path, OSError]]) -> bool:
        """Delete ``path``, a temporary file a crash left (:func:`_abandoned`); True if deleted. Gone
        meanwhile: nothing to do. One that cannot be deleted (an immutable file, an append-only folder) is
        counted as ``recorder.leftovers_kept``, appended to ``left`` with the reason for one line, and left:
        before it was skipped in silence at every start."""
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            self.counters.add("recorder.leftovers_kept")
            left.append((path, exc))
            return False
        self.counters.add("recorder.leftovers_removed")
        return True

    def _tell_left(self, left: list[tuple[Path, OSError]], what: str) -> None:
        """One line (throttled per ``what``) for files the recorder wrote but cannot remove, ``left`` (path,
        error): the first one named, with why and how many more. They stay; recording goes on."""
        if not left:
            return
        path, exc = left[0]
        more = f" and {len(left) - 1} more" if len(left) > 1 else ""
        self._throttle.warning(what, "recorder: cannot remove %s %s%s (%s); left in place", what, path, more,
                               exc.strerror or exc)

    def record(self, frame: Frame, header: dict) -> str:
        """Write one defect's recording, whole or not at all; returns its outcome, the counter the caller adds:
        ``recorder.written``, ``recorder.skipped_low_disk``, ``recorder.errors`` (logged, throttled) or
        ``recorder.unusable`` (recorder.dir was replaced by another daemon's: nothing more is recorded; or
        the camera's folder cannot be written in, :meth:`_camera_unusable`)."""
        try:
            if self._unmounted():
                return "recorder.unusable"
            if not self._follow_dir():
                self._dir_lost = True
                return "recorder.unusable"
            if self._camera_unusable(frame.camera):
                return "recorder.unusable"
            folder = self.root / frame.camera
            # recorder.dir itself may have been removed since start: made again here only when no lock is held
            # (else _follow_dir made and locked it: a folder made here would be nobody's)
            folder.mkdir(parents=self._lock is None, exist_ok=True)
            free = shutil.disk_usage(folder).free
            if free < self.cfg.min_free_bytes:
                self._trouble(f"only {free // 1_000_000} MB free on {self.root} (recorder.min_free_bytes "
                              f"{self.cfg.min_free_bytes})", "recorder.skipped_low_disk")
                return "recorder.skipped_low_disk"
            stem = folder / f"{self.prefix}-{frame.frame_id:09d}-{header.get('seq', 0):09d}"
            files: list[Path] = []
            temporaries: list[tuple[Path, OSError]] = []  # that _create could not remove
            try:
                self._write_recording(stem, frame, header, files, temporaries)
            finally:
                if temporaries:  # a counter added as 0 showed in every run's stats
                    self.counters.add("recorder.leftovers_kept", len(temporaries))
                    self._tell_left(temporaries, "temporary file(s)")
            self._book(files)
            self._enforce_retention()
            self._trouble_over()
            return "recorder.written"
        except Exception as exc:  # noqa: BLE001 - disk trouble is counted, inspection goes on
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._trouble(f"cannot write camera '{frame.camera}' frame {frame.frame_id} in {self.root}: {why}",
                          "recorder.errors", key=why)
            return "recorder.errors"

    def _trouble(self, what: str, counter: str, key: str | None = None) -> None:
        """One line when recording starts failing for a reason (a full disk, too little free space, a read-only
        or broken file system), not one per defect: a full disk logged five lines in its first second, then
        one every 100 defects for as long as it stayed full. The same reason again says nothing more (each
        defect is counted as ``counter``); another reason, or recording again (:meth:`_trouble_over`), is told."""
        key = key or counter
        if self._failing is not None and self._failing[0] == key:
            self._failing[2] += 1
            return
        self._trouble_over()
        self._failing = [key, counter, 1]
        log.warning("recorder.dir: %s; defects are not recorded (counted as %s) until this clears", what, counter)

    def _trouble_over(self) -> None:
        """Recording works again after :meth:`_trouble`: one line with how many defects it cost."""
        if self._failing is not None:
            _, counter, n = self._failing
            self._failing = None
            log.warning("recorder.dir: recording again after %d defect(s) not recorded (%s)", n, counter)

    def _camera_unusable(self, camera: str) -> bool:
        """Whether ``camera``'s folder cannot take recordings now (:func:`camera_folder_problem`: a file, a
        symbolic link, a folder that cannot be written in, an immutable one, chattr +i, that stops root too).
        That camera is inspected and published as ever, its defects counted as ``recorder.unusable``; the
        others are recorded. Told in one line when found and when it can be recorded again. Before, such a
        folder stopped the daemon at start, for every camera.

        Looked at for each defect (an lstat and an access(2), microseconds against a recording's milliseconds):
        looked at again only every 10 s, a folder put right (its permission given back, chattr -i, a share
        remounted writable) lost up to 10 s more of that camera's evidence (50 defects at 5 a second)."""
        why = self._camera_unmounted(camera) or camera_folder_problem(self.root / camera)
        if why is None:
            if camera in self._blocked:
                self._blocked.discard(camera)
                log.warning("recorder.dir: camera '%s' is recorded again", camera)
            return False
        if camera not in self._blocked:
            self._blocked.add(camera)
            log.error("recorder.dir: camera '%s' is not recorded: %s; it is still inspected, its defects counted "
                      "as recorder.unusable", camera, why)
        return True

    def _camera_unmounted(self, camera: str) -> str | None:
        """Why ``camera``'s folder cannot take recordings because it was the mount point of a file system of its
        own (a disk or share per camera) that is no longer mounted, or one /etc/fstab lists that is not mounted
        yet; None otherwise. The folder is then the bare mount-point directory on the disk beneath: recordings
        written there filled the system disk, said nothing, and the next mount hid them from every reader
        (:meth:`_unmounted` watched recorder.dir's own mount only).

        A folder found on recorder.dir's file system costs one lstat per defect: its mount is looked for again
        (:class:`MountWatch`, ~0.3 ms) only when its device changed, so a disk mounted there mid-run is watched
        from the next defect on."""
        seen = self._camera_mounts.get(camera)
        if seen is None or seen[1] is None:
            try:
                st = os.lstat(self.root / camera)
            except OSError:  # missing: made at the first defect, on recorder.dir's file system
                try:
                    self._camera_mounts[camera] = (os.stat(self.root).st_dev, None)
                except OSError:
                    pass
                return None
            if not stat.S_ISDIR(st.st_mode) or (seen is not None and seen[0] == st.st_dev):
                return None  # a link (refused: camera_folder_problem), or no mount since it was looked at
            watch = MountWatch(self.root / camera)
            own = watch.point != self._mount.point
            if own and seen is not None and self._booked_in(self.root / camera):  # hidden by a mount, not lost
                log.warning("recorder.dir: a file system was mounted on camera '%s''s folder %s while recording; its "
                            "recordings made before are beneath that mount, hidden until it is unmounted; recording "
                            "goes on on the mounted one", camera, watch.point)
            seen = self._camera_mounts[camera] = (st.st_dev, watch if own else None)
            if not own:  # recorder.dir's own file system: :meth:`_unmounted` watches it
                return None
        watch = seen[1]
        if not watch.gone():
            return None
        how = ("is not mounted (listed in /etc/fstab: its disk not there yet?)" if watch.listed
               else "is no longer mounted (its disk unmounted or gone?)")
        return (f"{watch.point}, the mount point of its own file system, {how}; nothing is recorded in the folder "
                f"beneath it until it is mounted")

    def _booked_in(self, folder: Path) -> bool:
        """Whether the books hold a recording in ``folder``."""
        return any(next(iter(files)).parent == folder for files, _ in self._kept)

    def _unmounted(self) -> bool:
        """Whether the file system recorder.dir lay on when the run started is no longer mounted (a USB evidence
        disk pulled or unmounted, a network share dropped: :class:`inspector.mounts.MountWatch`). Nothing is
        recorded meanwhile, each defect counted as ``recorder.unusable``; told in one line when it goes and when it
        is back (then :meth:`_follow_dir` locks the folder on it). Before, the folder was made again in the bare
        mount-point directory (:meth:`_follow_dir`, as after a user deleted it): recordings filled the system disk
        there, and the next mount of the evidence disk hid them from every reader, said only as 'renamed or
        removed'. Looked at for each defect (two lstat calls)."""
        gone = self._mount.gone()
        if gone and not self._off_mount:
            how = ("is not mounted (listed in /etc/fstab: its disk not there yet?)" if self._mount.listed
                   else "is no longer mounted (its disk unmounted or gone?)")
            log.error("recorder.dir: %s (holding recorder.dir %s) %s; nothing is recorded in the folder beneath it "
                      "(the system disk, hidden by the next mount) until it is mounted; defects counted as "
                      "recorder.unusable", self._mount.point, self.root, how)
        elif self._off_mount and not gone:
            log.warning("recorder.dir: %s is mounted again; recording resumes in %s", self._mount.point, self.root)
        self._off_mount = gone
        return gone

    def _follow_dir(self) -> bool:
        """Make sure recorder.dir's path still names the folder this run holds; where it does not (renamed
        or removed by hand, a share remounted), lock the folder there now (made if missing) and take its
        recordings as the books: the renamed one is no longer this run's to fill or prune. False when another
        daemon holds the new folder (one error line; recording stops). Before, a new folder was made at the
        path, unlocked, while the lock stayed on the renamed one: a second daemon could record beside this
        one, and retention counted recordings that were no longer there."""
        if self._lock is None or self._lock.holds_path():
            return True
        try:
            self._lock.follow()
        except ConfigError as exc:
            log.error("recorder.dir: %s was replaced while running, and the new folder is another daemon's (%s); "
                      "recording stopped, defects from now on counted as recorder.unusable", self.root, exc)
            return False
        log.warning("recorder.dir: %s no longer names the folder this run started in (renamed or removed, or its "
                    "disk mounted again); "
                    "recording goes on in the folder now at that path, locked for this run", self.root)
        self._kept.clear()
        self._bytes, self._checked_at = 0, -math.inf
        # the folder now there may lie on another disk (one mounted since the start): that one is watched from now
        # on, else pulling it later went unseen and recording went on in the bare mount-point directory beneath
        self._mount, self._camera_mounts = MountWatch(self.root), {}
        self._scan_existing()
        return True

    def _book(self, files: Iterable[Path]) -> None:
        """Count one recording's ``files`` (written whole) towards retention, each as the very file now at its
        name (:func:`_regular`): retention deletes that file, never another one put there later."""
        found = {path: info for path in files if (info := _regular(path)) is not None}
        if not found:  # gone as soon as written: nothing to count
            return
        size = sum(n for _, n in found.values())
        self._kept.append(({path: file_id for path, (file_id, _) in found.items()}, size))
        self._bytes += size

    def _remove_half(self, files: dict[Path, FileId]) -> list[tuple[Path, OSError]]:
        """A recording cut short (its header, written last, is missing): the ``files`` written before the
        failure go, so a recording is whole or absent to a reader (the event is counted lost). Kept: an image
        next to no header was evidence that the counts called lost, and nothing told which lacked one. One
        that cannot be removed stays under retention and is counted as ``recorder.incomplete``. Returns those
        left, each with the error that kept it ([]: all gone), for the caller to name. ``files`` maps each file to
        the identity it was written or found with: only that file is removed, in the camera folder itself
        (:meth:`_delete_recording`)."""
        left = _unlink_each(files)
        if present := [(path, exc) for path, exc in left if _regular(path) is not None]:
            self.counters.add("recorder.incomplete")
            self._book([path for path, _ in present])
        return present

    def _write_recording(self, stem: Path, frame: Frame, header: dict, files: list[Path],
                         temporaries: list[tuple[Path, OSError]]) -> None:
        """Frame, heat map and header under ``stem``, each appended to ``files`` once whole on disk; temporary
        names that could not be removed are appended to ``temporaries`` (:func:`_create`).

        The header is staged first, under its temporary name (:func:`_stage`), and named last: that name is the
        recording's marker while its images are written, so a crash between files leaves a half with the
        marker of a process that is gone beside it, which the next start removes (:meth:`_settle_halves`), and
        a full disk is met before any image is written. On an error the files written go, then the marker: a
        recording is whole or absent to a reader (the event is counted lost)."""
        meta = stem.with_suffix(".json")
        marker = _stage(meta, json.dumps(header, indent=1).encode())
        try:
            files.append(self._write_image(stem.with_suffix(".png"), frame.image, temporaries,
                                           self._bit_depths.get(frame.camera)))
            if frame.amap is not None:
                hi = max(float(frame.amap.max()), 1e-12)
                heat = cv2.applyColorMap(np.clip(frame.amap * (255.0 / hi), 0, 255).astype(np.uint8),
                                         cv2.COLORMAP_JET)
                files.append(self._write_image(stem.with_suffix(".heat.png"), heat, temporaries))
            link_new(marker, meta)
        except BaseException:
            self._tell_left(self._remove_half(_identified(files)),
                            "file(s) of a recording cut short (counted as recorder.incomplete)")
            raise
        finally:
            _drop(marker, temporaries)  # after the half: a crash before leaves it marked
        files.append(meta)

    @staticmethod
    def _write_image(path: Path, image: np.ndarray, temporaries: list[tuple[Path, OSError]],
                     bits: int | None = None) -> Path:
        ok, buf = cv2.imencode(".png", image)
        if not ok:
            raise OSError(f"cannot encode {path.name}")
        data = buf.tobytes()
        if image.dtype == np.uint16 and bits is not None and bits < 16:
            # without it a reader scales by 65535, where the daemon inspected by the camera's 2**bits - 1
            data = png_with_sbit(data, bits)
        _create(path, data, temporaries)
        return path

    def _over_limit(self) -> bool:
        cfg = self.cfg
        return bool((cfg.max_events and len(self._kept) > cfg.max_events)
                    or (cfg.max_bytes and self._bytes > cfg.max_bytes))

    def _forget_removed(self) -> None:
        """Drop recordings that are no longer on disk (moved out for review, deleted by hand or by another
        daemon) from the books, so they no longer count towards max_events / max_bytes: else each of them
        made retention delete one more of the recordings that are still there."""
        kept: collections.deque[tuple[dict[Path, FileId], int]] = collections.deque()
        total = 0
        for files, _ in self._kept:
            # a file replaced since (a user's own, a link, a folder) is no longer the recorder's: off the books too
            present = {path: found for path, file_id in files.items()
                       if (found := _regular(path)) is not None and found[0] == file_id}
            if present:
                kept.append(({path: file_id for path, (file_id, _) in present.items()},
                             sum(n for _, n in present.values())))
                total += kept[-1][1]
        self._kept, self._bytes = kept, total
        self._checked_at = time.monotonic()

    def _enforce_retention(self) -> int:
        """Delete the oldest recordings beyond recorder.max_events / max_bytes; returns how many were deleted."""
        # Checking every file costs a stat each: done when retention is about to delete, at most every
        # _RECHECK_S s (at max_events a recording is deleted for each one written).
        if self._over_limit() and time.monotonic() - self._checked_at >= _RECHECK_S:
            self._forget_removed()
        # The newest recording always stays: with max_bytes below one recording's size every recording was
        # deleted as soon as it was written, a run with 6 defects leaving none, and nothing said.
        deleted = 0
        while len(self._kept) > 1 and self._over_limit():
            files, size = self._kept.popleft()
            self._bytes -= size  # off the books either way: one that cannot be deleted is not retried
            if self._delete_recording(files):
                self.counters.add("recorder.deleted")
                deleted += 1
        if self._over_limit() and not self._told_too_small:
            self._told_too_small = True
            log.warning("recorder.max_bytes: %d is less than one recording (%d bytes); only the newest is kept "
                        "(raise recorder.max_bytes)", self.cfg.max_bytes, self._bytes)
        return deleted

    def _tell_deleted_at_start(self, found: int, deleted: int) -> None:
        """One line when retention deleted ``deleted`` of the ``found`` recordings of earlier runs as recorder.dir
        was opened. A run keeps its folder within the limits, so this happens only when they were lowered (a
        max_events of 10 meant as 10000) or recordings were put back: thousands of earlier runs' recordings went
        before the first frame, counted in recorder.deleted only, and the log said nothing."""
        if deleted:
            cfg = self.cfg
            log.warning("recorder: deleted the %d oldest of the %d recording(s) of earlier runs in %s as it was "
                        "opened, to keep within recorder.max_events %d / recorder.max_bytes %d (0: no limit)",
                        deleted, found, self.root, cfg.max_events, cfg.max_bytes)

    def _delete_recording(self, files: dict[Path, FileId]) -> bool:
        """Delete the files of one recording; False if one could not be (EACCES/EPERM/EROFS: an earlier run's
        folder made read-only, an immutable file, a read-only share). That one is counted and logged, and
        retention goes on with the next: an exception here disabled recording for the whole run when met at
        start, and at run time reported the recording just written as failed.

        The header goes first, renamed to its temporary name of this process: it marks a recording whole, and
        under that name it marks the rest as a half to remove (:meth:`_settle_halves`), so a crash part-way
        leaves a half the next start finishes deleting, never a header whose image is gone.

        Only what the recorder wrote (or counted at start) is deleted, and only in the camera folder itself: a
        name is unlinked while it holds the very file booked (:func:`_own_at`, same device, inode and mtime, no link
        followed), through the folder opened without following a link. Something put at a recording's name
        since (a user's own file, a link to /etc or a user's folder, a folder) is left as it is, and so is a
        camera folder replaced by a link (its recordings moved to an archive and linked back): retention
        deleted through such a link in the archive, deleted a user's picture saved under a recording's name,
        and renamed a user's folder at a header's name to a hidden temporary name."""
        folder = next(iter(files)).parent
        try:
            fd = os.open(folder, _FOLDER_FLAGS)
        except OSError as exc:  # gone (moved out whole): nothing to delete; ELOOP, ENOTDIR: not our folder now
            if not isinstance(exc, FileNotFoundError):
                self._throttle.warning("not-folder", "recorder: retention leaves the recordings of %s: not the "
                                       "folder they were recorded in any more (%s)", folder, exc.strerror or exc)
            return False
        header = next((path for path in files if path.suffix == ".json"), None)
        marker = _temporary(header) if header is not None else None
        try:
            if header is not None and _own_at(fd, header.name, files[header]):
                _writing.add(marker.name)
                os.rename(header.name, marker.name, src_dir_fd=fd, dst_dir_fd=fd)
                files = {**{path: i for path, i in files.items() if path != header}, marker: files[header]}
            foreign = [path for path, file_id in files.items() if not _unlink_own(fd, path, file_id)]
        except OSError as exc:
            self.counters.add("recorder.delete_errors")
            self._throttle.warning("delete", "recorder: retention cannot delete %s (%s); left in place",
                                   exc.filename or header, exc.strerror or exc)
            return False
        finally:
            os.close(fd)
            if marker is not None:
                _writing.discard(marker.name)
        if foreign:
            self._throttle.warning("foreign", "recorder: retention leaves %s%s: put there since it was recorded "
                                   "(another file, a link or a folder), not the recorder's", foreign[0],
                                   f" and {len(foreign) - 1} more" if len(foreign) > 1 else "")
        return True
