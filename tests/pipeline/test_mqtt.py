"""MQTT bridge against a real Mosquitto broker on loopback (marked ``mqtt``)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
import time

import pytest

from broker_support import MOSQUITTO, Mosquitto
from net_faults import Partition
from pipeline_support import base_config, defect_pattern, write_folder

CLI = [sys.executable, "-c", "import sys; from inspector.cli import main; sys.exit(main())"]
pytestmark = [pytest.mark.mqtt, pytest.mark.skipif(MOSQUITTO is None, reason="needs Debian's mosquitto"),
              pytest.mark.skipif(importlib.util.find_spec("paho") is None, reason="needs the 'mqtt' extra (paho-mqtt)")]


class Consumer:
    """A persistent-session QoS 1 subscriber that records every live (non-retained) message."""

    def __init__(self, url_port: int, topic: str = "inspector/#") -> None:
        import paho.mqtt.client as mqtt

        self.messages: list = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-consumer", clean_session=False)
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", url_port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), msg.retain))

    def unique_live(self) -> set:
        with self.lock:
            return {(t, p) for t, p, r in self.messages if not r and not t.endswith(("/online", "/v1/bridge"))}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_events_arrive_and_broker_restart_loses_only_counted_drops(tiny_model, endpoint, tmp_path):
    from inspector.pipeline.config import daemon_config
    from inspector.integrations.runtime import make_daemon

    broker = Mosquitto(tmp_path / "broker").start()
    consumer = Consumer(broker.port)
    defects = defect_pattern(60, every=2, offset=1)
    folder = write_folder(tmp_path / "frames", defects)
    cfg = base_config(tiny_model, endpoint, [{"name": "cam0", "source": str(folder), "fps": 30.0}],
                      publish={"mqtt": {"url": broker.url, "box": "box1", "buffer_size": 8, "qos": 1}})
    daemon = make_daemon(daemon_config(cfg))
    try:
        daemon.start()
        time.sleep(0.6)
        broker.stop()  # mid-run outage: about 1 s of events, far more than the 8-message buffer
        t_stop = time.monotonic()
        frames_before = daemon.counters.get("inferred_frames")
        time.sleep(1.0)
        assert daemon.counters.get("inferred_frames") > frames_before + 15  # inspection never waited
        broker.start()
        code = daemon.wait(timeout=30)
    except BaseException:
        daemon.shutdown()
        broker.stop()
        raise
    assert daemon.counters.get("inferred_frames") == len(defects)
    c = daemon.mqtt_bridge.counts()
    assert c["pending"] == 0 and c["offered"] == c["delivered"] + c["dropped"], c
    assert c["dropped"] > 0 and daemon.mqtt_bridge.connects >= 2, c
    # what the full buffer dropped never reached the broker: evidence lost, the run fails saying so (it exited 0)
    assert code == 1 and daemon.failures == [f"publish.mqtt.url: broker {broker.url}: {c['dropped']} MQTT message(s) "
                                             f"not delivered (dropped from a full buffer {c['dropped']})"], \
        daemon.failures
    deadline = time.monotonic() + 10
    while len(consumer.unique_live()) < c["delivered"] and time.monotonic() < deadline:
        time.sleep(0.1)
    live = consumer.unique_live()
    consumer.close()
    broker.stop()
    assert len(live) == c["delivered"], (len(live), c, time.monotonic() - t_stop)
    # the defect headers received name their payload topics, whose bytes arrived as separate messages
    headers = [json.loads(p) for t, p in live if "/v1/defect/cam0" in t and t.endswith("cam0")]
    assert headers and all(h["type"] == "defect" and h["camera"] == "cam0" for h in headers)
    topics = {t for t, _ in live}
    for h in headers:
        assert all("data" not in d for d in h["payloads"])  # never base64 in JSON
        for d in h["payloads"]:
            assert d["topic"] in topics or c["dropped"]  # payload dropped with the outage is possible
    complete = [h for h in headers if all(d["topic"] in topics for d in h["payloads"])]
    assert len(complete) >= len(headers) - 4 and complete[0]["payloads"][0]["kind"] == "thumbnail"





def test_three_daemons_one_broker_one_consumer_across_a_broker_restart(tiny_model, tmp_path):
    """Scale-out: 3 daemons (boxes) → one Mosquitto → ``inspector subscribe mqtt://…`` sees every camera's
    events, in sequence, with run ids; the broker is restarted mid-run and nothing is lost (the buffer
    covers the outage; the consumer's persistent session and the broker's persistence keep the rest)."""
    from inspector.pipeline.config import daemon_config
    from inspector.integrations.runtime import make_daemon
    from pipeline_support import free_port

    broker = Mosquitto(tmp_path / "broker").start()
    defects = defect_pattern(40, every=2, offset=1)
    n_ng = sum(defects)
    consumer = subprocess.Popen([*CLI, "subscribe", broker.url, "--json", "--topic", "v1/defect", "--client-id",
                                 "plant-consumer", "--count", str(3 * n_ng), "--timeout", "30"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    daemons = []
    try:
        time.sleep(1.5)  # the consumer's subscription is in place before events flow
        for i in range(3):
            folder = write_folder(tmp_path / f"frames{i}", defects, seed=i)
            cfg = base_config(tiny_model, f"tcp://127.0.0.1:{free_port()}",
                              [{"name": f"cam{i}", "source": str(folder), "fps": 20.0}],
                              publish={"mqtt": {"url": broker.url, "box": f"box{i}"}})
            daemons.append(make_daemon(daemon_config(cfg)))
        for d in daemons:
            d.start()
        time.sleep(0.6)
        broker.stop()
        time.sleep(1.0)
        broker.start()
        codes = [d.wait(timeout=30) for d in daemons]
        out, err = consumer.communicate(timeout=40)
    finally:
        if consumer.poll() is None:
            consumer.kill()
        for d in daemons:
            d.shutdown()
        broker.stop()
    assert codes == [0, 0, 0]
    events = [json.loads(line) for line in out.splitlines()]
    missing = {f"box{i}": sorted(set(range(n_ng)) - {e["seq"] for e in events if e["box"] == f"box{i}"})
               for i in range(3)}
    assert len(events) == 3 * n_ng, (err, missing, [d.mqtt_bridge.counts() for d in daemons],
                                     (tmp_path / "broker" / "broker.log").read_text()[-4000:])
    for i, d in enumerate(daemons):
        mine = [e for e in events if e["box"] == f"box{i}"]
        assert sorted(e["seq"] for e in mine) == list(range(n_ng)) and {e["camera"] for e in mine} == {f"cam{i}"}
        assert {e["event_id"].split("-")[0] for e in mine} == {e["source"]["run_id"] for e in mine} == {d.run_id}
        c = d.mqtt_bridge.counts()
        assert c["dropped"] == 0 and c["pending"] == 0 and c["delivered"] == c["offered"], c
        assert d.mqtt_bridge.connects >= 2  # it did live through the restart
    assert "lost" not in err


def test_a_consumer_learns_what_the_bridge_dropped_while_the_broker_was_away(tmp_path):
    """The bridge's buffer overflowed during a broker outage: its drop count stayed in its log, and a consumer
    saw at most seq gaps (nothing of dropped payload, status or stats messages); a consumer listening to stats
    lost them all (stats events have no ``source``: the subscriber's paho thread raised on each). Now each stats
    message carries the bridge's counts, and the consumer tells the drops and the events it missed."""
    from inspector.events import InspectionEvent, StatsEvent, utc_iso
    from inspector.integrations.mqtt import MqttBridge, MqttSubscriber
    from inspector.pipeline.integration_config import MqttSection

    broker = Mosquitto(tmp_path / "broker").start()
    sub = MqttSubscriber(broker.url, ["defect", "stats"], client_id="loss-consumer")  # a persistent session
    bridge = None
    try:
        time.sleep(1.0)  # the subscription is in place
        broker.stop()
        bridge = MqttBridge(MqttSection(url=broker.url, box="b1", buffer_size=5, reconnect_max_s=1), run_id="r1")
        for seq in range(10):
            bridge.offer(InspectionEvent(type="defect", camera="c", seq=seq, frame_id=seq, event_id=f"r1-c-{seq}",
                                         decision="NG", score=1.0, threshold=0.5, capture={}, latency_ms={},
                                         model={}, run_id="r1"))
        bridge.offer(StatsEvent(seq=0, time_utc=utc_iso(), uptime_s=1, final=False, data={}, run_id="r1"))
        broker.start()
        got = [sub.recv(timeout=15) for _ in range(5)]
        notices = sub.notices()
    finally:
        if bridge is not None:
            bridge.close()
        sub.close()
        broker.stop()
    assert [e.seq for _, e in got] == [6, 7, 8, 9, 0] and bridge.counts()["dropped"] == 6, (got, notices)
    assert got[-1][1].data["mqtt_bridge"]["dropped"] == 6 and sub.bridge_dropped == 6, notices
    assert any("its MQTT bridge dropped 6 message(s) in run r1" in n for n in notices), notices
    assert any("missed 6 defect event(s) of camera 'c'" in n for n in notices), notices


def test_a_full_bridge_buffer_is_told_once_when_it_starts_dropping_and_once_with_the_count_when_it_has_room(
        tmp_path, caplog):
    """A broker outage longer than publish.mqtt.buffer_size messages: the bridge dropped its oldest messages with
    no line in the daemon's log (counted only, in its counts and stats, and in an INFO line at shutdown). Now one
    warning when it starts dropping, none per message, and one when it has room again with how many it dropped."""
    import logging

    from inspector.events import InspectionEvent
    from inspector.integrations.mqtt import MqttBridge
    from inspector.pipeline.integration_config import MqttSection

    def defect(seq: int) -> InspectionEvent:
        return InspectionEvent(type="defect", camera="c", seq=seq, frame_id=seq, event_id=f"r1-c-{seq}",
                               decision="NG", score=1.0, threshold=0.5, capture={}, latency_ms={}, model={},
                               run_id="r1")

    broker = Mosquitto(tmp_path / "broker")  # not started: the broker is away
    bridge = MqttBridge(MqttSection(url=broker.url, box="b1", buffer_size=5, reconnect_max_s=1,
                                    state_file=str(tmp_path / "s.json")), run_id="r1")
    try:
        with caplog.at_level(logging.WARNING, logger="inspector.mqtt"):
            for seq in range(30):
                bridge.offer(defect(seq))
            broker.start()
            assert bridge.flush(20), bridge.counts()
            bridge.offer(defect(30))
            assert bridge.flush(10), bridge.counts()
    finally:
        bridge.close()
        broker.stop()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("publish.mqtt.buffer_size: ")]
    assert bridge.counts()["dropped"] == 25
    assert len(lines) == 2 and "the oldest messages are dropped" in lines[0], lines
    assert "has room again; 25 message(s) were dropped" in lines[1], lines


