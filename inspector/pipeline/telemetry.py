"""Stage latency histograms, counters and rates.

:class:`Histogram` keeps log-spaced buckets (4 % wide), so percentiles cost a
fixed amount of memory however long the daemon runs; the reported p50/p90/p99
are the bucket's geometric centre clamped to the exact observed min/max (within
±2 %), the max is exact. :class:`LatencyTracker` turns each frame's stage stamps
into per-stage and end-to-end histograms, cumulative and for the current
reporting window. :class:`Counters` is a thread-safe bag of named counts.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from typing import Iterable, Mapping

import numpy as np

from inspector.percentile import nearest_rank

_RATIO = 1.04
_LOG_RATIO = math.log(_RATIO)
_MIN_MS = 1e-3  # bucket 0 holds everything below 1 µs
_BUCKETS = int(math.ceil(math.log(1e7 / _MIN_MS) / _LOG_RATIO)) + 1  # up to ~3 hours
PERCENTILES = (50, 90, 99)


class Histogram:
    """A log-bucketed histogram of positive values (milliseconds by convention)."""

    __slots__ = ("counts", "n", "total", "min", "max")

    def __init__(self) -> None:
        self.counts = np.zeros(_BUCKETS, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        self.counts[:] = 0
        self.n = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    def record(self, value: float) -> None:
        idx = 0 if value <= _MIN_MS else min(_BUCKETS - 1, int(math.log(value / _MIN_MS) / _LOG_RATIO) + 1)
        self.counts[idx] += 1
        self.n += 1
        self.total += value
        self.min = min(self.min, value)
        self.max = max(self.max, value)

    def record_many(self, values: np.ndarray) -> None:
        """Record every value of a 1-D float array at once (same buckets as :meth:`record`)."""
        values = np.asarray(values, dtype=np.float64).ravel()
        if values.size == 0:
            return
        above = values > _MIN_MS
        idx = np.zeros(values.size, dtype=np.int64)
        idx[above] = np.minimum(_BUCKETS - 1, (np.log(values[above] / _MIN_MS) / _LOG_RATIO).astype(np.int64) + 1)
        self.counts += np.bincount(idx, minlength=_BUCKETS)
        self.n += int(values.size)
        self.total += float(values.sum())
        self.min = min(self.min, float(values.min()))
        self.max = max(self.max, float(values.max()))

    def merge(self, other: "Histogram") -> None:
        self.counts += other.counts
        self.n += other.n
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def percentile(self, q: float, cumulative: np.ndarray | None = None) -> float:
        """``cumulative``: ``np.cumsum(self.counts)`` when the caller has it (several percentiles at once)."""
        if self.n == 0:
            return float("nan")
        if q >= 100:
            return self.max
        rank = nearest_rank(self.n, q)  # the one definition (inspector.percentile), on buckets
        cumulative = np.cumsum(self.counts) if cumulative is None else cumulative
        idx = int(np.searchsorted(cumulative, rank))
        if idx == 0:
            centre = _MIN_MS
        else:
            centre = _MIN_MS * _RATIO ** (idx - 0.5)
        return min(max(centre, self.min), self.max)

    def summary(self, digits: int = 3) -> dict[str, float]:
        """{n, mean, p50, p90, p99, max} (NaN-free: empty → n 0 only)."""
        if self.n == 0:
            return {"n": 0}
        out = {"n": self.n, "mean": round(self.total / self.n, digits)}
        cumulative = np.cumsum(self.counts)  # once for every percentile (~600 buckets)
        for q in PERCENTILES:
            out[f"p{q}"] = round(self.percentile(q, cumulative), digits)
        out["max"] = round(self.max, digits)
        return out


def bucket_upper_ms(index: int) -> float:
    """Upper edge (ms) of :class:`Histogram` bucket ``index``: bucket k ≥ 1 holds [_MIN_MS·r^(k−1), _MIN_MS·r^k)."""
    return _MIN_MS * _RATIO ** index


def coarse_buckets(lo_ms: float, hi_ms: float, step: int) -> list[int]:
    """Every ``step``-th bucket index whose upper edge lies in [lo_ms, hi_ms]: Prometheus ``le`` bounds
    that fall on this grid, so each exported bucket is an exact sum of ``v1/stats`` buckets."""
    first = max(1, int(math.ceil(math.log(lo_ms / _MIN_MS) / _LOG_RATIO)))
    last = min(_BUCKETS - 1, int(math.floor(math.log(hi_ms / _MIN_MS) / _LOG_RATIO)))
    return list(range(first, last + 1, step))


class LatencyTracker:
    """Per-stage and end-to-end latency histograms (cumulative and per window). Single writer.

    :meth:`record` only queues a frame's latencies; every ``flush_every`` frames (and before any summary)
    they go into the histograms with one vectorised update per stage, instead of two Python histogram
    updates per stage per frame. A reader in another thread (the Prometheus exporter) may see
    :attr:`cumulative` up to ``flush_every - 1`` frames behind.
    """

    def __init__(self, stages: Iterable[str], flush_every: int = 64) -> None:
        self.stages = tuple(stages) + ("total",)
        self.cumulative = {s: Histogram() for s in self.stages}
        self.window = {s: Histogram() for s in self.stages}
        self.flush_every = max(1, int(flush_every))
        self._pending: list[Mapping[str, float]] = []

    def record(self, latencies_ms: Mapping[str, float]) -> None:
        """Queue one frame's ``{stage: ms}`` (stages not tracked are ignored)."""
        self._pending.append(latencies_ms)
        if len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Move the queued latencies into the histograms."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        for stage in self.stages:
            values = [lat[stage] for lat in pending if stage in lat]
            if values:
                arr = np.asarray(values, dtype=np.float64)
                self.cumulative[stage].record_many(arr)
                self.window[stage].record_many(arr)

    def window_summary(self, reset: bool = True) -> dict[str, dict[str, float]]:
        self.flush()
        out = {s: h.summary() for s, h in self.window.items() if h.n}
        if reset:
            for h in self.window.values():
                h.reset()
        return out

    def summary(self, stages: Iterable[str] | None = None) -> dict[str, dict[str, float]]:
        """Cumulative summaries of ``stages`` (default: all) that have values."""
        self.flush()
        wanted = self.stages if stages is None else tuple(stages)
        return {s: self.cumulative[s].summary() for s in wanted if self.cumulative[s].n}


class Counters:
    """Thread-safe named counters, optionally keyed by camera."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = defaultdict(int)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class RateMeter:
    """Events per second over the interval since the last :meth:`rate` call."""

    def __init__(self) -> None:
        self._last_n = 0
        self._last_t = time.monotonic()

    def rate(self, n_total: int) -> float:
        now = time.monotonic()
        dt = max(now - self._last_t, 1e-9)
        value = (n_total - self._last_n) / dt
        self._last_n, self._last_t = n_total, now
        return round(value, 3)


def format_summary(latency: Mapping[str, Mapping[str, float]]) -> str:
    """A small text table of stage latencies (ms) for the shutdown summary."""
    lines = [f"{'stage':<14}{'n':>8}{'p50':>10}{'p90':>10}{'p99':>10}{'max':>10}"]
    for stage, s in latency.items():
        if not s.get("n"):
            continue
        lines.append(f"{stage:<14}{s['n']:>8}{s['p50']:>10.3f}{s['p90']:>10.3f}{s['p99']:>10.3f}{s['max']:>10.3f}")
    return "\n".join(lines)
