"""systemd integration: the unit file, ``sd_notify`` (READY/WATCHDOG/STOPPING) and journald log lines.

``sd_notify`` is the documented datagram protocol (sd_notify(3)): one AF_UNIX
datagram of ``KEY=VALUE`` lines to ``$NOTIFY_SOCKET`` (a leading ``@`` means the
abstract namespace). It is a no-op outside systemd, so no library is needed.
The watchdog interval comes from ``$WATCHDOG_USEC`` (set by ``WatchdogSec=``);
we ping at half of it from the daemon's supervision loop, so a hung supervisor
is restarted by systemd. Under systemd (``$JOURNAL_STREAM`` set), log lines
carry a ``<N>`` syslog priority prefix and no timestamp (journald adds both).
"""

from __future__ import annotations

import logging
import os
import shlex
import socket
import sys
import time
from pathlib import Path

# logging level → syslog priority (sd-daemon(3) prefixes: <3> err, <4> warning, <6> info, <7> debug)
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


log = logging.getLogger("inspector.systemd")
NOTIFY_TIMEOUT_S = 1.0  # the most one sd_notify datagram may wait for room in the receiver's queue


class Notifier:
    """Sends sd_notify messages when ``$NOTIFY_SOCKET`` is set; otherwise does nothing.

    What cannot work is told in one warning line, once (sd_notify(3) and sd_watchdog_enabled(3) return an error
    and libsystemd's callers log it): a ``$NOTIFY_SOCKET`` that cannot be sent to (missing, no datagram socket,
    no permission) means systemd never hears READY=1 or the watchdog pings and, with ``Type=notify`` and
    ``WatchdogSec=``, stops the daemon after ``TimeoutStartSec=`` or the watchdog interval with no word why
    from it; a ``$WATCHDOG_USEC`` that is not a positive whole number of microseconds sends no pings."""

    def __init__(self, env: dict | None = None) -> None:
        env = os.environ if env is None else env
        self.address = env.get("NOTIFY_SOCKET") or None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 / 2 if usec.isdigit() and int(usec) > 0 and mine else None
        if usec and mine and self.watchdog_s is None:
            log.warning("WATCHDOG_USEC=%r is not a positive whole number of microseconds (sd_watchdog_enabled(3)); "
                        "no watchdog pings are sent", usec[:40])
        self._next_ping = 0.0
        self._failure_told: str | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, message: str) -> bool:
        if not self.address:
            return False
        addr = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.settimeout(NOTIFY_TIMEOUT_S)  # a receiver that does not read must not hold the supervision loop
                s.connect(addr)
                s.sendall(message.encode())
            return True
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
            self._tell_failure(message, exc)
            return False

    def _tell_failure(self, message: str, exc: Exception) -> None:
        why = " ".join(str(getattr(exc, "strerror", None) or exc or type(exc).__name__).split())
        if why == self._failure_told:  # every later message fails alike: told once
            return
        self._failure_told = why
        log.warning("NOTIFY_SOCKET=%r: cannot send %s to systemd (%s); with Type=notify it will not see the daemon "
                    "ready nor alive and stops it", self.address[:108], message.split("\n")[0], why)

    def ready(self, status: str = "") -> None:
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def tick(self) -> None:
        """Call often (the daemon's supervision loop): pings the watchdog at half its interval."""
        if self.watchdog_s is None:
            return
        now = time.monotonic()
        if now >= self._next_ping:
            self.notify("WATCHDOG=1")
            self._next_ping = now + self.watchdog_s


class JournaldFormatter(logging.Formatter):
    """``<priority>logger: message`` (journald stores the priority and adds the timestamp)."""

    def format(self, record: logging.LogRecord) -> str:
        prio = _PRIORITY.get(record.levelno, 6)
        text = super().format(record)
        return "\n".join(f"<{prio}>{line}" for line in text.splitlines() or [""])


def use_journald_format_if_journal() -> None:
    """Switch the root handlers to :class:`JournaldFormatter` when stderr goes to the journal."""
    if os.environ.get("JOURNAL_STREAM"):
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JournaldFormatter("%(name)s: %(message)s"))


UNIT_DESCRIPTION = "inspector visual inspection daemon"  # also how 'service install' knows a unit is its own


def unit_file(config: Path, name: str, user: str | None = None, watchdog_s: int = 30,
              executable: str | None = None, shutdown_timeout_s: float = 10.0) -> str:
    """The text of a systemd service unit running ``inspector run --config <config>``.

    ``Type=notify`` (READY=1 once inspecting), ``WatchdogSec`` (0 disables), ``Restart=on-failure``
    (exit 1 = a worker failed; exit 2 = bad config, which ``RestartPreventExitStatus`` does not retry).
    """
    exe = executable or _inspector_executable()
    config = config.resolve()
    lines = [
        "[Unit]",
        f"Description={UNIT_DESCRIPTION} ({config.name})",
        "Documentation=file://" + str(config),
        "After=network-online.target",
        "Wants=network-online.target",
        "StartLimitIntervalSec=300",
        "StartLimitBurst=10",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={shlex.join([exe, 'run', '--config', str(config)])}",
        f"WorkingDirectory={config.parent}",
        "Restart=on-failure",
        "RestartSec=2",
        "RestartPreventExitStatus=2",
        f"WatchdogSec={watchdog_s}" if watchdog_s > 0 else "# WatchdogSec=30  (disabled)",
        "KillSignal=SIGTERM",
        f"TimeoutStopSec={int(shutdown_timeout_s * 6 + 10)}",  # ordered shutdown joins each stage in turn
        "Environment=PYTHONUNBUFFERED=1",
        # $STATE_DIRECTORY (/var/lib/<name>, the service user's): the MQTT bridge's default state path; under a
        # user without a writable home, ~/.local/state was refused by run's check of its outputs (exit 2)
        f"StateDirectory={name}",
        f"SyslogIdentifier={name}",
    ]
    if user:
        lines.append(f"User={user}")
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def _inspector_executable() -> str:
    """The ``inspector`` script of this environment (a venv's bin/), else ``python -m``-free fallback."""
    candidate = Path(sys.executable).with_name("inspector")
    return str(candidate) if candidate.exists() else str(Path(sys.argv[0]).resolve())
