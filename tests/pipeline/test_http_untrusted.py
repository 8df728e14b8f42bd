"""The daemon's HTTP servers (dashboard, Prometheus) against hostile peers on real sockets.

Wire data is untrusted: idle or dripping connections (slowloris), more connections
than the cap, an event-stream client that never reads, and malformed requests must
not hold the daemon's threads or descriptors, stop honest clients from being served,
stop the pipeline, or flood the log. Attackers connect from 127.0.0.2, honest
clients from 127.0.0.1 (both loopback on Linux), so the per-address cap is exercised.
The limits are shortened here (the sections' ``limits`` settings) so that each test takes seconds.
"""

from __future__ import annotations

import importlib.util
import logging
import socket
import threading
import time
import urllib.request

import pytest

from pipeline_support import base_config, free_port

HAVE_LIBS = all(importlib.util.find_spec(m) for m in ("starlette", "uvicorn", "prometheus_client"))
pytestmark = pytest.mark.skipif(not HAVE_LIBS, reason="needs the 'dashboard' and 'metrics' extras")
ATTACKER = "127.0.0.2"


# the stall shows after kilobytes, not a quarter megabyte
SHORT_LIMITS = {"request_deadline_s": 1.0, "write_stall_s": 1.0, "max_per_client": 8, "send_buffer_bytes": 4096}


@pytest.fixture
def short_limits():
    from inspector.integrations.dashboard import guard

    for name in ("inspector.metrics", "inspector.dashboard.guard", "uvicorn.error"):  # forget earlier tests' lines
        for f in logging.getLogger(name).filters:
            if isinstance(f, guard.ThrottledLog):
                f._last.clear()
    return guard


@pytest.fixture
def daemon(tiny_model, endpoint, short_limits):
    from inspector.integrations.runtime import make_daemon
    from inspector.pipeline.config import daemon_config

    camera = {"name": "line1", "source": "synthetic", "fps": 20.0, "mode": "live",
              "synthetic": {"texture": "procedural", "size": 96, "defect_rate": 0.25, "pool": 4}}
    cfg = base_config(tiny_model, endpoint, [camera], postprocess={"min_region_area": 1},
                      dashboard={"listen": f"127.0.0.1:{free_port()}", "push_interval_s": 0.05,
                                 "frame_interval_s": 0.05, "limits": SHORT_LIMITS},
                      metrics={"listen": f"127.0.0.1:{free_port()}", "limits": SHORT_LIMITS})
    d = make_daemon(daemon_config(cfg))
    d.start()
    yield d
    d.request_stop()
    d.wait(timeout=20)


def port_of(daemon, section: str) -> int:
    return int(getattr(daemon.cfg, section).listen.rsplit(":", 1)[1])


def inferred(daemon) -> int:
    return daemon.counters.snapshot().get("inferred_frames", 0)


def get(port: int, path: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        r.read()
        return r.status


def open_idle(port: int, n: int, first: bytes = b"GET / HTTP/1.1\r\n") -> list[socket.socket]:
    """``n`` connections from ATTACKER that send the start of a request and then nothing."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(5)
        s.bind((ATTACKER, 0))
        try:  # a connection over the cap may be reset before connect() or sendall() returns: closed by the server
            s.connect(("127.0.0.1", port))
            s.sendall(first)
        except (ConnectionResetError, BrokenPipeError):
            pass
        socks.append(s)
    return socks


def closed_by_server(s: socket.socket, within: float) -> bool:
    """True when the server closes ``s`` within ``within`` seconds (what it sent before is skipped)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not s.recv(65536):
                return True
        except socket.timeout:
            return False
        except OSError:  # reset
            return True
    return False


def drip(socks: list[socket.socket], seconds: float, every: float = 0.3) -> None:
    """Slowloris: one more header byte on each socket every ``every`` seconds."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for s in socks:
            try:
                s.send(b"X")
            except OSError:
                pass
        time.sleep(every)


@pytest.mark.parametrize("section", ["dashboard", "metrics"])
def test_slowloris_connections_are_capped_and_closed_while_the_pipeline_runs(daemon, section):
    port = port_of(daemon, section)
    path = "/api/state" if section == "dashboard" else "/metrics"
    assert get(port, path) == 200
    threads = threading.active_count()
    before = inferred(daemon)
    socks = open_idle(port, 40)
    try:
        drip(socks, 0.5)
        # beyond the per-address cap (8) the server closes at once; no thread per connection is kept
        assert threading.active_count() <= threads + 8
        assert sum(closed_by_server(s, 0.05) for s in socks) >= 40 - 8
        assert get(port, path) == 200  # an honest client from another address is served during the attack
        # the ones within the cap, still dripping bytes, are closed by the request deadline
        drip(socks, SHORT_LIMITS["request_deadline_s"] + 1.0)
        assert all(closed_by_server(s, 2.0) for s in socks)
        assert inferred(daemon) > before  # the pipeline inspected frames throughout
    finally:
        for s in socks:
            s.close()
    assert get(port, path) == 200


def test_event_stream_client_that_never_reads_is_dropped(daemon):
    port = port_of(daemon, "dashboard")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind((ATTACKER, 0))
    s.connect(("127.0.0.1", port))
    try:
        s.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        t0 = time.monotonic()
        # never read: the server's buffers fill, then after WRITE_STALL_S it closes the stream
        while not _peer_closed(s):
            time.sleep(0.2)
            assert time.monotonic() - t0 < 40, "a never-reading event-stream client was kept for 40 s"
        print(f"never-reading client dropped after {time.monotonic() - t0:.1f} s")
        assert get(port, "/api/state") == 200
    finally:
        s.close()


def _peer_closed(s: socket.socket) -> bool:
    """Whether the peer closed or reset ``s``, without reading what is buffered (TCP_INFO state)."""
    import struct

    state = struct.unpack("B", s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1))[0]
    return state != 1  # 1: TCP_ESTABLISHED; CLOSE_WAIT (8) once the server has closed


@pytest.mark.parametrize("section", ["dashboard", "metrics"])
def test_malformed_requests_are_logged_once_not_per_request(daemon, section, caplog, capfd):
    port = port_of(daemon, section)
    if section == "dashboard":
        for _ in range(30):
            with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(ATTACKER, 0)) as s:
                s.sendall(b"G\x00T /\xff HTTP/1.1\r\nHost: \xff\r\n\r\n")
                s.recv(1000)
    else:  # unfinished requests, each cut by the deadline
        socks = open_idle(port, 8, b"GET /metrics HTTP/1.1\r\n")
        assert all(closed_by_server(s, 3.0) for s in socks)
        for s in socks:
            s.close()
    err = capfd.readouterr().err
    records = [r for r in caplog.records if r.levelname == "WARNING" and r.name.startswith(("uvicorn", "inspector"))]
    lines = len(records) + err.count("Invalid HTTP request") + err.count("Traceback")
    assert 1 <= lines <= 2, (err[-2000:], [r.getMessage() for r in records])
    assert get(port, "/api/state" if section == "dashboard" else "/metrics") == 200
