"""Subscriber API against real ZeroMQ sockets: typed events, topic filtering, gap counting, CURVE."""

from __future__ import annotations

import time

import pytest

from inspector.client import Subscriber
from inspector.errors import ConfigError
from inspector.events import StatsEvent, StatusEvent, utc_iso
from inspector.pipeline.config import CurveSection, PublishSection
from inspector.pipeline.publish import Publisher


def _status(seq: int, camera: str = "c") -> StatusEvent:
    return StatusEvent(camera=camera, seq=seq, state="online", previous=None, reason="", time_utc=utc_iso())


def _connect(pub: Publisher, sub: Subscriber) -> None:
    assert pub.wait_for_subscription(5.0)
    time.sleep(0.05)


def test_typed_events_topics_and_gaps(tmp_path):
    pub = Publisher(PublishSection(endpoint=f"ipc://{tmp_path}/ev.sock"))
    with Subscriber(pub.endpoint, ["v1/status"]) as sub:
        _connect(pub, sub)
        for seq in (0, 1, 4):  # 2 and 3 lost on the way
            pub.send(_status(seq))
        pub.send(StatsEvent(seq=0, time_utc=utc_iso(), uptime_s=0, final=False, data={}))  # filtered out
        pub.socket.send_multipart([b"v1/status/c", b"garbage"])  # malformed: counted, skipped
        pub.send(_status(0, camera="d"))
        got = [sub.recv(timeout=2) for _ in range(4)]
        assert [(e.type, e.camera, e.seq) for e in got] == [("status", "c", 0), ("status", "c", 1),
                                                           ("status", "c", 4), ("status", "d", 0)]
        assert sub.recv(timeout=0.2) is None
        assert sub.gaps == 2 and sub.malformed == 1 and sub.received == 4
    pub.close()


def test_curve_encrypts_and_authenticates(tmp_path):
    import zmq.auth

    if not zmq.has("curve"):
        pytest.skip("libzmq without CURVE")
    keys = tmp_path / "keys"
    allowed = tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    _, server_secret = zmq.auth.create_certificates(keys, "server")
    client_public, client_secret = zmq.auth.create_certificates(keys, "client")
    (allowed / "client.key").write_bytes(open(client_public, "rb").read())
    zmq.auth.create_certificates(keys, "intruder")
    endpoint = f"ipc://{tmp_path}/curve.sock"
    pub = Publisher(PublishSection(endpoint=endpoint, curve=CurveSection(
        enabled=True, server_secret_key=str(server_secret), allowed_clients_dir=str(allowed))))
    try:
        server_public = keys / "server.key"
        with Subscriber(endpoint, ["v1/"], server_key=server_public, client_cert=client_secret) as good, \
                Subscriber(endpoint, ["v1/"], server_key=server_public,
                           client_cert=keys / "intruder.key_secret") as intruder, \
                Subscriber(endpoint, ["v1/"]) as plain:
            _connect(pub, good)
            time.sleep(0.3)
            pub.send(_status(0))
            event = good.recv(timeout=3)
            assert event is not None and event.state == "online"
            assert intruder.recv(timeout=0.3) is None  # not in the allowed folder
            assert plain.recv(timeout=0.3) is None  # no CURVE at all
    finally:
        pub.close()
    with pytest.raises(ConfigError, match="client certificate"):
        Subscriber(endpoint, server_key=keys / "server.key")


def test_curve_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="server_secret_key"):
        Publisher(PublishSection(endpoint=f"ipc://{tmp_path}/x.sock",
                                 curve=CurveSection(enabled=True, server_secret_key=str(tmp_path / "none"))))
