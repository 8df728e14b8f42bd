"""A subscriber that hears nothing says so, once, with why; it keeps waiting and says when a publisher connects.

ZeroMQ's connect succeeds without a peer and retries for ever without a word: `inspector subscribe` pointed at an
ipc path that does not exist (a daemon not started, a typo) or a port nobody listens on waited silently for ever.
Real sockets throughout: the command in its own process, a real Publisher (the daemon's socket) bound and closed
under it, sending v1/stats as a daemon's heartbeat does.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from inspector.client import Subscriber
from inspector.events import SILENCE_S, StatsEvent, StatusEvent, utc_iso
from inspector.pipeline.config import PublishSection
from inspector.pipeline.publish import Publisher

REPO = Path(__file__).resolve().parents[1]
PORT = 5731  # within this work's port range; a tcp endpoint nobody listens on until the test binds it


class Heartbeat:
    """A real publisher on ``endpoint`` sending a status once subscribed, then v1/stats every 0.1 s (as a
    daemon's publish.stats_interval_s does) until stopped; the ipc path is gone once stopped."""

    def __init__(self, endpoint: str, camera: str) -> None:
        self.pub = Publisher(PublishSection(endpoint=endpoint))
        self.camera, self.stop = camera, threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        assert self.pub.wait_for_subscription(10.0)
        time.sleep(0.1)
        self.pub.send(StatusEvent(camera=self.camera, seq=0, state="online", previous=None, reason="",
                                  time_utc=utc_iso()))
        seq = 0
        while not self.stop.wait(0.1):
            self.pub.send(StatsEvent(seq=seq, time_utc=utc_iso(), uptime_s=seq / 10, final=False, data={}))
            seq += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.pub.close()


class Command:
    """``inspector subscribe`` in its own process, its stderr and stdout lines collected as they come."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen([sys.executable, "-m", "inspector", "subscribe", *args], env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        self.pos = {"out:": 0, "err:": 0}  # where each stream's next wait_for looks from
        for stream, name in ((self.proc.stdout, "out"), (self.proc.stderr, "err")):
            threading.Thread(target=self._read, args=(stream, name), daemon=True).start()

    def _read(self, stream, name: str) -> None:
        for line in stream:
            self.lines.put(f"{name}: {line.rstrip()}")

    def wait_for(self, *words: str, within: float = 15.0) -> str:
        """The next line, after the one matched last on the same stream, holding every one of ``words`` (the first
        names the stream: 'out:' or else stderr). The two streams are read by two threads: their lines may be
        collected out of the order they were printed in."""
        stream = "out:" if words[0].startswith("out:") else "err:"
        end = time.monotonic() + within
        while True:
            for i in range(self.pos[stream], len(self.seen)):
                if self.seen[i].startswith(stream) and all(w in self.seen[i] for w in words):
                    self.pos[stream] = i + 1
                    return self.seen[i]
            if time.monotonic() > end:
                raise AssertionError(f"no line with {words} within {within} s; seen: {self.seen}")
            try:
                self.seen.append(self.lines.get(timeout=0.1))
            except queue.Empty:
                pass

    def stop(self) -> list[str]:
        """Stop it as Ctrl-C does; every line it printed."""
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=20)
        time.sleep(0.2)  # the readers take the last lines
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return self.seen


def _silence_told_then_connect_then_gone_then_back(endpoint: str, reason: str, gone_reason: str,
                                                   remove: Path | None = None) -> list[str]:
    """Subscribe to ``endpoint`` before any daemon: ``reason`` told at once, as the connection is refused (not
    after the silence); a daemon started: told connected, its events printed; the daemon gone (and ``remove``
    removed): a silence told with ``gone_reason``; a daemon started again: told connected again, its events
    printed."""
    cmd = Command(endpoint, "--topic", "v1/status", "--silence-s", "0.5")
    try:
        cmd.wait_for("err: subscribed to")
        first = cmd.wait_for(f"{endpoint}: {reason}", "still waiting (told once a publisher connects)")
        assert "dropped" not in first and "heard nothing" not in first
        daemon = Heartbeat(endpoint, "cam1")  # started late: still received
        cmd.wait_for(f"{endpoint}: connected to a publisher")
        cmd.wait_for("out:", "cam1")
        time.sleep(1.0)  # its v1/stats keep the subscriber from telling a silence
        daemon.close()  # the daemon goes away mid-run (ipc: ZeroMQ leaves its socket file)
        if remove is not None:
            remove.unlink()
        cmd.wait_for(f"{endpoint}: heard nothing for 0.5 s", "the connection dropped at", gone_reason)
        daemon = Heartbeat(endpoint, "cam2")
        cmd.wait_for(f"{endpoint}: connected to a publisher")
        cmd.wait_for("out:", "cam2")
        time.sleep(1.0)
        daemon.close()
    finally:
        lines = cmd.stop()
    assert cmd.proc.returncode == 0, lines
    return lines


def _told(lines: list[str], what: str) -> int:
    return sum(what in line for line in lines)


@pytest.mark.parametrize("removed", [False, True], ids=["socket-file-left", "socket-file-removed"])
def test_an_ipc_path_that_does_not_exist_is_told_once_and_a_daemon_started_later_is_heard(tmp_path, removed):
    path = tmp_path / "ev.sock"
    gone = f"{path} does not exist" if removed else f"{path} is a socket, but nothing accepts on it"
    lines = _silence_told_then_connect_then_gone_then_back(f"ipc://{path}", f"{path} does not exist", gone,
                                                           remove=path if removed else None)
    # the refusal at once and the silence after the drop, each once; once per connection after them: not repeated
    # while it lasts (the refusal is not told again as a silence), not told while heard
    assert _told(lines, "heard nothing") == 1 and _told(lines, "connected to a publisher") == 2, lines
    assert _told(lines, f"{path} does not exist") == 1 + removed, lines


def test_a_tcp_port_nobody_listens_on_is_told_once_and_a_daemon_started_later_is_heard():
    endpoint = f"tcp://127.0.0.1:{PORT}"
    nobody = f"nothing is listening at 127.0.0.1:{PORT}"
    lines = _silence_told_then_connect_then_gone_then_back(endpoint, nobody, nobody)
    assert _told(lines, "heard nothing") == 1 and _told(lines, "connected to a publisher") == 2, lines
    assert _told(lines, nobody) == 2, lines


def _notices_after(sub: Subscriber, seconds: float) -> list[str]:
    assert sub.recv(timeout=seconds) is None
    return sub.notices()


def test_a_socket_file_nobody_accepts_on_is_told(tmp_path):
    """A socket file left behind by a process that died without removing it: connecting is refused."""
    path = tmp_path / "stale.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nothing listens
    with Subscriber(f"ipc://{path}", silence_s=0.3) as sub:
        told = _notices_after(sub, 1.0)
    assert [n for n in told if str(path) in n] == [
        f"ipc://{path}: {path} is a socket, but nothing accepts on it: the daemon that bound it stopped or died "
        f"(ZeroMQ leaves the file); still waiting (told once a publisher connects)"]


def test_a_connected_publisher_that_sends_nothing_is_told_as_such(tmp_path):
    """Connected, but not even a v1/stats: not a missing daemon; a longer stats interval or a stuck one."""
    pub = Publisher(PublishSection(endpoint=f"ipc://{tmp_path}/ev.sock"))
    try:
        with Subscriber(pub.endpoint, silence_s=0.3) as sub:
            told = [n for n in _notices_after(sub, 1.0) if "heard nothing" in n]
            assert len(told) == 1 and "connected, but the publisher sent nothing" in told[0], told
            pub.send(StatusEvent(camera="c", seq=0, state="online", previous=None, reason="", time_utc=utc_iso()))
            assert sub.recv(timeout=5) is not None
            assert any("heard again after" in n for n in sub.notices())
    finally:
        pub.close()


def test_the_default_delay_is_documented():
    from inspector.cli import build_parser

    args = build_parser(only="subscribe").parse_args(["subscribe", "ipc:///x"])
    assert args.silence_s == SILENCE_S == 5.0
    assert "--silence-s" in (REPO / "README.md").read_text()


# `subscribe --timeout T` with T shorter than --silence-s against an address nothing listens on exited "no event for
# T s" without saying that nothing answers there: ZeroMQ's connect to a dead tcp endpoint is silent. The socket
# monitor's first EVENT_CONNECT_RETRIED (no EVENT_CONNECTED before it) is a refusal, told at once.
REFUSED_PORTS = (5821, 5822)  # nobody listens on them (this work's port range)


@pytest.mark.parametrize("port", REFUSED_PORTS)
def test_a_refused_address_is_told_before_a_short_timeout_runs_out(port):
    endpoint = f"tcp://127.0.0.1:{port}"
    cmd = Command(endpoint, "--timeout", "1.5")  # the default --silence-s: 5 s
    start = time.monotonic()
    try:
        told = cmd.wait_for(f"err: {endpoint}: nothing is listening at 127.0.0.1:{port} (connection refused",
                            "still waiting", within=10.0)
        assert "heard nothing" not in told, told
        cmd.wait_for("err: no event for 1.5 s; exiting", within=10.0)
        assert cmd.proc.wait(timeout=10) == 0
        assert time.monotonic() - start < SILENCE_S  # both came before the silence would have been told
    finally:
        if cmd.proc.poll() is None:
            cmd.stop()


def test_a_refusal_is_not_told_when_silence_lines_are_off():
    with Subscriber(f"tcp://127.0.0.1:{REFUSED_PORTS[0]}", silence_s=0) as sub:
        assert not [n for n in _notices_after(sub, 1.0) if "listening" in n]


def test_a_peer_that_accepts_and_is_no_publisher_is_not_told_as_refused():
    """A TCP connection made (EVENT_CONNECTED) then dropped by a peer that is no ZeroMQ publisher: not "nothing is
    listening"; its own line says what it is."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 5823))
    server.listen(8)
    stop = threading.Event()

    def answer():  # a web server's greeting, then the connection closed
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" + b"x" * 64)
            conn.close()
    thread = threading.Thread(target=answer)
    thread.start()
    try:
        with Subscriber("tcp://127.0.0.1:5823", silence_s=0.5) as sub:
            told = _notices_after(sub, 1.5)
    finally:
        stop.set()
        thread.join()
        server.close()
    assert not [n for n in told if "nothing is listening" in n], told


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_an_ipc_path_that_is_no_socket_is_told_in_one_line_not_again_as_a_silence(tmp_path, kind):
    """The ipc path's own line ("is a regular file, not the socket of a running daemon") and the silence's ("heard
    nothing for 0.3 s: ... is a regular file") told the one finding twice; and the first refusal, told at once,
    made it three when the path turned bad as the subscriber connected."""
    path = tmp_path / "ev.sock"
    path.write_text("not a socket\n") if kind == "file" else path.mkdir()
    with Subscriber(f"ipc://{path}", silence_s=0.3) as sub:
        told = [n for n in _notices_after(sub, 1.2) if str(path) in n]
    assert len(told) == 1 and "not the socket of a running daemon" in told[0], told
