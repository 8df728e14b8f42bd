"""The stages one by one: preprocess, postprocess, hub + back-off, sources, drift, recorder."""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest

from inspector.backends.base import InputSpec
from inspector.errors import ConfigError, SourceError
from inspector.pipeline.capture import Backoff, CaptureWorker, FrameHub
from inspector.pipeline.config import (CameraSection, DriftSection, PostprocessSection, ReconnectSection,
                                       RecorderSection, SyntheticSection)
from inspector.pipeline.drift import DriftMonitor
from inspector.pipeline.frame import Frame
from inspector.pipeline.postprocess import Decider, encode_payloads, find_regions
from inspector.pipeline.preprocess import FrameRejected, Preprocessor
from inspector.pipeline.recorder import (RECORDING_LOSSES, RECORDING_NAME, RecorderWorker, lock_recorder_dir,
                                         recording_losses)
from inspector.pipeline.sources import make_source, make_synthetic_pool, source_type
from inspector.pipeline.telemetry import Counters
from inspector.artifacts.thresholds import ScoreStats

from file_faults import read_only_folder
from pipeline_support import CRASH_BEFORE_HEADER, write_folder


def _frame(camera="c", i=0, image=None) -> Frame:
    image = np.zeros((20, 30, 3), np.uint8) if image is None else image
    return Frame(camera=camera, frame_id=i, image=image, capture_ns=time.monotonic_ns(), capture_utc=time.time())


# -- preprocess ---------------------------------------------------------------------------------
@pytest.mark.parametrize("image, converted, pixel", [
    (np.dstack([np.full((40, 50), 200, np.uint8), np.zeros((40, 50), np.uint8), np.zeros((40, 50), np.uint8)]),
     None, [0, 0, 200]),  # BGR blue → RGB
    (np.full((40, 50), 77, np.uint8), "gray", [77, 77, 77]),
    (np.full((40, 50, 1), 77, np.uint8), "gray", [77, 77, 77]),
    (np.dstack([np.full((40, 50), 10, np.uint8)] * 3 + [np.zeros((40, 50), np.uint8)]), "bgra", [10, 10, 10]),
    (np.full((40, 50, 3), 65535, np.uint16), "uint16", [255, 255, 255]),
    (np.full((40, 50, 3), 0.5, np.float32), "float", [128, 128, 128]),
])
def test_preprocess_converts(image, converted, pixel):
    pre = Preprocessor(InputSpec(16, 16))
    batch = np.zeros((2, 16, 16, 3), np.uint8)
    assert pre.into(image, batch[1]) == converted
    assert batch[1, 8, 8].tolist() == pixel
    assert not batch[0].any()  # only its own slot is written


@pytest.mark.parametrize("image, reason", [
    (np.zeros((0, 0, 3), np.uint8), "empty"),
    (np.zeros((4, 4, 4, 3), np.uint8), "shape"),
    (np.zeros((20, 20, 2), np.uint8), "channels"),
    (np.zeros((4, 40, 3), np.uint8), "too_small"),
    (np.zeros((20, 20, 3), np.int64), "dtype"),
    (np.full((20, 20, 3), np.nan, np.float32), "non_finite"),
    ("not an image", "empty"),
])
def test_preprocess_rejects(image, reason):
    with pytest.raises(FrameRejected) as info:
        Preprocessor(InputSpec(16, 16)).into(image, np.zeros((16, 16, 3), np.uint8))
    assert info.value.reason == reason


def test_preprocess_shorter_side_crop_matches_training_resize():
    from inspector.data.images import resize_image

    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 255, (60, 100, 3), dtype=np.uint8)
    out = np.zeros((32, 32, 3), np.uint8)
    Preprocessor(InputSpec(32, 32), "shorter_side_crop").into(bgr, out)
    expected = resize_image(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), 32, 32, "shorter_side_crop")
    np.testing.assert_array_equal(out, expected)


# -- postprocess ---------------------------------------------------------------------------------
def test_decider():
    d = Decider(0.5, 0.4)
    assert [d.decide(s) for s in (0.1, 0.5, 0.9, float("nan"))] == ["OK", "NG", "NG", "error"]
    band = Decider(0.5, 0.4, (0.45, 0.6))
    assert [band.decide(s) for s in (0.44, 0.45, 0.59, 0.6)] == ["OK", "uncertain", "uncertain", "NG"]


def test_a_float32_score_is_decided_against_the_threshold_in_float64():
    """Backends score in float32 and thresholds are float64. NumPy 2 compares a float32 scalar with a Python float
    in float32 (NEP 50), rounding the threshold: a score just below it was NG by one path and OK by another."""
    below = np.float32(0.3)
    threshold = float(below) + 1e-12  # a calibrated threshold just above a float32 score; float32 rounds it onto it
    assert float(below) < threshold and below >= threshold  # what NumPy 2 does when the score stays float32
    assert Decider(threshold, threshold).decide(below) == "OK"
    assert Decider(0.5, 0.5, (threshold, 0.6)).decide(below) == "OK"


def test_regions_in_frame_coordinates():
    amap = np.zeros((32, 32), np.float32)
    amap[4:8, 10:14] = 0.9  # 4×4 block
    amap[20, 20] = 0.5  # single pixel: below min area
    amap[25:27, 2:4] = 0.6
    regions = find_regions(amap, 0.45, (480, 640), "square", min_area=2)
    assert len(regions) == 2 and regions[0].peak == pytest.approx(0.9)
    r = regions[0]  # map pixel = 20 × 15 frame pixels
    assert (r.x, r.y, r.width, r.height, r.area) == (200, 60, 80, 60, 16 * 300)
    # shorter-side crop: a 640×480 frame → central 480×480 → 32×32
    r = find_regions(amap, 0.8, (480, 640), "shorter_side_crop")[0]
    assert (r.x, r.y, r.width, r.height) == (80 + 150, 60, 60, 60)
    assert find_regions(np.zeros((8, 8), np.float32), 0.1, (8, 8), "square") == []


def test_letterbox_regions_skip_the_margins():
    # a 640×480 frame letterboxed into 32×32: rows 4..27 hold it (20 frame pixels per map pixel)
    amap = np.zeros((32, 32), np.float32)
    amap[4:8, 10:14] = 0.9  # inside: frame rows 0..80, columns 200..280
    amap[0:3, 20:22] = 0.8  # wholly in the top margin: a mirror of the frame, not a region of it
    amap[26:30, 2:4] = 0.7  # straddles the bottom edge: clipped to the frame
    regions = find_regions(amap, 0.5, (480, 640), "letterbox")
    assert [(r.x, r.y, r.width, r.height) for r in regions] == [(200, 0, 80, 80), (40, 440, 40, 40)]



@pytest.mark.parametrize("quantile", [0.8, 0.995])  # components all over the map, or a few in a sub-box
@pytest.mark.parametrize("seed", range(6))
def test_regions_match_opencv_component_stats(seed, quantile):
    """Boxes, areas and peaks equal OpenCV's own per-component statistics, highest peak first."""
    rng = np.random.default_rng(seed)
    h, w = rng.integers(8, 96, 2)
    amap = cv2.GaussianBlur(rng.random((h, w), dtype=np.float32), (0, 0), 1.5)
    threshold = float(np.quantile(amap, quantile))
    frame_hw = (int(h) * 3, int(w) * 5)
    got = find_regions(amap, threshold, frame_hw, "square", min_area=3, max_regions=1000)
    n, labels, stats, _ = cv2.connectedComponentsWithStats((amap >= threshold).astype(np.uint8), connectivity=8)
    want = []
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if area >= 3:
            want.append(((x * 5, y * 3, bw * 5, bh * 3, area * 15), float(amap[labels == i].max())))
    want.sort(key=lambda r: r[1], reverse=True)
    assert len(want) > 0
    assert [((r.x, r.y, r.width, r.height, r.area), r.peak) for r in got] == want
    assert len(find_regions(amap, threshold, frame_hw, "square", min_area=3, max_regions=2)) == min(2, len(want))

