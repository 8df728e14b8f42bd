"""Helpers for the daemon tests: frames with known defects written as videos/folders, free ports,
running a daemon to the end with a subscriber attached. (Fixtures live in conftest.py.)"""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path

import numpy as np

from net_faults import free_port  # noqa: F401 (the pipeline tests take it from here)


# -- frames with known defects ----------------------------------------------------
def make_frame(rng: np.random.Generator, height: int = 96, width: int = 128, defect: bool = False) -> np.ndarray:
    """A smooth, low-contrast BGR frame; with ``defect`` a dark blob the tiny model scores high."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = 120 + 20 * np.sin(xx / 17.0) * np.cos(yy / 23.0) + rng.normal(0, 1.5, (height, width))
    if defect:
        cy, cx = rng.integers(height // 4, 3 * height // 4), rng.integers(width // 4, 3 * width // 4)
        base[(yy - cy) ** 2 + (xx - cx) ** 2 <= 36] = 10
    img = np.clip(base, 0, 255).astype(np.uint8)
    return np.dstack([img, img, img])


def defect_pattern(n: int, every: int = 3, offset: int = 1) -> list[bool]:
    return [(i % every) == offset for i in range(n)]


def write_video(path: Path, defects: list[bool], seed: int = 0, fps: float = 25.0) -> Path:
    """An MJPG .avi with one frame per entry of ``defects``."""
    import cv2

    rng = np.random.default_rng(seed)
    frames = [make_frame(rng, defect=d) for d in defects]
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), "cv2.VideoWriter cannot write MJPG here"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def write_folder(folder: Path, defects: list[bool], seed: int = 0, corrupt: tuple[int, ...] = ()) -> Path:
    """PNG files 0000.png… (indices in ``corrupt`` get garbage bytes instead of an image: complete, ending in
    IEND, so a camera does not take them for a picture cut short by its writer and wait for the rest)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, d in enumerate(defects):
        frame = make_frame(rng, defect=d)
        if i in corrupt:
            (folder / f"{i:04d}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20 + b"\0\0\0\0IEND\xaeB`\x82")
        else:
            cv2.imwrite(str(folder / f"{i:04d}.png"), frame)
    return folder


# -- running a daemon in-process ------------------------------------------------------------
def base_config(model: Path, endpoint: str, cameras: list[dict], **sections) -> dict:
    cfg = {"model": {"path": str(model), "threads": 1}, "thresholds": {"image": 0.1},
           "cameras": cameras, "publish": {"endpoint": endpoint, "results": True, "stats_interval_s": 0.2},
           "shutdown_timeout_s": 10.0}
    for key, value in sections.items():
        cfg.setdefault(key, {}).update(value) if isinstance(value, dict) else cfg.__setitem__(key, value)
    return cfg


def collect(sub, timeout: float = 20.0) -> list:
    """Events until the final stats event (the daemon's last message) or ``timeout`` seconds."""
    events = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = sub.recv(timeout=0.5)
        if event is None:
            continue
        events.append(event)
        if event.type == "stats" and event.final:
            break
    return events



def slow_recorder_disk(monkeypatch, delay_s: float) -> None:
    """A slow disk for the recorder alone: each ``os.fsync`` on the thread named ``recorder`` sleeps ``delay_s``
    seconds, then makes the real call (the one fake: a real disk cannot be made slow on demand)."""
    import os
    import threading

    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        if threading.current_thread().name == "recorder":
            time.sleep(delay_s)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)


def run_to_end(cfg_dict: dict, topics=("v1/",), backend_factory=None, timeout: float = 30.0):
    """Run a daemon on offline sources to the end with a subscriber attached; returns (daemon, code, events)."""
    from inspector.client import Subscriber
    from inspector.pipeline.config import daemon_config
    from inspector.integrations.runtime import make_daemon

    daemon = make_daemon(daemon_config(cfg_dict), backend_factory=backend_factory)
    daemon.setup()
    sub = Subscriber(cfg_dict["publish"]["endpoint"], topics)
    try:
        assert daemon.publisher.wait_for_subscription(5.0), "subscriber never connected"
        daemon.start()
        code = daemon.wait(timeout=timeout)
        events = collect(sub, timeout=10.0)
    finally:
        sub.close()
    return daemon, code, events


def by_type(events, kind: str, camera: str | None = None) -> list:
    return [e for e in events if e.type == kind and (camera is None or getattr(e, "camera", None) == camera)]


# a recorder process killed as a recording's header is about to be named (argv[1]: recorder.dir)
CRASH_BEFORE_HEADER = """
import os, signal, sys, threading, time
import numpy as np
from inspector.pipeline import recorder
from inspector.pipeline.config import RecorderSection
from inspector.pipeline.frame import Frame
from inspector.pipeline.telemetry import Counters
real_link = recorder.os.link
def link(src, dst):  # the power goes as the header is about to be named
    if str(dst).endswith(".json"):
        os.kill(os.getpid(), signal.SIGKILL)
    real_link(src, dst)
recorder.os.link = link
rec = recorder.RecorderWorker(RecorderSection(enabled=True, dir=sys.argv[1], min_free_bytes=0), threading.Event(),
                              Counters(), "0123456789ab", "2025-01-31T12:00:00.000Z", cameras=("c",))
rec.start()
frame = Frame(camera="c", frame_id=0, image=np.zeros((8, 8, 3), np.uint8), capture_ns=0, capture_utc=0.0)
frame.amap = np.ones((8, 8), np.float32)
rec.put(frame, {"seq": 0})
time.sleep(30)
"""


def read_slowly(source, extra_s: float):
    """``source`` whose ``read`` takes ``extra_s`` longer: a decoder slower than the camera (a big frame on a busy
    CPU), which a small frame on loopback cannot be by itself. Returns ``source``."""
    read = source.read

    def slow_read():
        time.sleep(extra_s)
        return read()

    source.read = slow_read
    return source


def run_capture_worker(cam, seconds: float, counters, on_state=lambda *a: None, until=None):
    """Run a real CaptureWorker on ``cam`` (its source made by make_source) for ``seconds`` (or, given ``until``,
    until ``until(worker)`` is true, at most ``seconds``: a count the test waits for, not a time a loaded machine
    may not reach it in), then stop it and return it; it counts into ``counters`` (a Counters), its state changes
    go to ``on_state(camera, state, *details)``. The caller closes what serves the camera."""
    from inspector.pipeline.capture import CaptureWorker, FrameHub
    from inspector.pipeline.sources import make_source
    from inspector.pipeline.telemetry import Counters

    stop = threading.Event()
    worker = CaptureWorker(cam, make_source(cam), FrameHub(Counters()), stop, counters, on_state)
    worker.start()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and not (until is not None and until(worker)):
            time.sleep(0.05 if until is not None else max(0.0, deadline - time.monotonic()))
    finally:
        stop.set()
        worker.join(10)
    return worker


class HttpCamera:
    """An HTTP camera on 127.0.0.1 answering each GET with ``respond() -> (status, content type, body)``;
    ``url(path)``, ``close()``."""

    def __init__(self, respond) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                status, kind, body = respond()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str, userinfo: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
