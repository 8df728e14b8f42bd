"""Subscriber API for the daemon's event stream (used by ``inspector subscribe``).

::

    from inspector.client import Subscriber

    with Subscriber("tcp://127.0.0.1:5556", topics=["v1/defect"]) as sub:
        for event in sub:                       # InspectionEvent | StatusEvent | StatsEvent
            print(event.camera, event.decision, event.score, event.regions)

Topics are prefixes cut at levels (``v1/defect`` = every camera's defects, ``v1/`` =
everything, ``v1/defect/cam1`` = camera cam1's, not cam10's: :func:`inspector.events.topic_matches`). The subscriber accounts for what it did not receive, per daemon
run (every header carries ``run_id``, random per daemon start) and per stream
(event type × camera; ``v1/stats`` heartbeats are not counted):

* ``missed_at_start`` — events published before this subscriber heard the run
  (its first ``seq`` of a stream was not 0: a late join, or a slow joiner; or,
  when it hears ``v1/stats``, a subscribed stream it never heard from at all),
  one line per stream; not a camera's status changes before the first one heard
  (superseded: the daemon re-sends the current status to a joiner);
* ``gaps`` — events lost between two received ones (jumps in ``seq``), or after
  the last one received (the final ``v1/stats`` of a run lists each stream's
  published count in ``data.sequences``, when subscribed to it);
* ``restarts`` — new run ids after the first one (a daemon restart: ``seq``
  starts again at 0, which is not a loss);
* ``late`` / ``duplicates`` / ``resets`` — a seq below the stream's highest: a
  missed one arriving out of order (no longer counted lost), the same event
  again (not returned again: the daemon re-sends each camera's status and its
  last ``v1/stats`` to every subscriber whenever one joins, so a late joiner
  learns the state and the others hear each once), or a different event under
  a used seq within one run id (a restart without run ids, two publishers
  sharing one: the stream is counted anew);
* ``missed_while_down`` — after :meth:`LossTracker.resume` from the state an
  earlier subscriber saved (``inspector subscribe --state``): events published
  while no subscriber ran (a daemon restart meanwhile is told as one);
* ``daemon_dropped`` — events the daemon says (``data.daemon_dropped`` of its
  ``v1/stats``) it dropped itself, with the reason: a
  full publisher queue (never numbered: no gap shows them) or not sent; gaps
  beyond those were lost between daemon and subscriber (a ZeroMQ high-water
  mark: the daemon's ``publish.sndhwm`` or this ``rcvhwm``, i.e. a consumer
  reading too slowly, which the daemon counts in its stats'
  ``published.subscriber_queue_full`` and in Prometheus; or a dropped connection). A gap's notice says when it was
  found while this subscriber was reading a backlog of at least half its
  ``rcvhwm`` (it fell behind) or spans a dropped connection;
* ``malformed`` — messages that failed :func:`inspector.events.decode`, skipped.

The subscriber always listens to ``v1/stats`` (they carry the daemon's drops,
each stream's published count and the end of a run), whatever ``topics`` say;
when ``topics`` do not cover them, :meth:`Subscriber.recv` takes them in for
the accounting only and does not return them (``recv(quiet=True)`` does; tell
them apart with :meth:`Subscriber.asked`).

``state``: a file where the accounting is kept across restarts of the
subscriber (:class:`inspector.loss.StateFile`). An event counts as heard there once the caller has
handled it: it calls :meth:`Subscriber.handled`, or asks for the next event; closed before either (a
signal inside ``recv``, or before the event was handled), the state is left as it was before the event,
which the next subscriber then tells as missed. Given
the same file, a new ``Subscriber`` counts ``missed_while_down`` and does not
tell again the daemon drops already told.

``lost`` = ``missed_at_start + gaps + missed_while_down``. :meth:`Subscriber.notices` returns one
line per such finding since the last call (``inspector subscribe`` prints them).
For a CURVE-secured daemon pass the server's public key and this client's
certificate (files made with ``zmq.auth.create_certificates``, or z85 keys).
"""

from __future__ import annotations

import math
import os
import re
import selectors
import stat
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator

import zmq

from inspector.config import needs_ipv6, tcp_port_problem
from inspector.errors import ConfigError
from inspector.silence import SilenceClock
from inspector.events import (HEARTBEAT_S, MAX_PAYLOADS, SILENCE_S, STATS_TOPIC, curve_key, decode, load_curve_certificate,
                              monitor_socket, set_heartbeat, subscription_topic, topic_matches, utc_iso)
