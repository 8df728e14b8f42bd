"""The state a daemon re-sends when a subscriber joins: the joiner learns it, the subscribers already there do not
hear it twice (real daemon, real ZeroMQ on ipc)."""

from __future__ import annotations

import time

from pipeline_support import base_config
from inspector.client import Subscriber
from inspector.pipeline.config import daemon_config
from inspector.pipeline.daemon import Daemon


def _until(sub: Subscriber, seen: list, done, timeout: float = 20.0) -> bool:
    """Read ``sub`` into ``seen`` until ``done(seen)`` or ``timeout`` seconds (a bounded wait)."""
    deadline = time.monotonic() + timeout
    while not done(seen) and time.monotonic() < deadline:
        event = sub.recv(timeout=0.2)
        if event is not None:
            seen.append(event)
    return done(seen)


def _stats_after(n: int):
    return lambda seen: sum(e.type == "stats" for e in seen) >= n


def test_a_joiner_learns_the_state_and_earlier_subscribers_hear_each_status_and_stats_once(tiny_model, tmp_path):
    endpoint = f"ipc://{tmp_path}/d.sock"
    camera = {"name": "cam", "source": "synthetic", "fps": 20,
              "synthetic": {"texture": "procedural", "size": 64, "pool": 2, "defect_rate": 0.0}}
    cfg = base_config(tiny_model, endpoint, [camera], publish={"results": False, "stats_interval_s": 0.3})
    daemon = Daemon(daemon_config(cfg))
    daemon.start()
    first: list = []
    try:
        with Subscriber(endpoint, ["v1/"]) as sub1:
            assert _until(sub1, first, lambda s: any(e.type == "status" and e.state == "online" for e in s)
                          and _stats_after(1)(s)), "the first subscriber heard no status and stats"
            joined: list = []
            with Subscriber(endpoint, ["v1/"]) as sub2:
                # the joiner is sent the camera's status at once, not only at its next change
                assert _until(sub2, joined, lambda s: any(e.type == "status" for e in s)), "the joiner learnt no state"
                # the first subscriber reads on past the re-send: two more heartbeats after the joiner had it
                stats_then = sum(e.type == "stats" for e in first)
                assert _until(sub1, first, _stats_after(stats_then + 2))
                for _ in range(3):  # a third and fourth joiner: each join re-sends the state again
                    with Subscriber(endpoint, ["v1/status"]) as other:
                        assert _until(other, [], lambda s: bool(s))
                stats_then = sum(e.type == "stats" for e in first)
                assert _until(sub1, first, _stats_after(stats_then + 2))
            duplicates = sub1.loss.duplicates
    finally:
        daemon.request_stop()
        assert daemon.wait() == 0
    keys = [(e.type, getattr(e, "camera", ""), e.seq) for e in first if e.type in ("status", "stats")]
    assert len(keys) == len(set(keys)), f"heard twice: {sorted(k for k in keys if keys.count(k) > 1)}"
    assert duplicates >= 4  # they did arrive, and were known for re-sends
    assert joined[0].type == "status" and joined[0].state == "online"


def _raw_statuses(sock, seconds: float) -> int:
    """Status messages a raw SUB socket (no de-duplication) receives within ``seconds``."""
    deadline, n = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        if sock.poll(50):
            n += sock.recv_multipart()[0].startswith(b"v1/status")
    return n


def test_the_state_is_re_sent_only_for_a_subscription_that_covers_it_and_at_most_twice_a_second(tiny_model,
                                                                                                  tmp_path):
    """The re-send reaches every subscriber. It was made for any subscription, a subscriber of defects only too,
    and for each of a subscriber's repeated subscriptions: one re-subscribing in a loop streamed the state to all
    (cameras + 1 messages each publisher pass). An upper bound, so a slow machine cannot make it fail."""
    import zmq

    from inspector.pipeline.publish import RESEND_MIN_S

    endpoint = f"ipc://{tmp_path}/d.sock"
    camera = {"name": "cam", "source": "synthetic", "fps": 20,
              "synthetic": {"texture": "procedural", "size": 64, "pool": 2, "defect_rate": 0.0}}
    daemon = Daemon(daemon_config(base_config(tiny_model, endpoint, [camera], publish={"results": False})))
    daemon.start()
    context = zmq.Context()
    watcher, rogue = context.socket(zmq.SUB), context.socket(zmq.XSUB)
    try:
        watcher.setsockopt(zmq.SUBSCRIBE, b"v1/status")
        watcher.connect(endpoint)
        assert _raw_statuses(watcher, 3.0) >= 1  # the camera went online (or the join's re-send)
        _raw_statuses(watcher, 1.0)
        with Subscriber(endpoint, ["v1/defect/"]) as defects_only:
            defects_only.recv(timeout=0.5)
            assert _raw_statuses(watcher, 1.5) == 0, "a subscription to defects re-sent the statuses"
        rogue.connect(endpoint)
        started = time.monotonic()
        for _ in range(300):
            rogue.send(b"\x01v1/")  # the same subscription again and again
            time.sleep(0.005)
        received = _raw_statuses(watcher, 1.0)
        elapsed = time.monotonic() - started
        assert 1 <= received <= elapsed / RESEND_MIN_S + 2, (received, elapsed)
    finally:
        watcher.close(0)
        rogue.close(0)
        context.term()
        daemon.request_stop()
        assert daemon.wait() == 0
