"""The recorder keeps evidence: what it deletes is only what it wrote (its own cameras' folders, a crash's marked
halves), and a problem with one camera's folder costs only that camera's recordings. Real recorders on real
files, real SIGKILLed children, a real full disk (tmpfs) and a real daemon run."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from inspector.cli import main
from inspector.pipeline.config import RecorderSection
from inspector.pipeline.frame import Frame
from inspector.pipeline.recorder import RecorderWorker, lock_recorder_dir
from inspector.pipeline.telemetry import Counters

from pipeline_support import CRASH_BEFORE_HEADER, base_config, write_video

_ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def _record(root: Path, frames: list[tuple[str, int]], run_id: str, cameras: tuple[str, ...] = ("c",),
            image: np.ndarray | None = None, offline: bool = False, offline_cameras: tuple[str, ...] = (),
            **cfg) -> Counters:
    """One run of a recorder holding ``root`` as the daemon does, recording ``frames`` ((camera, frame id)
    each, frame, heat map and header); its counters. ``offline``: every camera is offline; else those in
    ``offline_cameras``."""
    counters, lock = Counters(), lock_recorder_dir(root)
    rec = RecorderWorker(RecorderSection(enabled=True, dir=str(root), min_free_bytes=0, **cfg), threading.Event(),
                         counters, run_id, "2025-01-31T12:00:00.000Z", dir_lock=lock, cameras=cameras,
                         offline_cameras=cameras if offline else offline_cameras)
    rec.start()
    for camera, i in frames:
        frame = Frame(camera=camera, frame_id=i, image=np.zeros((8, 8, 3), np.uint8) if image is None else image,
                      capture_ns=i, capture_utc=0.0)
        frame.amap = np.ones((8, 8), np.float32)
        rec.put(frame, {"seq": i, "capture": {"monotonic_ns": i}})
    rec.finish()
    rec.join(30)
    lock.release()
    assert not rec.is_alive() and rec.failure is None
    return counters


def test_an_offline_run_waits_for_the_recorder_instead_of_losing_recordings(tmp_path):
    # the tester's case: a folder camera's defects outran recorder.queue_size and 11 recordings were lost
    counters = _record(tmp_path, [("c", i) for i in range(40)], "aaaaaaaaaaaa", offline=True, queue_size=2,
                       image=np.random.default_rng(0).integers(0, 255, (256, 256, 3), np.uint8))
    assert counters.get("recorder.dropped") == 0
    assert len(list((tmp_path / "c").glob("*.json"))) == 40


def test_only_the_cameras_named_offline_wait_for_the_recorder(tmp_path):
    """The worker waits for room per camera it is given as offline (40 defects each, queue_size 2): those are
    all recorded, the others never wait (dropped, counted). The daemon names cameras offline only in a run
    with no live camera (test_daemon_e2e.py: beside a live camera nothing waits)."""
    frames = [(cam, i) for i in range(40) for cam in ("live", "file")]
    counters = _record(tmp_path, frames, "aaaaaaaaaaaa", cameras=("live", "file"), offline_cameras=("file",),
                       queue_size=2, image=np.random.default_rng(0).integers(0, 255, (256, 256, 3), np.uint8))
    assert len(list((tmp_path / "file").glob("*.json"))) == 40
    live = len(list((tmp_path / "live").glob("*.json")))
    assert counters.get("recorder.dropped") == 40 - live > 0


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_copy_of_the_last_recording_alone_in_a_folder_of_its_own_is_kept_at_the_next_start(tmp_path):
    """A user copied the image of the most recent run's last recording into 'keep/' under recorder.dir, alone
    there: it looked exactly like a crash's half (the newest of the last run in its folder, no header) and the
    next start deleted it. Only a crash's marker (its header's temporary file, of a process that is gone) makes
    a half the recorder's to remove; and 'keep/' is no camera's folder."""
    root = tmp_path / "rec"
    _record(root, [("c", 0), ("c", 1)], "aaaaaaaaaaaa")
    [image] = root.glob("c/*-000000001-000000001.png")
    (root / "keep").mkdir()
    copy = root / "keep" / image.name
    copy.write_bytes(image.read_bytes())
    c = _record(root, [("c", 5)], "bbbbbbbbbbbb")
    assert copy.read_bytes() == image.read_bytes() and c.get("recorder.incomplete_removed") == 0


def test_the_last_image_whose_header_a_log_shipper_took_is_kept_at_the_next_start(tmp_path, caplog):
    """A log shipper took the header (.json) of the last recording as it was written: the image, the newest of
    the last run in its folder, was taken for a crash's half and deleted at the next start. It is kept, counted
    as recorder.incomplete, and told."""
    root = tmp_path / "rec"
    _record(root, [("c", 0), ("c", 1)], "aaaaaaaaaaaa")
    [header] = root.glob("c/*-000000001-000000001.json")
    header.rename(tmp_path / header.name)
    images = sorted(root.glob("c/*-000000001-000000001.*"))
    assert len(images) == 2
    with caplog.at_level(logging.WARNING, "inspector.recorder"):
        c = _record(root, [("c", 5)], "bbbbbbbbbbbb")
    assert all(p.exists() for p in images) and c.get("recorder.incomplete") == 1
    assert c.get("recorder.incomplete_removed") == 0
    assert any("no event header" in r.getMessage() for r in caplog.records)


def test_a_half_a_crash_left_is_still_removed_and_nothing_else(tmp_path):
    """The marker rule still finds a real crash's half: a recorder SIGKILLed as it named a header leaves the
    image, heat map and the header's temporary file; the next start removes exactly those three."""
    root = tmp_path / "rec"
    _record(root, [("c", 0)], "aaaaaaaaaaaa")
    before = _snapshot(root)
    crashed = subprocess.run([sys.executable, "-c", CRASH_BEFORE_HEADER, str(root)], env=_ENV,
                             capture_output=True, text=True, timeout=60)
    assert crashed.returncode == -9, crashed.stderr
    assert len(_snapshot(root)) == len(before) + 3
    c = _record(root, [], "bbbbbbbbbbbb")
    assert _snapshot(root) == before
    assert c.get("recorder.incomplete_removed") == 1 and c.get("recorder.leftovers_removed") == 1


