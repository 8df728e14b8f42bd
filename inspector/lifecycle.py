"""Stop requests for long-running commands, handled from the first instruction.

A SIGINT/SIGTERM that arrives while ``inspector run`` is still importing, reading
its config or loading the model must lead to the same orderly stop as one that
arrives later (a log line, the final stats, exit 0), not a silent death by the
default SIGTERM action or a KeyboardInterrupt in the middle of an import. So
``inspector.cli.main`` installs :func:`install` before anything else for such
commands, and the daemon is handed :data:`STOP` as its stop event.

The handler itself takes no lock. CPython runs a Python signal handler in the main
thread between two bytecodes (https://docs.python.org/3/library/signal.html, "Execution
of Python signal handlers"), possibly while that thread is inside ``STOP.wait()`` and
holds the event's internal, non-reentrant lock: a ``STOP.set()`` there waits on its own
thread forever, and every later SIGTERM re-enters the same wait (an unkillable daemon,
no final stats). So the handler records the signal and writes one byte to a pipe
(``os.write`` takes no lock); a relay thread reads it and sets :data:`STOP`.
"""

from __future__ import annotations

import os
import signal
import threading

from inspector.interrupts import stop_signals

STOP = threading.Event()
# Set by the second stop signal: what the first one began may wait long (a publisher drain of up to 600 s for a
# subscriber that reads nothing), and an operator's second Ctrl-C / ``kill`` means "now" (Docker, systemd and
# most daemons read it so); waits that may be cut without losing evidence follow it
HURRY = threading.Event()
received: list[int] = []  # signal numbers, in arrival order (list.append takes no lock)
_installed: dict[int, object] = {}
_wakeup_fd: int | None = None  # write end of the relay's pipe


def _on_signal(signum: int, _frame) -> None:
    received.append(signum)
    try:
        os.write(_wakeup_fd, b"\0")
    except OSError:  # a full pipe (thousands of signals): a stop is pending already
        pass


def _relay(read_fd: int) -> None:
    """Set STOP for each byte the handler writes, and HURRY once a second signal arrived (a thread: it may wait
    for their locks)."""
    while os.read(read_fd, 64):
        if received:  # empty: a byte left from before the last install() cleared the record
            STOP.set()
        if len(received) > 1:
            HURRY.set()


def _start_relay() -> None:
    global _wakeup_fd
    if _wakeup_fd is None:
        read_fd, _wakeup_fd = os.pipe()
        os.set_blocking(_wakeup_fd, False)
        threading.Thread(target=_relay, args=(read_fd,), name="signal-relay", daemon=True).start()


def install(signals: tuple[int, ...] | None = None) -> None:
    """Route ``signals`` to :data:`STOP` (idempotent; main thread only); None: SIGINT and SIGTERM, less a SIGINT
    ignored since the process started (:func:`inspector.interrupts.stop_signals`: a daemon started with ``&`` from
    a script is stopped by SIGTERM, not by a Ctrl-C meant for the script). The first call after
    :func:`restore` starts afresh (STOP cleared), so a process can run commands one after another."""
    signals = stop_signals() if signals is None else signals
    if not _installed:
        STOP.clear()
        HURRY.clear()
        received.clear()
    _start_relay()
    for sig in signals:
        if sig not in _installed:
            _installed[sig] = signal.signal(sig, _on_signal)


def restore() -> None:
    """Put the previous handlers back."""
    while _installed:
        sig, handler = _installed.popitem()
        signal.signal(sig, handler)


def requested() -> bool:
    """Whether a stop was asked for. From ordinary code (never a handler): a signal already handled is
    reflected at once, before the relay thread has run, and :data:`STOP` is set on return if so."""
    if received:
        STOP.set()
    return STOP.is_set()


def reason() -> str:
    """The first signal received, by name (e.g. ``SIGTERM``), or ``"stop requested"``."""
    return signal.Signals(received[0]).name if received else "stop requested"