from inspector.loss import KeepsState, LossTracker
from inspector.textline import wire_text
from inspector.throttle import Throttle

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"
ENDPOINT = re.compile(r"^(tcp|ipc|inproc|pgm|epgm|ws|wss|vmci)://.+")


def check_endpoint(endpoint: str) -> str:
    """Return ``endpoint`` or raise a one-line ConfigError (e.g. ``localhost:5556`` without a scheme)."""
    if not isinstance(endpoint, str) or not ENDPOINT.match(endpoint):
        # host:port lacks only the scheme; 'udp://…' or 'foo://…' has one, and 'tcp://udp://…' would mislead
        hint = (f" (did you mean tcp://{endpoint}?)" if isinstance(endpoint, str) and ":" in endpoint
                and "://" not in endpoint else "")
        raise ConfigError(f"endpoint '{str(endpoint)[:80]}' is not a ZeroMQ endpoint "
                          f"(tcp://host:port, ipc://path){hint}")
    if not endpoint.isascii() and not _utf8(endpoint):  # ZeroMQ takes UTF-8: connect raised UnicodeEncodeError
        raise ConfigError(f"endpoint '{endpoint[:80]}' is not UTF-8 text (a path of bytes that are not UTF-8?)")
    port_problem = tcp_port_problem(endpoint, bind=False)
    if port_problem:
        raise ConfigError(f"endpoint '{endpoint[:80]}': {port_problem}")
    return endpoint


