"""MQTT bridge (``publish.mqtt``): defect events, retained camera status and stats to the plant broker.

Topics (``<prefix>`` = ``topic_prefix``, ``<box>`` = this daemon's name)::

    <prefix>/<box>/v1/defect/<camera>                   header JSON (the ZeroMQ header + run_id, box)
    <prefix>/<box>/v1/defect/<camera>/<event_id>/<kind> one binary message per payload (jpeg/png bytes)
    <prefix>/<box>/v1/status/<camera>                   header JSON, retained: the camera's current state
    <prefix>/<box>/v1/stats                             header JSON (heartbeat)
    <prefix>/<box>/online                               retained "1"; the broker sets "0" (last will) if we vanish
    <prefix>/<box>/v1/bridge                            retained JSON: the bridge's counts (run_id, offered,
                                                        delivered, dropped, pending, final), at each connect
                                                        and at shutdown (final: pending = never delivered)

Payload bytes are never base64 in JSON: each goes out as its own message whose
topic the header's ``payloads[i].topic`` names (or none, with ``thumbnails: false``).

Delivery never blocks inspection: :meth:`MqttBridge.offer` (publisher thread)
only appends to a bounded buffer; when it is full the oldest message is dropped
and counted. A sender thread hands messages to paho-mqtt while connected,
keeping at most ``_MAX_INFLIGHT`` unacknowledged; paho reconnects with back-off
and re-sends those in flight, and newer messages wait until they are
acknowledged, so the broker gets every topic's messages in order. Counts (messages): ``offered = delivered +
dropped + pending`` at every moment; ``delivered`` means acknowledged by the
broker as taken (PUBACK/PUBCOMP for QoS 1/2, written to the socket for QoS 0).

MQTT 5 by default (``protocol: "5"``): a broker that will not take a message (its ACL denies the topic:
reason code 0x87 Not authorized, MQTT 5.0 §3.4.2.1) says so in the PUBACK (QoS 1) or PUBREC/PUBCOMP (QoS 2),
and the message is counted ``refused`` and ``dropped`` (never re-sent: the broker's answer would not change),
told in a warning. MQTT 3.1.1 (``protocol: "3.1.1"``, for brokers older than MQTT 5) has no such answer: a
broker acknowledges a denied publish as if taken (MQTT 3.1.1 §5.4.2 lets it), so it is counted delivered;
``run --check`` says so. QoS 0 has no acknowledgement in either.
Needs the ``mqtt`` extra (``paho-mqtt`` ≥ 2).
"""

from __future__ import annotations

import collections
import errno
import hashlib
import json
import logging
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from inspector.config import read_secret, read_text
from inspector.errors import ConfigError
from inspector.events import (CAMERA_TYPES, MAX_PAYLOADS, SILENCE_S, STATS_TOPIC, header_dict, subscription_topic,
                              topic_matches, wire_json)
from inspector.integrations import require
from inspector.integrations.mqtt_first_connect import FirstConnect
from inspector.integrations.mqtt_silence import BrokerSilence
from inspector.loss import STATE_VERSION, KeepsState, LossTracker
from inspector.throttle import Throttle
from inspector.redact import redact
from inspector.textline import wire_text
from inspector.pipeline.integration_config import BOX_NAME, MqttSection, mqtt_string_problem, url_address_problem

log = logging.getLogger("inspector.mqtt")
_MAX_INFLIGHT = 20
_FLUSH_TIMEOUT_S = 5.0
STATE_BOXES = 256  # boxes whose accounting a subscriber state keeps (those heard most recently)
# boxes whose accounting a subscriber keeps in memory (those heard most recently): a plant has tens; a rogue
# publisher inventing a box name per message would otherwise grow it without bound (each tracker is bounded)
MEMORY_BOXES = 1024


@dataclass
class Message:
    topic: str
    payload: bytes
    retain: bool = False


def broker_address(url: str) -> tuple[str, int, bool]:
    """``mqtt://host[:port]`` → (host, port, tls); mqtts:// and ssl:// mean TLS (default port 8883)."""
    why = url_address_problem(url)
    if why:  # urlsplit raises ValueError for 'mqtt://[::1', its .port past 65535 ('subscribe mqtt://h:99999')
        raise ConfigError(f"{redact(url)}: {why}")
    parts = urlsplit(url)
    tls = parts.scheme in ("mqtts", "ssl")
    return parts.hostname or "", parts.port or (8883 if tls else 1883), tls


def event_messages(event, prefix: str, run_id: str, qos_payloads: bool, bridge: dict | None = None) -> list[Message]:
    """The MQTT messages for one daemon event (defect: header + payloads; status: retained; stats).

    ``bridge``: the bridge's own counts (messages offered, dropped …), put into a stats event's
    ``data.mqtt_bridge``: what the bridge dropped while the broker was away is told to the consumers, who see
    only gaps in seq otherwise (and nothing of dropped payload, status or stats messages)."""
    base = f"{prefix}/{event.topic}"
    header = header_dict(event)
    header.setdefault("run_id", run_id)
    if event.type == "stats" and bridge is not None:  # a new dict: header values are read-only (header_dict)
        header["data"] = {**header["data"], "mqtt_bridge": bridge}
    out: list[Message] = []
    if event.type == "defect":
        if qos_payloads:
            for desc, payload in zip(header["payloads"], event.payloads):
                desc["topic"] = f"{base}/{event.event_id}/{payload.kind}"
                out.append(Message(desc["topic"], payload.data))
        else:
            header["payloads"] = []
    body = json.dumps(header, separators=(",", ":"), allow_nan=False, default=str).encode()
    # the header first: a consumer learns the payload topics before the bytes arrive
    return [Message(base, body, retain=event.type == "status"), *out]


