"""``inspector subscribe mqtt://…`` to a port where no broker takes it says so at once, one line naming the
broker, exit 2, as it does for a refused or unresolvable address. Before, each printed 'subscribed to …', waited
the whole ``--silence-s`` and then retried for ever: a ZeroMQ publisher's port (it answers with its own
greeting), an HTTP server (it answers nothing), ``mqtt://`` to a broker's TLS listener (it closes the connection),
a broker refusing this client's credentials (CONNACK 0x87 Not authorized). Real peers throughout."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from broker_support import MOSQUITTO, Mosquitto, password_broker
from net_faults import free_port

CLI = [sys.executable, "-c", "import sys; from inspector.cli import main; sys.exit(main())"]
pytestmark = [pytest.mark.mqtt, pytest.mark.skipif(MOSQUITTO is None, reason="needs Debian's mosquitto"),
              pytest.mark.skipif(importlib.util.find_spec("paho") is None, reason="needs the 'mqtt' extra (paho-mqtt)")]
NO_BROKER = "no MQTT broker on that port, or a TLS listener (mqtts://)?"


def _subscribe(url: str) -> tuple[subprocess.CompletedProcess, float]:
    """The command's run and how long it took (s); --silence-s 60: the old code's first word came after it."""
    start = time.monotonic()
    done = subprocess.run([*CLI, "subscribe", url, "--silence-s", "60"], capture_output=True, text=True, timeout=40)
    return done, time.monotonic() - start


def _zmq_publisher(tmp_path):
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUB)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    return port, lambda: (sock.close(0), ctx.term())


def _http_server(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1], lambda: (server.shutdown(), server.server_close())


def _tls_broker(tmp_path):
    from test_mqtt_connect import _certificates

    certs = _certificates(tmp_path / "tls", "127.0.0.1")
    broker = Mosquitto(tmp_path / "broker", options=(f"cafile {certs['ca']}", f"certfile {certs['broker']}",
                                                     f"keyfile {certs['key']}")).start()
    return broker.port, broker.stop


@pytest.mark.parametrize("peer, why", [
    (_zmq_publisher, "it closed the connection before answering CONNECT (Protocol error): " + NO_BROKER),
    (_http_server, "no MQTT answer (CONNACK) from it within 5 s: " + NO_BROKER),
    pytest.param(_tls_broker, "it closed the connection before answering CONNECT (Unspecified error): " + NO_BROKER,
                 marks=pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"))])
def test_a_port_where_no_broker_answers_is_one_line_and_exit_2_at_once(tmp_path, peer, why):
    port, stop = peer(tmp_path)
    try:
        done, took = _subscribe(f"mqtt://op:secret@127.0.0.1:{port}/plant")
    finally:
        stop()
    assert done.returncode == 2, done
    assert done.stderr.splitlines() == [f"error: mqtt://op:***@127.0.0.1:{port}/plant: cannot use the broker at "
                                        f"127.0.0.1:{port}: {why}"], done.stderr
    assert took < 20, took


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="needs mosquitto_passwd")
@pytest.mark.parametrize("credentials", ["", "op:wrong@", "other:right@"])
def test_credentials_the_broker_refuses_are_one_line_with_the_connack_code_and_exit_2(tmp_path, credentials):
    broker = password_broker(tmp_path)
    try:
        done, took = _subscribe(broker.url.replace("mqtt://", f"mqtt://{credentials}"))
    finally:
        broker.stop()
    shown = broker.url.replace("mqtt://", f"mqtt://{credentials.split(':')[0]}:***@" if credentials else "mqtt://")
    assert done.returncode == 2 and took < 20, (done, took)
    assert done.stderr.splitlines() == [f"error: {shown}: cannot use the broker at 127.0.0.1:{broker.port}: the broker "
                                        f"refused the connection: Not authorized (0x87)"], done.stderr
    assert "wrong" not in done.stderr and "right" not in done.stderr


def test_right_credentials_run_as_before(tmp_path):
    broker = password_broker(tmp_path)
    try:
        done = subprocess.run([*CLI, "subscribe", broker.url.replace("mqtt://", "mqtt://op:right@"), "--timeout", "1"],
                              capture_output=True, text=True, timeout=40)
    finally:
        broker.stop()
    assert done.returncode == 0 and "error" not in done.stderr, done.stderr


@pytest.mark.parametrize("code, passes", [(1, False), (2, False), (3, True), (4, False), (5, False)])
def test_only_a_server_unavailable_connack_of_mqtt_3_1_1_is_retried(code, passes):
    """MQTT 3.1.1 §3.2.2.3's return codes, as paho hands them to on_connect (its MQTT 5 reason codes)."""
    from paho.mqtt.client import convert_connack_rc_to_reason_code

    from inspector.integrations.mqtt_first_connect import refusal_passes

    assert refusal_passes(convert_connack_rc_to_reason_code(code)) is passes


@pytest.mark.parametrize("listening", [True, False])
def test_a_subscriber_that_never_connected_leaves_its_state_file_free(tmp_path, listening):
    """Its state file stayed held: a second try in the same process was refused as 'in use by another running
    subscriber' (itself)."""
    import socket

    from inspector.errors import ConfigError
    from inspector.integrations.mqtt import MqttSubscriber

    server = socket.create_server(("127.0.0.1", 0))  # listening: it accepts and closes; else nothing listens
    port = server.getsockname()[1]
    if not listening:
        server.close()
    closer = threading.Thread(target=lambda: [server.accept()[0].close() for _ in range(2)], daemon=True)
    if listening:
        closer.start()
    try:
        for _ in range(2):
            with pytest.raises(ConfigError, match=f"127.0.0.1:{port}") as err:
                MqttSubscriber(f"mqtt://127.0.0.1:{port}", state=tmp_path / "state")
            assert "in use" not in str(err.value), err.value
    finally:
        server.close()
