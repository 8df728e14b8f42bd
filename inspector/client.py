"""Subscriber API for the daemon's event stream (used by ``inspector subscribe``).

::

    from inspector.client import Subscriber

    with Subscriber("tcp://127.0.0.1:5556", topics=["v1/defect"]) as sub:
        for event in sub:                       # InspectionEvent | StatusEvent | StatsEvent
            print(event.camera, event.decision, event.score, event.regions)

Topics are prefixes (``v1/defect`` = every camera's defects, ``v1/`` =
everything). ``Subscriber.gaps`` counts messages lost between the daemon and
this subscriber (jumps in the per-camera ``seq`` of each event type). For a
CURVE-secured daemon pass the server's public key and this client's
certificate (files made with ``zmq.auth.create_certificates``, or z85 keys).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Iterable, Iterator

import zmq

from inspector.errors import ConfigError
from inspector.events import Event, decode

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"


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
        self.endpoint = endpoint
        self.context = context or zmq.Context.instance()
        self.socket = self.context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.RCVHWM, rcvhwm)
        self.socket.setsockopt(zmq.LINGER, 0)
        if server_key is not None:
            self._setup_curve(server_key, client_cert)
        for topic in list(topics) or [""]:
            self.socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self.socket.connect(endpoint)
        self.received = 0
        self.malformed = 0
        self.gaps = 0
        self._last_seq: dict[tuple[str, str], int] = defaultdict(lambda: -1)

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
            except ValueError:
                self.malformed += 1
                continue
            self.received += 1
            self._track(event)
            return event

    def _track(self, event: Event) -> None:
        key = (event.type, getattr(event, "camera", ""))
        last = self._last_seq[key]
        if last >= 0 and event.seq > last + 1:
            self.gaps += event.seq - last - 1
        if event.seq > last:
            self._last_seq[key] = event.seq

    def __iter__(self) -> Iterator[Event]:
        while True:
            yield self.recv()

    def close(self) -> None:
        self.socket.close(0)

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
