"""A live MPEG-TS camera on loopback that sends its clip only as far as the test says (:class:`SteppedCamera`), and
the children a process started with what their command lines say (:class:`ChildCommands`): the live relay tests share
them."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from net_faults import free_port
from source_support import decoded

FRAMES = 40
# frames sent up to the one expected out: the TS demuxer hands a PES on when the next one starts, the H.264 parser a
# frame when the next begins, and the probe ends on its fourth packet (measured, FFmpeg 5.1: frames 0 … 3 out of 6
# sent; 5 sent, none out). The 1 s probe needed 25 frames more.
LAG = 6
# frame N a flat grey of luma 32 + 5 N: every frame told from every other by its picture alone (testsrc2's moving
# pattern at 64x48 left neighbours closer to each other than to the decoded frame)
_NUMBERED = "color=c=gray:s=64x48:r=25,format=yuv420p,geq=lum='32+5*N':cb=128:cr=128"


def numbered_clip(tmp_path: Path) -> tuple[bytes, list[int], list[np.ndarray]]:
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




def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (every thread's)."""
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                kids += [int(k) for k in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return kids


class ChildCommands:
    """The command lines of every process this one started (and theirs, on down), but ``senders``' (the test's own
    cameras, known only once started: left out when :attr:`seen` is read), read every 10 ms from /proc while the block
    runs: what any local user reads with ``ps``. Linux only."""

    def __init__(self, senders: set[int] | None = None) -> None:
        self.senders = senders if senders is not None else set()
        self._lines: dict[int, set[str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    @property
    def seen(self) -> set[str]:
        """Each command line met once, its arguments joined by spaces."""
        return {line for pid, lines in self._lines.items() if pid not in self.senders for line in lines}

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            todo = _children(os.getpid())
            while todo:
                pid = todo.pop()
                with contextlib.suppress(OSError):
                    self._lines.setdefault(pid, set()).add(Path(f"/proc/{pid}/cmdline").read_bytes().replace(
                        b"\0", b" ").decode("utf-8", "replace").strip())
                todo += _children(pid)

    def __enter__(self) -> "ChildCommands":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


def has_srt() -> bool:
    """Whether the installed ffmpeg program reads and writes srt://."""
    protocols = subprocess.run(["ffmpeg", "-hide_banner", "-protocols"], capture_output=True, text=True).stdout
    return " srt" in protocols.replace("\n", " ")


@contextlib.contextmanager
def srt_listening(clip: Path, port: int, passphrase: str = ""):
    """An SRT camera: the ffmpeg program listening on 127.0.0.1:``port`` (encrypted with ``passphrase`` when given),
    sending the MPEG-TS file ``clip`` over and over in real time to whoever connects, a new listener after each caller
    left (a probe, then the reader). Yields the set of the listeners' process ids (theirs hold the passphrase)."""
    pids: set[int] = set()
    stop = threading.Event()
    url = f"srt://127.0.0.1:{port}?mode=listener&pkt_size=1316" + (f"&passphrase={passphrase}" if passphrase else "")

    def serve() -> None:
        while not stop.is_set():
            proc = subprocess.Popen(["ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-i", str(clip), "-map",
                                     "0", "-c", "copy", "-f", "mpegts", url], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            pids.add(proc.pid)
            while proc.poll() is None and not stop.wait(0.05):
                pass
            proc.kill()
            proc.wait()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield pids
    finally:
        stop.set()
        thread.join(10)
