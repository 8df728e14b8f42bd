"""inspector.pipeline.rtsp_probe without an RTSP server: what it says of peers that are no RTSP camera."""

from __future__ import annotations

import socket
import time

from inspector.pipeline.rtsp_probe import why_not_open


def _full_backlog() -> tuple[socket.socket, list[socket.socket]]:
    """A listening socket that never accepts, its backlog filled: Linux drops further SYNs, so a connect to it
    times out as one to a host that does not answer does."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    for _ in range(8):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(server.getsockname())
        fillers.append(c)
    time.sleep(0.2)
    return server, fillers


def test_a_host_that_never_answers_the_connection_is_not_said_to_be_a_hanging_rtsp_server():
    """Connecting timed out and was told as "gave no RTSP answer to DESCRIBE … (not an RTSP server, or it hangs)",
    a server that accepted; the camera could not even be reached."""
    server, fillers = _full_backlog()
    try:
        port = server.getsockname()[1]
        why = why_not_open(f"rtsp://127.0.0.1:{port}/cam", 0.5)
        assert why == f"127.0.0.1:{port} cannot be reached (no answer to connecting within 0.5 s)", why
    finally:
        for c in fillers + [server]:
            c.close()


def test_a_server_that_accepts_and_stays_silent_is_told_as_such():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    try:
        port = server.getsockname()[1]
        why = why_not_open(f"rtsp://127.0.0.1:{port}/cam", 0.3)
        assert why.startswith(f"127.0.0.1:{port} gave no RTSP answer to DESCRIBE"), why
    finally:
        server.close()