def test_bridge_drops_after_its_last_stats_reach_the_consumer(tmp_path):
    """Drops during a broker outage with no stats message after it (stats off, or the run ended first) were
    never told: the consumer saw only 'missed before joining'. The bridge now publishes its counts, retained,
    on <prefix>/<box>/v1/bridge at each connect and at shutdown (final), and MqttSubscriber tells them."""
    from inspector.events import InspectionEvent
    from inspector.integrations.mqtt import MqttBridge, MqttSubscriber
    from inspector.pipeline.integration_config import MqttSection

    broker = Mosquitto(tmp_path / "broker").start()
    sub = MqttSubscriber(broker.url, ["defect"], client_id="tail-consumer")
    bridge = None
    try:
        time.sleep(1.0)  # the subscription is in place
        broker.stop()
        bridge = MqttBridge(MqttSection(url=broker.url, box="b1", buffer_size=5, reconnect_max_s=1, stats=False),
                            run_id="r1")
        for seq in range(8):
            bridge.offer(InspectionEvent(type="defect", camera="c", seq=seq, frame_id=seq, event_id=f"r1-c-{seq}",
                                         decision="NG", score=1.0, threshold=0.5, capture={}, latency_ms={},
                                         model={}, run_id="r1"))
        broker.start()
        got = [sub.recv(timeout=15) for _ in range(5)]
        assert bridge.flush(10)
        bridge.close()
        deadline = time.monotonic() + 10
        notices: list[str] = []
        while time.monotonic() < deadline and not any("bridge dropped" in n for n in notices):
            assert sub.recv(timeout=0.1) is None  # takes in the bridge counts (not an event)
            notices += sub.notices()
    finally:
        if bridge is not None:
            bridge.close()
        sub.close()
        broker.stop()
    assert [e.seq for _, e in got] == [3, 4, 5, 6, 7] and bridge.counts()["dropped"] == 3, (got, notices)
    assert any("box b1: its MQTT bridge dropped 3 message(s) in run r1" in n for n in notices), notices
    assert sub.bridge_dropped == 3, notices


