"""A network camera that answers that this camera's settings are wrong (RTSP or HTTP 401 Unauthorized, 403
Forbidden, 404 Not Found: a wrong password, a wrong path) is said once as a configuration error naming its URL
(password masked) and retried at ``reconnect.max_s``, quietly, as futile reopens are. It was retried at the
back-off as a hiccup: a failed login per attempt (cameras lock an account after a few), ``reconnect.max_attempts``
spent in seconds, never called a configuration error. Transient failures (a refused connection, 5xx) keep the
back-off. Real parts: a gst-rtsp-server camera, an HTTP snapshot camera, the real capture worker and CLI."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from inspector.pipeline.config import CameraSection, ReconnectSection
from inspector.pipeline.telemetry import Counters

from pipeline_support import HttpCamera, base_config, free_port, run_capture_worker
from rtsp_support import RtspCamera

RUN_S, MAX_S = 3.0, 1.0  # at the back-off (0.05 s doubling to 1 s) 3 s held 7+ attempts; at max_s at most 4
CLI = [sys.executable, "-c", "import sys; from inspector.cli import main; sys.exit(main())"]


class SnapshotCamera(HttpCamera):
    """An HTTP snapshot camera on 127.0.0.1 answering each GET with ``self.status`` (200: a new JPEG)."""

    def __init__(self, status: int) -> None:
        self.status = status
        picture = cv2.imencode(".jpg", np.full((48, 64, 3), 90, np.uint8))[1].tobytes()
        super().__init__(lambda: (self.status, "image/jpeg", picture) if self.status == 200
                         else (self.status, "text/plain", b"no\n"))

    def url(self, userinfo: str = "op:wr0ng@") -> str:
        return super().url("/snapshot.jpg", userinfo)


def _capture(url: str, caplog, seconds: float = RUN_S, on_state=lambda *a: None):
    cam = CameraSection(name="ipcam", source=url, fps=10.0, open_timeout_s=2, read_timeout_s=1, watchdog_s=60,
                        reconnect=ReconnectSection(initial_s=0.05, max_s=MAX_S, jitter=0.0))
    counters = Counters()
    with caplog.at_level(logging.INFO, logger="inspector.capture"):
        worker = run_capture_worker(cam, seconds, counters, on_state)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    return worker, counters, warnings


def _told_once(warnings: list[str], shown_url: str, why: str) -> None:
    said = [w for w in warnings if "configuration error" in w]
    assert len(said) == 1 and warnings == said, warnings  # nothing else: no 'reconnecting' warning per attempt
    assert shown_url in said[0] and why in said[0] and "wr0ng" not in said[0], said
    assert f"retrying every {MAX_S:g} s (reconnect.max_s)" in said[0], said


@pytest.mark.parametrize("userinfo, path, why", [
    ("op:wr0ng", "/cam", "the camera refused user 'op' (401 Unauthorized"),
    ("", "/cam", "asks for a user name and password (401 Unauthorized"),
    ("op:s3cret", "/nope", "no stream at path '/nope' (404 Not Found")])
def test_an_rtsp_login_or_path_the_camera_refuses_is_one_configuration_error_then_quiet_retries(
        caplog, userinfo, path, why):
    with RtspCamera(codec="mjpeg", user="op", password="s3cret") as server:
        worker, counters, warnings = _capture(server.url(userinfo, path), caplog)
        shown = server.url(userinfo.replace("wr0ng", "***").replace("s3cret", "***"), path)
    _told_once(warnings, shown, why)
    assert worker.backoff.attempt <= 4, worker.backoff.attempt  # at max_s: was 8 in 3 s, a login each
    assert counters.get("ipcam.captured") == 0


@pytest.mark.parametrize("status, why", [(401, "HTTP 401 Unauthorized"), (403, "HTTP 403 Forbidden"),
                                         (404, "HTTP 404 Not Found")])
def test_an_http_camera_refusing_the_login_or_the_path_is_one_configuration_error(caplog, status, why):
    camera = SnapshotCamera(status)
    try:
        worker, _, warnings = _capture(camera.url(), caplog)
    finally:
        camera.close()
    _told_once(warnings, camera.url("op:***@"), why)
    assert worker.backoff.attempt + worker.reconnects <= 5, (worker.backoff.attempt, worker.reconnects)


def test_a_camera_that_answers_after_its_404_is_told_opened_again_and_inspected(caplog):
    """A relay answers 404 until its camera publishes: still retried, and frames flow once it does."""
    camera = SnapshotCamera(404)
    threading.Timer(1.0, lambda: setattr(camera, "status", 200)).start()
    try:
        _, counters, warnings = _capture(camera.url(), caplog, seconds=MAX_S + 2.5)
    finally:
        camera.close()
    assert len([w for w in warnings if "configuration error" in w]) == 1, warnings
    infos = [r.getMessage() for r in caplog.records]
    assert any("opens again" in line for line in infos), infos
    assert counters.get("ipcam.captured") > 0


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_stays_a_transient_fault_at_the_back_off(caplog, status):
    camera = SnapshotCamera(status)
    try:
        worker, _, warnings = _capture(camera.url(), caplog)
    finally:
        camera.close()
    assert not [w for w in warnings if "configuration error" in w], warnings
    assert worker.backoff.attempt + worker.reconnects >= 6, (worker.backoff.attempt, worker.reconnects)


def test_nothing_listening_at_an_rtsp_address_stays_a_transient_fault(caplog):
    worker, _, warnings = _capture(f"rtsp://op:wr0ng@127.0.0.1:{free_port()}/cam", caplog)
    assert not [w for w in warnings if "configuration error" in w], warnings
    assert worker.backoff.attempt >= 6, worker.backoff.attempt


@pytest.mark.parametrize("userinfo, path, why", [
    ("op:wr0ng", "/cam", "the camera refused user 'op' (401 Unauthorized"),
    ("op:s3cret", "/nope", "no stream at path '/nope' (404 Not Found")])
def test_run_check_reports_the_refusal_in_one_line_naming_the_url(tiny_model, tmp_path, userinfo, path, why):
    with RtspCamera(codec="mjpeg", user="op", password="s3cret") as server:
        cfg = base_config(tiny_model, f"ipc://{tmp_path}/ev.sock",
                          [{"name": "ipcam", "source": server.url(userinfo, path), "open_timeout_s": 3}])
        (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
        done = subprocess.run([*CLI, "run", "--config", str(tmp_path / "cfg.yaml"), "--check"], capture_output=True,
                              text=True, timeout=120, cwd=Path(__file__).parents[2])
        shown = server.url(userinfo.split(":")[0] + ":***", path)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert shown in errors[0] and why in errors[0] and "wr0ng" not in done.stderr + done.stdout, errors


_QUIET_RETRIES = """
import sys, time, threading
sys.path[:0] = [sys.argv[2], sys.argv[2] + "/.."]  # pipeline_support, and the tests' helpers it imports
from inspector.pipeline.config import CameraSection, ReconnectSection
from inspector.pipeline.telemetry import Counters
from pipeline_support import run_capture_worker
cam = CameraSection(name="ipcam", source=sys.argv[1], open_timeout_s=2, read_timeout_s=1,
                    reconnect=ReconnectSection(initial_s=0.05, max_s=0.5, jitter=0.0))
