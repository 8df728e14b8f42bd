"""A frozen http(s) snapshot camera: it keeps answering its last picture. Each answer was inspected and published
as a new part (one part counted many times, a stuck camera looking like a healthy line). An unchanged picture —
told by the HTTP validators where the camera gives them (a conditional GET answered 304), else by its bytes — is
now no new frame: counted ``repeat``, never inspected; repeats in a row for ``stale_after_s`` make the camera
``stale`` (one warning naming the camera and its URL) until a new picture comes.

A real HTTP server on loopback (``INSPECTOR_TEST_PORTS``), real JPEGs, the real capture worker.
"""

from __future__ import annotations

import http.server
import logging
import threading
import time

import cv2
import numpy as np
import pytest

from inspector.pipeline.capture import CaptureWorker, FrameHub
from inspector.pipeline.config import CameraSection
from inspector.pipeline.sources import make_source
from inspector.pipeline.telemetry import Counters

from pipeline_support import free_port


def _jpeg(grey: int) -> bytes:
    return cv2.imencode(".jpg", np.full((96, 160, 3), grey, np.uint8))[1].tobytes()


class FrozenCamera:
    """A snapshot camera on 127.0.0.1 answering ``self.body`` to every GET; with ``validators`` it sends an
    ETag and Last-Modified and answers a matching If-None-Match with 304, as a web server does (RFC 9110 §13.1).
    ``requests`` holds (If-None-Match, status) of every GET."""

    def __init__(self, body: bytes, validators: bool) -> None:
        self.body, self.version, self.requests = body, 1, []
        camera = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                etag = f'"v{camera.version}"'
                if validators and self.headers.get("If-None-Match") == etag:
                    camera.requests.append((self.headers.get("If-None-Match"), 304))
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                camera.requests.append((self.headers.get("If-None-Match"), 200))
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(camera.body)))
                if validators:
                    self.send_header("ETag", etag)
                    self.send_header("Last-Modified", "Sun, 06 Dec 2026 11:00:00 GMT")
                self.end_headers()
                self.wfile.write(camera.body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/snapshot.jpg"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def change(self, body: bytes) -> None:
        self.body, self.version = body, self.version + 1

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("validators", [True, False], ids=["etag-304", "same-bytes"])
def test_a_frozen_snapshot_camera_is_inspected_once_counted_as_repeats_and_said_stale(validators, caplog):
    camera = FrozenCamera(_jpeg(90), validators)
    cam = CameraSection(name="snap", source=camera.url, fps=20.0, open_timeout_s=5, read_timeout_s=5,
                        watchdog_s=60, stale_after_s=0.5)
    counters, hub, stop, states = Counters(), FrameHub(Counters()), threading.Event(), []
    worker = CaptureWorker(cam, make_source(cam), hub, stop, counters, lambda _c, state, *a: states.append(state))
    frames = []
    with caplog.at_level(logging.WARNING, logger="inspector.capture"):
        worker.start()
        try:
            t_end = time.monotonic() + 1.5
            while time.monotonic() < t_end:
                frames += hub.take(1, 0.05)
            frozen = len(frames)
            camera.change(_jpeg(160))  # the camera comes back: a new part
            t_end = time.monotonic() + 0.5
            while time.monotonic() < t_end and len(frames) == frozen:
                frames += hub.take(1, 0.05)
        finally:
            stop.set()
            worker.join(10)
            camera.close()
    assert frozen == 1, frozen  # one physical part, inspected once (was ~30: one per GET)
    assert len(frames) == 2 and int(frames[1].image.mean()) > 140  # the new picture, at once
    assert counters.get("snap.repeat") >= 20, counters.snapshot()
    assert counters.get("snap.stale") == 1 and counters.get("snap.corrupt") == 0
    assert states[:3] == ["connecting", "online", "stale"] and states[-1] == "online", states
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines  # the repeats themselves are not warned one by one
    assert lines[0].startswith("camera 'snap': stale (") and camera.url in lines[0], lines
    if validators:  # the camera was asked conditionally and said 'not modified', no picture sent again
        assert sum(status == 304 for _etag, status in camera.requests) >= 20, camera.requests
        assert all(etag == '"v1"' for etag, status in camera.requests if status == 304)


def test_a_frozen_picture_is_not_inspected_again_after_a_reconnect():
    """The last picture is kept over a reopen: a frozen camera that also drops its connection (each drop a
    reconnect) had its old picture inspected again after each one."""
    camera = FrozenCamera(_jpeg(90), validators=False)
    source = make_source(CameraSection(name="snap", source=camera.url, open_timeout_s=5, read_timeout_s=5))
    try:
        source.open()
        assert source.read().image is not None
        source.close()
        source.open()
        again = source.read()
        camera.change(_jpeg(160))
        new = source.read()
    finally:
        source.close()
        camera.close()
    assert again.image is None and again.reason == "repeat", again
    assert new.image is not None and new.reason != "repeat"


@pytest.mark.parametrize("value", [0, -1, 86401])
def test_stale_after_s_out_of_its_range_is_refused_in_one_line(value):
    from inspector.errors import ConfigError
    from inspector.pipeline.config import daemon_config

    cfg = {"model": {"path": "m.onnx"}, "thresholds": {"image": 0.5},
           "cameras": [{"name": "c", "source": "http://127.0.0.1:5820/snapshot.jpg", "stale_after_s": value}]}
    with pytest.raises(ConfigError, match=r"stale_after_s: .* is out of range") as err:
        daemon_config(cfg)
    assert "\n" not in str(err.value)