def _defects(bridge, seqs) -> None:
    from inspector.events import InspectionEvent

    for seq in seqs:
        bridge.offer(InspectionEvent(type="defect", camera="c", seq=seq, frame_id=seq, event_id=f"r1-c-{seq}",
                                     decision="NG", score=1.0, threshold=0.5, capture={}, latency_ms={}, model={},
                                     run_id="r1"))


def _consume(url: str, state, n: int) -> tuple[list, list[str]]:
    """One MqttSubscriber session with ``state``: the seqs of ``n`` defects, and every notice of the session."""
    from inspector.integrations.mqtt import MqttSubscriber

    sub = MqttSubscriber(url, ["defect"], state=state)
    try:
        got = [sub.recv(timeout=15) for _ in range(n)]
        while sub.recv(timeout=0.5) is not None:  # the rest: retained bridge counts
            pass
    finally:
        sub.close()
    return [e.seq for _, e in filter(None, got)], sub.notices()


def test_a_restarted_mqtt_subscriber_tells_what_it_missed_while_down_and_no_drop_twice(tmp_path):
    """`subscribe mqtt://` and MqttSubscriber had no state: restarted, they took the defects published while
    they were down for a late join, and the retained v1/bridge counts re-told the bridge's old drops at every
    start. The same state file as the ZeroMQ subscriber's now keeps each box's accounting and the drops told."""
    from inspector.integrations.mqtt import MqttBridge
    from inspector.pipeline.integration_config import MqttSection

    broker = Mosquitto(tmp_path / "broker").start()
    bridge = MqttBridge(MqttSection(url=broker.url, box="b1", buffer_size=5, reconnect_max_s=1, stats=False),
                        run_id="r1")
    state = tmp_path / "sub.state"
    try:
        publish_later = threading.Timer(1.0, _defects, (bridge, range(3)))  # once the subscription is in place
        publish_later.start()
        first = _consume(broker.url, state, 3)
        _defects(bridge, range(3, 5))  # nobody listening: the broker keeps nothing (clean session)
        broker.stop()
        _defects(bridge, range(5, 12))  # buffer of 5 messages: 5 and 6 dropped by the bridge
        broker.start()
        assert bridge.flush(15)
        threading.Timer(1.0, _defects, (bridge, [12])).start()
        second = _consume(broker.url, state, 1)
        threading.Timer(1.0, _defects, (bridge, [13])).start()
        third = _consume(broker.url, state, 1)
    finally:
        bridge.close()
        broker.stop()
    assert first[0] == [0, 1, 2] and second[0] == [12] and third[0] == [13], (first, second, third)
    told = "\n".join(second[1])
    assert "resumed the subscriber state" in told and "box b1: last heard run r1" in told, told
    assert ("box b1: missed 9 defect event(s) of camera 'c' (seq 3..11) in run r1 while this subscriber was not "
            "running") in told, told
    assert "box b1: its MQTT bridge dropped 2 message(s) in run r1" in told, told
    assert not any("dropped" in n or "missed" in n for n in third[1]), third[1]


def test_what_was_in_flight_when_the_link_dropped_reaches_the_broker_before_newer_events(tmp_path):
    """A pulled cable leaves QoS 1 messages in flight; paho re-sends them after reconnecting, but it calls
    on_connect first, and the bridge's sender, woken there, published the events buffered meanwhile ahead of
    them. Consumers then told newer seqs first: 'lost', then 'arrived late' (seen in CI, 3 daemons across a
    broker restart). New messages now wait until what was in flight is acknowledged (MQTT 3.1.1 §4.6 order)."""
    from inspector.integrations.mqtt import MqttBridge, MqttSubscriber
    from inspector.pipeline.integration_config import MqttSection

    broker = Mosquitto(tmp_path / "broker").start()
    link = Partition(broker.port)
    sub = MqttSubscriber(broker.url, ["defect"])
    bridge = MqttBridge(MqttSection(url=f"mqtt://127.0.0.1:{link.port}", box="b1", reconnect_max_s=1, stats=False), run_id="r1")
    try:
        time.sleep(1.0)  # both connected and subscribed
        _defects(bridge, [0])
        assert sub.recv(timeout=10)[1].seq == 0
        link.hold()
        _defects(bridge, range(1, 6))  # sent into the void: in flight, never acknowledged
        time.sleep(0.5)
        link.cut()
        time.sleep(0.3)  # paho saw the link go: the bridge buffers what comes meanwhile
        _defects(bridge, range(6, 41))
        got = [sub.recv(timeout=15) for _ in range(40)]
        notices = sub.notices()
    finally:
        bridge.close()
        sub.close()
        link.close()
        broker.stop()
    assert [e.seq for _, e in filter(None, got)] == list(range(1, 41)), notices
    assert not any("lost" in n or "late" in n for n in notices), notices


