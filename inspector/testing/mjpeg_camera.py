"""A live MJPEG-over-HTTP camera for tests and soak runs: clock-stamped frames at a fixed rate."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np

from inspector.testing.clock_stamp import stamp_frame

_BOUNDARY_HEADER = b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n"


def serve_stamped_mjpeg(conn: socket.socket, base: np.ndarray, fps: float, *, quality: int = 90,
                        timeout_s: float = 30.0, stop: threading.Event | None = None,
                        skip_missed: bool = False) -> None:
    """Answer one HTTP client on ``conn`` with an endless MJPEG stream of ``base`` (H, W, 3 uint8 BGR) stamped
    with the send time (ms, :func:`stamp_frame`), every 1/``fps`` s, until ``stop`` is set or the client goes.

    ``skip_missed``: after a stall (a slow reader), go on at the rate from now, as a live camera does, rather
    than send the missed frames back to back. Closes ``conn``; a socket error ends the stream quietly.
    """
    try:
        conn.settimeout(timeout_s)
        conn.recv(4096)  # the request; its content does not matter
        conn.sendall(_BOUNDARY_HEADER)
        period, due = 1.0 / fps, time.time()
        while stop is None or not stop.is_set():
            time.sleep(max(0.0, due - time.time()))
            due = max(due + period, time.time() - period) if skip_missed else due + period
            jpg = stamp_frame(base, int(time.time() * 1000) & 0xFFFFFFFF, quality=quality)
            conn.sendall(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg)
                         + jpg + b"\r\n")
    except OSError:
        pass
    finally:
        conn.close()
