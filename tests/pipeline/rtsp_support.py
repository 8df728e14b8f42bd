"""A real RTSP camera for the tests (tests/pipeline/rtsp_server.py, GStreamer's gst-rtsp-server run by Debian's
python3), and RTSP servers that misbehave in ways a real one cannot be made to (silent, no RTP).

Tests using them carry the ``rtsp`` marker: skipped where gst-rtsp-server or PyGObject is missing
(scripts/install-integrations.sh installs them), a failure in CI (INSPECTOR_REQUIRE_MARKERS).
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = os.environ.get("INSPECTOR_RTSP_PYTHON", "/usr/bin/python3")  # the one with PyGObject + GStreamer


@functools.lru_cache(maxsize=1)
def unavailable() -> str | None:
    """Why the real RTSP server cannot run here (None: it can)."""
    if not os.path.exists(SYSTEM_PYTHON):
        return f"needs {SYSTEM_PYTHON} with PyGObject (Debian python3-gi)"
    check = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import Gst; Gst.init(None); "
             "missing = [n for n in ('appsrc', 'x264enc', 'rtph264pay', 'jpegenc', 'rtpjpegpay') "
             "if Gst.ElementFactory.find(n) is None]; assert not missing, missing")
    done = subprocess.run([SYSTEM_PYTHON, "-c", check], capture_output=True, text=True, timeout=30)
    if done.returncode:
        return ("needs gst-rtsp-server and GStreamer plug-ins (Debian gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 "
                f"python3-gi gstreamer1.0-plugins-good/-ugly): {done.stderr.strip().splitlines()[-1:]}")
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspCamera:
    """A real RTSP camera on ``rtsp://127.0.0.1:port/cam`` that can be stopped and started again (same port)."""

    def __init__(self, codec: str = "h264", fps: int = 25, user: str = "", password: str = "",
                 width: int = 160, height: int = 96) -> None:
        reason = unavailable()
        if reason:
            pytest.skip(reason)
        self.port = free_port()
        self.args = ["--codec", codec, "--fps", str(fps), "--width", str(width), "--height", str(height)]
        self.args += ["--user", user, "--password", password] if user else []
        self.proc: subprocess.Popen | None = None

    def url(self, userinfo: str = "", path: str = "/cam") -> str:
        return f"rtsp://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}{path}"

    def start(self) -> "RtspCamera":
        """Start the server and wait until it listens (≤ 10 s; the port may linger a moment after a stop)."""
        deadline = time.monotonic() + 10
        while True:
            self.proc = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), "--port", str(self.port), *self.args],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            line = self.proc.stdout.readline()
            if line.startswith("ready"):
                return self
            self.proc.wait()
            if time.monotonic() > deadline:
                raise RuntimeError(f"rtsp_server.py did not start: {line}{self.proc.stderr.read()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Kill the server: its connections drop as when a camera loses power."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            for stream in (self.proc.stdout, self.proc.stderr):
                stream.close()
            self.proc = None

    def __enter__(self) -> "RtspCamera":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def fake_rtsp_server(answer_describe: bool):
    """An RTSP server on loopback that misbehaves: ``answer_describe`` False accepts connections and never says
    a word; True answers OPTIONS, DESCRIBE (an H.264 SDP), SETUP and PLAY, then never sends one RTP packet (a
    camera whose encoder hung). Yields its ``rtsp://`` URL; connections are held open until the end."""
    server, stop, conns = socket.create_server(("127.0.0.1", 0)), threading.Event(), []
    server.settimeout(0.2)

    def serve(conn: socket.socket) -> None:
        conn.settimeout(0.2)
        data = b""
        while not stop.is_set():
            try:
                chunk = conn.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                return
            data += chunk
            while b"\r\n\r\n" in data:
                request, data = data.split(b"\r\n\r\n", 1)
                conn.sendall(_rtsp_answer(request.decode("latin-1"), server.getsockname()[1]))

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conns.append(conn)
            if answer_describe:
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"rtsp://127.0.0.1:{server.getsockname()[1]}/cam"
    finally:
        stop.set()
        thread.join(2)
        server.close()
        for conn in conns:
            conn.close()


def _rtsp_answer(request: str, port: int) -> bytes:
    """The answer of a camera that plays along but never sends media (RFC 2326 requests, one at a time)."""
    lines = request.split("\r\n")
    method = lines[0].split(" ")[0]
    cseq = next((line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("cseq:")), "0")
    head, body = [f"RTSP/1.0 200 OK", f"CSeq: {cseq}"], ""
    if method == "OPTIONS":
        head.append("Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN")
    elif method == "DESCRIBE":
        # 160x96 H.264 Baseline parameter sets, so FFmpeg knows the picture size without a frame
        body = ("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:stream=0\r\n"
                "a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0LAFdoKNsBagwMDUoAAAAMAgAAAGUeLF1A=,aM48gA==\r\n")
        head += [f"Content-Base: rtsp://127.0.0.1:{port}/cam/", "Content-Type: application/sdp",
                 f"Content-Length: {len(body)}"]
    elif method == "SETUP":
        head.append("Session: 12345678;timeout=60")
        head.append("Transport: RTP/AVP/TCP;unicast;interleaved=0-1")
    elif method == "PLAY":
        head.append("Session: 12345678")
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode("latin-1")


class RtpDropper:
    """An RTSP-over-TCP relay on ``127.0.0.1:port`` in front of a real camera (``upstream``: its port) that
    drops one interleaved RTP packet (RFC 2326 §10.12) of channel 0 (the video), the ``drop``-th of the first
    connection after its join: a camera whose full send buffer dropped a packet, which a real server cannot be
    made to do on demand. Every other byte, RTSP requests and answers included, passes unchanged. ``dropped``:
    the sequence numbers of the packets dropped."""

    def __init__(self, upstream: int, drop: int) -> None:
        self.upstream, self.drop, self.dropped = upstream, drop, []
        self.port = free_port()
        self.sock = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/cam") -> str:
        return f"rtsp://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.sock.accept()
                server = socket.create_connection(("127.0.0.1", self.upstream))
                threading.Thread(target=_relay, args=(client, server, lambda data: [data]), daemon=True).start()
                threading.Thread(target=_relay, args=(server, client, self._filter()), daemon=True).start()

    def _filter(self):
        """The camera-to-client filter of one connection: RTSP answers whole, interleaved packets one by one."""
        pending, count = bytearray(), [0]

        def take(data: bytes) -> list[bytes]:
            pending.extend(data)
            out = []
            while pending:
                if pending[:1] == b"$":
                    if len(pending) < 4 or len(pending) < 4 + int.from_bytes(pending[2:4], "big"):
                        break
                    size = 4 + int.from_bytes(pending[2:4], "big")
                    packet = bytes(pending[:size])
                    del pending[:size]
                    count[0] += packet[1] == 0
                    if packet[1] == 0 and count[0] == self.drop and not self.dropped:
                        self.dropped.append(int.from_bytes(packet[6:8], "big"))
                        continue
                    out.append(packet)
                else:  # an RTSP answer: its headers, then Content-Length bytes of body
                    head_end = pending.find(b"\r\n\r\n")
                    if head_end < 0:
                        break
                    length = next((int(line.split(b":")[1]) for line in pending[:head_end].split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    if len(pending) < head_end + 4 + length:
                        break
                    out.append(bytes(pending[:head_end + 4 + length]))
                    del pending[:head_end + 4 + length]
            return out
        return take

    def close(self) -> None:
        self.sock.close()


def _relay(src: socket.socket, dst: socket.socket, filt) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            for piece in filt(data):
                dst.sendall(piece)
    for end in (src, dst):
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)
