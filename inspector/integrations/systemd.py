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
import re
import socket
import sys
import time
from pathlib import Path
from urllib.parse import quote

from inspector.errors import ConfigError

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
    Paths and the user are written as systemd reads them back (:func:`exec_word`, :func:`_specifiers`): a
    config in ``/srv/line 1/50%/`` runs that file. Raises :class:`ConfigError` (field ``config``, ``user``
    or ``executable``) for what no unit line can hold (systemd.syntax(7)): a control character (a newline
    ended the line and began a directive of its own), a folder ending in a space (values are stripped), a
    user name systemd refuses.
    """
    exe = executable or _inspector_executable()
    config = config.resolve()
    for what, path in (("config", str(config)), ("executable", exe)):
        _check_writable(what, path)
    if user is not None and not _USER.fullmatch(user):
        raise ConfigError(f"user: {user!r} is not a user name systemd accepts (letters, digits, '_', '.', '-', "
                          f"not starting with a digit or '-'; or a numeric uid)", field="user")
    lines = [
        "[Unit]",
        f"Description={_specifiers(f'{UNIT_DESCRIPTION} ({config.name})')}",
        # a URL: one space-separated item, so its path is percent-encoded (and each % then doubled)
        "Documentation=" + _specifiers("file://" + quote(str(config))),
        "After=network-online.target",
        "Wants=network-online.target",
        "StartLimitIntervalSec=300",
        "StartLimitBurst=10",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        "ExecStart=" + " ".join([exec_word(exe, command=True), *map(exec_word, ("run", "--config", str(config)))]),
        f"WorkingDirectory={_specifiers(str(config.parent))}",
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


# systemd's user names (systemd.exec(7) User=, its valid_user_group_name: the portable POSIX set, a trailing '$'
# for Samba machine accounts) or a numeric uid
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,30}\$?|[0-9]{1,10}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_@+=:,./-]+")


def _specifiers(value: str) -> str:
    """``value`` with each ``%`` doubled: systemd expands ``%h``, ``%n`` … in every setting that names a path or a
    text (systemd.unit(7), "Specifiers"), so a folder named ``50%home`` became ``50`` + the service's home."""
    return value.replace("%", "%%")


def exec_word(word: str, command: bool = False) -> str:
    """One word of ``ExecStart=`` as systemd reads it back to ``word`` (systemd.service(5), "Command lines"):
    plain when it holds only safe characters, else in double quotes with ``\\`` and ``\"`` escaped (C escapes are
    read inside quotes); ``%`` doubled (:func:`_specifiers`); in an argument ``$`` doubled ("To pass a literal
    dollar sign, use $$": it substitutes ``$NAME``), not in the ``command`` itself, which is never substituted.
    ``shlex.join`` wrote the POSIX shell's quoting, which systemd reads otherwise: ``'/srv/50%h/c.yaml'`` named
    ``/srv/50/root/c.yaml`` (``systemd-analyze verify`` says so of the command)."""
    text = word if command else word.replace("$", "$$")
    if not _PLAIN_WORD.fullmatch(word):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return _specifiers(text)


def _check_writable(what: str, path: str) -> None:
    """Refuse a path no unit line can hold: a control character (systemd reads lines; a newline in a path began
    a directive of its own), a folder or file name ending in white space (systemd strips each value), a quote or
    backslash in the ``executable`` (systemd refuses such a command)."""
    if _CONTROL.search(path):
        raise ConfigError(f"{what}: {path!r} has a control character (a line break …), which a systemd unit "
                          f"cannot hold; rename it", field=what)
    if path != path.rstrip():
        raise ConfigError(f"{what}: {path!r} ends in white space, which systemd strips from a unit's values; "
                          f"rename it", field=what)
    if what == "executable" and any(c in path for c in "\"'\\"):  # systemd's string_is_safe for a command
        raise ConfigError(f"executable: {path!r} holds a quote or a backslash, which systemd refuses in the path "
                          f"of a command ('Executable name contains special characters'); install inspector "
                          f"in another folder", field=what)


def _inspector_executable() -> str:
    """The ``inspector`` script of this environment (a venv's bin/), else ``python -m``-free fallback."""
    candidate = Path(sys.executable).with_name("inspector")
    return str(candidate) if candidate.exists() else str(Path(sys.argv[0]).resolve())
