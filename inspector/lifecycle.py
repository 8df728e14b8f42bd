"""Stop requests for long-running commands, handled from the first instruction.

A SIGINT/SIGTERM that arrives while ``inspector run`` is still importing, reading
its config or loading the model must lead to the same orderly stop as one that
arrives later (a log line, the final stats, exit 0), not a silent death by the
default SIGTERM action or a KeyboardInterrupt in the middle of an import. So
``inspector.cli.main`` installs :func:`install` before anything else for such
commands, and the daemon is handed :data:`STOP` as its stop event: handlers
only set that event (async-signal-safe, as the daemon's docstring requires).
"""

from __future__ import annotations

import signal
import threading

STOP = threading.Event()
received: list[int] = []  # signal numbers, in arrival order
_installed: dict[int, object] = {}


def _on_signal(signum: int, _frame) -> None:
    received.append(signum)
    STOP.set()


def install(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
    """Route ``signals`` to :data:`STOP` (idempotent; main thread only). The first call after
    :func:`restore` starts afresh (STOP cleared), so a process can run commands one after another."""
    if not _installed:
        STOP.clear()
        received.clear()
    for sig in signals:
        if sig not in _installed:
            _installed[sig] = signal.signal(sig, _on_signal)


def restore() -> None:
    """Put the previous handlers back."""
    while _installed:
        sig, handler = _installed.popitem()
        signal.signal(sig, handler)


def reason() -> str:
    """The first signal received, by name (e.g. ``SIGTERM``), or ``"stop requested"``."""
    return signal.Signals(received[0]).name if received else "stop requested"