class MqttBridge:
    """An :class:`~inspector.integrations.EventTap` that forwards events to an MQTT broker."""

    def __init__(self, cfg: MqttSection, run_id: str, box: str | None = None) -> None:
        mqtt = require("paho.mqtt.client", "mqtt", "publish.mqtt")
        self.cfg = cfg
        self.run_id = run_id
        self.box = cfg.box_name(box)
        if not BOX_NAME.fullmatch(self.box):  # '+' in the will topic: the broker drops each CONNECT
            raise ConfigError(f"publish.mqtt.box: the host name {self.box[:80]!r} is no box name (1-64 letters, "
                              f"digits, '_', '-' or '.'); set publish.mqtt.box")
        self.prefix = f"{cfg.topic_prefix}/{self.box}"
        host, port, tls = broker_address(cfg.url)
        self._box_lock = hold_box(self.prefix, host, port)  # ConfigError: another daemon here is this box
        try:
            self._start(mqtt, cfg, host, port, tls)
        except BaseException:
            self._release_box()
            raise

    def _start(self, mqtt, cfg: MqttSection, host: str, port: int, tls: bool) -> None:
        """The buffer, the paho client (connecting in its own thread) and the sender thread."""
        run_id = self.run_id
        self._buffer: collections.deque[Message] = collections.deque()
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._inflight: dict[int, Message] = {}
        self._early_acks: dict[int, object] = {}  # mid → the broker's reason code, acknowledged before kept
        self._pubrec_refusals: dict[int, object] = {}  # QoS 2: mid → the failure code of its PUBREC
        self._own_mids: set[int] = set()
        self._sending: Message | None = None  # taken from the buffer, inside client.publish()
        self._resending = False  # a reconnect: paho re-sends what was in flight, new messages wait behind it
        self._counts = {"offered": 0, "delivered": 0, "dropped": 0, "refused": 0, "send_errors": 0}
        self._full_drops = 0  # messages dropped since the buffer was found full (0: it has room; _tell_full)
        self._refusals_told = (0.0, 0)  # (monotonic time, refused count) of the last refusal line
        self.connected = False
        self.connects = 0
        self._closing = False
        self.state_path = cfg.state_path(self.box)  # checked by run --check (daemon.check_outputs)
        self._untold = _read_untold(self.state_path)  # final counts of earlier runs never delivered
        self._untold_mids: set[int] = set()
        self._connect_problem: str | None = None  # the broker's unreachability last told, until connected
        self._connack_refused = False  # the disconnect that follows a refused CONNACK is no other reason
        # MQTT 5: the broker's PUBACK says whether it took the message (3.1.1's cannot); clean_start below as 3.1.1's
        # clean_session=True (no session kept at the broker; paho re-sends what was in flight itself)
        v5 = cfg.protocol == "5"
        client = telling_client(mqtt, self._cannot_connect, self._refused_pubrec,
                                client_id=f"inspector-{self.box}-{run_id}",
                                protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                                **({} if v5 else {"clean_session": True}))
        self._setup_auth(client, tls or cfg.tls)
        client.max_inflight_messages_set(_MAX_INFLIGHT)
        client.reconnect_delay_set(min_delay=1, max_delay=max(1, int(round(cfg.reconnect_max_s))))
        client.will_set(f"{self.prefix}/online", b"0", qos=cfg.qos, retain=True)
        client.on_connect, client.on_disconnect, client.on_publish = self._on_connect, self._on_disconnect, \
            self._on_publish
        self.client = client
        self._mqtt = mqtt
        try:
            client.connect_async(host, port, keepalive=cfg.keepalive_s, **({"clean_start": True} if v5 else {}))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"publish.mqtt.url: {redact(cfg.url)}: {exc}") from None
        client.loop_start()  # paho's network thread: connects, reconnects with back-off
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)
        self._sender.start()
        heard = not v5 or cfg.qos != 2 or pubrec_refusals_heard(client)  # else a warning: refusals counted delivered
        log.log(logging.INFO if heard else logging.WARNING, "MQTT bridge to %s (topics %s/…; %s)", redact(cfg.url),
                self.prefix, self.refusals_seen())

    def _setup_auth(self, client, tls: bool) -> None:
        cfg = self.cfg
        if tls:
            client.tls_set_context(tls_context(cfg.ca_file, "publish.mqtt.ca_file"))
        if cfg.username:
            # the shared reader: a folder, a device (/dev/zero read until out of memory) or binary bytes (a
            # UnicodeDecodeError traceback) is one line naming the setting
            password = read_secret(cfg.password_file or "", "publish.mqtt.password_file")
            why = mqtt_string_problem(password, binary=True)
            if why:  # the secret itself is never echoed
                raise ConfigError(f"publish.mqtt.password_file: {cfg.password_file}: the password {why}")
            client.username_pw_set(cfg.username, password)

    # -- paho callbacks (paho's network thread) ----------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:  # CONNACK refused (MQTT 3.1.1 §3.2.2.3): credentials, client id, …
            self._connack_refused = True
            self._cannot_connect(f"the broker refused the connection: {reason_code}"
                                 f"{connack_hint(self.cfg, reason_code, properties)}")
            return
        with self._lock:
            self._connect_problem = None  # told again if it comes back after this connection
            self.connected = True
            self.connects += 1
            # paho calls this *before* it re-sends the messages in flight at the disconnect (_handle_connack):
            # sent now, newer events would reach the broker first, out of order (MQTT 3.1.1 §4.6 asks re-sends
            # in their original order), and a consumer would call them lost, then late
            self._resending = True
            self._wake.notify_all()
        info = client.publish(f"{self.prefix}/online", b"1", qos=self.cfg.qos, retain=True)
        with self._lock:  # bridge state, not an event: its acknowledgement is not counted
            self._own_mids.add(info.mid)
        for counts in self._untold:  # an earlier run's final counts, before this run's replace them (retained)
            info = client.publish(f"{self.prefix}/v1/bridge", json.dumps(counts).encode(), qos=self.cfg.qos,
                                  retain=True)
            with self._lock:
                self._own_mids.add(info.mid)
                self._untold_mids.add(info.mid)
        self._publish_counts(final=False)  # what was dropped while the broker was away, told at once
        log.info("MQTT connected to %s", redact(self.cfg.url))

    def _cannot_connect(self, problem: str | OSError) -> None:
        """Tell why the broker cannot be reached (paho's network thread, at each failed attempt), in one warning
        line naming it, once until a connection succeeds or the reason changes: paho retries on its own and said
        nothing (a refused TCP connection, an unknown host name, a TLS certificate not trusted or not the
        host's), so a run that never reached its broker buffered and dropped events without a word why."""
        why = problem if isinstance(problem, str) else connect_problem(problem)
        with self._lock:
            if why == self._connect_problem:
                return
            self._connect_problem = why
        log.warning("publish.mqtt.url: broker %s: cannot connect: %s; buffering up to %d messages, retrying every "
                    "%g s at most",
                    redact(self.cfg.url), why, self.cfg.buffer_size, self.cfg.reconnect_max_s)

    def _publish_counts(self, final: bool):
        """Publish the bridge's counts, retained, on ``<prefix>/<box>/v1/bridge``: drops after the last stats
        (an outage the run outlived, shutdown) reach the consumers too; ``final``: pending = never delivered."""
        body = json.dumps({"run_id": self.run_id, **self.counts(), "final": final}).encode()
        info = self.client.publish(f"{self.prefix}/v1/bridge", body, qos=self.cfg.qos, retain=True)
        with self._lock:  # bridge state, not an event: its acknowledgement is not counted
            self._own_mids.add(info.mid)
        return info

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        with self._lock:
            was = self.connected
            self.connected = False
        if was and not self._closing:
            log.warning("publish.mqtt.url: broker %s lost (%s); buffering up to %d messages, reconnecting",
                        redact(self.cfg.url), reason_code, self.cfg.buffer_size)
        elif self._connack_refused:  # told by _on_connect, with the broker's reason
            self._connack_refused = False
        elif not self._closing:  # no CONNACK: a CONNECT it would not take (a malformed will topic), TLS expected
            self._cannot_connect(f"the broker closed the connection before accepting it ({reason_code})")

    def _on_publish(self, client, userdata, mid, reason_code=None, properties=None) -> None:
        """paho: the broker answered message ``mid`` (PUBACK/PUBCOMP; QoS 0: written). ``reason_code`` (MQTT 5) 0x80
        or more: the broker did not take it (0x87 Not authorized: its ACL); 3.1.1 and QoS 0 always say Success."""
        refused = reason_code if reason_code is not None and reason_code.is_failure else None
        with self._lock:
            refused = self._pubrec_refusals.pop(mid, refused)
            if mid in self._untold_mids and refused is None:  # one refused stays: the file is kept for a later run
                self._untold_mids.discard(mid)
                if not self._untold_mids:  # all told: forget them
                    self._untold = []
                    _remove(self.state_path)
            if mid in self._own_mids:
                self._own_mids.discard(mid)
                if refused is not None:  # the box's online flag or its counts: consumers will not see them
                    self._tell_refused(f"its own topics (online, v1/bridge) under {self.prefix}", refused)
            elif (msg := self._inflight.pop(mid, None)) is not None:
                self._answered(msg.topic, refused)
            else:
                self._early_acks[mid] = refused

    def _refused_pubrec(self, mid: int, code: int) -> None:
        """paho's network thread: a PUBREC refused message ``mid`` (QoS 2), its PUBCOMP will say Success."""
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.reasoncodes import ReasonCode

        try:
            reason = ReasonCode(PacketTypes.PUBREC, identifier=code)
        except ValueError:  # a code MQTT 5 does not define for PUBREC: still a refusal
            reason = _UnknownReason(code)
        with self._lock:
            self._pubrec_refusals[mid] = reason

    def _answered(self, topic: str, refused) -> None:
        """Count a message the broker answered (lock held): delivered, or ``refused`` (its reason code) and
        dropped: never re-sent, the broker's answer to that topic would be the same."""
        if refused is None:
            self._counts["delivered"] += 1
        else:
            self._counts["refused"] += 1
            self._counts["dropped"] += 1
            self._tell_refused(topic, refused)
        self._wake.notify_all()

    def _tell_refused(self, topic: str, reason) -> None:
        """One warning for the first refusal, then at most one a minute with the count since (a denied topic
        refuses every event: a line each would flood the log)."""
        told_at, told = self._refusals_told
        now, refused = time.monotonic(), self._counts["refused"]
        if told_at and now - told_at < 60 and refused - told < 1000:
            return
        self._refusals_told = (now, refused)
        log.warning("publish.mqtt.url: broker %s refused a message on %s: %s (0x%02X); not delivered, counted dropped "
                    "(%d refused in this run); check the broker's ACL for this client's user",
                    redact(self.cfg.url), topic, reason, reason.value, refused)

    def refusals_seen(self) -> str:
        """Whether a message the broker will not take (its ACL) is found, in words, for ``run --check``."""
        qos = f"QoS {self.cfg.qos}"
        if self.cfg.protocol != "5":
            return (f"MQTT 3.1.1, {qos}: a message the broker's ACL denies is acknowledged all the same and counted "
                    f"delivered; protocol \"5\" tells it")
        if self.cfg.qos == 0:
            return "MQTT 5, QoS 0: unacknowledged, a message the broker's ACL denies is counted delivered"
        if self.cfg.qos == 2 and not pubrec_refusals_heard(self.client):
            return ("MQTT 5, QoS 2: this paho-mqtt does not let a PUBREC's refusal be heard, so a message the "
                    "broker's ACL denies is counted delivered; QoS 1 tells it")
        return f"MQTT 5, {qos}: a message the broker refuses (its ACL) is counted dropped and told"

    # -- the tap (publisher thread) ----------------------------------------------------------
    def offer(self, event) -> None:
        """Queue ``event``'s messages; never blocks (a full buffer drops its oldest message)."""
        if event.type == "result" or (event.type == "stats" and not self.cfg.stats):
            return
        with self._lock:  # a stats event tells the drops up to and including the one its own message causes
            counts = self.counts()
            counts["dropped"] += max(0, len(self._buffer) + 1 - self.cfg.buffer_size)
        messages = event_messages(event, self.cfg.topic_prefix + "/" + self.box, self.run_id, self.cfg.thumbnails,
                                  counts if event.type == "stats" else None)
        drops = 0
        with self._lock:
            for msg in messages:
                self._counts["offered"] += 1
                if len(self._buffer) >= self.cfg.buffer_size:
                    self._buffer.popleft()
                    self._counts["dropped"] += 1
                    drops += 1
                self._buffer.append(msg)
            self._wake.notify_all()
            began, self._full_drops = not self._full_drops and drops > 0, self._full_drops + drops
            ended = self._full_drops if not drops else 0
            self._full_drops = self._full_drops if drops else 0
        self._tell_full(began, ended)

    def _tell_full(self, began: bool, ended: int) -> None:
        """One line when the buffer starts dropping messages, one when it has room again with how many it dropped
        (``ended``). Drops were counted only (the bridge's counts, stats, its INFO line at shutdown): a broker
        outage longer than buffer_size messages lost events unseen by whoever reads the daemon's log."""
        if began:
            log.warning("publish.mqtt.buffer_size: the buffer is full (%d messages; broker %s away or slower "
                        "than events come): the oldest messages are dropped, counted, until it has room again",
                        self.cfg.buffer_size, redact(self.cfg.url))
        elif ended:
            log.warning("publish.mqtt.buffer_size: the buffer has room again; %d message(s) were dropped while it "
                        "was full (%d messages)", ended, self.cfg.buffer_size)

    # -- sender thread -------------------------------------------------------------------------
    def _ready(self) -> bool:
        if self._resending and not self._inflight:  # what was in flight at the reconnect is acknowledged
            self._resending = False
        return self._closing or (self.connected and bool(self._buffer) and not self._resending
                                 and len(self._inflight) < _MAX_INFLIGHT)

    def _send_loop(self) -> None:
        # paho is called with our lock released: paho's network thread holds its own lock while it runs
        # _on_publish (which takes ours), so holding ours across publish() could deadlock, and offer()
        # (the publisher thread) must never wait behind the network.
        ok, no_conn = self._mqtt.MQTT_ERR_SUCCESS, self._mqtt.MQTT_ERR_NO_CONN
        while True:
            with self._lock:
                while not self._ready():
                    self._wake.wait(0.1)
                if self._closing:
                    return
                msg = self._sending = self._buffer.popleft()
            info = self.client.publish(msg.topic, msg.payload, qos=self.cfg.qos, retain=msg.retain)
            with self._lock:
                self._sending = None
                # QoS ≥ 1 with the link just gone (NO_CONN): paho keeps it and re-sends after reconnecting
                if info.rc == ok or (info.rc == no_conn and self.cfg.qos > 0):
                    if info.mid in self._early_acks:  # acknowledged before we got here
                        self._answered(msg.topic, self._early_acks.pop(info.mid))
                    else:
                        self._inflight[info.mid] = msg
                    continue
                # not taken (QoS 0 without a link): back to the front, retry after reconnecting
                self._buffer.appendleft(msg)
                self._counts["send_errors"] += 1
                self.connected = False
                self._wake.wait(0.1)

    # -- reporting / shutdown ----------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """{offered, delivered, dropped, refused, pending, send_errors} in MQTT messages (refused: by the broker,
        MQTT 5 reason code ≥ 0x80; counted in dropped too)."""
        with self._lock:
            pending = len(self._buffer) + len(self._inflight) + (self._sending is not None)
            return {**self._counts, "pending": pending}

    def lost(self) -> str | None:
        """The events this bridge lost, in one line naming the broker (its URL redacted), for the run's closing
        failure lines (exit 1, as recordings lost): ``'publish.mqtt.url: broker mqtt://h:1883: 7 MQTT message(s)
        not delivered (dropped from a full buffer 4, refused by the broker 1, undelivered at shutdown 2)'``;
        None when every message offered was delivered. Meant after :meth:`close` (pending = never delivered).

        Lost means no broker ever acknowledged taking it: dropped from the full buffer, refused by the broker
        (MQTT 5 reason code ≥ 0x80: it will not pass it on, its ACL the usual cause) or still buffered or in flight
        (QoS ≥ 1: sent, no PUBACK/PUBCOMP) at shutdown. QoS 0 has no acknowledgement: a message written to the
        socket counts delivered, so only those never written are lost there. The run ended 0 with these only
        logged and counted: an engineer reading the exit status took every defect event to have reached the MES."""
        c = self.counts()
        parts = [("dropped from a full buffer", c["dropped"] - c["refused"]), ("refused by the broker", c["refused"]),
                 ("undelivered at shutdown", c["pending"])]
        n = sum(count for _, count in parts)
        if not n:
            return None
        detail = ", ".join(f"{label} {count}" for label, count in parts if count)
        return f"publish.mqtt.url: broker {redact(self.cfg.url)}: {n} MQTT message(s) not delivered ({detail})"

    def flush(self, timeout: float) -> bool:
        """Wait until every buffered message is delivered (True) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._buffer or self._inflight or self._sending is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(min(left, 0.1))
        return True

    def close(self) -> None:
        if self._closing:
            return
        if not self.flush(_FLUSH_TIMEOUT_S):
            why = f" (broker: {self._connect_problem})" if self._connect_problem and not self.connected else ""
            log.warning("MQTT: %d message(s) not delivered at shutdown%s", self.counts()["pending"], why)
        with self._lock:
            self._closing = True  # anything left stays counted as pending, never silently lost
            self._wake.notify_all()
        self._sender.join(2)
        infos = [self._publish_counts(final=True),
                 self.client.publish(f"{self.prefix}/online", b"0", qos=self.cfg.qos, retain=True)]
        for info in infos if self.connected else ():
            try:
                info.wait_for_publish(1.0)
            except (RuntimeError, ValueError):
                pass
        if not _published(infos[0]):  # the broker away: told by the next run of this box instead
            _write_untold(self.state_path, self._untold + [{"run_id": self.run_id, **self.counts(), "final": True}])
        self.client.disconnect()
        self.client.loop_stop()
        self._release_box()
        c = self.counts()
        log.info("MQTT bridge: %d offered, %d delivered, %d dropped (%d refused by the broker)", c["offered"],
                 c["delivered"], c["dropped"], c["refused"])


    def _release_box(self) -> None:
        if self._box_lock is not None:
            self._box_lock.close()
            self._box_lock = None


