"""Camera addresses with credentials (``http://user:secret@host/…``, ``…?pwd=secret``): the real address opens
the camera, but no password leaves the daemon: not in log lines, status events, the ``--check`` report or
error line, nor summary.json.

The camera is a real MJPEG-over-HTTP server that answers 401 until the request carries the right Basic
credentials (so the stream proves the password reached it); the daemon is the real ``inspector run`` in its
own process (its own logging set-up), watched by a real ZeroMQ subscriber.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

from inspector.client import Subscriber
from inspector.events import header_dict
from inspector.redact import redact
from inspector.testing.mjpeg_camera import serve_stamped_mjpeg

from pipeline_support import base_config, collect, free_port

REPO = Path(__file__).resolve().parents[2]
SECRET, QUERY_SECRET = "s3cretPW", "t0kenQS"
# one secret per class of query parameter a camera's URL carries under a name no deny-list knew (each was logged,
# published and printed whole): an http camera's auth=/sig=, a signed URL's, a session, an API key, srt's stream id
AUTH, SIG, AMZ_CRED, AMZ_SIG, SESSION, KEY, STREAMID = (
    "a0thQS", "s1gQS", "AKIAQS", "amzS1gQS", "sess1onQS", "k3yQS", "u=adm1nQS")
QUERY_SECRETS = (QUERY_SECRET, AUTH, SIG, AMZ_CRED, AMZ_SIG, SESSION, KEY, STREAMID)


class _Replay:
    """A socket whose first recv() returns the request already read (serve_stamped_mjpeg reads it again)."""

    def __init__(self, conn: socket.socket, request: bytes) -> None:
        self._conn, self._request = conn, request

    def recv(self, n: int) -> bytes:
        data, self._request = self._request, b""
        return data

    def __getattr__(self, name):
        return getattr(self._conn, name)


class AuthCamera:
    """An MJPEG camera on 127.0.0.1 that wants HTTP Basic ``user``/:data:`SECRET` (401 otherwise)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.2)
        self.authorized = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        want = b"Authorization: Basic " + base64.b64encode(f"user:{SECRET}".encode())
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
                conn.settimeout(5)
                request = conn.recv(4096)
            except OSError:
                continue
            if want not in request:
                conn.sendall(b'HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm="cam"\r\n'
                             b"Content-Length: 0\r\n\r\n")
                conn.close()
                continue
            self.authorized += 1
            threading.Thread(target=serve_stamped_mjpeg, daemon=True,
                             args=(_Replay(conn, request), np.full((96, 160, 3), 90, np.uint8), 20.0),
                             kwargs={"timeout_s": 10, "stop": self.stop}).start()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(2)


@pytest.fixture
def camera():
    cam = AuthCamera()
    yield cam
    cam.close()


