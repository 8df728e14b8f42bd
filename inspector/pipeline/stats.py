"""The daemon's ``v1/stats`` data: counters, per-camera figures, rates, CPU and drift.

The publisher thread asks :meth:`DaemonStats.snapshot` at each heartbeat and adds its own figures
(latencies, per-camera decisions, sequences). Built once the workers it reads exist.
"""

from __future__ import annotations

import time
from typing import Sequence

from inspector.pipeline.batcher import BatchWorker
from inspector.pipeline.capture import CaptureWorker
from inspector.pipeline.cputime import ThreadCpu, split_role
from inspector.pipeline.drift import DriftMonitor
from inspector.pipeline.telemetry import Counters, RateMeter


class DaemonStats:
    """Counters and rates for ``v1/stats``; :meth:`snapshot` is called by the publisher thread."""

    def __init__(self, counters: Counters, cpu: ThreadCpu, drift: DriftMonitor,
                 captures: Sequence[CaptureWorker], batcher: BatchWorker) -> None:
        self.counters, self.cpu, self.drift = counters, cpu, drift
        self.captures, self.batcher = list(captures), batcher
        self.started_at = time.monotonic()
        self._rate = RateMeter()

    def _cameras(self, snap: dict) -> dict[str, dict]:
        cams = {}
        for w in self.captures:
            name = w.camera.name
            prefix = name + "."
            cams[name] = {k[len(prefix):]: v for k, v in snap.items() if k.startswith(prefix)}
            cams[name].update({"live": w.live, "frames": w.frames, "reconnects": w.reconnects})
            source_stats = getattr(w.source, "stats", None)  # e.g. GenICam: lost/incomplete buffers
            if callable(source_stats):
                cams[name].update({f"buffers_{k}": v for k, v in source_stats().items()})
        return cams

    def snapshot(self) -> dict:
        """``{"cameras": {name: {...}}, "totals": {...}, "cpu_s": {role: s}, "drift": {...}?}``."""
        snap = self.counters.snapshot()
        cams = self._cameras(snap)
        totals = {k: v for k, v in snap.items() if not any(k.startswith(c + ".") for c in cams)}
        batches = snap.get("batches", 0)
        totals["mean_batch"] = round(snap.get("batched_frames", 0) / batches, 3) if batches else 0.0
        elapsed = max(time.monotonic() - self.started_at, 1e-9)
        totals["fps"] = round(snap.get("inferred_frames", 0) / elapsed, 3)  # since start
        totals["fps_window"] = self._rate.rate(snap.get("inferred_frames", 0))  # since the last stats
        # CPU seconds per role since start (cputime.py); preprocessing is split out of the batcher thread
        cpu = self.cpu.snapshot()
        data = {"cameras": cams, "totals": totals,
                "cpu_s": split_role(cpu, "batcher", "preprocess", self.batcher.preprocess_cpu_s)}
        drift = self.drift.snapshot()
        if drift:
            data["drift"] = drift
            for cam, d in drift.items():
                cams.setdefault(cam, {})["drift_flagged"] = d["flagged"]
        return data
