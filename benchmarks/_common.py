"""Helpers shared by benchmark scripts: machine description, timing stats, JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """CPU model, cores and library versions, recorded with every result."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in ("numpy", "torch", "onnx", "onnxruntime", "cv2", "zmq", "tensorrt"):
        try:
            versions[name] = __import__(name).__version__
        except Exception:
            pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "versions": versions}


def percentiles(samples_ms: list[float]) -> dict:
    s = sorted(samples_ms)
    pick = lambda q: s[min(len(s) - 1, int(round(q * (len(s) - 1))))]  # noqa: E731
    return {"n": len(s), "p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": s[-1],
            "mean": statistics.fmean(s)}


def time_calls(fn, warmup: int = 3, runs: int = 20, min_seconds: float = 0.0) -> list[float]:
    """Call ``fn`` after warm-up; return per-call wall times in ms."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < runs or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def write_result(name: str, payload: dict, out_dir: Path | None = None) -> Path:
    out_dir = Path(out_dir or RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    payload = {"benchmark": name, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=2))
    return path
