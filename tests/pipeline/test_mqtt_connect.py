"""The MQTT bridge against a real Mosquitto broker it cannot use (marked ``mqtt``): a CA file that holds no
certificate, a TLS certificate not valid for the broker's address or from another CA, credentials the broker
refuses, no broker at all. Each is one line naming the setting or the broker and the reason; inspection goes on."""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from broker_support import MOSQUITTO, Mosquitto, password_broker
from net_faults import free_port
from pipeline_support import base_config, write_folder

CLI = [sys.executable, "-c", "import sys; from inspector.cli import main; sys.exit(main())"]
pytestmark = [pytest.mark.mqtt, pytest.mark.skipif(MOSQUITTO is None, reason="needs Debian's mosquitto"),
              pytest.mark.skipif(importlib.util.find_spec("paho") is None, reason="needs the 'mqtt' extra (paho-mqtt)")]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _certificates(folder: Path, host: str) -> dict[str, Path]:
    """A CA, a broker certificate it signs for ``host`` (a DNS name or an IP address), and another CA."""
    folder.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(folder / f"{ca}.key"),
                 "-out", str(folder / f"{ca}.pem"), "-days", "2", "-subj", f"/CN={ca}")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(folder / "broker.key"),
             "-out", str(folder / "broker.csr"), "-subj", f"/CN={host}")
    san = folder / "san.ext"
    san.write_text(f"subjectAltName={'IP' if host[0].isdigit() else 'DNS'}:{host}\n")
    _openssl("x509", "-req", "-in", str(folder / "broker.csr"), "-CA", str(folder / "ca.pem"), "-CAkey",
             str(folder / "ca.key"), "-CAcreateserial", "-out", str(folder / "broker.pem"), "-days", "2",
             "-extfile", str(san))
    return {name: folder / f"{name}.pem" for name in ("ca", "other-ca", "broker")} | {"key": folder / "broker.key"}


def _bridge(url: str, tmp_path: Path, **settings):
    from inspector.integrations.mqtt import MqttBridge
    from inspector.pipeline.integration_config import MqttSection

    cfg = MqttSection(url=url, box="b1", reconnect_max_s=1, state_file=str(tmp_path / "state.json"), **settings)
    return MqttBridge(cfg, run_id="r1")


def _attempts_told(broker: Mosquitto, caplog, marker: str, attempts: int = 3) -> list[str]:
    """The bridge's warnings once the broker has logged ``attempts`` failed connects (``marker`` in a line)."""
    deadline = time.monotonic() + 120  # a bounded wait: paho's back-off doubles, and a loaded machine is slower
    log = broker.folder / "broker.log"
    while time.monotonic() < deadline and log.read_text().count(marker) < attempts:
        time.sleep(0.1)
    assert log.read_text().count(marker) >= attempts, log.read_text()
    return [r.getMessage() for r in caplog.records if r.name == "inspector.mqtt" and r.levelno >= logging.WARNING]


@pytest.mark.parametrize("content", ["not a certificate\n", "", None], ids=["text", "empty", "folder"])
def test_a_ca_file_holding_no_certificate_is_one_line_naming_the_setting(tmp_path, content):
    """paho's tls_set let ssl.SSLError / IsADirectoryError / FileNotFoundError out of 'run --check': a traceback."""
    from inspector.errors import ConfigError

    ca = tmp_path / "ca.pem"
    ca.mkdir() if content is None else ca.write_text(content)
    with pytest.raises(ConfigError, match=f"^publish.mqtt.ca_file: {ca}") as err:
        _bridge("mqtts://127.0.0.1:1", tmp_path, ca_file=str(ca))
    assert "\n" not in str(err.value)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def _run_check(tiny_model, tmp_path, mqtt: dict) -> subprocess.CompletedProcess:
    """``inspector run --check`` of a daemon with one folder camera and ``mqtt`` as its publish.mqtt section."""
    cfg = base_config(tiny_model, f"ipc://{tmp_path}/ev.sock",
                      [{"name": "cam0", "source": str(write_folder(tmp_path / "frames", [False]))}],
                      publish={"mqtt": mqtt})
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    return subprocess.run([*CLI, "run", "--config", str(tmp_path / "cfg.yaml"), "--check"], capture_output=True,
                          text=True, timeout=120)


