"""Inference: the one thread that owns the backend.

The backend is created *inside* this thread (CUDA contexts and TensorRT
execution contexts are per thread), then its input buffers (``make_pool(backend)``:
their batch size depends on the backend's maximum), and both are announced through
:attr:`ready`; a load error is kept in :attr:`startup_error` for the daemon to
report in one line.
Each batch is scored, its maps are copied once (the backend's output buffers
are reused) and each frame gets its score and a view of its own map; the
buffer goes back to the pool.
An exception in one batch marks that batch's frames as ``error`` and is
counted; the next batch runs as usual.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable

import numpy as np

from inspector.backends.base import Backend
from inspector.pipeline.batcher import END, Batch, BufferPool
from inspector.pipeline.cputime import native_thread_ids
from inspector.pipeline.worker import Throttled, Worker, WorkerContext
from inspector.pipeline.telemetry import Counters

log = logging.getLogger("inspector.infer")


class InferenceWorker(Worker):
    def __init__(self, backend_factory: Callable[[], Backend], make_pool: Callable[[Backend], BufferPool],
                 inbox: queue.Queue, out: queue.Queue, stop: threading.Event, counters: Counters,
                 context: WorkerContext | None = None) -> None:
        super().__init__("inference", stop, context)
        self.backend_factory, self.make_pool, self.inbox, self.out = backend_factory, make_pool, inbox, out
        self.counters = counters
        self.backend: Backend | None = None
        self.pool: BufferPool | None = None  # made from the backend once it has loaded (see ready)
        self.ready = threading.Event()
        self.startup_error: BaseException | None = None
        self._throttle = Throttled(log)

    def loop(self) -> None:
        before = native_thread_ids()
        try:
            self.backend = self.backend_factory()
            self.pool = self.make_pool(self.backend)
        except BaseException as exc:  # reported by the daemon as a one-line error
            self.startup_error = exc
            self.ready.set()
            if self.backend is not None:
                self.backend.close()
            return
        if self.cpu is not None:  # threads the backend started while loading: its intra-op pool
            for tid in native_thread_ids() - before - {threading.get_native_id()}:
                self.cpu.register("inference_pool", tid)
        self.ready.set()
        try:
            while True:
                try:
                    batch = self.inbox.get(timeout=0.1)
                except queue.Empty:
                    if self.broken.is_set():
                        return
                    continue
                if batch is END:
                    return
                self._infer(batch)
                if not self.put_downstream(self.out, batch.items):
                    self.counters.add("dropped_shutdown", len(batch.items))
        finally:
            self.put_downstream(self.out, END)
            if self.cpu is not None:
                self.cpu.snapshot()  # the pool's last readings, before closing the backend ends its threads
            self.backend.close()

    def _infer(self, batch: Batch) -> None:
        try:
            if not batch.frames:
                return
            try:
                result = self.backend.infer(batch.array)
            except Exception as exc:  # noqa: BLE001 - one bad batch never stops the daemon
                self.counters.add("inference_errors")
                self.counters.add("inference_error_frames", len(batch.frames))
                self._throttle.warning("infer", "inference failed for a batch of %d: %s", len(batch.frames), exc)
                for frame in batch.frames:
                    frame.decision, frame.error = "error", f"inference failed: {exc}"
                return
            now = time.monotonic_ns()
            timings = dict(result.timings_ms)
            # One copy per batch (the backend reuses its output buffers); each frame keeps a view of it.
            maps = result.maps[:, 0].astype(np.float32, copy=True)
            scores = result.scores.tolist()
            for i, frame in enumerate(batch.frames):
                frame.score = scores[i]
                frame.amap = maps[i]
                frame.backend_ms = timings
                frame.stamp("inferred", now)
            self.counters.add("inferred_frames", len(batch.frames))
        finally:
            self.pool.release(batch.index)
