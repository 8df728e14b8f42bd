"""The publisher's per-frame and per-batch work: shared event fields made once per frame, no empty-queue polling.

A defect frame with ``v1/result`` on is published twice (``defect`` and ``result``); both events carry the
same regions, capture time, latencies and source, so those are made once and held by both (event headers
are read-only, events.header_dict). The backend timings, one dict per inference batch, are rounded once per
batch. What subscribers receive is unchanged: checked here on a real ZeroMQ subscriber.
"""

from __future__ import annotations

import queue
import threading
import time

import numpy as np
import pytest

import inspector.pipeline.publish as publish_module
from inspector.client import Subscriber
from inspector.pipeline.config import PublishSection
from inspector.pipeline.frame import STAGES, Frame, Region
from inspector.pipeline.postprocess import Decider
from inspector.pipeline.publish import PublishContext, Publisher, PublishWorker
from inspector.pipeline.telemetry import Counters


def _batch(n: int, ng: set[int]) -> list[Frame]:
    timings = {"infer": 12.3456, "total": 13.0001}  # one dict per batch, as infer.py makes it
    image = np.zeros((64, 80, 3), np.uint8)
    t0 = time.monotonic_ns()
    frames = []
    for i in range(n):
        f = Frame("cam0", i, image, t0 + i, time.time(), meta={"index": i, "injected": None})
        for k, stage in enumerate(STAGES[1:-1]):
            f.stamp(stage, t0 + i + (k + 1) * 1_000_000)
        f.score, f.backend_ms = (0.95 if i in ng else 0.1), timings
        f.decision = "NG" if i in ng else "OK"
        if i in ng:
            f.regions = [Region(1, 2, 3, 4, 12, 0.97), Region(10, 20, 5, 5, 25, 0.93)]
        frames.append(f)
    return frames


@pytest.fixture
def worker(tmp_path):
    publisher = Publisher(PublishSection(endpoint=f"ipc://{tmp_path}/pub.sock", results=True,
                                         stats_interval_s=3600))
    sub = Subscriber(publisher.endpoint, ["v1/"])
    assert publisher.wait_for_subscription(5.0)
    ctx = PublishContext(publisher=publisher, cfg=publisher.cfg, model={"name": "m", "run_id": "r"},
                         decider=Decider(0.9, 0.9), stats=dict)
    yield PublishWorker(ctx, queue.Queue(), queue.Queue(), threading.Event(), Counters()), sub
    sub.close()
    publisher.close()


def test_shared_event_fields_are_made_once_per_frame(worker, monkeypatch):
    w, sub = worker
    calls = {"to_dict": 0, "utc_iso": 0}
    real_to_dict, real_utc_iso = Region.to_dict, publish_module.utc_iso

    def to_dict(self):
        calls["to_dict"] += 1
        return real_to_dict(self)

    def utc_iso(t=None):
        calls["utc_iso"] += 1
        return real_utc_iso(t)

    monkeypatch.setattr(Region, "to_dict", to_dict)
    monkeypatch.setattr(publish_module, "utc_iso", utc_iso)
    frames = _batch(8, ng={2, 5})
    w._publish_batch(frames)
    assert calls == {"to_dict": 2 * 2, "utc_iso": 8}  # per frame; per event was 2 * 2 * 2 and 10

    events = [sub.recv(timeout=2.0) for _ in range(10)]
    assert all(e is not None for e in events)
    by_kind = {(e.type, e.frame_id): e for e in events}
    assert sorted(by_kind) == sorted([("result", i) for i in range(8)] + [("defect", 2), ("defect", 5)])
    for i in (2, 5):
        d, r = by_kind[("defect", i)], by_kind[("result", i)]
        assert d.regions == r.regions == [{"bbox": [1, 2, 3, 4], "area": 12, "peak": 0.97},
                                          {"bbox": [10, 20, 5, 5], "area": 25, "peak": 0.93}]
        assert d.capture == r.capture and d.latency_ms == r.latency_ms and d.source == r.source
        assert d.event_id == r.event_id == f"r-cam0-{i}" and d.decision == r.decision == "NG"
    for e in events:  # the batch's backend timings, rounded, on every event
        assert e.latency_ms["backend_infer"] == 12.346 and e.latency_ms["backend_total"] == 13.0
        assert e.latency_ms["preprocessed"] == 1.0 and e.score == (0.95 if e.frame_id in (2, 5) else 0.1)


class _CountingQueue(queue.Queue):
    """queue.Queue that counts get_nowait calls (the publisher's status inbox)."""

    gets = 0

    def get_nowait(self):
        self.gets += 1
        return super().get_nowait()


def test_status_queue_is_not_polled_when_empty(worker):
    """Issue 17: the status drain runs once per batch and ``get_nowait`` on the empty queue (lock, raise
    queue.Empty) cost ~14 µs each; an empty queue is now seen without it, queued statuses still go out."""
    from inspector.pipeline.publish import StatusUpdate

    w, sub = worker
    w.status_inbox = inbox = _CountingQueue()
    for _ in range(5):
        w._drain_status()
    assert inbox.gets == 0
    inbox.put(StatusUpdate("cam0", "online", "connecting", "", {}, "2026-01-01T00:00:00.000Z"))
    w._drain_status()
    event = sub.recv(timeout=2.0)
    assert event is not None and (event.type, event.camera, event.state) == ("status", "cam0", "online")
    assert inbox.empty()
