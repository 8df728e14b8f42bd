"""Data parallelism for ONNX Runtime on CPU: one batch split across single-threaded sessions.

ONNX Runtime parallelises one run *inside* each operator (intra-op threads): every
operator ends on a barrier where all its threads meet. When any other thread of the
process (capture, preprocessing, publishing) or of the machine takes one core for a
moment, every barrier waits for the thread on that core, so a few % of CPU taken by
others costs the run far more than a few % (issue 17: the daemon's 1-camera gap).
Splitting the batch instead, one chunk per single-threaded session, leaves one
barrier per batch, and single-threaded sessions neither spin nor hand work over.
Measured on a 2-core host (benchmarks/README.md, "Session 15"): CPU per image
fell from ~75 to ~52 ms under the same load, and throughput rose ~1.5×.

:class:`ReplicaRunner` runs chunk 0 on the calling thread and chunk i on replica
thread i; it returns when every chunk has finished and re-raises the first error.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Sequence

from inspector.cores import usable_cores  # noqa: F401 (re-exported: the daemon and tests import it here)

_STOP = object()


def default_replicas(threads: int | None, max_batch: int, cores: int | None = None) -> int:
    """Sessions a full batch is split across when ``model.replicas`` is not set: one per core the backend
    may use (``threads``, None: every usable core, at most ``cores``), at most ``max_batch``, at least 1.
    A thread budget of 1 therefore turns the split off: it never runs more threads than the budget."""
    cores = usable_cores() if cores is None else cores
    return max(1, min(threads or cores, cores, max_batch))


def chunk_bounds(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous (start, stop) row ranges covering ``range(n)``, sizes differing by at most one.

    Raises ValueError when ``parts`` is not in 1..n.
    """
    if not 1 <= parts <= n:
        raise ValueError(f"cannot split {n} rows into {parts} chunks")
    base, extra = divmod(n, parts)
    bounds, start = [], 0
    for i in range(parts):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


class ReplicaRunner:
    """Runs IO bindings on their sessions in parallel: the first on the caller's thread, the rest each on
    its own long-lived thread (started here, so a caller that counts the threads a backend starts while
    loading sees them)."""

    def __init__(self, sessions: Sequence[Any]) -> None:
        self.sessions = list(sessions)
        self._jobs: list[queue.SimpleQueue] = [queue.SimpleQueue() for _ in self.sessions[1:]]
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._serve, args=(session, jobs), daemon=True,
                                          name=f"inspector-ort-replica-{i}")
                         for i, (session, jobs) in enumerate(zip(self.sessions[1:], self._jobs), start=1)]
        for thread in self._threads:
            thread.start()

    def _serve(self, session: Any, jobs: queue.SimpleQueue) -> None:
        while True:
            binding = jobs.get()
            if binding is _STOP:
                return
            try:
                session.run_with_iobinding(binding)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, which raises it
                self._done.put(exc)
            else:
                self._done.put(None)

    def run(self, bindings: Sequence[Any]) -> None:
        """Run ``bindings[i]`` on session i, all at once; raises the first error any of them raised."""
        for jobs, binding in zip(self._jobs, bindings[1:]):
            jobs.put(binding)
        error: BaseException | None = None
        try:
            self.sessions[0].run_with_iobinding(bindings[0])
        except BaseException as exc:  # noqa: BLE001 - raised below, after the other chunks have ended
            error = exc
        for _ in bindings[1:]:  # wait for every chunk: their output buffers are the caller's
            result = self._done.get()
            error = error or result
        if error is not None:
            raise error

    def close(self) -> None:
        """End the replica threads (each finishes the chunk it is running first)."""
        for jobs in self._jobs:
            jobs.put(_STOP)
        for thread in self._threads:
            thread.join(5.0)