def test_regions_label_only_the_box_of_pixels_above(monkeypatch):
    """Issue 17: labelling the whole 256² map cost more than the rest of postprocessing; only the bounding
    box of the pixels above the threshold is labelled (here two blobs inside 30×20 of 256×256)."""
    import inspector.pipeline.postprocess as postprocess

    labelled = []
    real = cv2.connectedComponents

    def counting(image, *args, **kwargs):
        labelled.append(image.shape)
        return real(image, *args, **kwargs)

    monkeypatch.setattr(postprocess.cv2, "connectedComponents", counting)
    amap = np.zeros((256, 256), np.float32)
    amap[100:105, 40:50], amap[115:120, 60:70] = 0.9, 0.7
    regions = find_regions(amap, 0.5, (256, 256), "square")
    assert [(r.x, r.y, r.width, r.height, r.area, r.peak) for r in regions] == [
        (40, 100, 10, 5, 50, pytest.approx(0.9)), (60, 115, 10, 5, 50, pytest.approx(0.7))]
    assert labelled == [(20, 30)]


def test_payloads_decode():
    frame = _frame(image=np.full((480, 640, 3), 90, np.uint8))
    frame.amap = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    payloads = encode_payloads(frame, PostprocessSection(), pixel_threshold=0.5)
    thumb, heat = payloads
    assert thumb.kind == "thumbnail" and thumb.shape == [240, 320, 3]
    assert cv2.imdecode(np.frombuffer(thumb.data, np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)
    img = cv2.imdecode(np.frombuffer(heat.data, np.uint8), cv2.IMREAD_UNCHANGED)
    lo, hi = heat.extra["range"]
    np.testing.assert_allclose(lo + img / 255.0 * (hi - lo), frame.amap, atol=1 / 255)


# -- hub, back-off, capture ----------------------------------------------------------------------
def test_hub_live_keeps_newest_and_offline_blocks():
    counters = Counters()
    hub = FrameHub(counters)
    hub.add_camera("live", live=True, capacity=8)
    hub.add_camera("file", live=False, capacity=2)
    stop = threading.Event()
    for i in range(3):
        assert hub.put(_frame("live", i), stop)
    assert counters.get("live.dropped_live") == 2
    assert hub.put(_frame("file", 0), stop) and hub.put(_frame("file", 1), stop)
    blocked = threading.Thread(target=hub.put, args=(_frame("file", 2), stop))
    blocked.start()
    time.sleep(0.1)
    assert blocked.is_alive()  # offline: waits, loses nothing
    got = hub.take(8, timeout=0.1)  # round-robin: the live camera's newest frame, then the file's
    assert [(f.camera, f.frame_id) for f in got] == [("live", 2), ("file", 0), ("file", 1)]
    assert all("queued" in f.stamps for f in got)
    blocked.join(1)
    assert not blocked.is_alive()
    stop.set()
    assert hub.put(_frame("file", 3), stop)  # frame 2 (unblocked) + 3: full again
    assert not hub.put(_frame("file", 4), stop)  # full and stopping: gives up instead of blocking
    hub.close("live")
    hub.close("file")
    assert not hub.drained()
    assert [f.frame_id for f in hub.take(8, 0.1)] == [2, 3]
    assert hub.drained()


def test_hub_blocked_producer_sleeps_until_woken_on_stop():
    """A producer blocked on a full offline channel does not poll (issue 17: its timed wake-ups were most of
    the capture role's CPU); the daemon's wake_all after ``stop`` releases it at once."""
    hub, stop = FrameHub(Counters()), threading.Event()
    hub.add_camera("file", live=False, capacity=1)
    assert hub.put(_frame("file", 0), stop)
    result = []
    blocked = threading.Thread(target=lambda: result.append(hub.put(_frame("file", 1), stop)))
    blocked.start()
    time.sleep(0.1)
    stop.set()
    time.sleep(0.05)
    assert blocked.is_alive()  # the stop alone is seen only at the backstop (0.5 s), not by polling
    t0 = time.monotonic()
    hub.wake_all()
    blocked.join(1)
    assert result == [False] and time.monotonic() - t0 < 0.2


def test_backoff_grows_with_jitter_and_caps():
    b = Backoff(0.5, 4.0, 2.0, 0.2, rng=random.Random(0))
    delays = [b.next_delay() for _ in range(6)]
    for d, base in zip(delays, (0.5, 1, 2, 4, 4, 4)):
        assert 0.8 * base <= d <= 1.2 * base
    assert len(set(delays)) == 6  # jittered
    b.reset()
    assert b.next_delay() <= 0.6


def test_capture_counts_corrupt_files_and_reports_states(tmp_path):
    folder = write_folder(tmp_path / "f", [False] * 6, corrupt=(1, 4))
    for p in folder.iterdir():  # settled files: a just-written undecodable file may still be being written
        os.utime(p, (time.time() - 60, time.time() - 60))
    cam = CameraSection(name="f", source=str(folder))
    counters, hub, stop, states = Counters(), FrameHub(Counters()), threading.Event(), []
    worker = CaptureWorker(cam, make_source(cam), hub, stop, counters,
                           lambda c, s, p, r, d: states.append(s), capacity=16)
    worker.start()
    worker.join(10)
    assert states == ["connecting", "online", "ended"]
    assert counters.get("f.corrupt") == 2 and counters.get("f.captured") == 4
    frames = hub.take(16, 0.1)  # the corrupt files go on decided 'error', without pixels, in their place
    assert [f.meta["index"] for f in frames] == [f.frame_id for f in frames] == [0, 1, 2, 3, 4, 5]
    assert [f.decision for f in frames] == [None, "error", None, None, "error", None]
    assert frames[1].image.shape == (0, 0, 3) and frames[1].error.startswith("not inspected (corrupt): 0001.png")
    assert hub.drained()


def test_capture_gives_up_after_max_attempts_and_watchdog():
    cam = CameraSection(name="dead", source="rtsp://127.0.0.1:9/none", open_timeout_s=0.5,
                        reconnect=ReconnectSection(initial_s=0.01, max_s=0.02, max_attempts=2))
    states = []
    worker = CaptureWorker(cam, make_source(cam), FrameHub(Counters()), threading.Event(), Counters(),
                           lambda c, s, p, r, d: states.append(s))
    worker.start()
    worker.join(20)
    assert states[0] == "connecting" and states[-1] == "failed" and "reconnecting" in states
    # the watchdog flags an online source that stopped delivering
    worker.state, worker.last_frame_ns = "online", time.monotonic_ns() - int(11e9)
    worker.check_watchdog()
    assert states[-1] == "stalled"


def test_a_slowly_paced_camera_is_not_a_stalled_one(tmp_path):
    """fps 2 owes a frame every 0.5 s: with watchdog_s 0.2 the watchdog (checked as often as the daemon's
    supervisor does) must wait for the due time, not flag every gap between paced frames."""
    folder = write_folder(tmp_path / "f", [False] * 4)
    cam = CameraSection(name="slow", source=str(folder), fps=2.0, watchdog_s=0.2)
    states, hub = [], FrameHub(Counters())
    worker = CaptureWorker(cam, make_source(cam), hub, threading.Event(), Counters(),
                           lambda c, s, p, r, d: states.append(s), capacity=16)
    worker.start()
    while worker.is_alive():
        worker.check_watchdog()
        time.sleep(0.02)
    assert states == ["connecting", "online", "ended"] and len(hub.take(16, 0.1)) == 4
    worker.state, worker.last_frame_ns = "online", time.monotonic_ns() - int(0.75e9)  # 0.25 s overdue
    worker.check_watchdog()
    assert states[-1] == "stalled"


def _serve_two_sizes(server, sizes=((96, 160), (192, 320)), per_size: int = 8) -> None:
    """An MJPEG-over-HTTP camera that is reconfigured between two connections: ``per_size`` frames at each
    (H, W), one size per connection."""
    for h, w in sizes:
        conn, _ = server.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=f\r\n\r\n")
            jpg = cv2.imencode(".jpg", np.full((h, w, 3), 100, np.uint8))[1].tobytes()
            for _ in range(per_size):
                conn.sendall(b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg)
                             + jpg + b"\r\n")
                time.sleep(0.05)