def test_run_check_with_a_ca_file_that_is_no_certificate_exits_2_in_one_line(tiny_model, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nnonsense\n-----END CERTIFICATE-----\n")
    mqtt = {"url": "mqtts://127.0.0.1:1", "box": "b1", "ca_file": str(ca), "state_file": str(tmp_path / "s.json")}
    run = _run_check(tiny_model, tmp_path, mqtt)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and f"publish.mqtt.ca_file: {ca}: no PEM certificate" in run.stderr


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.parametrize("case", ["host-mismatch", "other-ca"])
def test_a_broker_certificate_not_accepted_is_told_once_with_why_and_events_stay_buffered(tmp_path, caplog, case):
    """paho retried the TLS handshake every second and said nothing (DEBUG 'Connection failed, retrying', no
    reason): a box whose CA file or broker address was wrong buffered, then dropped, every event in silence."""
    certs = _certificates(tmp_path / "tls", "broker.plant" if case == "host-mismatch" else "127.0.0.1")
    broker = Mosquitto(tmp_path / "broker", options=(f"cafile {certs['ca']}", f"certfile {certs['broker']}",
                                                     f"keyfile {certs['key']}")).start()
    caplog.set_level(logging.INFO, logger="inspector.mqtt")
    bridge = _bridge(broker.url.replace("mqtt://", "mqtts://"), tmp_path,
                     ca_file=str(certs["ca" if case == "host-mismatch" else "other-ca"]))
    try:
        told = _attempts_told(broker, caplog, "failed: ")
    finally:
        bridge.close()
        broker.stop()
    why = "IP address mismatch" if case == "host-mismatch" else "certificate verify failed"
    lines = [t for t in told if "cannot connect" in t]
    assert len(lines) == 1 and "TLS: the broker's certificate is not accepted" in lines[0], told
    assert why in lines[0] or (case == "other-ca" and "self-signed" in lines[0]), lines
    assert bridge.counts()["delivered"] == 0


def test_credentials_the_broker_refuses_are_told_once_not_at_every_retry(tmp_path, caplog):
    """A refused CONNACK was a warning at each reconnect (every second to reconnect_max_s, for ever)."""
    broker = password_broker(tmp_path)
    (tmp_path / "password").write_text("wrong\n")
    caplog.set_level(logging.INFO, logger="inspector.mqtt")
    bridge = _bridge(broker.url, tmp_path, username="op", password_file=str(tmp_path / "password"))
    try:
        told = _attempts_told(broker, caplog, "not authorised")
    finally:
        bridge.close()
        broker.stop()
    lines = [t for t in told if "refused" in t]
    assert len(lines) == 1 and "Not authorized" in lines[0] and "cannot connect" in lines[0], told


def test_a_qos_over_the_brokers_maximum_is_told_once_with_the_qos_it_takes(tmp_path, caplog):
    """publish.mqtt.qos 2 to a broker that takes QoS 1 at most (Mosquitto's max_qos): it refuses each CONNECT
    (0x9B QoS not supported: the will's QoS) and said no more; its CONNACK's Maximum QoS property says what to set."""
    broker = Mosquitto(tmp_path / "broker", options=("max_qos 1",)).start()
    caplog.set_level(logging.INFO, logger="inspector.mqtt")
    bridge = _bridge(broker.url, tmp_path, qos=2)
    try:
        told = _attempts_told(broker, caplog, "QoS too high")
    finally:
        bridge.close()
        broker.stop()
    lines = [t for t in told if "refused" in t]
    assert len(lines) == 1, told
    assert ("the broker refused the connection: QoS not supported; publish.mqtt.qos is 2, the broker takes QoS 1 "
            "at most: set publish.mqtt.qos: 1") in lines[0], lines


def test_a_paho_that_hides_the_pubrec_refusal_is_told_not_counted_delivered_in_silence(tmp_path, caplog, monkeypatch):
    """No public paho-mqtt 2.x API gives a PUBREC's reason code, so QoS 2 refusals (the test above) are heard
    through two paho internals; a paho without them (a fault no installed paho shows on demand: removed here)
    counted every refused QoS 2 message delivered, and 'run --check' said refusals were told."""
    import paho.mqtt.client as mqtt

    monkeypatch.delattr(mqtt.Client, "_handle_pubrec")
    caplog.set_level(logging.INFO, logger="inspector.mqtt")
    # no broker: what is said needs none, and paho's dispatch (which still calls the method by name) gets no PUBREC
    bridges = {qos: _bridge(f"mqtt://127.0.0.1:{free_port()}", tmp_path, qos=qos) for qos in (1, 2)}
    for bridge in bridges.values():
        bridge.close()
    assert bridges[1].refusals_seen().startswith("MQTT 5, QoS 1: a message the broker refuses (its ACL) is counted")
    said = ("MQTT 5, QoS 2: this paho-mqtt does not let a PUBREC's refusal be heard, so a message the broker's ACL "
            "denies is counted delivered; QoS 1 tells it")
    assert bridges[2].refusals_seen() == said
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and said in r.getMessage()]
    assert len(warned) == 1, [r.getMessage() for r in caplog.records]


