"""SIGTERM handled like Ctrl-C, and the exit status of an interrupted command.

``kill PID``, ``docker stop``, systemd and CI runners send SIGTERM, not SIGINT. Long
commands (``inspector train``) catch :class:`KeyboardInterrupt` to save their state
and stop; :func:`sigterm_as_interrupt` makes SIGTERM take that same path. The shell
convention for "ended by signal N" is exit status 128 + N (bash manual, "Exit Status";
POSIX only requires > 128): 130 for SIGINT, 143 for SIGTERM.

A SIGINT ignored when the process started stays ignored (:func:`stop_signals`): a shell without job control
starts a background command (``inspector export … &`` in a script) with SIGINT and SIGQUIT ignored (POSIX.1-2017,
XCU 2.11 "Signals and Error Handling"), so that a Ctrl-C meant for the script's foreground command does not stop
it, and a program is to keep that (GNU C Library manual, "Basic Signal Handling": "a program should not catch a
signal that was ignored when it started"; Python itself installs no KeyboardInterrupt handler then). Such a
command is stopped by SIGTERM (``kill PID``), which every command takes as an orderly stop: what it was writing
is taken back (temporaries, staging folders), nothing half-written is left, exit 143.
"""

from __future__ import annotations

import os
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


def stop_signals() -> tuple[int, ...]:
    """The signals a command takes as a stop: SIGINT and SIGTERM, less SIGINT while it is ignored (SIG_IGN: a
    background command of a non-interactive shell, see the module's docstring); SIGTERM always."""
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    return (signal.SIGTERM,) if ignored else (signal.SIGINT, signal.SIGTERM)


def exit_code(exc: KeyboardInterrupt) -> int:
    """Exit status for an interrupt that reached the top level: 143 for SIGTERM, else 130."""
    return getattr(exc, "exit_code", 128 + signal.SIGINT)


@contextmanager
def sigterm_as_interrupt() -> Iterator[SignalRecord]:
    """Within the block, SIGINT and SIGTERM both raise KeyboardInterrupt (SIGTERM as :class:`Terminated`); a
    SIGINT ignored stays ignored (:func:`stop_signals`).

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

    previous = {sig: signal.signal(sig, on_signal) for sig in stop_signals()}
    try:
        yield record
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class CommandStops:
    """SIGINT and SIGTERM for a command that stops itself in order (``inspector subscribe``: between events,
    then its summary; Ctrl-C exits 0, SIGTERM 143), from :func:`inspector.cli.main`'s first instruction until
    the process ends, so that a stop outside the command's own handling cannot change its status or print a
    traceback.

    * Start-up (before the command takes the signals over, :func:`taken_over`: importing, parsing): a stop
      raises KeyboardInterrupt (SIGTERM: :class:`Terminated`), which ``main`` tells as 'interrupted', 130 (143).
      SIGTERM there ended the process on the spot, without a word.
    * After the command handed them back (its handlers restored: its loop, state and summary done): a stop is
      only recorded; :meth:`status` is then 143 after a SIGTERM, the command's own otherwise (a late Ctrl-C
      made it 130 and printed 'interrupted' after the summary).
    * ``process`` (``main`` runs the whole process): after :meth:`__exit__` (interpreter teardown: thread
      joins, atexit) both are ignored (SIG_IGN): the status is decided and there is nothing left to stop. A
      Python handler would not do: a Ctrl-C raised a KeyboardInterrupt traceback from an atexit hook, and
      Python's finalization puts SIG_DFL back for its own handlers (not for SIG_IGN), after which a stop
      killed the process (-2, -15) after its summary.

    Main thread only; elsewhere (tests running ``main`` in a thread) it changes nothing.
    """

    def __init__(self, process: bool = False) -> None:
        self.process = process
        self.taken = False
        self.late: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> "CommandStops":
        global _active
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._on_signal) for sig in stop_signals()}
            _active = self
        return self

    def _on_signal(self, signum, _frame) -> None:
        if not self.taken:
            raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        if self.late != signal.SIGTERM:
            self.late = signum

    def status(self, code: int) -> int:
        """The exit status: 143 after a SIGTERM received once the command handed the signals back, else ``code``."""
        return 128 + signal.SIGTERM if self.late == signal.SIGTERM else code

    def __exit__(self, *exc) -> None:
        global _active
        if _active is self:
            _active = None
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_IGN if self.process else handler)


_active: CommandStops | None = None


def taken_over() -> None:
    """Called by a command as it installs its own stop handlers: from then on the :class:`CommandStops` of
    ``main`` (if any) only records a stop once its handler is back."""
    if _active is not None:
        _active.taken = True


@contextmanager
def held() -> Iterator[None]:
    """Within the block SIGINT and SIGTERM are held, and delivered to the handler they had once it ends: files
    written together (an epoch's history row, best.pt, resume.pt) are all written or none. Main thread only;
    elsewhere it changes nothing. A handler that is not callable: SIG_IGN drops the signal, SIG_DFL re-sends it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: arrived.append(signum)) for sig in stop_signals()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in arrived[:1]:  # the first stop decides, as it would have without holding
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), signum)
