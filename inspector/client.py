"""Subscriber API for the daemon's event stream (used by ``inspector subscribe``).

::

    from inspector.client import Subscriber

    with Subscriber("tcp://127.0.0.1:5556", topics=["v1/defect"]) as sub:
        for event in sub:                       # InspectionEvent | StatusEvent | StatsEvent
            print(event.camera, event.decision, event.score, event.regions)

Topics are prefixes (``v1/defect`` = every camera's defects, ``v1/`` =
everything). The subscriber accounts for what it did not receive, per daemon
run (every header carries ``run_id``, random per daemon start) and per stream
(event type × camera; ``v1/stats`` heartbeats are not counted):

* ``missed_at_start`` — events published before this subscriber heard the run
  (its first ``seq`` of a stream was not 0: a late join, or a slow joiner; or,
  when it hears ``v1/stats``, a subscribed stream it never heard from at all);
* ``gaps`` — events lost between two received ones (jumps in ``seq``), or after
  the last one received (the final ``v1/stats`` of a run lists each stream's
  published count in ``data.sequences``, when subscribed to it);
* ``restarts`` — new run ids after the first one (a daemon restart: ``seq``
  starts again at 0, which is not a loss);
* ``malformed`` — messages that failed :func:`inspector.events.decode`, skipped.

``lost`` = ``missed_at_start + gaps``. :meth:`Subscriber.notices` returns one
line per such finding since the last call (``inspector subscribe`` prints them).
For a CURVE-secured daemon pass the server's public key and this client's
certificate (files made with ``zmq.auth.create_certificates``, or z85 keys).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Iterator

import zmq

from inspector.errors import ConfigError
from inspector.events import Event, decode

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"
ENDPOINT = re.compile(r"^(tcp|ipc|inproc|pgm|epgm|ws|wss|vmci)://.+")
UNCOUNTED_TYPES = ("stats",)  # heartbeats: a missed one carries nothing that the next one lacks


def check_endpoint(endpoint: str) -> str:
    """Return ``endpoint`` or raise a one-line ConfigError (e.g. ``localhost:5556`` without a scheme)."""
    if not isinstance(endpoint, str) or not ENDPOINT.match(endpoint):
        hint = f" (did you mean tcp://{endpoint}?)" if isinstance(endpoint, str) and ":" in endpoint else ""
        raise ConfigError(f"endpoint '{str(endpoint)[:80]}' is not a ZeroMQ endpoint "
                          f"(tcp://host:port, ipc://path){hint}")
    return endpoint


class LossTracker:
    """Counts what a subscriber missed, from the run id and per-stream ``seq`` of each received event.

    ``topics``: the subscribed topic prefixes. With them, a ``v1/stats`` event also tells of streams this
    subscriber should get but never heard from (e.g. a camera that published all its defects before a late
    join): their published count is missed. None: only streams heard from are accounted.
    """

    def __init__(self, topics: Iterable[str] | None = None) -> None:
        self._topics = None if topics is None else tuple(topics)
        self.missed_at_start = 0
        self.gaps = 0
        self.restarts = 0
        self.duplicates = 0  # re-sent status events (same seq), not losses
        self.runs: dict[str, str] = {}  # run id → started_utc, in the order heard
        self._last_seq: dict[tuple[str, str, str], int] = {}
        self._notices: list[str] = []

    @property
    def lost(self) -> int:
        return self.missed_at_start + self.gaps

    def observe(self, event: Event) -> None:
        run = event.run_id
        new_run = run not in self.runs
        if new_run:
            if self.runs:
                self.restarts += 1
                self._notices.append(f"daemon restarted: new run {run or '?'} (started "
                                     f"{event.run_started_utc or '?'}) after run {list(self.runs)[-1] or '?'}")
            self.runs[run] = event.run_started_utc
        if event.type == "stats":
            self._unheard_streams(run, event.data.get("sequences"), before_joining=new_run)
            if event.final:
                self._close_run(run, event.data.get("sequences"))
        if event.type in UNCOUNTED_TYPES:
            return
        camera = getattr(event, "camera", "")
        key = (run, event.type, camera)
        last = self._last_seq.get(key)
        if last is None:
            if event.seq > 0:
                self.missed_at_start += event.seq
                self._notices.append(f"missed {event.seq} {event.type} event(s) of camera '{camera}' published "
                                     f"before this subscriber heard run {run or '?'} (first seq {event.seq})")
        elif event.seq > last + 1:
            self.gaps += event.seq - last - 1
            self._notices.append(f"lost {event.seq - last - 1} {event.type} event(s) of camera '{camera}' "
                                 f"(seq {last + 1}..{event.seq - 1}) in run {run or '?'}")
        elif event.seq <= last:
            self.duplicates += 1
            return
        self._last_seq[key] = event.seq

    def _unheard_streams(self, run: str, sequences: object, before_joining: bool) -> None:
        """Streams of ``run`` that stats count as published, that this subscriber subscribes to, but never heard
        from: all their events so far were missed. Sound because a daemon sends events and stats in order on one
        socket; the count becomes the stream's last seq, so its next event is no gap."""
        if self._topics is None or not isinstance(sequences, dict):
            return
        for stream, published in sequences.items():
            kind, _, camera = str(stream).partition("/")
            key = (run, kind, camera)
            if (key in self._last_seq or kind in UNCOUNTED_TYPES or type(published) is not int
                    or not 0 < published <= 10**9 or not any(f"v1/{stream}".startswith(t) for t in self._topics)):
                continue
            self._last_seq[key] = published - 1
            if before_joining:  # the first word of this run we heard
                self.missed_at_start += published
                what = f"published before this subscriber heard run {run or '?'}"
            else:
                self.gaps += published
                what = f"in run {run or '?'}"
            self._notices.append(f"missed {published} {kind} event(s) of camera '{camera}' {what} "
                                 f"(stats: {published} published, none received)")

    def _close_run(self, run: str, sequences: object) -> None:
        """The final stats of ``run`` give each stream's published count: count what never arrived at the end."""
        if not isinstance(sequences, dict):
            return
        for (r, kind, camera), last in self._last_seq.items():
            published = sequences.get(f"{kind}/{camera}")
            if r == run and type(published) is int and last + 1 < published <= last + 1 + 10**9:
                self.gaps += published - last - 1
                self._notices.append(f"lost the last {published - last - 1} {kind} event(s) of camera '{camera}' "
                                     f"in run {run or '?'} (final stats: {published} published)")
                self._last_seq[(r, kind, camera)] = published - 1

    def note(self, line: str) -> None:
        self._notices.append(line)

    def notices(self) -> list[str]:
        """Findings since the last call, one line each."""
        out, self._notices = self._notices, []
        return out

    def summary(self) -> str:
        return (f"{self.lost} event(s) missed ({self.missed_at_start} before joining a run, {self.gaps} in gaps), "
                f"{len(self.runs)} run(s) heard, {self.restarts} restart(s)")


