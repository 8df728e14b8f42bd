"""Inference: the one thread that owns the backend.

The backend is created *inside* this thread (CUDA contexts and TensorRT
execution contexts are per thread), then its input buffers (``make_pool(backend)``:
their batch size depends on the backend's maximum), warmed up at every batch size
the batcher can send (:func:`warmup_sizes`), and announced through :attr:`ready`;
a load or warm-up error is kept in :attr:`startup_error` for the daemon to report
in one line. Warming up is a product gain, not a benchmark device: ONNX Runtime
allocates its arena and plans memory per input shape on the first two runs at
that shape (each ~1.5x a steady run, 256 px, batch 8, measured), and TensorRT
sets up each shape (and CUDA graph) on its first run; without it the first
frames of a shift pay for that.
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
from inspector.errors import BackendError
from inspector.pipeline.batcher import END, Batch, BufferPool
from inspector.pipeline.cputime import native_thread_ids
from inspector.pipeline.pace import InferencePace
from inspector.pipeline.worker import Throttled, Worker, WorkerContext
from inspector.pipeline.telemetry import Counters

log = logging.getLogger("inspector.infer")


_ALL_SIZES_UP_TO = 16  # above this maximum batch, warm powers of two and the maximum only


def usable_max_batch(configured: int, model_max: int | None) -> int:
    """The largest batch the daemon sends: ``batching.max_batch``, capped by the model's static maximum."""
    return configured if model_max is None else min(configured, model_max)


def buffered_batch(max_batch: int, cameras: int, queue_size: int) -> int:
    """The largest batch the cameras' buffers can fill at once: ``max_batch``, capped by ``cameras`` ×
    ``queue_size`` (each camera's channel holds at most ``batching.queue_size`` frames). A batch only grows past
    it by frames that arrive within ``max_wait_ms``; warming sizes beyond it cost start-up for batches that
    rarely or never come (max_batch 1024 on one camera: 11 sizes, 50 s and 1.9 GB of ONNX Runtime arena at
    64 px, for batches of at most 8), while a rare larger batch only pays its first-run cost once."""
    return max(1, min(max_batch, cameras * queue_size))


def warmup_sizes(max_batch: int) -> list[int]:
    """Batch sizes to warm up: every size 1..max_batch (partial batches take any size), or beyond
    16 the powers of two below it and max_batch itself, so start-up stays bounded."""
    if max_batch <= _ALL_SIZES_UP_TO:
        return list(range(1, max_batch + 1))
    return sorted({1 << k for k in range(max_batch.bit_length()) if 1 << k < max_batch} | {max_batch})


class InferenceWorker(Worker):
    def __init__(self, backend_factory: Callable[[], Backend], make_pool: Callable[[Backend], BufferPool],
                 inbox: queue.Queue, out: queue.Queue, stop: threading.Event, counters: Counters,
                 context: WorkerContext | None = None, max_batch: int = 1, warmup_runs: int = 0) -> None:
        super().__init__("inference", stop, context)
        self.backend_factory, self.make_pool, self.inbox, self.out = backend_factory, make_pool, inbox, out
        self.counters = counters
        self.max_batch, self.warmup_runs = max_batch, warmup_runs
        self.backend: Backend | None = None
        self.pool: BufferPool | None = None  # made from the backend once it has loaded (see ready)
        self.ready = threading.Event()
        self.startup_error: BaseException | None = None
        # what warming up did: sizes, runs per size, wall and this thread's CPU seconds (the pool's is in cpu_s)
        self.warmup: dict = {}
        self.pace = InferencePace()  # when the running batch should end: the batcher fills live batches by it
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
        try:
            self._warm_up()
        except BaseException as exc:  # a model that cannot run a batch size fails at start, in one line
            self.startup_error = exc
            self.backend.close()
            self.ready.set()
            return
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

    def _warm_up(self) -> None:
        """``warmup_runs`` runs of a zero batch at each of :func:`warmup_sizes`; raises BackendError."""
        spec = self.backend.input_spec
        sizes = warmup_sizes(usable_max_batch(self.max_batch, spec.max_batch)) if self.warmup_runs else []
        if not sizes:
            return
        zeros = np.zeros((sizes[-1], spec.height, spec.width, spec.channels), np.dtype(spec.dtype))
        wall, cpu = time.perf_counter(), time.thread_time()
        for n in sizes:
            try:
                for _ in range(self.warmup_runs):
                    self.backend.infer(zeros[:n])
            except Exception as exc:  # noqa: BLE001 - reported as one line by the daemon
                raise BackendError(f"warm-up run at batch {n} failed: {exc}") from None
        self.warmup = {"sizes": sizes, "runs": self.warmup_runs, "wall_s": round(time.perf_counter() - wall, 3),
                       "thread_cpu_s": round(time.thread_time() - cpu, 3)}
        log.info("backend warmed up: batch sizes %s, %d run(s) each, %.2f s", sizes, self.warmup_runs,
                 self.warmup["wall_s"])

    def _infer(self, batch: Batch) -> None:
        try:
            if not batch.frames:
                return
            self.pace.started()
            try:
                result = self.backend.infer(batch.array)
            except Exception as exc:  # noqa: BLE001 - one bad batch never stops the daemon
                self.counters.add("inference_errors")
                self.counters.add("inference_error_frames", len(batch.frames))
                self._throttle.warning("infer", "inference failed for a batch of %d: %s", len(batch.frames), exc)
                for frame in batch.frames:
                    frame.decision, frame.error = "error", f"inference failed: {exc}"
                return
            finally:
                self.pace.finished()
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