def test_retention_deletes_only_in_the_folders_of_its_cameras(tmp_path):
    """Copies a user keeps under recorder.dir with their recording names ('keep/', 'archive/') were put under
    retention like the recorder's own, and as the oldest deleted first. Only the folders of the cameras this run
    records are the recorder's; copies elsewhere are neither counted nor deleted."""
    root = tmp_path / "rec"
    _record(root, [("c", 0), ("c", 1)], "aaaaaaaaaaaa")
    for folder in ("keep", "archive"):
        (root / folder).mkdir()
        for p in root.glob("c/*"):
            (root / folder / p.name).write_bytes(p.read_bytes())
    copies = _snapshot(root / "keep") | {f"a/{k}": v for k, v in _snapshot(root / "archive").items()}
    c = _record(root, [("c", i) for i in range(5, 9)], "bbbbbbbbbbbb", max_events=1)
    assert _snapshot(root / "keep") | {f"a/{k}": v for k, v in _snapshot(root / "archive").items()} == copies
    assert len(list(root.glob("c/*.json"))) == 1 and c.get("recorder.deleted") == 5


def test_files_a_user_named_like_recordings_in_a_camera_folder_are_never_deleted(tmp_path, caplog):
    """A name alone made a file the recorder's: in the folder of camera 'c', a user's notes saved as a
    recording header, an empty '{}' header with a picture beside it, a picture alone and a header of another
    camera's recording were counted as the oldest recordings and deleted by retention (max_events 1). Only a
    recording whose header is the event header of its name is under retention; the rest is kept and told."""
    root = tmp_path / "rec"
    (root / "c").mkdir(parents=True)
    stem = "r000001-20200101T000000Z-0123456789ab-{0:09d}-{0:09d}"
    (root / "c" / f"{stem.format(1)}.json").write_text("my notes")
    (root / "c" / f"{stem.format(2)}.json").write_text("{}")
    (root / "c" / f"{stem.format(2)}.png").write_bytes(b"a picture")
    (root / "c" / f"{stem.format(3)}.png").write_bytes(b"a picture alone")
    (root / "c" / f"{stem.format(4)}.json").write_text('{"seq": 4, "camera": "other"}')
    (root / "c" / f"{stem.format(5)}.json").write_text('{"seq": 6}')
    users = _snapshot(root)
    with caplog.at_level(logging.WARNING, "inspector.recorder"):
        c = _record(root, [("c", i) for i in range(10, 13)], "bbbbbbbbbbbb", max_events=1)
    after = _snapshot(root)
    assert {name: after.get(name) for name in users} == users
    assert len(list(root.glob("c/*bbbbbbbbbbbb*.json"))) == 1 and c.get("recorder.deleted") == 2
    assert c.get("recorder.foreign") == 4 and c.get("recorder.incomplete") == 1
    assert any("recorder.foreign" in r.getMessage() for r in caplog.records)