def hold_box(prefix: str, host: str, port: int) -> socket.socket | None:
    """Claim the topics ``<prefix>`` (``<topic_prefix>/<box>``) on the broker at ``host``:``port`` for this
    daemon, among the processes of this host: a listening Unix socket bound to an abstract name (Linux
    unix(7): no file, gone with the process, crashed or not), returned to be held open until the bridge closes.
    None where there are no abstract sockets (not Linux): nothing is claimed.

    ConfigError naming the holder's pid (SO_PEERCRED of a connection to it) when another process holds them.
    Two daemons on one host publish under one box by default (the host's name): their events mixed on the
    same topics, so a consumer told one's run as a restart of the other's and accounted both streams as one;
    each replaced the other's retained bridge counts; and the first to stop marked the box offline (its
    retained ``online`` 0) while the other still ran."""
    name = "\0inspector-mqtt-box-" + hashlib.sha256(f"{host.lower()}:{port}/{prefix}".encode()).hexdigest()[:32]
    claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        claim.bind(name)
        claim.listen(1)
        return claim
    except OSError as exc:
        claim.close()
        if exc.errno != errno.EADDRINUSE:
            return None
    raise ConfigError(f"publish.mqtt.box: another daemon on this host (pid {_claim_holder(name)}) publishes as box "
                      f"'{prefix.rsplit('/', 1)[-1]}' to {host}:{port}; two daemons under one box mix their events "
                      f"and one's stop marks the other offline: give each its own publish.mqtt.box")


