"""The recorder keeps evidence where readers find it: a camera folder that is a disk or share of its own (a real
tmpfs mounted on it), unmounted mid-run, is not written beneath; the loss is counted and told, the other cameras
are recorded, and recording resumes once it is mounted again. Real recorders on real mounts (root only)."""

from __future__ import annotations

import logging
import subprocess
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

from pipeline_support import write_video


def _recorder(root: Path) -> tuple[Counters, object, RecorderWorker]:
    """A recorder of camera 'c' holding ``root`` as the daemon does (not started): its counters, lock and worker."""
    counters, lock = Counters(), lock_recorder_dir(root)
    return counters, lock, RecorderWorker(RecorderSection(enabled=True, dir=str(root), min_free_bytes=0),
                                          threading.Event(), counters, "cccccccccccc", "2025-01-31T12:00:00.000Z",
                                          dir_lock=lock, cameras=("c",))


def _close(rec, lock, mounted: Path | None = None) -> None:
    """End a recorder as the daemon does, release its folder, and unmount ``mounted`` (None: nothing mounted)."""
    rec.finish()
    rec.join(30)
    lock.release()
    if mounted is not None:
        subprocess.run(["umount", str(mounted)], check=True)

def _mount_tmpfs(path: Path) -> bool:
    """A 1 MiB tmpfs mounted at ``path`` (made if missing); False where this user cannot mount."""
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def _put(rec: RecorderWorker, counters: Counters, camera: str, i: int, counter: str) -> None:
    """Defect ``i`` of ``camera`` into ``rec``; waits until its outcome ``counter`` went up by one."""
    before = counters.get(counter)
    frame = Frame(camera=camera, frame_id=i, image=np.zeros((8, 8, 3), np.uint8), capture_ns=i, capture_utc=0.0)
    rec.put(frame, {"seq": i, "capture": {"monotonic_ns": i}})
    deadline = time.monotonic() + 10
    while counters.get(counter) <= before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert counters.get(counter) == before + 1, (counter, counters.snapshot())