def test_a_stream_whose_frame_size_changes_says_so_and_goes_on():
    import socket

    server = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=_serve_two_sizes, args=(server,), daemon=True).start()
    cam = CameraSection(name="net", source=f"http://127.0.0.1:{server.getsockname()[1]}/v.mjpg",
                        open_timeout_s=5, read_timeout_s=2,
                        reconnect=ReconnectSection(initial_s=0.05, max_s=0.1, max_attempts=2))
    counters, hub, states = Counters(), FrameHub(Counters()), []
    worker = CaptureWorker(cam, make_source(cam), hub, threading.Event(), counters,
                           lambda c, s, p, r, d: states.append((s, r)), capacity=64)
    worker.start()
    shapes = []
    while worker.is_alive() or hub.pending():
        shapes += [f.image.shape[:2] for f in hub.take(64, 0.02)]
    worker.join(30)
    server.close()
    assert (96, 160) in shapes and (192, 320) in shapes  # both sizes inspected
    changed = [r for s, r in states if s == "changed"]
    assert changed == [f"url {cam.source}: frame size 160x96 → 320x192: parts appear at another scale than the "
                       "model was calibrated on"] and counters.get("net.size_changes") == 1
    assert states[states.index(("changed", changed[0])) + 1][0] == "online"


def test_buffers_a_live_source_passed_over_are_counted_as_live_drops():
    from inspector.pipeline.sources import Grabbed, Source

    class Queued(Source):  # as GenicamSource reports a read that took the newest of several queued buffers
        live = True
        def __init__(self, camera):
            super().__init__(camera)
            self.left = [3, 0]
        def read(self):
            if not self.left:
                return None
            n = self.left.pop(0)
            return Grabbed(np.zeros((32, 32), np.uint8), time.monotonic_ns(), time.time(),
                           {"buffers_skipped": n} if n else {})

    cam = CameraSection(name="q", source="synthetic", mode="offline")
    counters = Counters()
    worker = CaptureWorker(cam, Queued(cam), FrameHub(Counters()), threading.Event(), counters,
                           lambda *a: None, capacity=4)
    worker.start()
    worker.join(5)
    assert counters.get("q.captured") == 2 and counters.get("q.dropped_live") == 3


def test_a_pace_below_one_frame_a_day_is_refused():
    with pytest.raises(ConfigError, match=r"cameras\[0\]\.fps: 1e-09 is below one frame a day"):
        CameraSection(name="c", source="synthetic", fps=1e-9).validate("cameras[0]")
    CameraSection(name="c", source="synthetic", fps=0.001).validate("cameras[0]")  # one part every 17 min


def test_source_types(tmp_path):
    def t(src, **kw):
        return source_type(CameraSection(name="x", source=src, **kw))

    (tmp_path / "d").mkdir()
    assert t(0) == "device" and t("2") == "device" and t("/dev/video0") == "device"
    assert t("rtsp://cam/stream") == "url" and t("http://x/y.mjpg") == "url"
    assert t("videotestsrc ! appsink") == "gstreamer" and t("synthetic") == "synthetic"
    assert t(str(tmp_path / "d")) == "folder" and t(str(tmp_path / "clip.mp4")) == "file"
    with pytest.raises(SourceError, match="cannot tell"):
        t(str(tmp_path / "nothing"))


def test_synthetic_pool_procedural_and_real_texture():
    good, bad = make_synthetic_pool(SyntheticSection(texture="procedural", size=64, pool=3, kinds=("hole",)), "c")
    assert len(good) == 3 and len(bad) == 3 and good[0].shape == (64, 64, 3)
    assert all(k == "hole" for _, k in bad) and not np.array_equal(good[0], bad[0][0])
    with pytest.raises(SourceError, match="unknown defect kind"):
        make_synthetic_pool(SyntheticSection(kinds=("dent",)), "c")
    pytest.importorskip("skimage")
    good, bad = make_synthetic_pool(SyntheticSection(texture="brick", size=64, pool=2), "c")
    assert good[0].dtype == np.uint8 and len(bad) == 2


# -- drift --------------------------------------------------------------------------------------
def test_drift_flags_a_moved_camera():
    ref = ScoreStats(mean=0.2, std=0.01, min=0.17, max=0.24, p50=0.2, p99=0.23, n=500)
    mon = DriftMonitor(DriftSection(window=100, min_samples=20, max_shift_std=3.0), ref)
    rng = np.random.default_rng(0)
    for s in rng.normal(0.2, 0.01, 100):
        mon.add("steady", float(s))
    for s in rng.normal(0.26, 0.01, 100):
        mon.add("moved", float(s))
    snap = mon.snapshot()
    assert not snap["steady"]["flagged"] and snap["moved"]["flagged"]
    assert snap["moved"]["shift_std"] > 3 and snap["moved"]["above_p99"] > 0.5
    assert DriftMonitor(DriftSection(), None).snapshot() == {}


# -- recorder -----------------------------------------------------------------------------------
def _recorded(cfg: RecorderSection, n: int, run_id: str = "0123456789ab",
              started: str = "2025-01-31T12:00:00.000Z", cameras: tuple[str, ...] = ("c",)) -> Counters:
    counters = Counters()
    rec = RecorderWorker(cfg, threading.Event(), counters, run_id, started, cameras=cameras)
    rec.start()
    for i in range(n):
        frame = _frame(i=i)
        frame.amap = np.ones((8, 8), np.float32)
        rec.put(frame, {"seq": i, "decision": "NG"})
    rec.finish()
    rec.join(10)
    assert not rec.is_alive() and rec.failure is None
    return counters


def test_recorder_disk_guard_and_byte_retention(tmp_path):
    c = _recorded(RecorderSection(enabled=True, dir=str(tmp_path / "a"), min_free_bytes=1 << 62), 3)
    assert c.get("recorder.skipped_low_disk") == 3 and c.get("recorder.written") == 0
    c = _recorded(RecorderSection(enabled=True, dir=str(tmp_path / "b"), min_free_bytes=0, max_events=0,
                                  max_bytes=600), 5)
    files = list((tmp_path / "b" / "c").iterdir())
    assert c.get("recorder.written") == 5 and c.get("recorder.deleted") >= 1
    assert sum(p.stat().st_size for p in files) <= 600


def test_recorder_keeps_earlier_runs_and_deletes_only_its_own_files(tmp_path):
    rec_dir = tmp_path / "rec"
    (rec_dir / "c").mkdir(parents=True)
    (rec_dir / "docs").mkdir()
    user_files = [rec_dir / "c" / "notes.txt", rec_dir / "docs" / "plan.txt", rec_dir / "c" / "000000000-000000000.png",
                  rec_dir / "c" / "20250101T000000Z-0123456789ab-000000000-000000000.png.bak"]
    for path in user_files:
        path.write_text("keep me")
    cfg = RecorderSection(enabled=True, dir=str(rec_dir), min_free_bytes=0, max_events=3)
    _recorded(cfg, 2, run_id="aaaaaaaaaaaa", started="2025-01-31T12:00:00.000Z")
    first = {p.name: p.read_bytes() for p in (rec_dir / "c").glob("r000001-2025*aaaaaaaaaaaa*")}
    assert len([n for n in first if n.endswith(".json")]) == 2
    # a restart with the same frame and seq numbers: new names, run 1 untouched until retention needs room
    c = _recorded(cfg, 1, run_id="bbbbbbbbbbbb", started="2025-01-31T12:05:00.000Z")
    assert c.get("recorder.deleted") == 0
    assert {p.name: p.read_bytes() for p in (rec_dir / "c").glob("r000001-2025*aaaaaaaaaaaa*")} == first
    # the next run needs room: the oldest recording goes, user files stay whatever their age
    c = _recorded(cfg, 2, run_id="cccccccccccc", started="2025-01-31T12:10:00.000Z")
    names = sorted(p.name for p in (rec_dir / "c").glob("*.json"))
    assert c.get("recorder.deleted") == 2 and len(names) == 3
    assert names[0].startswith("r000002-20250131T120500Z-bbbbbbbbbbbb") and all(p.read_text() == "keep me" for p in user_files)


def test_max_bytes_below_one_recording_keeps_the_newest(tmp_path, caplog):
    """max_bytes smaller than one recording: every recording was deleted as soon as it was written (5 defects,
    0 files kept) and nothing said so. The newest stays, and one warning names the setting."""
    c = _recorded(RecorderSection(enabled=True, dir=str(tmp_path / "r"), min_free_bytes=0, max_bytes=1), 5)
    stems = {p.name.split(".")[0] for p in (tmp_path / "r" / "c").iterdir()}
    assert c.get("recorder.written") == 5 and c.get("recorder.deleted") == 4
    assert stems == {"r000001-20250131T120000Z-0123456789ab-000000004-000000004"}
    told = [r.getMessage() for r in caplog.records if "max_bytes" in r.getMessage()]
    assert len(told) == 1 and told[0].startswith("recorder.max_bytes: 1 is less than one recording"), told


