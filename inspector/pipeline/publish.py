"""Publisher: the one thread that owns the ZeroMQ socket.

It turns finished frames into events (:mod:`inspector.events` knows the wire
format), stamps ``published``, records stage latencies, publishes camera
status changes and the periodic ``v1/stats`` heartbeat, and hands published
defect frames to the recorder. The socket is an XPUB (subscribers use plain
SUB): a new subscription makes it re-send every camera's current status and
the last stats, so late joiners see state at once. Sends never block: the
send high-water mark bounds memory per subscriber (ZeroMQ drops beyond it, as
PUB does) and every send is counted, and so is every time a subscriber's queue
was found full (:meth:`Publisher.send`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import zmq

from inspector.config import json_safe, needs_ipv6, not_a_file
from inspector.errors import ConfigError
from inspector.events import (MAX_HEADER_BYTES, ConstantFields, Event, InspectionEvent, StatsEvent, StatusEvent, encode,
                              fit_header, header_dict, load_curve_certificate, monitor_socket, set_heartbeat, topic_for,
                              utc_iso)
from inspector.pipeline.batcher import END
from inspector.pipeline.config import PublishSection
from inspector.pipeline.frame import STAGES, Frame
from inspector.pipeline.postprocess import Decider
from inspector.pipeline.recorder import RecorderWorker
from inspector.pipeline.worker import Throttled, Worker, WorkerContext
from inspector.pipeline.telemetry import Counters, LatencyTracker

log = logging.getLogger("inspector.publish")

WAKE = object()  # put on the publisher's inbox to make it drain the status queue now (PublishWorker.wake)
# With nothing to publish, how often the publisher looks for new subscriptions (to re-send the state to a
# late joiner): each idle wake-up costs ~65 µs of CPU (queue wait, socket poll), 3.3 ms per second at 20 ms,
# which at ~75 events/s was a third of the publisher's CPU per event. Status updates wake it at once.
IDLE_POLL_S = 0.1
# The state (statuses, last stats) is re-sent at most this often: the re-send goes to every subscriber, so one
# re-subscribing in a loop would otherwise make it a stream; a joiner waits at most this long for it
RESEND_MIN_S = 0.5
_HURRY_POLL_MS = 100  # how soon a drain notices the second stop signal (``close``'s ``hurry``)
# How long closing waits for queued events to reach connected subscribers (ZMQ_LINGER) when the publisher has
# no ``publish.drain_s`` to go by (a socket closed before the worker ran, in tests).
LINGER_MS = 500
# Subscription messages are untrusted wire data too (a subscriber is any process that can connect). One is 1 byte
# (subscribe / unsubscribe) + a topic prefix; the longest topic a subscriber needs is v1/<type>/<camera> with a
# camera name of at most 64 characters, so a larger message is no subscription: ZeroMQ drops its connection
# (ZMQ_MAXMSGSIZE; a 50 MB one was taken whole into memory). Distinct topics held are tracked up to MAX_TOPICS
# (a few per subscriber in practice); past that every topic is taken as wanted: a subscriber that subscribed
# 10,000 distinct topics a second grew the set without end, and ``wanted`` (a scan of it, per frame) with it.
MAX_SUBSCRIPTION_BYTES = 1024
MAX_TOPICS = 256
IPC_CHECK_S = 1.0  # how often an ipc:// endpoint's socket file is looked at (Publisher.keep_endpoint)


@dataclass
class StatusUpdate:
    """A camera state change travelling to the publisher."""

    camera: str
    state: str
    previous: str | None
    reason: str
    details: dict[str, Any]
    time_utc: str


class Publisher:
    """An XPUB socket bound to ``cfg.endpoint`` (optionally CURVE-secured). Create in any thread, then use
    from one thread only (the publisher worker)."""

    def __init__(self, cfg: PublishSection, context: zmq.Context | None = None) -> None:
        self.cfg = cfg
        # Its own context unless given one (inproc needs the caller's): terminating it is the only way ZeroMQ
        # tells whether the queued events left before the linger ran out (close()).
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.auth = None
        self.sent = 0
        self.send_failed = 0
        self.headers_truncated = 0  # events whose header was cut to MAX_HEADER_BYTES (_fit)
        self.headers_too_large = 0  # events not sent: their header could not be cut to it
        # times a subscriber's queue (sndhwm) was found full, in all and per stream (type, camera): send()
        self.queue_full = 0
        self.queue_full_by_stream: dict[tuple[str, str], int] = {}
        # Topics some subscriber holds now (XPUB passes a subscribe, and an unsubscribe once no subscriber
        # holds the topic any more). Replaced, never mutated, so other threads may read it without a lock.
        self.topics: frozenset[bytes] = frozenset()
        self.topics_overflowed = False  # more than MAX_TOPICS distinct topics seen: every topic is wanted
        sock = self.context.socket(zmq.XPUB)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES)  # inbound: subscription messages only
        sock.setsockopt(zmq.SNDHWM, cfg.sndhwm)
        sock.setsockopt(zmq.LINGER, LINGER_MS)
        sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        sock.setsockopt(zmq.XPUB_NODROP, 1)  # a subscriber's full queue refuses the send: counted (send())
        sock.setsockopt(zmq.IPV6, needs_ipv6(cfg.endpoint))  # tcp://[::1]:… binds only with it (config.py)
        set_heartbeat(sock, cfg.heartbeat_s)  # a subscriber's connection gone dead is dropped, not queued into
        self._monitor = None
        try:
            refuse_if_served(cfg.endpoint)
            if cfg.curve.enabled:
                self._setup_curve(sock)
            if cfg.wait_for_subscribers > 0 and not cfg.endpoint.startswith("inproc://"):
                # from before the bind: a subscriber may connect while the model is still loading
                self._monitor = monitor_socket(sock, zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
            sock.bind(cfg.endpoint)
        except ConfigError:
            self._close_monitor(sock)
            sock.close(0)
            self._stop_auth()
            self._term_context()
            raise
        except zmq.ZMQError as exc:
            self._close_monitor(sock)
            sock.close(0)
            self._stop_auth()
            self._term_context()
            hint = " (another daemon running? choose another port)" if exc.errno == zmq.EADDRINUSE else ""
            raise ConfigError(f"publish.endpoint: cannot bind {cfg.endpoint}: {exc.strerror}{hint}") from None
        self.socket = sock
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        # an ipc:// endpoint's socket file, and the file bound there (keep_endpoint)
        self._ipc = ipc_file(cfg.endpoint)
        self._ipc_id = _file_id(self._ipc) if self._ipc else None
        self._ipc_checked = time.monotonic()
        self._ipc_told: str | None = None  # why the path cannot be served now, told once

    def _setup_curve(self, sock: zmq.Socket) -> None:
        import zmq.auth
        from zmq.auth.thread import ThreadAuthenticator

        if not zmq.has("curve"):
            raise ConfigError("publish.curve: this libzmq has no CURVE support")
        cfg = self.cfg.curve
        if not cfg.server_secret_key or (why := not_a_file(Path(cfg.server_secret_key), "key file")) is not None:
            raise ConfigError(f"publish.curve.server_secret_key: " + (f"{why} (make one with "
                              f"zmq.auth.create_certificates)" if cfg.server_secret_key else "not set"))
        public, secret = load_curve_certificate(cfg.server_secret_key, "publish.curve.server_secret_key")
        if secret is None:
            raise ConfigError(f"publish.curve.server_secret_key: {cfg.server_secret_key} holds no secret key")
        if cfg.allowed_clients_dir and not Path(cfg.allowed_clients_dir).is_dir():  # a file is told as one
            raise ConfigError(f"publish.curve.allowed_clients_dir: folder '{cfg.allowed_clients_dir}' " + (
                "is a file, not a folder" if Path(cfg.allowed_clients_dir).exists() else "not found"))
        for cert in sorted(Path(cfg.allowed_clients_dir).glob("*.key")) if cfg.allowed_clients_dir else ():
            # pyzmq loads the folder at once: one damaged file logged an error and then refused every client
            load_curve_certificate(cert, "publish.curve.allowed_clients_dir: client certificate")
        self.auth = ThreadAuthenticator(self.context)
        self.auth.start()
        self.auth.configure_curve(domain="*", location=cfg.allowed_clients_dir or zmq.auth.CURVE_ALLOW_ANY)
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_server = True

    def send(self, event: Event, header: dict | None = None, constants: ConstantFields | None = None) -> bool:
        """Publish ``event`` (``header``: its :func:`~inspector.events.header_dict`, if already made).

        With payloads, ``copy=False``: payload frames (JPEG, PNG) go to libzmq without a copy (pyzmq copies
        the small topic and header frames anyway, below ``zmq.COPY_THRESHOLD``, where that is cheaper).
        Without (most events), two plain sends: the same message, without ``send_multipart``'s per-part
        Python (measured ~2x less CPU in pyzmq's layer per event).
        """
        parts = encode(event, header, constants)
        if len(parts[1]) > MAX_HEADER_BYTES:  # no subscriber would take it (events.wire_json)
            parts = self._fit(event, header)
            if parts is None:
                return False
        try:
            try:
                self._send_parts(parts)
            except zmq.Again:
                self._send_past_full_queue(event, parts)
            self.sent += 1
            return True
        except zmq.Again:
            self.send_failed += 1
            return False

    def _fit(self, event: Event, header: dict | None) -> list | None:
        """``event``'s frames with its header cut to MAX_HEADER_BYTES (:func:`inspector.events.fit_header`:
        counted in ``headers_truncated``; the header, the same dict the recorder gets, and the event the taps
        get carry ``truncated``), or None when it cannot be: counted in ``headers_too_large`` and
        ``send_failed``, so the event shows in the stats as unsent (daemon_dropped) and is told to subscribers."""
        header = header_dict(event) if header is None else header
        if not fit_header(event, header):
            self.headers_too_large += 1
            self.send_failed += 1
            return None
        self.headers_truncated += 1
        return encode(event, header)

    def _send_parts(self, parts: list) -> None:
        if len(parts) == 2:
            self.socket.send(parts[0], zmq.NOBLOCK | zmq.SNDMORE)
            self.socket.send(parts[1], zmq.NOBLOCK)
        else:
            self.socket.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)

    def _send_past_full_queue(self, event: Event, parts: list) -> None:
        """A subscriber of ``event``'s topic has ``sndhwm`` messages queued: counted (``queue_full``), then sent
        as PUB sends, to the others; zmq.Again if even that fails.

        ZeroMQ drops a message for a subscriber whose queue is full without telling the sender, so a slow
        subscriber's losses were seen only by it, as gaps. With ZMQ_XPUB_NODROP the send is refused instead
        (EAGAIN, nothing queued: libzmq xpub_t::xsend checks the high-water mark of every subscriber the topic
        matches before the first part). Sent again without it, the full queue drops the message and is then
        passed over, dropping every later one unseen, until its subscriber has read half of it (libzmq
        pipe_t low-water mark): so each count is one subscriber falling behind, having missed at least one
        event; its own gaps give the number. One subscriber never holds back the others."""
        key = (event.type, getattr(event, "camera", ""))
        self.queue_full += 1
        self.queue_full_by_stream[key] = self.queue_full_by_stream.get(key, 0) + 1
        self.socket.setsockopt(zmq.XPUB_NODROP, 0)
        try:
            self._send_parts(parts)
        finally:
            self.socket.setsockopt(zmq.XPUB_NODROP, 1)

    def keep_endpoint(self) -> None:
        """Make sure an ``ipc://`` endpoint's socket file is still the one this daemon bound; looked at every
        :data:`IPC_CHECK_S` (a stat), from the worker's loop.

        A socket file deleted while the daemon runs (systemd-tmpfiles removes files in /tmp unused for 10 days;
        a user's rm; a cleanup of /run) could no longer be connected to: every subscriber started since (a
        restarted ``subscribe --save-dir`` service) waited in silence for a daemon that ran on, each event lost
        to it. Now the path is bound again (told; subscribers connected before keep their connection, ZeroMQ's
        listener of the deleted file stays idle). A path taken since by another file or process is left to it,
        told once: this daemon is then unreachable there until restarted. A bind that fails (its folder deleted
        too) is told once and tried again at each look."""
        if self._ipc is None or time.monotonic() - self._ipc_checked < IPC_CHECK_S:
            return
        self._ipc_checked = time.monotonic()
        here = _file_id(self._ipc)
        if here == self._ipc_id:
            return
        if here is not None:
            self._tell_endpoint(f"publish.endpoint: {self._ipc} is no longer this daemon's socket (another file or "
                                f"process took the path); subscribers connecting there cannot reach this daemon "
                                f"until it is restarted")
            return
        try:
            self.socket.bind(self.cfg.endpoint)
        except zmq.ZMQError as exc:
            self._tell_endpoint(f"publish.endpoint: the socket file {self._ipc} was deleted and cannot be made "
                                f"again ({exc.strerror}); subscribers cannot connect until it can (tried every "
                                f"{IPC_CHECK_S:g} s)")
            return
        self._ipc_id, self._ipc_told = _file_id(self._ipc), None
        log.warning("publish.endpoint: the socket file %s was deleted while the daemon ran (a cleaner of /tmp or "
                    "/run?); bound again: subscribers can connect again", self._ipc)

    def _tell_endpoint(self, why: str) -> None:
        if why != self._ipc_told:
            self._ipc_told = why
            log.error("%s", why)

    def poll_subscriptions(self) -> list[bytes]:
        """Subscription messages received since the last call (new topics subscribers asked for)."""
        subs: list[bytes] = []
        # ZMQ_EVENTS, not poll(0): one getsockopt instead of a Poller made per call (this runs per batch and
        # per idle wake-up)
        if not self.socket.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            return subs
        topics = set(self.topics)
        while self.socket.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            msg = self.socket.recv()
            if msg and msg[0] == 1:
                subs.append(msg[1:])
                topics.add(msg[1:])
            elif msg and msg[0] == 0:
                topics.discard(msg[1:])
        if len(topics) > MAX_TOPICS:
            self._too_many_topics()
            topics = set()
        if topics != self.topics:
            self.topics = frozenset(topics)
        return subs

    def _too_many_topics(self) -> None:
        """Past MAX_TOPICS distinct subscriptions: no longer tracked; every topic is wanted from now on (payloads
        are encoded for every frame, as without a subscriber filter). Told once."""
        if not self.topics_overflowed:
            self.topics_overflowed = True
            log.warning("publisher: subscribers hold more than %d distinct topics (a misbehaving subscriber?): "
                        "no longer tracked; every event's payloads are encoded from now on", MAX_TOPICS)

    def wanted(self, topic: str) -> bool:
        """True if some subscriber's subscription (a topic prefix) matches ``topic``. Any thread."""
        raw = topic.encode()
        return self.topics_overflowed or any(raw.startswith(t) for t in self.topics)

    def wait_for_subscription(self, timeout: float) -> bool:
        """Before the worker starts: block until a subscriber's first subscription arrives (tests, demo).

        ZeroMQ's slow-joiner problem: events published before a subscription reached the socket are lost.
        """
        if not self.socket.poll(int(timeout * 1000), zmq.POLLIN):
            return False
        self.poll_subscriptions()
        return True

    def wait_for_subscribers(self, n: int, timeout: float, stop: threading.Event | None = None) -> int:
        """Before the worker starts: block until ``n`` subscribers are connected and subscribed.

        ZeroMQ drops what is published before a subscription has reached the socket (the slow joiner), so an
        offline batch run waits for its subscribers first. A subscriber is counted when its connection
        completed the ZMTP handshake (socket monitor, installed before the bind when
        ``cfg.wait_for_subscribers`` > 0; tcp/ipc) and its subscription message arrived (XPUB); on ``inproc``
        only subscription messages are counted. Returns the number seen (< n after ``timeout`` seconds or
        when ``stop`` is set).
        """
        if n <= 0:
            return 0
        monitored = self._monitor is not None
        peers = subscriptions = 0
        deadline = time.monotonic() + timeout
        while min(peers if monitored else subscriptions, subscriptions) < n:
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                break
            subscriptions += len(self.poll_subscriptions())
            peers += self._peer_changes()
            time.sleep(0.01)
        # a peer that subscribes to several topics sends several messages: let the rest arrive
        settle = time.monotonic() + 0.1
        while time.monotonic() < settle:
            subscriptions += len(self.poll_subscriptions())
            time.sleep(0.01)
        self._close_monitor(self.socket)
        return min(peers, subscriptions, n) if monitored else min(subscriptions, n)

    def _peer_changes(self) -> int:
        from zmq.utils.monitor import parse_monitor_message

        change = 0
        while self._monitor is not None and self._monitor.poll(0):
            event = parse_monitor_message(self._monitor.recv_multipart())["event"]
            change += 1 if event == zmq.EVENT_HANDSHAKE_SUCCEEDED else -1
        return change

    def _close_monitor(self, sock: zmq.Socket) -> None:
        if self._monitor is not None:
            sock.disable_monitor()
            self._monitor.close(0)
            self._monitor = None

    def _stop_auth(self) -> None:
        if self.auth is not None:
            self.auth.stop()
            self.auth = None

    def close(self, drain_s: float | None = None, hurry: threading.Event | None = None) -> bool:
        """Close the socket; events still queued for subscribers get ``drain_s`` seconds (default
        ``cfg.drain_s``) to leave, or until ``hurry`` is set (the operator's second stop signal,
        :data:`inspector.lifecycle.HURRY`). Returns False, after one warning line, when some were still queued then
        (they are lost), a subscriber's connection ended the drain (whatever it had not received is lost) or
        ``hurry`` cut it; True otherwise, or when it cannot tell (a context given by the caller). Raises nothing.

        A slow subscriber's queue used to get a fixed 500 ms and was dropped unsaid. Returns once an ipc path
        is free: ZeroMQ closes in its I/O thread, and a daemon started next in this process would take the
        listener for another daemon (:func:`refuse_if_served`).
        """
        drain_s = self.cfg.drain_s if drain_s is None else drain_s
        self._close_monitor(self.socket)
        drain = monitor_socket(self.socket, zmq.EVENT_DISCONNECTED | zmq.EVENT_MONITOR_STOPPED) \
            if self._own_context else None
        started = time.monotonic()
        self.socket.close(linger=int(drain_s * 1000))
        cut = self._drain_cut_by_a_disconnect(drain, drain_s, hurry)
        self._stop_auth()
        delivered = self._term_context(0.0 if cut else drain_s, started, hurry) and not cut
        self._tell_drain(drain_s, started, cut, delivered, hurry)
        deadline = time.monotonic() + 1.0
        while _served(self.endpoint) and time.monotonic() < deadline:
            time.sleep(0.02)
        return delivered

    def _tell_drain(self, drain_s: float, started: float, cut: bool, delivered: bool,
                    hurry: threading.Event | None) -> None:
        """The one warning line of a drain that did not deliver everything (nothing when it did)."""
        if cut:
            # ZeroMQ tells a disconnect, not whether the peer had read everything: a subscriber that closes
            # right after the final event ends a drain the same way (1 close in 30 in a loopback trial), so the
            # line says what is known, and the subscriber's sequence numbers tell what it missed
            log.warning("publisher: a subscriber's connection ended (it answered no heartbeat, or closed) while "
                        "events were drained: those it had not yet received are lost with it (%d event(s) "
                        "published in all; a subscriber tells which by their sequence numbers)", self.sent)
        elif not delivered and hurry is not None and hurry.is_set():
            log.warning("publisher: a second stop signal ended the drain after %.1f s of %g s (publish.drain_s): "
                        "events still queued for a slow subscriber are lost (%d event(s) published in all)",
                        time.monotonic() - started, drain_s, self.sent)
        elif not delivered:
            log.warning("publish.drain_s: gave up after %g s on events still queued for a slow "
                        "subscriber: they are lost (%d event(s) published in all)", drain_s, self.sent)

    @staticmethod
    def _drain_cut_by_a_disconnect(monitor: zmq.Socket | None, drain_s: float,
                                   hurry: threading.Event | None = None) -> bool:
        """Follow the closed socket's drain on ``monitor`` (closed here) until the socket is gone (ZeroMQ's
        MONITOR_STOPPED: its queues emptied, or its linger ran out), ``drain_s`` (+1 s) passed or ``hurry`` is
        set. True when the drain ended right at a subscriber's disconnect: the socket lingers while events are
        queued, so the connection that ended it may still have had events queued, which ZeroMQ dropped with it.
        A stuck subscriber's connection ended by the heartbeat (3 × publish.heartbeat_s unanswered) ended the
        drain that way, early: its queued events were lost and the daemon said nothing, as if all had been
        delivered."""
        if monitor is None:
            return False
        from zmq.utils.monitor import parse_monitor_message

        deadline, last = time.monotonic() + drain_s + 1.0, None
        try:
            while not (hurry is not None and hurry.is_set()):
                left_ms = int((deadline - time.monotonic()) * 1000)
                if left_ms <= 0:
                    break
                if not monitor.poll(min(left_ms, _HURRY_POLL_MS)):
                    continue
                event = parse_monitor_message(monitor.recv_multipart())["event"]
                if event == zmq.EVENT_MONITOR_STOPPED:
                    return last == zmq.EVENT_DISCONNECTED
                last = event
            return False  # not gone within the drain (or hurried): the term that follows tells
        except zmq.ZMQError:
            return False
        finally:
            monitor.close(0)

    def _term_context(self, drain_s: float = 0.0, started: float | None = None,
                      hurry: threading.Event | None = None) -> bool:
        """Terminate an own context: it returns once every queued message left, or at the linger. Whether it
        returned before ``drain_s`` ran out since ``started`` (monotonic s; default now: the socket's close) and
        before ``hurry`` was set; True for a caller's context (not ours to end, so not known)."""
        if not self._own_context:
            return True
        t0 = time.monotonic() if started is None else started
        # term() blocks until the socket's linger ends; in a thread so that a socket somebody left open
        # (it would block for ever), or a second stop signal, cannot hold the daemon's shutdown past the drain;
        # a term left waiting is a daemon thread, which the process's exit ends (pyzmq does not term at exit)
        ender = threading.Thread(target=self.context.term, name="publish-drain", daemon=True)
        ender.start()
        until = max(0.0, t0 + drain_s - time.monotonic()) + 2.0 + time.monotonic()
        while ender.is_alive() and time.monotonic() < until and not (hurry is not None and hurry.is_set()):
            ender.join(min(_HURRY_POLL_MS / 1000, max(0.0, until - time.monotonic())))
        return not ender.is_alive() and (drain_s <= 0 or time.monotonic() - t0 < drain_s)