def test_no_broker_at_start_is_told_at_once_with_why(tmp_path, caplog):
    """Nothing was said until shutdown ('19 message(s) not delivered'), nor why."""
    caplog.set_level(logging.INFO, logger="inspector.mqtt")
    bridge = _bridge(f"mqtt://127.0.0.1:{free_port()}", tmp_path)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("cannot connect" in r.getMessage() for r in caplog.records):
            time.sleep(0.05)
    finally:
        bridge.close()
    told = [r.getMessage() for r in caplog.records if "cannot connect" in r.getMessage()]
    assert len(told) == 1 and "Connection refused" in told[0], told


@pytest.mark.parametrize("prefix", ["plant\x00a", "plant\x7f", "plant\x1b[2J", "$SYS/inspector", "/plant", "plant/",
                                    "plant//a", "plant\udcff", "p" * 1025])
def test_a_topic_prefix_no_mqtt_topic_can_lead_is_refused_in_one_line(prefix):
    """A control character in topic_prefix made Mosquitto drop every CONNECT (its will topic is malformed UTF-8):
    the bridge never connected and said nothing; '$SYS/…' connected and the broker dropped every event
    (clients may not publish there), counted delivered; '/plant' was never selected by 'subscribe
    mqtt://host/plant' (the filter plant/+/v1/… has no empty first level)."""
    from inspector.errors import ConfigError
    from inspector.pipeline.integration_config import MqttSection

    with pytest.raises(ConfigError, match="^publish.mqtt.topic_prefix: ") as err:
        MqttSection(url="mqtt://127.0.0.1:1883", topic_prefix=prefix).validate("publish.mqtt")
    assert "\n" not in str(err.value) and "\x00" not in str(err.value) and "\x1b" not in str(err.value)


def test_run_check_refuses_a_control_character_in_topic_prefix_in_one_line(tiny_model, tmp_path):
    broker = Mosquitto(tmp_path / "broker").start()  # a real broker: it would drop each CONNECT, in silence
    mqtt = {"url": broker.url, "box": "b1", "topic_prefix": "plant\x7f", "state_file": str(tmp_path / "s.json")}
    cfg = base_config(tiny_model, f"ipc://{tmp_path}/ev.sock",
                      [{"name": "cam0", "source": str(write_folder(tmp_path / "frames", [False]))}],
                      publish={"mqtt": mqtt})
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    try:
        run = subprocess.run([*CLI, "run", "--config", str(tmp_path / "cfg.yaml"), "--check"], capture_output=True,
                             text=True, timeout=120)
    finally:
        broker.stop()
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert "publish.mqtt.topic_prefix: 'plant\\x7f' must be without control characters" in run.stderr, run.stderr


def test_a_host_name_that_is_no_box_name_is_one_line(tmp_path):
    """The box defaults to the host name: one with '+' or '#' is in the will topic, so Mosquitto dropped every
    CONNECT ('Invalid function arguments provided') and the bridge never connected, in silence."""
    from inspector.errors import ConfigError
    from inspector.integrations.mqtt import MqttBridge
    from inspector.pipeline.integration_config import MqttSection

    cfg = MqttSection(url="mqtt://127.0.0.1:1", state_file=str(tmp_path / "s.json"))
    with pytest.raises(ConfigError, match="^publish.mqtt.box: the host name 'line\\+3' is no box name"):
        MqttBridge(cfg, run_id="r1", box="line+3")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_a_broker_that_closes_the_connection_before_connack_is_told_once(tmp_path, caplog):
    """mqtt:// to a TLS listener (or a CONNECT the broker will not take): it closes the connection at once, paho
    retries, and nothing was said, ever."""
    certs = _certificates(tmp_path / "tls", "127.0.0.1")
    broker = Mosquitto(tmp_path / "broker", options=(f"cafile {certs['ca']}", f"certfile {certs['broker']}",
                                                     f"keyfile {certs['key']}")).start()
    caplog.set_level(logging.INFO, logger="inspector.mqtt")
    bridge = _bridge(broker.url, tmp_path)
    try:
        told = _attempts_told(broker, caplog, "wrong version number")
    finally:
        bridge.close()
        broker.stop()
    lines = [t for t in told if "cannot connect" in t]
    assert len(lines) == 1 and "closed the connection before accepting it" in lines[0], told


