"""The worker thread base class and a throttled logger.

A worker is one thread running one loop with one job. An exception that
escapes the loop is a worker failure: it is recorded, logged, and sets the
daemon's stop event, so the daemon shuts down in order and exits non-zero.
Per-frame failures are caught inside the loops and only counted.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field

from inspector.pipeline.cputime import ThreadCpu
from inspector.textline import one_line

log = logging.getLogger("inspector.pipeline")


@dataclass(frozen=True)
class WorkerContext:
    """What a daemon's workers share besides the stop event and counters, given at construction.

    ``broken``: one event for all the daemon's workers, set when any of them failed (a worker waiting on a
    queue gives up at once instead of waiting for a consumer that is gone). ``cpu``: the daemon's per-role
    CPU accounting (cputime.py), None to keep none. A worker made without a context has its own of each.
    """

    broken: threading.Event = field(default_factory=threading.Event)
    cpu: ThreadCpu | None = None


class Worker(threading.Thread):
    """A daemon thread whose :meth:`loop` runs until it returns; escapes are failures."""

    def __init__(self, name: str, stop: threading.Event, context: WorkerContext | None = None) -> None:
        super().__init__(name=name, daemon=True)
        context = context or WorkerContext()
        self.stop_event = stop
        self.failure: BaseException | None = None
        self.finished = threading.Event()
        self.broken = context.broken
        self.cpu = context.cpu
        self.role = name.split("-", 1)[0]  # "capture-cam0" → "capture"

    def loop(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        if self.cpu is not None:
            self.cpu.register(self.role)
        try:
            self.loop()
        except BaseException as exc:  # noqa: BLE001 - any escape is a worker failure
            self.failure = exc
            self.broken.set()
            log.error("worker %s failed: %s\n%s", self.name, one_line(exc), traceback.format_exc().rstrip(),
                      extra={"lines": True})  # the traceback, on the lines after the one of the failure
            self.stop_event.set()
        finally:
            if self.cpu is not None:
                self.cpu.finish()
            self.finished.set()


    def put_downstream(self, q: queue.Queue, item, grace_s: float = 5.0) -> bool:
        """Blocking put, except that it gives up at once if a worker failed (its consumer may be the
        dead one) or ``grace_s`` after the stop event was set. False when the item was not delivered."""
        stopped_at = None
        while True:
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                if self.broken.is_set():
                    return False
                if self.stop_event.is_set():
                    stopped_at = stopped_at or time.monotonic()
                    if time.monotonic() - stopped_at > grace_s:
                        return False


class Throttled:
    """Log the first ``burst`` messages per key, then one in ``every`` (with the running count)."""

    def __init__(self, logger: logging.Logger, burst: int = 5, every: int = 100) -> None:
        self.logger, self.burst, self.every = logger, burst, every
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, key: str, msg: str, *args) -> None:
        with self._lock:
            n = self._counts[key] = self._counts.get(key, 0) + 1
        if n <= self.burst or n % self.every == 0:
            suffix = f" ({n} so far)" if n > 1 else ""
            self.logger.warning(msg + suffix, *args)


def sleep_until(stop: threading.Event, deadline: float) -> bool:
    """Sleep until ``time.monotonic()`` reaches ``deadline``; False if ``stop`` was set first."""
    remaining = deadline - time.monotonic()
    if remaining > 0:
        return not stop.wait(remaining)
    return not stop.is_set()
