"""Stop requests by signal (inspector.lifecycle): never a deadlock, never a stale stop."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from inspector import lifecycle

_HOLDING_THE_LOCK = """
import os, signal
from inspector import lifecycle
lifecycle.install()
with lifecycle.STOP._cond:  # where the daemon's main thread spends its time: inside STOP.wait(0.1)
    os.kill(os.getpid(), signal.SIGTERM)
print(lifecycle.STOP.wait(10), lifecycle.reason())
"""


def test_a_signal_while_the_main_thread_holds_the_stop_events_lock_stops_it():
    """The CI fault: SIGTERM handled while the main thread held STOP's lock made the handler's STOP.set() wait
    on its own thread forever (and every later SIGTERM too). Run in a child so that a regression is killed,
    not a hung test run."""
    proc = subprocess.run([sys.executable, "-c", _HOLDING_THE_LOCK], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "SIGTERM"]


def test_a_handled_signal_is_requested_at_once_and_restore_puts_the_default_back():
    lifecycle.install()
    try:
        assert not lifecycle.requested()
        signal.raise_signal(signal.SIGINT)
        assert lifecycle.requested() and lifecycle.STOP.is_set()  # before the relay thread has run
        assert lifecycle.reason() == "SIGINT"
    finally:
        lifecycle.restore()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_new_install_starts_afresh_even_with_a_relay_byte_pending():
    lifecycle.install()
    signal.raise_signal(signal.SIGTERM)
    lifecycle.restore()
    lifecycle.install()  # the next command in the same process
    try:
        time.sleep(0.2)  # the relay has read the old byte by now
        assert not lifecycle.requested() and lifecycle.reason() == "stop requested"
    finally:
        lifecycle.restore()