def test_subscribe_to_a_broker_that_refuses_it_says_so_once(tmp_path):
    """'inspector subscribe mqtt://…' to a broker that wants credentials: paho retried the refused CONNACK every
    second and the command waited in silence for ever (no event, no notice); then it retried for ever with one
    line. No retry can change that answer: one line naming the broker and the refusal (its CONNACK code), exit 2
    (tests/pipeline/test_mqtt_first_connect.py has the other brokers that cannot be used)."""
    broker = password_broker(tmp_path)
    try:
        done = subprocess.run([*CLI, "subscribe", broker.url, "--silence-s", "60"], capture_output=True, text=True,
                              timeout=30)
    finally:
        broker.stop()
    assert done.returncode == 2, done
    assert done.stderr.splitlines() == [f"error: {broker.url}: cannot use the broker at 127.0.0.1:{broker.port}: the "
                                        f"broker refused the connection: Not authorized (0x87)"], done.stderr


# Mosquitto's dynamic security plugin: unlike its acl_file (which grants every subscription and drops the denied
# messages at delivery), it refuses a subscription its ACL denies in the SUBACK (0x80 to MQTT 3.1.1, 0x87 to 5)
DYNSEC = next(iter(sorted(Path("/usr/lib").glob("*/mosquitto_dynamic_security.so"))), None)


def _dynsec_broker(tmp_path: Path) -> Mosquitto:
    """A broker whose anonymous clients may subscribe to each box's stats and bridge counts only."""
    allow = [{"acltype": "subscribePattern", "topic": f"inspector/+/v1/{t}", "allow": True} for t in ("stats", "bridge")]
    config = {"defaultACLAccess": {"publishClientSend": True, "publishClientReceive": True, "subscribe": False,
                                   "unsubscribe": True},
              "clients": [], "anonymousGroup": "anon", "groups": [{"groupname": "anon", "roles": [{"rolename": "r"}]}],
              "roles": [{"rolename": "r", "acls": allow}]}
    (tmp_path / "dynsec.json").write_text(json.dumps(config))
    return Mosquitto(tmp_path / "broker", options=(f"plugin {DYNSEC}",
                                                   f"plugin_opt_config_file {tmp_path / 'dynsec.json'}")).start()


@pytest.mark.skipif(DYNSEC is None, reason="needs Mosquitto's dynamic security plugin")
def test_subscribe_to_topics_the_broker_refuses_in_its_suback_is_one_line_and_exit_2(tmp_path):
    """'inspector subscribe mqtt://…' whose subscription the broker's ACL refuses (SUBACK return code 0x80,
    MQTT 3.1.1 §3.9.3): the refusal was ignored and the command waited for ever, receiving nothing."""
    broker = _dynsec_broker(tmp_path)
    try:
        run = subprocess.run([*CLI, "subscribe", broker.url], capture_output=True, text=True, timeout=60)
    finally:
        broker.stop()
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 2 and len(errors) == 1, run.stderr
    assert (f"error: {broker.url}: the broker refused the subscription to inspector/+/v1/defect/+ (Failure, 0x80), "
            f"inspector/+/v1/status/+ (Failure, 0x80): no events would arrive" in errors[0]), errors
    assert "v1/stats" not in errors[0] and "Traceback" not in run.stderr, run.stderr


def test_two_consumers_given_one_client_id_are_told_they_kick_each_other_off(tmp_path):
    """Two 'inspector subscribe --client-id plant-consumer': the broker closes the older connection at each
    connect (MQTT 3.1.1 §3.1.4), paho reconnects after a second, and the two took the session from each other
    for ever ('already connected, closing old connection' every second), each printing nothing of it."""
    broker = Mosquitto(tmp_path / "broker").start()
    cmd = [*CLI, "subscribe", broker.url, "--client-id", "plant-consumer"]
    consumers = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    marker = "already connected, closing old connection"
    try:
        deadline = time.monotonic() + 60
        log = broker.folder / "broker.log"
        while time.monotonic() < deadline and log.read_text().count(marker) < 8:
            time.sleep(0.1)
        assert log.read_text().count(marker) >= 8, log.read_text()
    finally:
        for consumer in consumers:
            consumer.terminate()
        errs = [consumer.communicate(timeout=30)[1] for consumer in consumers]
        broker.stop()
    told = [[line for line in err.splitlines() if "closed this subscriber's connection" in line] for err in errs]
    assert any(told) and all(len(t) <= 1 for t in told), errs
    assert "another client connected with client id 'plant-consumer'" in (told[0] or told[1])[0]


