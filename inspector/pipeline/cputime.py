"""CPU time per pipeline role, from the kernel's per-thread accounting.

Every worker registers its native thread id under a role (``capture``,
``batcher``, ``inference`` …); the inference worker also registers the threads
its backend created while loading (ONNX Runtime's intra-op pool) as
``inference_pool``. :meth:`ThreadCpu.snapshot` reads ``utime + stime`` of every
thread of this process from ``/proc/self/task/<tid>/stat`` (proc(5), fields 14
and 15, in clock ticks) and sums them per role; threads nobody registered are
``zmq`` (libzmq names its I/O threads ``ZMQbg/…``), ``main``, or ``other``.
Threads that ended keep their last reading, so the totals never go down; a
thread calls :meth:`ThreadCpu.finish` as it ends (workers do) so its last
interval is not lost.

Cost: one small file read per thread, done once per stats interval by the
publisher thread — cheap enough to stay on in production. The files are read
with ``os.open``/``os.read`` on preformatted paths: with :mod:`pathlib`, making
the two path objects per thread cost as much as reading the file (about half
of a 17-thread snapshot, itself ~45 % of a stats heartbeat; issue 17).
Where ``/proc`` is missing (not Linux) the snapshot is empty.
"""

from __future__ import annotations

import os
import threading
import time

_TASKS = "/proc/self/task"
_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def native_thread_ids() -> set[int]:
    """Native ids of this process's threads now (empty without /proc)."""
    try:
        return {int(name) for name in os.listdir(_TASKS)}
    except OSError:
        return set()


def _read_task(tid: int) -> tuple[str, float] | None:
    """(comm, CPU seconds) of one thread, None if it is gone."""
    try:
        fd = os.open(f"{_TASKS}/{tid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        raw = os.read(fd, 4096).decode("ascii", "replace")  # one line, well under 1 KiB (proc(5))
    except OSError:
        return None
    finally:
        os.close(fd)
    # "tid (comm) state ppid …": comm may hold spaces and ')', so split at the last ')'
    open_at, close_at = raw.find("("), raw.rfind(")")
    fields = raw[close_at + 2:].split()
    # fields[0] is field 3 (state): utime and stime (fields 14, 15) are fields[11], fields[12]
    return raw[open_at + 1:close_at], (int(fields[11]) + int(fields[12])) * _TICK_S


class ThreadCpu:
    """Thread → role registry and per-role CPU seconds (thread-safe)."""

    def __init__(self) -> None:
        self._roles: dict[int, str] = {}
        self._last: dict[int, tuple[str, float]] = {}  # tid → (role, seconds), kept after the thread ends
        self._base: dict[int, float] = {}  # CPU seconds of threads that existed at :meth:`start`
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def start(self) -> None:
        """Count from now: threads that already exist (e.g. the main thread) report only later CPU time."""
        with self._lock:
            for tid in native_thread_ids():
                got = _read_task(tid)
                if got is not None:
                    self._base[tid] = got[1]

    def register(self, role: str, tid: int | None = None) -> None:
        """Attribute thread ``tid`` (default: the calling thread) to ``role``."""
        with self._lock:
            self._roles[threading.get_native_id() if tid is None else tid] = role

    def finish(self) -> None:
        """Called by a registered thread as it ends: record its final CPU time (time.thread_time)."""
        tid = threading.get_native_id()
        with self._lock:
            if tid in self._roles:
                self._last[tid] = (self._roles[tid], time.thread_time() - self._base.get(tid, 0.0))

    def _role(self, tid: int, comm: str) -> str:
        role = self._roles.get(tid)
        if role is not None:
            return role
        if comm.startswith("ZMQbg"):
            return "zmq"
        return "main" if tid == self._pid else "other"

    def snapshot(self) -> dict[str, float]:
        """CPU seconds per role since each thread started (rounded to 3 decimals)."""
        with self._lock:
            for tid in native_thread_ids():
                got = _read_task(tid)
                if got is not None:
                    self._last[tid] = (self._role(tid, got[0]), got[1] - self._base.get(tid, 0.0))
            totals: dict[str, float] = {}
            for role, seconds in self._last.values():
                totals[role] = totals.get(role, 0.0) + seconds
        return {role: round(s, 3) for role, s in sorted(totals.items())}


def split_role(totals: dict[str, float], role: str, part: str, part_s: float) -> dict[str, float]:
    """Move ``part_s`` seconds of ``role`` into ``part`` (e.g. preprocessing inside the batcher thread)."""
    out = dict(totals)
    if role in out:
        part_s = min(part_s, out[role])
        out[role] = round(out[role] - part_s, 3)
        out[part] = round(part_s, 3)
    return out
