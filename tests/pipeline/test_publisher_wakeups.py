"""The publisher thread sleeps while there is nothing to publish, yet publishes a status change at once.

Idle wake-ups were a third of the publisher's CPU per event at ~75 events/s (issue 17): each costs a queue
wait and a socket poll. A status change must not wait for the next idle poll (PublishWorker.wake).
"""

from __future__ import annotations

import queue
import threading
import time

import pytest

from inspector.client import Subscriber
from inspector.pipeline.batcher import END
from inspector.pipeline.config import PublishSection
from inspector.pipeline.postprocess import Decider
from inspector.pipeline.publish import IDLE_POLL_S, PublishContext, Publisher, PublishWorker, StatusUpdate
from inspector.pipeline.telemetry import Counters


@pytest.fixture
def worker(tmp_path):
    publisher = Publisher(PublishSection(endpoint=f"ipc://{tmp_path}/pub.sock", stats_interval_s=3600))
    polls = [0]
    real_poll = publisher.poll_subscriptions

    def counting_poll():  # the real method, counted: one call per loop iteration
        polls[0] += 1
        return real_poll()

    publisher.poll_subscriptions = counting_poll
    ctx = PublishContext(publisher=publisher, cfg=publisher.cfg, model={"name": "m", "run_id": "r"},
                         decider=Decider(0.9, 0.9), stats=dict)
    w = PublishWorker(ctx, queue.Queue(), queue.Queue(), threading.Event(), Counters())
    yield w, polls
    w.inbox.put(END)
    w.join(5)
    publisher.close()


def test_idle_publisher_polls_at_most_every_idle_interval(worker):
    w, polls = worker
    w.start()
    time.sleep(0.6)
    # the old 20 ms poll made ~30 iterations here; IDLE_POLL_S = 0.1 makes ~6
    assert polls[0] <= 0.6 / IDLE_POLL_S + 3, polls[0]


def test_status_change_is_published_at_once_after_wake(worker):
    w, _ = worker
    sub = Subscriber(w.pub.endpoint, ["v1/status"])
    try:
        assert w.pub.wait_for_subscription(5.0)
        w.start()
        time.sleep(0.11)  # just after an idle poll: without wake() the next is ~90 ms away
        t0 = time.monotonic()
        w.status_inbox.put(StatusUpdate("cam0", "online", None, "", {}, "2026-01-01T00:00:00.000Z"))
        w.wake()
        event = sub.recv(timeout=2.0)
        assert event is not None and event.state == "online"
        assert time.monotonic() - t0 < 0.5 * IDLE_POLL_S
    finally:
        sub.close()