def test_a_ca_file_for_a_connection_that_is_no_tls_is_one_line(tmp_path):
    """ca_file with url mqtt:// and tls false was ignored: the bridge talked (and sent its password) in clear
    text to a broker the operator meant to be checked against that CA."""
    from inspector.errors import ConfigError
    from inspector.pipeline.integration_config import MqttSection

    with pytest.raises(ConfigError, match="^publish.mqtt.ca_file: given, but 'mqtt://' without tls: true is no TLS"):
        MqttSection(url="mqtt://broker.plant:1883", ca_file=str(tmp_path / "ca.pem")).validate("publish.mqtt")
    MqttSection(url="mqtt://broker.plant:8883", tls=True, ca_file=str(tmp_path / "ca.pem")).validate("publish.mqtt")
    MqttSection(url="mqtts://broker.plant", ca_file=str(tmp_path / "ca.pem")).validate("publish.mqtt")


def test_a_fifo_at_the_default_state_path_is_one_warning_not_a_hang(tmp_path, monkeypatch, caplog):
    """A FIFO at the default state file ($XDG_STATE_HOME/inspector/mqtt-bridge-<box>.json) held MqttBridge(), so
    the daemon's start and --check, for ever (--check now refuses it first: test_run_command; one made after)."""
    import os
    import threading

    from inspector.integrations.mqtt import MqttBridge
    from inspector.pipeline.integration_config import MqttSection

    (tmp_path / "inspector").mkdir()
    os.mkfifo(tmp_path / "inspector" / "mqtt-bridge-b1.json")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    caplog.set_level(logging.WARNING, logger="inspector.mqtt")
    bridges = []
    start = threading.Thread(target=lambda: bridges.append(
        MqttBridge(MqttSection(url=f"mqtt://127.0.0.1:{free_port()}", box="b1"), run_id="r1")), daemon=True)
    start.start()
    start.join(30)  # bounded: it never returned
    if start.is_alive():  # let the stuck reader go
        with open(tmp_path / "inspector" / "mqtt-bridge-b1.json", "wb"):
            pass
        start.join(10)
    for bridge in bridges:
        bridge.close()
    assert bridges and not start.is_alive()
    assert any("MQTT bridge state file is not a regular file" in r.getMessage() for r in caplog.records)


def test_credentials_in_the_broker_url_are_refused_without_showing_the_password(tiny_model, tmp_path):
    """publish.mqtt.url mqtt://op:s3cret@host was accepted: paho never got the credentials (the broker refused an
    anonymous client, or took one) and 'MQTT bridge to mqtt://op:s3cret@…' put the password in the log."""
    mqtt = {"url": "mqtt://op:s3cret@127.0.0.1:1883", "box": "b1", "state_file": str(tmp_path / "s.json")}
    run = _run_check(tiny_model, tmp_path, mqtt)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert "publish.mqtt.url: user and password in the URL are not used" in run.stderr, run.stderr
    assert "s3cret" not in run.stderr + run.stdout


def test_subscribe_takes_the_user_and_password_of_its_url_and_never_prints_the_password(tmp_path):
    """'inspector subscribe mqtt://op:right@host' dropped the credentials (the broker refused it, retried for ever)
    and printed 'subscribed to … on mqtt://op:right@…'."""
    broker = password_broker(tmp_path, password="r%ght")
    url = broker.url.replace("mqtt://", "mqtt://op:r%25ght@")
    consumer = subprocess.Popen([*CLI, "subscribe", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        log = broker.folder / "broker.log"
        while time.monotonic() < deadline and "u'op'" not in log.read_text() and consumer.poll() is None:
            time.sleep(0.1)
        assert "u'op'" in log.read_text(), log.read_text()  # Mosquitto: 'New client connected … (… u'op')'
    finally:
        consumer.terminate()
        out, err = consumer.communicate(timeout=30)
        broker.stop()
    assert "r%25ght" not in err and "r%ght" not in err and "cannot connect" not in err, err
    assert "on mqtt://op:***@" in err, err


def _acl_broker(tmp_path: Path) -> Mosquitto:
    """A broker whose ACL lets anonymous clients publish anywhere but to camera 'denied''s defect topics."""
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite #\ntopic deny inspector/b1/v1/defect/denied\n"
                   "topic deny inspector/b1/v1/defect/denied/#\n")
    return Mosquitto(tmp_path / "broker", options=(f"acl_file {acl}",)).start()


def _defects_of(bridge, cameras: list[str]) -> None:
    from inspector.events import InspectionEvent

    for seq, cam in enumerate(cameras):
        bridge.offer(InspectionEvent(type="defect", camera=cam, seq=seq, frame_id=seq, event_id=f"r1-{cam}-{seq}",
                                     decision="NG", score=1.0, threshold=0.5, capture={}, latency_ms={}, model={},
                                     run_id="r1"))


def _consumer(broker: Mosquitto, topic: str):
    """A plain QoS 1 consumer of ``topic``: (the topics of the messages it got, so far; its paho client)."""
    import paho.mqtt.client as mqtt

    got: list[str] = []
    consumer = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="acl-consumer")
    consumer.on_message = lambda c, u, msg: got.append(msg.topic)
    consumer.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
    consumer.connect("127.0.0.1", broker.port)
    consumer.loop_start()
    return got, consumer


