"""Sources that fail and recover correctly: back-off saturation, permanent vs transient errors,
folder rescans, looping files changed under the source, and fair share of a saturated pipeline."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.errors import SourceError
from inspector.pipeline.capture import Backoff, CaptureWorker, FrameHub
from inspector.pipeline.config import CameraSection, ReconnectSection, SyntheticSection
from inspector.pipeline.frame import Frame
from inspector.pipeline.sources import Source, SourceChanged, make_source, source_type
from inspector.pipeline.telemetry import Counters

from file_faults import permissions_enforced
from pipeline_support import base_config, defect_pattern, run_to_end, write_folder, write_video


# -- back-off ------------------------------------------------------------------------------------
ATTEMPTS = [0, 1, 2, 5, 10, 50, 100, 1023, 1024, 1025, 1100, 5000, 10**6, 10**12, 10**18, sys.maxsize, 2**200]


@pytest.mark.parametrize("initial, cap, factor, jitter", [
    (0.5, 30.0, 2.0, 0.2), (0.001, 0.002, 2.0, 0.0), (1.0, 1.0, 2.0, 0.5), (0.1, 60.0, 1.0, 0.3),
    (0.01, 3600.0, 10.0, 0.99), (1e-6, 1e6, 1.0001, 0.1),
    # the smallest initial_s reconnect takes (> 0): max_s / initial_s and factor ** attempt pass the float range
    (1e-320, 86400.0, 2.0, 0.0), (5e-324, 86400.0, 1.5, 0.5),
])
def test_backoff_saturates_at_max_for_any_attempt(initial, cap, factor, jitter):
    rng = random.Random(1)
    b = Backoff(initial, cap, factor, jitter, rng=rng)
    bases = [b.base_delay(a) for a in ATTEMPTS]  # never OverflowError, however long the outage
    assert all(0 < d <= cap for d in bases)
    assert bases == sorted(bases)  # grows (or stays) with the attempt count
    if factor > 1:
        assert bases[-1] == cap  # saturated
    for attempt in ATTEMPTS + [rng.randrange(10**30) for _ in range(200)]:
        b.attempt = attempt
        delay = b.next_delay()
        assert 0 <= delay <= cap and b.attempt == attempt + 1


def test_backoff_first_delays_unchanged():
    b = Backoff(0.5, 4.0, 2.0, 0.0)
    assert [b.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


class _Exploding(Source):
    """Injects a bug a real source cannot be made to have: read() raises a non-SourceError."""

    kind = "exploding"

    def read(self):
        raise RuntimeError("driver bug")


def test_a_failing_camera_never_stops_a_healthy_one():
    stop, counters, hub, states = threading.Event(), Counters(), FrameHub(Counters()), []
    bad = CameraSection(name="bad", source="x")
    good = CameraSection(name="good", source="synthetic", max_frames=5,
                         synthetic=SyntheticSection(texture="procedural", size=32, pool=1))
    on_status = lambda c, s, p, r, d: states.append((c, s))  # noqa: E731
    w_bad = CaptureWorker(bad, _Exploding(bad), hub, stop, counters, on_status)
    w_good = CaptureWorker(good, make_source(good), hub, stop, counters, on_status, capacity=16)
    w_bad.start()
    w_bad.join(5)
    assert ("bad", "failed") in states and w_bad.failure is None and not stop.is_set()
    w_good.start()
    w_good.join(5)
    assert counters.get("good.captured") == 5 and ("good", "ended") in states


class _EmptyFramesCapture:
    """Stands in for cv2.VideoCapture on OpenCV's V4L2 backend with a camera that, after ``good`` frames per
    connection, keeps answering ``grab()`` True at once and ``retrieve()`` with an empty frame (OpenCV's Python
    binding gives an empty Mat as None): a driver after a USB hiccup, which no camera here can be made to do on
    demand. A new connection (a new VideoCapture) starts with ``good`` frames again."""

    opened = 0
    reads = 0

    def __init__(self, *args, good: int = 3) -> None:
        type(self).opened += 1
        self.n, self.good = 0, good

    def isOpened(self):
        return True

    def getBackendName(self):
        return "V4L2"

    def get(self, prop):
        return {cv2.CAP_PROP_FRAME_WIDTH: 64.0, cv2.CAP_PROP_FRAME_HEIGHT: 48.0, cv2.CAP_PROP_FPS: 25.0}.get(prop, 0.0)

    def set(self, prop, value):
        return False

    def grab(self):
        self.n += 1
        type(self).reads += 1
        return True

    def retrieve(self):
        return (True, np.full((48, 64, 3), 99, np.uint8)) if self.n <= self.good else (True, None)

    def release(self):
        pass


def test_a_live_camera_that_grabs_only_empty_frames_is_reopened_not_spun_on(monkeypatch):
    """A live camera whose grab succeeds with an empty frame: it stayed 'online', then 'stalled' for ever, never
    reopened, read about 11,000 times a second (a core), each counted corrupt. Now its reads are paced
    (capture._UNDECODABLE_PAUSE_S) and, with no decodable frame for read_timeout_s, it reconnects with back-off;
    the frames of the new connection are inspected."""
    from inspector.pipeline import capture

    monkeypatch.setattr(cv2, "VideoCapture", _EmptyFramesCapture)
    monkeypatch.setattr(_EmptyFramesCapture, "opened", 0)
    monkeypatch.setattr(_EmptyFramesCapture, "reads", 0)
    cam = CameraSection(name="usb", source=0, type="device", read_timeout_s=0.3,
                        reconnect=ReconnectSection(initial_s=0.01, max_s=0.02))
    stop, counters, states = threading.Event(), Counters(), []
    worker = CaptureWorker(cam, make_source(cam), FrameHub(Counters()), stop, counters,
                           lambda c, state, p, reason, d: states.append((state, reason)), capacity=64)
    worker.start()
    deadline = time.monotonic() + 20
    while _EmptyFramesCapture.opened < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    worker.join(5)
    assert _EmptyFramesCapture.opened >= 3, states
    reopened = [reason for state, reason in states if state == "reconnecting"]
    assert reopened and "no decodable frame from device 0 for 0.3 s" in reopened[0]
    assert counters.get("usb.captured") >= 6  # each new connection's frames went on to be inspected
    # each connection gave at most read_timeout_s / pause empty frames before it was reopened (+ its good ones)
    most = _EmptyFramesCapture.opened * (0.3 / capture._UNDECODABLE_PAUSE_S + 3 + 2)
    assert _EmptyFramesCapture.reads <= most, f"{_EmptyFramesCapture.reads} reads in {_EmptyFramesCapture.opened} connections"


# -- permanent vs transient ----------------------------------------------------------------------
def _truncated_mp4(path):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 48))
    assert writer.isOpened()
    for i in range(10):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])  # the index (moov) is at the end: gone
    return path


def _bad_inputs(tmp_path):
    (tmp_path / "zero.avi").write_bytes(b"")
    (tmp_path / "garbage.avi").write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, np.uint8).tobytes())
    (tmp_path / "empty").mkdir()
    (tmp_path / "all_corrupt").mkdir()
    (tmp_path / "all_corrupt" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    os.utime(tmp_path / "all_corrupt" / "a.png", (time.time() - 60, time.time() - 60))  # not being written
    _truncated_mp4(tmp_path / "cut.mp4")
    for name in ("cut.mp4", "zero.avi", "garbage.avi"):  # not being written (one changed just now may be: waited for)
        os.utime(tmp_path / name, (time.time() - 60, time.time() - 60))
    return {"truncated_mp4": str(tmp_path / "cut.mp4"), "zero_byte": str(tmp_path / "zero.avi"),
            "garbage_video": str(tmp_path / "garbage.avi"), "empty_folder": str(tmp_path / "empty"),
            "corrupt_folder": str(tmp_path / "all_corrupt")}


@pytest.mark.parametrize("case", ["truncated_mp4", "zero_byte", "garbage_video", "empty_folder", "corrupt_folder"])
def test_an_offline_source_that_can_never_deliver_fails_at_once(tmp_path, case):
    src = _bad_inputs(tmp_path)[case]
    cam = CameraSection(name="rec", source=src, reconnect=ReconnectSection(initial_s=5.0, max_s=10.0))
    states, reasons = [], []
    worker = CaptureWorker(cam, make_source(cam), FrameHub(Counters()), threading.Event(), Counters(),
                           lambda c, s, p, r, d: (states.append(s), reasons.append(r)))
    t0 = time.monotonic()
    worker.start()
    worker.join(4)  # a retry would wait 5 s: failing at once is the only way to finish in time
    assert not worker.is_alive() and time.monotonic() - t0 < 4
    assert states[-1] == "failed" and "reconnecting" not in states, states
    assert "camera 'rec'" in reasons[-1] or "rec" in reasons[-1] or src.split("/")[-1] in reasons[-1]


@pytest.mark.parametrize("loop", [False, True])
def test_a_still_image_camera_that_can_never_decode_fails_at_once(tmp_path, loop):
    """A camera on one image file (not a folder) that is corrupt and not being written: like a recording,
    it can never give a frame, looping or not."""
    path = tmp_path / "part.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    os.utime(path, (time.time() - 60, time.time() - 60))
    cam = CameraSection(name="still", source=str(path), loop=loop,
                        reconnect=ReconnectSection(initial_s=5.0, max_s=10.0))
    states, reasons = [], []
    worker = CaptureWorker(cam, make_source(cam), FrameHub(Counters()), threading.Event(), Counters(),
                           lambda c, s, p, r, d: (states.append(s), reasons.append(r)))
    worker.start()
    worker.join(4)  # a retry would wait 5 s
    assert not worker.is_alive()
    assert states[-1] == "failed" and "reconnecting" not in states, states
    assert "part.png" in reasons[-1]



@pytest.mark.parametrize("name, why", [("part.tif", "set bit_depth"), ("dot.png", "smaller than the minimum"),
                                       ("empty.png", "empty file")])
def test_a_still_image_camera_that_fails_says_the_decoders_reason(tmp_path, name, why):
    """The failure of a camera on one image file says why its file gives no frame, as predict says it: 'corrupt or
    unsupported image' sent the user of a 32-bit TIFF (read with a bit_depth setting), of a 1x1 picture or of an
    empty file looking for a damaged file or a codec."""
    import tifffile

    path = tmp_path / name
    if name == "part.tif":
        tifffile.imwrite(path, np.arange(64 * 48, dtype=np.uint32).reshape(48, 64))
    elif name == "dot.png":
        cv2.imwrite(str(path), np.zeros((1, 1, 3), np.uint8))
    else:
        path.write_bytes(b"")
    os.utime(path, (time.time() - 60, time.time() - 60))
    source = make_source(CameraSection(name="still", source=str(path)))
    source.open()
    with pytest.raises(SourceError) as exc:
        while source.read() is not None:
            pass
    assert str(path) in str(exc.value) and why in str(exc.value) and "corrupt" not in str(exc.value), exc.value

def test_a_run_on_an_unopenable_recording_exits_non_zero(tiny_model, endpoint, tmp_path):
    cam = {"name": "rec", "source": str(_truncated_mp4(tmp_path / "cut.mp4"))}
    daemon, code, events = run_to_end(base_config(tiny_model, endpoint, [cam]), timeout=20)
    assert code == 1
    assert any("'rec'" in f for f in daemon.failures)
    statuses = [e.state for e in events if e.type == "status" and e.camera == "rec"]
    assert statuses[-1] == "failed"


def test_a_network_camera_that_is_gone_is_transient():
    cam = CameraSection(name="net", source="http://127.0.0.1:9/x", open_timeout_s=0.5)
    with pytest.raises(SourceError) as exc:
        make_source(cam).open()
    assert not exc.value.permanent


# -- folder source -------------------------------------------------------------------------------
def _read_all(source, limit=100):
    out = []
    for _ in range(limit):
        g = source.read()
        if g is None:
            break
        out.append(g)
    return out


def test_folder_rescans_each_pass_and_missing_files_are_not_corrupt(tmp_path):
    folder = write_folder(tmp_path / "f", [False] * 3)
    cam = CameraSection(name="f", source=str(folder), loop=True)
    src = make_source(cam)
    src.open()
    assert [src.read().meta["file"] for _ in range(3)] == ["0000.png", "0001.png", "0002.png"]
    shutil.copy(folder / "0000.png", folder / "0005.png")  # added while running
    (folder / "0001.png").unlink()
    names = [src.read().meta["file"] for _ in range(3)]
    assert names == ["0000.png", "0002.png", "0005.png"]
    src.read()  # pass 3 starts at 0000
    (folder / "0002.png").unlink()  # deleted between the scan and the read
    g = src.read()
    assert g.image is None and g.reason == "missing"


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"), reason="no FIFOs or /dev/zero")
def test_a_folder_camera_names_a_fifo_and_a_device_link_with_image_names_as_corrupt_frames(tmp_path):
    """A FIFO and a link to /dev/zero named like pictures were left out of the folder's listing without a word
    (and read, the link's data never ends). Each is now a skipped frame naming what it is, the others inspected."""
    folder = write_folder(tmp_path / "f", [False] * 2)
    os.mkfifo(folder / "0000b.png")
    (folder / "0000c.png").symlink_to("/dev/zero")
    src = make_source(CameraSection(name="f", source=str(folder), loop=False))
    src.open()
    got = _read_all(src)
    assert [(g.meta["file"], g.image is not None) for g in got] == [
        ("0000.png", True), ("0000b.png", False), ("0000c.png", False), ("0001.png", True)]
    assert [g.error for g in got if g.image is None] == [
        "0000b.png: cannot read (is a FIFO (named pipe), not an image file)",
        "0000c.png: cannot read (is a character device, not an image file)"]
    assert {g.reason for g in got if g.image is None} == {"corrupt"}


def test_an_emptied_or_recreated_folder_backs_off_then_resumes(tmp_path):
    folder = write_folder(tmp_path / "f", [False] * 2)
    cam = CameraSection(name="f", source=str(folder), loop=True)
    src = make_source(cam)
    src.open()
    _ = [src.read() for _ in range(2)]
    shutil.rmtree(folder)
    with pytest.raises(SourceError) as exc:  # nothing readable: the worker backs off (no spin)
        src.read()
    assert not exc.value.permanent
    with pytest.raises(SourceError) as exc:
        src.open()
    assert not exc.value.permanent
    write_folder(folder, [False])  # recreated
    src.open()
    assert src.read().meta["file"] == "0000.png"


def test_emptied_folder_costs_no_cpu_and_new_files_are_inspected(tmp_path):
    folder = write_folder(tmp_path / "f", [False] * 2)
    cam = CameraSection(name="f", source=str(folder), loop=True, fps=20,  # paced: the hub never fills
                        reconnect=ReconnectSection(initial_s=0.05, max_s=0.1))
    counters, hub, stop = Counters(), FrameHub(Counters()), threading.Event()
    worker = CaptureWorker(cam, make_source(cam), hub, stop, counters, lambda *a: None, capacity=1000)
    worker.start()
    try:
        time.sleep(0.3)
        for p in folder.glob("*.png"):
            p.unlink()
        time.sleep(0.3)
        n_before = counters.get("f.captured")
        time.sleep(0.5)
        assert counters.get("f.captured") == n_before
        write_folder(folder, [False] * 1, seed=3)
        deadline = time.monotonic() + 3
        while counters.get("f.captured") == n_before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert counters.get("f.captured") > n_before  # the new file is read
    finally:
        stop.set()
        worker.join(5)
    assert counters.get("f.corrupt") == 0
    assert counters.get("f.reconnects") <= 30  # backed off: ~0.1 s per empty pass, not a spin


# -- looping file changed under the source -------------------------------------------------------
def test_a_looping_file_replaced_or_truncated_is_noticed(tmp_path):
    video = write_video(tmp_path / "loop.avi", defect_pattern(4))
    cam = CameraSection(name="loop", source=str(video), loop=True)
    src = make_source(cam)
    src.open()
    _ = [src.read() for _ in range(2)]
    write_video(tmp_path / "other.avi", defect_pattern(6), seed=5)
    (tmp_path / "other.avi").replace(video)
    with pytest.raises(SourceChanged):
        _ = [src.read() for _ in range(10)]  # noticed at the latest when the loop wraps



@pytest.mark.parametrize("change", ["replaced", "truncated"])
def test_a_looping_file_changed_under_a_running_camera(tmp_path, change):
    video = write_video(tmp_path / "loop.avi", defect_pattern(4))
    counters, states = Counters(), []
    cam = CameraSection(name="loop", source=str(video), loop=True, max_frames=40, fps=50,
                        reconnect=ReconnectSection(initial_s=0.01, max_s=0.02))
    worker = CaptureWorker(cam, make_source(cam), FrameHub(Counters()), threading.Event(), counters,
                           lambda c, s, p, r, d: states.append(s), capacity=1000)
    worker.start()
    time.sleep(0.3)
    if change == "replaced":
        write_video(tmp_path / "other.avi", defect_pattern(6), seed=5)
        (tmp_path / "other.avi").replace(video)
    else:
        data = video.read_bytes()
        video.write_bytes(data[:len(data) // 2])  # truncated in place: no longer opens
    worker.join(10)
    assert not worker.is_alive()
    assert counters.get("loop.source_changed") == 1 and "changed" in states  # a status event and a counter
    if change == "replaced":
        assert states[-1] == "ended" and counters.get("loop.captured") == 40
    else:  # retried once (it may still be being written), then failed: it never decodes again
        assert states[-1] == "failed" and counters.get("loop.captured") < 40


def test_a_looping_file_rotated_with_a_gap_is_picked_up_again(tmp_path):
    """Rotation: the file is deleted, and the next one appears seconds later. Gone twice in a row is not
    "failed twice unchanged": the camera backs off until the file is back (it used to fail at the first retry)."""
    video = write_video(tmp_path / "loop.avi", defect_pattern(4))
    counters, states = Counters(), []
    cam = CameraSection(name="rot", source=str(video), loop=True, fps=50,
                        reconnect=ReconnectSection(initial_s=0.05, max_s=0.2))
    stop = threading.Event()
    worker = CaptureWorker(cam, make_source(cam), FrameHub(Counters()), stop, counters,
                           lambda c, s, p, r, d: states.append(s), capacity=100_000)
    worker.start()
    try:
        time.sleep(0.3)
        video.unlink()
        time.sleep(1.5)  # several retries (0.05, 0.1, 0.2, 0.2 … s) find no file
        assert worker.is_alive() and "failed" not in states, states
        n_gone = counters.get("rot.captured")
        write_video(tmp_path / "next.avi", defect_pattern(6), seed=5)
        (tmp_path / "next.avi").replace(video)
        deadline = time.monotonic() + 5
        while counters.get("rot.captured") <= n_gone and time.monotonic() < deadline:
            time.sleep(0.05)
        assert counters.get("rot.captured") > n_gone and states[-1] == "online", states
    finally:
        stop.set()
        worker.join(5)


@pytest.mark.parametrize("suffix", [".avi", ".mkv"])
def test_a_recording_still_being_copied_is_read_to_its_real_end(tmp_path, suffix):
    """A one-pass recording that is still being written (copied in 20 kB chunks here) when the run reaches
    the end of what is there: the run reads on as it grows and ends at its real end. It used to end at the
    first end of data with exit 0, leaving most of the recording uninspected, unsaid."""
    data = write_video(tmp_path / f"full{suffix}", defect_pattern(100)).read_bytes()
    video = tmp_path / f"copying{suffix}"
    video.write_bytes(data[:len(data) // 4])

    def copy_rest():
        with open(video, "ab") as fh:
            for pos in range(len(data) // 4, len(data), 20_000):
                fh.write(data[pos:pos + 20_000])
                fh.flush()
                time.sleep(0.1)

    counters, states = Counters(), []
    cam = CameraSection(name="copy", source=str(video))
    worker = CaptureWorker(cam, make_source(cam), FrameHub(Counters()), threading.Event(), counters,
                           lambda c, s, p, r, d: states.append((s, r)), capacity=100_000)
    copier = threading.Thread(target=copy_rest)
    copier.start()
    worker.start()
    copier.join()
    worker.join(20)
    assert not worker.is_alive()
    assert counters.get("copy.captured") == 100 and states[-1] == ("ended", "100 frames"), states
    assert counters.get("copy.corrupt") == 0


def _read_recording(path, on_growing=lambda: None, limit=400):
    """(images, reasons of frame-less reads) of a one-pass recording read to its end."""
    source = make_source(CameraSection(name="cut", source=str(path)))
    source.open()
    images, reasons = [], []
    for _ in range(limit):
        grabbed = source.read()
        if grabbed is None:
            return images, reasons
        if grabbed.image is not None:
            images.append(grabbed.image)
        else:
            reasons.append(grabbed.reason)
            if grabbed.reason == "growing":
                on_growing()
    raise AssertionError(f"no end after {limit} reads: {reasons[-5:]}")


def _cut_mid_picture(data: bytes, picture: int) -> int:
    """A byte offset inside the ``picture``-th JPEG (0-based) of a recording's bytes."""
    starts = [i for i in range(len(data) - 2) if data[i:i + 3] == b"\xff\xd8\xff"]
    return starts[picture] + (starts[picture + 1] - starts[picture]) // 2


@pytest.mark.parametrize("suffix", [".avi", ".mkv"])
def test_a_frame_cut_short_by_the_copy_front_is_waited_for_not_skipped(tmp_path, suffix):
    """The read reaches a frame whose packet is only half copied (AVI hands it over cut): it is read again
    once the rest is there — every frame once, in order, none counted corrupt. Deterministic form of the
    race above (it lost a frame as "1 corrupt skipped" in CI)."""
    full = write_video(tmp_path / f"full{suffix}", defect_pattern(40))
    data = full.read_bytes()
    cut = _cut_mid_picture(data, 20)
    video = tmp_path / f"copying{suffix}"
    video.write_bytes(data[:cut])

    waits = []

    def copy_the_rest_at_the_second_wait():
        waits.append(1)
        if len(waits) == 2:
            with open(video, "ab") as fh:
                fh.write(data[cut:])

    images, reasons = _read_recording(video, copy_the_rest_at_the_second_wait)
    expected, _ = _read_recording(full)
    assert set(reasons) == {"growing"} and len(images) == len(expected) == 40, reasons
    assert all(np.array_equal(a, b) for a, b in zip(images, expected))


@pytest.mark.parametrize("suffix", [".avi", ".mkv"])
@pytest.mark.parametrize("step", [3_000, 20_000])
def test_a_recording_read_as_it_grows_in_steps_gives_each_frame_once(tmp_path, monkeypatch, suffix, step):
    """A recording copied in ``step``-byte parts, one part each time the read reaches the end of what is there (the
    race of test_a_recording_still_being_copied_is_read_to_its_real_end, made deterministic): FFmpeg seeks a
    Matroska file still being written (no index yet) to a frame before the one asked for, and those frames were
    read again, 105 frames for 100 at 20 kB parts, 151 at 3 kB (the same part inspected and published twice).
    Each frame is read once, in order, equal to the frames of the whole file."""
    from inspector.pipeline import sources

    monkeypatch.setattr(sources, "_GROWTH_POLL_S", 0.001)  # the wait between looks at the end: a pace only
    full = write_video(tmp_path / f"full{suffix}", defect_pattern(100))
    video, copy_a_part = _copying(full, tmp_path / f"copying{suffix}", step)
    images, reasons = _read_recording(video, copy_a_part, limit=2000)
    expected, _ = _read_recording(full)
    assert len(images) == len(expected) == 100 and set(reasons) <= {"growing"}, (len(images), reasons[-3:])
    assert all(np.array_equal(a, b) for a, b in zip(images, expected))


@pytest.mark.parametrize("b_frames, step", [(0, 3_000), (2, 3_000)])
def test_an_h264_recording_with_b_frames_read_as_it_grows_gives_each_frame_once(tmp_path, monkeypatch, b_frames,
                                                                                 step):
    """H.264 (2 B-frames, or none) in Matroska, read as it is copied in ``step``-byte parts (by the ffmpeg program fed
    through a pipe as it grows, for its concealment verdicts: CvSource._will_follow; by OpenCV where the program is
    missing, and before): every frame of the whole file read exactly once. At the end of what is there the decoder flushes the frames it holds: a
    P-frame comes before the B-frames shown before it, not yet written. The read position by count was then past
    them and the seek back stepped over every frame up to the last one read by time: 3 kB parts stopped after 77
    of 100 frames ('decoding stopped', the rest lost) with B-frames, and the last frame was lost without. Now the
    seek lands :data:`sources._SWITCH_MARGIN` frames before by count and only frames already read are stepped
    over (by their time), up to the furthest read; those B-frames come after their P-frame."""
    from inspector.pipeline import sources

    if "libx264" not in subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True,
                                       text=True).stdout:
        pytest.skip("this ffmpeg has no libx264")
    monkeypatch.setattr(sources, "_GROWTH_POLL_S", 0.001)  # the wait between looks at the end: a pace only
    full = tmp_path / "full.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25", "-frames:v", "100",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-bf", str(b_frames), "-threads", "1",
                    "-x264-params", "keyint=25:min-keyint=25:scenecut=0", str(full)], check=True, timeout=60)
    video, copy_a_part = _copying(full, tmp_path / "copying.mkv", step)
    images, reasons = _read_recording(video, copy_a_part, limit=3000)
    expected, _ = _read_recording(full)
    assert len(expected) == 100 and set(reasons) <= {"growing"}, reasons[-3:]
    whole = [frame.tobytes() for frame in expected]
    read = sorted(whole.index(image.tobytes()) if image.tobytes() in whole else -1 for image in images)
    assert read == list(range(100)), (len(images), sorted(set(range(100)) - set(read)))


@pytest.mark.parametrize("codec, b_frames, step", [("libx264", 2, 3_000), ("libx264", 0, 20_000),
                                                   ("mpeg2video", 2, 20_000)])
def test_an_mpeg_ts_recording_read_as_it_grows_gives_each_frame_once_whole(tmp_path, monkeypatch, codec, b_frames,
                                                                           step):
    """An MPEG-TS recording (the format of most recorders) copied in ``step``-byte parts while read: every frame of
    the whole file exactly once, in order, bitwise OpenCV's decoding of the finished file. Read by OpenCV, the
    demuxer handed over the packet cut by the end of what was there, its frame made up by the decoder and read,
    and the real frame stepped over after the seek back (H.264, 3 kB parts: 38 of 100 frames made up, 37 lost;
    MPEG-2: 80 read, out of order). Now the program reads it through a pipe fed as it grows (ts_feed)."""
    from inspector.pipeline import sources

    if not shutil.which("ffmpeg") or codec not in subprocess.run(["ffmpeg", "-hide_banner", "-encoders"],
                                                                 capture_output=True, text=True).stdout:
        pytest.skip(f"needs the ffmpeg program with {codec}")
    monkeypatch.setattr(sources, "_GROWTH_POLL_S", 0.001)  # the wait between looks at the end: a pace only
    full = tmp_path / "full.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=25", "-frames:v",
                    "100", "-c:v", codec, "-pix_fmt", "yuv420p", "-bf", str(b_frames), "-g", "25",
                    "-f", "mpegts", str(full)], check=True, timeout=60)
    video, copy_a_part = _copying(full, tmp_path / "copying.ts", step)
    images, reasons = _read_recording(video, copy_a_part, limit=3000)
    expected, _ = _read_recording(full)
    assert len(expected) == 100 and set(reasons) == {"growing"}, reasons[-3:]
    whole = [frame.tobytes() for frame in expected]
    read = [whole.index(image.tobytes()) if image.tobytes() in whole else -1 for image in images]
    assert read == list(range(100)), (len(images), read)


def test_a_recording_that_ends_cut_short_and_is_no_longer_written_counts_its_last_frame_corrupt(tmp_path):
    """Nobody writes it any more (changed minutes ago): the cut frame is corrupt, and the camera fails naming
    the frames its container declares that never came (the run exits non-zero)."""
    data = write_video(tmp_path / "full.avi", defect_pattern(30)).read_bytes()
    video = tmp_path / "cut.avi"
    video.write_bytes(data[:_cut_mid_picture(data, 20)])
    os.utime(video, (time.time() - 600, time.time() - 600))
    with pytest.raises(SourceError, match="after 21 of the 30 frames") as failed:
        _read_recording(video)
    assert failed.value.permanent


def test_a_looping_recording_that_stops_decoding_part_way_fails_at_the_end_of_its_first_pass(tmp_path):
    """Looping, the same damaged recording replayed its first 13 frames for ever, the other 17 never inspected
    and nothing said. Its first pass ends short of the count its container declares: the camera fails."""
    data = bytearray(write_video(tmp_path / "full.avi", defect_pattern(30)).read_bytes())
    at = _cut_mid_picture(bytes(data), 12)
    video = tmp_path / "damaged.avi"
    video.write_bytes(bytes(data[:at] + b"\0" * 30000 + data[at + 30000:]))
    source = make_source(CameraSection(name="loop", source=str(video), loop=True))
    source.open()
    with pytest.raises(SourceError, match="of the 30 frames its container declares") as failed:
        for _ in range(100):
            source.read()
    assert failed.value.permanent


@pytest.mark.parametrize("damage", ["cut", "garbage"])
def test_a_recording_that_stops_decoding_part_way_fails_the_run(tiny_model, endpoint, tmp_path, damage):
    """A finished recording damaged before it was read (a copy cut off; a run of bad bytes in the middle)
    decoded part of its frames, then the capture ended: 'ended (11 frames)', exit 0, the rest of the
    recording never inspected and nothing said. Fewer frames than the container declares fail the camera,
    and the run exits 1 naming how many came."""
    data = bytearray(write_video(tmp_path / "full.avi", defect_pattern(30)).read_bytes())
    at = _cut_mid_picture(bytes(data), 12)
    data = data[:at] if damage == "cut" else data[:at] + b"\0" * 30000 + data[at + 30000:]
    video = tmp_path / "damaged.avi"
    video.write_bytes(bytes(data))
    os.utime(video, (time.time() - 600, time.time() - 600))  # finished: nobody writes it any more
    full = tmp_path / "full.avi"
    os.utime(full, (time.time() - 600, time.time() - 600))
    _, code, _ = run_to_end(base_config(tiny_model, endpoint, [{"name": "ok", "source": str(full)}]), timeout=20)
    assert code == 0  # the whole recording: as before
    daemon, code, events = run_to_end(base_config(tiny_model, endpoint, [{"name": "bad", "source": str(video)}]),
                                      timeout=20)
    failed = [e for e in events if e.type == "status" and e.camera == "bad" and e.state == "failed"]
    assert code == 1 and failed and "of the 30 frames its container declares" in failed[-1].reason, failed


def test_a_corrupt_frame_inside_a_recording_still_being_written_is_skipped_once(tmp_path):
    """A broken picture with frames after it is corrupt even while the file grows: counted once, read on."""
    data = bytearray(write_video(tmp_path / "full.avi", defect_pattern(30)).read_bytes())
    bad = _cut_mid_picture(bytes(data), 12)
    data[bad - 200:bad + 200] = b"\xff\xd9" * 200  # an end-of-image marker early: the decoder refuses it
    video = tmp_path / "growing.avi"
    video.write_bytes(bytes(data))  # just written: still being recorded
    images, reasons = _read_recording(video)
    assert reasons.count("corrupt") == 1 and len(images) == 29, reasons


def test_a_recording_rotated_away_while_waiting_at_its_end_ends_the_run(tmp_path):
    """The recorder that wrote it renames it (cam.avi → cam.1.avi) and begins a new cam.avi: the file being
    read is finished, whatever the new one under its old name does."""
    data = write_video(tmp_path / "full.avi", defect_pattern(60)).read_bytes()
    video = tmp_path / "cam.avi"
    video.write_bytes(data[:len(data) // 2])  # just written: still being recorded
    stop = threading.Event()

    def rotate_then_record_anew():
        time.sleep(1.0)
        video.rename(tmp_path / "cam.1.avi")
        with open(video, "wb") as fh:
            while not stop.is_set():
                fh.write(b"\0" * 100)
                fh.flush()
                time.sleep(0.1)

    counters, states = Counters(), []
    cam = CameraSection(name="rot", source=str(video))
    worker = CaptureWorker(cam, make_source(cam), FrameHub(Counters()), threading.Event(), counters,
                           lambda c, s, p, r, d: states.append(s), capacity=100_000)
    recorder = threading.Thread(target=rotate_then_record_anew)
    recorder.start()
    worker.start()
    worker.join(6)
    alive = worker.is_alive()
    stop.set()
    recorder.join()
    worker.stop_event.set()
    worker.join(5)
    assert not alive and states[-1] == "ended" and counters.get("rot.captured") > 0, states


def test_a_recording_truncated_while_read_fails_the_camera(tmp_path):
    """A one-pass recording cut short under a reading camera (a disk-full writer, a log rotation with
    copytruncate, an operator's mistake): the camera fails saying so and the run exits non-zero. It used to
    end as if the recording had ended there ('ended (33 frames)' of 80, exit 0): the rest lost, unsaid."""
    video = write_video(tmp_path / "cut.avi", defect_pattern(60))
    size = video.stat().st_size
    counters, states = Counters(), []
    cam = CameraSection(name="cut", source=str(video), fps=20)  # paced: 3 s to read it whole
    worker = CaptureWorker(cam, make_source(cam), FrameHub(Counters()), threading.Event(), counters,
                           lambda c, s, p, r, d: states.append((s, r)), capacity=100_000)
    worker.start()
    time.sleep(0.8)
    os.truncate(video, size // 3)
    worker.join(10)
    assert not worker.is_alive()
    assert states[-1][0] == "failed" and "truncated while read" in states[-1][1], states
    assert 0 < counters.get("cut.captured") < 60


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="video4linux device nodes")
@pytest.mark.parametrize("target", ["/dev/null", "regular-file", "folder"])
def test_a_device_path_that_is_not_a_video_device_fails_at_once(tmp_path, target):
    """/dev/null, a regular file or a folder where a /dev/videoN should be can never become a camera: the
    camera fails at once and the run ends. It was retried for ever ('cannot open device', attempt after
    attempt) while a batch run never ended."""
    path = {"/dev/null": "/dev/null", "regular-file": str(tmp_path / "video0"), "folder": str(tmp_path)}[target]
    if target == "regular-file":
        (tmp_path / "video0").write_bytes(b"")
    counters, states = Counters(), []
    cam = CameraSection(name="dev", source=path, type="device", reconnect=ReconnectSection(initial_s=0.05, max_s=0.1))
    worker = CaptureWorker(cam, make_source(cam), FrameHub(Counters()), threading.Event(), counters,
                           lambda c, s, p, r, d: states.append((s, r)), capacity=10)
    worker.start()
    worker.join(5)
    assert not worker.is_alive() and states[-1][0] == "failed" and "not a video device" in states[-1][1], states


def test_a_missing_device_path_is_transient(tmp_path):
    """Nothing at the path (a USB camera unplugged) may come back: retried, said so."""
    src = make_source(CameraSection(name="dev", source=str(tmp_path / "video9"), type="device"))
    with pytest.raises(SourceError, match="does not exist") as err:
        src.open()
    assert not err.value.permanent


def test_a_one_pass_folder_emptied_while_read_says_what_it_skipped(tmp_path):
    """Half the files of a one-pass folder deleted before they were read (the share unmounted, a cleaner
    ran): the camera's 'ended' line says how many it skipped and why; it said 'ended (4 frames)' as if the
    folder had held 4, the 4 others only in the summary's counters."""
    folder = write_folder(tmp_path / "f", [False] * 8, corrupt=(0,))
    old = time.time() - 60
    os.utime(folder / "0000.png", (old, old))  # corrupt long ago, not still being written
    counters, states = Counters(), []
    cam = CameraSection(name="f", source=str(folder), fps=5)  # paced: 1.6 s to read it whole
    worker = CaptureWorker(cam, make_source(cam), FrameHub(Counters()), threading.Event(), counters,
                           lambda c, s, p, r, d: states.append((s, r)), capacity=100)
    worker.start()
    while counters.get("f.captured") < 2 and worker.is_alive():
        time.sleep(0.01)
    for i in range(4, 8):
        (folder / f"{i:04d}.png").unlink()
    worker.join(10)
    assert states[-1] == ("ended", "3 frames; 1 corrupt, 4 missing skipped"), states


def test_a_finished_recording_ends_without_waiting(tmp_path):
    video = write_video(tmp_path / "done.avi", defect_pattern(10))
    old = time.time() - 60
    os.utime(video, (old, old))  # written a minute ago: its end is its end
    src = make_source(CameraSection(name="done", source=str(video)))
    src.open()
    t0 = time.monotonic()
    assert len(_read_all(src)) == 10 and time.monotonic() - t0 < 1.0


# -- fair share ----------------------------------------------------------------------------------
def _frame(camera, i):
    return Frame(camera=camera, frame_id=i, image=np.zeros((8, 8, 3), np.uint8), capture_ns=time.monotonic_ns(),
                 capture_utc=time.time())


def _batches(hub, n_batches, live_every, offline=("a", "b", "c"), max_batch=8, live_frames=1):
    """Saturated pipeline: offline channels always full; the live camera delivers ``live_frames``
    frames before every ``live_every``-th batch. Returns frames per camera."""
    stop, served, i = threading.Event(), {}, 0
    for b in range(n_batches):
        for cam in offline:
            while hub.pending() < 100 and len(hub._queues[cam]) < 8:
                hub.put(_frame(cam, i), stop)
                i += 1
        if live_every and b % live_every == 0:
            for _ in range(live_frames):
                hub.put(_frame("live", i), stop)
                i += 1
        taken: dict[str, int] = {}
        batch = hub.take(max_batch, 0.01, taken)
        batch += hub.take(max_batch - len(batch), 0.002, taken)  # what the batcher does until max_wait
        for f in batch:
            served[f.camera] = served.get(f.camera, 0) + 1
    return served


def test_fair_share_live_camera_is_not_starved_by_offline_backlogs():
    hub = FrameHub(Counters(), batch_size=8)  # share: ⌈8 / 4 cameras⌉ = 2 frames per batch each
    hub.add_camera("live", live=True, capacity=1)
    for cam in "abc":
        hub.add_camera(cam, live=False, capacity=8)
    served = _batches(hub, 100, live_every=1, live_frames=3)  # demand above an equal share
    assert served["live"] == 200 and all(served[c] == 200 for c in "abc"), served
    served = _batches(hub, 100, live_every=1)  # 1 per batch: below the share, every frame; batches stay full
    assert served["live"] == 100 and sum(served[c] for c in "abc") == 700, served
    served = _batches(hub, 100, live_every=5)  # low demand: every live frame is inspected
    assert served["live"] == 20 and sum(served[c] for c in "abc") >= 300, served
    hub.close("live")  # no live camera active: batches fill from the offline backlogs
    served = _batches(hub, 10, live_every=0)
    assert sum(served.values()) == 80, served


@pytest.mark.parametrize("max_batch", [1, 2])
def test_fair_share_live_cameras_more_than_a_batch_holds_take_turns(max_batch):
    """Three live cameras, every one with a fresh frame at each batch, batches smaller than the cameras (a slow
    model at max_batch 1 or 2). The live-first pass started at the round-robin position, which moved only when
    live frames left room in the batch: the first camera took every batch (19 inspections against 2 and 2
    over 7 s, those two 3 s old). Each live camera now gets its turn in rotation."""
    hub = FrameHub(Counters(), batch_size=max_batch)
    for cam in ("x", "y", "z"):
        hub.add_camera(cam, live=True, capacity=1)
    stop, served = threading.Event(), {}
    for i in range(60):
        for cam in ("x", "y", "z"):
            hub.put(_frame(cam, i), stop)
        for f in hub.take(max_batch, 0.01, {}):
            served[f.camera] = served.get(f.camera, 0) + 1
    live = [served.get(cam, 0) for cam in ("x", "y", "z")]
    assert max(live) - min(live) <= 2 and sum(live) == 60 * max_batch, served


@pytest.mark.parametrize("max_batch,live", [(1, 1), (2, 2), (2, 5), (4, 4), (4, 7), (8, 9)])
def test_fair_share_a_camera_beside_a_batch_of_live_cameras_gets_a_turn_within_bounded_batches(max_batch, live):
    """As many live cameras as a batch holds, or more, each with a fresh frame at every batch, beside an offline
    camera (a file, or a folder back from a reconnect) and a slow live one (a frame every 7th batch). The live
    pass filled every batch, so the offline camera was never inspected; every camera with a frame ready now
    gets a turn within 2·⌈cameras ÷ max_batch⌉ batches, and the live ones still take turns."""
    hub = FrameHub(Counters(), batch_size=max_batch)
    fast = [f"l{k}" for k in range(live)]
    for cam in fast + ["slow"]:
        hub.add_camera(cam, live=True, capacity=1)
    hub.add_camera("file", live=False, capacity=8)
    stop, served, waited, i = threading.Event(), {}, {}, 0
    bound = 2 * -(-(live + 2) // max_batch)
    for b in range(200):
        for cam in fast + (["slow"] if b % 7 == 0 else []):
            hub.put(_frame(cam, i), stop)
            i += 1
        while len(hub._queues["file"]) < 8:
            hub.put(_frame("file", i), stop)
            i += 1
        ready = {cam for cam, q in hub._queues.items() if q}
        got = {f.camera for f in hub.take(max_batch, 0.01, {})}
        for cam in got:
            served[cam] = served.get(cam, 0) + 1
        for cam in hub._queues:  # batches in a row a camera had a frame ready and got none
            waited[cam] = waited.get(cam, 0) + 1 if cam in ready and cam not in got else 0
            assert waited[cam] <= bound, (b, cam, waited)
    assert served["file"] >= 200 // bound and served["slow"] >= 200 // 7 // 2, served
    rates = [served.get(cam, 0) for cam in fast]
    assert max(rates) - min(rates) <= 2 * max_batch, served


def _jittered(hub, live_fps, n_batches=400, seed=0):
    """Saturated pipeline whose batch periods vary (uniform 20-170 ms, mean 95 ms: ~84 frames/s at 8 per
    batch, a slow inference now and then); a live camera grabs at ``live_fps`` on its own clock and the
    frames it grabbed since the last batch are put before each one. Returns (served per camera, grabbed)."""
    rng = random.Random(seed)
    stop, served, now, next_grab, grabbed, i = threading.Event(), {}, 0.0, 0.0, 0, 0
    for _ in range(n_batches):
        now += rng.uniform(0.020, 0.170)
        while next_grab <= now:
            hub.put(_frame("live", i), stop)
            next_grab, grabbed, i = next_grab + 1 / live_fps, grabbed + 1, i + 1
        for cam in "abc":
            while len(hub._queues[cam]) < 8:
                hub.put(_frame(cam, i), stop)
                i += 1
        taken: dict[str, int] = {}
        batch = hub.take(8, 0.01, taken)
        batch += hub.take(8 - len(batch), 0.002, taken)
        assert len(batch) == 8  # work-conserving: the offline backlogs fill what the live camera leaves
        for f in batch:
            served[f.camera] = served.get(f.camera, 0) + 1
    return served, grabbed


def _live_beside_three_backlogs():
    counters = Counters()
    hub = FrameHub(counters, batch_size=8)  # share 2 per batch: ~21 frames/s at these batch periods
    hub.add_camera("live", live=True, capacity=1)
    for cam in "abc":
        hub.add_camera(cam, live=False, capacity=8)
    return hub, counters


def test_fair_share_a_live_camera_below_its_share_loses_nothing_when_batch_periods_vary():
    """Issue 17's mixed run: a 15 frames/s camera below its ~21 frames/s share had 93.4 % of its frames
    inspected, since a ``share``-deep channel dropped the third frame of every period over 133 ms."""
    hub, counters = _live_beside_three_backlogs()
    served, grabbed = _jittered(hub, live_fps=15)  # ~1.4 frames per batch, share 2
    # a share-deep channel dropped 33 of 583 here (5.7 %); tokens carried over leave only runs of long periods
    assert counters.get("live.dropped_live") <= grabbed // 200, (counters.get("live.dropped_live"), grabbed)
    assert served["live"] + len(hub._queues["live"]) + counters.get("live.dropped_live") == grabbed
    assert max(served[c] for c in "abc") - min(served[c] for c in "abc") <= 2, served  # the rest, equally


def test_fair_share_a_live_camera_above_its_share_still_gets_only_its_share():
    hub, counters = _live_beside_three_backlogs()
    served, grabbed = _jittered(hub, live_fps=40)  # ~3.8 frames per batch, share 2
    # its share, not less (a share-deep channel gave it 757: short periods left turns unused) nor more
    assert abs(served["live"] - 2 * 400) <= 4, served
    assert all(abs(served[c] - 2 * 400) <= 4 for c in "abc"), served
    assert counters.get("live.dropped_live") == grabbed - served["live"] - len(hub._queues["live"])


@pytest.mark.parametrize("seed", range(20))
def test_fair_share_fuzz_nothing_lost_uncounted_and_no_turn_beyond_the_tokens(seed):
    """Bounded fuzz over random cameras, demands, batch sizes and closes: every offline frame is served once,
    in order; every live frame is served, still queued or counted as dropped; a live camera never holds more
    than 2·share frames nor takes more than 2·share in one batch; a take finds a frame whenever one may be
    taken; a camera with a frame ready gets a turn within 2·⌈cameras ÷ max_batch⌉ batches."""
    rng = random.Random(seed)
    max_batch = rng.choice([1, 2, 4, 8, 16])
    counters, stop = Counters(), threading.Event()
    hub = FrameHub(counters, batch_size=max_batch)
    cams = {f"c{k}": rng.random() < 0.5 for k in range(rng.randint(1, 6))}  # name -> live
    for cam, live in cams.items():
        hub.add_camera(cam, live=live, capacity=rng.randint(1, 8))
    put = {cam: 0 for cam in cams}
    served: dict[str, list[int]] = {cam: [] for cam in cams}
    skipped = {cam: 0 for cam in cams}
    for _ in range(300):
        for cam, live in cams.items():
            if cam in hub._open:
                for _ in range(rng.randint(0, 2 * max_batch)):
                    if not live and len(hub._queues[cam]) >= hub._capacity[cam]:
                        break  # an offline producer would block here
                    hub.put(_frame(cam, put[cam]), stop)
                    put[cam] += 1
                assert not live or len(hub._queues[cam]) <= 2 * hub.share()
        if rng.random() < 0.02 and hub._open:
            hub.close(rng.choice(sorted(hub._open)))
        taken: dict[str, int] = {}
        waiting, ready = hub.pending(), {cam for cam in cams if hub._queues[cam]}
        batch = hub.take(max_batch, 0.0, taken)
        assert batch or not waiting  # a new batch's tokens let every live camera take at least one
        for f in batch:
            served[f.camera].append(f.frame_id)
        assert all(taken[c] <= 2 * hub.share() for c in taken if cams[c])
        for cam in cams:  # batches in a row with a frame ready and no turn: bounded (FrameHub, "Bounded wait")
            skipped[cam] = skipped[cam] + 1 if cam in ready and cam not in taken else 0
            assert skipped[cam] <= 2 * -(-len(cams) // max_batch), (cam, skipped)
    for cam, live in cams.items():
        queued = len(hub._queues[cam])
        if live:
            assert len(served[cam]) + queued + counters.get(f"{cam}.dropped_live") == put[cam]
            assert served[cam] == sorted(served[cam])
        else:
            assert served[cam] == list(range(put[cam] - queued))


def test_a_file_still_being_written_is_not_corrupt(tmp_path):
    folder = write_folder(tmp_path / "f", [False] * 2)
    (folder / "0002.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # just created, not yet complete
    src = make_source(CameraSection(name="f", source=str(folder)))
    src.open()
    reasons = [g.reason for g in (src.read() for _ in range(3)) if g.image is None]
    assert reasons == ["incomplete"]
    os.utime(folder / "0002.png", (time.time() - 60, time.time() - 60))  # it stayed like that: corrupt
    g = src.read()  # the rescan at the end of the pass tries it again
    assert g.image is None and g.reason == "corrupt" and src.read() is None


def _write_slowly(path, data: bytes, chunks: int, pause_s: float) -> threading.Thread:
    """A writer copying ``data`` into ``path`` in ``chunks`` parts, ``pause_s`` apart (a network copy)."""
    def write():
        with open(path, "wb") as fh:
            for part in np.array_split(np.frombuffer(data, np.uint8), chunks):
                fh.write(part.tobytes())
                fh.flush()
                time.sleep(pause_s)
    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("loop", [False, True])
def test_a_folder_waiting_for_a_file_being_written_is_not_a_failing_camera(tmp_path, loop):
    """A folder whose only unread file is still being copied in: the camera waits for it, as a recording is
    read on as it grows. It used to call each pass without a frame a source error: 'reconnecting' warnings
    and status events (online ↔ reconnecting, 21 changes in 4 s), back-off attempts that ``max_attempts``
    turned into 'failed' (exit 1), and an 'ended' line saying "10 incomplete skipped" of a file that was
    inspected."""
    folder = write_folder(tmp_path / "f", [False])
    data = (folder / "0000.png").read_bytes()
    (folder / "0000.png").unlink()
    writer = _write_slowly(folder / "0001.png", data, chunks=6, pause_s=0.25)
    counters, states = Counters(), []
    cam = CameraSection(name="f", source=str(folder), loop=loop, max_frames=1 if loop else 0,
                        reconnect=ReconnectSection(initial_s=0.05, max_s=0.1, max_attempts=2))
    worker = CaptureWorker(cam, make_source(cam), FrameHub(Counters()), threading.Event(), counters,
                           lambda c, s, p, r, d: states.append((s, r)), capacity=1000)
    worker.start()
    worker.join(10)
    writer.join(5)
    alive = worker.is_alive()
    worker.stop_event.set()
    worker.join(5)
    assert not alive and states[-1][0] == "ended", states
    assert [s for s, _ in states] == ["connecting", "online", "ended"], states
    assert counters.get("f.captured") == 1 and counters.get("f.corrupt") == 0
    assert "skipped" not in states[-1][1], states[-1]
    # one file waited for over many 0.2-s passes: counted once (it was once per pass)
    assert counters.get("f.incomplete") == 1 and counters.get("f.waiting") == 0, counters.snapshot()


def test_a_looping_folder_replaced_by_a_file_says_so_at_once(tmp_path):
    """A camera folder replaced by a file while the camera loops over it: the first error names what now
    stands there. It said "no image files" first, as if the folder had been emptied."""
    folder = write_folder(tmp_path / "f", [False])
    src = make_source(CameraSection(name="f", source=str(folder), loop=True))
    src.open()
    assert src.read().image is not None
    shutil.rmtree(folder)
    folder.write_bytes(b"not a folder")
    with pytest.raises(SourceError, match="is a file, not a folder") as info:
        src.read()
    assert not info.value.permanent


def test_a_one_pass_folder_reads_a_new_version_of_a_file_it_already_read_or_gave_up_on(tmp_path):
    """One pass: a file is passed over when it is the same file, not when it has the same name. A camera that
    reuses a name (a wrapping counter, a file replaced by rename) and a copy that paused past 2 s (given up as
    corrupt, then completed) were never read: skipped silently. A file only dated back (``cp -p`` setting the
    original's date once its data is written) is the same file: never inspected twice."""
    folder = write_folder(tmp_path / "f", [False] * 40)
    good = (folder / "0002.png").read_bytes()
    ago = time.time() - 60
    (folder / "0039.png").write_bytes(good[:len(good) // 2])  # a copy that stalled: corrupt when reached
    os.utime(folder / "0039.png", (ago, ago))
    counters, files = Counters(), []
    cam = CameraSection(name="f", source=str(folder), fps=40)  # paced: the pass lasts ~1 s
    hub, stop = FrameHub(Counters()), threading.Event()
    worker = CaptureWorker(cam, make_source(cam), hub, stop, counters, lambda *a: None, capacity=1000)
    worker.start()
    deadline = time.monotonic() + 10
    while counters.get("f.captured") < 25 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.utime(folder / "0001.png", (ago, ago))  # dated back only: the same file
    write_folder(tmp_path / "new", [True] * 20)
    for k, i in enumerate((0, *range(2, 21))):  # new pictures under names already read; their pass (~0.5 s)
        os.replace(tmp_path / "new" / f"{k:04d}.png", folder / f"{i:04d}.png")  # leaves time for the copy below
    while counters.get("f.corrupt") < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    (folder / "0039.png").write_bytes(good)  # the stalled copy completed
    worker.join(10)
    stop.set()
    worker.join(5)
    unread = []
    while (batch := hub.take(100, 0.1)):
        files += [f.meta["file"] for f in batch if f.decision != "error"]
        unread += [f.meta["file"] for f in batch if f.decision == "error"]  # told as not inspected when given up
    assert counters.get("f.corrupt") == 1 and unread == ["0039.png"]
    renewed = [f"{i:04d}.png" for i in (0, *range(2, 21))]
    assert sorted(files) == sorted([f"{i:04d}.png" for i in range(40)] + renewed), files


def test_a_corrupt_file_dated_in_the_future_does_not_hold_a_batch_run(tmp_path):
    """Files copied from a camera PC whose clock runs an hour ahead: a corrupt one is corrupt, not "still being
    written" until our clock catches up (the one-pass run used to retry it, and so run, for that hour)."""
    folder = write_folder(tmp_path / "f", [False] * 3, corrupt=(1,))
    ahead = time.time() + 3600
    for path in folder.iterdir():
        os.utime(path, (ahead, ahead))
    counters, states = Counters(), []
    cam = CameraSection(name="f", source=str(folder), reconnect=ReconnectSection(initial_s=0.1, max_s=0.5))
    worker = CaptureWorker(cam, make_source(cam), FrameHub(Counters()), threading.Event(), counters,
                           lambda c, s, p, r, d: states.append(s), capacity=1000)
    worker.start()
    worker.join(10)
    alive = worker.is_alive()
    worker.stop_event.set()
    worker.join(5)
    assert not alive and states[-1] == "ended", states
    assert counters.get("f.captured") == 2 and counters.get("f.corrupt") == 1


def test_camera_bit_depth_falls_back_to_the_models():
    cam = CameraSection(name="c", source="synthetic")
    assert make_source(cam, bit_depth=12).bit_depth == 12
    cam = CameraSection(name="c", source="synthetic", bit_depth=10)
    assert make_source(cam, bit_depth=12).bit_depth == 10


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="video4linux device nodes")
def test_a_camera_named_by_its_persistent_v4l_name_is_a_device_even_unplugged(tmp_path):
    """A USB camera plugged back in may come back as another /dev/videoN; udev's /dev/v4l/by-id/… link follows
    it. That name (a link to a character device: neither file nor folder) was refused at start as "cannot tell
    what source" without ``type: device``, and so was any link to a video node; now it is a device, unplugged
    (absent) a transient error retried with back-off, and a vanished /dev/videoN says to use it."""
    by_id = "/dev/v4l/by-id/usb-Inspector_Test_Cam_0001-video-index0"
    src = make_source(CameraSection(name="usb", source=by_id))
    assert source_type(CameraSection(name="usb", source=by_id)) == "device" and src.kind == "device"
    with pytest.raises(SourceError, match=r"camera 'usb': device /dev/v4l/by-id/\S+ does not exist \(unplugged\?\)$") \
            as err:
        src.open()
    assert not err.value.permanent
    with pytest.raises(SourceError, match=r"does not exist \(unplugged\? \(or back as another /dev/videoN: name it "
                                          r"by its /dev/v4l/by-id/… link\)\)"):
        make_source(CameraSection(name="usb", source="/dev/video97")).open()
    try:  # a link elsewhere to a real video4linux node (needs CAP_MKNOD to make one)
        os.mknod(tmp_path / "video9", 0o600 | stat.S_IFCHR, os.makedev(81, 9))
    except PermissionError:
        return
    (tmp_path / "cam").symlink_to(tmp_path / "video9")
    assert source_type(CameraSection(name="usb", source=str(tmp_path / "cam"))) == "device"


def _video_node(dev, number: int) -> None:
    """A video4linux character node (major 81) like udev makes; with no driver behind it its open fails ENXIO, as
    a node whose camera went away does. Skips where nodes cannot be made (no CAP_MKNOD)."""
    try:
        os.mknod(dev / f"video{number}", 0o660 | stat.S_IFCHR, os.makedev(81, number))
    except PermissionError:
        pytest.skip("needs CAP_MKNOD to make a video4linux node")


def _persistent_link(dev, folder: str, name: str, number: int) -> None:
    """udev's layout: /dev/v4l/<folder>/<name> → ../../videoN (relative)."""
    (dev / "v4l" / folder).mkdir(parents=True, exist_ok=True)
    link = dev / "v4l" / folder / name
    if link.is_symlink():
        link.unlink()
    link.symlink_to(f"../../video{number}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="video4linux device nodes")
@pytest.mark.parametrize("named_by", ["path", "index"])
def test_a_camera_configured_by_number_is_followed_to_its_new_number_after_a_replug(tmp_path, monkeypatch, caplog,
                                                                                   named_by):
    """A USB camera configured as /dev/video0 (or index 0) unplugged and plugged back in comes back as /dev/video2;
    another camera may take video0. It was looked for at video0 for ever ('does not exist', or that other camera's
    node). The camera's udev persistent name (by-id, seen while it was at video0) is now followed: the next open
    is of video2, said in the log; while that name is missing the camera is unplugged (transient), and the other
    camera at video0 is never opened. The node's own open fails (no driver behind a test node): what was opened
    shows in the error line."""
    from inspector.pipeline import sources

    dev = tmp_path / "dev"
    dev.mkdir()
    monkeypatch.setattr(sources, "_V4L_DIR", dev / "v4l", raising=False)
    _video_node(dev, 0)
    acme, port1 = "usb-Acme_Inspection_Cam_SN123-video-index0", "pci-0000:00:14.0-usb-0:1:1.0-video-index0"
    _persistent_link(dev, "by-id", acme, 0)
    _persistent_link(dev, "by-path", port1, 0)
    cam = CameraSection(name="usb", source=str(dev / "video0") if named_by == "path" else 0, type="device")
    src = make_source(cam)
    with pytest.raises(SourceError, match="cannot open device") as err:
        src.open()  # at video0: its persistent name is learnt
    assert "now" not in str(err.value)
    # replugged into another port: video2; another camera takes video0
    (dev / "video0").unlink()
    (dev / "v4l" / "by-path" / port1).unlink()
    _video_node(dev, 2)
    _video_node(dev, 0)
    _persistent_link(dev, "by-id", acme, 2)
    _persistent_link(dev, "by-id", "usb-Other_Cam_SN9-video-index0", 0)
    _persistent_link(dev, "by-path", "pci-0000:00:14.0-usb-0:2:1.0-video-index0", 2)
    now = str(dev / "video2") if named_by == "path" else "2"
    with pytest.raises(SourceError, match=rf"cannot open device \S+ \(now {now}\)") as err:
        src.open()
    assert not err.value.permanent
    assert f"{acme} is now {dev / 'video2'}" in caplog.text
    # unplugged again: its name is gone; video0 (the other camera) is not opened
    (dev / "v4l" / "by-id" / acme).unlink()
    (dev / "video2").unlink()
    with pytest.raises(SourceError, match=rf"is unplugged \(its camera \S+{acme} is not there\)") as err:
        src.open()
    assert not err.value.permanent


@pytest.mark.parametrize("name", ["notes.txt", "camera.log", "readme.nfo", "run.csv"])
def test_a_text_file_as_a_video_camera_is_refused_not_drawn(tmp_path, name):
    """FFmpeg opens any text file it cannot place with its tty demuxer and draws the characters as pictures:
    a log file given as a camera was inspected as 5 'frames' of its text. It is refused for good, naming it."""
    text = tmp_path / name
    text.write_text("2026-12-02 12:00:00 camera 1 online\n" * 100)
    source = make_source(CameraSection(name="t", source=str(text)))
    # (FFmpeg places some names otherwise and fails to open them: refused as well)
    with pytest.raises(SourceError, match="is a text file, not a video|corrupt or unsupported video") as err:
        source.open()
    assert err.value.permanent


def test_a_folder_camera_says_which_image_files_it_leaves_out(tmp_path, caplog):
    """A GIF among the PNGs of a folder camera was skipped without a word, as predict's folder listing did
    (one rule: data.images.is_image_file); it is told once per camera, however many passes."""
    import logging

    folder = write_folder(tmp_path / "f", [False, False])
    (folder / "scan.gif").write_bytes(b"GIF89a" + b"\0" * 32)
    source = make_source(CameraSection(name="gifs", source=str(folder), loop=True))
    with caplog.at_level(logging.WARNING, "inspector.pipeline.sources"):
        source.open()
        frames = [source.read() for _ in range(5)]
    told = [r.getMessage() for r in caplog.records if "not read are left out" in r.getMessage()]
    assert all(g.image is not None for g in frames)
    assert len(told) == 1 and "camera 'gifs'" in told[0] and "scan.gif" in told[0], told


def _loop_until(counters: Counters, cam: CameraSection, frames: int, source=None) -> tuple[CaptureWorker, FrameHub]:
    """A looping folder camera captured by a real worker until it has read ``frames`` frames; still running."""
    hub = FrameHub(Counters())
    worker = CaptureWorker(cam, source or make_source(cam), hub, threading.Event(), counters, lambda *a: None,
                           capacity=100_000)
    worker.start()
    deadline = time.monotonic() + 20
    while counters.get(f"{cam.name}.captured") < frames and time.monotonic() < deadline:
        time.sleep(0.01)
    return worker, hub


def test_a_looping_folder_counts_a_corrupt_file_once_per_version_not_per_pass(tmp_path, caplog):
    """A looping folder camera (a demo, a soak test) over a folder holding one corrupt file counted it again on
    every pass (99 passes: ``corrupt`` 99) and warned each time it was let through the throttle. A bad file is
    counted, and told, once per version of the file (inode, size, modification time); another version of it
    (rewritten, still bad) is counted again."""
    folder = write_folder(tmp_path / "f", [False] * 2, corrupt=(1,))
    ago = time.time() - 60
    os.utime(folder / "0001.png", (ago, ago))  # corrupt long ago, not still being written
    counters, cam = Counters(), CameraSection(name="f", source=str(folder), loop=True)
    worker, _ = _loop_until(counters, cam, 50)  # ~50 passes
    (folder / "0001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"still bad" * 30)  # another version, bad too
    os.utime(folder / "0001.png", (ago + 1, ago + 1))
    start = counters.get("f.captured")
    while counters.get("f.captured") < start + 50 and worker.is_alive():
        time.sleep(0.01)
    worker.stop_event.set()
    worker.join(5)
    assert counters.get("f.captured") >= 100
    assert counters.get("f.corrupt") == 2, counters.snapshot()
    told = [r for r in caplog.records if "skipped a frame (corrupt)" in r.getMessage()]
    assert len(told) <= 2, [r.getMessage() for r in told]


def test_a_bad_file_that_changes_between_its_read_and_its_judgement_is_counted_once(tmp_path, monkeypatch):
    """A copy caught mid-write and back-dated at once (``cp -p``): judged by a later stat alone, its half was
    counted corrupt (the file looked old), then the whole file again as another version: 2 for one file (CI saw
    it once as ``corrupt`` 3 in the test above). A bad file that is no longer the version read when it is judged
    is still being written. The change falls between the read and the judgement on purpose: the real read,
    then the file rewritten and back-dated, as the copying program would at that moment."""
    from inspector.pipeline import sources

    folder = write_folder(tmp_path / "f", [False], corrupt=())
    bad = folder / "0001.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"half")
    real_read, ago = sources.read_file_and_stat, time.time() - 60

    def read_then_copy_finishes(path):
        got = real_read(path)
        if path.name == bad.name and got[1].st_size < 20:
            bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"whole, still bad" * 8 + b"\0\0\0\0IEND\xaeB`\x82")
            os.utime(bad, (ago, ago))
        return got

    monkeypatch.setattr(sources, "read_file_and_stat", read_then_copy_finishes)
    source = make_source(CameraSection(name="f", source=str(folder), loop=True))
    source.open()
    grabbed = [source.read() for _ in range(8)]  # 4 passes over the 2 files
    reasons = [g.reason for g in grabbed if g.image is None]  # a frame's reason means something only without one
    assert reasons.count("corrupt") == 1, reasons
    assert reasons.count("incomplete") == 1, reasons


def _one_pass_until_gone(cam: CameraSection, remove) -> tuple[list, Counters, bool]:
    """A one-pass folder camera read by a real worker; ``remove()`` once 2 frames are in. (states, counters,
    whether the worker ended by itself)."""
    counters, states = Counters(), []
    worker = CaptureWorker(cam, make_source(cam), FrameHub(Counters()), threading.Event(), counters,
                           lambda c, s, p, r, d: states.append((s, r)), capacity=1000)
    worker.start()
    while counters.get(f"{cam.name}.captured") < 2 and worker.is_alive():
        time.sleep(0.01)
    remove()
    worker.join(10)
    ended = not worker.is_alive()
    worker.stop_event.set()
    worker.join(5)
    return states, counters, ended


def test_a_one_pass_folder_deleted_mid_run_fails_in_one_line(tmp_path):
    """A one-pass folder deleted while read ended 'ended (2 frames; 28 missing skipped)' (exit 0, as if the
    pass were done). The folder gone is the camera's failure: 'failed', once, naming the folder; no back-off."""
    folder = write_folder(tmp_path / "f", [False] * 30)
    cam = CameraSection(name="f", source=str(folder), fps=5)  # paced: 6 s to read it whole
    states, counters, ended = _one_pass_until_gone(cam, lambda: shutil.rmtree(folder))
    assert ended and [s for s, _ in states] == ["connecting", "online", "failed"], states
    assert str(folder) in states[-1][1] and "not found" in states[-1][1] and "\n" not in states[-1][1]
    assert counters.get("f.missing") == 0 and counters.get("f.reconnects") == 0, counters.snapshot()


def _replace_by_file(folder: Path) -> None:
    shutil.rmtree(folder)
    folder.write_bytes(b"not a folder")


def test_a_one_pass_folder_replaced_by_a_file_mid_run_fails_without_counting_its_files_corrupt(tmp_path):
    """A one-pass folder replaced by a file while read: each file left in the pass failed with ENOTDIR and was
    counted ``corrupt``, one warning each, paced one per frame period, and the camera then failed saying every
    file was done. The folder is what failed: at once, naming what stands there, its unread files not counted."""
    folder = write_folder(tmp_path / "f", [False] * 30)
    cam = CameraSection(name="f", source=str(folder), fps=5)  # paced: 6 s to read it whole
    states, counters, ended = _one_pass_until_gone(cam, lambda: _replace_by_file(folder))
    assert ended and [s for s, _ in states] == ["connecting", "online", "failed"], states
    assert "is a file, not a folder" in states[-1][1], states
    done = counters.get("f.captured")
    assert f"({done} file(s) done)" in states[-1][1], (done, states[-1])
    assert counters.get("f.corrupt") == 0 and counters.get("f.missing") == 0, counters.snapshot()


def test_a_looping_folder_replaced_by_a_file_mid_pass_reconnects_without_counting_its_files_corrupt(tmp_path):
    """The same under a looping camera: the rest of its pass was counted ``corrupt`` before it reconnected."""
    folder = write_folder(tmp_path / "f", [False] * 30)
    cam = CameraSection(name="f", source=str(folder), fps=5, loop=True,
                        reconnect=ReconnectSection(initial_s=5.0, max_s=5.0))
    counters, states = Counters(), []
    worker = CaptureWorker(cam, make_source(cam), FrameHub(Counters()), threading.Event(), counters,
                           lambda c, s, p, r, d: states.append((s, r)), capacity=1000)
    worker.start()
    try:
        while counters.get("f.captured") < 2 and worker.is_alive():
            time.sleep(0.01)
        _replace_by_file(folder)
        deadline = time.monotonic() + 20
        while not any(s == "reconnecting" for s, _ in states) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker.stop_event.set()
        worker.join(10)
    assert ("reconnecting" in [s for s, _ in states]) and "is a file, not a folder" in states[-1][1], states
    assert counters.get("f.corrupt") == 0 and counters.get("f.missing") == 0, counters.snapshot()


# A folder camera whose folder loses its read permission once 2 frames are in (argv: folder, "loop" or "once"),
# run in a child to which modes apply (file_faults.permissions_enforced): prints its states and counters as JSON.
PERMISSION_LOST = """
import json, os, sys, threading, time
from inspector.pipeline.capture import CaptureWorker, FrameHub
from inspector.pipeline.config import CameraSection, ReconnectSection
from inspector.pipeline.sources import make_source
from inspector.pipeline.telemetry import Counters
cam = CameraSection(name="f", source=sys.argv[1], fps=5, loop=sys.argv[2] == "loop",
                    reconnect=ReconnectSection(initial_s=5.0, max_s=5.0))
counters, states = Counters(), []
worker = CaptureWorker(cam, make_source(cam), FrameHub(Counters()), threading.Event(), counters,
                       lambda c, s, p, r, d: states.append((s, r)), capacity=1000)
worker.start()
while counters.get("f.captured") < 2 and worker.is_alive():
    time.sleep(0.01)
os.chmod(sys.argv[1], 0)
deadline = time.monotonic() + 20
while worker.is_alive() and states[-1][0] not in ("reconnecting", "failed") and time.monotonic() < deadline:
    time.sleep(0.01)
worker.stop_event.set()
worker.join(10)
os.chmod(sys.argv[1], 0o755)
print(json.dumps({"states": states, "counters": counters.snapshot()}))
"""


@pytest.mark.parametrize("loop", [False, True])
def test_a_folder_whose_permission_is_lost_mid_run_is_not_read_as_corrupt_files(tmp_path, loop):
    """A folder camera whose folder can no longer be read (its mode changed, a share remounted for another user):
    one pass counted every file left ``corrupt`` (one warning each, paced) and ended 'ended (2 frames; 28 corrupt
    skipped)', exit 0, as if done; looping, it said 'no image files'. The folder is what failed: one pass fails
    at once naming it, looping reconnects saying why."""
    prefix = permissions_enforced()
    if prefix is None:
        pytest.skip("no way to run a child to which file modes apply (root without setpriv)")
    folder = write_folder(tmp_path / "f", [False] * 30)  # paced at 5 fps: 6 s to read it whole
    child = subprocess.run([*prefix, sys.executable, "-c", PERMISSION_LOST, str(folder), "loop" if loop else "once"],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-2000:]
    result = json.loads(child.stdout.splitlines()[-1])
    states, counters = [s for s, _ in result["states"]], result["counters"]
    assert states[:2] == ["connecting", "online"] and states[2] == ("reconnecting" if loop else "failed"), states
    assert "cannot be read (permission denied)" in result["states"][2][1], result["states"]
    assert counters.get("f.corrupt", 0) == 0 and counters.get("f.missing", 0) == 0, counters


def test_a_one_pass_folder_unmounted_mid_run_fails(tmp_path):
    """A share unmounted under a one-pass camera leaves its mount point, an empty folder of another file system:
    the run ended as done. Modelled with a link swapped from a tmpfs folder to an empty one on another file
    system: the folder is no longer on the file system it was opened on."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system to model the unmount")
    share = write_folder(Path(tempfile.mkdtemp(prefix="share-", dir=shm)), [False] * 30)
    (tmp_path / "mountpoint").mkdir()
    folder = tmp_path / "cam"
    folder.symlink_to(share)

    def unmount() -> None:
        (tmp_path / "swap").symlink_to(tmp_path / "mountpoint")
        os.replace(tmp_path / "swap", folder)
    try:
        states, counters, ended = _one_pass_until_gone(CameraSection(name="f", source=str(folder), fps=5), unmount)
    finally:
        shutil.rmtree(share)
    assert ended and states[-1][0] == "failed" and "unmounted" in states[-1][1], states


def test_a_run_whose_one_pass_folder_is_deleted_exits_1(tiny_model, endpoint, tmp_path, caplog):
    from inspector.client import Subscriber

    folder = write_folder(tmp_path / "f", [False] * 40)
    sub = Subscriber(endpoint, ("v1/",))

    def delete_after_first_result() -> None:
        try:
            while (event := sub.recv(timeout=10)) is not None and event.type != "result":
                pass
            shutil.rmtree(folder)
        finally:
            sub.close()
    deleter = threading.Thread(target=delete_after_first_result)
    deleter.start()
    cfg = base_config(tiny_model, endpoint, [{"name": "f", "source": str(folder), "fps": 5}])
    daemon, code, _ = run_to_end(cfg, timeout=30)
    deleter.join(15)
    assert not folder.exists(), "the folder was never deleted: the test did not run"
    told = [r.getMessage() for r in caplog.records if str(folder) in r.getMessage() and r.levelno >= logging.WARNING
            and r.name == "inspector.capture"]
    assert code == 1 and daemon.failures, (code, daemon.failures)
    assert len(told) == 1 and "failed" in told[0] and "not found" in told[0], told
    # the run's closing line names the camera, its folder and why (said by the daemon once more, at the end)
    assert len(daemon.failures) == 1 and daemon.failures[0].startswith(
        f"camera 'f': source folder {folder} failed: a folder {folder} not found while its one pass was read ("), \
        daemon.failures


def _copying(full: Path, video: Path, step: int):
    """``video`` holding the first quarter of ``full`` (written long ago), and a function that appends its next
    ``step`` bytes; once all is there it dates ``video`` back too, so the next end read is the real end."""
    os.utime(full, (time.time() - 60, time.time() - 60))  # written long ago: its end is its end
    data = full.read_bytes()
    video.write_bytes(data[:len(data) // 4])
    copied = [len(data) // 4]

    def copy_a_part():
        with open(video, "ab") as fh:
            fh.write(data[copied[0]:copied[0] + step])
        copied[0] += step
        if copied[0] >= len(data):
            os.utime(video, (time.time() - 60, time.time() - 60))

    return video, copy_a_part


def test_a_folder_camera_on_a_folder_of_dated_sub_folders_says_so(tmp_path, caplog):
    """A camera writing into dated sub-folders (2026-12-06/…) and a folder camera on their parent: it inspected the
    top level only, or failed 'no image files', never saying where the pictures were. One warning per camera
    names the sub-folders (not read), and the one-pass camera's error line does too."""
    folder = write_folder(tmp_path / "f", [False])
    shutil.copytree(write_folder(tmp_path / "day", [False] * 2), folder / "2026-12-06")
    src = make_source(CameraSection(name="dated", source=str(folder), loop=True))
    with caplog.at_level(logging.WARNING):
        src.open()
        assert [src.read().meta["file"] for _ in range(2)] == ["0000.png", "0000.png"]
    told = [r.getMessage() for r in caplog.records if "sub-folder(s) holding images" in r.getMessage()]
    assert len(told) == 1 and "camera 'dated'" in told[0] and told[0].endswith("e.g. 2026-12-06"), told
    (folder / "0000.png").unlink()
    one_pass = make_source(CameraSection(name="dated1", source=str(folder)))
    with pytest.raises(SourceError, match=r"no image files .*1 sub-folder\(s\) holding images are not read"):
        one_pass.open()