worker = run_capture_worker(cam, 40.0, Counters(), until=lambda w: w.backoff.attempt >= 3)
print("attempts", worker.backoff.attempt, flush=True)
"""


def test_quiet_retries_of_a_refused_rtsp_login_ask_the_camera_once_each_not_through_ffmpeg():
    """Each retry was FFmpeg's failed login (and its error line on stderr) and then the probe's: two failed logins
    per retry, where cameras lock an account after a few. Now FFmpeg tries once; the retries ask DESCRIBE by hand
    and run FFmpeg only once the camera answers 200."""
    # FFmpeg's own lines count its tries: at its default level, not the AV_LOG_QUIET that inspector.cli.main sets in
    # this process's environment when a test before this one ran the CLI in-process
    env = {k: v for k, v in os.environ.items() if k not in ("OPENCV_FFMPEG_LOGLEVEL", "OPENCV_LOG_LEVEL")}
    with RtspCamera(codec="mjpeg", user="op", password="s3cret") as server:
        done = subprocess.run([sys.executable, "-c", _QUIET_RETRIES, server.url("op:wr0ng"), str(Path(__file__).parent)],
                              capture_output=True, text=True, timeout=90, cwd=Path(__file__).parents[2], env=env)
    assert "attempts" in done.stdout, done.stderr
    attempts = int(done.stdout.split("attempts", 1)[1])
    assert attempts >= 3, done.stdout
    assert done.stderr.count("method DESCRIBE failed: 401") == 1, done.stderr
