"""Limits for the daemon's HTTP servers (dashboard, metrics): what a network peer sends is untrusted.

A peer must not hold the daemon's threads, file descriptors or memory, nor flood
its log. The rules, one per resource:

* at most ``MAX_CONNECTIONS`` open connections, ``MAX_PER_PEER`` per client
  address: more are closed at once (one peer cannot lock out the others, and
  the daemon keeps file descriptors for its cameras, recorder and sockets);
* a request must arrive complete within ``REQUEST_DEADLINE_S`` of the
  connection opening or the previous response (slowloris: a byte every few
  seconds does not extend it);
* a response that the peer does not read for ``WRITE_STALL_S`` closes the
  connection (an event stream to a client that never reads: memory stays at
  ``SEND_BUFFER`` in the kernel plus the transport's high-water mark, and the
  connection is released; the kernel's own autotuning would grant megabytes
  per connection and take minutes to notice the stall);
* each kind of complaint is logged once per ``LOG_EVERY_S`` with a count of
  the ones not shown.

The numbers are module constants (tests shorten them), not settings: they only
bound abuse and a browser or Prometheus never comes near them.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time

MAX_CONNECTIONS = 256
MAX_PER_PEER = 32
REQUEST_DEADLINE_S = 10.0
WRITE_STALL_S = 30.0
LOG_EVERY_S = 60.0
SEND_BUFFER = 128 * 1024  # bytes of kernel send buffer per connection (SO_SNDBUF)


class ThrottledLog(logging.Filter):
    """A logging filter that lets each distinct message through once per ``LOG_EVERY_S`` seconds.

    The next one shown says how many were held back. Thread-safe (used from uvicorn's
    loop and the metrics server's threads).
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}  # message → (monotonic time shown, suppressed since)

    def filter(self, record: logging.LogRecord) -> bool:
        key = str(record.msg)
        now = time.monotonic()
        with self._lock:
            shown, held = self._last.get(key, (None, 0))
            if shown is not None and now - shown < LOG_EVERY_S:
                self._last[key] = (shown, held + 1)
                return False
            self._last[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} (and {held} more like it in the last {now - shown:.0f} s)"
        return True


def throttled(logger: logging.Logger) -> logging.Logger:
    """``logger`` with one :class:`ThrottledLog` filter attached (idempotent)."""
    if not any(isinstance(f, ThrottledLog) for f in logger.filters):
        logger.addFilter(ThrottledLog())
    return logger


log = throttled(logging.getLogger("inspector.dashboard.guard"))


def _over_cap(client, connections) -> bool:
    """Whether the connection just added to ``connections`` (uvicorn's set of protocols) is one too many."""
    peer = client[0] if client else None
    same = sum(1 for c in list(connections) if getattr(c, "client", None) and c.client[0] == peer)
    return len(connections) > MAX_CONNECTIONS or same > MAX_PER_PEER


def _reset(transport) -> None:
    """Close with a reset, not a FIN: a FIN queues behind unread bytes, and the kernel would keep them
    (and the connection) through minutes of zero-window probes."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def guarded_h11():
    """uvicorn's h11 protocol class with the connection limits above (needs uvicorn)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11(H11Protocol):
        def connection_made(self, transport) -> None:  # type: ignore[override]
            self._deadline = self._stall = None
            super().connection_made(transport)
            if _over_cap(self.client, self.connections):
                log.warning("dashboard: connection refused: over %d open (%d per client address)",
                            MAX_CONNECTIONS, MAX_PER_PEER)
                _reset(transport)
                return
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            self._arm_deadline()

        def connection_lost(self, exc) -> None:
            self._cancel("_deadline")
            self._cancel("_stall")
            super().connection_lost(exc)

        def handle_events(self) -> None:
            before = self.cycle
            super().handle_events()
            if self.cycle is not before:  # a complete request arrived: its handler now owns the time
                self._cancel("_deadline")

        def on_response_complete(self) -> None:
            done = self.cycle
            super().on_response_complete()
            if self.cycle is done and not self.transport.is_closing():
                self._arm_deadline()  # the next request must arrive complete in time too

        def pause_writing(self) -> None:
            super().pause_writing()
            self._cancel("_stall")
            self._stall = self.loop.call_later(WRITE_STALL_S, self._close, "response unread for %.0f s", WRITE_STALL_S)

        def resume_writing(self) -> None:
            super().resume_writing()
            self._cancel("_stall")

        def _arm_deadline(self) -> None:
            self._cancel("_deadline")
            self._deadline = self.loop.call_later(REQUEST_DEADLINE_S, self._close,
                                                  "no complete request within %.0f s", REQUEST_DEADLINE_S)

        def _cancel(self, name: str) -> None:
            if (handle := getattr(self, name, None)) is not None:
                handle.cancel()
            setattr(self, name, None)

        def _close(self, why: str, seconds: float) -> None:
            if not self.transport.is_closing():
                log.warning("dashboard: connection closed: " + why, seconds)
                _reset(self.transport)

    return GuardedH11
