"""The recorder and what it cannot clear: files it wrote (temporary names, halves) that the disk will not let it
delete. Real files throughout: an append-only or immutable attribute (chattr) blocks unlink(2) even for root."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from inspector.pipeline.config import RecorderSection
from inspector.pipeline.frame import Frame
from inspector.pipeline.recorder import RECORDING_NAME, RecorderWorker, lock_recorder_dir
from inspector.pipeline.telemetry import Counters

from pipeline_support import CRASH_BEFORE_HEADER

_ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def _chattr(flag: str, *paths: Path) -> Callable[[], None] | None:
    """Set the attribute ``flag`` ('a': append-only, 'i': immutable) on ``paths``, returning the undo; None where
    this user or file system cannot (chattr needs root, CAP_LINUX_IMMUTABLE and ext2/3/4, xfs, btrfs…)."""
    if os.geteuid() != 0 or subprocess.run(["chattr", f"+{flag}", *map(str, paths)],
                                           capture_output=True).returncode != 0:
        return None
    return lambda: subprocess.run(["chattr", f"-{flag}", *map(str, paths)], check=True)


def _record(root: Path, n: int, run_id: str, started: str, locked: bool = True, first: int = 0) -> Counters:
    """One run of a recorder on ``root`` (held as the daemon holds it when ``locked``): ``n`` defects of camera
    'c' (frame, heat map, header each), frame ids from ``first``; its counters."""
    counters, lock = Counters(), lock_recorder_dir(root) if locked else None
    rec = RecorderWorker(RecorderSection(enabled=True, dir=str(root), min_free_bytes=0), threading.Event(),
                         counters, run_id, started, dir_lock=lock, cameras=("c",))
    rec.start()
    for i in range(first, first + n):
        frame = Frame(camera="c", frame_id=i, image=np.zeros((8, 8, 3), np.uint8), capture_ns=i, capture_utc=0.0)
        frame.amap = np.ones((8, 8), np.float32)
        rec.put(frame, {"seq": i})
    rec.finish()
    rec.join(10)
    if lock:
        lock.release()
    assert not rec.is_alive() and rec.failure is None
    return counters


def test_an_append_only_camera_folder_keeps_every_recording_whole(tmp_path, caplog):
    """A camera folder made append-only (chattr +a: evidence that may be added to, never removed) lets the
    recorder create and link files but not unlink its temporary name: every defect was counted as a write error
    ('Operation not permitted' on the .part file) though its image was on disk under a recording name, without
    its header, beside a .part file per image. The recording is whole once linked; the temporary name it cannot
    remove is another name of the same data (a hard link: no space), told in one line naming it, and counted."""
    cam = tmp_path / "rec" / "c"
    cam.mkdir(parents=True)
    undo = _chattr("a", cam)
    if undo is None:
        pytest.skip("cannot make a folder append-only here (chattr +a needs root on ext4/xfs/btrfs)")
    try:
        with caplog.at_level(logging.INFO, "inspector.recorder"):
            c = _record(tmp_path / "rec", 2, "aaaaaaaaaaaa", "2025-01-31T12:00:00.000Z")
    finally:
        undo()
    assert c.get("recorder.written") == 2 and c.get("recorder.errors") == 0
    ours = sorted(p.name for p in cam.iterdir() if RECORDING_NAME.match(p.name))
    assert [n.split(".", 1)[1] for n in ours] == ["heat.png", "json", "png"] * 2
    parts = sorted(cam.glob(".*.part"))
    assert len(parts) == 6 and c.get("recorder.leftovers_kept") == 6
    told = [r.getMessage() for r in caplog.records if "cannot remove" in r.getMessage()]
    assert told and str(parts[0].parent) in told[0] and ".part" in told[0]


def test_a_half_and_a_temporary_file_that_cannot_be_deleted_are_named_and_the_next_run_goes_on(tmp_path, caplog):
    """A daemon SIGKILLed between a recording's files leaves a half (image, heat map, no header) and the header's
    temporary file; made immutable (chattr +i) they cannot be removed at the next start. That start said
    'removed 1 recording(s) without an event header' (none was), said nothing of the temporary file (skipped
    silently, each start), and gave its run the crashed run's number (r000001 again: the half left the
    numbering), so two runs shared one number. Now each start says in one line per kind which files it could
    not remove (naming one) and leaves them; the next run's number is past every name in the folder."""
    root = tmp_path / "rec"
    crashed = subprocess.run([sys.executable, "-c", CRASH_BEFORE_HEADER, str(root)], env=_ENV,
                             capture_output=True, text=True, timeout=60)
    assert crashed.returncode == -9, crashed.stderr
    cam = root / "c"
    left = sorted(cam.iterdir())
    assert len(left) == 3  # .png, .heat.png and the header's .part
    undo = _chattr("i", *left)
    if undo is None:
        pytest.skip("cannot make a file immutable here (chattr +i needs root on ext4/xfs/btrfs)")
    try:
        with caplog.at_level(logging.INFO, "inspector.recorder"):
            c = _record(root, 1, "bbbbbbbbbbbb", "2025-01-31T13:00:00.000Z", first=5)
    finally:
        undo()
    assert c.get("recorder.written") == 1 and c.get("recorder.incomplete_removed") == 0
    assert c.get("recorder.incomplete") == 1 and c.get("recorder.leftovers_kept") == 1
    assert c.get("recorder.leftovers_removed") == 0
    assert all(p.exists() for p in left)
    messages = [r.getMessage() for r in caplog.records]
    assert not any("removed" in m and "without an event header" in m for m in messages)
    assert any("cannot remove" in m and left[0].name in m for m in messages)  # the .part, named
    assert any("cannot remove" in m and "without an event header" in m and str(cam) in m for m in messages)
    assert [p.name[:8] for p in cam.glob("*-bbbbbbbbbbbb-*.json")] == ["r000002-"]