@pytest.mark.parametrize("client_id", [None, "kept-session"])
def test_an_mqtt_gap_across_a_broker_disconnect_says_so(tmp_path, client_id):
    """The ZeroMQ subscriber says when a gap spans a dropped connection; MqttSubscriber's gaps said only
    'lost'. Now a gap found after a broker disconnect says it spans it and, from the CONNACK's session-present
    flag, whether the broker queued what was published meanwhile for this subscriber."""
    from inspector.integrations.mqtt import MqttBridge, MqttSubscriber
    from inspector.pipeline.integration_config import MqttSection

    broker = Mosquitto(tmp_path / "broker").start()
    sub = MqttSubscriber(broker.url, ["defect"], client_id=client_id)
    bridge = MqttBridge(MqttSection(url=broker.url, box="b1", reconnect_max_s=1, stats=False), run_id="r1")
    try:
        time.sleep(1.0)  # both connected and subscribed
        _defects(bridge, [0])
        assert sub.recv(timeout=10)[1].seq == 0
        broker.stop()
        broker.start()
        deadline = time.monotonic() + 15
        while not (sub.client.is_connected() and bridge.connected) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # the subscriptions are in place again
        _defects(bridge, [5])
        assert sub.recv(timeout=10)[1].seq == 5
        notices = sub.notices()
    finally:
        bridge.close()
        sub.close()
        broker.stop()
    lost = [n for n in notices if "lost 4 defect event(s)" in n]
    kept = "kept this subscriber's session" if client_id else "kept no session for this subscriber"
    assert len(lost) == 1 and "across a broker disconnect at " in lost[0] and kept in lost[0], notices


def test_final_bridge_counts_undelivered_at_shutdown_are_told_by_the_next_run(tmp_path):
    """A bridge shut down while the broker is away could not deliver its final v1/bridge counts, so its last
    drops (and the messages never delivered) were never told. It now keeps them in a small state file (outside
    any evidence folder) and the next run of the box publishes them when it connects; then the file goes."""
    from inspector.integrations.mqtt import MqttBridge, MqttSubscriber
    from inspector.pipeline.integration_config import MqttSection

    broker = Mosquitto(tmp_path / "broker").start()
    state = tmp_path / "state" / "bridge.json"
    cfg = MqttSection(url=broker.url, box="b1", buffer_size=2, reconnect_max_s=1, stats=False, state_file=str(state))
    sub = MqttSubscriber(broker.url, ["defect"], client_id="tail-consumer")
    bridge = second = None
    try:
        bridge = MqttBridge(cfg, run_id="r1")
        time.sleep(1.0)
        broker.stop()
        _defects(bridge, range(5))  # 3 dropped, 2 pending at shutdown
        bridge.flush(0.2)
        bridge.close()
        assert state.is_file()
        broker.start()
        second = MqttBridge(cfg, run_id="r2")
        deadline = time.monotonic() + 15
        notices: list[str] = []
        while time.monotonic() < deadline and not any("in run r1" in n for n in notices):
            sub.recv(timeout=0.2)
            notices += sub.notices()
        deadline = time.monotonic() + 5
        while state.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for b in (bridge, second):
            if b is not None:
                b.close()
        sub.close()
        broker.stop()
    assert any("its MQTT bridge dropped 5 message(s) in run r1 (2 never delivered at its shutdown" in n
               for n in notices), notices
    assert not state.exists()


