"""Subscribers are told what the daemon itself dropped, and why (real postprocess worker and queues, real
publisher and subscriber on ZeroMQ)."""

from __future__ import annotations

import queue
import threading
import time

import numpy as np

from inspector.client import Subscriber
from inspector.pipeline.batcher import END
from inspector.pipeline.config import DriftSection, PostprocessSection, PublishSection
from inspector.pipeline.drift import DriftMonitor
from inspector.pipeline.extensions import _NoneRunning
from inspector.pipeline.frame import Frame
from inspector.pipeline.postprocess import Decider, PostprocessWorker
from inspector.pipeline.publish import PublishContext, Publisher, PublishWorker
from inspector.pipeline.telemetry import Counters


def _error_frames(camera: str, first: int, n: int) -> list[Frame]:
    """Frames whose inference failed: each is a defect event (decision 'error'), with no map to postprocess."""
    frames = []
    for i in range(first, first + n):
        frame = Frame(camera, i, np.zeros((8, 8, 3), np.uint8), time.monotonic_ns(), time.time())
        frame.decision, frame.error, frame.backend_ms = "error", "injected", {}
        frames.append(frame)
    return frames


def _postprocess(counters: Counters, batches: list) -> list:
    """The real postprocess worker with a publisher queue of one batch: the batches after the first are dropped."""
    inbox, out = queue.Queue(), queue.Queue(maxsize=1)
    for batch in batches:
        inbox.put(batch)
    inbox.put(END)
    worker = PostprocessWorker(Decider(0.5, 0.5), PostprocessSection(), "connected", inbox, out, threading.Event(),
                               counters, DriftMonitor(DriftSection(), None), attach_to_results=False)
    worker.start()
    deadline = time.monotonic() + 10
    while inbox.qsize() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # the last batch went through put_nowait (dropped) and END waits on the full queue
    kept = out.get(timeout=5)
    assert out.get(timeout=5) is not kept  # END
    worker.join(5)
    return kept


def test_subscribers_learn_what_the_daemon_dropped_and_why(tmp_path, monkeypatch):
    """A full publisher queue dropped frames before they were numbered: subscribers saw no gap and nothing told
    them (a counter in the stats totals only); an event the publisher numbered but did not send showed as a gap
    like any lost on the way. Now the stats carry data.daemon_dropped per stream and reason, and the
    subscriber tells each."""
    counters = Counters()
    kept = _postprocess(counters, [_error_frames("cam0", 0, 3), _error_frames("cam0", 3, 2)])
    publisher = Publisher(PublishSection(endpoint=f"ipc://{tmp_path}/pub.sock", stats_interval_s=3600))
    sub = Subscriber(publisher.endpoint, ["v1/defect", "v1/stats"])
    try:
        assert publisher.wait_for_subscription(5.0)
        time.sleep(0.1)
        ctx = PublishContext(publisher=publisher, cfg=publisher.cfg, model={"name": "m", "run_id": "r"},
                             decider=Decider(0.5, 0.5), stats=dict, run_id="r")
        w = PublishWorker(ctx, queue.Queue(), queue.Queue(), threading.Event(), counters)
        real_send = publisher.send
        # ZeroMQ refusing one send (a full queue with ZMQ_XPUB_NODROP, EAGAIN): fault injected on the real API
        monkeypatch.setattr(publisher, "send", lambda e, *a: False if getattr(e, "seq", -1) == 1
                            and e.type == "defect" else real_send(e, *a))
        w._publish_batch(kept)
        w._publish_stats(final=True)
        got = [sub.recv(timeout=3) for _ in range(3)]
    finally:
        sub.close()
        publisher.close()
    assert [(e.type, e.seq) for e in got] == [("defect", 0), ("defect", 2), ("stats", 0)], got
    assert got[-1].data["daemon_dropped"] == {"defect/cam0": {"unsent": 1, "queue_full": 2}}
    notices = "\n".join(sub.notices())
    assert "the daemon itself dropped 2 defect event(s) of camera 'cam0' in run r: its publisher queue was full" \
        in notices, notices
    assert "the daemon itself dropped 1 defect event(s) of camera 'cam0' in run r: numbered but not sent" \
        in notices, notices
    assert sub.loss.daemon_dropped == 3 and sub.gaps == 1
    assert "3 dropped by the daemon itself" in sub.loss.summary()