def _topic(event: Event) -> bytes:
    return topic_for(event.type, getattr(event, "camera", None)).encode()


def ipc_file(endpoint: str) -> str | None:
    """The socket file of a file-system ``ipc://`` endpoint; None for other transports and abstract ipc."""
    if not endpoint.startswith("ipc://") or endpoint.startswith("ipc://@"):
        return None
    return endpoint[len("ipc://"):]


def _file_id(path: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of what is at ``path`` now (no link followed); None when nothing is."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def refuse_if_served(endpoint: str) -> None:
    """Raise ConfigError when a live process already serves the ``ipc://`` path ``endpoint``.

    Binding an ipc path unlinks an existing socket file, silently stealing the endpoint from a running
    daemon (its subscribers then hear nothing). tcp, inproc and abstract ipc (``ipc://@name``) refuse a
    second bind by themselves (EADDRINUSE). A socket file nobody listens on (a crashed daemon) is reused.
    """
    if _served(endpoint):
        raise ConfigError(f"publish.endpoint: {endpoint} is already served by another process "
                          f"(another daemon running? choose another path)")


def _served(endpoint: str) -> bool:
    """True when something accepts connections on the file-system ``ipc://`` path ``endpoint``.

    False for other transports and when nobody listens (no file, a stale file); a path that cannot be
    probed (too long, permissions) is False too, and the bind reports it.
    """
    if not endpoint.startswith("ipc://") or endpoint.startswith("ipc://@"):
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(endpoint[len("ipc://"):])
    except socket.timeout:  # a listener too busy to accept is still a listener
        return True
    except OSError:  # ECONNREFUSED / ENOENT / ENOTSOCK: nobody there; anything else: the bind will say
        return False
    finally:
        probe.close()
    return True


@dataclass(frozen=True)
class PublishContext:
    """Everything the publisher thread needs besides its queues, given at construction.

    ``model``: the model identity put on every event (name, version, precision, backend, sha256, run_id).
    ``decider``: the decision rule (its thresholds and uncertain band go on each event). ``stats``: returns
    the ``v1/stats`` data the publisher adds its own figures to (counters, rates, CPU: the daemon's
    ``DaemonStats.snapshot``). ``recorder``: receives each published defect and is finished (joined up
    to ``shutdown_timeout_s``) before the final stats, so they count its files. ``taps``: integrations
    (MQTT bridge, dashboard) offered every event. ``late_payloads``: encodes a frame's payloads when a
    subscriber to its topic arrived after postprocessing; None: never.
    """

    publisher: Publisher
    cfg: PublishSection
    model: dict[str, Any]
    decider: Decider
    stats: Callable[[], dict]
    run_id: str = ""
    run_started_utc: str = ""
    recorder: RecorderWorker | None = None
    taps: tuple = ()
    results_payloads: bool = False
    late_payloads: Callable[[Frame], list] | None = None
    shutdown_timeout_s: float = 10.0


class PublishWorker(Worker):
    """Frames and status updates in, events out; heartbeat every ``stats_interval_s``.

    The inbox carries lists of frames (one per inference batch, from the postprocess thread): the per-item
    work of the loop (queue hand-off and wake-up, status drain, subscription poll, clock) is paid per batch,
    not per frame.
    """

    def __init__(self, ctx: PublishContext, inbox: queue.Queue, status_inbox: queue.Queue,
                 stop: threading.Event, counters: Counters, context: WorkerContext | None = None) -> None:
        super().__init__("publisher", stop, context)
        self.ctx = ctx
        self.run_identity = {"run_id": ctx.run_id, "run_started_utc": ctx.run_started_utc}  # on every header
        self.pub, self.inbox, self.status_inbox = ctx.publisher, inbox, status_inbox
        self.model, self.decider, self.cfg, self.counters = ctx.model, ctx.decider, ctx.cfg, counters
        self.results_payloads = ctx.results_payloads
        # the same on every event: made once (headers treat nested values as read-only, events.header_dict)
        self.event_model = {k: v for k, v in ctx.model.items() if k != "run_id"}
        self.constants = ConstantFields(model=self.event_model)
        band = ctx.decider.uncertain_band
        self.event_band = list(band) if band else None
        self.event_id_prefix = f"{ctx.model.get('run_id', 'run')}-"
        # Encodes the payloads of a frame whose topic had no subscriber at postprocessing but has one now
        # (a subscriber that just joined); rare, so it may run on this thread.
        self.late_payloads = ctx.late_payloads
        self._resend_for: set[bytes] = set()  # subscriptions, noted since the last re-send, that cover the state
        self._resend_after = 0.0  # monotonic s before which a due re-send waits (RESEND_MIN_S)
        self.taps = list(ctx.taps)  # integrations.EventTap: MQTT bridge, dashboard (never block)
        self.latency = LatencyTracker(STAGES[1:])
        self._timings_seen: dict | None = None  # _backend_latency: the batch's timings dict last seen …
        self._timings_rounded: dict[str, float] = {}  # … and its rounded header entries
        self.seq: dict[tuple[str, str], int] = {}
        self.sent_events: dict[tuple[str, str], int] = {}  # per stream, events sent (seq - sent = not sent)
        self._offered: list[dict[tuple[str, str], int]] = [{} for _ in self.taps]  # per tap, as sent_events
        self.failed_before_seq: dict[tuple[str, str], int] = {}  # per stream, events whose publishing failed unnumbered
        self.per_camera: dict[str, dict[str, int]] = {}
        self.statuses: dict[str, StatusEvent] = {}
        self.last_stats: StatsEvent | None = None
        self.final_stats: dict | None = None
        self.started = time.monotonic()
        self._throttle = Throttled(log)

    def _next_seq(self, kind: str, camera: str) -> int:
        key = (kind, camera)
        n = self.seq.get(key, 0)
        self.seq[key] = n + 1
        return n

    def loop(self) -> None:
        next_stats = time.monotonic() + self.cfg.stats_interval_s
        ended = False
        try:
            while not ended:
                try:
                    item = self.inbox.get(timeout=min(IDLE_POLL_S, max(next_stats - time.monotonic(), 0.001)))
                    if item is END:
                        ended = True
                    elif item is not WAKE:
                        self._publish_batch(item)
                except queue.Empty:
                    ended = self.broken.is_set()
                self._housekeeping()
                now = time.monotonic()
                if now >= next_stats:
                    next_stats = max(next_stats + self.cfg.stats_interval_s, now)
                    try:
                        self._publish_stats(final=False)
                    except Exception as exc:  # noqa: BLE001 - a stats bug must not stop publishing
                        self.counters.add("stats_errors")
                        self._throttle.warning("stats", "stats heartbeat failed: %r", exc)
        finally:
            self._drain_status()
            try:
                self._finish_recorder()
            except Exception as exc:  # noqa: BLE001
                log.error("before final stats: %r", exc)
            self._publish_stats(final=True)

    def _housekeeping(self) -> None:
        """Once per loop pass: the queued status changes, the ipc endpoint, new subscriptions and the state they
        are re-sent. A ZeroMQ error other than EAGAIN (ETERM, ENOTSOCK …) or an encoding bug in any of them
        escaped the loop and ended the publisher thread: every later defect of the run went unpublished and
        unrecorded while capture and inference ran on. Counted (``publish_errors``), told, and the loop goes on,
        as a frame's publishing failure is (:meth:`_publish_frame`); a status change each on its own
        (:meth:`_drain_status`), so one that fails does not hold back the others queued."""
        self._drain_status()
        try:
            self.pub.keep_endpoint()
            self._note_subscriptions(self.pub.poll_subscriptions())
            if self._resend_for and time.monotonic() >= self._resend_after:
                self._resend_after = time.monotonic() + RESEND_MIN_S
                self._resend_state()
        except Exception as exc:  # noqa: BLE001 - a re-send or socket failure must not stop publishing
            self.counters.add("publish_errors")
            self._throttle.warning("housekeeping", "watching the endpoint and subscriptions, or re-sending the "
                                   "state to a joiner, failed: %r", exc)

    def wake(self) -> None:
        """Any thread: make the loop drain the status queue now instead of at its next idle poll."""
        try:
            self.inbox.put_nowait(WAKE)
        except queue.Full:
            pass  # a full inbox wakes the loop anyway

    def _finish_recorder(self) -> None:
        """Let the recorder write what it holds, so the final stats include its files; what it could not
        write within ``shutdown_timeout_s`` is counted as lost (``recorder.abandoned``) before they are taken."""
        recorder = self.ctx.recorder
        if recorder is not None and recorder.is_alive():
            recorder.finish()
            recorder.join(self.ctx.shutdown_timeout_s)
            if recorder.is_alive():
                recorder.abandon()

    # -- frames -----------------------------------------------------------------------------
    def _publish_batch(self, frames: list[Frame]) -> None:
        """Publish one inference batch's frames; the ``published.*`` counters are added once per batch."""
        published: dict[str, int] = {}
        for frame in frames:
            self._publish_frame(frame, published)
        for kind, n in published.items():
            self.counters.add(f"published.{kind}", n)

    def _publish_frame(self, frame: Frame, published: dict[str, int] | None = None) -> None:
        """``published``: events sent per kind, counted here for the caller to add to the counters (None:
        added to them at once)."""
        kinds: list[str] = []
        numbered: list[str] = []  # kinds given a seq: a failure after it shows as unsent, one before it is counted
        handed: list[str] = []  # kinds whose event ZeroMQ sent or refused (_send returned)
        try:
            cam = frame.camera
            counts = self.per_camera.setdefault(cam, {"processed": 0, "OK": 0, "NG": 0, "uncertain": 0, "error": 0})
            counts["processed"] += 1
            counts[frame.decision or "error"] = counts.get(frame.decision or "error", 0) + 1
            frame.stamp("published")
            latencies = frame.latencies_ms()
            kinds = ([] if frame.decision == "OK" else ["defect"]) + (["result"] if self.cfg.results else [])
            if kinds:  # an OK frame with v1/result off sends nothing: no header to build
                header_latency = {k: round(v, 3) for k, v in latencies.items()}
                header_latency.update(self._backend_latency(frame.backend_ms))
                fields = self._frame_fields(frame, header_latency)  # once per frame, shared by its events
            for kind in kinds:
                self._publish_event(kind, frame, fields, numbered, handed, published)
            self.latency.record(latencies)
            for tap in self.taps:
                if hasattr(tap, "offer_frame") and frame.image.size:  # e.g. the dashboard's newest frame
                    tap.offer_frame(frame)
        except Exception as exc:  # noqa: BLE001 - a bad event never stops publishing
            self.counters.add("publish_errors")
            if len(numbered) > len(handed):  # numbered, then failed before ZeroMQ answered: unsent (_send)
                self.counters.add("publish_unsent", len(numbered) - len(handed))
            for kind in kinds[len(numbered):]:
                key = (kind, frame.camera)
                self.failed_before_seq[key] = self.failed_before_seq.get(key, 0) + 1
            self._throttle.warning("pub", "camera '%s' frame %d: publishing failed: %r",
                                   frame.camera, frame.frame_id, exc)

    def _publish_event(self, kind: str, frame: Frame, fields: dict[str, Any], numbered: list[str], handed: list[str],
                       published: dict[str, int] | None) -> None:
        """Number, send and record ``frame``'s event of ``kind`` (:meth:`_publish_frame`; ``handed``: appended to
        once :meth:`_send` returned). Counted ``published.<kind>`` only when ZeroMQ took it: one it refused was
        counted published and unsent both, so the stats' ``published.defect`` + ``daemon_dropped`` exceeded the
        events numbered. The recorder gets every defect all the same: the evidence is not ZeroMQ's."""
        event = self._event(kind, frame, fields, numbered)
        header = header_dict(event)  # made once: for the wire and for the recorder
        sent = self._send(event, header, self.constants)
        handed.append(kind)
        if sent and published is None:
            self.counters.add(f"published.{kind}")
        elif sent:
            published[kind] = published.get(kind, 0) + 1
        # a part whose picture its source could not decode has no pixels to record or show: its event
        # names the file, which stays where it was (capture.CaptureWorker._tell_unread)
        if kind == "defect" and self.ctx.recorder is not None and frame.image.size:
            self.ctx.recorder.put(frame, header)

    def _backend_latency(self, timings: dict[str, float]) -> dict[str, float]:
        """``{backend_<part>: ms rounded}`` of a frame's backend timings, made once per inference batch.

        Every frame of a batch holds the same timings dict (infer.py makes one per batch and never changes
        it), so the rounded entries are kept for the dict last seen; holding it keeps its identity unique.
        """
        if timings is not self._timings_seen:
            self._timings_seen = timings
            self._timings_rounded = {f"backend_{k}": round(v, 3) for k, v in timings.items()}
        return self._timings_rounded

    def _frame_fields(self, frame: Frame, latency: dict[str, float]) -> dict[str, Any]:
        """The fields a frame's events share (a defect frame has two: ``defect`` and ``result``), made once
        per frame: its header values are read-only (events.header_dict), so both events may hold them."""
        h, w = frame.size
        return dict(
            camera=frame.camera, frame_id=frame.frame_id,
            event_id=f"{self.event_id_prefix}{frame.camera}-{frame.frame_id}",
            decision=frame.decision or "error",
            score=None if frame.score is None or frame.score != frame.score else self.decider.shown(frame.score),
            threshold=self.decider.image_threshold,
            capture={"monotonic_ns": frame.capture_ns, "utc": utc_iso(frame.capture_utc)},
            latency_ms=latency, model=self.event_model,
            regions=[r.to_dict() for r in frame.regions], frame={"width": w, "height": h},
            uncertain_band=self.event_band, source=json_safe(frame.meta), error=frame.error, **self.run_identity)

    def _event(self, kind: str, frame: Frame, fields: dict[str, Any], numbered: list[str]) -> InspectionEvent:
        """``fields``: :meth:`_frame_fields` of ``frame``; ``kind`` is appended to ``numbered`` once it has a seq."""
        seq = self._next_seq(kind, frame.camera)
        numbered.append(kind)
        wants_payloads = kind == "defect" or self.results_payloads
        if wants_payloads and frame.payloads_deferred and self.late_payloads is not None:
            # a subscription that reached the socket since the last poll already receives this event
            self._note_subscriptions(self.pub.poll_subscriptions())
        if wants_payloads and frame.payloads_deferred and self.late_payloads is not None \
                and self.pub.wanted(topic_for(kind, frame.camera)):
            frame.payloads, frame.payloads_deferred = self.late_payloads(frame), False
            self.counters.add("payloads_late")
        payloads = frame.payloads if wants_payloads else []
        return InspectionEvent(type=kind, seq=seq, payloads=payloads, **fields)

    def _send(self, event: Event, header: dict | None = None, constants: ConstantFields | None = None) -> bool:
        """Publish on ZeroMQ, then hand the event to each tap (a failing tap is counted, never fatal). Returns
        whether ZeroMQ took it.

        An event ZeroMQ refused is still offered to the taps: the MQTT bridge and the dashboard have their own
        books (``_offered``, :meth:`_tap_stats`), so it is lost to the ZeroMQ subscribers only, and counted there once
        (``publish_unsent``, ``daemon_dropped.unsent``), never as published (``published.<type>``)."""
        full = self.pub.queue_full
        sent = self.pub.send(event, header, constants)
        key = (event.type, getattr(event, "camera", ""))
        if sent and event.type != "stats":
            self.sent_events[key] = self.sent_events.get(key, 0) + 1
        elif event.type != "stats":
            self.counters.add("publish_unsent")
        if self.pub.queue_full != full:
            self._subscriber_fell_behind(event)
        for i, tap in enumerate(self.taps):
            try:
                tap.offer(self._tap_stats(event, i) if event.type == "stats" else event)
            except Exception as exc:  # noqa: BLE001 - an integration bug must not stop publishing
                self.counters.add("tap_errors")
                self._throttle.warning("tap", "%s: %r", type(tap).__name__, exc)
                continue
            if event.type != "stats":
                self._offered[i][key] = self._offered[i].get(key, 0) + 1
        return sent

    def _tap_stats(self, event: StatsEvent, tap: int) -> StatsEvent:
        """``event`` as tap number ``tap`` tells it: ``data.daemon_dropped`` from the events that tap took.

        The stats' drops are the ZeroMQ subscribers' books; an event ZeroMQ refused reached the MQTT bridge all
        the same, whose consumers were told 'the daemon itself dropped 1 defect event(s) … part of the gaps
        counted' for an event they received, with no gap."""
        dropped = self._daemon_dropped(self._offered[tap])
        if dropped == event.data.get("daemon_dropped"):
            return event
        return dataclasses.replace(event, data={**event.data, "daemon_dropped": dropped})

    # -- status and stats -------------------------------------------------------------------
    def _drain_status(self) -> None:
        """Publish the queued camera status changes. Runs every loop iteration (once per batch) and almost
        always finds none: a look at the queue's deque first, as ``get_nowait`` on an empty queue (lock,
        raise ``queue.Empty``) cost ~14 µs of the publisher's CPU per batch in the daemon (issue 17). A
        status put after the look is seen at the next iteration: the daemon wakes the loop after each put."""
        while self.status_inbox.queue:  # lock-free emptiness check (the GIL orders it after the put)
            try:
                upd: StatusUpdate = self.status_inbox.get_nowait()
            except queue.Empty:
                return
            event = StatusEvent(camera=upd.camera, seq=self._next_seq("status", upd.camera), state=upd.state,
                                previous=upd.previous, reason=upd.reason, time_utc=upd.time_utc,
                                details=json_safe(upd.details), **self.run_identity)
            self.statuses[upd.camera] = event
            try:
                if self._send(event):
                    self.counters.add("published.status")
            except Exception as exc:  # noqa: BLE001 - the queue's other changes, and the run, go on
                self.counters.add("publish_errors")
                self._throttle.warning("status", "camera '%s': publishing its status '%s' failed: %r",
                                       upd.camera, upd.state, exc)

    def _subscriber_fell_behind(self, event: Event) -> None:
        """A subscriber's queue was full at ``event`` (Publisher._send_past_full_queue): counted where the
        operator looks (``publish_subscriber_queue_full`` in the stats' totals and in Prometheus) and logged."""
        self.counters.add("publish_subscriber_queue_full")
        self._throttle.warning("sndhwm", "a subscriber of %s reads slower than the daemon publishes: its queue "
                               "(publish.sndhwm %d) is full, and it misses events until it catches up",
                               topic_for(event.type, getattr(event, "camera", None)), self.cfg.sndhwm)

    def _state(self) -> list[Event]:
        """What a joiner is re-sent: every camera's current status, then the last stats."""
        return [*self.statuses.values(), *([self.last_stats] if self.last_stats is not None else [])]

    def _note_subscriptions(self, subscriptions: list[bytes]) -> None:
        """Keep, for the next re-send, those of ``subscriptions`` (topic prefixes just subscribed) that cover a
        topic of the state. XPUB_VERBOSE passes every subscribe, repeats included, and a re-send reaches every
        subscriber of its topics: a subscriber of defects made all others receive the whole state again, and one
        re-subscribing in a loop made it a stream (cameras + 1 messages to everyone each publisher pass)."""
        for sub in subscriptions:
            if sub not in self._resend_for and any(_topic(event).startswith(sub) for event in self._state()):
                self._resend_for.add(sub)

    def _resend_state(self) -> None:
        """Send the events of the state that the subscriptions noted since the last re-send cover."""
        wanted, self._resend_for = self._resend_for, set()
        for event in self._state():
            if not any(_topic(event).startswith(sub) for sub in wanted):
                continue
            full = self.pub.queue_full
            self.pub.send(event)
            if self.pub.queue_full != full:
                self._subscriber_fell_behind(event)

    def _publish_stats(self, final: bool) -> None:
        data = self.ctx.stats()
        data["latency_ms"] = self.latency.summary() if final else self.latency.window_summary()
        if not final:
            data["latency_ms_cumulative"] = self.latency.summary(["total"])
        for cam, counts in self.per_camera.items():
            data.setdefault("cameras", {}).setdefault(cam, {}).update(counts)
        for cam, status in self.statuses.items():
            data.setdefault("cameras", {}).setdefault(cam, {})["state"] = status.state
        # times a subscriber's queue was full, per stream: each time that subscriber missed ≥ 1 event of it
        data["published"] = {"messages": self.pub.sent, "send_failed": self.pub.send_failed,
                             "headers_truncated": self.pub.headers_truncated,
                             "headers_too_large": self.pub.headers_too_large,
                             "subscriber_queue_full": {f"{kind}/{camera}": n for (kind, camera), n
                                                       in self.pub.queue_full_by_stream.items()}}
        # events published per stream so far (type/camera → count = next seq): a subscriber of v1/stats can
        # tell events lost after the last one it received (the final stats close the run's books)
        data["sequences"] = {f"{kind}/{camera}": n for (kind, camera), n in self.seq.items() if kind != "stats"}
        data["daemon_dropped"] = self._daemon_dropped()
        event = StatsEvent(seq=self._next_seq("stats", ""), time_utc=utc_iso(),
                           uptime_s=round(time.monotonic() - self.started, 3), final=final, data=json_safe(data),
                           **self.run_identity)
        self.last_stats = event
        self._send(event)
        if final:
            self.final_stats = data

    def _daemon_dropped(self, sent: dict[tuple[str, str], int] | None = None) -> dict[str, dict[str, int]]:
        """Events the daemon itself did not send so far, per stream ``<type>/<camera>`` and why, so a subscriber
        tells them from events lost on the way (only streams with drops are listed). ``sent``: the events a sink
        took, per stream (default: ZeroMQ's, :attr:`sent_events`; a tap's: :meth:`_tap_stats`):

        * ``unsent``: numbered but not sent (ZeroMQ refused it, or publishing failed): a gap in ``seq``;
        * ``queue_full``: frames dropped before the publisher (``publish.queue_size`` full): never numbered,
          so no gap shows them (the defect stream counts the frames not OK, the result stream all);
        * ``errors``: publishing failed before the event was numbered: no gap either.

        ZeroMQ's own high-water-mark drops (``publish.sndhwm``, per subscriber) are not here: they are one
        subscriber's, not the daemon's, and not counted one by one (``published.subscriber_queue_full`` counts
        the times a subscriber's queue was full); that subscriber finds them as gaps this does not explain.
        """
        out: dict[str, dict[str, int]] = {}
        sent = self.sent_events if sent is None else sent
        for (kind, camera), n in self.seq.items():
            unsent = n - sent.get((kind, camera), 0)
            if kind != "stats" and unsent > 0:
                out.setdefault(f"{kind}/{camera}", {})["unsent"] = unsent
        for (kind, camera), n in self.failed_before_seq.items():
            out.setdefault(f"{kind}/{camera}", {})["errors"] = n
        for name, n in self.counters.snapshot().items():
            camera, _, what = name.rpartition(".")
            if camera and n and what == "publish_queue_dropped_not_ok":
                out.setdefault(f"defect/{camera}", {})["queue_full"] = n
            elif camera and n and what == "publish_queue_dropped" and self.cfg.results:
                out.setdefault(f"result/{camera}", {})["queue_full"] = n
        return out
