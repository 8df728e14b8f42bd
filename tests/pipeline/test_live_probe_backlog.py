"""A relayed live stream (tcp://, udp://, http(s)://, srt://, rtp:// …: its bytes fed to the decoding program on
stdin, :func:`inspector.pipeline.ffmpeg_live.live_command`'s ``fed``) is decoded as its frames come, not from a backlog.

The program's probe of a fed MPEG-TS read ``open_timeout_s / 10`` (1 s) of stream before it let the first frame out:
FFmpeg's TS demuxer may add streams at any packet, so that probe never ends on having found the parameters, only at its
limit. Every relayed camera opened 1 s of stream later and read its first ~25 frames from that backlog, 1 s old
(docs/PERFORMANCE.md, benchmarks/bench_live_decoder.py). The camera here sends frame by frame, only as far as the test
says, so the check counts frames, never seconds: frame i must come out once frame i + :data:`LAG` - 1 was sent; the old
probe waited for 25 frames more than were ever sent and the camera did not open. Real H.264 made by the real program,
relayed by the real relays (the ffmpeg program, :mod:`inspector.pipeline.http_relay` for a URL with a password).
Skipped where the ffmpeg program or its libx264 is missing."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from inspector.pipeline import ffmpeg_live
from inspector.pipeline.config import CameraSection, ReconnectSection
from net_faults import free_port
from source_support import decoded

pytestmark = pytest.mark.skipif(not ffmpeg_live.available(), reason="needs the ffmpeg program")
FRAMES = 40
# frames sent up to the one expected out: the TS demuxer hands a PES on when the next one starts, the H.264 parser a
# frame when the next begins, and the probe ends on its fourth packet (measured, FFmpeg 5.1: frames 0 … 3 out of 6
# sent; 5 sent, none out). The 1 s probe needed 25 frames more.
LAG = 6
READ = 10  # frames read in step with the camera
# frame N a flat grey of luma 32 + 5 N: every frame told from every other by its picture alone (testsrc2's moving
# pattern at 64x48 left neighbours closer to each other than to the decoded frame)
_NUMBERED = "color=c=gray:s=64x48:r=25,format=yuv420p,geq=lum='32+5*N':cb=128:cr=128"


def _clip(tmp_path: Path) -> tuple[bytes, list[int], list[np.ndarray]]:
    """(a 64x48 25 fps H.264 MPEG-TS of :data:`FRAMES` numbered frames (:data:`_NUMBERED`), no B-frames, a key frame
    first and every 25; the byte offset in it of each frame's first TS packet; its frames as OpenCV decodes them)."""
    if "libx264" not in subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True,
                                       text=True).stdout:
        pytest.skip("this ffmpeg has no libx264")
    path = tmp_path / "clip.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", _NUMBERED, "-frames:v",
                    str(FRAMES), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-bf", "0", "-threads", "1",
                    "-x264-params", "keyint=25:min-keyint=25:scenecut=0", "-f", "mpegts", str(path)],
                   check=True, stdin=subprocess.DEVNULL, timeout=60)
    listing = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=pos",
                              "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
    starts = [int(p["pos"]) for p in json.loads(listing)["packets"]]
    assert len(starts) == FRAMES
    return path.read_bytes(), starts, decoded(path)


class SteppedCamera:
    """A camera on 127.0.0.1 sending the MPEG-TS ``clip`` to its first connection only as far as :meth:`through`
    says, holding the connection open in between (no end, no more bytes): the newest frame sent is the test's choice.
    ``http``: it answers a GET first (200, ``video/mp2t``), asking for ``user`` ("name:password") when one is given."""

    def __init__(self, clip: bytes, starts: list[int], http: bool = False, user: str = "") -> None:
        self.clip, self.starts, self.http, self.user = clip, starts, http, user
        self._upto, self._closed, self._cond = 0, False, threading.Condition()
        self._server = socket.create_server(("127.0.0.1", free_port()))
        self.port = self._server.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def through(self, frames: int) -> None:
        """Send the clip up to frame ``frames``'s first packet: frames 0 … ``frames`` - 1 whole, none after."""
        with self._cond:
            self._upto = self.starts[frames] if frames < len(self.starts) else len(self.clip)
            self._cond.notify_all()

    def _answer(self, conn: socket.socket) -> bool:
        """Read the GET and answer it; False when it names no (or the wrong) user."""
        request = b""
        while b"\r\n\r\n" not in request and (chunk := conn.recv(4096)):
            request += chunk
        said = {k.strip().lower(): v.strip() for k, _, v in
                (line.partition(b":") for line in request.split(b"\r\n")[1:] if b":" in line)}
        if self.user and said.get(b"authorization") != b"Basic " + base64.b64encode(self.user.encode()):
            conn.sendall(b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="camera"\r\n'
                         b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            return False
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nConnection: close\r\n\r\n")
        return True

    def _serve(self) -> None:
        sent = 0
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            if not self.http or self._answer(conn):
                break
            conn.close()
        with conn, contextlib.suppress(OSError):
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._upto > sent or self._closed)
                    if self._closed:
                        return
                    upto = self._upto
                conn.sendall(self.clip[sent:upto])
                sent = upto

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._server.close()
        self._thread.join(5)