class _SlowTap:
    """An integration's event tap (integrations.EventTap) that takes ``delay_s`` per defect and raises on the
    first: a publisher slower than inspection, and a tap with a bug, which no real part produces on demand."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s, self.raised = delay_s, False

    def offer(self, event) -> None:
        if event.type != "defect":
            return
        time.sleep(self.delay_s)
        if not self.raised:
            self.raised = True
            raise ValueError("injected")

    def close(self) -> None:
        pass


class _Running(_NoneRunning):
    """What Extensions.start returns (pipeline.extensions.Running), with the one tap."""

    def __init__(self, tap) -> None:
        self.taps = [tap]


def test_defect_events_the_daemon_never_published_fail_the_run_naming_the_endpoint(tiny_model, tmp_path):
    """A publisher slower than inspection: its full queue dropped defect frames before they were numbered (no
    subscriber, broker or recording ever had them), and an integration's hand-over that raised lost the event for
    it. Both were counted and told in the stats only; the run exited 0. Now each is a closing failure line naming
    publish.endpoint, exit 1, as recordings lost are."""
    from pipeline_support import base_config, write_folder
    from inspector.pipeline.config import daemon_config
    from inspector.pipeline.daemon import Daemon
    from inspector.pipeline.extensions import Extensions

    endpoint = f"ipc://{tmp_path}/ev.sock"
    cfg = base_config(tiny_model, endpoint, [{"name": "cam", "source": str(write_folder(tmp_path / "f", [True] * 40))}],
                      thresholds={"image": 0.0}, publish={"queue_size": 1})
    daemon = Daemon(daemon_config(cfg), extensions=Extensions(start=lambda d: _Running(_SlowTap(0.05))))
    daemon.start()
    code = daemon.wait(timeout=120)
    dropped = daemon.final_stats["daemon_dropped"]["defect/cam"]["queue_full"]
    assert code == 1 and dropped > 0, daemon.failures
    assert daemon.failures == [
        f"publisher (publish.endpoint {endpoint}): {dropped} defect event(s) never published (camera 'cam': "
        f"publisher queue full (publish.queue_size) {dropped})",
        f"publisher (publish.endpoint {endpoint}): 1 event(s) an integration (MQTT bridge, dashboard) did not "
        f"take: its hand-over raised (tap_errors)"], daemon.failures


def test_a_max_batch_at_its_top_keeps_publish_queue_size_frames_not_one_batch(tiny_model, tmp_path):
    """The publisher queue held publish.queue_size / batching.max_batch batches, as if every batch were full: at
    max_batch 1024 (its declared top) one batch, of one frame or a few, so a publisher a moment slower than
    inspection (an integration's hand-over, a busy machine) dropped the defects of an offline camera and failed the
    run ('publisher queue full'), though publish.queue_size says 1024 frames wait. It holds that many frames now."""
    from pipeline_support import base_config, write_folder
    from inspector.pipeline.config import daemon_config
    from inspector.pipeline.daemon import Daemon
    from inspector.pipeline.extensions import Extensions

    cfg = base_config(tiny_model, f"ipc://{tmp_path}/ev.sock",
                      [{"name": "cam", "source": str(write_folder(tmp_path / "f", [True] * 30))}],
                      thresholds={"image": 0.0}, batching={"max_batch": 1024, "max_wait_ms": 0})
    tap = _SlowTap(0.03)
    tap.raised = True  # slow only: no hand-over fails
    daemon = Daemon(daemon_config(cfg), extensions=Extensions(start=lambda d: _Running(tap)))
    daemon.start()
    code = daemon.wait(timeout=120)
    assert code == 0 and not daemon.final_stats.get("daemon_dropped"), daemon.failures
    assert daemon.final_stats["totals"]["published.defect"] == 30
