"""Each sink's books add up when ZeroMQ refuses an event: published + lost = numbered, on ZeroMQ, over MQTT (a real
Mosquitto broker), in the stats' totals and in Prometheus; the event ZeroMQ refused still reaches the MQTT bridge
and the recorder. Real publisher, subscribers, broker and daemon; the refusal itself is injected (ZeroMQ refuses a
send only with a subscriber's queue full, which a loopback test cannot time to one event)."""

from __future__ import annotations

import importlib.util
import json
import queue
import threading
import time

import numpy as np
import pytest
import zmq

from broker_support import MOSQUITTO, Mosquitto
from pipeline_support import base_config, free_port, write_folder


def _refuse_defect(publisher, seq: int) -> None:
    """Make ``publisher``'s socket refuse (zmq.Again, as a subscriber's full queue with ZMQ_XPUB_NODROP does, and on
    the retry past it) every try to send the defect event numbered ``seq``: the call where the real socket raises."""
    real = publisher._send_parts

    def send_parts(parts: list) -> None:
        if bytes(parts[0]).startswith(b"v1/defect/") and json.loads(bytes(parts[1]))["seq"] == seq:
            raise zmq.Again()
        real(parts)

    publisher._send_parts = send_parts


def _error_frames(camera: str, n: int) -> list:
    """Frames whose inference failed: each one is a defect event (decision 'error')."""
    from inspector.pipeline.frame import Frame

    frames = []
    for i in range(n):
        frame = Frame(camera, i, np.zeros((8, 8, 3), np.uint8), time.monotonic_ns(), time.time())
        frame.decision, frame.error, frame.backend_ms = "error", "injected", {}
        frames.append(frame)
    return frames


@pytest.mark.mqtt
@pytest.mark.skipif(MOSQUITTO is None, reason="needs Debian's mosquitto")
@pytest.mark.skipif(importlib.util.find_spec("paho") is None, reason="needs the 'mqtt' extra (paho-mqtt)")
def test_an_event_zeromq_refused_is_lost_to_zeromq_only_and_counted_once(tmp_path):
    """ZeroMQ refused defect seq 1; the MQTT bridge took it. The stats counted it published (totals) and unsent
    (daemon_dropped) both, and the MQTT consumer, which received all three defects, was told 'the daemon itself
    dropped 1 defect event(s) … part of the gaps counted' with no gap. Now published counts what ZeroMQ took, and
    the stats reaching MQTT carry the bridge's own books."""
    from inspector.client import Subscriber
    from inspector.integrations.mqtt import MqttBridge, MqttSubscriber
    from inspector.pipeline.config import PublishSection
    from inspector.pipeline.integration_config import MqttSection
    from inspector.pipeline.postprocess import Decider
    from inspector.pipeline.publish import PublishContext, Publisher, PublishWorker
    from inspector.pipeline.telemetry import Counters

    broker = Mosquitto(tmp_path / "broker").start()
    msub = MqttSubscriber(broker.url, ["defect", "stats"])
    bridge = MqttBridge(MqttSection(url=broker.url, box="b1"), run_id="r")
    publisher = Publisher(PublishSection(endpoint=f"ipc://{tmp_path}/pub.sock", stats_interval_s=3600))
    zsub = Subscriber(publisher.endpoint, ["v1/defect", "v1/stats"])
    try:
        assert publisher.wait_for_subscription(5.0)
        time.sleep(1.0)  # the MQTT subscription is in place too
        counters = Counters()
        ctx = PublishContext(publisher=publisher, cfg=publisher.cfg, model={"name": "m", "run_id": "r"},
                             decider=Decider(0.5, 0.5), stats=lambda: {"totals": counters.snapshot()}, run_id="r",
                             taps=(bridge,))
        worker = PublishWorker(ctx, queue.Queue(), queue.Queue(), threading.Event(), counters)
        _refuse_defect(publisher, 1)
        worker._publish_batch(_error_frames("cam0", 3))
        worker._publish_stats(final=True)
        zgot = [zsub.recv(timeout=3) for _ in range(3)]
        mgot = [msub.recv(timeout=10) for _ in range(4)]
        assert bridge.flush(5)
        mqtt_notices = msub.notices()
    finally:
        zsub.close()
        publisher.close()
        bridge.close()
        msub.close()
        broker.stop()
    assert [(e.type, e.seq) for e in zgot] == [("defect", 0), ("defect", 2), ("stats", 0)], zgot
    assert (zsub.gaps, zsub.loss.daemon_dropped) == (1, 1)  # ZeroMQ's loss: one gap, the daemon says why
    assert [(e.type, e.seq) for _, e in mgot] == [("defect", 0), ("defect", 1), ("defect", 2), ("stats", 0)], mgot
    mqtt_loss = msub.loss["b1"]
    assert (mqtt_loss.lost, mqtt_loss.daemon_dropped) == (0, 0), mqtt_notices
    assert not any("the daemon itself dropped" in n for n in mqtt_notices), mqtt_notices
    stats = worker.final_stats
    totals, numbered = stats["totals"], stats["sequences"]["defect/cam0"]
    unsent = stats["daemon_dropped"]["defect/cam0"]["unsent"]
    assert (numbered, unsent, totals["published.defect"], totals["publish_unsent"]) == (3, 1, 2, 1), totals
    assert totals["published.defect"] + unsent == numbered
    assert stats["published"]["send_failed"] == 1 and stats["published"]["messages"] == 2  # 2 defects, no stats yet


