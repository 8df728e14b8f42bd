"""Events queued for a slow subscriber when the daemon stops reach it within ``publish.drain_s``, or the
daemon says in one line that it gave up. They were dropped unsaid after a fixed 500 ms linger.

Real parts: the daemon's publisher on an ipc socket and a plain ZeroMQ SUB that reads only once the close has
begun, with small buffers so that most events wait in the publisher's queue."""

from __future__ import annotations

import json
import logging
import threading
import time

import zmq

from inspector.events import Payload, StatsEvent, utc_iso
from inspector.pipeline.config import PublishSection
from inspector.pipeline.publish import Publisher

EVENTS = 120
PAYLOAD = b"\0" * 65536  # 7.5 MiB in all: far more than the kernel's socket buffers hold


def _slow_subscriber(endpoint: str) -> zmq.Socket:
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 1)
    sub.setsockopt(zmq.RCVBUF, 4096)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"v1/stats")
    sub.connect(endpoint)
    return sub


def _publish(tmp_path, drain_s: float) -> tuple[Publisher, zmq.Socket]:
    pub = Publisher(PublishSection(endpoint=f"ipc://{tmp_path}/pub.sock", drain_s=drain_s))
    sub = _slow_subscriber(pub.endpoint)
    assert pub.wait_for_subscription(10.0)
    for seq in range(EVENTS):
        payload = Payload(kind="thumbnail", encoding="jpeg", data=PAYLOAD, shape=[len(PAYLOAD)])
        assert pub.send(StatsEvent(seq=seq, time_utc=utc_iso(), uptime_s=1.0, final=seq == EVENTS - 1, data={},
                                   run_id="r", payloads=[payload]))
    return pub, sub


def _received(sub: zmq.Socket, timeout_ms: int) -> list[int]:
    seqs = []
    while sub.poll(timeout_ms):
        seqs.append(json.loads(sub.recv_multipart()[1])["seq"])
    return seqs


def test_a_slow_subscriber_gets_every_event_queued_when_the_daemon_stops(tmp_path, caplog):
    pub, sub = _publish(tmp_path, drain_s=30.0)
    result = []
    closer = threading.Thread(target=lambda: result.append(pub.close()))
    closer.start()
    time.sleep(1.5)  # the subscriber is slow: it starts reading well after the old 500 ms linger ran out
    try:
        seqs = _received(sub, 3000)
    finally:
        closer.join(35)
        sub.close()
    assert seqs == list(range(EVENTS)), (len(seqs), seqs[:3], seqs[-3:])
    assert result == [True] and "gave up" not in caplog.text


def test_a_subscriber_that_never_reads_is_given_up_on_in_one_line_with_a_count(tmp_path, caplog):
    pub, sub = _publish(tmp_path, drain_s=0.5)
    try:
        with caplog.at_level(logging.WARNING, "inspector.publish"):
            assert pub.close() is False
    finally:
        sub.close()
    lines = [r.getMessage() for r in caplog.records if "gave up" in r.getMessage()]
    assert lines == [f"publish.drain_s: gave up after 0.5 s on events still queued for a slow "
                     f"subscriber: they are lost ({EVENTS} event(s) published in all)"], caplog.text


def test_a_stuck_subscriber_dropped_by_the_heartbeat_while_draining_is_told_not_taken_for_delivered(tmp_path, caplog):
    """A subscriber that never reads, its connection ended by the heartbeat (3 × heartbeat_s unanswered) during a
    long drain: ZeroMQ dropped its queued events with the connection and the close returned early, as if all had
    been delivered: no line said they were lost. Now one line says so, and the close says not delivered."""
    pub = Publisher(PublishSection(endpoint=f"ipc://{tmp_path}/pub.sock", drain_s=120.0, heartbeat_s=0.5))
    sub = _slow_subscriber(pub.endpoint)
    # its I/O thread stops reading once its queue is full, so it answers no heartbeat either (a hung process)
    assert pub.wait_for_subscription(10.0)
    for seq in range(EVENTS):
        payload = Payload(kind="thumbnail", encoding="jpeg", data=PAYLOAD, shape=[len(PAYLOAD)])
        assert pub.send(StatsEvent(seq=seq, time_utc=utc_iso(), uptime_s=1.0, final=False, data={}, run_id="r",
                                   payloads=[payload]))
    try:
        with caplog.at_level(logging.WARNING, "inspector.publish"):
            delivered = pub.close()  # returns at the heartbeat's cut, well inside the 120 s drain
    finally:
        sub.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "inspector.publish"]
    assert delivered is False and len(lines) == 1 and "connection ended" in lines[0] and "lost" in lines[0], lines


def test_a_hurry_ends_a_long_drain_for_a_subscriber_that_never_reads_in_one_line(tmp_path, caplog):
    """``publish.drain_s`` may be up to 600 s and, with ``heartbeat_s: 0``, a subscriber that reads nothing holds the
    whole drain: the operator's second stop signal (``hurry``) ended nothing, only SIGKILL did, without a word."""
    pub, sub = _publish(tmp_path, drain_s=120.0)
    hurry = threading.Event()
    threading.Timer(0.5, hurry.set).start()
    t0 = time.monotonic()
    try:
        with caplog.at_level(logging.WARNING, "inspector.publish"):
            delivered = pub.close(hurry=hurry)
    finally:
        sub.close()
    took = time.monotonic() - t0
    lines = [r.getMessage() for r in caplog.records if r.name == "inspector.publish"]
    assert delivered is False and took < 60, took  # bounded wait: without the hurry it takes the whole 120 s
    assert len(lines) == 1 and lines[0].startswith("publisher: a second stop signal ended the drain after ") \
        and f"lost ({EVENTS} event(s) published in all)" in lines[0], lines


_SECOND_SIGNAL_SCRIPT = """
import logging, os, signal, sys, threading, time
sys.path.insert(0, {tests!r})
logging.basicConfig(level=logging.WARNING, format="%(message)s")
from inspector import lifecycle
from pipeline.test_publish_drain import _publish
lifecycle.install()
pub, sub = _publish(__import__("pathlib").Path({tmp!r}), drain_s=300.0)
print("ready", flush=True)
lifecycle.STOP.wait()
print("stopping", flush=True)
print("delivered", pub.close(hurry=lifecycle.HURRY), flush=True)
"""


def test_the_second_stop_signal_ends_the_drain_the_first_began(tmp_path):
    """The chain as ``inspector run`` uses it: :mod:`inspector.lifecycle` turns the first SIGTERM into the stop and
    the second into the hurry that ends the publisher's drain; the first alone leaves the drain running."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    script = _SECOND_SIGNAL_SCRIPT.format(tests=str(Path(__file__).parents[1]), tmp=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout.readline().strip() == "stopping"
        time.sleep(1.0)
        assert proc.poll() is None  # the first signal began a drain of up to 300 s
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert "a second stop signal ended the drain" in out and "delivered False" in out, out
    assert proc.returncode == 0, out



def test_a_publisher_that_counts_its_subscribers_closes_every_time(tmp_path):
    # The subscriber count's monitor and the drain's were both on pyzmq's default inproc://monitor.s-<fd>: the
    # second bind met the first while libzmq was still closing it, "Address already in use" about one close in
    # two (CI: `run --check` with publish.wait_for_subscribers set).
    for attempt in range(40):
        pub = Publisher(PublishSection(endpoint=f"ipc://{tmp_path}/pub{attempt}.sock", wait_for_subscribers=1))
        assert pub.close(drain_s=0.0), attempt
