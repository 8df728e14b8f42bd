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
    """Subscribe to ``endpoint`` before any daemon: a silence told with ``reason``; a daemon started: told
    connected, its events printed; the daemon gone (and ``remove`` removed): a silence told again with
    ``gone_reason``; a daemon started again: told connected again, its events printed."""
    cmd = Command(endpoint, "--topic", "v1/status", "--silence-s", "0.5")
    try:
        cmd.wait_for("err: subscribed to")
        first = cmd.wait_for(f"{endpoint}: heard nothing for 0.5 s", reason, "still waiting")
        assert "dropped" not in first
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
    # once per silence, once per connection after it: not repeated while it lasts, not told while heard
    assert _told(lines, "heard nothing") == 2 and _told(lines, "connected to a publisher") == 2, lines


def test_a_tcp_port_nobody_listens_on_is_told_once_and_a_daemon_started_later_is_heard():
    endpoint = f"tcp://127.0.0.1:{PORT}"
    nobody = f"nothing is listening at 127.0.0.1:{PORT}"
    lines = _silence_told_then_connect_then_gone_then_back(endpoint, nobody, nobody)
    assert _told(lines, "heard nothing") == 2 and _told(lines, "connected to a publisher") == 2, lines


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
    assert [n for n in told if "heard nothing" in n] == [
        f"ipc://{path}: heard nothing for 0.3 s (no event, no v1/stats heartbeat): {path} is a socket, but "
        f"nothing accepts on it: the daemon that bound it stopped or died (ZeroMQ leaves the file); still waiting "
        f"(told once a publisher connects)"]


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
