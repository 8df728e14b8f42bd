"""Normal-score drift: rolling statistics of OK scores per camera vs the calibration's.

When a camera moves or the lighting changes, good parts start scoring
differently long before they cross the threshold. The monitor keeps the last
``window`` OK scores per camera and flags a camera whose rolling mean moved by
more than ``max_shift_std`` calibration standard deviations from the
calibration mean (with at least ``min_samples`` scores). It also reports the
share of OK scores above the calibration's p99 (about 1 % when nothing moved).
"""

from __future__ import annotations

import collections
import threading

import numpy as np

from inspector.pipeline.config import DriftSection
from inspector.artifacts.thresholds import ScoreStats


class DriftMonitor:
    """Written by the postprocess thread, read by the publisher (locked)."""

    def __init__(self, cfg: DriftSection, reference: ScoreStats | None) -> None:
        self.cfg, self.reference = cfg, reference
        self._scores: dict[str, collections.deque] = {}
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self.cfg.enabled and self.reference is not None

    def add(self, camera: str, score: float) -> None:
        if not self.active:
            return
        with self._lock:
            window = self._scores.get(camera)
            if window is None:
                window = self._scores[camera] = collections.deque(maxlen=self.cfg.window)
            window.append(score)

    def snapshot(self) -> dict[str, dict]:
        """{camera: {n, mean, std, p50, shift_std, above_p99, flagged}} (empty when inactive)."""
        if not self.active:
            return {}
        ref = self.reference
        with self._lock:
            windows = {cam: np.fromiter(w, dtype=np.float64) for cam, w in self._scores.items()}
        out = {}
        for cam, s in windows.items():
            if s.size == 0:
                continue
            mean = float(s.mean())
            shift = (mean - ref.mean) / ref.std if ref.std > 0 else 0.0
            flagged = s.size >= self.cfg.min_samples and abs(shift) > self.cfg.max_shift_std
            out[cam] = {"n": int(s.size), "mean": round(mean, 6), "std": round(float(s.std()), 6),
                        "p50": round(float(np.median(s)), 6), "shift_std": round(shift, 3),
                        "above_p99": round(float((s > ref.p99).mean()), 4), "flagged": bool(flagged),
                        "reference": {"mean": ref.mean, "std": ref.std, "p99": ref.p99}}
        return out