def _utf8(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8 (no lone surrogate: bytes of a command line that were not UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _load_key(value: str | bytes | Path, what: str, secret: bool = False) -> tuple[bytes, bytes | None]:
    """(public, secret) from a certificate file, or (key, None) for a z85 key string."""
    if isinstance(value, bytes) and len(value) == 40:
        return curve_key(value, what), None
    path = Path(str(value) if not isinstance(value, bytes) else value.decode())
    if path.is_file():
        public, secret_key = load_curve_certificate(path, what)
        if secret and secret_key is None:
            raise ConfigError(f"{path}: {what} needs a secret certificate (the '.key_secret' file)")
        return public, secret_key
    text = str(value)
    if len(text) == 40:
        return curve_key(text.encode(), what), None
    raise ConfigError(f"{what}: '{value}' is neither a certificate file nor a 40-character z85 key")


# Largest message part a subscriber accepts (ZMQ_MAXMSGSIZE; a peer sending more is disconnected). A daemon's
# largest parts are its thumbnail JPEG and heat-map PNG: under 1 MiB at the default sizes, and about 64 MiB
# for 8192-pixel frames, the largest postprocess.thumbnail.max_side allows.
MAX_MESSAGE_BYTES = 128 * 2**20
# What the messages queued in the subscriber (taken from the socket by ZeroMQ's I/O thread, not yet read) may
# hold at most. ZeroMQ bounds its queue in messages (ZMQ_RCVHWM), not bytes: at 10 000 messages of 128 MiB
# parts a rogue publisher sending large valid payloads faster than ``subscribe --save-dir`` saves them could
# make the subscriber hold 1.25 TiB. The high-water mark is derived from this budget and the part cap
# (:func:`queue_hwm`); once the queue is full ZeroMQ stops reading the connection, the publisher's queue to this
# subscriber fills and it drops (a daemon's PUB at publish.sndhwm, 1000 by default): the events dropped show as
# gaps in seq, told and counted like any other. A daemon's events are a few kB, its queue (sndhwm) the slack.
QUEUE_BYTES = 2**30
MAX_RCVHWM = 10_000  # the queue's length in messages at most, however small they are


# An ipc:// endpoint whose path exists but is no socket (a regular file left by a copy, a typo naming a log):
# ZeroMQ's connect fails with ECONNREFUSED and is retried every ZMQ_RECONNECT_IVL without a word, so the
# subscriber waited silently for ever. recv looks at the path every IPC_CHECK_S and tells it at most every
# IPC_TELL_S while it stays so.
IPC_CHECK_S = 1.0
IPC_TELL_S = 30.0


def ipc_path_problem(endpoint: str) -> str | None:
    """What is wrong with an ``ipc://`` endpoint's path for a subscriber (it exists but is no socket), or None
    (a socket; not there yet: a daemon not started; an abstract ``@name``; another transport)."""
    if not endpoint.startswith("ipc://") or endpoint.startswith("ipc://@"):
        return None
    path = endpoint[len("ipc://"):]
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISSOCK(mode):
        return None
    kind = ("a regular file" if stat.S_ISREG(mode) else "a directory" if stat.S_ISDIR(mode)
            else "not a socket")
    return (f"{endpoint}: {path} is {kind}, not the socket of a running daemon; waiting for a daemon to "
            f"bind it (told again every {IPC_TELL_S:g} s while it stays so)")


def _ipc_file(path: str) -> str:
    """What is at an ipc endpoint's path, as a reason for silence (or "" for a socket)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return (f"{path} does not exist: no daemon has bound it (not started, stopped, or another path: a typo, "
                f"a different publish.endpoint)")
    except OSError as exc:
        return f"{path} cannot be looked at ({exc.strerror})"
    if stat.S_ISSOCK(mode):
        return ""
    kind = "a regular file" if stat.S_ISREG(mode) else "a directory" if stat.S_ISDIR(mode) else "no socket"
    return f"{path} is {kind}, not a daemon's socket"


class Silence(SilenceClock):
    """Tells, once, that a subscriber has heard nothing at all for ``silence_s`` seconds, with what it waits on and
    the likely reason, taken from the socket monitor's connection events (libzmq zmq_socket_monitor(3):
    EVENT_CONNECT_RETRIED = refused or no peer, EVENT_HANDSHAKE_SUCCEEDED = a publisher answered,
    EVENT_DISCONNECTED = it went away) and, for ipc, from the path itself; then tells once when a publisher
    connects (or a message comes) again, after which a new silence is told again. ``silence_s`` 0: never.

    A connection refused before any was made (nothing listening at a tcp address, an ipc path missing or no one
    accepting on it) is told at once, when ZeroMQ first retries, and stands for the silence (not told again): a
    ``subscribe --timeout`` shorter than ``--silence-s`` exited "no event" without a word of why."""

    def __init__(self, endpoint: str, silence_s: float) -> None:
        super().__init__(endpoint, silence_s)
        self.endpoint = endpoint
        self.link: str | None = None  # the last connection outcome: None (none yet), retrying, connected, dropped
        self.dropped_utc: str | None = None  # when a connection last dropped
        self.reached = False  # a TCP/ipc connection was made (a peer answered), whatever its handshake

    def monitor(self, event: int) -> str | None:
        """Follow a monitor event; the line telling a publisher connected after a silence told, if one was."""
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.link = "connected"
            if self.told:
                self.told, self.heard_at = False, time.monotonic()  # silent from here on: told again
                return f"{self.endpoint}: connected to a publisher (at {utc_iso()})"
        elif event == zmq.EVENT_DISCONNECTED:
            self.link, self.dropped_utc = "dropped", utc_iso()
        elif event == zmq.EVENT_CONNECTED:
            self.reached = True
        elif event == zmq.EVENT_CONNECT_RETRIED and self.link != "connected":
            first, self.link = self.link is None and not self.reached, "retrying"
            # refused before ever connecting: said at once, unless the ipc path is no socket (its own line says so)
            if first and self.silence_s and not self.told and ipc_path_problem(self.endpoint) is None:
                self.told = True
                return f"{self.endpoint}: {self._reason(False)}; still waiting (told once a publisher connects)"
        return None

    def told_elsewhere(self) -> None:
        """Why nothing is heard was just told by another rule (the ipc path is no socket: ``_check_ipc_path``):
        that line stands for the silence, not told again in a second one (both said "is a regular file")."""
        if self.silence_s:
            self.told = True

    def check(self, handshake_failed: bool) -> str | None:
        """The line telling the silence, when it is due (once)."""
        if self.due_in() != 0.0:
            return None
        self.told = True
        dropped = f"the connection dropped at {self.dropped_utc}; " if self.dropped_utc else ""
        return (f"{self.endpoint}: heard nothing for {self.silence_s:g} s (no event, no v1/stats heartbeat): "
                f"{dropped}{self._reason(handshake_failed)}; still waiting (told once a publisher connects)")

    def _reason(self, handshake_failed: bool) -> str:
        """Why nothing is heard, from the connection's state and (ipc) the path."""
        if handshake_failed:
            return "the peer there is no ZeroMQ publisher (its handshake failed)"
        if self.link == "connected":
            return ("connected, but the publisher sent nothing, not even the v1/stats a daemon sends every "
                    "publish.stats_interval_s (1 s by default): a longer interval (raise --silence-s) or a stuck "
                    "daemon")
        if self.endpoint.startswith("ipc://") and not self.endpoint.startswith("ipc://@"):
            path = self.endpoint[len("ipc://"):]
            return _ipc_file(path) or (f"{path} is a socket, but nothing accepts on it: the daemon that bound "
                                       f"it stopped or died (ZeroMQ leaves the file)")
        where = self.endpoint.split("://", 1)[-1]
        if self.endpoint.startswith("tcp://"):
            return (f"nothing is listening at {where} (connection refused; daemon not started, stopped, or "
                    f"another host or port)" if self.link == "retrying" else
                    f"no answer from {where} yet (a host down, or a firewall dropping the packets?)")
        return "no publisher has connected"


# Parts of a message kept at most: a daemon's message is its topic, its header and at most MAX_PAYLOADS payloads
# (inspector.events.decode). ZeroMQ caps each part's size, not their number: a publisher sending a message of
# thousands of parts made recv_multipart copy every one of them into Python (twice what libzmq already held).
MAX_PARTS = 2 + MAX_PAYLOADS
# Payloads a daemon's event carries at most (thumbnail, anomaly map: pipeline.postprocess), each one part of at most
# max_message_bytes. ZMQ_MAXMSGSIZE caps each part alone: MAX_PARTS parts of 128 MiB (1.3 GiB) were copied into
# Python as one message, and decode() took 8 payloads of 128 MiB each.
DAEMON_PAYLOADS = 2


def payload_bytes_at_most(max_message_bytes: int) -> int:
    """What one message's payload parts (those after its topic and header) may hold together (bytes):
    :data:`DAEMON_PAYLOADS` parts of ``max_message_bytes``. The header is bounded by events.decode."""
    return DAEMON_PAYLOADS * max_message_bytes


def queue_hwm(queue_bytes: int, max_message_bytes: int) -> int:
    """ZMQ_RCVHWM (messages) that keeps the receive queue within ``queue_bytes`` when every message is one part of
    ``max_message_bytes`` at most (a daemon's large payload; its header and topic are small): at least 1, at most
    :data:`MAX_RCVHWM`. ZeroMQ caps each part, not a message's part count: a message of many large parts exceeds
    the budget by that factor (decode() then skips it); only CURVE (``server_key``) keeps unknown peers out."""
    return max(1, min(MAX_RCVHWM, queue_bytes // max(1, max_message_bytes)))


# Monitor events of a failed ZMTP handshake (libzmq zmq_socket_monitor(3)).
HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
# After a dropped connection, how long to wait for ZeroMQ's own retry (every ZMQ_RECONNECT_IVL, 100 ms)
# before connecting again ourselves.
RECONNECT_CHECK_S = 0.5
# Least time between two tendings of the socket by the keeper thread (Subscriber._keep): bounds its CPU use
# should the socket's file descriptor stay readable.
KEEP_MIN_S = 0.01
# A backlog (half of rcvhwm read back to back) still explains a gap found this long after it ended
# (Subscriber._backlog_hint): ZeroMQ's I/O thread refilling the queue mid-backlog leaves it empty for a moment.
BEHIND_S = 1.0


class Subscriber(KeepsState):
    """A SUB socket connected to a daemon, yielding typed events (of ``topics``; see the module docstring for
    the ``v1/stats`` always heard and for ``state``).

    ``max_message_bytes``: a publisher that sends a larger message part is disconnected by ZeroMQ
    (ZMQ_MAXMSGSIZE, libzmq zmq_setsockopt(3)); a legitimate daemon reconnects. ZeroMQ caps each part alone: a
    message whose payloads hold more than :func:`payload_bytes_at_most` together, or of more than
    :data:`MAX_PARTS` parts, is skipped as malformed (:meth:`_read_parts`). ``queue_bytes``: what the
    messages queued unread may hold (bytes); the queue's length (``rcvhwm``, messages) is derived from it
    (:func:`queue_hwm`) unless given, so a rogue publisher cannot make the subscriber hold more than about
    ``rcvhwm`` × ``max_message_bytes`` bytes; what the publisher drops meanwhile shows as gaps.

    ``heartbeat_s``: the daemon is pinged this often (seconds); a connection silent for three of them is taken
    for dead, dropped and connected again (:func:`inspector.events.set_heartbeat`), and the first gap after it
    says so. 0: ZeroMQ's default, no heartbeat.

    ``silence_s``: after this many seconds without any message (not even a ``v1/stats``), one notice says what
    the subscriber waits on and why (:class:`Silence`; default :data:`SILENCE_S`); it keeps waiting, and tells
    once when a publisher connects. 0: never told.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, topics: Iterable[str] = ("v1/",), *,
                 server_key: str | bytes | Path | None = None, client_cert: str | Path | None = None,
                 rcvhwm: int | None = None, max_message_bytes: int = MAX_MESSAGE_BYTES,
                 queue_bytes: int = QUEUE_BYTES,
                 heartbeat_s: float = HEARTBEAT_S, silence_s: float = SILENCE_S,
                 context: zmq.Context | None = None, state: str | Path | None = None) -> None:
        self.endpoint = check_endpoint(endpoint)
        topics = [subscription_topic(t) for t in topics] or [""]  # one that selects nothing: one line, here
        self.context = context or zmq.Context.instance()
        self.socket = self.context.socket(zmq.SUB)
        rcvhwm = queue_hwm(queue_bytes, max_message_bytes) if rcvhwm is None else rcvhwm
        self.socket.setsockopt(zmq.RCVHWM, rcvhwm)
        self.rcvhwm, self._backlog = rcvhwm, 0  # _backlog: messages read back to back, more queued behind each
        self._behind: tuple[float, int] | None = None  # (when, how many back to back) a backlog last counted
        self.socket.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.IPV6, needs_ipv6(endpoint))  # tcp://[::1]:… connects only with it
        set_heartbeat(self.socket, heartbeat_s)  # a connection gone dead without a word is found and replaced
        if server_key is not None or client_cert is not None:
            self._setup_curve(server_key, client_cert)
        self.topics = topics
        # stats not asked for are heard quietly: a user of other topics learns the daemon's drops too
        self.quiet_stats = not any(topic_matches(t, STATS_TOPIC) for t in topics)
        for topic in topics + ([STATS_TOPIC] if self.quiet_stats else []):
            self.socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        # the monitor before connecting: a publisher already there is connected within a millisecond, and a
        # connection made before the monitor exists is never told (a silence then took it for none at all)
        self._monitor = monitor_socket(
            self.socket, zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_CONNECTED | HANDSHAKE_FAILED
            | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        try:
            self.socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self.socket.disable_monitor()
            self._monitor.close(0)
            self.socket.close(0)
            raise ConfigError(f"endpoint '{endpoint[:80]}': cannot connect ({exc.strerror})") from None
        self.received = 0
        self.malformed = 0
        self._malformed_told = Throttle("malformed message(s) skipped")  # a flood of them is no flood of lines
        self.loss = LossTracker(topics)
        self.max_message_bytes = max_message_bytes
        self._handshake_failed = False  # told once until a handshake succeeds
        self._silence = Silence(self.endpoint, silence_s)
        self._dropped_at: float | None = None  # when the connection dropped, until ZeroMQ retries
        self._stopping = False  # close() ends the keeper thread
        self._poller = zmq.Poller()
        self._poller.register(self.socket, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
        try:
            self._open_state(state, self.endpoint)
        except ConfigError:  # another's state file: refused before anything is heard
            self.socket.disable_monitor()
            self._monitor.close(0)
            self.socket.close(0)
            raise
        self._ipc_checked = self._ipc_told = -float("inf")  # monotonic times of the last check / notice
        self._check_ipc_path()
        self._start_keeper()

    def _check_ipc_path(self) -> None:
        """Tell (at most every IPC_TELL_S) that the ipc endpoint's path is no socket; looked at every IPC_CHECK_S."""
        now = time.monotonic()
        if now - self._ipc_checked < IPC_CHECK_S:
            return
        self._ipc_checked = now
        problem = ipc_path_problem(self.endpoint)
        if problem is None:
            self._ipc_told = -float("inf")  # told at once should it turn bad again
        elif now - self._ipc_told >= IPC_TELL_S:
            self._ipc_told = now
            self.loss.note(problem)
            self._silence.told_elsewhere()

    # the state kept in a StateFile (KeepsState): the loss tracker's
    def state(self) -> dict:
        return self.loss.state()

    def resume(self, state: object, saved_utc: str = "?") -> None:
        self.loss.resume(state, saved_utc)

    def heard(self) -> str:
        return self.loss.heard()

    def _tell(self, line: str | None) -> None:
        if line:
            self.loss.note(line)

    def covers(self, event: Event) -> bool:
        """Whether ``event`` is of ``topics`` cut at levels (:func:`inspector.events.topic_matches`), or a
        ``v1/stats`` (always heard). ZeroMQ filters by byte prefix, so it delivers camera ``cam10`` to a
        subscriber of ``v1/defect/cam1``."""
        return event.type == "stats" or any(topic_matches(t, event.topic) for t in self.topics)

    def asked(self, event: Event) -> bool:
        """Whether ``event`` is of the topics asked for (False: a ``v1/stats`` heard for the accounting only)."""
        return not (self.quiet_stats and event.type == "stats")

    @property
    def gaps(self) -> int:
        """Events lost between two received ones (see the module docstring for the other counts)."""
        return self.loss.gaps

    @property
    def missed_at_start(self) -> int:
        return self.loss.missed_at_start

    @property
    def restarts(self) -> int:
        return self.loss.restarts

    @property
    def lost(self) -> int:
        return self.loss.lost

    def notices(self, final: bool = False) -> list[str]:
        """Lines about missed events, restarts and skipped malformed messages since the last call (malformed ones
        a few at a time, the rest counted in one line once its window ends: :class:`~inspector.throttle.Throttle`;
        ``final``: now)."""
        for line in self._malformed_told.due(final):
            self.loss.note(line)
        return self.loss.notices()

    def _setup_curve(self, server_key, client_cert) -> None:
        missing = None
        if server_key is None:  # a certificate alone was ignored: the user believed the connection encrypted
            missing = ("CURVE: a client certificate without the server key (--server-key, the daemon's public key) "
                       "encrypts nothing; give both, or neither")
        elif client_cert is None:
            missing = "CURVE: a client certificate (secret key file) is needed along with the server key"
        if missing:
            self.socket.close()  # the Subscriber is never made: nothing else would close it
            raise ConfigError(missing)
        server_public, _ = _load_key(server_key, "server key")
        public, secret = _load_key(client_cert, "client certificate", secret=True)
        self.socket.curve_serverkey = server_public
        self.socket.curve_publickey = public
        self.socket.curve_secretkey = secret

    def recv(self, timeout: float | None = None, quiet: bool = False) -> Event | None:
        """The next event, or None after ``timeout`` seconds (None: wait forever). Malformed messages are
        counted and skipped; they do not restart the wait, so a stream of garbage cannot hold off the timeout;
        nor do the ``v1/stats`` heard quietly (not of ``topics``), returned only with ``quiet``."""
        with self._lock:  # the keeper thread tends the socket only while no recv does
            return self._recv(timeout, quiet)

    def _recv(self, timeout: float | None, quiet: bool) -> Event | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._save_taken()  # the event returned before is handled by now; skipped ones too
            ready = dict(self._poller.poll(self._poll_ms(deadline)))
            if self._monitor in ready:
                self._read_monitor()
            if self.socket not in ready:
                self._reconnect_if_abandoned()
                self._check_ipc_path()
                self._tell(self._silence.check(self._handshake_failed))
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                continue
            self._unhandled = True  # from here until handled: a stop now leaves it out of the state saved
            self._tell(self._silence.heard())  # any message, even a malformed one: a publisher is there
            frames, dropped, payload_bytes = self._read_parts()
            self._backlog_hint()
            try:
                self._check_size(len(frames) + dropped, dropped, payload_bytes)
                event = decode(frames)
            except ValueError as exc:
                self.malformed += 1
                for line in self._malformed_told.take(f"skipped a malformed message: {wire_text(exc, 160)}"):
                    self.loss.note(line)  # it quotes wire bytes (note makes it one line)
                continue
            if not self.covers(event):
                continue  # a byte-prefix match across a name (cam10 for v1/defect/cam1): not asked, not accounted
            self._state_dirty = True
            if not self.loss.observe(event):
                continue  # heard already: the status and stats the daemon re-sends when another subscriber joins
            if not (quiet or self.asked(event)):
                continue
            self.received += 1
            return event

    def _poll_ms(self, deadline: float | None) -> int | None:
        """How long the next poll may wait (ms; None: for ever): until ``deadline`` (monotonic), and short enough
        to look again at a dropped connection, an ipc path, or a silence coming due."""
        wakes = [RECONNECT_CHECK_S if self._dropped_at is not None else None,  # is ZeroMQ reconnecting by itself
                 IPC_CHECK_S if self.endpoint.startswith("ipc://") else None,  # _check_ipc_path
                 self._silence.due_in(),
                 None if deadline is None else max(0.0, deadline - time.monotonic())]
        left = min((w for w in wakes if w is not None), default=None)
        return None if left is None else math.ceil(left * 1000)  # not 0 ms before it is due: no spin

    def _read_parts(self) -> tuple[list[bytes], int, int]:
        """The parts of the message ready on the socket: (those kept, how many more were taken one by one and
        dropped, the bytes of its payload parts). Parts are kept while they are at most :data:`MAX_PARTS` and
        the payloads hold :func:`payload_bytes_at_most` together; every part is taken (a multipart message is delivered whole or
        not at all, so all must be taken before the next message can be read), each looked at in libzmq's
        buffer (copy=False) and copied into Python only when kept. libzmq itself holds the whole message in its
        queue until it is read (it shows none of its parts before its last has arrived): these limits bound
        what this subscriber copies and parses, not what ZeroMQ queues; only CURVE keeps unknown peers out."""
        frames: list[bytes] = []
        dropped = payload_bytes = 0
        budget = payload_bytes_at_most(self.max_message_bytes)
        more, flags = True, zmq.NOBLOCK  # the first part is there (polled); the rest of its message too
        while more and len(frames) < 2:  # topic and header, always kept: copied as they come (a Frame costs more)
            frames.append(self.socket.recv(flags))
            flags, more = 0, bool(self.socket.getsockopt(zmq.RCVMORE))
        while more:
            part = self.socket.recv(copy=False)  # a payload: not copied into Python until kept
            payload_bytes += len(part)
            if not dropped and len(frames) < MAX_PARTS and payload_bytes <= budget:
                frames.append(part.bytes)
            else:
                dropped += 1  # libzmq frees it as the frame goes
            more = part.more
        return frames, dropped, payload_bytes

    def _check_size(self, parts: int, dropped: int, payload_bytes: int) -> None:
        """ValueError (the message is skipped as malformed, told through the throttle) when :meth:`_read_parts`
        dropped parts of it: more than :data:`MAX_PARTS`, or payloads over :func:`payload_bytes_at_most`."""
        if not dropped:
            return
        if parts > MAX_PARTS:
            raise ValueError(f"{parts} parts, more than a daemon's {MAX_PARTS} (topic, header, {MAX_PAYLOADS} "
                             f"payloads); {dropped} dropped")
        raise ValueError(f"{parts - 2} payloads of {payload_bytes:,} bytes in all, more than a daemon's "
                         f"{payload_bytes_at_most(self.max_message_bytes):,} ({DAEMON_PAYLOADS} payloads of "
                         f"--max-message-mib {self.max_message_bytes / 2**20:g}); dropped")

    def _backlog_hint(self) -> None:
        """Why a gap in the message just read happened, from how far behind this subscriber was (set as the
        loss tracker's hint). Over tcp/ipc a full SUB queue (``rcvhwm``) does not drop: ZeroMQ stops reading,
        the socket buffers fill, and the daemon's PUB drops at its per-subscriber ``publish.sndhwm`` (libzmq
        stream engine and dist/pipe code; seen here: a subscriber with rcvhwm 100 reading slower than the
        daemon sent found every gap after ≥ 200 messages read back to back). A queue seen full may hold half
        of its high-water mark (libzmq tells the writer of reads in batches of half of it), so a run of that
        many read back to back is a backlog. It counts for :data:`BEHIND_S` after the run ends: the queue is
        refilled from the socket buffers by ZeroMQ's I/O thread, and on a busy machine the reader found it
        empty for a moment in the middle of a backlog — the run restarted from 0, and the gap found just after
        went unlabelled. A gap found later, once the reader has kept up for that long, is not labelled: messages
        dropped at the end of a burst show as a gap only at the next message, which may come after the reader
        caught up."""
        run = self._backlog
        self._backlog = run + 1 if self.socket.getsockopt(zmq.EVENTS) & zmq.POLLIN else 0
        now = time.monotonic()
        if self.rcvhwm and run >= max(1, self.rcvhwm // 2):
            self._behind = (now, max(run, self._behind[1] if self._behind and now - self._behind[0] <= BEHIND_S
                                     else 0))
        recent = self._behind is not None and now - self._behind[0] <= BEHIND_S
        self.loss.hint = (
            f" while this subscriber was behind ({self._behind[1]} message(s) read back to back, rcvhwm "
            f"{self.rcvhwm}): it reads slower than the daemon publishes, and the daemon's queue to it "
            f"(publish.sndhwm) overflowed" if recent else "")

    def _read_monitor(self) -> None:
        """Note a dropped connection, and forget it once ZeroMQ retries or reconnects by itself."""
        from zmq.utils.monitor import recv_monitor_message

        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)["event"]
            self._tell(self._silence.monitor(event))
            if event & HANDSHAKE_FAILED:
                self._tell_handshake_failed(event)
            elif event == zmq.EVENT_DISCONNECTED:
                self._dropped_at = time.monotonic()
                # what the daemon publishes until the connection is back never reaches this subscriber
                self.loss.mark(f"a dropped connection to {self.endpoint} (at {utc_iso()})")
                self.loss.connection_dropped()
            else:  # EVENT_CONNECT_RETRIED / EVENT_CONNECTED / EVENT_HANDSHAKE_SUCCEEDED
                if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    self.loss.connection_back()
                self._dropped_at = None
                self._handshake_failed &= event != zmq.EVENT_HANDSHAKE_SUCCEEDED

    def _tell_handshake_failed(self, event: int) -> None:
        """One line when the peer at the endpoint does not speak ZMTP as a publisher (a web server, another
        protocol, garbage; a wrong CURVE key): ZeroMQ retries every ZMQ_RECONNECT_IVL without a word, and the
        subscriber waited silently for ever. Told again only after a handshake succeeded."""
        if self._handshake_failed:
            return
        self._handshake_failed = True
        why = ("the publisher refused this client's CURVE key" if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH else
               "the peer is not a ZeroMQ publisher (its greeting is not ZMTP, or the security mechanism differs)")
        self.loss.note(f"{self.endpoint}: handshake failed: {why}; retrying")

    def _reconnect_if_abandoned(self) -> None:
        """Connect again when a dropped connection saw no retry for RECONNECT_CHECK_S and nothing is queued.

        ZeroMQ retries after a network failure or a publisher restart, but not after a protocol error, and a
        message part over ZMQ_MAXMSGSIZE is one (libzmq session_base_t::engine_error): without this the
        subscriber would wait on a dead connection for ever. Only when no message is queued, since
        disconnecting discards the queue.
        """
        if (self._dropped_at is None or time.monotonic() - self._dropped_at < RECONNECT_CHECK_S
                or self.socket.poll(0, zmq.POLLIN)):
            return
        self._dropped_at = None
        self.loss.note(f"connection to {self.endpoint} dropped without a retry (a message part over "
                       f"{self.max_message_bytes} bytes? subscribe --max-message-mib); connecting again")
        try:
            self.socket.disconnect(self.endpoint)
        except zmq.ZMQError:
            pass  # already gone: connecting again is what matters
        self.socket.connect(self.endpoint)

    def _start_keeper(self) -> None:
        """Start the thread that tends the socket while no :meth:`recv` runs (:meth:`_keep`)."""
        self._lock = threading.Lock()
        self._stop_r, self._stop_w = os.pipe()
        self._keeper = threading.Thread(target=self._keep, name="subscriber-keeper", daemon=True)
        self._keeper.start()

    def _keep(self) -> None:
        """Process the socket's commands and read its monitor while the application is not inside :meth:`recv`.

        libzmq reconnects in its I/O thread, but a SUB socket's subscriptions are sent again only when the
        socket's own thread processes the 'hiccup' command the I/O thread posts to it (libzmq session_base_t::
        reconnect → pipe_t::hiccup → xsub_t::xhiccuped), i.e. inside a call on the socket (recv, poll,
        getsockopt). A subscriber busy elsewhere therefore stayed unsubscribed at a restarted publisher (on the
        same ipc or tcp endpoint), which dropped everything it published until the subscriber's next call.
        This thread waits on the file descriptors that libzmq signals when commands (the socket's) or monitor
        events arrive, and then, holding the lock that :meth:`recv` holds, makes that call
        (ZMQ_EVENTS; a socket may be used by another thread behind a lock: zmq(7)). Also wakes every
        RECONNECT_CHECK_S after a dropped connection, to connect again when ZeroMQ does not.
        """
        with selectors.DefaultSelector() as sel:
            for fd in (self.socket.getsockopt(zmq.FD), self._monitor.getsockopt(zmq.FD), self._stop_r):
                sel.register(fd, selectors.EVENT_READ)
            while True:
                sel.select(None if self._dropped_at is None else RECONNECT_CHECK_S)
                with self._lock:
                    if self._stopping:
                        return
                    self._read_monitor()
                    self._reconnect_if_abandoned()
                    self.socket.getsockopt(zmq.EVENTS)  # processes the pending commands; resets the fd
                time.sleep(KEEP_MIN_S)

    def _stop_keeper(self) -> None:
        if self._stopping:
            return  # closed before
        with self._lock:
            self._stopping = True
        os.write(self._stop_w, b"x")
        self._keeper.join()
        os.close(self._stop_r)
        os.close(self._stop_w)

    def __iter__(self) -> Iterator[Event]:
        while True:
            yield self.recv()

    def close(self) -> None:
        self._stop_keeper()
        self._read_monitor()  # a drop not read yet (the daemon ended as this subscriber stopped)
        self.loss.say_untold()  # what stats told it missed of streams it never heard, not said yet
        self.loss.tell_unknown_end()  # the last run's end unheard after a dropped connection: said, last
        self._close_state()  # not when the event returned last was not handled (KeepsState)
        self.socket.disable_monitor()
        self._monitor.close(0)
        self.socket.close(0)

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