def _closest(image: np.ndarray, truth: list[np.ndarray]) -> int:
    """The index of the frame of ``truth`` that ``image`` is (the least mean difference)."""
    return int(np.argmin([np.abs(image.astype(np.int16) - frame).mean() for frame in truth]))


@pytest.mark.parametrize("scheme", ["tcp", "http", "http with a password"])
def test_a_relayed_streams_frames_come_out_as_they_are_sent_not_from_a_backlog(tmp_path, scheme):
    """Frames 0 … LAG - 1 sent, then nothing: the camera opens (the first frame out is frame 0, the key frame), and
    each next frame sent lets the next one out, in step: frame i read while frame i + LAG - 1 is the newest sent. Was:
    no frame until 1 s of stream (25 frames) had come, so the camera never opened here (no frame within open_timeout_s),
    and a live one opened 1 s late and read its first ~25 frames from a 1 s backlog."""
    clip, starts, truth = _clip(tmp_path)
    user = "op:s3cret" if scheme == "http with a password" else ""
    camera = SteppedCamera(clip, starts, http=scheme != "tcp", user=user)
    url = (f"tcp://127.0.0.1:{camera.port}" if scheme == "tcp" else
           f"http://{user + '@' if user else ''}127.0.0.1:{camera.port}/live.ts")
    assert ffmpeg_live.relayed(url)
    section = CameraSection(name="stepped", source=url, live_decoder="ffmpeg", mode="offline", open_timeout_s=10,
                            read_timeout_s=10, reconnect=ReconnectSection(initial_s=0.5, max_s=1.0))
    source = ffmpeg_live.FullDepthStream(section, None, False, 8, 64, 48)
    seen = []
    try:
        camera.through(LAG)
        source.open()  # its first frame out: waited for up to open_timeout_s
        for i in range(READ):
            grabbed = source.read()
            assert grabbed.image is not None, grabbed.reason
            seen.append(_closest(grabbed.image, truth))
            camera.through(i + 1 + LAG)
    finally:
        source.close()
        camera.close()
    assert seen == list(range(READ)), seen


def test_a_fed_streams_probe_reads_no_backlog_whatever_the_open_timeout():
    """The decoding program's probe of a relayed stream (fed on stdin) ends on its first packets, whatever
    ``analyze_s`` (open_timeout_s / 10); FFmpeg's byte limit is left as it is (a sender's PMT may come seldom), and the
    probe drops nothing it read (no ``-fflags nobuffer``: a 10-bit HEVC stream lost its first key frame). A URL the
    program opens itself (its listing) keeps ``analyze_s``: that probe ends once its parameters are found."""
    for analyze_s in (0.5, 1.0, 360.0):
        cmd = ffmpeg_live.live_command(False, analyze_s, eight_bit=True, fed=True)
        inputs = cmd[:cmd.index("-i")]
        assert cmd[cmd.index("-i") + 1] == "pipe:0"
        assert "-analyzeduration" in inputs and 0 < int(inputs[inputs.index("-analyzeduration") + 1]) < 40_000, cmd
        assert "-probesize" not in inputs and "-fflags" not in cmd, cmd
        listed = ffmpeg_live.live_command(False, analyze_s, eight_bit=True, fed=False)
        assert listed[listed.index("-analyzeduration") + 1] == str(int(analyze_s * 1e6)), listed
