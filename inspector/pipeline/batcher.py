"""Batcher: dynamic batching across cameras into preallocated batch buffers.

The batcher takes a free buffer from a small pool, pulls frames from the
:class:`~inspector.pipeline.capture.FrameHub` round-robin, preprocesses each
straight into the next slot of the buffer, and hands the batch to the
inference thread when it holds ``max_batch`` frames or ``max_wait_ms`` passed
since its first frame. With two or more buffers, the next batch is prepared
while the current one is inferred; with a live camera open, only as long before
the backend frees as a fill takes (:mod:`inspector.pipeline.pace`), so live
frames do not wait a whole inference in the buffer. Frames that cannot be preprocessed are
counted and skipped (they are reported as ``error`` results downstream).
It ends when every camera has finished and the hub is empty, then sends
:data:`END` downstream.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from inspector.backends.base import InputSpec
from inspector.pipeline.capture import FrameHub
from inspector.pipeline.frame import Frame
from inspector.pipeline.pace import InferencePace
from inspector.pipeline.preprocess import FrameRejected, Preprocessor
from inspector.pipeline.worker import Throttled, Worker, WorkerContext
from inspector.pipeline.telemetry import Counters

log = logging.getLogger("inspector.batcher")
END = None  # sentinel passed down the queues when a stage is done
_POLL_S = 0.05
# Waiting for a free batch buffer (both are with the inference thread, ~0.1 s per batch at 256 px on 2
# cores): the timeout only lets a failed daemon (``broken``) be noticed, so it is long; at 50 ms the
# batcher woke ~2 times per batch for nothing (issue 17).
_BUFFER_WAIT_S = 0.25
# a live batch's fill starts this much earlier than the mean fill time before the backend frees (with a floor of
# _FILL_MARGIN_S): a fill that runs late leaves the backend idle, one that ends early only ages its frames a little
_FILL_MARGIN = 1.25
_FILL_MARGIN_S = 0.002


@dataclass(eq=False)
class Batch:
    """Frames preprocessed into ``buffers[index][:n]``; ``items`` is every frame taken, in order
    (rejected ones included: they go on without inference, marked ``error``)."""

    index: int
    array: np.ndarray  # view of the first n slots
    frames: list[Frame]
    items: list[Frame] = field(default_factory=list)


class BufferPool:
    """``n`` preallocated (max_batch, H, W, 3) uint8 buffers, lent out by index."""

    def __init__(self, n: int, max_batch: int, spec: InputSpec) -> None:
        self.max_batch = max_batch
        self.buffers = [np.zeros((max_batch, spec.height, spec.width, spec.channels), np.uint8) for _ in range(n)]
        self._free: queue.Queue[int] = queue.Queue()
        for i in range(n):
            self._free.put(i)

    def acquire(self, timeout: float) -> int | None:
        try:
            return self._free.get(timeout=timeout)
        except queue.Empty:
            return None

    def release(self, index: int) -> None:
        self._free.put(index)


class BatchWorker(Worker):
    def __init__(self, hub: FrameHub, pool: BufferPool, out: queue.Queue, preprocessor: Preprocessor,
                 max_batch: int, max_wait_ms: float, stop: threading.Event, counters: Counters,
                 context: WorkerContext | None = None, pace: InferencePace | None = None) -> None:
        super().__init__("batcher", stop, context)
        self.hub, self.pool, self.out, self.pre, self.pace = hub, pool, out, preprocessor, pace
        self._fill_s: float | None = None  # mean time a fill took (EMA, s): how early a live batch starts
        self.max_batch, self.max_wait_s = max_batch, max_wait_ms / 1e3
        self.counters = counters
        self._throttle = Throttled(log)
        self.preprocess_cpu_s = 0.0  # this thread's CPU time inside preprocessing (v1/stats cpu_s)

    def loop(self) -> None:
        try:
            while True:
                index = self.pool.acquire(_BUFFER_WAIT_S)
                if index is None:
                    if self.broken.is_set():
                        return
                    continue
                self._await_inference()
                batch = self._fill(index)
                if batch is None:
                    self.pool.release(index)
                    if self.hub.drained():
                        return
                    continue
                if not self.put_downstream(self.out, batch):
                    self.counters.add("dropped_shutdown", len(batch.items))
                    return
        finally:
            self.put_downstream(self.out, END)

    def _await_inference(self) -> None:
        """With a live camera open, wait to fill the next batch until the running one is expected to end within
        a fill's time (:class:`InferencePace`; ×1.25, ≥ 2 ms): filled at once, its live frames waited the whole
        inference in the buffer (0.7 s old at a 0.7 s model's start, 1.4 s at their events) while newer ones
        were dropped. No wait when the backend is idle, nothing is known yet, or no live camera is open:
        offline frames lose nothing by waiting, and gain nothing."""
        if self.pace is None or self._fill_s is None or not self.hub.has_live():
            return
        end = self.pace.expected_end()
        if end is not None:
            self.pace.wait_until_free_or(end - max(self._fill_s * _FILL_MARGIN, self._fill_s + _FILL_MARGIN_S),
                                         self.stop_event)

    def _fill(self, index: int) -> Batch | None:
        """Collect and preprocess up to max_batch frames; None if nothing arrived."""
        buf = self.pool.buffers[index]
        frames: list[Frame] = []
        items: list[Frame] = []
        taken: dict[str, int] = {}  # per camera, for the hub's fair share
        deadline = None
        while len(frames) < self.max_batch:
            if deadline is None:
                timeout = _POLL_S
            else:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
            got = self.hub.take(self.max_batch - len(frames), timeout, taken)
            if not got:
                if deadline is None:
                    if items:
                        break
                    return None
                if self.hub.drained():
                    break
                continue
            if deadline is None:
                first_at = time.monotonic()
                deadline = first_at + self.max_wait_s
            for frame in got:
                items.append(frame)
                if frame.decision != "error":  # else decided at capture: a part its source could not decode
                    self._preprocess(frame, buf[len(frames)], frames)
        if not items:
            return None
        self._time_fill(time.monotonic() - first_at)
        now = time.monotonic_ns()
        for frame in frames:
            frame.stamp("batched", now)
        self.counters.add("batches")
        self.counters.add("batched_frames", len(frames))
        return Batch(index, buf[: len(frames)], frames, items)

    def _time_fill(self, took_s: float) -> None:
        """Add a fill's time, from its first frame taken to its last preprocessed (waiting for the first frame
        is not counted: starting earlier would not make it come sooner), to the mean (EMA, weight 0.3)."""
        self._fill_s = took_s if self._fill_s is None else 0.7 * self._fill_s + 0.3 * took_s

    def _preprocess(self, frame: Frame, slot: np.ndarray, frames: list[Frame]) -> None:
        started = time.thread_time()
        try:
            converted = self.pre.into(frame.image, slot, frame.camera)
        except FrameRejected as exc:
            self.counters.add(f"{frame.camera}.rejected.{exc.reason}")
            self._throttle.warning(f"rej-{frame.camera}-{exc.reason}", "camera '%s' frame %d rejected: %s",
                                   frame.camera, frame.frame_id, exc)
            frame.decision, frame.error = "error", f"rejected: {exc}"
            return
        except Exception as exc:  # noqa: BLE001 - a per-frame failure never stops the pipeline
            self.counters.add(f"{frame.camera}.rejected.exception")
            self._throttle.warning(f"pre-{frame.camera}", "camera '%s' frame %d: preprocessing failed: %r",
                                   frame.camera, frame.frame_id, exc)
            frame.decision, frame.error = "error", f"preprocessing failed: {exc}"
            return
        finally:
            self.preprocess_cpu_s += time.thread_time() - started
        if converted:
            self.counters.add(f"{frame.camera}.converted.{converted}")
        frame.stamp("preprocessed")
        frames.append(frame)
