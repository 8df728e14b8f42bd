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
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from inspector.config import bounded
from inspector.errors import ConfigError

PIXEL_FORMATS = ("Mono8", "Mono12", "Mono16", "BayerRG8", "BayerBG8", "BayerGB8", "BayerGR8", "RGB8")


def parse_listen(where: str, listen: str) -> tuple[str, int]:
    """``host:port`` (IPv6 as ``[::1]:port``) → (host, port); one-line error otherwise."""
    m = re.fullmatch(r"\[?([^\[\]]*?)\]?:(\d{1,5})", listen)
    if not m or not 0 < int(m.group(2)) < 65536:
        raise ConfigError(f"{where}: '{listen}' is not host:port (e.g. 127.0.0.1:9108)")
    return m.group(1) or "0.0.0.0", int(m.group(2))


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


@dataclass(frozen=True)
class MetricsSection:
    """Prometheus endpoint (``prometheus-client``): ``GET http://<listen>/metrics``."""

    listen: str = ""  # host:port, e.g. 127.0.0.1:9108; empty = off

    @property
    def enabled(self) -> bool:
        return bool(self.listen)

    def validate(self, where: str) -> None:
        if self.listen:
            parse_listen(f"{where}.listen", self.listen)


@dataclass(frozen=True)
class DashboardSection:
    """Live web page (Starlette + uvicorn, server-sent events) served by the daemon."""

    listen: str = ""  # host:port, e.g. 127.0.0.1:8080; empty = off
    token_file: str | None = None  # file holding the access token; required unless bound to loopback
    recent_defects: int = bounded(12, ge=1, le=500)  # defects kept and shown with their heat maps, [1, 500]
    frame_interval_s: float = bounded(0.5, ge=0.05, le=60)  # newest-frame thumbnail per camera at most this often, [0.05, 60]
    push_interval_s: float = bounded(0.5, ge=0.05, le=10)  # SSE state updates at most this often, [0.05, 10]

    @property
    def enabled(self) -> bool:
        return bool(self.listen)

    def validate(self, where: str) -> None:
        if not self.listen:
            return
        host, _ = parse_listen(f"{where}.listen", self.listen)
        if not is_loopback(host) and not self.token_file:
            raise ConfigError(f"{where}.token_file: required when the dashboard listens on {host} "
                              f"(not loopback); put a random token in a file readable by the daemon only")


@dataclass(frozen=True)
class MqttSection:
    """MQTT bridge (``paho-mqtt``): defect events, retained camera status and stats to the plant broker."""

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
    # final counts the bridge could not deliver at shutdown (broker down), published at its next start;
    # "" = $STATE_DIRECTORY, $XDG_STATE_HOME or ~/.local/state, then inspector/mqtt-bridge-<box>.json
    state_file: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def validate(self, where: str) -> None:
        if not self.url:
            return
        parts = urlsplit(self.url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
            raise ConfigError(f"{where}.url: '{self.url}' is not mqtt://host[:port] or mqtts://host[:port]")
        if url_port_problem(parts):
            raise ConfigError(f"{where}.url: '{self.url}': {url_port_problem(parts)}")
        if not re.fullmatch(r"[^#+\s]+", self.topic_prefix):
            raise ConfigError(f"{where}.topic_prefix: '{self.topic_prefix}' must be non-empty without '#', '+' or spaces")
        if self.box and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.box):
            raise ConfigError(f"{where}.box: '{self.box}' must be 1-64 letters, digits, '_', '-' or '.'")
        if self.username and not self.password_file:
            raise ConfigError(f"{where}.password_file: required with a username")


@dataclass(frozen=True)
class GenicamSection:
    """GenICam camera settings, written as standard features (SFNC names) when the camera opens."""

    pixel_format: str = ""  # one of PIXEL_FORMATS; empty = leave the camera's setting
    exposure_us: float | None = bounded(None, ge=1, le=10**7)  # ExposureTime, [1, 1e7] µs
    gain_db: float | None = bounded(None, ge=0, le=48)  # Gain, [0, 48] dB
    frame_rate: float | None = bounded(None, ge=0.1, le=1000)  # AcquisitionFrameRate, [0.1, 1000] Hz
    trigger: Literal["off", "software", "line1", "line2"] = "off"  # TriggerMode/TriggerSource
    buffers: int = bounded(8, ge=2, le=64)  # stream buffers queued, [2, 64]
    packet_size: int | None = bounded(None, ge=576, le=16000)  # GigE GevSCPSPacketSize, [576, 16000] bytes; None = negotiate
    # (significant bits of Mono16 pixels: the camera's bit_depth setting; Mono12 declares its own 12)

    def validate(self, where: str) -> None:
        if self.pixel_format and self.pixel_format not in PIXEL_FORMATS:
            from inspector.config import suggest

            raise ConfigError(f"{where}.pixel_format: '{self.pixel_format}' is not one of {list(PIXEL_FORMATS)}"
                              f"{suggest(self.pixel_format, PIXEL_FORMATS)}")