def test_a_user_file_named_like_a_recording_plus_a_newline_is_neither_counted_nor_deleted(tmp_path):
    """'$' in the name patterns also matched before a final newline: a user's file '<recording name>\\n' was
    counted as a recording and deleted by retention (as was one in a folder 'c\\n')."""
    name = "20200101T000000Z-0123456789ab-000000000-000000000.png\n"  # older than any recording of the run
    user_files = [tmp_path / "rec" / "c" / name, tmp_path / "rec" / "c\n" / name.strip()]
    for path in user_files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("keep me")
    c = _recorded(RecorderSection(enabled=True, dir=str(tmp_path / "rec"), min_free_bytes=0, max_events=1), 1)
    assert c.get("recorder.deleted") == 0 and c.get("recorder.written") == 1
    assert all(p.read_text() == "keep me" for p in user_files)


def test_user_files_named_like_recordings_in_other_scripts_digits_are_neither_counted_nor_deleted(tmp_path):
    """The name patterns' \\d matched any script's digits: a user's file named like a recording in Arabic-Indic
    or fullwidth digits (which the recorder never writes) was counted and deleted by retention, and one named
    like a temporary file of a process that is gone was removed at start as a leftover."""
    arabic = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
    wide = str.maketrans("0123456789", "０１２３４５６７８９")
    names = ["r" + "000001-20200101T000000Z".translate(arabic) + "-0123456789ab-"
             + "000000000-000000000.png".translate(arabic),
             "20200101T000000Z".translate(wide) + "-0123456789ab-000000000-000000000.json",
             ".20200101T000000Z-0123456789ab-000000000-000000000.png." + "999999999".translate(wide) + ".part"]
    user_files = [tmp_path / "rec" / "c" / name for name in names]
    user_files[0].parent.mkdir(parents=True)
    for path in user_files:
        path.write_text("keep me")
    c = _recorded(RecorderSection(enabled=True, dir=str(tmp_path / "rec"), min_free_bytes=0, max_events=1), 2)
    assert c.get("recorder.written") == 2 and c.get("recorder.leftovers_removed") == 0
    assert all(p.read_text() == "keep me" for p in user_files)
    assert len(list((tmp_path / "rec" / "c").glob("r000001-*.json"))) == 1  # retention on its own recordings


@pytest.mark.parametrize("digits", [12, 190])
def test_a_user_file_named_with_a_huge_run_number_never_stops_recording(tmp_path, digits):
    """The next run's number is one more than any in the names: a file named like a recording with a run number
    of 190 digits (a user's, another tool's) made every later name longer than a file name may be, and each
    defect of every run after it failed (ENAMETOOLONG). A run number has at most 12 digits (a run a second for
    30,000 years); a longer one is not a recording name (kept, not counted), and the highest is used again."""
    cam = tmp_path / "rec" / "c"
    cam.mkdir(parents=True)
    user = cam / ("r" + "9" * digits + "-20200101T000000Z-0123456789ab-000000000-000000000.json")
    user.write_text("keep me")
    c = _recorded(RecorderSection(enabled=True, dir=str(tmp_path / "rec"), min_free_bytes=0), 2)
    assert c.get("recorder.written") == 2 and c.get("recorder.errors") == 0
    ours = [p.name for p in cam.glob("*-0123456789ab-*.json") if p != user]
    assert len(ours) == 2 and all(RECORDING_NAME.match(n) for n in ours) and user.read_text() == "keep me"
    assert ours[0].startswith("r999999999999-" if digits == 12 else "r000001-")



def test_retention_goes_on_past_a_recording_it_cannot_delete(tmp_path):
    """An earlier run's camera folder made read-only (archived evidence, another user's folder): retention
    raised PermissionError, which at start disabled recording for the whole run (0 of 3 defects recorded)."""
    root = tmp_path / "rec"
    old = root / "old"
    old.mkdir(parents=True)
    for i in range(3):  # recordings of an earlier run: the oldest, so retention turns to them first
        (old / f"20240101T000000Z-0123456789ab-{i:09d}-{i:09d}.json").write_text(f'{{"seq": {i}}}')
    undo = read_only_folder(old)
    if undo is None:
        pytest.skip("cannot make a folder read-only for this user here (chattr)")
    try:
        c = _recorded(RecorderSection(enabled=True, dir=str(root), min_free_bytes=0, max_events=2), 3,
                      cameras=("c", "old"))  # 'old' a camera of this run too: else never under retention
    finally:
        undo()
    assert c.get("recorder.written") == 3 and c.get("recorder.errors") == 0
    assert c.get("recorder.delete_errors") == 3 and len(list(old.iterdir())) == 3
    assert len(list((root / "c").glob("*.json"))) == 2  # retention still works on what it can delete