def test_a_daemon_whose_zeromq_refused_a_defect_records_it_counts_it_once_and_shows_it_to_prometheus(
        tiny_model, tmp_path, monkeypatch):
    """A real daemon: the defect ZeroMQ refused is recorded all the same, counted unsent once (not published too),
    told in Prometheus (it showed nowhere a scrape could see) and in the closing failure line as lost on ZeroMQ."""
    pytest.importorskip("prometheus_client.parser", reason="needs the 'metrics' extra")
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    from inspector.integrations.runtime import make_daemon
    from inspector.pipeline.config import daemon_config
    from inspector.pipeline.publish import Publisher

    real_init = Publisher.__init__

    def refusing_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        _refuse_defect(self, 1)

    monkeypatch.setattr(Publisher, "__init__", refusing_init)
    endpoint, listen = f"ipc://{tmp_path}/ev.sock", f"127.0.0.1:{free_port()}"
    cfg = base_config(tiny_model, endpoint, [{"name": "cam", "source": str(write_folder(tmp_path / "f", [True] * 4))}],
                      thresholds={"image": 0.0}, metrics={"listen": listen},
                      recorder={"enabled": True, "dir": str(tmp_path / "rec"), "min_free_bytes": 0},
                      publish={"results": False})
    daemon = make_daemon(daemon_config(cfg))
    daemon.start()
    try:
        deadline = time.monotonic() + 60
        while daemon.counters.snapshot().get("published.defect", 0) + \
                daemon.counters.snapshot().get("publish_unsent", 0) < 4:
            assert time.monotonic() < deadline, daemon.counters.snapshot()
            time.sleep(0.1)
        text = urllib.request.urlopen(f"http://{listen}/metrics", timeout=5).read().decode()
    finally:
        code = daemon.wait(timeout=60)
    drops = {s.labels["reason"]: s.value for f in text_string_to_metric_families(text) if f.name == "inspector_drops"
             for s in f.samples if s.name == "inspector_drops_total"}
    assert drops["publish_unsent"] == 1, drops
    stats = daemon.final_stats
    assert (stats["totals"]["published.defect"], stats["daemon_dropped"]) == (3, {"defect/cam": {"unsent": 1}})
    headers = sorted((tmp_path / "rec").rglob("*.json"))
    assert [json.loads(h.read_text())["seq"] for h in headers] == [0, 1, 2, 3], headers  # the evidence is not ZeroMQ's
    assert code == 1 and any("1 defect event(s) never published (camera 'cam': not sent on ZeroMQ 1)" in f
                             for f in daemon.failures), daemon.failures


def test_a_status_zeromq_fails_to_send_leaves_the_publisher_running(tmp_path):
    """A ZeroMQ error other than EAGAIN while sending a camera's status (ENOTSOCK here; ETERM at a context's end)
    escaped the publisher's loop: its thread ended, and every later defect went unpublished while inspection ran
    on. Now it is counted and told, the other statuses queued go out, and the defects after it are published."""
    import errno

    from inspector.client import Subscriber
    from inspector.pipeline.batcher import END
    from inspector.pipeline.config import PublishSection
    from inspector.pipeline.postprocess import Decider
    from inspector.pipeline.publish import PublishContext, Publisher, PublishWorker, StatusUpdate
    from inspector.pipeline.telemetry import Counters

    publisher = Publisher(PublishSection(endpoint=f"ipc://{tmp_path}/pub.sock", stats_interval_s=3600))
    zsub = Subscriber(publisher.endpoint, ["v1/defect", "v1/status"])
    real = publisher._send_parts

    def send_parts(parts: list) -> None:  # the call where the real socket raises
        if bytes(parts[0]) == b"v1/status/cam0":
            raise zmq.ZMQError(errno.ENOTSOCK)
        real(parts)

    try:
        assert publisher.wait_for_subscription(5.0)
        publisher._send_parts = send_parts
        counters, inbox, statuses = Counters(), queue.Queue(), queue.Queue()
        ctx = PublishContext(publisher=publisher, cfg=publisher.cfg, model={"name": "m", "run_id": "r"},
                             decider=Decider(0.5, 0.5), stats=lambda: {"totals": counters.snapshot()}, run_id="r")
        worker = PublishWorker(ctx, inbox, statuses, threading.Event(), counters)
        for camera in ("cam0", "cam1"):
            statuses.put(StatusUpdate(camera, "streaming", None, "opened", {}, "2026-12-07T00:00:00Z"))
        thread = threading.Thread(target=worker.loop, daemon=True)
        thread.start()
        worker.wake()
        status = zsub.recv(timeout=5)  # cam1's: cam0's failed before it
        assert status is not None, "the publisher stopped at cam0's failed status"
        inbox.put(_error_frames("cam0", 2))  # the defects after the failure
        inbox.put(END)
        thread.join(10)
        got = [zsub.recv(timeout=3) for _ in range(2)]
        assert not thread.is_alive()
        assert [(e.type, e.camera) for e in [status, *got]] == [("status", "cam1"), ("defect", "cam0"),
                                                                  ("defect", "cam0")]
        totals = counters.snapshot()
        assert totals.get("publish_errors") == 1 and totals.get("published.defect") == 2, totals
    finally:
        zsub.close()
        publisher.close()