def _load_key(value: str | bytes | Path, what: str, secret: bool = False) -> tuple[bytes, bytes | None]:
    """(public, secret) from a certificate file, or (key, None) for a z85 key string."""
    if isinstance(value, bytes) and len(value) == 40:
        return value, None
    path = Path(str(value) if not isinstance(value, bytes) else value.decode())
    if path.is_file():
        import zmq.auth

        public, secret_key = zmq.auth.load_certificate(str(path))
        if secret and secret_key is None:
            raise ConfigError(f"{path}: {what} needs a secret certificate (the '.key_secret' file)")
        return public, secret_key
    text = str(value)
    if len(text) == 40:
        return text.encode(), None
    raise ConfigError(f"{what}: '{value}' is neither a certificate file nor a 40-character z85 key")


class Subscriber:
    """A SUB socket connected to a daemon, yielding typed events."""

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, topics: Iterable[str] = ("v1/",), *,
                 server_key: str | bytes | Path | None = None, client_cert: str | Path | None = None,
                 rcvhwm: int = 10000, context: zmq.Context | None = None) -> None:
        self.endpoint = check_endpoint(endpoint)
        self.context = context or zmq.Context.instance()
        self.socket = self.context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.RCVHWM, rcvhwm)
        self.socket.setsockopt(zmq.LINGER, 0)
        if server_key is not None:
            self._setup_curve(server_key, client_cert)
        topics = list(topics) or [""]
        for topic in topics:
            self.socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        try:
            self.socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self.socket.close(0)
            raise ConfigError(f"endpoint '{endpoint[:80]}': cannot connect ({exc.strerror})") from None
        self.received = 0
        self.malformed = 0
        self.loss = LossTracker(topics)

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

    def notices(self) -> list[str]:
        """Lines about missed events, restarts and skipped malformed messages since the last call."""
        return self.loss.notices()

    def _setup_curve(self, server_key, client_cert) -> None:
        if client_cert is None:
            raise ConfigError("CURVE: a client certificate (secret key file) is needed along with the server key")
        server_public, _ = _load_key(server_key, "server key")
        public, secret = _load_key(client_cert, "client certificate", secret=True)
        self.socket.curve_serverkey = server_public
        self.socket.curve_publickey = public
        self.socket.curve_secretkey = secret

    def recv(self, timeout: float | None = None) -> Event | None:
        """The next event, or None after ``timeout`` seconds (None: wait forever). Malformed messages are
        counted and skipped."""
        deadline_ms = None if timeout is None else int(timeout * 1000)
        while True:
            if deadline_ms is not None and not self.socket.poll(deadline_ms, zmq.POLLIN):
                return None
            frames = self.socket.recv_multipart()
            try:
                event = decode(frames)
            except ValueError as exc:
                self.malformed += 1
                self.loss.note(f"skipped a malformed message: {str(exc)[:160]}")
                continue
            self.received += 1
            self.loss.observe(event)
            return event

    def __iter__(self) -> Iterator[Event]:
        while True:
            yield self.recv()

    def close(self) -> None:
        self.socket.close(0)

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