def test_recorder_survives_unwritable_dir_and_counts_each_lost_defect_once(tmp_path):
    """recorder.dir unusable at start: logged, never raised, and each defect counted lost once. The failure
    itself also added one recorder.errors, so 2 defects were told as 3 lost, 2 of them as 'queue full'."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    c = _recorded(RecorderSection(enabled=True, dir=str(blocker / "rec"), min_free_bytes=0), 2)
    losses = {key: c.get(key) for key, _ in RECORDING_LOSSES if c.get(key)}
    assert losses == {"recorder.unusable": 2}
    assert recording_losses(c.snapshot()) == "2 defect recording(s) lost (recorder folder unusable 2)"


def test_a_camera_folder_that_is_a_symbolic_link_is_not_recorded_into(tmp_path):
    """<recorder.dir>/<camera> a symbolic link to another folder: recordings went through it, but the next start
    skips linked folders (it must: a link to an archive would have retention delete there), so every run was run
    1 again and no later run's retention ever counted or pruned them (max_events 1: one more kept each run, for
    ever). Nothing is written through the link; each defect is counted lost (recorder.unusable: the camera's
    folder cannot hold recordings) and logged."""
    root, elsewhere = tmp_path / "rec", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (root / "c").symlink_to(elsewhere)
    cfg = RecorderSection(enabled=True, dir=str(root), min_free_bytes=0, max_events=1)
    for run_id in ("aaaaaaaaaaaa", "bbbbbbbbbbbb"):
        c = _recorded(cfg, 2, run_id=run_id)
        assert c.get("recorder.written") == 0 and c.get("recorder.unusable") == 2, c.snapshot()
    assert list(elsewhere.iterdir()) == [] and (root / "c").is_symlink()


def test_recorder_dir_removed_while_running_is_made_again(tmp_path):
    """recorder.dir removed under a running daemon (cleaned up by hand, a share remounted): the next defects
    are recorded in it again, not lost as errors for the rest of the run."""
    counters, root = Counters(), tmp_path / "rec"
    rec = RecorderWorker(RecorderSection(enabled=True, dir=str(root), min_free_bytes=0), threading.Event(),
                         counters, "0123456789ab", "2025-01-31T12:00:00.000Z", cameras=("c",))
    rec.start()
    try:
        rec.put(_frame(i=0), {"seq": 0})
        deadline = time.monotonic() + 5
        while counters.get("recorder.written") < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        shutil.rmtree(root)
        rec.put(_frame(i=1), {"seq": 1})
    finally:
        rec.finish()
        rec.join(10)
    assert counters.get("recorder.written") == 2 and counters.get("recorder.errors") == 0
    assert len(list(root.glob("c/*-000000001-000000001.png"))) == 1


def test_recordings_moved_out_for_review_do_not_make_retention_delete_others(tmp_path):
    """Recordings taken out of recorder.dir while it runs (moved for review) no longer count towards
    max_events: retention used to go on counting them and deleted as many recordings still there."""
    counters, root = Counters(), tmp_path / "rec"
    rec = RecorderWorker(RecorderSection(enabled=True, dir=str(root), min_free_bytes=0, max_events=3),
                         threading.Event(), counters, "0123456789ab", "2025-01-31T12:00:00.000Z", cameras=("c",))
    rec.start()

    def record(i: int) -> None:
        rec.put(_frame(i=i), {"seq": i})
        deadline = time.monotonic() + 5
        while counters.get("recorder.written") <= i and time.monotonic() < deadline:
            time.sleep(0.01)

    try:
        for i in range(3):
            record(i)
        review = tmp_path / "review"
        review.mkdir()
        for path in [*root.glob("c/*-000000001-*"), *root.glob("c/*-000000002-*")]:
            shutil.move(path, review / path.name)
        record(3)
    finally:
        rec.finish()
        rec.join(10)
    left = sorted(p.name.split("-")[3] for p in root.glob("c/*.json"))
    assert left == ["000000000", "000000003"]  # 2 of at most 3: nothing had to go
    assert counters.get("recorder.deleted") == 0


def _slow_to_encode(seconds: float) -> np.ndarray:
    """A noise frame whose PNG takes about ``seconds`` to encode on this machine (a slow disk's recording),
    sized from one timed 1-megapixel encode, at most 8000² pixels."""
    rng = np.random.default_rng(0)
    t0 = time.monotonic()
    cv2.imencode(".png", (rng.random((1000, 1000, 3)) * 255).astype(np.uint8))
    side = min(8000, int(1000 * (seconds / max(time.monotonic() - t0, 1e-3)) ** 0.5))
    return (rng.random((side, side, 3)) * 255).astype(np.uint8)


def test_recorder_finishes_a_full_queue_on_a_slow_disk(tmp_path):
    """Shutdown while defects fill the recorder's queue and one recording takes more than a second to write
    (a 20-megapixel frame, a slow SD card or network share): every queued recording is written and the
    recorder then ends. finish() used to give up putting its end marker into the full queue after 1 s, and
    the recorder waited for that marker for ever (the daemon: 'recorder did not stop', exit 1)."""
    big = _slow_to_encode(1.5)
    counters = Counters()
    rec = RecorderWorker(RecorderSection(enabled=True, dir=str(tmp_path / "rec"), min_free_bytes=0, queue_size=2),
                         threading.Event(), counters, "0123456789ab", "2025-01-31T12:00:00.000Z", cameras=("c",))
    rec.start()
    for i in range(3):
        frame = _frame(i=i)
        frame.image = big
        rec.put(frame, {"seq": i})
        deadline = time.monotonic() + 5
        while i == 0 and not rec.inbox.empty() and time.monotonic() < deadline:
            time.sleep(0.01)  # the first one is being written: the others fill the queue
    rec.finish()
    rec.join(30)
    alive = rec.is_alive()
    rec.finish()  # (old code) unblock the thread so the test does not leave it behind
    assert not alive
    assert counters.get("recorder.written") == 3 and counters.get("recorder.dropped") == 0
    assert len(list((tmp_path / "rec" / "c").glob("*.png"))) == 3


def test_a_defect_burst_that_fills_the_recorders_queue_is_counted_and_told(tmp_path, caplog):
    """A burst of defects faster than the disk (20 at 37 fps, queue_size 4: 11 not recorded) was only a counter
    in the stats; the log and the run's last line said nothing. Each one dropped is now logged (throttled), and
    recording_losses sums what the run lost for its last line."""
    counters = Counters()
    rec = RecorderWorker(RecorderSection(enabled=True, dir=str(tmp_path / "rec"), min_free_bytes=0, queue_size=2),
                         threading.Event(), counters, "0123456789ab", "2025-01-31T12:00:00.000Z", cameras=("c",))
    caplog.set_level("WARNING", "inspector.recorder")
    for i in range(5):  # before the worker starts: the queue holds 2
        rec.put(_frame(i=i), {"seq": i})
    rec.start()
    rec.finish()
    rec.join(10)
    assert counters.get("recorder.written") == 2 and counters.get("recorder.dropped") == 3
    told = [r.getMessage() for r in caplog.records if "queue full" in r.getMessage()]
    assert len(told) == 3 and "frame 2 not recorded" in told[0] and "queue_size 2" in told[0]
    assert recording_losses(counters.snapshot()) == "3 defect recording(s) lost (queue full 3)"
    assert recording_losses({"recorder.written": 5}) is None


def test_events_the_recorder_has_not_written_when_abandoned_are_counted_once(tmp_path):
    """Shutdown timed out while the recorder worked through its queue (a slow disk): abandon() counts what is
    queued and being written as recorder.abandoned, and the recorder stops after the one it is writing; each
    event is counted once (written, or abandoned), one put afterwards is abandoned too. The slow disk is 1 s per
    PNG (a big frame, as in test_recorder_finishes_a_full_queue_on_a_slow_disk)."""
    big = _slow_to_encode(1.0)
    counters = Counters()
    rec = RecorderWorker(RecorderSection(enabled=True, dir=str(tmp_path / "rec"), min_free_bytes=0, queue_size=10),
                         threading.Event(), counters, "0123456789ab", "2025-01-31T12:00:00.000Z", cameras=("c",))
    rec.start()
    for i in range(4):
        frame = _frame(i=i)
        frame.image = big
        rec.put(frame, {"seq": i})
    rec.finish()
    rec.join(0.3)
    assert rec.is_alive()
    n = rec.abandon()
    assert n >= 3 and rec.abandon() == 0  # counted once
    rec.put(_frame(i=9), {"seq": 9})
    rec.join(30)
    assert not rec.is_alive()
    assert counters.get("recorder.abandoned") == n + 1
    assert counters.get("recorder.written") + counters.get("recorder.abandoned") == 5
    assert len(list((tmp_path / "rec" / "c").glob("*.json"))) <= 5 - n  # at most the one being written more


def test_a_daemon_starting_on_a_dir_another_one_records_into_keeps_recording(tmp_path):
    """Two daemons on one recorder.dir: files the busy one deletes (its retention) while the other starts and
    looks at what is there must not make the starting one give up ('recording disabled' for its whole run,
    which it did about one start in three)."""
    cfg = RecorderSection(enabled=True, dir=str(tmp_path / "rec"), min_free_bytes=0, max_events=50,
                          queue_size=1000)
    busy = RecorderWorker(cfg, threading.Event(), Counters(), "aaaaaaaaaaaa", "2025-01-31T12:00:00.000Z",
                          cameras=("c",))
    busy.start()
    stop = threading.Event()

    def record_and_delete():  # at max_events, every recording deletes the oldest
        i = 0
        while not stop.is_set():
            busy.put(_frame(i=i), {"seq": i})
            i += 1
            time.sleep(0.001)

    feeder = threading.Thread(target=record_and_delete)
    feeder.start()
    try:
        time.sleep(0.5)  # at its limit: deleting
        for k in range(25):
            counters = Counters()
            other = RecorderWorker(cfg, threading.Event(), counters, f"{k:012x}", "2025-01-31T13:00:00.000Z",
                                   cameras=("c",))
            other.start()
            other.put(_frame(i=0), {"seq": 0})
            other.finish()
            other.join(10)
            assert counters.get("recorder.errors") == 0 and counters.get("recorder.written") == 1, k
    finally:
        stop.set()
        feeder.join()
        busy.abandon()  # its backlog dropped: a thread still writing it mixed its calls into later tests
        busy.finish()
        busy.join(10)
    assert not busy.is_alive()


def test_recordings_of_a_camera_past_a_billion_frames_stay_under_retention(tmp_path):
    """Frame ids past 999 999 999 (a year at 30 fps without a restart) give 10-digit names: after a restart
    they must still be known as recordings, kept in age order and deleted by retention, not left to fill
    the disk unmanaged."""
    cfg = RecorderSection(enabled=True, dir=str(tmp_path / "rec"), min_free_bytes=0, max_events=2)

    def run(run_id: str, started: str, frame_ids: list[int]) -> None:
        rec = RecorderWorker(cfg, threading.Event(), Counters(), run_id, started, cameras=("c",))
        rec.start()
        for seq, frame_id in enumerate(frame_ids):
            rec.put(_frame(i=frame_id), {"seq": seq})
        rec.finish()
        rec.join(10)

    run("aaaaaaaaaaaa", "2025-01-31T12:00:00.000Z", [999_999_999, 1_000_000_000])
    run("bbbbbbbbbbbb", "2025-01-31T13:00:00.000Z", [0])
    left = sorted(p.name for p in (tmp_path / "rec" / "c").glob("*.json"))
    assert left == ["r000001-20250131T120000Z-aaaaaaaaaaaa-1000000000-000000001.json",  # the newer of run 1
                    "r000002-20250131T130000Z-bbbbbbbbbbbb-000000000-000000000.json"]


def test_a_slow_cameras_latest_recordings_are_not_deleted_before_a_fast_ones_earlier_ones(tmp_path):
    """Retention at the next start ordered one run's recordings by frame id, which counts per camera: camera
    'b' (1 fps) recorded its frames 0 and 1 after camera 'a' (30 fps) its frames 0…150, and max_events 3
    kept a's 90, 120, 150 and deleted b's two, the newest of the run. Now a run's cameras are merged by the
    headers' capture time (monotonic), each camera kept in name order. A half whose header was lost is kept
    out of retention (nothing tells it is the recorder's)."""
    root = tmp_path / "rec"
    counters = Counters()
    rec = RecorderWorker(RecorderSection(enabled=True, dir=str(root), min_free_bytes=0, max_events=0),
                         threading.Event(), counters, "0123456789ab", "2025-01-31T12:00:00.000Z", cameras=("a", "b"))
    rec.start()
    for camera, i in [("a", i * 30) for i in range(6)] + [("b", 0), ("b", 1)]:
        frame = _frame(camera=camera, i=i)
        rec.put(frame, {"seq": i // 30 if camera == "a" else i, "capture": {"monotonic_ns": frame.capture_ns}})
        time.sleep(0.002)
    rec.finish()
    rec.join(10)
    assert counters.get("recorder.written") == 8
    next(root.glob("b/*-000000001-000000001.json")).unlink()  # half a recording: its image is left
    _recorded(RecorderSection(enabled=True, dir=str(root), min_free_bytes=0, max_events=3), 0, cameras=("a", "b"))
    left = sorted(f"{p.parent.name}/{int(p.name.split('-')[3])}" for p in root.glob("[ab]/*.png")
                  if not p.name.endswith(".heat.png"))
    assert left == ["a/120", "a/150", "b/0", "b/1"]


def test_a_clock_that_ran_ahead_never_makes_retention_delete_a_later_runs_recordings_first(tmp_path):
    """Retention ordered runs by the start time in their names, the wall clock's: a run whose clock ran ahead
    (a box booting before NTP set it, a wrong RTC) outranked every later run, whose recordings were then
    deleted first, the newest evidence before the old. Runs are ordered by their number in recorder.dir; names
    written before run numbers existed (here dated 2031) are older than any numbered run."""
    root = tmp_path / "rec"
    (root / "c").mkdir(parents=True)
    legacy = root / "c" / "20310101T000000Z-0123456789ab-000000000-000000000.json"  # an earlier version's
    legacy.write_text('{"seq": 0}')
    cfg = RecorderSection(enabled=True, dir=str(root), min_free_bytes=0, max_events=3)
    _recorded(cfg, 2, run_id="aaaaaaaaaaaa", started="2030-06-01T00:00:00.000Z")  # the clock 5 years ahead
    assert legacy.exists()  # 3 recordings: none had to go
    _recorded(cfg, 2, run_id="bbbbbbbbbbbb", started="2025-01-31T12:00:00.000Z")  # NTP set it right
    left = sorted(p.name for p in (root / "c").glob("*.json"))
    assert left == ["r000001-20300601T000000Z-aaaaaaaaaaaa-000000001-000000001.json",
                    "r000002-20250131T120000Z-bbbbbbbbbbbb-000000000-000000000.json",
                    "r000002-20250131T120000Z-bbbbbbbbbbbb-000000001-000000001.json"]
    assert sorted(p.name for p in root.iterdir()) == ["c"]  # no file of the recorder's own beside the evidence


def test_recording_files_are_never_replaced_where_hard_links_are_not_supported(tmp_path, monkeypatch):
    """FAT/exFAT drives and some network shares refuse hard links (EPERM): the file is renamed into place
    instead, still never over an existing one, and no temporary file is left."""
    import errno

    from inspector.pipeline import recorder

    def no_links(src, dst):
        raise PermissionError(errno.EPERM, "Operation not permitted", str(src))

    monkeypatch.setattr(recorder.os, "link", no_links)
    path = tmp_path / "20250131T120000Z-0123456789ab-000000000-000000000.png"
    recorder._create(path, b"first", [])
    with pytest.raises(FileExistsError):
        recorder._create(path, b"second", [])
    assert path.read_bytes() == b"first" and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_recordings_data_is_on_disk_before_it_gets_its_name(tmp_path, monkeypatch):
    """A power cut cannot be made here: the order of the real calls is checked instead. A file linked to its
    recording name before its data reached the disk came back empty or short after a power cut (ext4's
    delayed allocation), under a recording name, counted as evidence."""
    from inspector.pipeline import recorder

    calls: list[str] = []
    real_fsync, real_link = recorder.os.fsync, recorder.os.link
    monkeypatch.setattr(recorder.os, "fsync", lambda fd: (calls.append(f"fsync {os.readlink(f'/proc/self/fd/{fd}')}"),
                                                          real_fsync(fd))[1])
    monkeypatch.setattr(recorder.os, "link", lambda src, dst: (calls.append(f"link {src}"), real_link(src, dst))[1])
    path = tmp_path / "r000001-20250131T120000Z-0123456789ab-000000000-000000000.png"
    recorder._create(path, b"data", [])
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    assert calls == [f"fsync {tmp}", f"link {tmp}"] and path.read_bytes() == b"data"


_SIZE_LIMITED = """
import json, resource, signal, sys, threading
import numpy as np
from inspector.pipeline.config import RecorderSection
from inspector.pipeline.frame import Frame
from inspector.pipeline.recorder import RecorderWorker
from inspector.pipeline.telemetry import Counters
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG, like ENOSPC
counters = Counters()
rec = RecorderWorker(RecorderSection(enabled=True, dir=sys.argv[1], min_free_bytes=0), threading.Event(),
                     counters, "0123456789ab", "2025-01-31T12:00:00.000Z", cameras=("c",))
resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))
rec.start()
PUTS
rec.finish()
rec.join(10)
print(json.dumps({"written": counters.get("recorder.written"), "errors": counters.get("recorder.errors")}))
"""


def _record_under_a_size_limit(root: Path, puts: str) -> dict:
    """Run a recorder in a child process whose files may not exceed 4000 bytes (RLIMIT_FSIZE: a real EFBIG,
    as a full disk's ENOSPC fails a write), putting frames with the code ``puts``; its written/errors counts."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-c", _SIZE_LIMITED.replace("PUTS", puts), str(root)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_recorder_never_leaves_a_truncated_file_under_a_recording_name(tmp_path):
    """A write cut short (a full disk; here a real EFBIG from the file size limit, in a child process) must
    not leave a truncated PNG under a recording name, where it was shown and counted as evidence."""
    puts = """
noise = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)  # a ~12 kB PNG: cut short
for i, image in enumerate([noise, np.zeros((64, 64, 3), np.uint8)]):
    rec.put(Frame(camera="c", frame_id=i, image=image, capture_ns=0, capture_utc=0.0), {"seq": i})
"""
    assert _record_under_a_size_limit(tmp_path / "rec", puts) == {"written": 1, "errors": 1}
    names = sorted(p.name for p in (tmp_path / "rec" / "c").iterdir() if RECORDING_NAME.match(p.name))
    assert names == ["r000001-20250131T120000Z-0123456789ab-000000001-000000001.json",
                     "r000001-20250131T120000Z-0123456789ab-000000001-000000001.png"]  # frame 0: nothing, not a stub
    assert cv2.imread(str(tmp_path / "rec" / "c" / names[1])) is not None


_CRASH_MID_WRITE = """
import os, signal, sys
from pathlib import Path
from typing import Callable
from inspector.pipeline import recorder
recorder.os.link = lambda src, dst: os.kill(os.getpid(), signal.SIGKILL)  # the power goes before the link
recorder._create(Path(sys.argv[1]), b"half a recording", [])
"""


def test_temporary_files_of_a_crash_mid_write_are_removed_at_start_and_nothing_else(tmp_path):
    """A daemon killed while writing a recording leaves its hidden temporary file (.<name>.<pid>.part); it was
    never counted nor deleted, so each crash left one for ever and they slowly filled the disk. At the next
    start they go: a dead writer's, and one under our own pid from an earlier life (pids are reused: in a
    container the daemon is pid 1 at every start) or under a running process's pid but older than that
    process. Files that only look alike, and the temporary file of a live writer, stay."""
    cam, rec_name = tmp_path / "rec" / "c", "20250101T000000Z-0123456789ab-000000007-000000003"
    cam.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    crashed = subprocess.run([sys.executable, "-c", _CRASH_MID_WRITE, str(cam / f"{rec_name}.png")], env=env,
                             capture_output=True, text=True, timeout=60)
    assert crashed.returncode == -9, crashed.stderr
    [dead] = cam.glob(".*.part")  # the real leftover, named with the crashed process's pid
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.5)
        ours = cam / f".{rec_name}.json.{os.getpid()}.part"  # this pid in an earlier life
        reused = cam / f".{rec_name}.heat.png.{live.pid}.part"  # the pid's holder started after the file
        writing = cam / f".{rec_name}.json.{live.pid}.part"  # a running writer's, newer than it: kept
        for path in (ours, reused, writing):
            path.write_bytes(b"part")
        os.utime(reused, (time.time() - 3600, time.time() - 3600))
        (tmp_path / "elsewhere").write_text("user file")
        lookalikes = [cam / f".{rec_name}.png.part", cam / f"{rec_name}.png.123.part", cam / ".notes.123.part",
                      cam / f".{rec_name}.png.123.part.bak", cam / f".{rec_name}.png.123.part\n",
                      tmp_path / "rec" / f".{rec_name}.png.123.part",  # not in a camera folder
                      tmp_path / "rec" / f".{rec_name}.png.124.part"]  # …nor is a symlink
        for path in lookalikes[:-1]:
            path.write_text("user file")
        lookalikes[-1].symlink_to(tmp_path / "elsewhere")
        (cam / f".{rec_name}.png.125.part").mkdir()  # a folder by that name is not ours either
        counters = _recorded(RecorderSection(enabled=True, dir=str(tmp_path / "rec"), min_free_bytes=0), 1)
    finally:
        live.kill()
        live.wait()
    assert not dead.exists() and not ours.exists() and not reused.exists()
    assert counters.get("recorder.leftovers_removed") == 3 and counters.get("recorder.written") == 1
    assert writing.exists() and all(p.is_symlink() or p.read_text() == "user file" for p in lookalikes)
    assert (tmp_path / "elsewhere").read_text() == "user file" and (cam / f".{rec_name}.png.125.part").is_dir()


def _fair_share_run(n_offline: int, live_per_batch: int, batches: int = 40, batch_size: int = 8) -> dict:
    """Per batch: the live camera delivers ``live_per_batch`` frames, offline backlogs are topped up,
    then one full batch is taken. Returns frames per camera per batch and the batch sizes."""
    counters = Counters()
    hub = FrameHub(counters, batch_size=batch_size)
    hub.add_camera("live", live=True, capacity=8)
    offline = [f"off{i}" for i in range(n_offline)]
    for cam in offline:
        hub.add_camera(cam, live=False, capacity=2 * batch_size)
    stop, got, sizes, ids = threading.Event(), collections.Counter(), [], collections.Counter()
    for _ in range(batches):
        for _ in range(live_per_batch):
            hub.put(_frame("live", ids["live"]), stop)
            ids["live"] += 1
        for cam in offline:
            while len(hub._queues[cam]) < 2 * batch_size:  # an endless backlog: always full
                hub.put(_frame(cam, ids[cam]), stop)
                ids[cam] += 1
        batch = hub.take(batch_size, timeout=0.1)
        sizes.append(len(batch))
        got.update(f.camera for f in batch)
    return {"per_batch": {cam: n / batches for cam, n in got.items()}, "sizes": set(sizes),
            "dropped_live": counters.get("live.dropped_live"), "share": hub.share()}


def test_fair_share_live_above_its_share_gets_as_much_as_each_offline_camera():
    run = _fair_share_run(n_offline=3, live_per_batch=5)  # demand 5 frames per batch, share ⌈8/4⌉ = 2
    assert run["share"] == 2 and run["sizes"] == {8}  # batches stay full
    assert run["per_batch"]["live"] == 2  # not starved by the backlogs: its full share
    assert all(run["per_batch"][f"off{i}"] == 2 for i in range(3))
    assert run["dropped_live"] == 40 * 3  # the surplus above its share, the oldest first


def test_fair_share_live_below_its_share_gets_every_frame_and_offline_fills_the_batch():
    run = _fair_share_run(n_offline=3, live_per_batch=1)
    assert run["per_batch"]["live"] == 1 and run["dropped_live"] == 0
    assert run["sizes"] == {8}  # work-conserving: offline cameras take the remaining slots
    assert sum(run["per_batch"][f"off{i}"] for i in range(3)) == pytest.approx(7)


def test_fair_share_with_eight_cameras_is_one_frame_each():
    run = _fair_share_run(n_offline=7, live_per_batch=3)
    assert run["share"] == 1 and run["sizes"] == {8}
    assert all(v == 1 for v in run["per_batch"].values()) and len(run["per_batch"]) == 8


def _postprocess_worker(inbox, out, counters):
    from inspector.pipeline.postprocess import PostprocessWorker

    return PostprocessWorker(Decider(0.5, 0.5), PostprocessSection(), "square", inbox, out, threading.Event(),
                             counters, DriftMonitor(DriftSection(enabled=False), None), False)


def test_postprocess_hands_each_batch_on_whole_and_counts_a_dropped_batch_per_frame():
    import queue

    from inspector.pipeline.batcher import END

    counters = Counters()
    inbox, out = queue.Queue(), queue.Queue(maxsize=1)
    batches = [[_frame(i=3 * b + k) for k in range(3)] for b in range(2)]
    for b, batch in enumerate(batches):
        for k, frame in enumerate(batch):
            frame.score, frame.amap = (0.9 if k == 0 else 0.1), np.zeros((4, 4), np.float32)
        inbox.put(batch)
    worker = _postprocess_worker(inbox, out, counters)
    inbox.put(END)
    worker.start()
    deadline = time.monotonic() + 5
    while inbox.qsize() and time.monotonic() < deadline:  # nobody reads `out` until both batches are done
        time.sleep(0.01)
    time.sleep(0.05)
    # the second batch met a full queue: dropped whole, each frame counted
    assert counters.get("publish_queue_dropped") == 3
    first = out.get(timeout=5)  # the first batch, as one list, decided
    assert first is batches[0] and [f.decision for f in first] == ["NG", "OK", "OK"]
    assert out.get(timeout=5) is END
    worker.join(5)


class _CountingCondition(threading.Condition):
    """threading.Condition that counts its waits (the hub's per-channel 'not full' condition)."""

    def __init__(self, lock) -> None:
        super().__init__(lock)
        self.waits = 0

    def wait(self, timeout=None):
        self.waits += 1
        return super().wait(timeout)


def test_hub_wakes_a_blocked_producer_once_per_half_channel_not_per_frame():
    """Issue 17: each take of one frame from a full offline channel woke its producer (one wake-up per frame
    at 8 cameras). Woken at the low-water mark instead, it refills half the channel per wake-up; nothing is
    lost or reordered."""
    capacity, n = 8, 80
    hub, stop = FrameHub(Counters()), threading.Event()
    hub.add_camera("file", live=False, capacity=capacity)
    cond = hub._not_full["file"] = _CountingCondition(hub._lock)
    producer = threading.Thread(target=lambda: [hub.put(_frame("file", i), stop) for i in range(n)])
    producer.start()
    got = []
    while len(got) < n:
        time.sleep(0.002)  # the producer fills up and blocks before each take, as behind a busy backend
        got += hub.take(1, timeout=1.0)
    producer.join(1)
    assert [f.frame_id for f in got] == list(range(n))
    refill = capacity - capacity // 2  # woken at half the capacity (FrameHub.low_water)
    assert cond.waits <= n // refill + 1  # one wake-up per frame before: ~n - capacity waits


# -- recorder.dir renamed, replaced; recordings whole or absent ----------------------------------------------------
def _record_one(rec: RecorderWorker, counters: Counters, i: int, outcome: str = "recorder.written") -> None:
    """Put defect ``i`` and wait until ``outcome`` counts it."""
    before = counters.get(outcome)
    rec.put(_frame(i=i), {"seq": i})
    deadline = time.monotonic() + 5
    while counters.get(outcome) <= before and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_renamed_recorder_dir_is_followed_and_locked_again(tmp_path):
    """recorder.dir renamed while running (moved aside for review): a new folder was made at the path but the
    lock stayed on the renamed one, so a second daemon could record beside this one, and retention counted
    the moved recording (max_events 1: 'deleted' one that was no longer there). Now the folder at the path is
    locked and is the books; the renamed one is let go."""
    root, moved, counters = tmp_path / "rec", tmp_path / "review", Counters()
    lock = lock_recorder_dir(root)
    rec = RecorderWorker(RecorderSection(enabled=True, dir=str(root), min_free_bytes=0, max_events=1),
                         threading.Event(), counters, "0123456789ab", "2025-01-31T12:00:00.000Z", dir_lock=lock,
                         cameras=("c",))
    rec.start()
    try:
        _record_one(rec, counters, 0)
        root.rename(moved)
        _record_one(rec, counters, 1)
        with pytest.raises(ConfigError, match="in use by another daemon"):
            lock_recorder_dir(root)  # a second daemon is refused on the folder now at the path
        lock_recorder_dir(moved).release()  # the renamed one is free
    finally:
        rec.finish()
        rec.join(10)
        lock.release()
    assert counters.get("recorder.written") == 2 and counters.get("recorder.deleted") == 0
    assert len(list(moved.glob("c/*.json"))) == 1 and len(list(root.glob("c/*-000000001.json"))) == 1


def test_a_recorder_dir_replaced_by_another_daemons_stops_recording_with_each_loss_counted(tmp_path, caplog):
    """The path now names a folder another daemon holds: nothing is written there (one's retention would
    delete the other's evidence); one error line, and each defect from then on counted lost once."""
    root, counters = tmp_path / "rec", Counters()
    lock = lock_recorder_dir(root)
    rec = RecorderWorker(RecorderSection(enabled=True, dir=str(root), min_free_bytes=0), threading.Event(),
                         counters, "0123456789ab", "2025-01-31T12:00:00.000Z", dir_lock=lock, cameras=("c",))
    rec.start()
    try:
        _record_one(rec, counters, 0)
        root.rename(tmp_path / "old")
        other = lock_recorder_dir(root)  # the other daemon, on a new folder at the path
        for i in (1, 2):
            _record_one(rec, counters, i, "recorder.unusable")
    finally:
        rec.finish()
        rec.join(10)
        lock.release()
    other.release()
    assert counters.get("recorder.written") == 1 and counters.get("recorder.unusable") == 2
    assert counters.get("recorder.errors") == 0 and list(root.iterdir()) == []
    assert sum(r.levelname == "ERROR" for r in caplog.records) == 1


def test_a_recording_whose_header_cannot_be_written_leaves_nothing(tmp_path):
    """The image written, then the header failed (a full disk; here a real EFBIG): the image stayed under a
    recording name, evidence of a defect the counts called lost, with nothing to tell it lacked its header."""
    puts = """
for i, note in enumerate(["x" * 8000, "short"]):  # frame 0: its image fits, its header does not
    rec.put(Frame(camera="c", frame_id=i, image=np.zeros((64, 64, 3), np.uint8), capture_ns=0, capture_utc=0.0),
            {"seq": i, "note": note})
"""
    assert _record_under_a_size_limit(tmp_path / "rec", puts) == {"written": 1, "errors": 1}
    assert sorted(p.name for p in (tmp_path / "rec" / "c").iterdir()) == [
        "r000001-20250131T120000Z-0123456789ab-000000001-000000001.json",
        "r000001-20250131T120000Z-0123456789ab-000000001-000000001.png"]


@pytest.mark.parametrize("locked", [True, False])
def test_a_recording_cut_short_by_a_crash_between_files_is_settled_at_the_next_start(tmp_path, locked):
    """A daemon killed after a recording's image and heat map were named but before its header: the next start
    counted the half as a recording, and nothing said it lacked its header. The half is removed like a failed
    write's, with or without a lock (a file system that cannot lock): its header's temporary file, of a
    process that is gone, marks it as a crash's (a live writer's is marked by a live pid)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    crashed = subprocess.run([sys.executable, "-c", CRASH_BEFORE_HEADER, str(tmp_path / "rec")], env=env,
                             capture_output=True, text=True, timeout=60)
    assert crashed.returncode == -9, crashed.stderr
    cam = tmp_path / "rec" / "c"
    assert sorted(p.suffixes[-1] for p in cam.iterdir() if RECORDING_NAME.match(p.name)) == [".png", ".png"]
    lock = lock_recorder_dir(tmp_path / "rec") if locked else None
    counters = Counters()
    rec = RecorderWorker(RecorderSection(enabled=True, dir=str(tmp_path / "rec"), min_free_bytes=0),
                         threading.Event(), counters, "aaaaaaaaaaaa", "2025-01-31T13:00:00.000Z", dir_lock=lock,
                         cameras=("c",))
    rec.start()
    rec.finish()
    rec.join(10)
    if lock:
        lock.release()
    assert sorted(cam.iterdir()) == [] and counters.get("recorder.incomplete_removed") == 1
    assert counters.get("recorder.leftovers_removed") == 1  # the header's temporary file


_CRASH_MID_RETENTION = """
import os, signal, sys, threading, time
import numpy as np
from pathlib import Path
from inspector.pipeline import recorder
from inspector.pipeline.config import RecorderSection
from inspector.pipeline.frame import Frame
from inspector.pipeline.telemetry import Counters
real_unlink = os.unlink
def unlink(path, *, dir_fd=None):  # the power goes once retention took a recording's header away
    if recorder.RECORDING_NAME.match(os.path.basename(path)):
        os.kill(os.getpid(), signal.SIGKILL)
    real_unlink(path, dir_fd=dir_fd)
os.unlink = unlink  # retention unlinks by name in the camera folder it opened (os.unlink with dir_fd)
counters = Counters()
rec = recorder.RecorderWorker(RecorderSection(enabled=True, dir=sys.argv[1], min_free_bytes=0, max_events=1),
                              threading.Event(), counters, "0123456789ab", "2025-01-31T12:00:00.000Z", cameras=("c",))
rec.start()
for i in range(2):
    frame = Frame(camera="c", frame_id=i, image=np.zeros((8, 8, 3), np.uint8), capture_ns=i, capture_utc=0.0)
    frame.amap = np.ones((8, 8), np.float32)
    rec.put(frame, {"seq": i, "capture": {"monotonic_ns": i}})
    while counters.get("recorder.written") <= i:
        time.sleep(0.01)
time.sleep(30)
"""


@pytest.mark.parametrize("locked", [True, False])
def test_a_crash_part_way_through_deleting_a_recording_leaves_a_half_the_next_start_settles(tmp_path, locked):
    """Retention takes a recording's header first (renamed to its temporary name: the marker of a recording
    being deleted): a crash part-way (here before its images go) leaves files without a header beside that
    marker, which the next start removes as a crash's half (with or without a lock), never a header whose image
    is gone (a recording shown whole with its evidence missing) nor files no retention ever deletes again."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    crashed = subprocess.run([sys.executable, "-c", _CRASH_MID_RETENTION, str(tmp_path / "rec")], env=env,
                             capture_output=True, text=True, timeout=60)
    assert crashed.returncode == -9, crashed.stderr
    cam = tmp_path / "rec" / "c"
    first = "r000001-20250131T120000Z-0123456789ab-000000000-000000000"
    assert sorted(p.name for p in cam.glob(first + "*")) == [first + ".heat.png", first + ".png"]  # header gone
    assert len(list(cam.glob(f".{first}.json.*.part"))) == 1  # … to its marker
    assert len(list(cam.glob("*-000000001-000000001.*"))) == 3  # the newer recording: whole
    lock = lock_recorder_dir(tmp_path / "rec") if locked else None
    counters = Counters()
    rec = RecorderWorker(RecorderSection(enabled=True, dir=str(tmp_path / "rec"), min_free_bytes=0, max_events=1),
                         threading.Event(), counters, "aaaaaaaaaaaa", "2025-01-31T13:00:00.000Z", dir_lock=lock,
                         cameras=("c",))
    rec.start()
    _record_one(rec, counters, 7)
    rec.finish()
    rec.join(10)
    if lock:
        lock.release()
    assert counters.get("recorder.incomplete_removed") == 1 and counters.get("recorder.leftovers_removed") == 1
    assert counters.get("recorder.deleted") == 1  # run 1's whole recording
    assert sorted(p.name for p in cam.iterdir()) == [f"r000002-20250131T130000Z-aaaaaaaaaaaa-000000007-000000007{s}"
                                                     for s in (".json", ".png")]
