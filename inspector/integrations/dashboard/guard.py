"""Limits for the daemon's HTTP servers (dashboard, metrics): what a network peer sends is untrusted.

A peer must not hold the daemon's threads, file descriptors or memory, nor flood
its log. The rules, one per resource, with the numbers from the section's
``limits`` (:class:`~inspector.pipeline.integration_config.HttpLimits`):

* at most ``max_connections`` open connections, ``max_per_client`` per client
  address: more are closed at once (one peer cannot lock out the others, and
  the daemon keeps file descriptors for its cameras, recorder and sockets);
* a request must arrive complete within ``request_deadline_s`` of the
  connection opening or the previous response (slowloris: a byte every few
  seconds does not extend it);
* a response that the peer does not read for ``write_stall_s`` closes the
  connection (an event stream to a client that never reads: memory stays at
  ``send_buffer_bytes`` in the kernel plus the transport's high-water mark, and the
  connection is released; the kernel's own autotuning would grant megabytes
  per connection and take minutes to notice the stall);
* each kind of complaint is logged once per ``LOG_EVERY_S`` with a count of
  the ones not shown (a constant: the loggers are shared by both servers).

Behind a reverse proxy every connection comes from the proxy: a peer in
``trusted_proxies`` is exempt from the per-address connection cap, and its
requests are capped per client address taken from ``X-Forwarded-For``
(:func:`client_address`); anyone else's ``X-Forwarded-For`` is ignored.
"""

from __future__ import annotations

import collections
import hmac
import ipaddress
import logging
import socket
import struct
import threading
import time

from inspector.config import read_secret
from inspector.errors import ConfigError
from inspector.pipeline.integration_config import HttpLimits

LOG_EVERY_S = 60.0
MIN_TOKEN_CHARS = 16


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


def read_token(token_file: str | None, where: str) -> str | None:
    """The access token in ``token_file`` (None when unset); ConfigError naming ``where`` when short or unreadable."""
    if not token_file:
        return None
    token = read_secret(token_file, where)
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"{where}: {token_file} holds {len(token)} characters; use ≥ {MIN_TOKEN_CHARS} random ones")
    return token


def token_matches(given: str, token: str) -> bool:
    """Constant-time comparison (the time taken must not tell a guesser how many characters were right)."""
    return hmac.compare_digest(given.encode(), token.encode())


