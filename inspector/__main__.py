"""``python -m inspector`` and the ``inspector`` console script.

SIGINT and SIGTERM are taken before :mod:`inspector.cli` and what it imports are loaded (tens of milliseconds): a
Ctrl-C there was a KeyboardInterrupt traceback out of an import, and a SIGTERM killed the process without a word.
Now either is 'interrupted' and exit 130 / 143, as a stop while a command starts (inspector.interrupts). Only what
Python does before running this module (its own start-up, site and .pth files) is not covered. Nothing but
``signal`` and ``sys`` is imported before the handlers are in place (even ``typing`` takes milliseconds)."""

import signal
import sys


class _Stopped(KeyboardInterrupt):
    """A stop while the CLI is imported; ``exit_code`` as :class:`inspector.interrupts.Terminated`'s."""

    def __init__(self, signum: int) -> None:
        super().__init__()
        self.exit_code = 128 + signum


def _stop(signum, _frame) -> None:
    raise _Stopped(signum)


def run() -> int:
    """Import the CLI with the stops taken, then hand them back (``main`` takes them as it does when a test
    imports it) and run it; a stop that escapes is one line, not a traceback."""
    # a SIGINT ignored from the start (a background command of a script) stays ignored (inspector.interrupts)
    taken = [signal.SIGTERM] + [signal.SIGINT] * (signal.getsignal(signal.SIGINT) != signal.SIG_IGN)
    early = {sig: signal.signal(sig, _stop) for sig in taken}
    try:
        from inspector.cli import main

        for sig, handler in early.items():
            signal.signal(sig, handler)
        return main()
    except KeyboardInterrupt as exc:
        print("interrupted", file=sys.stderr)
        return getattr(exc, "exit_code", 128 + signal.SIGINT)  # inspector.interrupts.exit_code


if __name__ == "__main__":
    raise SystemExit(run())
