"""Start the integrations a daemon config switches on, and stop them in order; the daemon with them.

The pipeline never imports the integrations: it takes them as
:class:`~inspector.pipeline.extensions.Extensions` (:data:`EXTENSIONS`), and
:func:`make_daemon` is the daemon ``inspector run`` and the demo use. Nothing
here imports a third-party module unless its section is on; a missing extra
fails :meth:`Daemon.setup` with one line naming what to install.
"""

from __future__ import annotations

import logging

from inspector.pipeline.config import CameraSection, DaemonConfig
from inspector.pipeline.daemon import Daemon
from inspector.pipeline.extensions import Extensions
from inspector.pipeline.sources import Source
from inspector.redact import redact

log = logging.getLogger("inspector.integrations")


_EXTRAS = (  # (switched on?, module, extra, where)
    (lambda cfg: cfg.metrics.enabled, "prometheus_client", "metrics", "metrics"),
    (lambda cfg: cfg.publish.mqtt.enabled, "paho.mqtt.client", "mqtt", "publish.mqtt"),
    (lambda cfg: cfg.dashboard.enabled, "starlette", "dashboard", "dashboard"),
    (lambda cfg: cfg.dashboard.enabled, "uvicorn", "dashboard", "dashboard"),
)


def check_extras(cfg: DaemonConfig) -> None:
    """Fail first, with one line, when a switched-on integration's extra is not installed."""
    from inspector.integrations import require

    for enabled, module, extra, where in _EXTRAS:
        if enabled(cfg):
            require(module, extra, where)


class Integrations:
    """The daemon's optional servers and event taps (metrics, MQTT bridge, dashboard)."""

    def __init__(self, daemon: Daemon) -> None:
        cfg = daemon.cfg
        self.taps: list = []
        self._closers: list = []
        self._closed: list = []  # closed by close(): their losses are final
        try:
            if cfg.metrics.enabled:
                from inspector.integrations.metrics import MetricsServer

                self._closers.append(MetricsServer(cfg.metrics, daemon))
            if cfg.publish.mqtt.enabled:
                from inspector.integrations.mqtt import MqttBridge

                daemon.mqtt_bridge = MqttBridge(cfg.publish.mqtt, run_id=daemon.run_id)
                self._add_tap(daemon.mqtt_bridge)
            if cfg.dashboard.enabled:
                from inspector.integrations.dashboard import DashboardServer

                self._add_tap(DashboardServer(cfg.dashboard, daemon))
        except BaseException:
            self.close()
            raise

    def describe(self) -> list[str]:
        """One ``ok …`` line per integration, for ``inspector run --check``."""
        lines = []
        for item in self._closers:
            url = getattr(item, "url", None)
            if url:
                lines.append(f"ok {type(item).__name__} on {url}")
            elif hasattr(item, "prefix"):
                lines.append(f"ok MQTT bridge to {redact(item.cfg.url)} (topics {item.prefix}/…; "
                             f"{item.refusals_seen()}; undelivered final counts kept in {item.state_path})")
        return lines

    def _add_tap(self, tap) -> None:
        self.taps.append(tap)
        self._closers.append(tap)

    def close(self) -> None:
        """Stop each integration (last started first); errors are logged, never raised."""
        while self._closers:
            item = self._closers.pop()
            try:
                item.close()
            except Exception as exc:  # noqa: BLE001 - shutdown goes on
                log.error("closing %s: %r", type(item).__name__, exc)
            self._closed.append(item)

    def losses(self) -> list[str]:
        """After :meth:`close`: what each integration lost of the events it was given (its ``lost()``, one line
        naming its setting; the MQTT bridge's messages never delivered), for the daemon's closing failure lines."""
        return [line for item in self._closed if hasattr(item, "lost") and (line := item.lost())]


def genicam_source(camera: CameraSection, bit_depth: int | None) -> Source:
    """A GenICam camera's source; the optional extra is imported only when a camera uses it."""
    from inspector.integrations.genicam import make_genicam_source

    return make_genicam_source(camera, bit_depth)


def genicam_names(cameras: list[CameraSection]) -> dict[str, str]:
    """The device id each GenICam camera's name opens (:func:`inspector.integrations.genicam.genicam_device_ids`)."""
    from inspector.integrations.genicam import genicam_device_ids

    return genicam_device_ids(cameras)


SOURCE_KINDS = {"genicam": genicam_source}
SOURCE_NAMES = {"genicam": genicam_names}
EXTENSIONS = Extensions(source_kinds=SOURCE_KINDS, source_names=SOURCE_NAMES, check=check_extras,
                        start=Integrations)


def make_daemon(cfg: DaemonConfig, **kwargs) -> Daemon:
    """The daemon with every integration its config switches on (``kwargs``: those of :class:`Daemon`)."""
    return Daemon(cfg, extensions=EXTENSIONS, **kwargs)
