"""The one percentile definition used by ``inspector bench``, the benchmark JSON and the daemon's ``v1/stats``.

pXX is the **nearest-rank** percentile: the smallest sample such that at least
XX % of the samples are ≤ it, i.e. the ⌈XX/100 · n⌉-th smallest (p100 = max).
So "p99 = 31 ms" means: 99 % of the measured calls took 31 ms or less, and the
value is a real sample, not an interpolation between two. The daemon's
telemetry applies the same rank to its log-spaced histogram buckets, so its
p99 is this definition to within one bucket (±2 %).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def nearest_rank(n: int, q: float) -> int:
    """The 1-based rank of percentile ``q`` (0-100) among ``n`` ≥ 1 sorted samples."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    return min(n, max(1, math.ceil(n * q / 100.0)))


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) of ``values``; NaN for no values."""
    a = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if a.size == 0:
        return float("nan")
    return float(a[nearest_rank(a.size, q) - 1])