@pytest.mark.parametrize("cameras", [("c",), ("c", "d")])
def test_a_camera_disk_unmounted_mid_run_is_not_written_beneath_and_recording_resumes(tmp_path, caplog, cameras):
    """recorder.dir on the system disk, camera 'c''s folder a disk of its own, unmounted mid-run (umount -l, as a
    pulled USB disk or a dropped share): the recorder went on writing into the bare mount-point directory, on the
    system disk, exit 0 and not a word, and the next mount hid those recordings. Now nothing is written there, each
    defect of 'c' is counted (recorder.unusable), told once when it goes and once when it is back, camera 'd' (on
    recorder.dir's own disk) is recorded throughout, and 'c' is recorded again on its disk mounted again."""
    root = tmp_path / "rec"
    if not _mount_tmpfs(root / "c"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    mounted = True
    counters, lock = Counters(), lock_recorder_dir(root)
    rec = RecorderWorker(RecorderSection(enabled=True, dir=str(root), min_free_bytes=0), threading.Event(),
                         counters, "cccccccccccc", "2025-01-31T12:00:00.000Z", dir_lock=lock, cameras=cameras)
    rec.start()
    try:
        with caplog.at_level(logging.WARNING, logger="inspector.recorder"):
            _put(rec, counters, "c", 0, "recorder.written")
            subprocess.run(["umount", "-l", str(root / "c")], check=True)
            mounted = False
            other = "recorder.written" if len(cameras) > 1 else "recorder.unusable"  # 'd', or 'c' again
            for i in (1, 2):
                _put(rec, counters, "c", i, "recorder.unusable")
                _put(rec, counters, cameras[-1], 10 + i, other)
            beneath = sorted(p.name for p in (root / "c").iterdir())
            mounted = _mount_tmpfs(root / "c")
            _put(rec, counters, "c", 3, "recorder.written")
    finally:
        _close(rec, lock, root / "c" if mounted else None)
    assert beneath == [], beneath
    assert counters.get("recorder.unusable") == (2 if len(cameras) > 1 else 4), counters.snapshot()
    told = [r.getMessage() for r in caplog.records]
    gone = [m for m in told if "camera 'c' is not recorded" in m and "no longer mounted" in m]
    assert len(gone) == 1 and str(root / "c") in gone[0], told
    assert sum("camera 'c' is recorded again" in m for m in told) == 1, told
    if len(cameras) > 1:
        assert len(list((root / "d").glob("*.json"))) == 2 and not any("camera 'd'" in m for m in told), told


def _read_only_run(tiny_model, tmp_path: Path, made: bool) -> tuple[int, Path]:
    """``inspector run`` of a video camera 'c' (2 NG frames), recorder.dir on a disk (a real tmpfs) mounted read-only,
    with recorder.dir made on it before (``made``) or not: (exit code, the disk's mount point)."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        if made:
            (disk / "rec").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        video = write_video(tmp_path / "c.avi", [True, True])
        cfg = {"model": {"path": str(tiny_model), "threads": 1}, "thresholds": {"image": 0.0},
               "cameras": [{"name": "c", "source": str(video)}], "publish": {"endpoint": f"ipc://{tmp_path}/p.sock"},
               "recorder": {"enabled": True, "dir": str(disk / "rec"), "min_free_bytes": 0}}
        (tmp_path / "inspector.yaml").write_text(yaml.safe_dump(cfg))
        code = main(["run", "--config", str(tmp_path / "inspector.yaml")])
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    return code, disk


def test_a_recorder_dir_on_a_read_only_disk_costs_the_recordings_not_the_inspection(tiny_model, tmp_path, capsys,
                                                                                    caplog):
    """recorder.dir on a disk mounted read-only at start (a USB disk mounted ro after a power cut, a disk the kernel
    remounted ro after errors): ``inspector run`` refused to start (exit 2, "permission denied"), so no camera was
    inspected, and a service restarting it never inspected again. As when the disk goes read-only mid-run, the
    cameras are inspected, the recordings lost are told (one line at start, naming the read-only file system; the
    closing line) and counted (recorder.unusable), exit 1."""
    with caplog.at_level(logging.WARNING):
        code, disk = _read_only_run(tiny_model, tmp_path, made=True)
    out = capsys.readouterr().out
    assert code == 1 and "stopped: 2 frames inspected (NG 2, OK 0)" in out, out
    assert "2 defect recording(s) lost (recorder folder unusable 2)" in out, out
    told = [r.getMessage() for r in caplog.records if "read-only file system" in r.getMessage()]
    assert told and f"cannot write in {disk / 'rec'} (read-only file system)" in told[0], told


def test_a_recorder_dir_to_be_made_on_a_read_only_disk_is_refused_as_read_only(tiny_model, tmp_path, capsys):
    """recorder.dir not made yet, on a disk mounted read-only: nothing can hold the run's lock there, refused in one
    line, exit 2, as before; the line said "permission denied", and an operator changed permissions, which cannot
    help there, instead of remounting the disk."""
    code, disk = _read_only_run(tiny_model, tmp_path, made=False)
    err = capsys.readouterr().err
    assert code == 2 and f"recorder.dir: cannot write in {disk} (read-only file system)" in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_a_camera_disk_remounted_read_only_mid_run_is_told_as_read_only(tmp_path, caplog):
    """A camera folder's disk remounted read-only mid-run (as the kernel does after disk errors): that camera's
    defects are counted (recorder.unusable) and the line says why as it is, read-only, not "permission denied"."""
    root = tmp_path / "rec"
    if not _mount_tmpfs(root / "c"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    counters, lock, rec = _recorder(root)
    rec.start()
    try:
        with caplog.at_level(logging.WARNING, logger="inspector.recorder"):
            _put(rec, counters, "c", 0, "recorder.written")
            subprocess.run(["mount", "-o", "remount,ro", str(root / "c")], check=True)
            _put(rec, counters, "c", 1, "recorder.unusable")
    finally:
        _close(rec, lock, root / "c")
    told = [r.getMessage() for r in caplog.records if "camera 'c' is not recorded" in r.getMessage()]
    assert len(told) == 1 and f"cannot write in {root / 'c'} (read-only file system)" in told[0], told


def _fstab(tmp_path: Path, monkeypatch, *points: Path) -> None:
    """An fstab(5) listing ``points`` (a USB disk mounted nofail, a share), read in place of /etc/fstab."""
    fstab = tmp_path / "fstab"
    fstab.write_text("# <file system> <mount point> <type> <options> <dump> <pass>\n" + "".join(
        f"LABEL=EVIDENCE {str(p).replace(' ', chr(92) + '040')} ext4 defaults,nofail 0 2\n" for p in points))
    monkeypatch.setattr("inspector.mounts.FSTAB", str(fstab), raising=False)


def _files_beneath(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


@pytest.mark.parametrize("listed", ["disk", "disk/rec/c"])
def test_a_disk_listed_in_fstab_but_not_mounted_yet_at_start_is_waited_for(tmp_path, caplog, monkeypatch, listed):
    """The daemon started at boot before the evidence disk (listed in /etc/fstab, nofail) was mounted: the recorder
    made recorder.dir (or the camera's folder) in the bare mount-point directory and recorded there, on the system
    disk, as 'written'; the disk, mounted a moment later, hid them from every reader. Now nothing is written there,
    told at start, each defect counted (recorder.unusable), and once the disk is mounted it is recorded on it."""
    disk = tmp_path / listed
    disk.mkdir(parents=True)
    _fstab(tmp_path, monkeypatch, disk)
    root = tmp_path / "disk" / "rec"
    counters, lock, rec = _recorder(root)
    mounted = False
    with caplog.at_level(logging.WARNING, logger="inspector.recorder"):
        rec.start()
        try:
            _put(rec, counters, "c", 0, "recorder.unusable")
            beneath = _files_beneath(disk)
            mounted = _mount_tmpfs(disk)
            if not mounted:
                pytest.skip("cannot mount a tmpfs here (needs root)")
            _put(rec, counters, "c", 1, "recorder.written")
        finally:
            rec.finish()
            rec.join(30)
            lock.release()
            on_disk = _files_beneath(disk)
            if mounted:
                subprocess.run(["umount", str(disk)], check=True)
    assert beneath == [] and _files_beneath(disk) == [], (beneath, _files_beneath(disk))
    assert len([n for n in on_disk if n.endswith(".json")]) == 1, on_disk
    told = [r.getMessage() for r in caplog.records if "listed in /etc/fstab" in r.getMessage()]
    assert len(told) == 1 and str(disk) in told[0], [r.getMessage() for r in caplog.records]


def test_a_disk_mounted_over_recorder_dir_mid_run_is_watched_from_then_on(tmp_path, caplog):
    """recorder.dir on the system disk at start, its evidence disk mounted over it mid-run (by hand, no fstab line):
    the recorder goes on in the folder on that disk (as it did). Pulled later (umount -l), the disk went unseen, its
    watch still that of the start: the recorder went back to the bare folder beneath and recorded there, hidden by
    the next mount. Now that disk is watched from the moment it is recorded on: nothing more is written beneath."""
    disk = tmp_path / "disk"
    root = disk / "rec"
    counters, lock, rec = _recorder(root)
    mounted = False
    rec.start()
    try:
        _put(rec, counters, "c", 0, "recorder.written")  # beneath: nothing could know
        beneath = _files_beneath(disk)
        mounted = _mount_tmpfs(disk)
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        _put(rec, counters, "c", 1, "recorder.written")
        assert len(list((root / "c").glob("*.json"))) == 1  # on the disk
        subprocess.run(["umount", "-l", str(disk)], check=True)
        mounted = False
        with caplog.at_level(logging.WARNING, logger="inspector.recorder"):
            _put(rec, counters, "c", 2, "recorder.unusable")
    finally:
        _close(rec, lock, disk if mounted else None)
    assert _files_beneath(disk) == beneath and len(beneath) == 2, (beneath, _files_beneath(disk))
    assert any("no longer mounted" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_a_daemon_started_before_its_evidence_disk_is_mounted_records_nothing_beneath_and_says_so(
        tiny_model, tmp_path, capsys, caplog, monkeypatch):
    """``inspector run`` at boot, recorder.dir on a disk /etc/fstab lists (nofail) that is not mounted yet, a video
    camera with 2 defects: both recordings are lost and told (start line, recorder.unusable, exit 1 and the closing
    line), nothing is written in the bare mount-point directory. It ran 'OK' with exit 0 and both recordings on the
    system disk, where the disk's mount would hide them."""
    disk = tmp_path / "disk"
    disk.mkdir()
    _fstab(tmp_path, monkeypatch, disk)
    video = write_video(tmp_path / "cam.avi", [True, True])
    cfg = {"model": {"path": str(tiny_model), "threads": 1}, "thresholds": {"image": 0.0},
           "cameras": [{"name": "cam", "source": str(video)}], "publish": {"endpoint": f"ipc://{tmp_path}/p.sock"},
           "recorder": {"enabled": True, "dir": str(disk / "rec"), "min_free_bytes": 0}}
    (tmp_path / "inspector.yaml").write_text(yaml.safe_dump(cfg))
    with caplog.at_level(logging.WARNING, logger="inspector.recorder"):
        code = main(["run", "--config", str(tmp_path / "inspector.yaml")])
    out = capsys.readouterr().out
    assert code == 1 and "2 defect recording(s) lost (recorder folder unusable 2)" in out, out
    assert _files_beneath(disk) == [], _files_beneath(disk)
    assert sum("listed in /etc/fstab" in r.getMessage() for r in caplog.records) == 1


def test_run_check_says_the_evidence_disk_listed_in_fstab_is_not_mounted(tiny_model, tmp_path, capsys, caplog,
                                                                         monkeypatch):
    """``inspector run --check`` with recorder.dir on a disk /etc/fstab lists that is not mounted now said OK and
    nothing more; the run then records nothing until it is mounted. It says so (a warning; the check passes: the
    disk may be mounted before the daemon starts)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    _fstab(tmp_path, monkeypatch, disk)
    cfg = {"model": {"path": str(tiny_model)}, "thresholds": {"image": 0.5},
           "cameras": [{"name": "c", "source": "synthetic", "max_frames": 1}],
           "publish": {"endpoint": f"ipc://{tmp_path}/p.sock"},
           "recorder": {"enabled": True, "dir": str(disk / "rec"), "min_free_bytes": 0}}
    (tmp_path / "inspector.yaml").write_text(yaml.safe_dump(cfg))
    with caplog.at_level(logging.WARNING):
        code = main(["run", "--config", str(tmp_path / "inspector.yaml"), "--check"])
    told = [r.getMessage() for r in caplog.records if "listed in /etc/fstab" in r.getMessage()]
    assert code == 0 and len(told) == 1 and str(disk) in told[0], (code, capsys.readouterr())
    assert _files_beneath(disk) == [] and not (disk / "rec").exists()


def test_a_disk_mounted_over_a_camera_folder_mid_run_is_told_and_watched(tmp_path, caplog):
    """Camera 'c''s folder on recorder.dir's disk at start, a disk mounted over it mid-run (by hand): the recordings
    made before are hidden beneath the mount, which is told (they are neither lost nor deleted: unmounting shows
    them); the mounted disk is recorded on and watched, so pulling it later is not recorded beneath."""
    root = tmp_path / "rec"
    counters, lock, rec = _recorder(root)
    mounted = False
    rec.start()
    try:
        with caplog.at_level(logging.WARNING, logger="inspector.recorder"):
            _put(rec, counters, "c", 0, "recorder.written")
            beneath = _files_beneath(root / "c")
            mounted = _mount_tmpfs(root / "c")
            if not mounted:
                pytest.skip("cannot mount a tmpfs here (needs root)")
            _put(rec, counters, "c", 1, "recorder.written")
            on_disk = _files_beneath(root / "c")
            subprocess.run(["umount", "-l", str(root / "c")], check=True)
            mounted = False
            _put(rec, counters, "c", 2, "recorder.unusable")
    finally:
        _close(rec, lock, root / "c" if mounted else None)
    assert len(beneath) == 2 and _files_beneath(root / "c") == beneath and len(on_disk) == 2, (beneath, on_disk)
    told = [r.getMessage() for r in caplog.records if "was mounted on camera 'c'" in r.getMessage()]
    assert len(told) == 1 and "hidden" in told[0], [r.getMessage() for r in caplog.records]
