"""When the backend will be free: the batcher's clock for filling a batch late enough to hold fresh live frames.

With two input buffers the batcher fills the next batch while the backend runs the current one. Filled at once,
a live camera's frames then waited the whole run in the buffer: with a model taking 0.7 s per batch, every
live frame was 0.7 s old when the model started on it and 1.4 s old at its event (measured on MJPEG over
HTTP at 25 fps, batch 1), while newer frames replaced each other in the hub. :class:`InferencePace` tells when
the running batch should end (its start plus the median of the last runs); the batcher, with a live camera
open, starts filling only as long before that as a fill takes (:meth:`BatchWorker._await_inference
<inspector.pipeline.batcher.BatchWorker>`), so the batch is ready as the backend frees and its live frames are
the newest. Offline-only pipelines fill at once, as before. Standard library only.
"""

from __future__ import annotations

import collections
import statistics
import threading
import time

# runs whose median is the expected run time: one outlier (a page fault, a busy core) moves nothing, and a step
# (a larger batch, a heavier model after a swap) is followed from the second run (a mean with weight 0.3 took
# ten runs to follow 1 ms → 0.5 s: the fills started early and the frames aged)
_RUNS = 3


class InferencePace:
    """The inference thread's timing, read by the batcher thread. Times are ``time.monotonic()`` seconds."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._started: float | None = None  # when the batch being inferred started (None: the backend is idle)
        self._runs: collections.deque[float] = collections.deque(maxlen=_RUNS)  # the last runs' times, s

    def started(self) -> None:
        """The inference thread starts running a batch."""
        with self._cond:
            self._started = time.monotonic()

    def finished(self) -> None:
        """The batch started last has been run (or failed): its time joins the recent runs; waiters wake."""
        with self._cond:
            if self._started is not None:
                self._runs.append(time.monotonic() - self._started)
            self._started = None
            self._cond.notify_all()

    def expected_end(self) -> float | None:
        """When the running batch should end (monotonic s): its start plus the median of the last runs; None
        when the backend is idle or no run is known."""
        with self._cond:
            if self._started is None or not self._runs:
                return None
            return self._started + statistics.median(self._runs)

    def wait_until_free_or(self, deadline: float, stop: threading.Event) -> None:
        """Block until the running batch ends, ``deadline`` (monotonic s) passes or ``stop`` is set."""
        with self._cond:
            while self._started is not None and not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(min(left, 0.05))  # 0.05 s: a stop is seen without a notify