def test_images_whose_headers_a_user_moved_out_are_kept_at_the_next_start(tmp_path, caplog):
    """Headers (.json) moved out of recorder.dir by a user or a log shipper, and an image of an earlier run
    copied into a folder of its own there: the next start took every image without a header for a crash's
    half and deleted them all (6 files of 3 recordings, and the copy), evidence the recorder no longer had a
    header for but had not lost. A crash's half is marked (its header's temporary file, of a process that is
    gone); these are not: kept, counted as recorder.incomplete, and told. The copy, in no camera's folder,
    is not the recorder's at all: neither counted nor touched."""
    root, shipped = tmp_path / "rec", tmp_path / "shipped"
    shipped.mkdir()
    _record(root, 1, "aaaaaaaaaaaa", "2025-01-31T12:00:00.000Z")
    _record(root, 3, "bbbbbbbbbbbb", "2025-01-31T13:00:00.000Z", first=1)
    for header in root.glob("c/*-bbbbbbbbbbbb-*.json"):
        header.rename(shipped / header.name)
    (root / "keep").mkdir()
    [image] = root.glob("c/r000001-*-000000000-000000000.png")
    copy = root / "keep" / image.name
    copy.write_bytes(image.read_bytes())
    images = sorted(root.glob("c/*-bbbbbbbbbbbb-*.png")) + [copy]
    assert len(images) == 7
    with caplog.at_level(logging.INFO, "inspector.recorder"):
        c = _record(root, 1, "cccccccccccc", "2025-01-31T14:00:00.000Z", first=9)
    assert all(p.exists() for p in images) and c.get("recorder.incomplete_removed") == 0
    assert c.get("recorder.incomplete") == 3 and c.get("recorder.written") == 1
    assert "recorder.leftovers_kept" not in c.snapshot()  # nothing left behind: not even a 0 in the stats
    assert any("3 recording(s)" in r.getMessage() and "no event header" in r.getMessage() for r in caplog.records)
