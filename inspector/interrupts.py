"""SIGTERM handled like Ctrl-C, and the exit status of an interrupted command.

``kill PID``, ``docker stop``, systemd and CI runners send SIGTERM, not SIGINT. Long
commands (``inspector train``) catch :class:`KeyboardInterrupt` to save their state
and stop; :func:`sigterm_as_interrupt` makes SIGTERM take that same path. The shell
convention for "ended by signal N" is exit status 128 + N (bash manual, "Exit Status";
POSIX only requires > 128): 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM inside :func:`sigterm_as_interrupt`."""

    exit_code = 128 + signal.SIGTERM


class SignalRecord:
    """Which signal (if any) interrupted the block: ``signum`` is None, SIGINT or SIGTERM."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def exit_code(self) -> int:
        """128 + the signal number; 0 when no signal arrived."""
        return 0 if self.signum is None else 128 + self.signum

    @property
    def name(self) -> str:
        return "" if self.signum is None else signal.Signals(self.signum).name


def exit_code(exc: KeyboardInterrupt) -> int:
    """Exit status for an interrupt that reached the top level: 143 for SIGTERM, else 130."""
    return getattr(exc, "exit_code", 128 + signal.SIGINT)


@contextmanager
def sigterm_as_interrupt() -> Iterator[SignalRecord]:
    """Within the block, SIGINT and SIGTERM both raise KeyboardInterrupt (SIGTERM as :class:`Terminated`).

    Yields a :class:`SignalRecord` telling which one arrived, so the caller can exit
    with 130 or 143 even when the interrupt was caught and handled inside. Only the
    main thread may install handlers; elsewhere (tests in threads) it changes nothing.
    """
    record = SignalRecord()
    if threading.current_thread() is not threading.main_thread():
        yield record
        return

    def on_signal(signum, _frame):
        record.signum = signum
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield record
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
