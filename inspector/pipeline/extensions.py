"""What a plug-in may add to the daemon, so the pipeline never imports the integrations that use it.

The daemon takes an :class:`Extensions` at construction: extra camera source
types (GenICam), what one physical source those cameras name (a GenICam camera
named by its IP address in one entry and its device id in another is one
camera, which the text alone cannot tell), a check of the config that runs first (a switched-on
integration whose pip extra is missing fails before anything loads), and a
``start(daemon)`` that starts the integrations a config switches on (metrics,
MQTT, dashboard) and returns them. The standard set is
:data:`inspector.integrations.runtime.EXTENSIONS`; ``inspector run`` and the demo
make their daemon with it (:func:`inspector.integrations.runtime.make_daemon`).
A daemon made without one runs the bare pipeline and refuses a config that
switches an integration on, rather than ignore it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from inspector.errors import ConfigError
from inspector.pipeline.config import CameraSection, DaemonConfig
from inspector.pipeline.sources import SourceFactory


class Running(Protocol):
    """Integrations started beside a daemon."""

    taps: list  # integrations.EventTap: offered every published event by the publisher thread

    def describe(self) -> list[str]:
        """One ``ok …`` line per integration, for ``inspector run --check``."""

    def close(self) -> None:
        """Stop each integration; errors are logged, never raised."""

    def losses(self) -> list[str]:
        """After :meth:`close`: one line per integration that lost events it was given (e.g. MQTT messages never
        delivered), each starting with its setting; the daemon makes each a closing failure line (exit 1), as
        it does recordings lost. Empty when every event reached where it was sent."""


class _NoneRunning:
    taps: list = []

    def describe(self) -> list[str]:
        return []

    def close(self) -> None:
        pass

    def losses(self) -> list[str]:
        return []


def switched_on(cfg: DaemonConfig) -> list[str]:
    """The config keys of the integrations ``cfg`` switches on."""
    return [where for where, on in (("metrics", cfg.metrics.enabled), ("publish.mqtt", cfg.publish.mqtt.enabled),
                                    ("dashboard", cfg.dashboard.enabled)) if on]


def refuse_integrations(cfg: DaemonConfig) -> None:
    """The check of a daemon without integrations: a config that switches one on is an error, not ignored."""
    on = switched_on(cfg)
    if on:
        raise ConfigError(f"{on[0]}: switched on, but this daemon was made without integrations "
                          "(inspector.integrations.runtime.make_daemon adds them)")


# The cameras of one source type → {camera name: the one name of the source it reads} for those it could tell
# (a GenICam camera's device id for its serial, MAC or IP address); one call per type, as finding out may take a
# network discovery. Never raises: a camera it cannot tell is left out (its own error comes when it opens).
SourceNamer = Callable[[list[CameraSection]], Mapping[str, str]]


@dataclass(frozen=True)
class Extensions:
    """Plug-ins of a daemon: ``source_kinds`` (source type → factory), ``source_names`` (source type →
    :data:`SourceNamer`, used by ``refuse_shared_sources``), ``check(cfg)`` (raises ConfigError),
    ``start(daemon)`` → :class:`Running` (called by ``Daemon.setup`` once the socket is bound)."""

    source_kinds: Mapping[str, SourceFactory] = field(default_factory=dict)
    source_names: Mapping[str, SourceNamer] = field(default_factory=dict)
    check: Callable[[DaemonConfig], None] = refuse_integrations
    start: Callable[[Any], Running] = lambda daemon: _NoneRunning()


NO_EXTENSIONS = Extensions()