def test_mqtt_topics_select_what_they_say_a_camera_whole(tmp_path):
    """'subscribe mqtt://… --topic v1/defect/cam1' kept only the type: every camera's defects came (cam10's too),
    and '--topic v1/' (everything, as over ZeroMQ) gave defects and statuses only, never the stats. Now the
    topics map onto MQTT filters level by level, as over ZeroMQ (events.topic_matches); 'v1/def' is refused."""
    from inspector.events import InspectionEvent, StatsEvent, StatusEvent, utc_iso
    from inspector.integrations.mqtt import MqttBridge
    from inspector.pipeline.integration_config import MqttSection

    def defect(camera: str, seq: int) -> InspectionEvent:
        return InspectionEvent(type="defect", camera=camera, seq=seq, frame_id=seq, event_id=f"r1-{camera}-{seq}",
                               decision="NG", score=1.0, threshold=0.5, capture={}, latency_ms={}, model={},
                               run_id="r1")

    broker = Mosquitto(tmp_path / "broker").start()
    subs = {topic: subprocess.Popen([*CLI, "subscribe", broker.url, "--json", "--topic", topic, "--timeout", "3"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for topic in ("v1/defect/cam1", "v1/")}
    bridge = MqttBridge(MqttSection(url=broker.url, box="b1"), run_id="r1")
    try:
        time.sleep(2.5)  # both consumers subscribed
        for event in [defect("cam1", 0), defect("cam10", 0), defect("cam10", 1), defect("cam1", 1),
                      defect("cam10", 2), StatusEvent(camera="cam1", seq=0, state="online", previous=None,
                                                      reason="", time_utc=utc_iso(), run_id="r1"),
                      StatsEvent(seq=0, time_utc=utc_iso(), uptime_s=1, final=True, run_id="r1", data={"sequences": {
                          "defect/cam1": 2, "defect/cam10": 3, "defect/cam11": 4, "status/cam1": 1}})]:
            bridge.offer(event)
        assert bridge.flush(10)
        got = {topic: proc.communicate(timeout=30) for topic, proc in subs.items()}
    finally:
        for proc in subs.values():
            if proc.poll() is None:
                proc.kill()
        bridge.close()
        broker.stop()
    one = [json.loads(line) for line in got["v1/defect/cam1"][0].splitlines()]
    assert [(e["camera"], e["seq"]) for e in one] == [("cam1", 0), ("cam1", 1)], got["v1/defect/cam1"][1]
    assert "box b1: 0 event(s) missed" in got["v1/defect/cam1"][1], got["v1/defect/cam1"][1]
    every = [json.loads(line) for line in got["v1/"][0].splitlines()]
    assert sorted(e["type"] for e in every) == ["defect"] * 5 + ["stats", "status"], got["v1/"][1]
    assert "missed 4 defect event(s) of camera 'cam11'" in got["v1/"][1]
    res = subprocess.run([*CLI, "subscribe", "mqtt://127.0.0.1:1", "--topic", "v1/def"], capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 2 and "topic 'v1/def'" in res.stderr and "Traceback" not in res.stderr


def _defect_messages(box: str, seq: int) -> list:
    """The MQTT messages of defect ``seq`` of camera cam1 in run r1 of ``box``: its header and a thumbnail
    payload whose bytes name the box and seq."""
    from inspector.events import InspectionEvent, Payload
    from inspector.integrations.mqtt import event_messages

    event = InspectionEvent(type="defect", camera="cam1", seq=seq, frame_id=seq, event_id=f"r1-cam1-{seq}",
                            decision="NG", score=1.0, threshold=0.5, capture={}, latency_ms={}, model={},
                            run_id="r1", payloads=[Payload("thumbnail", "jpeg", f"{box}-{seq}".encode(), [2, 2])])
    return event_messages(event, f"inspector/{box}", "r1", True)


def _publish_raw(broker: Mosquitto, consumer: subprocess.Popen, batches: list[list], subscribed_s: float):
    """Publish ``batches`` of messages (QoS 1, each acknowledged) as a plain paho client, 0.5 s apart, once the
    consumer has had ``subscribed_s`` to subscribe; then the consumer's (stdout, stderr). Stops the broker."""
    import paho.mqtt.client as mqtt

    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="raw-publisher")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        time.sleep(subscribed_s)
        for i, batch in enumerate(batches):
            time.sleep(0.5 if i else 0)
            for msg in batch:
                pub.publish(msg.topic, msg.payload, qos=1).wait_for_publish(5)
        return consumer.communicate(timeout=30)
    finally:
        if consumer.poll() is None:
            consumer.kill()
        pub.loop_stop()
        broker.stop()


def test_mqtt_save_dir_keeps_every_header_and_payload_in_either_order(tmp_path):
    """'subscribe mqtt://… --save-dir' saved nothing at all (only the ZeroMQ route saved). Now headers are saved
    with the box leading their names (two boxes, one camera name, one run id: two files), each payload message
    goes next to its header whether the broker delivered it before or after it, a payload without a header is
    kept under its topic, and a payload that never came is told."""
    broker = Mosquitto(tmp_path / "broker").start()
    save = tmp_path / "saved"
    consumer = subprocess.Popen([*CLI, "subscribe", broker.url, "--topic", "v1/defect", "--save-dir", str(save),
                                 "--timeout", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    (h0, p0), (h1, p1), (h2, _), (_, p9) = (_defect_messages("b1", s) for s in (0, 1, 2, 9))
    b2h, b2p = _defect_messages("b2", 0)
    # seq 1's payload first; seq 2's never; seq 9's header never
    out, err = _publish_raw(broker, consumer, [[h0, p0, p1, h1, h2, p9, b2h, b2p]], subscribed_s=2.5)
    files = {p.name: p.read_bytes() for p in save.iterdir() if not p.name.startswith(".")}
    for box, seq in (("b1", 0), ("b1", 1), ("b2", 0)):
        assert files[f"{box}-defect-cam1-r1-{seq:07d}.thumbnail.jpg"] == f"{box}-{seq}".encode(), (sorted(files), err)
        assert json.loads(files[f"{box}-defect-cam1-r1-{seq:07d}.json"])["seq"] == seq
    assert "b1-defect-cam1-r1-0000002.json" in files and "b1-defect-cam1-r1-0000002.thumbnail.jpg" not in files
    assert [data for name, data in files.items() if name.startswith("payload-")] == [b"b1-9"], sorted(files)
    assert "1 payload(s) never came" in err and "came without its header" in err, err
    assert "0 event(s) and 1 payload(s) not saved" in err, err


def test_mqtt_count_waits_for_the_last_payloads_past_other_messages_and_a_redelivery_is_no_orphan(tmp_path):
    """With --count, the last event's payload message came after another box's header (the broker orders each
    topic alone): the wait for it stopped at that header, and the payload was told as 'never came'. A payload
    delivered again (QoS 1 re-delivery) after its file was written must neither overwrite it nor be saved as an
    orphan, nor be told."""
    broker = Mosquitto(tmp_path / "broker").start()
    save = tmp_path / "saved"
    consumer = subprocess.Popen([*CLI, "subscribe", broker.url, "--topic", "v1/defect", "--save-dir", str(save),
                                 "--count", "2", "--timeout", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    assert "subscribed to" in consumer.stderr.readline()
    (h0, p0), (h1, p1), (o0, q0) = (_defect_messages(b, s) for b, s in (("b1", 0), ("b1", 1), ("b2", 0)))
    # p0 again: a re-delivery; b2's header between b1's last event and its payload
    out, err = _publish_raw(broker, consumer, [[h0, p0, p0, h1, o0], [p1, p0, q0]], subscribed_s=1.5)
    files = {p.name: p.read_bytes() for p in save.iterdir() if not p.name.startswith(".")}
    assert sorted(files) == [f"b1-defect-cam1-r1-{s:07d}{x}" for s in (0, 1) for x in (".json", ".thumbnail.jpg")], \
        (sorted(files), err)
    assert files["b1-defect-cam1-r1-0000001.thumbnail.jpg"] == b"b1-1"
    assert "never came" not in err and "without its header" not in err, err
    assert "received 2 event(s)" in err and "0 event(s) and 0 payload(s) not saved" in err, err


_SIGNALLED_INSIDE_RECV = """
import os, signal, sys
from inspector.integrations.mqtt import MqttSubscriber
real = MqttSubscriber._account
def account(self, box, event):  # SIGTERM once defect seq 1 is taken in, before the command prints it
    got = real(self, box, event)
    if event.type == "defect" and event.seq == 1:
        os.kill(os.getpid(), signal.SIGTERM)
    return got
MqttSubscriber._account = account
from inspector.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_signal_inside_mqtt_recv_leaves_the_event_counted_missed(tmp_path):
    """As for the ZeroMQ subscriber: a SIGTERM after an MQTT message was taken in but before it was printed
    saved the state with it counted as heard. The state now counts only events handled: seq 1 is next."""
    broker = Mosquitto(tmp_path / "broker").start()
    state = tmp_path / "state"
    consumer = subprocess.Popen([sys.executable, "-c", _SIGNALLED_INSIDE_RECV, "subscribe", broker.url, "--topic",
                                 "v1/defect", "--state", str(state), "--timeout", "20"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "subscribed to" in consumer.stderr.readline()
    out, err = _publish_raw(broker, consumer, [[_defect_messages("b1", s)[0] for s in range(3)]], subscribed_s=1.5)
    assert consumer.returncode == 143 and "received 1 event(s)" in err and "Traceback" not in err, err
    assert len(out.splitlines()) == 1, out
    streams = json.loads(state.read_text())["tracker"]["boxes"]["b1"]["streams"]
    assert [s[3] for s in streams] == [1], streams


@pytest.mark.parametrize("content", [b"\xff\xfe\x00secret", None], ids=["binary", "device"])
def test_an_unreadable_mqtt_password_file_is_one_line(tmp_path, content):
    """The bridge read publish.mqtt.password_file by hand: binary bytes ended in a UnicodeDecodeError traceback
    and a device (/dev/zero) was read until memory ran out. It goes through the shared reader of secret files."""
    from inspector.errors import ConfigError
    from inspector.integrations.mqtt import MqttBridge
    from inspector.pipeline.integration_config import MqttSection

    path = tmp_path / "password"
    if content is None:
        path = "/dev/zero"
    else:
        path.write_bytes(content)
    cfg = MqttSection(url="mqtt://127.0.0.1:1", box="b1", username="op", password_file=str(path))
    with pytest.raises(ConfigError, match="^publish.mqtt.password_file: ") as err:
        MqttBridge(cfg, run_id="r1")
    assert "\n" not in str(err.value)


def test_a_publisher_inventing_box_names_cannot_grow_the_mqtt_subscriber(tmp_path, monkeypatch):
    """Each box heard got a loss tracker kept for good: a publisher on the broker inventing a box name (and a
    retained v1/bridge) per message grew the subscriber without bound. The least recently heard boxes past
    MEMORY_BOXES are forgotten, once told; a box that keeps publishing is never forgotten."""
    import paho.mqtt.client as mqtt

    from inspector.integrations import mqtt as bridge_module
    from inspector.integrations.mqtt import MqttSubscriber

    monkeypatch.setattr(bridge_module, "MEMORY_BOXES", 20)  # the rule, at a size a test can reach quickly
    broker = Mosquitto(tmp_path / "broker").start()
    sub = MqttSubscriber(broker.url, ["v1/defect"])
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="rogue")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        time.sleep(1.0)  # subscribed
        for i in range(60):
            for box in ("steady", f"rogue{i}"):
                for msg in _defect_messages(box, i)[:1]:
                    pub.publish(msg.topic, msg.payload, qos=1).wait_for_publish(5)
            pub.publish(f"inspector/ghost{i}/v1/bridge", json.dumps({"run_id": f"r{i}", "dropped": 1}), qos=1,
                        retain=True).wait_for_publish(5)
        got = [sub.recv(timeout=10) for _ in range(120)]
        notices = sub.notices()
    finally:
        pub.loop_stop()
        sub.close()
        broker.stop()
    assert all(got) and len(sub.loss) <= 20 and "steady" in sub.loss, sorted(sub.loss)
    assert sum("boxes heard: the accounting of the least recently heard is forgotten" in n for n in notices) == 1
    assert not any("box steady:" in n for n in notices), [n for n in notices if "steady" in n]


def test_hostile_headers_on_the_broker_are_skipped_and_the_stream_goes_on(tmp_path):
    """The MQTT subscriber parses headers as the ZeroMQ one does (events.wire_json): a header nested too deeply
    raised RecursionError out of recv (a traceback from ``subscribe mqtt://``), and one listing thousands of
    payload descriptors was handed on whole (``--save-dir`` kept a file name waiting for each). Both are skipped;
    the well-formed event after them is returned."""
    import paho.mqtt.client as mqtt

    from inspector.integrations.mqtt import MqttSubscriber

    broker = Mosquitto(tmp_path / "broker").start()
    sub = MqttSubscriber(broker.url, ["v1/defect"], on_payload=lambda *a: None)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="rogue")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    header = json.loads(_defect_messages("box", 0)[0].payload)
    deep = json.dumps(header, separators=(",", ":")).replace('"source":{}', '"source":' + '{"a":' * 5000 + "1" + "}" * 5000)
    many = json.dumps({**header, "payloads": [{"kind": "k", "encoding": "png", "topic": f"t{i}"} for i in range(5000)]})
    try:
        time.sleep(1.0)  # subscribed
        for payload in (deep, many):
            assert payload != json.dumps(header, separators=(",", ":"))
            pub.publish("inspector/box/v1/defect/cam1", payload, qos=1).wait_for_publish(5)
        for msg in _defect_messages("box", 1)[:1]:
            pub.publish(msg.topic, msg.payload, qos=1).wait_for_publish(5)
        got = sub.recv(timeout=10)
    finally:
        pub.loop_stop()
        sub.close()
        broker.stop()
    assert got is not None and got[1].seq == 1, (got, sub.notices())


_FEW_WAITING = """
import sys
import inspector.commands.subscribe as subscribe
subscribe.WAITING_PAYLOADS = 5  # the rule, at a size a test reaches quickly
from inspector.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_headers_whose_payloads_never_come_cannot_grow_the_mqtt_saver(tmp_path):
    """'subscribe mqtt://… --save-dir' kept a file name waiting for every payload a header named, for good: a
    publisher sending headers without their payloads grew the list without bound. The oldest beyond
    WAITING_PAYLOADS are given up, counted as not saved and told in one line; a whole event after them is saved."""
    broker = Mosquitto(tmp_path / "broker").start()
    save = tmp_path / "saved"
    consumer = subprocess.Popen([sys.executable, "-c", _FEW_WAITING, "subscribe", broker.url, "--topic", "v1/defect",
                                 "--save-dir", str(save), "--timeout", "3"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    headers = [_defect_messages("b1", seq)[0] for seq in range(8)]  # their payloads never come
    out, err = _publish_raw(broker, consumer, [headers, _defect_messages("b1", 8)], subscribed_s=2.5)
    files = {p.name: p.read_bytes() for p in save.iterdir() if not p.name.startswith(".")}
    assert files["b1-defect-cam1-r1-0000008.thumbnail.jpg"] == b"b1-8", (sorted(files), err)
    assert err.count("payloads waited for") == 1 and "more than 5 payloads waited for" in err, err
    assert "received 9 event(s)" in err and "0 event(s) and 8 payload(s) not saved" in err, err
    assert "Traceback" not in err, err


def test_a_flood_while_the_consumer_is_slow_is_bounded_dropped_newest_told_once_and_counted_missed(
        tmp_path, monkeypatch):
    """paho's network thread queued every message for recv without bound: a flood on the broker while the
    consumer was busy (saving to a slow disk) grew the subscriber's memory without end. The arrival queue holds
    at most queue_bytes (--queue-mib); beyond it the newest messages are dropped, told in one line per NOTICE_S
    (not one per message: NOTICE_S is made long here, so a second call tells nothing new until the end), and the
    events among them show as one gap, said to be this subscriber's full queue."""
    import paho.mqtt.client as mqtt

    from inspector.integrations import mqtt as bridge_module
    from inspector.integrations.mqtt import MqttSubscriber

    monkeypatch.setattr(bridge_module, "NOTICE_S", 3600.0)
    broker = Mosquitto(tmp_path / "broker").start()
    sub = MqttSubscriber(broker.url, ["v1/defect"], queue_bytes=64 * 1024)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="flood")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        time.sleep(1.0)  # subscribed
        for seq in range(1000):  # the consumer reads none of them meanwhile
            pub.publish(*(lambda m: (m.topic, m.payload))(_defect_messages("box", seq)[0]), qos=1).wait_for_publish(5)
        end = time.monotonic() + 30
        while len(sub.messages) + sub.messages.dropped < 1000 and time.monotonic() < end:
            time.sleep(0.05)  # every message delivered: queued or dropped
        queued, held = len(sub.messages), sub.messages.queued_bytes
        first, again = sub.notices(), sub.notices()
        got = [sub.recv(timeout=1.0) for _ in range(queued)]
        pub.publish(*(lambda m: (m.topic, m.payload))(_defect_messages("box", 1000)[0]), qos=1).wait_for_publish(5)
        last = sub.recv(timeout=10)
        final = sub.notices(final=True)
    finally:
        pub.loop_stop()
        sub.close()
        broker.stop()
    assert held <= 64 * 1024 and 10 < queued < 1000 and queued + sub.messages.dropped == 1000, (queued, held)
    assert [event.seq for _, event in got] == list(range(queued)) and last[1].seq == 1000  # the newest dropped
    told = [n for n in first if "queue of messages not yet handled was full" in n]
    assert len(told) == 1 and f"dropped {1000 - queued} message(s)" in told[0] and again == [], (first, again)
    gap = [n for n in final if "lost" in n]
    assert len(gap) == 1 and f"lost {1000 - queued} defect event(s)" in gap[0] and "its queue full (--queue-mib)" in gap[0], final
    assert f"{1000 - queued} dropped by this subscriber (its queue full)" in sub.summary()
    assert sub.loss["box"].gaps == 1000 - queued


def test_mqtt_messages_over_max_message_mib_and_malformed_ones_are_dropped_counted_and_told(tmp_path):
    """``--max-message-mib`` bounded only the ZeroMQ subscriber: over MQTT a payload of any size was queued
    and saved, and a header too large was parsed. Malformed headers (not JSON, a lone surrogate, a camera other
    than its topic's, a payload descriptor whose encoding is a list) were only logged, or crashed the saver:
    neither counted nor in the summary. Now each is dropped as it arrives (before it is queued or parsed) or
    skipped, told in one line, and counted in the summary; the events around them are printed and saved."""
    broker = Mosquitto(tmp_path / "broker").start()
    save = tmp_path / "saved"
    consumer = subprocess.Popen([*CLI, "subscribe", broker.url, "--topic", "v1/defect", "--save-dir", str(save),
                                 "--max-message-mib", "1", "--timeout", "3"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    big_payload = _defect_messages("b1", 1)
    big_payload[1].payload = b"x" * (2**20 + 1)
    header = json.loads(_defect_messages("b1", 3)[0].payload)
    topic = "inspector/b1/v1/defect/cam1"
    hostile = [b"{not json", b"\xff\xfe", json.dumps({**header, "camera": "\ud800"}).encode(),
               json.dumps({**header, "camera": "cam2"}).encode(),
               json.dumps({**header, "payloads": [{"kind": "k", "encoding": ["png"], "topic": f"{topic}/e/k"}]}).encode(),
               json.dumps({**header, "source": {"pad": "y" * 2**20}}).encode()]  # over 1 MiB
    from inspector.integrations.mqtt import Message

    out, err = _publish_raw(broker, consumer, [_defect_messages("b1", 0), big_payload,
                                               [Message(topic, h) for h in hostile], _defect_messages("b1", 2)],
                            subscribed_s=2.5)
    out, err = out.decode(), err.decode()
    # the payload over the limit is not saved: the save folder is short of it, exit 1 (said last)
    assert consumer.returncode == 1 and "Traceback" not in err, err[-3000:]
    assert "subscribe: 1 event(s) or payload(s) not saved to" in err, err[-3000:]
    assert [line.split()[3] for line in out.splitlines()] == ["#0", "#1", "#2"], out
    assert max(p.stat().st_size for p in save.iterdir()) < 2**20, sorted(save.iterdir())
    summary = err.splitlines()[-2]  # the last says what was not saved
    assert "2 message(s) over --max-message-mib 1 dropped" in summary, summary
    assert "5 malformed message(s) skipped" in summary, summary
    assert err.count("bytes a message may have (subscribe --max-message-mib)") == 2, err[-3000:]
    assert err.count("skipped a malformed message on inspector/b1/v1/defect/cam1: ") == 5, err[-3000:]


def test_a_fuzzed_mqtt_publisher_is_printed_or_counted_never_a_crash_nor_a_file_outside(tmp_path):
    """The ZeroMQ fuzz's messages (test_subscribe_fuzz: same seed) as MQTT headers on the broker (their topic
    under a box; a hostile topic, which the subscription would not take, becomes a defect topic): ``subscribe
    mqtt://`` ends normally,
    prints each as one clean line or counts it (malformed, or a duplicate it does not show twice), and writes
    nothing outside its --save-dir."""
    import os
    import re

    from inspector.integrations.mqtt import Message
    from test_subscribe_fuzz import CONTROL, messages

    def topic(frames: list[bytes]) -> str:  # a topic the subscriber's filters take (the broker drops the rest)
        text = frames[0].decode("utf-8", "replace")
        return f"inspector/b1/{text}" if re.fullmatch(r"v1/((defect|status)/cam[12]|stats)", text) else \
            "inspector/b1/v1/defect/cam1"

    sent = [Message(topic(frames), frames[1] if len(frames) > 1 else b"") for frames in messages(n=200)]
    broker = Mosquitto(tmp_path / "broker").start()
    root = tmp_path / "root"
    save = root / "box" / "events"
    (save / "defect-x").mkdir(parents=True)
    consumer = subprocess.Popen([*CLI, "subscribe", broker.url, "--topic", "v1/", "--save-dir", str(save),
                                 "--timeout", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=root)
    out, err = _publish_raw(broker, consumer, [sent], subscribed_s=2.5)
    out, err = out.decode(), err.decode()
    assert consumer.returncode == 0 and "Traceback" not in err, err[-3000:]
    assert not CONTROL.search(out + err), [line for line in (out + err).splitlines() if CONTROL.search(line)][:3]
    summary = err.splitlines()[-1]
    counts = [int(re.search(pattern, summary)[1]) for pattern in
              (r"received (\d+) event", r"(\d+) duplicate\(s\)", r"(\d+) malformed message\(s\) skipped")]
    assert counts[0] == len(out.splitlines()) and sum(counts) == len(sent), (counts, summary)
    assert [f for d, _, files in os.walk(root) for f in files if not d.startswith(str(save))] == []


def test_a_header_source_naming_payloads_is_wire_data_not_the_subscribers_descriptors(tmp_path):
    """The MQTT subscriber keeps the payload descriptors it checked in the event's ``source`` ('payloads',
    'payload_topics'), next to the wire's own ``source``; a header without descriptors left the wire's
    'source.payloads' there, and ``--save-dir`` read it as checked: a list of numbers, a text, a mapping or a
    descriptor whose encoding is a list ended the subscriber in a traceback. What the wire says under the
    subscriber's own names is dropped: each such event is printed and saved (header alone), and the next one too."""
    from inspector.integrations.mqtt import Message

    broker = Mosquitto(tmp_path / "broker").start()
    save = tmp_path / "root" / "saved"
    consumer = subprocess.Popen([*CLI, "subscribe", broker.url, "--topic", "v1/defect", "--save-dir", str(save),
                                 "--timeout", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=tmp_path)
    header, payload = _defect_messages("b1", 0)
    hostile = [[1], "abc", {"topic": "t"}, [{"topic": "t", "kind": "k", "encoding": []}],
               [{"topic": "inspector/b1/v1/defect/cam1/x/../../../../escaped", "kind": "/..", "encoding": "png"}]]
    batch = [Message(header.topic, json.dumps({**json.loads(header.payload), "seq": seq, "payloads": [],
                                               "source": {"payloads": value, "payload_topics": value}}).encode())
             for seq, value in enumerate(hostile, start=1)]
    out, err = _publish_raw(broker, consumer, [batch, [header, payload]], subscribed_s=2.5)
    assert consumer.returncode == 0 and "Traceback" not in err, err[-3000:]
    names = sorted(p.name for p in save.iterdir() if not p.name.startswith("."))
    assert names == sorted([f"b1-defect-cam1-r1-{seq:07d}.json" for seq in range(len(hostile) + 1)]
                           + ["b1-defect-cam1-r1-0000000.thumbnail.jpg"]), (names, err)
    assert [p for p in tmp_path.rglob("*") if p.is_file() and save not in p.parents and "broker" not in p.parts] == []
    assert "received 6 event(s)" in err and "0 event(s) and 0 payload(s) not saved" in err, err


def test_a_flood_of_malformed_mqtt_headers_is_counted_and_told_in_a_few_lines(tmp_path):
    """As the ZeroMQ subscriber (test_client): every malformed header was told in a line of its own, a publisher's
    flood a flood of lines, and so was every message over --max-message-mib. A burst of each is told one by one, the
    rest in one line counting them; the summary counts all, and the event after them is printed."""
    from inspector.integrations.mqtt import Message
    from inspector.throttle import BURST

    broker = Mosquitto(tmp_path / "broker").start()
    consumer = subprocess.Popen([*CLI, "subscribe", broker.url, "--topic", "v1/defect", "--timeout", "3",
                                 "--max-message-mib", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    header = _defect_messages("b1", 0)[0]
    garbage = [Message(header.topic, body) for body in (b"{not json", b"[" * 5000, b'{"schema_version": 1}') * 20]
    garbage += [Message(header.topic, b" " * (2**20 + 1))] * 15  # over --max-message-mib: dropped, told likewise
    out, err = _publish_raw(broker, consumer, [garbage, [header]], subscribed_s=2.5)
    assert consumer.returncode == 0 and "Traceback" not in err, err[-3000:]
    assert err.count("skipped a malformed message on ") == BURST, err[-3000:]
    assert f"{60 - BURST} more malformed message(s) skipped in " in err, err[-3000:]
    assert err.count("bytes a message may have (subscribe --max-message-mib)") == BURST, err[-3000:]
    assert f"{15 - BURST} more message(s) over --max-message-mib dropped in " in err, err[-3000:]
    assert "60 malformed message(s) skipped" in err.splitlines()[-1] and len(out.splitlines()) == 1, err[-2000:]