def _inspector(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "inspector", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


def _write(tmp_path: Path, cfg: dict) -> Path:
    path = tmp_path / "inspector.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_redact_masks_passwords_and_secret_parameters_only():
    assert redact("url rtsp://user:p:w@10.0.0.5:554/s") == "url rtsp://user:***@10.0.0.5:554/s"
    # in a URL every query value is masked but the allow-list's (a user name shown as in a user part)
    assert redact("http://h/v.cgi?usr=admin&pwd=x1&cmd=go") == "http://h/v.cgi?usr=admin&pwd=***&cmd=***"
    assert redact("rtspsrc location=rtsp://a:b@h/s user-pw=x ! decodebin") == \
        "rtspsrc location=rtsp://a:***@h/s user-pw=*** ! decodebin"
    # FFmpeg splits userinfo at the last '@' before the path: a raw '@' in a password is masked whole
    assert redact("rtsp://op:p@ss@10.0.0.5/s and rtsp://op:x@y") == "rtsp://op:***@10.0.0.5/s and rtsp://op:***@y"
    # a user-only userinfo is often a token (cloud relays, API keys): masked whole, as pip does
    assert redact("rtsp://3f9a2c7e@relay.example/cam1 https://tok@h:8443?a=1") == \
        "rtsp://***@relay.example/cam1 https://***@h:8443?a=***"
    assert redact(redact("rtsp://a:b@h rtsp://t@h")) == "rtsp://a:***@h rtsp://***@h"  # idempotent
    for plain in ("http://127.0.0.1:5791/video.mjpg", "http://h:8080/a@2x.jpg", "/data/line1@2x.mp4",
                  "bypass=1 mode=live", "--set model.path: expected key=value", "cannot open url http://h:8080/a"):
        assert redact(plain) == plain


@pytest.mark.parametrize("text,told", [
    # an http camera's own parameters: any name may be its secret; what picks the stream stays (which camera)
    ("http://h/video.cgi?channel=2&auth=a0th&sig=5ig", "http://h/video.cgi?channel=2&auth=***&sig=***"),
    ("https://cdn/x.ts?signature=ab%2Fc&Key=k&session=s1&expires=1",
     "https://cdn/x.ts?signature=***&Key=***&session=***&expires=***"),
    # an AWS-style presigned URL
    ("https://b.s3.amazonaws.com/c.ts?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=9f&X-Amz-Expires=60",
     "https://b.s3.amazonaws.com/c.ts?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Expires=***"),
    # srt's stream id (a user and often a token, its '#' raw); transport options stay
    ("srt://10.0.0.5:9000?mode=caller&streamid=#!::u=admin,t=tok&latency=200",
     "srt://10.0.0.5:9000?mode=caller&streamid=***&latency=200"),
    ("udp://239.0.0.1:1234?pkt_size=1316&fifo_size=100000", "udp://239.0.0.1:1234?pkt_size=1316&fifo_size=100000"),
    # a bare token, a fragment's, an allowed name's value cut where another item begins
    ("http://h/v.mjpg?3f9a2c7e", "http://h/v.mjpg?***"), ("http://h/p#access_token=zz", "http://h/p#access_token=***"),
    ("srt://h:1?latency=20;passphrase=pp", "srt://h:1?latency=20;passphrase=***"),
    # in a message: a quoted URL, and punctuation after one, kept
    ("camera 'c': cannot open 'http://h/a?key=1' (http://h/b?sig=2).", "camera 'c': cannot open 'http://h/a?key=***' "
                                                                      "(http://h/b?sig=***)."),
    # outside a URL the deny-list rule holds, now with those names too: our own words stay readable
    ("rtspsrc location=rtsp://h/s proxy-pw=x streamid=y auth=z", "rtspsrc location=rtsp://h/s proxy-pw=*** "
                                                                 "streamid=*** auth=***"),
    ("bypass=1 mode=live key=value", "bypass=1 mode=live key=value"),
])
def test_redact_masks_every_url_query_value_but_harmless_names(text, told):
    assert redact(text) == told
    assert redact(told) == told  # idempotent


def test_an_error_quoting_a_long_url_is_redacted_before_it_is_cut():
    """An error's message is cut in the middle of a long run (clip_long_runs) when it is made; the CLI redacted it
    after: a presigned URL (400+ characters) lost its '?…X-Amz-Signature=' to the cut, and the signature's end,
    no longer a URL's value, was printed."""
    from inspector.cli import user_message
    from inspector.errors import ConfigError, SourceError

    sig = "0" * 60 + AMZ_SIG
    url = (f"https://bucket.s3.eu-west-1.amazonaws.com/{'cam/' * 40}seg.ts?X-Amz-Algorithm=AWS4-HMAC-SHA256"
           f"&X-Amz-Credential={AMZ_CRED}%2F20260101%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Signature={sig}")
    for err in (SourceError(f"camera 'c': cannot open {url}"), ConfigError(f"cameras[0].source: {url}: refused")):
        told = redact(user_message(err, None, "run"))  # as the CLI prints it
        assert AMZ_SIG not in told and AMZ_CRED not in told and "amazonaws.com/cam/" in told, told


def test_check_error_line_hides_the_password(camera, tiny_model, tmp_path):
    # a wrong password (the camera refuses) and the query secrets of a signed camera URL
    query = f"channel=1&auth={AUTH}&sig={SIG}&X-Amz-Signature={AMZ_SIG}"
    url = f"http://user:{SECRET}x@127.0.0.1:{camera.port}/video.mjpg?{query}"
    cfg = base_config(tiny_model, f"tcp://127.0.0.1:{free_port()}",
                      [{"name": "ipcam", "source": url, "open_timeout_s": 3, "read_timeout_s": 3}])
    res = _inspector("run", "--config", str(_write(tmp_path, cfg)), "--check")
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.returncode == 2 and len(errors) == 1 and "Traceback" not in res.stderr, res.stderr
    assert f"http://user:***@127.0.0.1:{camera.port}/video.mjpg?channel=1&auth=***&sig=***&X-Amz-Signature=***" \
        in errors[0], errors[0]
    told = res.stdout + res.stderr
    assert not [secret for secret in (SECRET, AUTH, SIG, AMZ_SIG) if secret in told], told


def test_no_password_in_logs_events_or_summary(camera, tiny_model, tmp_path):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    dead = socket.create_server(("127.0.0.1", 0))  # a port that takes no RTSP: that camera's errors are told too
    dead_url = (f"rtsp://127.0.0.1:{dead.getsockname()[1]}/stream?user=admin&password={QUERY_SECRET}"
                f"&auth={AUTH}&sig={SIG}&key={KEY}&streamid=#!::{STREAMID}")
    dead.close()
    signed = f"channel=1&X-Amz-Credential={AMZ_CRED}&X-Amz-Signature={AMZ_SIG}&session={SESSION}"
    cams = [{"name": "ipcam", "source": f"http://user:{SECRET}@127.0.0.1:{camera.port}/video.mjpg?{signed}",
             "max_frames": 4, "open_timeout_s": 5, "read_timeout_s": 5},
            {"name": "gate", "source": dead_url, "open_timeout_s": 1, "read_timeout_s": 1,
             "reconnect": {"initial_s": 0.1, "max_attempts": 2}}]
    cfg = base_config(tiny_model, endpoint, cams, summary_json=str(tmp_path / "summary.json"))
    cfg["publish"]["wait_for_subscribers"] = 1
    sub = Subscriber(endpoint, ("v1/",))
    try:
        res = _inspector("run", "--config", str(_write(tmp_path, cfg)), timeout=90)
        events = collect(sub, timeout=10.0)
    finally:
        sub.close()
    assert camera.authorized >= 1, "the camera never saw the real credentials"
    statuses = [e for e in events if e.type == "status"]
    assert {"ipcam", "gate"} <= {e.camera for e in statuses}, res.stderr
    assert any(e.camera == "gate" and e.state == "failed" for e in statuses)
    # which camera and stream it is stays told: host, port, path, channel
    assert any(e.details.get("source") == f"url http://user:***@127.0.0.1:{camera.port}/video.mjpg?channel=1"
               f"&X-Amz-Credential=***&X-Amz-Signature=***&session=***" for e in statuses if e.camera == "ipcam")
    summary = (tmp_path / "summary.json").read_text()
    assert json.loads(summary)["cameras"]["ipcam"]["processed"] == 4
    told = [res.stdout, res.stderr, summary, *(json.dumps(header_dict(e), default=str) for e in events)]
    leaks = [text for text in told if any(secret in text for secret in (SECRET, *QUERY_SECRETS))]
    assert not leaks, leaks[0][:2000]


@pytest.mark.parametrize("url", [f"mqtt://127.0.0.1:99999/?token={QUERY_SECRET}",
                                 f"http://127.0.0.1:1883/?auth={AUTH}", f"mqtt://:1883/?sig={SIG}"])
def test_the_config_loader_names_a_broker_url_without_its_query_secrets(url):
    """publish.mqtt.url's errors quote the URL (which broker): its port out of range, another scheme, no host; each
    quoted it whole, a token in its query with it."""
    from inspector.errors import ConfigError
    from inspector.pipeline.integration_config import MqttSection

    with pytest.raises(ConfigError) as err:
        MqttSection(url=url).validate("publish.mqtt")
    assert str(err.value).startswith("publish.mqtt.url: '") and "=***" in str(err.value), str(err.value)
    assert not [secret for secret in QUERY_SECRETS if secret in str(err.value)], str(err.value)


@pytest.mark.parametrize("level,url,warned", [("48", "http://user:{s}@127.0.0.1:{p}/v.mjpg", True),
                                              ("56", "rtsp://{s}@127.0.0.1:{p}/s", True),
                                              ("32", "http://user:{s}@127.0.0.1:{p}/v.mjpg", False),
                                              ("48", "http://127.0.0.1:{p}/v.mjpg", False)])
def test_an_ffmpeg_log_level_that_prints_credentials_is_warned_about(level, url, warned, monkeypatch, caplog):
    """FFmpeg writes its own lines to stderr, past our redaction; at AV_LOG_DEBUG (48) an http:// camera's
    password is among them. The user's level is kept, but a camera with credentials gets one warning."""
    from inspector.errors import SourceError
    from inspector.pipeline import source_base, sources
    from inspector.pipeline.config import CameraSection

    monkeypatch.setenv("OPENCV_FFMPEG_LOGLEVEL", level)
    monkeypatch.setattr(source_base, "_warned_ffmpeg_log", set())
    port = free_port()  # nothing listens: the open is refused at once
    cam = CameraSection(name=f"c{level}", source=url.format(s=SECRET, p=port), open_timeout_s=2)
    source = sources.make_source(cam)
    for _ in range(2):  # once per camera, not per reconnect
        with pytest.raises(SourceError):
            source.open()
    lines = [r.getMessage() for r in caplog.records if "OPENCV_FFMPEG_LOGLEVEL" in r.getMessage()]
    assert len(lines) == (1 if warned else 0)
    assert all(SECRET not in line for line in lines)
