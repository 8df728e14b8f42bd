"""One p99: ``inspector bench``, the benchmark JSON and the daemon's telemetry use the nearest-rank percentile."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from inspector.evaluation.bench import percentiles as bench_percentiles
from inspector.percentile import nearest_rank, percentile
from inspector.pipeline.telemetry import Histogram

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _common import percentiles as benchmark_percentiles  # noqa: E402


def test_nearest_rank_is_a_real_sample_with_q_percent_at_or_below():
    values = list(range(1, 101))  # 1..100
    assert [percentile(values, q) for q in (0, 1, 50, 99, 99.5, 100)] == [1, 1, 50, 99, 100, 100]
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0 and nearest_rank(3, 50) == 2
    assert np.isnan(percentile([], 99))
    with pytest.raises(ValueError, match="percentile q"):
        nearest_rank(10, 101)


def test_bench_benchmarks_and_telemetry_agree():
    samples = list(np.random.default_rng(0).lognormal(3.0, 0.6, 997))  # ms, a long tail
    hist = Histogram()
    for v in samples:
        hist.record(v)
    for q in (50, 90, 99):
        want = percentile(samples, q)
        assert bench_percentiles(samples)[f"p{q}"] == want
        assert benchmark_percentiles(samples)[f"p{q}"] == want
        assert abs(hist.percentile(q) - want) <= 0.04 * want  # one 4 % bucket
