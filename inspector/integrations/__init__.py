"""Optional plant integrations: Prometheus metrics, MQTT bridge, live dashboard, GenICam cameras.

Each lives in its own module and needs its own pip extra (``inspector[metrics]``,
``[mqtt]``, ``[dashboard]``, ``[genicam]``); the daemon imports a module only
when its config section is switched on, so the core stays lean. Integrations
that watch the event stream implement :class:`EventTap`: the publisher thread
calls ``offer`` after each send, and a tap must never block it (keep a bounded
buffer and count what it drops).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Protocol

from inspector.errors import ConfigError


def require(module: str, extra: str, where: str, apt: str | None = None) -> ModuleType:
    """Import ``module`` or raise one ConfigError line naming the pip extra (and Debian packages) to install."""
    try:
        return importlib.import_module(module)
    except (ImportError, ValueError) as exc:  # gi.require_version raises ValueError for a missing typelib
        hint = f"pip install 'inspector[{extra}]'"
        if apt:
            hint = f"apt-get install {apt} and {hint}"
        raise ConfigError(f"{where}: needs {module} ({exc}); {hint}") from None


class EventTap(Protocol):
    """Something that watches published events (MQTT bridge, dashboard)."""

    def offer(self, event) -> None:
        """Called from the publisher thread after each event is sent; must return at once."""

    def close(self) -> None:
        """Stop and release everything (idempotent)."""
