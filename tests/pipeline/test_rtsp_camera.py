"""RTSP cameras, read as the daemon reads them (OpenCV's FFmpeg backend, RTP over TCP), from a real RTSP
server on loopback: GStreamer's gst-rtsp-server (tests/pipeline/rtsp_server.py) stamping its wall clock into
every frame. RTSP is what nearly every IP and industrial network camera speaks; until these tests only the
parsing of rtsp:// URLs was tested. Servers that misbehave in ways a real one cannot be made to (silent, no
RTP) are small fakes speaking RFC 2326 (rtsp_support.fake_rtsp_server)."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from inspector.errors import SourceError
from inspector.pipeline.capture import CaptureWorker, FrameHub
from inspector.pipeline.config import CameraSection, ReconnectSection
from inspector.pipeline.sources import make_source
from inspector.pipeline.telemetry import Counters
from inspector.testing.clock_stamp import read_stamp

from rtsp_support import RtspCamera, fake_rtsp_server

pytestmark = pytest.mark.rtsp


def _age_s(frame) -> float:
    """How old ``frame`` is now, by the camera clock stamped into its pixels (s)."""
    now_ms = int(time.time() * 1000) & 0xFFFFFFFF
    return ((now_ms - read_stamp(frame.image)) & 0xFFFFFFFF) / 1e3


def _read_slowly(source, extra_s: float):
    """``source.read`` taking ``extra_s`` longer: a decoder or CPU slower than the camera."""
    read = source.read

    def slow_read():
        time.sleep(extra_s)
        return read()

    source.read = slow_read
    return source


def _run_worker(cam: CameraSection, source, seconds: float, counters: Counters, during=None):
    """Run a capture worker on ``source`` for ``seconds``; [(frame, age s when taken)], the worker."""
    hub, stop = FrameHub(Counters()), threading.Event()
    worker = CaptureWorker(cam, source, hub, stop, counters, lambda *a: None)
    frames = []
    worker.start()
    try:
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            frames += [(f, _age_s(f)) for f in hub.take(1, 0.2)]
            if during is not None:
                during(worker)
    finally:
        stop.set()
        worker.join(10)
    return frames, worker


@pytest.mark.parametrize("codec", ["h264", "mjpeg"])
def test_an_rtsp_camera_read_slower_than_it_plays_inspects_fresh_frames_and_counts_the_rest(codec):
    """A 25 fps RTSP camera read at ~10 frames a second (live, fps 0): RTP over TCP queues the unread frames in
    the socket and FFmpeg's buffers. OpenCV gives the first two H.264 frames one timestamp (0 ms), which was
    taken for "a stream without timestamps": the lag was never measured again on that connection, nothing
    caught up, and the inspected frames grew seconds old. Every inspected frame must be ≤ 1 s old by the
    camera's own clock, and the frames passed over counted."""
    counters = Counters()
    with RtspCamera(codec=codec, fps=25) as server:
        cam = CameraSection(name="ipcam", source=server.url(), open_timeout_s=5, read_timeout_s=5)
        frames, worker = _run_worker(cam, _read_slowly(make_source(cam), 0.1), 7.0, counters)
    ages = [age for _, age in frames]
    assert worker.live and len(ages) >= 25, ages
    assert max(ages[3:]) <= 1.0, ages
    assert counters.get("ipcam.dropped_live") >= 30, counters.snapshot()  # ~half of ~170 frames passed over