def networks(entries) -> tuple:
    """``trusted_proxies`` entries (validated by the config) as ``ipaddress`` networks."""
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def _trusted(host: str | None, trusted: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def client_address(peer: str | None, forwarded_for: list[str], trusted: tuple) -> str:
    """The client a request is from: ``peer`` itself unless ``peer`` is a trusted proxy.

    From a trusted proxy: the right-most ``X-Forwarded-For`` entry that is not itself a trusted proxy
    (each proxy appends the address it saw, so entries left of it may be forged by the client; the
    right-most untrusted one is the first a trusted hop vouches for). All trusted: the left-most.
    ``forwarded_for``: the header's values in order (a header given twice counts as one list).
    """
    peer = peer or ""
    if not trusted or not _trusted(peer, trusted):
        return peer
    hops = [_host_of(h) for value in forwarded_for for h in value.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop[:64]
    return hops[0] if hops else peer


def _host_of(hop: str) -> str:
    """An X-Forwarded-For entry without a port (``1.2.3.4:5678``, ``[2001:db8::1]:443``), as some proxies
    write it: with the port, each connection of one client would count as another client."""
    hop = hop.strip()
    if hop.startswith("["):
        return hop[1:].partition("]")[0]
    return hop.rpartition(":")[0] if hop.count(":") == 1 else hop


class ClientCap:
    """ASGI middleware: at most ``limit`` requests in flight per client address (:func:`client_address`).

    Behind a trusted proxy this is the per-client cap (the connection cap cannot see forwarded addresses);
    a direct client's requests are already fewer than its connections. Over the cap: 429.
    """

    def __init__(self, app, limit: int, trusted: tuple) -> None:
        self.app, self.limit, self.trusted = app, limit, trusted
        self._in_flight: collections.Counter = collections.Counter()  # the event loop's thread only

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        forwarded = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"]
        client = client_address((scope.get("client") or ("",))[0], forwarded, self.trusted)
        if self._in_flight[client] >= self.limit:
            log.warning("dashboard: request refused: over %d in flight for one client address", self.limit)
            return await _too_many(send)
        self._in_flight[client] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self._in_flight[client] -= 1
            if self._in_flight[client] <= 0:
                del self._in_flight[client]


async def _too_many(send) -> None:
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", b"text/plain"), (b"retry-after", b"10")]})
    await send({"type": "http.response.body", "body": b"too many requests from this address\n"})


class ConnectionCount:
    """Open connections, in all and per peer address; a trusted proxy's count only in the total.

    Our own count rather than uvicorn's internal set of connections. Used from one event loop thread.
    """

    def __init__(self, limits: HttpLimits, trusted: tuple) -> None:
        self.limits, self.trusted = limits, trusted
        self.total = 0
        self.per_peer: collections.Counter = collections.Counter()

    def admit(self, peer: str) -> bool:
        """Count a new connection from ``peer``; False (not counted) when it is one too many."""
        proxy = _trusted(peer, self.trusted)
        if self.total >= self.limits.max_connections or (
                not proxy and self.per_peer[peer] >= self.limits.max_per_client):
            return False
        self.total += 1
        self.per_peer[peer] += 1
        return True

    def release(self, peer: str) -> None:
        self.total -= 1
        self.per_peer[peer] -= 1
        if self.per_peer[peer] <= 0:
            del self.per_peer[peer]


def _reset(transport) -> None:
    """Close with a reset, not a FIN: a FIN queues behind unread bytes, and the kernel would keep them
    (and the connection) through minutes of zero-window probes."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _GuardedConnection:
    """The limits, mixed into uvicorn's h11 protocol by :func:`guarded_h11` (``limits``/``count`` set there)."""

    limits: HttpLimits
    count: ConnectionCount

    def connection_made(self, transport) -> None:
        self._deadline = self._stall = self._peer = None
        super().connection_made(transport)
        peer = self.client[0] if self.client else ""
        if not self.count.admit(peer):
            log.warning("dashboard: connection refused: over %d open (%d per client address)",
                        self.limits.max_connections, self.limits.max_per_client)
            _reset(transport)
            return
        self._peer = peer
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.limits.send_buffer_bytes)
        self._arm_deadline()

    def connection_lost(self, exc) -> None:
        self._cancel("_deadline")
        self._cancel("_stall")
        if self._peer is not None:
            self.count.release(self._peer)
            self._peer = None
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
        self._stall = self.loop.call_later(self.limits.write_stall_s, self._close, "response unread for %.0f s",
                                           self.limits.write_stall_s)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel("_stall")

    def _arm_deadline(self) -> None:
        self._cancel("_deadline")
        self._deadline = self.loop.call_later(self.limits.request_deadline_s, self._close,
                                              "no complete request within %.0f s", self.limits.request_deadline_s)

    def _cancel(self, name: str) -> None:
        if (handle := getattr(self, name, None)) is not None:
            handle.cancel()
        setattr(self, name, None)

    def _close(self, why: str, seconds: float) -> None:
        if not self.transport.is_closing():
            log.warning("dashboard: connection closed: " + why, seconds)
            _reset(self.transport)


def guarded_h11(limits: HttpLimits, trusted: tuple = ()):
    """uvicorn's h11 protocol class applying ``limits`` (needs uvicorn); ``trusted``: :func:`networks`.

    uvicorn has no public hook for a per-address cap, a request deadline or a write stall, so this
    subclasses its h11 protocol (passed as ``uvicorn.Config(http=...)``, which takes a class); it uses
    only the attributes it sets itself plus ``cycle``, ``transport``, ``loop`` and ``client``.
    One class per server: its connection count is shared by that server's connections only.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    return type("GuardedH11", (_GuardedConnection, H11Protocol),
                {"limits": limits, "count": ConnectionCount(limits, trusted)})