def test_a_restart_with_another_camera_set_keeps_the_other_cameras_recordings(tmp_path, caplog):
    """Run 1 recorded cameras 'a' and 'b'; run 2 records only 'a', with max_events 1. 'b's recordings are no
    longer any camera's of this run: they are evidence kept (told), not deleted to make room for 'a', and run 2
    is numbered after them."""
    root = tmp_path / "rec"
    _record(root, [("a", 0), ("b", 0), ("b", 1)], "aaaaaaaaaaaa", cameras=("a", "b"))
    b_before = _snapshot(root / "b")
    with caplog.at_level(logging.INFO, "inspector.recorder"):
        _record(root, [("a", 3), ("a", 4)], "bbbbbbbbbbbb", cameras=("a",), max_events=1)
    assert _snapshot(root / "b") == b_before
    assert [p.name[:8] for p in root.glob("a/*.json")] == ["r000002-"]
    assert any("of b (no camera of this run)" in r.getMessage() for r in caplog.records)


def _tmpfs(path: Path, size: str) -> bool:
    """A tmpfs of ``size`` mounted at ``path`` (a real full disk); False where this user cannot mount."""
    path.mkdir()
    return os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                                                capture_output=True).returncode == 0


def test_a_full_disk_mid_run_leaves_only_whole_recordings_and_recording_resumes(tmp_path):
    """recorder.dir on a real 1 MiB disk filling up mid-run (ENOSPC at write or fsync): each defect that did not
    fit is counted as a write error and leaves nothing (no image without its header, no temporary file); the
    inspection goes on, and once space is made the next defects are recorded."""
    disk = tmp_path / "disk"
    if not _tmpfs(disk, "1m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        noise = np.random.default_rng(0).integers(0, 256, (200, 200, 3), np.uint8)  # ~120 kB as PNG
        c = _record(disk / "rec", [("c", i) for i in range(12)], "aaaaaaaaaaaa", image=noise)
        assert c.get("recorder.errors") >= 1 and c.get("recorder.written") + c.get("recorder.errors") == 12
        names = [p.name for p in (disk / "rec" / "c").iterdir()]
        stems = {n.split(".")[0] for n in names}
        assert not [n for n in names if n.startswith(".")], names
        assert all(f"{s}.json" in names and f"{s}.png" in names for s in stems), names
        for p in sorted((disk / "rec" / "c").glob("*.json"))[:4]:  # an operator makes room
            for f in (disk / "rec" / "c").glob(p.name[:-5] + ".*"):
                f.unlink()
        c = _record(disk / "rec", [("c", 20)], "bbbbbbbbbbbb", image=noise)
        assert c.get("recorder.written") == 1
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_is_told_in_one_line_not_one_per_defect(tmp_path, caplog):
    """A full disk logged a line per defect for the first five, then one every hundred for as long as it stayed
    full (a line every 4 s at 25 defects/s). One line says recording fails and why; the defects it costs are
    counted (recorder.errors)."""
    disk = tmp_path / "disk"
    if not _tmpfs(disk, "1m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        noise = np.random.default_rng(0).integers(0, 256, (200, 200, 3), np.uint8)  # ~120 kB as PNG
        with caplog.at_level(logging.WARNING, "inspector.recorder"):
            c = _record(disk / "rec", [("c", i) for i in range(20)], "aaaaaaaaaaaa", image=noise)
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    told = [r.getMessage() for r in caplog.records if "No space left on device" in r.getMessage()]
    assert c.get("recorder.errors") >= 6 and c.get("recorder.written") + c.get("recorder.errors") == 20
    assert len(told) == 1 and "counted as recorder.errors" in told[0], told


def test_an_evidence_disk_unmounted_mid_run_is_not_replaced_by_the_system_disk_and_recording_resumes(tmp_path,
                                                                                                     caplog):
    """recorder.dir on its own disk (a real tmpfs), unmounted mid-run (umount -l, as a pulled USB disk): the
    recorder made the folder again in the bare mount-point directory and recorded onto the system disk, said
    only as 'renamed or removed'; mounted again, the disk hid those recordings from every reader. Now nothing is
    written beneath the mount point, each defect is counted (recorder.unusable), told once when the disk goes and
    once when it is back, and recording resumes on the disk mounted again."""
    disk = tmp_path / "disk"
    if not _tmpfs(disk, "1m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    root = disk / "rec"
    counters, lock = Counters(), lock_recorder_dir(root)
    rec = RecorderWorker(RecorderSection(enabled=True, dir=str(root), min_free_bytes=0), threading.Event(),
                         counters, "cccccccccccc", "2025-01-31T12:00:00.000Z", dir_lock=lock, cameras=("c",))
    rec.start()
    mounted = True
    try:
        with caplog.at_level(logging.WARNING, logger="inspector.recorder"):
            _record_and_wait(rec, counters, "c", 0)
            subprocess.run(["umount", "-l", str(disk)], check=True)
            mounted = False
            _put_unrecordable(rec, counters)
            beneath = sorted(p.name for p in disk.rglob("*"))
            mounted = _tmpfs_again(disk, "1m")
            _record_and_wait(rec, counters, "c", 3)
    finally:
        rec.finish()
        rec.join(30)
        lock.release()
        if mounted:
            subprocess.run(["umount", str(disk)], check=True)
    assert beneath == [] and counters.get("recorder.unusable") == 2, (beneath, counters.snapshot())
    gone = [r.getMessage() for r in caplog.records if "no longer mounted" in r.getMessage()]
    back = [r.getMessage() for r in caplog.records if "is mounted again; recording resumes" in r.getMessage()]
    assert len(gone) == 1 and str(disk) in gone[0] and len(back) == 1, [r.getMessage() for r in caplog.records]


def _tmpfs_again(path: Path, size: str) -> bool:
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def _chattr(flag: str, path: Path):
    if os.geteuid() != 0 or subprocess.run(["chattr", f"+{flag}", str(path)], capture_output=True).returncode:
        return None
    return lambda: subprocess.run(["chattr", f"-{flag}", str(path)], check=True)


def test_an_immutable_camera_folder_costs_that_cameras_recordings_only(tiny_model, endpoint, tmp_path, capsys,
                                                                        caplog):
    """One camera's folder made immutable (chattr +i: root cannot write there either) stopped the daemon at
    start with a one-line config error: no camera inspected nor recorded. The run goes on: the other camera is
    recorded, this one inspected and published, its lost recordings told in one line and counted."""
    rec = tmp_path / "rec"
    (rec / "a").mkdir(parents=True)
    undo = _chattr("i", rec / "a")
    if undo is None:
        pytest.skip("cannot make a folder immutable here (chattr +i needs root on ext4/xfs/btrfs)")
    cams = [{"name": n, "source": str(write_video(tmp_path / f"{n}.avi", [True, True]))} for n in ("a", "b")]
    cfg = base_config(tiny_model, endpoint, cams, thresholds={"image": 0.0},
                      recorder={"enabled": True, "dir": str(rec), "min_free_bytes": 0},
                      summary_json=str(tmp_path / "summary.json"))
    (tmp_path / "inspector.yaml").write_text(yaml.safe_dump(cfg))
    try:
        with caplog.at_level(logging.INFO):
            code = main(["run", "--config", str(tmp_path / "inspector.yaml")])
    finally:
        undo()
    out, err = capsys.readouterr()
    # the recordings lost are evidence lost: exit 1, the closing line names them
    assert code == 1, err
    assert f"recorder (recorder.dir {rec}): 2 defect recording(s) lost (recorder folder unusable 2)" in out, out
    assert out.count("defect recording(s)") == 1, out  # once: the last line told them again before its failures
    assert list((rec / "a").iterdir()) == [] and len(list((rec / "b").glob("*.json"))) == 2
    told = [r.getMessage() for r in caplog.records if "camera 'a' is not recorded" in r.getMessage()]
    assert len(told) == 1 and str(rec / "a") in told[0]
    totals = yaml.safe_load((tmp_path / "summary.json").read_text())["totals"]
    assert totals["recorder.unusable"] == 2 and totals["recorder.written"] == 2


def test_a_camera_folder_put_right_is_recorded_in_again_from_the_next_defect(tmp_path, caplog):
    """A camera folder that cannot take recordings mid-run (made immutable: root cannot write there either) costs
    that camera's defects while it lasts, told once; put right, the next defect is recorded, told once. It was
    looked at again only every 10 s, so the defects of up to 10 s more were lost after the fix."""
    root = tmp_path / "rec"
    counters, lock = Counters(), lock_recorder_dir(root)
    rec = RecorderWorker(RecorderSection(enabled=True, dir=str(root), min_free_bytes=0), threading.Event(),
                         counters, "cccccccccccc", "2025-01-31T12:00:00.000Z", dir_lock=lock, cameras=("c",))
    rec.start()
    try:
        with caplog.at_level(logging.WARNING, logger="inspector.recorder"):
            _record_and_wait(rec, counters, "c", 0)
            undo = _chattr("i", root / "c")
            if undo is None:
                pytest.skip("cannot make a folder immutable here (chattr +i needs root on ext4/xfs/btrfs)")
            try:
                _put_unrecordable(rec, counters)
            finally:
                undo()
            _record_and_wait(rec, counters, "c", 3)  # the first defect after the fix
    finally:
        rec.finish()
        rec.join(30)
        lock.release()
    assert counters.get("recorder.unusable") == 2 and counters.get("recorder.written") == 2
    told = [r.getMessage() for r in caplog.records]
    assert sum("camera 'c' is not recorded" in m for m in told) == 1, told
    assert sum("camera 'c' is recorded again" in m for m in told) == 1, told
    assert len(list((root / "c").glob("*.json"))) == 2


# -- retention deletes only the files it wrote, in the camera folder itself ------------------------------------------
def _record_and_wait(rec: RecorderWorker, counters: Counters, camera: str, i: int) -> None:
    """Record defect ``i`` of ``camera`` (frame, heat map, header) and wait until it is written."""
    before = counters.get("recorder.written")
    frame = Frame(camera=camera, frame_id=i, image=np.zeros((8, 8, 3), np.uint8), capture_ns=i, capture_utc=0.0)
    frame.amap = np.ones((8, 8), np.float32)
    rec.put(frame, {"seq": i, "capture": {"monotonic_ns": i}})
    deadline = time.monotonic() + 10
    while counters.get("recorder.written") <= before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert counters.get("recorder.written") == before + 1, counters.snapshot()


def _retention_after(root: Path, change, cameras=("c",)) -> Counters:
    """A running recorder at max_events 1 (retention deletes the older recording as each is written, its books
    checked against the disk just before): recording 1 of camera c is written, ``change(stem of recording 1)``
    puts something in its place, then recording 2 (of the last of ``cameras``) makes retention delete 1."""
    counters = Counters()
    rec = RecorderWorker(RecorderSection(enabled=True, dir=str(root), min_free_bytes=0, max_events=1),
                         threading.Event(), counters, "0123456789ab", "2025-01-31T12:00:00.000Z", cameras=cameras)
    rec.start()
    try:
        _record_and_wait(rec, counters, "c", 0)
        _record_and_wait(rec, counters, "c", 1)  # recording 0 deleted: the books were checked a moment ago
        [stem] = {p.name.split(".")[0] for p in (root / "c").glob("*-000000001-000000001.*")}
        change(root / "c" / stem)
        _record_and_wait(rec, counters, cameras[-1], 2)
    finally:
        rec.finish()
        rec.join(10)
    assert not rec.is_alive() and rec.failure is None
    return counters


def test_retention_never_deletes_through_a_camera_folder_replaced_by_a_link(tmp_path, caplog):
    """A camera's folder moved to an archive while the daemon runs, a symbolic link to it left in its place
    (its recordings kept elsewhere, still reachable at the old path): retention deleted the archived recording
    through the link. Deletion opens the camera folder without following a link: the archive stays whole."""
    root, archive = tmp_path / "rec", tmp_path / "archive"

    def move_and_link(stem: Path) -> None:
        (root / "c").rename(archive)
        (root / "c").symlink_to(archive)

    with caplog.at_level(logging.WARNING, "inspector.recorder"):
        counters = _retention_after(root, move_and_link, cameras=("c", "d"))
    assert sorted(p.name.split("-")[-1] for p in archive.iterdir()) == ["000000001.heat.png", "000000001.json",
                                                                         "000000001.png"]
    assert counters.get("recorder.deleted") == 1  # recording 0, before the move
    assert any("not the folder they were recorded in" in r.getMessage() for r in caplog.records)


def _user_folder_at(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "mine.txt").write_text("the user's notes")


def _link_to_outside(path: Path) -> None:
    outside = path.parents[2] / "etc"  # stands for /etc or a user's folder: a link out of recorder.dir
    outside.mkdir(exist_ok=True)
    (outside / "passwd").write_text("root:x:0:0")
    path.unlink()
    path.symlink_to(outside / "passwd")


def _users_own_file_at(path: Path) -> None:
    path.unlink()  # the freed inode number is handed to the next file made: the user's
    path.write_bytes(b"the user's own picture, saved under that name")


@pytest.mark.parametrize("suffix, change", [(".json", _user_folder_at), (".json", _link_to_outside),
                                            (".png", _users_own_file_at), (".png", _link_to_outside),
                                            (".heat.png", _user_folder_at)])
def test_retention_leaves_what_was_put_at_a_recordings_name_since(tmp_path, suffix, change):
    """A recording's file replaced since it was written (a user's folder or own picture at its name, a link
    out of recorder.dir): retention deleted the user's picture and links, and renamed a user's folder at a
    header's name to a hidden temporary name ('.<name>.<pid>.part'). It deletes a name only while it holds the
    very file the recorder wrote (device, inode, mtime), so what stands there now is left as it is; the rest of
    the recording, the recorder's own, goes."""
    root = tmp_path / "rec"
    seen: dict[str, object] = {}

    def replace(stem: Path) -> None:
        target = stem.with_name(stem.name + suffix)
        change(target)
        seen["target"] = target
        seen["before"] = _describe(target)

    counters = _retention_after(root, replace)
    target = seen["target"]
    assert _describe(target) == seen["before"]  # untouched, under its own name
    assert not list((root / "c").glob(".*"))  # nothing renamed to a hidden name
    assert sorted(p.name for p in (root / "c").glob("*-000000001-000000001*")) == [target.name]  # ours went
    assert counters.get("recorder.deleted") == 2 and counters.get("recorder.delete_errors") == 0
    if (tmp_path / "etc").exists():
        assert (tmp_path / "etc" / "passwd").read_text() == "root:x:0:0"


def _describe(path: Path) -> object:
    if path.is_symlink():
        return ("link", os.readlink(path))
    if path.is_dir():
        return ("folder", _snapshot(path))
    return ("file", path.read_bytes())


def _put_unrecordable(rec, counters) -> None:
    """Defects 1 and 2 of camera 'c' put while its folder cannot be used; wait (≤ 10 s) until both are counted."""
    for i in (1, 2):
        frame = Frame(camera="c", frame_id=i, image=np.zeros((8, 8, 3), np.uint8), capture_ns=i, capture_utc=0.0)
        rec.put(frame, {"seq": i, "capture": {"monotonic_ns": i}})
    deadline = time.monotonic() + 10
    while counters.get("recorder.unusable") < 2 and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.parametrize("bits, channels", [(12, 1), (10, 3), (16, 1), (None, 1)])
def test_a_recording_of_wide_frames_reads_back_as_the_pixels_the_model_saw(tmp_path, bits, channels):
    """A camera's 16-bit frames with bit_depth 12 (a Mono12 GigE camera, say) were recorded as 16-bit PNGs that
    did not say so: `predict` on the recording read them by the container's 65535, 16x darker than the daemon
    had inspected them (by 4095). The recording now carries the camera's significant bits (PNG sBIT), which
    every reader takes before any setting, so it reads back as what the model saw."""
    from inspector.data.images import read_image, to_uint8

    rng = np.random.default_rng(0)
    shape = (24, 32) + ((channels,) if channels > 1 else ())
    image = rng.integers(0, 2 ** (bits or 16), shape).astype(np.uint16)
    counters, lock = Counters(), lock_recorder_dir(tmp_path)
    rec = RecorderWorker(RecorderSection(enabled=True, dir=str(tmp_path), min_free_bytes=0), threading.Event(),
                         counters, "aaaaaaaaaaaa", "2025-01-31T12:00:00.000Z", dir_lock=lock, cameras=("c",),
                         bit_depths={"c": bits})
    rec.start()
    rec.put(Frame(camera="c", frame_id=1, image=image, capture_ns=1, capture_utc=0.0), {"seq": 1})
    rec.finish()
    rec.join(30)
    lock.release()
    (recording,) = [p for p in (tmp_path / "c").glob("*.png") if not p.name.endswith(".heat.png")]
    seen = to_uint8(image, "the daemon's frame", bits)  # the preprocessing's conversion of the camera's frame
    seen = np.repeat(seen[..., None], 3, axis=2) if channels == 1 else seen[..., ::-1]  # BGR → RGB
    assert np.array_equal(read_image(recording), seen)
