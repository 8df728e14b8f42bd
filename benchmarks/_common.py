"""Helpers shared by benchmark scripts: machine description, timing stats, JSON output."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from pathlib import Path

import numpy as np

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
    """n, p50, p90, p99, max, mean; percentiles are nearest-rank (:mod:`inspector.percentile`)."""
    from inspector.percentile import percentile

    s = sorted(samples_ms)
    return {"n": len(s), "p50": percentile(s, 50), "p90": percentile(s, 90), "p99": percentile(s, 99),
            "max": s[-1], "mean": statistics.fmean(s)}


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
    """Write ``<out_dir>/<name>.json`` (machine and time added) through the package's one JSON writer."""
    from inspector.config import write_json

    payload = {"benchmark": name, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(), **payload}
    return write_json(Path(out_dir or RESULTS) / f"{name}.json", payload)


def parse_size(text: str) -> list[int]:
    h, w = text.lower().split("x")
    return [int(h), int(w)]


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ort_session(path: Path, threads: int | None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def time_alternating(sessions: dict, size: list[int], rounds: int, per_round: int) -> dict[str, list[float]]:
    """Batch-1 latency (ms) of each session, timed in alternating rounds after a warm-up."""
    image = np.random.default_rng(0).integers(0, 256, (1, size[0], size[1], 3), dtype=np.uint8)
    feeds = {name: {s.get_inputs()[0].name: image} for name, s in sessions.items()}
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for name, s in sessions.items():
        for _ in range(3):
            s.run(None, feeds[name])
    for _ in range(rounds):
        for name, s in sessions.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                s.run(None, feeds[name])
                times[name].append((time.perf_counter() - t0) * 1e3)
    return times