def _claim_holder(name: str) -> str:
    """The pid of the process listening on the abstract socket ``name``; 'unknown' if it cannot be asked."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            probe.connect(name)
            return str(struct.unpack("3i", probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                            struct.calcsize("3i")))[0])
    except OSError:
        return "unknown"


def connack_hint(cfg: MqttSection, reason_code, properties) -> str:
    """What to change for a refused CONNACK, read from its public reason code and properties ("" if nothing):
    0x84 Unsupported Protocol Version (MQTT 5.0 §3.2.2.2; 0x01 in 3.1.1's CONNACK) is a broker older than MQTT 5;
    0x9B QoS not supported is ``publish.mqtt.qos`` (the will's QoS) over the broker's Maximum QoS, which the
    CONNACK carries (§3.2.2.3.4; Mosquitto's ``max_qos``): told only as 'QoS not supported', for ever."""
    if cfg.protocol == "5" and reason_code.value in (0x01, 0x84):
        return "; a broker older than MQTT 5: set publish.mqtt.protocol: \"3.1.1\""
    if reason_code.value == 0x9B:
        most = getattr(properties, "MaximumQoS", None)
        return (f"; publish.mqtt.qos is {cfg.qos}, the broker takes QoS {most} at most: set publish.mqtt.qos: {most}"
                if most is not None else f"; publish.mqtt.qos {cfg.qos} is over the broker's maximum: lower it")
    return ""


def pubrec_refusals_heard(client) -> bool:
    """Whether ``client`` (:func:`telling_client`'s) hears a refusing PUBREC. No public paho-mqtt 2.x API gives a
    PUBREC's reason code (``on_publish`` comes at PUBCOMP, with PUBCOMP's: Success from Mosquitto after a PUBREC
    0x87), so the hook reads paho internals: its packet dispatch calling ``_handle_pubrec`` and the packet's bytes
    in ``_in_packet["packet"]``. A paho without them counts a QoS 2 message the broker refused as delivered,
    silently; this says so, for :meth:`MqttBridge.refusals_seen` (``run --check``) and the bridge's start."""
    base = type(client).__mro__[1]  # paho's Client, below telling_client's subclass
    packet = getattr(client, "_in_packet", None)
    return callable(getattr(base, "_handle_pubrec", None)) and isinstance(packet, dict) and "packet" in packet


def telling_client(mqtt, tell, refused_pubrec=None, **kwargs):
    """A paho ``Client`` (callback API 2, ``kwargs`` as for it) that hands each failed connect attempt's
    exception to ``tell(exc)`` before paho retries. paho's network loop (``loop_forever``, run by ``loop_start``)
    catches the OSError out of ``reconnect()`` (connection refused, host unknown or unreachable, a TLS handshake
    or certificate check that failed) and only logs "Connection failed, retrying" at DEBUG, without the reason.

    ``refused_pubrec(mid, code)``: an MQTT 5 PUBREC (QoS 2) whose reason code is 0x80 or more (MQTT 5.0 §3.5.2.1:
    the broker did not take the message). paho 2.x drops that code ("TODO" in ``_handle_pubrec``), goes on with
    PUBREL, and the broker's PUBCOMP then says Success: the refusal would be counted delivered."""
    class Client(mqtt.Client):
        def reconnect(self):
            try:
                return super().reconnect()
            except OSError as exc:
                tell(exc)
                raise

        def _handle_pubrec(self):
            # PUBREC's variable header (MQTT 5.0 §3.5.2): packet id (2 bytes), then a reason code, absent for 0x00
            # getattr: a paho without it must not lose its network thread here (pubrec_refusals_heard tells it)
            packet = bytes((getattr(self, "_in_packet", None) or {}).get("packet", b""))
            if refused_pubrec is not None and len(packet) > 2 and packet[2] >= 0x80:
                refused_pubrec(int.from_bytes(packet[:2], "big"), packet[2])
            return super()._handle_pubrec()

    return Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)


def connect_problem(exc: OSError) -> str:
    """One line saying why a connect attempt failed: a TLS certificate check by what it found (Python's
    ``ssl.SSLCertVerificationError.verify_message``: not trusted, expired, not valid for the host name), other TLS
    failures by OpenSSL's reason, socket errors by their strerror."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: the broker's certificate is not accepted ({str(exc.verify_message).rstrip('.')})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    return " ".join(str(exc.strerror or exc or type(exc).__name__).split())[:200]


def tls_context(ca_file: str | None, where: str) -> ssl.SSLContext:
    """The TLS context for a broker: certificate and host name checked against the system's CAs, or only those
    in ``ca_file`` (PEM; read once through :func:`inspector.config.read_text`). ConfigError, one line naming
    ``where``, for a CA file missing, a folder or device, not text or holding no certificate: paho's
    ``tls_set`` let ``FileNotFoundError`` or ``ssl.SSLError`` out of ``run --check`` as a traceback."""
    if not ca_file:
        return ssl.create_default_context()
    try:
        pem = read_text(ca_file, "CA file")
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    try:
        if not pem.strip():  # an empty cadata is taken for none: the system's CAs, silently
            raise ValueError("the file is empty")
        return ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"{where}: {ca_file}: no PEM certificate in it "
                          f"({getattr(exc, 'reason', None) or exc})") from None


def _read_untold(path: Path) -> list[dict]:
    """The final counts of earlier runs of this box never delivered (at most 16); a damaged file: one warning."""
    if not (path.exists() or path.is_symlink()):
        return []
    try:
        # the one reader of small files: a FIFO at the state path (refused by run --check; one made after it) held
        # the bridge's start, and the daemon's, for ever, waiting for a writer
        doc = wire_json(read_text(path, "MQTT bridge state file").encode(), str(path), limit=None)
    except ConfigError as exc:
        log.warning("%s; the MQTT bridge's untold counts ignored", exc)
        return []
    except (OSError, ValueError) as exc:  # deep nesting: a ValueError too
        log.warning("%s: cannot read the MQTT bridge's untold counts (%s); ignored", path, exc)
        return []
    ok = isinstance(doc, list) and all(isinstance(c, dict) and isinstance(c.get("run_id"), str) for c in doc)
    if not ok:
        log.warning("%s: not MQTT bridge counts; ignored, and left as it was", path)
    return doc[-16:] if ok else []


def _write_untold(path: Path, untold: list[dict]) -> None:
    """Keep final counts the broker never took, for the next run to publish (whole or not at all:
    :func:`inspector.outputs.write_whole`); a failure is one warning, the earlier file as it was. Only over an
    earlier state file of the bridge (:func:`~inspector.pipeline.integration_config.is_bridge_state`): anything
    else there (a file put there since ``run`` checked it) is left as it was, and the counts not kept, said."""
    from inspector.outputs import claim_file, write_whole
    from inspector.pipeline.integration_config import is_bridge_state

    try:
        claim_file(path, is_bridge_state, ConfigError, command="run", option="set publish.mqtt.state_file to",
                   noun="state file of the MQTT bridge")
    except ConfigError as exc:
        log.warning("MQTT: final counts not delivered and not kept (%s)", exc)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_whole(path, json.dumps(untold[-16:]).encode("utf-8"))
        log.warning("MQTT: final counts not delivered (broker away); kept in %s for the next run", path)
    except OSError as exc:
        log.warning("MQTT: final counts not delivered and not kept in %s (%s)", path, exc.strerror or exc)


def _bridge_drop_reasons(dropped: int, pending: int, refused: object) -> str:
    """Why a bridge's messages were lost, from its counts: ``refused`` (MQTT 5: by the broker, in ``dropped``)
    or the buffer full while the broker was away (the rest of ``dropped``), ``pending`` at its shutdown."""
    refused = refused if type(refused) is int and 0 <= refused <= dropped else 0
    why = [f"{pending} never delivered at its shutdown"] if pending else []
    why += [f"{refused} refused by the broker (its ACL?)"] if refused else []
    return ", ".join(why + (["buffer full while the broker was away"] if dropped > refused or not why else []))


@dataclass(frozen=True)
class _UnknownReason:
    """A failure code paho's ReasonCode does not know for the packet, shown as the broker sent it."""
    value: int
    is_failure: bool = True

    def __str__(self) -> str:
        return "reason code not defined by MQTT 5"


def _published(info) -> bool:
    try:
        return info.is_published()
    except (RuntimeError, ValueError):  # paho: not connected, or its queue full
        return False


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass  # gone already, or unwritable: told again next run, and the subscriber counts each run once


# the event types a bridge forwards (MqttBridge.offer: never 'result'), each under v1/<type>[/<camera>]
BRIDGED_TYPES = {k: v for k, v in CAMERA_TYPES.items() if k != "result"}  # type → whether its topic names a camera


def event_topic(kind: str) -> str:
    """A subscription as a ZeroMQ subscriber takes it (``v1/``, ``v1/defect``, ``v1/defect/cam1``), from it or
    from a bare type (``defect``, as MqttSubscriber took them before). ConfigError (one line) for anything
    else (:func:`inspector.events.subscription_topic`), or a type the bridge does not forward, or an MQTT
    wildcard."""
    topic = kind if kind.startswith("v1") or not kind else f"v1/{kind}"
    if any(c in topic for c in "+#"):
        raise ConfigError(f"topic '{kind[:80]}': MQTT wildcards are not topics here; give v1/<type>[/<camera>]")
    return subscription_topic(topic, BRIDGED_TYPES)


def mqtt_filters(topic: str) -> list[str]:
    """The MQTT topic filters (below ``<prefix>/+/``) that select the events :func:`event_topic` ``topic``
    covers (:func:`inspector.events.topic_matches`): a camera level matches one camera whole (``v1/defect/cam1``,
    not ``cam10``), a type every camera's events (``+``: one level, not the payloads below them)."""
    levels = topic.rstrip("/").split("/")
    kinds = list(BRIDGED_TYPES) if len(levels) < 2 else [levels[1]]
    if len(levels) == 3:
        return [topic.rstrip("/")]
    return [f"v1/{k}/+" if BRIDGED_TYPES[k] else f"v1/{k}" for k in kinds]


# What messages received from the broker but not yet taken by MqttSubscriber.recv may hold (bytes and count): paho's
# network thread queued every one without bound, so a flood while the consumer was slow (saving to a slow disk)
# grew the subscriber's memory without end. As for the ZeroMQ subscriber (inspector.client.QUEUE_BYTES).
ARRIVALS_BYTES = 2**30
ARRIVALS_MESSAGES = 10_000
ARRIVAL_OVERHEAD = 200  # bytes a queued message costs beyond its topic and payload (tuple, bytes and str objects)
DROPPED = ("dropped",)  # the marker queued where Arrivals dropped messages (a reconnect's: ("down", since, session))
# The most a message from the broker may carry (bytes; ``subscribe --max-message-mib``), as
# inspector.client.MAX_MESSAGE_BYTES for a ZeroMQ part. paho reads a whole PUBLISH packet before it hands it over
# (MQTT caps one at 256 MiB) and has no limit of its own for MQTT 3.1.1; a larger one is dropped in paho's
# callback, before it is copied, queued or parsed, and told (a marker ("oversized", topic, bytes) in its place).
MAX_MESSAGE_BYTES = 128 * 2**20
NOTICE_S = 0.5  # least time between two notices of messages dropped by a full arrival queue
SHORT_LIVED_S = 5.0  # a broker connection closed sooner than this after its CONNACK is short-lived …
SHORT_LIVED_TOLD = 3  # … and this many in a row are told (MqttSubscriber._tell_short_lived)


class Arrivals:
    """The bounded queue from paho's callback thread to :meth:`MqttSubscriber.recv`: at most ``max_bytes``
    (topic + payload + :data:`ARRIVAL_OVERHEAD` each; one message larger than that alone is taken into an empty
    queue, paho holding it already) and ``max_messages``. When full the NEWEST message is dropped and counted
    (``dropped``, ``dropped_bytes``): what was queued first is delivered in order, and a dropped event shows as
    a gap in its stream's seq. Markers (topic None: a reconnect) are never dropped: one per reconnect."""

    def __init__(self, max_bytes: int = ARRIVALS_BYTES, max_messages: int = ARRIVALS_MESSAGES) -> None:
        self.max_bytes, self.max_messages = max_bytes, max_messages
        self._items: collections.deque = collections.deque()
        self._bytes = 0
        self._ready = threading.Condition(threading.Lock())
        self.dropped = 0
        self.dropped_bytes = 0

    def put(self, topic: str | None, payload) -> bool:
        """Queue one message (never blocks: paho's thread also keeps the connection alive); False: dropped."""
        size = 0 if topic is None else len(topic) + len(payload) + ARRIVAL_OVERHEAD
        with self._ready:
            if topic is not None and self._items and (len(self._items) >= self.max_messages
                                                      or self._bytes + size > self.max_bytes):
                self.dropped += 1
                self.dropped_bytes += size
                if self._items[-1][0] is not None:  # one marker per run of drops: the gaps after it say why
                    self._items.append((None, DROPPED, 0))
                return False
            self._items.append((topic, payload, size))
            self._bytes += size
            self._ready.notify()
        return True

    def __len__(self) -> int:
        """Messages queued (markers not counted)."""
        with self._ready:
            return sum(topic is not None for topic, _, _ in self._items)

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def get(self, timeout: float | None = None):
        """The oldest ``(topic, payload)``; :class:`queue.Empty` after ``timeout`` seconds (None: wait forever)."""
        import queue as _queue

        with self._ready:
            if not self._ready.wait_for(lambda: self._items, timeout):
                raise _queue.Empty
            topic, payload, size = self._items.popleft()
            self._bytes -= size
        return topic, payload


def suback_reason(code, v5: bool) -> str:
    """A SUBACK's refusal in words with its code: MQTT 5 by its reason code's name (0x87 Not authorized); MQTT
    3.1.1 has one failure code, 0x80 Failure (§3.9.3), which paho names as MQTT 5's 0x80 'Unspecified error'."""
    return f"{code if v5 else 'Failure'}, 0x{code.value:02X}"


# The keys of an event's ``source`` that the MQTT subscriber sets itself: the box and run id it took the event
# under, and the payload descriptors it checked (_descriptor), which ``subscribe --save-dir`` reads to place the
# payload messages. A header's own ``source`` is wire data: its 'payloads' were kept whenever the header listed none,
# and read as checked ones (a list of numbers raised AttributeError out of the saver: a traceback).
OWN_SOURCE_KEYS = ("box", "run_id", "payload_topics", "payloads")


def own_source(wire: dict | None, box: str, run_id: str | None, descriptors: list[dict]) -> dict:
    """An event's ``source``: the wire's, less :data:`OWN_SOURCE_KEYS`, then this subscriber's values for them
    (``payload_topics`` and ``payloads`` only when ``descriptors``, checked, are there)."""
    source = {k: v for k, v in (wire or {}).items() if k not in OWN_SOURCE_KEYS}
    source.update(box=box, run_id=run_id)
    if descriptors:
        source.update(payload_topics=[d["topic"] for d in descriptors], payloads=descriptors)  # kind, encoding, topic
    return source


def _descriptor(desc: object) -> bool:
    """Whether a header's payload descriptor is one a bridge writes (event_messages): text kind, encoding, topic.
    A list as 'encoding' raised TypeError (unhashable) out of ``subscribe --save-dir``: a traceback."""
    return isinstance(desc, dict) and all(isinstance(desc.get(k), str) for k in ("kind", "encoding", "topic"))


def _check_connect_fields(url: str, parts, client_id: str | None) -> None:
    """Refuse in one line (ConfigError, field ``client_id`` or the URL) a subscriber's CONNECT field that MQTT
    cannot carry (:func:`mqtt_string_problem`): an empty ``--client-id`` (a persistent session needs one; paho's
    ValueError was a traceback), one or a URL user or password over 65,535 bytes (struct.error, a traceback) or
    with a line break (the broker dropped the connection unsaid and the subscriber waited out its --timeout)."""
    if client_id is not None:
        why = "must not be empty (a persistent session is known by it)" if not client_id else \
            mqtt_string_problem(client_id)
        if why:
            raise ConfigError(f"client_id: {client_id[:80]!r} {why}", field="client_id")
    for what, value, binary in (("user", parts.username, False), ("password", parts.password, True)):
        why = None if value is None else mqtt_string_problem(unquote(value), binary)
        if why:
            raise ConfigError(f"{redact(url)[:120]}: the {what} {why}")


class MqttSubscriber(KeepsState):
    """Read daemon events back from a broker: ``mqtt://[user:password@]host[:port][/prefix]`` (prefix default
    ``inspector``; user and password percent-encoded, as mosquitto_sub's ``-L``).

    ``recv`` returns ``(box, event)`` (payload descriptors only: the bytes travel on their own topics).
    What was missed is accounted per box by a :class:`~inspector.loss.LossTracker` (late joins, gaps,
    restarts, out-of-order and duplicate deliveries: QoS 1 re-deliveries are not returned again), plus the
    messages each box's bridge says it dropped (``data.mqtt_bridge`` of its stats, and its retained
    ``v1/bridge`` counts). Each box's ``stats`` are always subscribed to (they carry its bridge's and its
    daemon's drops and each stream's published count); when ``kinds`` lack ``stats`` they are taken in for
    the accounting only and not returned (``recv(quiet=True)`` does; :meth:`asked` tells them apart).
    :meth:`notices` gives one line per finding. Retained messages are delivered too (a new consumer sees every
    camera's current status at once).

    A subscription the broker refuses in its SUBACK (its ACL: Mosquitto's dynamic security plugin answers
    0x80 Failure to MQTT 3.1.1, which this subscriber speaks) makes :meth:`recv` raise ConfigError, one line
    naming the broker, the topic filters and the reason. Mosquitto 2.0's ``acl_file`` never refuses one: it
    grants the subscription and drops the denied messages at delivery, which no client can tell from silence.

    ``kinds``: the topics, as for the ZeroMQ subscriber (``v1/``, ``v1/defect``, ``v1/defect/cam1``: a camera
    whole; :func:`event_topic`), or bare types (``defect``). ``on_payload(box, topic, data)``: the defects'
    payload messages are subscribed to too, and each is handed to it as :meth:`recv` takes it (their order
    against their header is the broker's: ``inspector subscribe --save-dir`` pairs them either way).

    Messages are accounted when :meth:`recv` takes them, not when they arrive: what the accounting (and the
    ``state`` file, as for :class:`inspector.client.Subscriber`: saved after each message taken) counts as
    heard is what was handed over, so messages still queued when the process dies are told as missed by the
    next subscriber resuming that state.
    """

    def __init__(self, url: str, kinds=("v1/defect", "v1/status"), client_id: str | None = None,
                 state: str | Path | None = None, on_payload=None, queue_bytes: int = ARRIVALS_BYTES,
                 max_message_bytes: int = MAX_MESSAGE_BYTES, silence_s: float = SILENCE_S) -> None:
        mqtt = require("paho.mqtt.client", "mqtt", url)
        host, port, tls = broker_address(url)  # first: it refuses what urlsplit cannot split
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not host:
            raise ConfigError(f"{redact(url)}: expected mqtt://[user:password@]host[:port][/topic_prefix]")
        self.prefix = parts.path.strip("/") or "inspector"
        self._kinds = tuple(event_topic(k) for k in kinds)  # the v1 topics asked for, as LossTracker's topics
        self.quiet_stats = not any(topic_matches(t, STATS_TOPIC) for t in self._kinds)
        self.topics = [f"{self.prefix}/+/{f}" for t in self._kinds + ((STATS_TOPIC,) if self.quiet_stats else ())
                       for f in mqtt_filters(t)]
        self.topics.append(f"{self.prefix}/+/v1/bridge")  # each box's bridge counts: drops after its last stats
        self._held: collections.deque = collections.deque()  # messages take_payloads() read past, for recv
        self.on_payload = on_payload  # (box, topic, bytes) of each payload message taken; None: not subscribed
        if on_payload is not None:  # <filter>/<event_id>/<kind> under each defect header filter
            self.topics += [f"{t}/+/+" for t in self.topics if "/v1/defect/" in t]
        self.messages = Arrivals(queue_bytes)  # (topic, payload) as they arrive, accounted by recv
        self.max_message_bytes = max_message_bytes
        self.malformed = 0  # messages taken that are no event, skipped (told, and in summary())
        self._malformed_told = Throttle("malformed message(s) skipped")  # a flood of them is no flood of lines
        self._oversized_told = Throttle("message(s) over --max-message-mib dropped")
        self.oversized = 0  # messages over max_message_bytes, dropped as they arrived
        self._drops_told, self._drops_told_at = 0, -float("inf")  # arrival drops told, and when (monotonic)
        self._lock = threading.Lock()  # recv accounts, any thread may read the counts
        self.loss: dict[str, LossTracker] = {}  # box → its loss accounting
        self._bridge_dropped: dict[tuple[str, str], int] = {}  # (box, run) → messages its bridge said it dropped
        self._forgot = 0  # boxes whose accounting was forgotten (_tracker)
        self._notices: list[str] = []
        self._open_state(state, f"mqtt://{host}:{port}/{self.prefix}")  # before the first message can arrive
        self._url = redact(url)
        self.silence = BrokerSilence(self._url, f"{host}:{port}", self.prefix, silence_s)  # told by recv/notices
        self._connect_problem: str | None = None  # why the broker cannot be used, told once until connected
        _check_connect_fields(url, parts, client_id)
        self.client = telling_client(mqtt, self._cannot_connect, client_id=client_id or "",
                                     clean_session=client_id is None)
        if tls:
            self.client.tls_set()
        if parts.username is not None:  # mqtt://user:password@host, as mosquitto_sub -L takes them; ignored before,
            # so a broker that wants credentials refused the subscriber for ever
            self.client.username_pw_set(unquote(parts.username), unquote(parts.password or "") or None)
        self.client.reconnect_delay_set(min_delay=1, max_delay=5)
        self.client.on_connect, self.client.on_disconnect = self._on_connect, self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self._subscribing: dict[int, list[str]] = {}  # SUBSCRIBE packet id → its topic filters, until its SUBACK
        self._down_since: str | None = None  # when the broker connection dropped (UTC), until connected again
        self._client_id = client_id
        self._connected_at: float | None = None  # monotonic s of the last CONNACK accepted
        self._short_lived = 0  # connections in a row the broker closed within SHORT_LIVED_S of accepting them
        self.client.on_message = self._on_message
        self._first = FirstConnect(f"{host}:{port}")  # what the first connection gives: told at once
        try:
            self.client.connect(host, port, keepalive=30)
        except OSError as exc:
            self._release_state()
            raise ConfigError(f"{redact(url)}: cannot connect to the broker ({exc.strerror or exc})") from None
        self.client.loop_start()
        self._first_connected()

    def _first_connected(self) -> None:
        """Wait for the first connection's outcome (:class:`FirstConnect`): a broker that cannot be used is
        ConfigError, one line naming it, as a refused address is, instead of a wait of ``--silence-s``."""
        problem = self._first.problem()
        if problem is not None:
            self.client.disconnect()
            self.client.loop_stop()
            self._release_state()
            raise ConfigError(f"{self._url}: {problem}")

    def _release_state(self) -> None:
        """A subscriber that never connected: its state file stays as it was and is free for the next one (held,
        a second try in this process was refused as 'in use by another running subscriber', itself)."""
        if getattr(self, "state_file", None) is not None:
            self.state_file.release()

    def _cannot_connect(self, problem: str | OSError) -> None:
        """Tell (a notice) why the broker cannot be used, once until connected or the reason changes: a refused
        CONNACK (a broker that wants credentials: 'Not authorized') was passed over in silence, and the
        subscriber waited for ever, retrying, with nothing printed; so were failed reconnects."""
        why = problem if isinstance(problem, str) else connect_problem(problem)
        self.silence.cannot_connect(why)
        if why != self._connect_problem:
            self._connect_problem = why
            self._tell(f"{self._url}: cannot connect: {why}; retrying")

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:  # CONNACK refused (MQTT 3.1.1 §3.2.2.3)
            self._first.refused(reason_code)
            self._cannot_connect(f"the broker refused the connection: {reason_code}")
            return
        self._first.accepted()
        self._connect_problem = None
        self._connected_at = time.monotonic()
        self._tell(self.silence.connected())
        # one SUBSCRIBE for all: its SUBACK answers each filter in order, so a refusal names every one refused
        _, mid = client.subscribe([(topic, 1) for topic in self.topics])
        if mid is not None:  # None: the link gone already; the reconnect subscribes again
            self._subscribing[mid] = list(self.topics)
        if self._down_since is not None:  # a reconnect: queued behind what arrived before it (paho's one thread)
            self.messages.put(None, ("down", self._down_since, bool(getattr(flags, "session_present", False))))
            self._down_since = None

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties=None) -> None:
        """paho: the broker's SUBACK (network thread). A filter refused (MQTT 3.1.1 §3.9.3 return code 0x80
        Failure; MQTT 5.0 §3.9.3 a reason code ≥ 0x80, e.g. 0x87 Not authorized) will never deliver a message, and
        the subscriber waited for ever, silently: queued as a marker, :meth:`recv` raises it (ConfigError)."""
        topics = self._subscribing.pop(mid, [])
        self.silence.subscribed()
        refused = [f"{topic} ({suback_reason(code, self.client.protocol == 5)})"
                   for topic, code in zip(topics, reason_codes) if code.is_failure]
        if refused:
            self.messages.put(None, ("refused", f"{self._url}: the broker refused the subscription to "
                                                f"{', '.join(refused)}: no events would arrive on it; check the "
                                                f"broker's ACL for this subscriber's user"))

    def _on_message(self, client, userdata, msg) -> None:
        """Queue a message for recv (paho's network thread): never raises, since an exception here ended that
        thread and the subscriber heard nothing more. One over ``max_message_bytes`` is dropped here, before
        it is copied or parsed, and a topic that is not UTF-8 (a broker should refuse one) skipped: each as a
        marker, told and counted by recv in its place among the messages."""
        self._tell(self.silence.heard())  # any message, even one dropped here: something publishes there
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            raw = bytes(getattr(msg, "_topic", b"?"))[:160]  # paho keeps the topic's bytes there
            self.messages.put(None, ("malformed", repr(raw), "its topic is not UTF-8"))
            return
        if len(msg.payload) > self.max_message_bytes:
            self.messages.put(None, ("oversized", topic, len(msg.payload)))
            return
        self.messages.put(topic, bytes(msg.payload))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        from inspector.events import utc_iso

        self._first.closed(reason_code)
        if self._down_since is None:
            self._down_since = utc_iso()
        self.silence.down()
        self._tell_short_lived()

    def _tell_short_lived(self) -> None:
        """Tell, once, a broker that keeps closing this subscriber's connection right after accepting it: another
        client connecting with the same client id takes the session over (MQTT 3.1.1 §3.1.4 point 2: the broker
        disconnects the existing client), and two consumers given one ``--client-id`` kicked each other off every
        second for ever, each getting part of the messages, in silence. MQTT 3.1.1 says no why: told by its
        pattern, :data:`SHORT_LIVED_TOLD` connections in a row that lasted under :data:`SHORT_LIVED_S`."""
        lasted = None if self._connected_at is None else time.monotonic() - self._connected_at
        self._connected_at = None
        self._short_lived = self._short_lived + 1 if lasted is not None and lasted < SHORT_LIVED_S else 0
        if self._short_lived == SHORT_LIVED_TOLD:
            who = (f": is another client connected with client id '{self._client_id}'? The broker disconnects "
                   "the older of two (MQTT 3.1.1 §3.1.4); give each consumer its own --client-id"
                   if self._client_id else "")
            self._tell(f"{self._url}: the broker closed this subscriber's connection {SHORT_LIVED_TOLD} times in a "
                       f"row within {SHORT_LIVED_S:g} s of accepting it{who}")

    def _mark_disconnect(self, since: str, session_present: bool) -> None:
        """A broker disconnect (from ``since``, UTC) lies between the messages taken before and after it: the
        next gap of each stream heard before it is told as spanning it. With ``session_present`` (CONNACK,
        MQTT 3.1.1 §3.2.2.2) the broker kept this client's session and queued its QoS ≥ 1 messages meanwhile,
        so a gap there means the broker dropped some (its queue limit, or a restart without persistence);
        without it nothing published meanwhile was queued for this subscriber."""
        why = ("the broker kept this subscriber's session, so it dropped what is missing: its queue limit, or a "
               "restart without persistence" if session_present else
               "the broker kept no session for this subscriber: what was published meanwhile was not queued for it")
        with self._lock:
            for tracker in self.loss.values():
                tracker.mark(f"a broker disconnect at {since} ({why})")

    def _take(self, topic: str, payload: bytes):
        """Account one message taken from the queue; ``(box, event)`` to return, or None (bridge counts, not an
        event, a QoS 1 duplicate or a retained repeat)."""
        from inspector.events import decode

        if topic is None:  # not a message: a reconnect (_on_connect), messages dropped (Arrivals, _on_message)
            self._marker(payload)
            return None
        box, _, v1_topic = topic[len(self.prefix) + 1:].partition("/")
        if self._is_payload(topic):  # box/v1/defect/<camera>/<event_id>/<kind>
            self.on_payload(box, topic, payload)
            return None
        if topic.endswith("/v1/bridge"):
            self._bridge_message(box, payload)
            return None
        try:  # the header as decode() takes a ZeroMQ one (under its v1 topic); its payloads come on their own
            header = wire_json(payload, "header")  # the topic leads the notice (_skip)
            if not isinstance(header, dict):
                raise ValueError("header is not an object")
            descriptors = header.pop("payloads", [])
            if not (isinstance(descriptors, list) and len(descriptors) <= MAX_PAYLOADS
                    and all(_descriptor(d) for d in descriptors)):
                raise ValueError(f"'payloads' is not a list of at most {MAX_PAYLOADS} descriptors with a text "
                                 f"'kind', 'encoding' and 'topic'")
            event = decode([v1_topic.encode(), json.dumps({**header, "payloads": []}).encode()])
        except ValueError as exc:
            self._skip(topic, str(exc))
            return None
        event.run_id = event.run_id or str(header.get("event_id", "")).split("-")[0]
        if not self._account(box, event):  # a QoS 1 duplicate or a retained repeat
            return None
        event.source = own_source(getattr(event, "source", None), box, event.run_id, descriptors)  # stats: none
        return box, event

    def _marker(self, marker: tuple) -> None:
        """What a marker in the arrival queue stands for, told in its place among the messages: messages dropped
        by the full queue, a reconnect, one message over ``max_message_bytes`` or one not decodable at all."""
        if marker == DROPPED:
            with self._lock:
                for tracker in self.loss.values():
                    tracker.mark("messages this subscriber dropped, its queue full (--queue-mib)")
        elif marker[0] == "down":
            self._mark_disconnect(*marker[1:])
        elif marker[0] == "oversized":
            self.oversized += 1
            with self._lock:
                self._notices += self._oversized_told.take(
                    f"dropped a message of {marker[2]} bytes on {marker[1][:160]}: over the {self.max_message_bytes} "
                    f"bytes a message may have (subscribe --max-message-mib)")
                for tracker in self.loss.values():  # if it was a header, its event shows as a gap: this is why
                    tracker.mark("a message over --max-message-mib, dropped")
        elif marker[0] == "refused":  # a SUBACK refusal (_on_subscribe): not an event, nothing left to handle
            self._unhandled = False
            raise ConfigError(marker[1])
        else:  # ("malformed", topic, why)
            self._skip(*marker[1:])

    def _skip(self, topic: str, why: str) -> None:
        """Count and tell a message that is no event (it was only logged: a loss no summary showed)."""
        self.malformed += 1
        with self._lock:  # a flood of them is no flood of lines (Throttle)
            self._notices += self._malformed_told.take(f"skipped a malformed message on {topic[:160]}: {why[:200]}")

    def asked(self, event) -> bool:
        """Whether ``event`` is of the kinds asked for (False: a stats event heard for the accounting only)."""
        return not (self.quiet_stats and event.type == "stats")

    def _account(self, box: str, event) -> bool:
        """Observe ``event`` in its box's loss tracker; False for a duplicate (not to be returned again)."""
        with self._lock:
            tracker = self._tracker(box)
            new = tracker.observe(event)
            self._notices += [f"box {wire_text(box)}: {line}" for line in tracker.notices()]
            if event.type == "stats" and new:
                self._bridge_drops(box, event)
            return new

    def _tracker(self, box: str) -> LossTracker:
        """``box``'s loss tracker, made the most recently heard; past :data:`MEMORY_BOXES` boxes the least recently
        heard one is forgotten, and told. Call with the lock held."""
        tracker = self.loss.pop(box, None) or LossTracker(self._kinds)
        self.loss[box] = tracker
        if len(self.loss) > MEMORY_BOXES:
            gone = next(iter(self.loss))
            del self.loss[gone]
            self._bridge_dropped = {k: n for k, n in self._bridge_dropped.items() if k[0] != gone}
            if not self._forgot:
                self._notices.append(f"more than {MEMORY_BOXES} boxes heard: the accounting of the least recently "
                                     f"heard is forgotten (first box {gone}); a publisher inventing box names?")
            self._forgot += 1
        return tracker

    def _bridge_drops(self, box: str, event) -> None:
        """Tell the messages the box's bridge dropped (buffer full while the broker was away) since its last stats."""
        self._told_bridge(box, event.run_id, event.data.get("mqtt_bridge"))

    def _bridge_message(self, box: str, payload: bytes) -> None:
        """A box's retained ``v1/bridge`` counts (at each connect and at shutdown): drops after its last stats."""
        try:
            counts = wire_json(payload, "bridge counts")
        except ValueError:
            counts = None
        if not isinstance(counts, dict) or not isinstance(counts.get("run_id"), str):
            self._skip(f"{self.prefix}/{box}/v1/bridge", "not bridge counts")  # counted; a log line printed box raw
            return
        with self._lock:
            self._tracker(box)  # a box heard: bounded with the others (MEMORY_BOXES)
            self._told_bridge(box, counts["run_id"][:64], counts)

    def _told_bridge(self, box: str, run: str, bridge: object) -> None:
        """Tell the growth of a box's bridge ``dropped`` count and, in its final counts, the messages it never
        delivered (``pending`` at shutdown: the broker away, or slower than the flush allowed)."""
        if not isinstance(bridge, dict):
            return
        pending = bridge.get("pending") if bridge.get("final") is True else 0
        dropped = bridge.get("dropped")
        if type(dropped) is not int or type(pending) is not int or not 0 <= pending <= 10**12:
            return
        before = self._bridge_dropped.get((box, run), 0)
        if before < dropped + pending <= 10**12:
            self._bridge_dropped.pop((box, run), None)  # the most recently told last
            self._bridge_dropped[(box, run)] = dropped + pending
            if len(self._bridge_dropped) > 4 * MEMORY_BOXES:  # runs invented without end: the oldest told go
                del self._bridge_dropped[next(iter(self._bridge_dropped))]
            why = _bridge_drop_reasons(dropped, pending, bridge.get("refused"))
            self._notices.append(f"box {wire_text(box)}: its MQTT bridge dropped {dropped + pending - before} message(s) in run "
                                 f"{wire_text(run or '?')} ({why}; events, payloads, statuses or stats: {dropped + pending} in "
                                 f"this run so far)")

    @property
    def gaps(self) -> int:
        """Events lost between two received ones, all boxes (see :meth:`summary` for the rest)."""
        with self._lock:
            return sum(t.gaps for t in self.loss.values())

    @property
    def bridge_dropped(self) -> int:
        """Messages the boxes' bridges said (in their stats) they dropped, all runs."""
        with self._lock:
            return sum(self._bridge_dropped.values())

    def notices(self, final: bool = False) -> list[str]:
        """Findings since the last call, one line each (prefixed with the box); messages dropped by the full
        arrival queue told at most every NOTICE_S (``final``: now); a silence (:attr:`silence`) once it is due."""
        self._tell(self.silence.check())
        self._tell_arrival_drops(final)
        with self._lock:
            out = self._notices + self._malformed_told.due(final) + self._oversized_told.due(final)
            self._notices = []
        return out

    def _tell_arrival_drops(self, final: bool) -> None:
        """One line for the messages the full arrival queue dropped since the last one, at most every NOTICE_S
        (a flood drops thousands a second: one line each would flood the terminal too)."""
        dropped, now = self.messages.dropped, time.monotonic()
        if dropped == self._drops_told or (not final and now - self._drops_told_at < NOTICE_S):
            return
        line = (f"dropped {dropped - self._drops_told} message(s) from the broker ({dropped} in all): this "
                f"subscriber's queue of messages not yet handled was full ({self.messages.max_bytes / 2**20:g} MiB, "
                f"--queue-mib, or {self.messages.max_messages} messages): it handles them slower than the broker "
                f"delivers; the events among them are counted missed (gaps)")
        self._drops_told, self._drops_told_at = dropped, now
        self._tell(line)

    def summary(self) -> str:
        with self._lock:
            lines = [f"box {wire_text(box)}: {t.summary()}" for box, t in sorted(self.loss.items())]
            dropped = sum(self._bridge_dropped.values())
        return "; ".join(lines + [f"{dropped} message(s) dropped by the boxes' MQTT bridges",
                                  f"{self.messages.dropped} dropped by this subscriber (its queue full)",
                                  f"{self.oversized} message(s) over --max-message-mib "
                                  f"{self.max_message_bytes / 2**20:g} dropped",
                                  f"{self.malformed} malformed message(s) skipped"])

    def recv(self, timeout: float | None = None, quiet: bool = False):
        """The next ``(box, event)``, or None after ``timeout`` seconds (None: wait forever); messages that are no
        event to return (see :meth:`_take`; stats heard quietly unless ``quiet``) do not restart the wait.
        A silence coming due meanwhile is told (:meth:`notices`) and the wait goes on.
        ConfigError (one line) when the broker refused a subscription (:meth:`_on_subscribe`)."""
        import queue as _queue

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._save_taken()  # the event returned before is handled by now (KeepsState._save_taken)
            self._unhandled = True  # from here until handled: a stop now leaves it out of the state saved
            waits = [t for t in (None if deadline is None else max(deadline - time.monotonic(), 0.0),
                                 self.silence.due_in()) if t is not None]
            try:
                topic, payload = self._held.popleft() if self._held else self.messages.get(
                    timeout=min(waits) if waits else None)
            except _queue.Empty:
                self._unhandled = False
                self._tell(self.silence.check())
                if deadline is None or time.monotonic() < deadline:
                    continue
                return None
            got = self._take(topic, payload)
            self._state_dirty = True
            if got is not None and (quiet or self.asked(got[1])):
                return got

    def _is_payload(self, topic: str | None) -> bool:
        return self.on_payload is not None and topic is not None and topic[len(self.prefix) + 1:].count("/") == 5

    def take_payloads(self, timeout: float, wanted) -> None:
        """Hand the payload messages whose topic is in ``wanted`` (a container the handler empties, e.g. the
        saver's topics still waiting) to ``on_payload`` until it is empty or ``timeout`` seconds pass; every other
        message is kept, in order, for :meth:`recv` (not accounted as heard). For a consumer that stops after an
        event (``--count``) while its payloads are still on their way: another box's header, or the next event's,
        may come between (the broker orders each topic alone), and stopping there lost them."""
        import queue as _queue

        deadline = time.monotonic() + timeout
        while wanted:
            try:
                topic, payload = self.messages.get(timeout=max(deadline - time.monotonic(), 0.0))
            except _queue.Empty:
                return
            if self._is_payload(topic) and topic in wanted:
                self._take(topic, payload)
            else:
                self._held.append((topic, payload))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        with self._lock:  # what stats told it missed of streams it never heard, not said yet (LossTracker)
            for box, tracker in self.loss.items():
                tracker.say_untold()
                self._notices += [f"box {wire_text(box)}: {line}" for line in tracker.notices()]
        self._close_state()  # not when the event returned last was not handled (KeepsState)

    # the state kept in a StateFile (KeepsState): each box's loss tracker and the bridge drops told
    def state(self) -> dict:
        with self._lock:
            boxes = {box: tracker.state() for box, tracker in list(self.loss.items())[-STATE_BOXES:]}
            told = [[box, run, n] for (box, run), n in self._bridge_dropped.items() if box in boxes
                    and run in {r for r, _ in boxes[box]["runs"]}]
        return {"version": STATE_VERSION, "boxes": boxes, "bridge_told": told}

    def resume(self, state: object, saved_utc: str = "?") -> None:
        """Go on from :meth:`state`; ValueError (one line) when ``state`` is not one, nothing taken then."""
        if not (isinstance(state, dict) and state.get("version") == STATE_VERSION
                and isinstance(state.get("boxes"), dict) and len(state["boxes"]) <= STATE_BOXES):
            raise ValueError(f"not a version {STATE_VERSION} MQTT subscriber state (per box)")
        trackers = {}
        for box, tracker_state in state["boxes"].items():
            trackers[box[:256]] = tracker = LossTracker(self._kinds)
            tracker.resume(tracker_state, saved_utc)  # ValueError for a damaged one: nothing taken
        told = state.get("bridge_told", [])
        if not (isinstance(told, list) and all(isinstance(t, list) and len(t) == 3 and isinstance(t[0], str)
                                               and t[0] in trackers and isinstance(t[1], str)
                                               and t[1] in trackers[t[0]].runs and type(t[2]) is int
                                               and 0 < t[2] <= 10**12 for t in told)):
            raise ValueError("its 'bridge_told' are not a list of [box, run id, count] of its runs")
        with self._lock:
            self.loss.update(trackers)
            self._bridge_dropped.update({(box, run): n for box, run, n in told})

    def heard(self) -> str:
        with self._lock:
            return "; ".join(f"box {wire_text(box)}: {t.heard()}" for box, t in sorted(self.loss.items())) or "no box heard yet"

    def _tell(self, line: str | None) -> None:
        if line:
            with self._lock:
                self._notices.append(line)