def _bridge_notices(broker: Mosquitto) -> list[str]:
    """What ``inspector subscribe``'s MqttSubscriber tells of box b1's retained v1/bridge counts."""
    from inspector.integrations.mqtt import MqttSubscriber

    sub = MqttSubscriber(broker.url, ["defect"], client_id="bridge-counts")
    notices: list[str] = []
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("bridge dropped" in n for n in notices):
            assert sub.recv(timeout=0.1) is None  # takes in the bridge counts (not an event)
            notices += sub.notices()
    finally:
        sub.close()
    return notices


@pytest.mark.parametrize("qos", [1, 2])
def test_a_publish_the_brokers_acl_denies_is_counted_refused_and_dropped_not_delivered(tmp_path, caplog, qos):
    """MQTT 3.1.1 has no refusal: Mosquitto acknowledged the publishes its ACL denied and the bridge counted them
    delivered (evidence lost, the counts said none). MQTT 5 (now the default) says Not authorized (0x87) in the
    PUBACK (QoS 1) or PUBREC (QoS 2, whose code paho drops: its PUBCOMP says Success)."""
    broker = _acl_broker(tmp_path)
    got, consumer = _consumer(broker, "inspector/b1/v1/defect/#")
    caplog.set_level(logging.INFO, logger="inspector.mqtt")
    time.sleep(0.5)  # the consumer's subscription is in place
    bridge = _bridge(broker.url, tmp_path, qos=qos, stats=False, thumbnails=False)
    try:
        _defects_of(bridge, ["ok", "denied", "ok", "denied", "denied"])
        assert bridge.flush(20)
        time.sleep(0.5)  # the consumer has what the broker took
        bridge.close()
        notices = _bridge_notices(broker)
    finally:
        bridge.close()
        consumer.disconnect()
        consumer.loop_stop()
        broker.stop()
    assert any("its MQTT bridge dropped 3 message(s) in run r1 (3 refused by the broker" in n for n in notices), notices
    c = bridge.counts()
    assert (c["offered"], c["delivered"], c["refused"], c["dropped"], c["pending"]) == (5, 2, 3, 3, 0), c
    # refused events never reach the MES: lost, as the run's closing failure line says (Daemon.shutdown)
    assert bridge.lost() == f"publish.mqtt.url: broker {broker.url}: 3 MQTT message(s) not delivered " \
                            f"(refused by the broker 3)", bridge.lost()
    assert sorted(got) == ["inspector/b1/v1/defect/ok"] * 2, got  # what it counted delivered, the broker took
    told = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "refused a" in r.getMessage()]
    assert len(told) == 1 and "inspector/b1/v1/defect/denied: Not authorized (0x87)" in told[0], told


def test_with_mqtt_3_1_1_an_acl_denial_is_counted_delivered_and_run_check_says_so(tiny_model, tmp_path):
    """Kept for brokers older than MQTT 5 (protocol: "3.1.1"): a denied publish is acknowledged, so counted
    delivered (pinned here: the protocol cannot tell it). 'run --check' says which of the two a bridge does."""
    broker = _acl_broker(tmp_path)
    bridge = _bridge(broker.url, tmp_path, protocol="3.1.1", stats=False, thumbnails=False)
    try:
        _defects_of(bridge, ["ok", "denied"])
        assert bridge.flush(20)
    finally:
        bridge.close()
        broker.stop()
    assert (bridge.counts()["delivered"], bridge.counts()["refused"]) == (2, 0), bridge.counts()
    for protocol, said in (("3.1.1", "MQTT 3.1.1, QoS 1: a message the broker's ACL denies is acknowledged all "
                                     "the same and counted delivered"),
                           (None, "MQTT 5, QoS 1: a message the broker refuses (its ACL) is counted dropped")):
        mqtt = {"url": broker.url, "box": "b1", "state_file": str(tmp_path / "s.json")}
        run = _run_check(tiny_model, tmp_path, mqtt | ({"protocol": protocol} if protocol else {}))
        assert run.returncode == 0 and said in run.stdout, run.stdout + run.stderr
        assert f"undelivered final counts kept in {tmp_path / 's.json'}" in run.stdout, run.stdout


_LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2} [0-9:,]+ (DEBUG|INFO|WARNING) ")


def test_a_second_daemon_of_one_box_on_this_host_is_refused_in_one_line(tiny_model, tmp_path):
    """Two daemons on one host bridge as one box by default (the host name): a consumer told the second's run as
    a restart of the first's ('box vm: daemon restarted') while both ran, both streams were accounted as one,
    each replaced the other's retained bridge counts, and the first to stop marked the box offline (retained
    online 0) while the other inspected on. The second is refused at start (one line naming the first's pid and
    publish.mqtt.box, exit 2); with its own box it runs beside the first."""
    broker = Mosquitto(tmp_path / "broker").start()
    frames = write_folder(tmp_path / "frames", [True] * 4)

    def config(name: str, box: str | None, loop: bool = False) -> Path:
        camera = {"name": "cam", "source": str(frames), **({"loop": True, "fps": 2.0} if loop else {})}
        cfg = base_config(tiny_model, f"ipc://{tmp_path}/{name}.sock", [camera],
                          publish={"mqtt": {"url": broker.url, **({"box": box} if box else {}),
                                            "state_file": str(tmp_path / f"{name}.json")}})
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    first = subprocess.Popen([*CLI, "run", "--config", str(config("first", None, loop=True))], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:
            lines.append(first.stdout.readline())
            if "inspecting" in lines[-1] or not lines[-1]:
                break
        assert "inspecting" in lines[-1], lines
        second = subprocess.run([*CLI, "run", "--config", str(config("second", None))], capture_output=True,
                                text=True, timeout=60)
        errors = [line for line in second.stderr.splitlines() if not _LOG_LINE.match(line)]
        assert second.returncode == 2 and len(errors) == 1 and "Traceback" not in second.stderr, second.stderr
        assert errors[0].startswith(f"error: {tmp_path / 'second.yaml'}: publish.mqtt.box:") and f"pid {first.pid}" in errors[0], errors
        own = subprocess.run([*CLI, "run", "--config", str(config("own", "line2")), "--check"], capture_output=True,
                             text=True, timeout=60)
        assert own.returncode == 0, own.stderr
    finally:
        first.terminate()
        first.communicate(timeout=30)
        broker.stop()


def test_the_runs_last_line_tells_mqtt_messages_never_delivered(tiny_model, tmp_path):
    """A run whose broker was away to the end: 'stopped: N frames inspected' said nothing of the events its MQTT
    bridge never delivered (counted in the bridge's own counts and an INFO line); then the last line told them,
    but the run still exited 0. They are evidence lost, as recordings are: a closing failure line naming the
    broker and the count, exit 1."""
    url = f"mqtt://127.0.0.1:{free_port()}"
    cfg = base_config(tiny_model, f"ipc://{tmp_path}/ev.sock",
                      [{"name": "cam", "source": str(write_folder(tmp_path / "frames", [True, True]))}],
                      thresholds={"image": 0.0},
                      publish={"mqtt": {"url": url, "box": "b1", "reconnect_max_s": 1,
                                        "state_file": str(tmp_path / "s.json")}})
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    run = subprocess.run([*CLI, "run", "--config", str(tmp_path / "cfg.yaml")], capture_output=True, text=True,
                         timeout=120)
    last = run.stdout.strip().splitlines()[-1]
    assert run.returncode == 1 and last.startswith("stopped: 2 frames inspected"), (run.stdout, run.stderr[-2000:])
    assert re.search(rf"; failures: {re.escape(str(tmp_path / 'cfg.yaml'))}: publish.mqtt.url: broker {url}: \d+ MQTT "
                     rf"message\(s\) not delivered \(undelivered at shutdown \d+\)$", last), last
    assert last.count("MQTT message(s)") == 1, last  # once, as every loss on the last line


def test_a_broker_stopped_mid_run_fails_the_run_naming_the_broker_and_the_messages_lost(tiny_model, tmp_path):
    """The real broker stops while the daemon runs and is still away at shutdown: the bridge's pending messages
    were only a warning and the run exited 0, so whoever read the exit status took every defect event to have
    reached the MES. Now the last line's failures name the broker and the count, and the run exits 1."""
    broker = Mosquitto(tmp_path / "broker").start()
    frames = write_folder(tmp_path / "frames", [True] * 90)
    cfg = base_config(tiny_model, f"ipc://{tmp_path}/ev.sock", [{"name": "cam", "source": str(frames), "fps": 30.0}],
                      thresholds={"image": 0.0},
                      publish={"mqtt": {"url": broker.url, "box": "b1", "qos": 1, "reconnect_max_s": 1,
                                        "state_file": str(tmp_path / "s.json")}})
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    run = subprocess.Popen([*CLI, "run", "--config", str(tmp_path / "cfg.yaml")], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        assert "inspecting" in run.stdout.readline()
        time.sleep(1.0)  # events reach the broker, then it goes: about 2 s of defects left, none deliverable
        broker.stop()
        out, err = run.communicate(timeout=120)
    finally:
        run.kill() if run.poll() is None else None
        broker.stop()
    last = out.strip().splitlines()[-1]
    assert run.returncode == 1 and last.startswith("stopped: 90 frames inspected"), (out, err[-2000:])
    lost = re.search(r"publish\.mqtt\.url: broker (\S+): (\d+) MQTT message\(s\) not delivered \((.*)\)$", last)
    assert lost and lost[1] == broker.url and int(lost[2]) > 0 and "undelivered at shutdown" in lost[3], last
    # the closing failure line ends the log too, naming the config file, as the recorder's does
    assert f"{tmp_path / 'cfg.yaml'}: publish.mqtt.url: broker {broker.url}: {lost[2]} MQTT message(s)" in err, err


LONG = "u" * 70_000  # over MQTT's 2-byte length of a string or binary field (65,535 bytes)


@pytest.mark.parametrize("username, password", [(LONG, "pw"), ("op\nx", "pw"), ("op", "p" * 70_000)],
                         ids=["long-user", "user-line-break", "long-password"])
def test_bridge_credentials_mqtt_cannot_carry_are_one_line_naming_the_setting(tmp_path, username, password):
    """A user name or password over 65,535 bytes passed 'run --check' and paho's network thread died of
    struct.error (a traceback; the bridge buffered for ever); a line break in the user name made Mosquitto
    drop each CONNECT as a protocol error."""
    from inspector.errors import ConfigError
    from inspector.pipeline.integration_config import MqttSection

    secret = tmp_path / "password"
    secret.write_text(password)
    setting = "password_file" if len(password) > 2 else "username"
    cfg = dict(username=username, password_file=str(secret))
    with pytest.raises(ConfigError, match=f"^publish.mqtt.{setting}: ") as err:
        MqttSection(url="mqtt://127.0.0.1:1", **cfg).validate("publish.mqtt")  # what run --check validates
        _bridge("mqtt://127.0.0.1:1", tmp_path, **cfg).close()
    assert "\n" not in str(err.value) and password not in str(err.value) and len(str(err.value)) < 500


@pytest.mark.parametrize("option, value", [("--client-id", ""), ("--client-id", "x" * 70_000),
                                           ("--client-id", "line\n3"), ("url", LONG), ("url", "op%0Ax")])
def test_subscribe_connect_fields_mqtt_cannot_carry_are_one_line_exit_2(tmp_path, option, value):
    """'--client-id ""' was paho's ValueError and a 70,000-byte one or URL user struct.error (tracebacks); a line
    break in either made Mosquitto drop each CONNECT, and the subscriber waited out its --timeout, exit 0."""
    broker = Mosquitto(tmp_path / "broker").start()  # a real one: it would drop the CONNECT, in silence
    url = broker.url
    args = ["--client-id", value] if option == "--client-id" else []
    if option == "url":
        url = url.replace("mqtt://", f"mqtt://{value}:pw@")
    try:
        out = subprocess.run([*CLI, "subscribe", url, *args, "--timeout", "1"], capture_output=True, text=True,
                             timeout=60)
    finally:
        broker.stop()
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1, out.stderr[-2000:]
    assert out.stderr.startswith("error: ") and (option in out.stderr if option == "--client-id"
                                                  else out.stderr.startswith("error: mqtt://")), out.stderr
