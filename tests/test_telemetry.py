"""Latency histograms, tracker, counters."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from inspector.pipeline.telemetry import Counters, Histogram, LatencyTracker, format_summary


def test_histogram_percentiles_within_bucket_resolution():
    rng = np.random.default_rng(0)
    values = rng.lognormal(mean=1.0, sigma=1.0, size=20000)
    h = Histogram()
    for v in values:
        h.record(float(v))
    for q in (50, 90, 99):
        assert h.percentile(q) == pytest.approx(np.percentile(values, q), rel=0.03)
    s = h.summary()
    assert s["n"] == 20000 and s["max"] == pytest.approx(values.max(), rel=1e-6)
    assert s["mean"] == pytest.approx(values.mean(), rel=1e-3)


def test_histogram_edges_and_merge():
    h = Histogram()
    assert h.summary() == {"n": 0}
    h.record(0.0)
    h.record(5.0)
    other = Histogram()
    other.record(7.0)
    h.merge(other)
    assert h.n == 3 and h.min == 0.0 and h.max == 7.0
    assert h.percentile(100) == 7.0
    h.reset()
    assert h.n == 0


def test_latency_tracker_windows():
    t = LatencyTracker(["inferred"])
    t.record({"inferred": 2.0, "total": 5.0, "unknown": 1.0})
    t.record({"inferred": 4.0, "total": 6.0})
    window = t.window_summary()
    assert window["inferred"]["n"] == 2 and window["total"]["max"] == 6.0
    assert t.window_summary() == {}  # reset
    assert t.summary()["total"]["n"] == 2
    assert "inferred" in format_summary(t.summary())


def test_counters_thread_safe():
    c = Counters()

    def bump():
        for _ in range(10000):
            c.add("x")

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert c.get("x") == 40000 and c.snapshot() == {"x": 40000}


def test_histogram_record_many_matches_record():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.lognormal(1.0, 2.0, 5000), [0.0, 1e-3, 5e-4, 1e9]])
    one, many = Histogram(), Histogram()
    for v in values:
        one.record(float(v))
    many.record_many(values)
    # identical buckets (a value exactly on a bucket edge may round either way in np.log vs math.log)
    assert np.abs(one.counts - many.counts).sum() <= 2
    assert (many.n, many.min, many.max) == (one.n, one.min, one.max)
    assert many.total == pytest.approx(one.total)


def test_latency_tracker_flushes_queued_frames_before_summaries():
    t = LatencyTracker(["inferred"], flush_every=1000)
    for i in range(10):
        t.record({"inferred": float(i + 1), "total": 10.0})
    assert t.cumulative["inferred"].n == 0  # queued, not yet in the histograms
    assert t.summary()["inferred"]["n"] == 10 and t.window_summary()["total"]["n"] == 10
    t2 = LatencyTracker(["inferred"], flush_every=4)
    for _ in range(9):
        t2.record({"inferred": 1.0})
    assert t2.cumulative["inferred"].n == 8  # two automatic flushes of 4
