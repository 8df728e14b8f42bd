"""An MQTT subscriber that hears nothing says so, once, with why, as the ZeroMQ one does (``--silence-s``): the
broker not reached (gone mid-run, refusing this client), or reached with nothing published under the topic prefix
(a wrong prefix, no daemon, its bridge not connected). Before, ``inspector subscribe mqtt://…`` had no
``--silence-s`` and any of these waited for ever without a word. A real Mosquitto broker throughout."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import time

import pytest

from broker_support import MOSQUITTO, Mosquitto, password_broker

CLI = [sys.executable, "-c", "import sys; from inspector.cli import main; sys.exit(main())"]
pytestmark = [pytest.mark.mqtt, pytest.mark.skipif(MOSQUITTO is None, reason="needs Debian's mosquitto"),
              pytest.mark.skipif(importlib.util.find_spec("paho") is None, reason="needs the 'mqtt' extra (paho-mqtt)")]
NOTHING_UNDER = "connected to the broker and subscribed, but nothing is published under 'plant/'"


def _told_within(sub, what: str, seconds: float) -> list[str]:
    """The subscriber's notices until one holds ``what`` (all of them so far), waiting at most ``seconds``."""
    told: list[str] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end and not any(what in line for line in told):
        sub.recv(timeout=0.2)
        told += sub.notices()
    return told


def _silences(lines: list[str]) -> list[str]:
    return [line for line in lines if "heard nothing for" in line]


def test_connected_with_nothing_under_the_prefix_is_told_once_then_the_first_message(tmp_path):
    from paho.mqtt import publish

    from inspector.events import StatusEvent, header_dict, utc_iso
    from inspector.integrations.mqtt import MqttSubscriber

    broker = Mosquitto(tmp_path / "broker").start()
    sub = None
    try:  # the broker is stopped whatever happens (a subscriber that cannot be made left it running)
        sub = MqttSubscriber(f"{broker.url}/plant", silence_s=0.3)
        told = _told_within(sub, "heard nothing", 10) + _told_within(sub, "never", 1.0)  # and not again
        assert _silences(told) == [f"{broker.url}/plant: heard nothing for 0.3 s (no event, no v1/stats heartbeat, "
                                   f"no retained status): {NOTHING_UNDER}: no daemon publishes there (none running, "
                                   f"its MQTT bridge not connected to this broker, or another "
                                   f"publish.mqtt.topic_prefix: the path of the URL names it), its bridge sends no "
                                   f"v1/stats (publish.mqtt.stats: false), or the broker's ACL withholds them from "
                                   f"this user; still waiting (told once something arrives)"], told
        status = StatusEvent(camera="cam1", seq=0, state="online", previous=None, reason="", time_utc=utc_iso())
        publish.single("plant/b1/v1/status/cam1", json.dumps({**header_dict(status), "payloads": []}),
                       hostname="127.0.0.1", port=broker.port)  # as a daemon's bridge sends a status
        got = sub.recv(timeout=10)
        assert got is not None and got[1].camera == "cam1"
        assert any("heard again after" in line for line in sub.notices())
    finally:
        if sub is not None:
            sub.close()
        broker.stop()


def test_a_broker_gone_mid_run_is_told_as_not_reached_and_its_return_as_connected(tmp_path):
    from inspector.integrations.mqtt import MqttSubscriber

    broker = Mosquitto(tmp_path / "broker").start()
    sub = None
    try:  # the broker is stopped whatever happens (a subscriber that cannot be made left it running)
        sub = MqttSubscriber(f"{broker.url}/plant", silence_s=2.0)
        _told_within(sub, "heard nothing", 10)  # connected, quiet: told as such
        broker.stop()
        told = _silences(_told_within(sub, "heard nothing", 10))
        assert len(told) == 1 and "the connection dropped at" in told[0], told
        assert f"the broker at 127.0.0.1:{broker.port} cannot be used: Connection refused" in told[0], told
        assert told[0].endswith("still waiting (told once the broker is reached)"), told
        broker.start()
        back = _told_within(sub, "connected to the broker (at", 15)
        assert any(f"{broker.url}/plant: connected to the broker (at" in line for line in back), back
        again = _silences(_told_within(sub, "heard nothing", 10))  # reached again, and still quiet: told as such
        assert len(again) == 1 and NOTHING_UNDER in again[0] and "dropped" not in again[0], again
    finally:
        if sub is not None:
            sub.close()
        broker.stop()


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="needs mosquitto_passwd")
def test_a_broker_refusing_this_client_is_told_as_such(tmp_path):
    """Told by the silence after --silence-s before; now at once, in one line (a retry cannot change it)."""
    from inspector.errors import ConfigError
    from inspector.integrations.mqtt import MqttSubscriber

    broker = password_broker(tmp_path)
    try:
        with pytest.raises(ConfigError, match="cannot use the broker at .*: the broker refused the connection: Not "
                                              "authorized"):
            MqttSubscriber(f"{broker.url}/plant", silence_s=0.5)
    finally:
        broker.stop()


def test_the_command_takes_silence_s_for_mqtt_too(tmp_path):
    """Told once in the command's stderr, as for ZeroMQ; 0: never."""
    broker = Mosquitto(tmp_path / "broker").start()
    try:
        runs = {silence: subprocess.run([*CLI, "subscribe", f"{broker.url}/plant", "--silence-s", silence, "--timeout",
                                         "2"], capture_output=True, text=True, timeout=60) for silence in ("0.5", "0")}
    finally:
        broker.stop()
    assert all(done.returncode == 0 for done in runs.values()), runs
    told = _silences(runs["0.5"].stderr.splitlines())
    assert len(told) == 1 and told[0].startswith(f"{broker.url}/plant: heard nothing for 0.5 s (no event, no v1/stats "
                                                 f"heartbeat, no retained status): {NOTHING_UNDER}"), runs["0.5"].stderr
    assert _silences(runs["0"].stderr.splitlines()) == [], runs["0"].stderr
