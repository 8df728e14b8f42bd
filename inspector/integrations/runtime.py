"""Start the integrations a daemon config switches on, and stop them in order.

Nothing here imports a third-party module unless its section is on; a missing
extra fails :meth:`Daemon.setup` with one line naming what to install.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inspector.pipeline.daemon import Daemon

log = logging.getLogger("inspector.integrations")


_EXTRAS = (  # (switched on?, module, extra, where)
    (lambda cfg: cfg.metrics.enabled, "prometheus_client", "metrics", "metrics"),
    (lambda cfg: cfg.publish.mqtt.enabled, "paho.mqtt.client", "mqtt", "publish.mqtt"),
    (lambda cfg: cfg.dashboard.enabled, "starlette", "dashboard", "dashboard"),
    (lambda cfg: cfg.dashboard.enabled, "uvicorn", "dashboard", "dashboard"),
)


def check_extras(cfg) -> None:
    """Fail first, with one line, when a switched-on integration's extra is not installed."""
    from inspector.integrations import require

    for enabled, module, extra, where in _EXTRAS:
        if enabled(cfg):
            require(module, extra, where)


class Integrations:
    """The daemon's optional servers and event taps (metrics, MQTT bridge, dashboard)."""

    def __init__(self, daemon: "Daemon") -> None:
        cfg = daemon.cfg
        self.taps: list = []
        self._closers: list = []
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
                lines.append(f"ok MQTT bridge to {item.cfg.url} (topics {item.prefix}/…)")
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
