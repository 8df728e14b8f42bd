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

from pipeline_support import read_slowly
from rtsp_support import RtspCamera, fake_rtsp_server

pytestmark = pytest.mark.rtsp


def _age_s(frame) -> float:
    """How old ``frame`` is now, by the camera clock stamped into its pixels (s)."""
    now_ms = int(time.time() * 1000) & 0xFFFFFFFF
    return ((now_ms - read_stamp(frame.image)) & 0xFFFFFFFF) / 1e3


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
        frames, worker = _run_worker(cam, read_slowly(make_source(cam), 0.1), 7.0, counters)
    ages = [age for _, age in frames]
    assert worker.live and len(ages) >= 25, ages
    assert max(ages[3:]) <= 1.0, ages
    assert counters.get("ipcam.dropped_live") >= 30, counters.snapshot()  # ~half of ~170 frames passed over


def test_an_rtsp_camera_that_goes_away_reconnects_in_one_line_and_comes_back(caplog):
    """The RTSP server killed mid-run (a camera losing power), then started again: the camera goes
    'reconnecting' once (one warning, whatever the attempts), retries with back-off, and is online again with a
    new session; the capture thread is the only one, nothing exits."""
    counters, states = Counters(), []
    server = RtspCamera(fps=25).start()
    cam = CameraSection(name="ipcam", source=server.url(), open_timeout_s=3, read_timeout_s=1,
                        reconnect=ReconnectSection(initial_s=0.2, max_s=1.0))
    hub, stop = FrameHub(Counters()), threading.Event()
    worker = CaptureWorker(cam, make_source(cam), hub, stop, counters, lambda name, state, *a: states.append(state))
    threads_before = threading.active_count()
    worker.start()

    def frames_for(seconds: float) -> int:
        n, t_end = 0, time.monotonic() + seconds
        while time.monotonic() < t_end:
            n += len(hub.take(4, 0.1))
        return n

    try:
        assert frames_for(2.0) >= 20
        server.stop()
        frames_for(4.0)
        assert worker.state == "reconnecting" and worker.is_alive()
        server.start()
        assert frames_for(5.0) >= 40
    finally:
        stop.set()
        worker.join(10)
        server.stop()
    assert states[:4] == ["connecting", "online", "reconnecting", "online"] and states.count("reconnecting") == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "camera 'ipcam': reconnecting" in warnings[0], warnings
    assert counters.get("ipcam.reconnects") == 1
    assert not worker.is_alive() and threading.active_count() <= threads_before


def _open_error(url: str, open_timeout_s: float = 3.0) -> tuple[SourceError, float]:
    source = make_source(CameraSection(name="ipcam", source=url, open_timeout_s=open_timeout_s, read_timeout_s=2))
    started = time.monotonic()
    with pytest.raises(SourceError) as info:
        source.open()
        source.read()
    return info.value, time.monotonic() - started


def test_an_rtsp_camera_refusing_its_password_says_401_once_per_attempt_without_the_password():
    """A wrong password: OpenCV said only "did not open" (twice per attempt: the second, full probe was a
    second failed login, where cameras lock an account after a few). Now one line naming the camera and the
    401, the user name but never the password, transient (back-off), one login per attempt from FFmpeg."""
    with RtspCamera(codec="mjpeg", user="op", password="s3cret") as server:
        error, took = _open_error(server.url("op:wr0ng"))
        assert not error.permanent and took < 2
        text = str(error)
        assert "camera 'ipcam'" in text and "401" in text and "user 'op'" in text and "wr0ng" not in text, text
        error, _ = _open_error(server.url())
        assert "asks for a user name and password (401" in str(error)
        source = make_source(CameraSection(name="ipcam", source=server.url("op:s3cret"), open_timeout_s=5))
        source.open()
        assert source.read().image is not None  # the right password opens it
        source.close()


def test_an_rtsp_path_that_does_not_exist_says_404_and_is_retried():
    """A wrong path: 404, said as such (it was "did not open"); transient, as a relay (NVR, MediaMTX) answers
    404 until its camera publishes (inspector/pipeline/rtsp_probe.py)."""
    with RtspCamera() as server:
        error, took = _open_error(server.url(path="/nope"))
    assert not error.permanent and took < 2 and "no stream at path '/nope' (404" in str(error), str(error)


@pytest.mark.parametrize("answers_describe", [False, True])
def test_an_rtsp_server_that_stays_silent_or_sends_no_video_fails_the_open_within_its_timeout(answers_describe):
    """A server that accepts TCP and never answers RTSP, or answers DESCRIBE/SETUP/PLAY and never sends RTP:
    the open ends within open_timeout_s (plus rtsp_probe's 0.2 s), transient, in one line saying which."""
    with fake_rtsp_server(answers_describe) as url:
        error, took = _open_error(url, open_timeout_s=2.0)
    assert not error.permanent and took < 2.0 + 0.6, took
    said = "sent no video" if answers_describe else "gave no RTSP answer to DESCRIBE"
    assert said in str(error) and "\n" not in str(error), str(error)
