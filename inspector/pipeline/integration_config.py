"""Config sections of the optional plant integrations (metrics, MQTT, dashboard, GenICam).

Part of the daemon's config (``inspector.yaml``), so they live with it in the
pipeline; the integrations (:mod:`inspector.integrations`) import them from
here, never the other way round.

Plain frozen dataclasses with no third-party imports, so the daemon's config
loads and validates them whether or not an integration's extra is installed;
the extra is imported only when a section is switched on. Every number has a
declared range, checked in ``validate`` with a one-line error.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from inspector.config import bounded, refuse_empty
from inspector.errors import ConfigError
from inspector.redact import redact

PIXEL_FORMATS = ("Mono8", "Mono12", "Mono16", "BayerRG8", "BayerBG8", "BayerGB8", "BayerGR8", "RGB8")


def parse_listen(where: str, listen: str) -> tuple[str, int]:
    """``host:port`` (IPv6 as ``[::1]:port``) → (host, port); one-line error otherwise. Brackets hold an IPv6
    address and are closed: '[::1' was read as host ':' port 1 (the dashboard then wanted a token for a host
    that is "not loopback") and '[cam1]:80' as the host name cam1."""
    bracketed = "[" in listen or "]" in listen
    m = re.fullmatch(r"\[([^\[\]]+)\]:(\d{1,5})" if bracketed else r"([^\[\]]*?):(\d{1,5})", listen)
    if not m or not 0 < int(m.group(2)) < 65536 or (bracketed and not _ipv6(m.group(1))):
        raise ConfigError(f"{where}: '{listen}' is not host:port (e.g. 127.0.0.1:9108, [::1]:9108)")
    return m.group(1) or "0.0.0.0", int(m.group(2))


def _ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_port_problem(parts) -> str | None:
    """Why the port of a split URL is unusable, or None (no port: the scheme's default).

    ``urlsplit(...).port`` raises ValueError for a port outside 0-65535 or not a number, which surfaced
    as a traceback from the MQTT bridge; port 0 was taken as "no port" and silently became 1883.
    """
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        return f"the port must be 1-65535, got '{parts.netloc.rpartition(':')[2]}'"
    return None


def url_address_problem(url: str) -> str | None:
    """Why the host or port of ``url`` cannot be used, or None; never quotes the URL (it may hold a password).
    Python's urlsplit raises ValueError for an unclosed or non-IP ``[…]`` host ('mqtt://[::1', 'rtsp://[cam1]/'),
    and its ``port`` one past 65535 (:func:`url_port_problem`): tracebacks out of ``run --check`` and
    ``subscribe``, where each such URL is split."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL", "'zz' does not appear to be an IPv4 or IPv6 address"
        return f"no valid host ({str(exc)[:80]})"
    return url_port_problem(parts)


# MQTT 3.1.1 §1.5.3 (OASIS standard, docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html): no U+0000 and
# (SHOULD NOT) no control characters U+0001-U+001F, U+007F-U+009F, which Mosquitto refuses as malformed UTF-8
_TOPIC_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


BOX_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # publish.mqtt.box, or the host name taken for it


MQTT_STRING_BYTES = 65535  # MQTT 3.1.1 §1.5.3 / §3.1.3.5: a string or binary field has a 2-byte length


def mqtt_string_problem(text: str, binary: bool = False) -> str | None:
    """Why ``text`` cannot go in an MQTT CONNECT field, or None: a client id or user name is UTF-8 of at most
    65,535 bytes without control characters or a lone surrogate (MQTT 3.1.1 §1.5.3: U+0000 must not, the other
    controls should not be there, and Mosquitto drops the connection as a protocol error, which told nothing
    but a broker that never answered); a password (``binary``) is any bytes, at most 65,535 of them (§3.1.3.5).
    paho packs a longer one's length in 2 bytes: struct.error in its network thread, a traceback and a bridge
    that never connected while ``run --check`` said OK."""
    if not binary and (_TOPIC_CONTROL.search(text) or any("\ud800" <= c <= "\udfff" for c in text)):
        return "must be without control characters (a line break …; MQTT 3.1.1 §1.5.3)"
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MQTT_STRING_BYTES:
        return (f"is {size:,} bytes, over MQTT's {MQTT_STRING_BYTES:,} (a 2-byte length, MQTT 3.1.1 "
                f"{'§3.1.3.5' if binary else '§1.5.3'})")
    return None


def topic_level_problem(text: str) -> str | None:
    """Why ``text`` cannot lead the bridge's topic names (``<topic_prefix>/<box>/v1/…``), or None. MQTT 3.1.1:
    a topic name is UTF-8 of at most 65,535 bytes without U+0000 (§1.5.3, §4.7.3), control characters or a lone
    surrogate (Mosquitto drops the connection: malformed UTF-8), no wildcard '+' or '#' (§4.7.1; paho raises
    ValueError out of publish) and no leading '$' (§4.7.2: the broker's own topics, refused to clients and not
    matched by '#' or '+'). An empty level (a leading, trailing or double '/') is refused too: ``inspector
    subscribe mqtt://host/<prefix>`` and consumers' ``<prefix>/+/v1/…`` filters never select it."""
    if not text:
        return "must not be empty"
    if any(c in text for c in "+#") or any(c.isspace() for c in text):
        return "must be without '#', '+' or spaces"
    if _TOPIC_CONTROL.search(text) or any("\ud800" <= c <= "\udfff" for c in text):
        return "must be without control characters (MQTT 3.1.1 §1.5.3)"
    if text.startswith("$"):
        return "must not start with '$' (MQTT 3.1.1 §4.7.2: the broker's own topics)"
    if "" in text.split("/"):
        return "must have no empty level (a leading, trailing or double '/')"
    if len(text.encode("utf-8")) > 1024:  # the whole topic must fit 65,535 bytes; no plant needs more
        return "must be at most 1024 bytes"
    return None


def is_bridge_state(raw: bytes) -> bool:
    """Whether ``raw`` (a file's bytes) is a state file the MQTT bridge wrote at ``publish.mqtt.state_file``: a
    JSON list of the final counts of runs, each with its ``run_id`` (for :func:`inspector.outputs.claim_file`: the
    bridge replaces only one of these; a config or notes there were written over at a shutdown with the broker
    away)."""
    data = json.loads(raw)
    return isinstance(data, list) and all(isinstance(c, dict) and isinstance(c.get("run_id"), str) for c in data)


@dataclass(frozen=True)
class HttpLimits:
    """Protection limits of one of the daemon's HTTP servers against peers on the plant network.

    Applied by :mod:`inspector.integrations.dashboard.guard` (and the metrics server). The defaults only
    bound abuse: a browser, a reverse proxy or Prometheus never comes near them. Raise them for many
    browsers behind one NAT; shorten the times on a hostile network.
    """

    max_connections: int = bounded(256, ge=1, le=10_000)  # open connections in all, [1, 10000]
    # open connections per client address (behind a trusted proxy: requests in flight per forwarded address), [1, 10000]
    max_per_client: int = bounded(32, ge=1, le=10_000)
    # a request must arrive complete within this of the connection opening or the previous response, [0.5, 600] s
    request_deadline_s: float = bounded(10.0, ge=0.5, le=600)
    # a response the peer does not read for this long closes the connection, [0.5, 3600] s
    write_stall_s: float = bounded(30.0, ge=0.5, le=3600)
    # kernel send buffer per connection (SO_SNDBUF), [4096, 67108864] bytes
    send_buffer_bytes: int = bounded(128 * 1024, ge=4096, le=64 * 1024 * 1024)

    def validate(self, where: str) -> None:
        if self.max_per_client > self.max_connections:
            raise ConfigError(f"{where}.max_per_client: {self.max_per_client} is more than "
                              f"max_connections ({self.max_connections})")


@dataclass(frozen=True)
class MetricsLimits(HttpLimits):
    """:class:`HttpLimits` with fewer connections: scrapers are few, and each connection is a thread while it lasts."""

    max_connections: int = bounded(32, ge=1, le=10_000)  # [1, 10000]
    max_per_client: int = bounded(8, ge=1, le=10_000)  # [1, 10000]


def check_networks(where: str, entries: tuple[str, ...]) -> None:
    """One-line error for an entry of ``entries`` that is not an IP address or CIDR network (``10.0.0.0/8``)."""
    for i, entry in enumerate(entries):
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(f"{where}[{i}]: '{entry[:60]}' is not an IP address or network "
                              f"(e.g. 10.0.0.5 or 10.0.0.0/24)") from None


@dataclass(frozen=True)
class MetricsSection:
    """Prometheus endpoint (``prometheus-client``): ``GET http://<listen>/metrics``."""

    _switch = ("listen", "listen (host:port, e.g. 127.0.0.1:9108)")  # off by default (config._refuse_switched_off)
    listen: str = ""  # host:port, e.g. 127.0.0.1:9108; empty = off
    # file holding a bearer token scrapers must send (Authorization: Bearer …); off loopback without one: a warning
    token_file: str | None = None
    limits: MetricsLimits = field(default_factory=MetricsLimits)

    @property
    def enabled(self) -> bool:
        return bool(self.listen)

    def validate(self, where: str) -> None:
        refuse_empty(where, self, ("token_file",))
        if self.listen:
            parse_listen(f"{where}.listen", self.listen)


@dataclass(frozen=True)
class DashboardSection:
    """Live web page (Starlette + uvicorn, server-sent events) served by the daemon."""

    _switch = ("listen", "listen (host:port, e.g. 127.0.0.1:8080)")  # off by default (config._refuse_switched_off)
    listen: str = ""  # host:port, e.g. 127.0.0.1:8080; empty = off
    token_file: str | None = None  # file holding the access token; required unless bound to loopback
    recent_defects: int = bounded(12, ge=1, le=500)  # defects kept and shown with their heat maps, [1, 500]
    frame_interval_s: float = bounded(0.5, ge=0.05, le=60)  # newest-frame thumbnail per camera at most this often, [0.05, 60]
    push_interval_s: float = bounded(0.5, ge=0.05, le=10)  # SSE state updates at most this often, [0.05, 10]
    # reverse proxies (addresses or CIDR networks) whose X-Forwarded-For names the client; empty = none trusted
    trusted_proxies: tuple[str, ...] = ()
    limits: HttpLimits = field(default_factory=HttpLimits)

    @property
    def enabled(self) -> bool:
        return bool(self.listen)

    def validate(self, where: str) -> None:
        refuse_empty(where, self, ("token_file",))
        check_networks(f"{where}.trusted_proxies", self.trusted_proxies)
        if not self.listen:
            return
        host, _ = parse_listen(f"{where}.listen", self.listen)
        if not is_loopback(host) and not self.token_file:
            raise ConfigError(f"{where}.token_file: required when the dashboard listens on {host} "
                              f"(not loopback); put a random token in a file readable by the daemon only")


@dataclass(frozen=True)
class MqttSection:
    """MQTT bridge (``paho-mqtt``): defect events, retained camera status and stats to the plant broker."""

    _switch = ("url", "url (mqtt://host:1883 or mqtts://host:8883)")  # off by default (config._refuse_switched_off)
    url: str = ""  # mqtt://host:1883 or mqtts://host:8883; empty = off
    topic_prefix: str = "inspector"  # topics: <prefix>/<box>/v1/defect/<camera> …
    box: str = ""  # this daemon's name in topics (default: the host name)
    qos: int = bounded(1, ge=0, le=2)  # [0, 2]
    tls: bool = False  # also implied by mqtts://
    ca_file: str | None = None  # CA bundle for TLS (default: the system's)
    username: str = ""
    password_file: str | None = None  # a file holding the password (never the password in the config)
    thumbnails: bool = True  # thumbnails/heat maps as separate binary messages; false = omitted
    stats: bool = True  # publish v1/stats heartbeats
    buffer_size: int = bounded(1000, ge=1, le=1_000_000)  # messages held while the broker is away (oldest dropped, counted), [1, 1e6]
    keepalive_s: int = bounded(30, ge=5, le=3600)  # [5, 3600]
    reconnect_max_s: float = bounded(10.0, ge=0.1, le=300)  # back-off ceiling between reconnect attempts, [0.1, 300]
    # "5" (MQTT 5: a message the broker refuses, e.g. its ACL denies the topic, is told and counted dropped) or
    # "3.1.1" (for brokers older than MQTT 5: such a message is acknowledged as taken, counted delivered)
    protocol: Literal["5", "3.1.1"] = "5"
    # final counts the bridge could not deliver at shutdown (broker down), published at its next start;
    # "" = $STATE_DIRECTORY, $XDG_STATE_HOME or ~/.local/state, then inspector/mqtt-bridge-<box>.json
    state_file: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def box_name(self, box: str | None = None) -> str:
        """This daemon's name in topics: ``box`` (the setting), else the caller's, else the host's short name."""
        return self.box or box or socket.gethostname().split(".")[0]

    def state_path(self, box: str | None = None) -> Path:
        """Where the bridge keeps final counts it could not deliver: ``state_file``, else systemd's
        StateDirectory, else XDG's state home (XDG Base Directory spec), then ``inspector/mqtt-bridge-<box>.json``;
        never an evidence folder (the recorder's files are the run's evidence). The one rule, for the bridge and
        for ``run --check`` (which checked only a configured ``state_file``, not this default)."""
        if self.state_file:
            return Path(self.state_file)
        base = os.environ.get("STATE_DIRECTORY", "").split(":")[0] or os.environ.get("XDG_STATE_HOME") \
            or str(Path.home() / ".local" / "state")
        return Path(base) / "inspector" / f"mqtt-bridge-{self.box_name(box).replace('/', '_')}.json"

    def validate(self, where: str) -> None:
        refuse_empty(where, self, ("ca_file", "password_file"))  # state_file "" is the documented default
        if not self.url:
            return
        why = url_address_problem(self.url)
        if why:
            raise ConfigError(f"{where}.url: {redact(self.url)!r}: {why}")
        parts = urlsplit(self.url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
            raise ConfigError(f"{where}.url: {redact(self.url)!r} is not mqtt://host[:port] or mqtts://host[:port]")
        if parts.username is not None or parts.password is not None:  # paho never saw them; logs showed them
            raise ConfigError(f"{where}.url: user and password in the URL are not used (nor kept out of the log); "
                              f"set {where}.username and {where}.password_file")
        if url_port_problem(parts):
            raise ConfigError(f"{where}.url: {redact(self.url)!r}: {url_port_problem(parts)}")
        why = topic_level_problem(self.topic_prefix)
        if why:
            raise ConfigError(f"{where}.topic_prefix: {self.topic_prefix[:80]!r} {why}")
        if self.box and not BOX_NAME.fullmatch(self.box):
            raise ConfigError(f"{where}.box: '{self.box}' must be 1-64 letters, digits, '_', '-' or '.'")
        if self.username and not self.password_file:
            raise ConfigError(f"{where}.password_file: required with a username")
        why = mqtt_string_problem(self.username)
        if why:
            raise ConfigError(f"{where}.username: {self.username[:80]!r} {why}")
        if self.ca_file and not (self.tls or parts.scheme in ("mqtts", "ssl")):
            # the CA was ignored: the operator meant TLS and got clear text (a password_file's password too)
            raise ConfigError(f"{where}.ca_file: given, but '{parts.scheme}://' without tls: true is no TLS; "
                              f"use mqtts:// (or tls: true), or drop ca_file")


@dataclass(frozen=True)
class GenicamSection:
    """GenICam camera settings, written as standard features (SFNC names) when the camera opens."""

    pixel_format: str = ""  # one of PIXEL_FORMATS; empty = leave the camera's setting
    exposure_us: float | None = bounded(None, ge=1, le=10**7)  # ExposureTime, [1, 1e7] µs
    gain_db: float | None = bounded(None, ge=0, le=48)  # Gain, [0, 48] dB
    frame_rate: float | None = bounded(None, ge=0.1, le=1000)  # AcquisitionFrameRate, [0.1, 1000] Hz
    # TriggerMode/TriggerSource; lines as the camera numbers them (SFNC Line0..: FLIR/Teledyne from 0, Basler from 1)
    trigger: Literal["off", "software", "line0", "line1", "line2", "line3"] = "off"
    buffers: int = bounded(8, ge=2, le=64)  # stream buffers queued, [2, 64]
    packet_size: int | None = bounded(None, ge=576, le=16000)  # GigE GevSCPSPacketSize, [576, 16000] bytes; None = negotiate
    # (significant bits of Mono16 pixels: the camera's bit_depth setting; Mono12 declares its own 12)

    def validate(self, where: str) -> None:
        if self.pixel_format and self.pixel_format not in PIXEL_FORMATS:
            from inspector.config import suggest

            raise ConfigError(f"{where}.pixel_format: '{self.pixel_format}' is not one of {list(PIXEL_FORMATS)}"
                              f"{suggest(self.pixel_format, PIXEL_FORMATS)}")
