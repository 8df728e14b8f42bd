"""Benchmark any backend: warm-up, then throughput and latency percentiles per batch size.

``inspector bench MODEL --batch 1,4,8 --duration 10 --json out.json`` loads MODEL
with :func:`inspector.backends.load_backend` (ONNX Runtime for ``.onnx``,
TensorRT for ``.plan``), and for each batch size runs warm-up iterations (not
measured; TensorRT also captures its CUDA graph there when enabled), then calls
``infer`` back to back for ``duration`` seconds. Reported per batch size:
iterations, images/s, batches/s, end-to-end latency (host wall clock around
``infer``: mean, p50, p90, p99, max) and the backend's own stage timings
(TensorRT: ``h2d``, ``compute``, ``d2h`` from CUDA events; ONNX Runtime: ``compute``).
Inputs are real images when ``--data`` is given (tiled to the batch), else
seeded random uint8 frames.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import json
import platform
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from inspector.artifacts.frame_shapes import backend_frame_shapes, folder_watch
from inspector.config import write_json
from inspector.contract import DEFAULT_BATCH
from inspector.errors import ConfigError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DEFAULT_BATCHES = (1, 4, DEFAULT_BATCH)  # single-image latency, a small batch, the default engine's largest
MAX_BATCH = 4096  # as predict, evaluate and calibrate --batch-size


def parse_batches(text: str | Sequence[int]) -> list[int]:
    """``"1,4,8"`` → [1, 4, 8] (each in [1, MAX_BATCH], de-duplicated, in the given order)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    batches: list[int] = []
    for item in items:
        try:
            value = int(str(item).strip())
        except ValueError:
            raise ConfigError(f"batches: '{item}' is not an integer (expected e.g. 1,4,8)", field="batches") from None
        if value < 1:
            raise ConfigError(f"batches: batch sizes must be ≥ 1, got {value}", field="batches")
        if value > MAX_BATCH:  # the input alone is batch × H × W × 3 bytes: 10^8 frames asked for a TiB
            raise ConfigError(f"batches: batch sizes must be ≤ {MAX_BATCH}, got {str(value)[:30]}", field="batches")
        if value not in batches:
            batches.append(value)
    if not batches:
        raise ConfigError("batches: no batch size given", field="batches")
    return batches


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """mean, p50, p90, p99, min, max of ``values`` (ms); percentiles: :mod:`inspector.percentile` (nearest rank)."""
    from inspector.percentile import percentile

    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {}
    p50, p90, p99 = (percentile(a, q) for q in (50, 90, 99))
    return {"mean": float(a.mean()), "p50": float(p50), "p90": float(p90), "p99": float(p99),
            "min": float(a.min()), "max": float(a.max())}


def make_batch(spec, n: int, images: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """A uint8 (n, H, W, C) batch: ``images`` tiled to n, or seeded random frames."""
    if images is not None and len(images):
        reps = -(-n // len(images))
        return np.ascontiguousarray(np.concatenate([images] * reps)[:n])
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, spec.height, spec.width, spec.channels), dtype=np.uint8)


def bench_batch(backend, batch: np.ndarray, duration_s: float, warmup: int = 10,
                min_iterations: int = 5) -> dict[str, Any]:
    """Warm up, then run ``batch`` for ``duration_s`` seconds (at least ``min_iterations``)."""
    for _ in range(max(0, warmup)):
        backend.infer(batch)
    latencies: list[float] = []
    stages: dict[str, list[float]] = {}
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter_ns()
        result = backend.infer(batch)
        latencies.append((time.perf_counter_ns() - t0) / 1e6)
        for key, value in result.timings_ms.items():
            stages.setdefault(key, []).append(float(value))
        elapsed = time.perf_counter() - start
        if elapsed >= duration_s and len(latencies) >= min_iterations:
            break
    n = int(batch.shape[0])
    return {
        "batch": n,
        "iterations": len(latencies),
        "seconds": elapsed,
        "images_per_s": len(latencies) * n / elapsed,
        "batches_per_s": len(latencies) / elapsed,
        "latency_ms": percentiles(latencies),
        "stages_ms": {k: percentiles(v) for k, v in stages.items()},
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_environment(backend) -> dict[str, Any]:
    """Host and device facts worth keeping with the figures."""
    env: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                           "cpu": _cpu_name(), "cpu_count": os.cpu_count()}
    facts = getattr(backend, "facts", None)
    if facts is not None:  # TensorRT
        env.update({"gpu": facts.gpu_name, "compute_capability": facts.compute_capability,
                    "tensorrt": facts.tensorrt_version, "cuda_api": getattr(getattr(backend, "_cuda", None), "api", None),
                    "cuda_graphs": bool(getattr(backend, "cuda_graphs", False))})
    else:
        try:
            import onnxruntime

            env["onnxruntime"] = onnxruntime.__version__
        except ImportError:
            pass
    return env


def load_images(data: str | Path, spec, limit: int = 64, on_size=None) -> np.ndarray:
    """Up to ``limit`` real images from a dataset folder, made into the model input ``spec`` describes.
    ``on_size``: called with each image read and its own height and width
    (:func:`inspector.data.datasets.load_batch`)."""
    from inspector.data.datasets import load_batch, load_dataset, none_readable

    dataset = load_dataset(data)
    samples = (list(dataset.test) or list(dataset.train))[:limit]
    images, kept, _ = load_batch(samples, spec.height, spec.width, spec.resize, spec.bit_depth, spec.downscale,
                                 on_size=on_size)
    if not kept:  # an empty set was tiled into nothing: random frames were timed, reported as "images from DATA"
        raise none_readable(samples)
    return images


def write_results(path: str | Path, report: dict[str, Any]) -> Path:
    """The ``--json`` file: strict JSON through :func:`inspector.config.write_json` (NaN/±inf → null)."""
    return write_json(path, report)


def run_benchmark(model: str | Path, batches: Sequence[int] = DEFAULT_BATCHES, duration_s: float = 10.0, warmup: int = 10,
                  backend: str = "auto", data: str | Path | None = None, json_path: str | Path | None = None,
                  options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Benchmark ``model`` at each batch size; write JSON when ``json_path`` is given; return the results."""
    from inspector.backends import load_backend

    if duration_s <= 0:
        raise ConfigError(f"duration_s must be > 0 seconds, got {duration_s}", field="duration_s")
    model = Path(model)
    with load_backend(model, backend=backend, **(options or {})) as be:
        spec = be.input_spec
        too_big = [b for b in batches if spec.max_batch is not None and b > spec.max_batch]
        if too_big:
            raise ConfigError(f"{model}: batch size(s) {too_big} exceed the model's maximum {spec.max_batch}"
                              + ("; rebuild the engine with a larger --max-batch" if be.name == "tensorrt" else ""))
        # timings on images unlike the model's training images are those of frames it should not be given
        told: list[str] = []
        watch = folder_watch(backend_frame_shapes(be, str(model), retell=False), told) if data else None
        images = load_images(data, spec, on_size=watch) if data else None
        results = []
        for b in batches:
            log.info("benchmarking %s at batch %d for %.1f s", model, b, duration_s)
            results.append(bench_batch(be, make_batch(spec, b, images), duration_s, warmup))
        report = {
            "schema_version": SCHEMA_VERSION,
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "model": {"path": str(model), "backend": be.name, "precision": getattr(be, "precision", "?"),
                      "sha256": getattr(be, "sha256", None), "input": [spec.height, spec.width, spec.channels]},
            "settings": {"batches": list(batches), "duration_s": duration_s, "warmup_iterations": warmup,
                         "inputs": f"images from {data}" if data else "random uint8", "options": options or {}},
            "environment": describe_environment(be),
            "results": results,
            "warnings": told,
        }
    if json_path:
        report["json_path"] = str(write_results(json_path, report))
    return report


def is_bench_results(raw: bytes) -> bool:
    """Whether ``raw`` (a file's bytes) is a results file :func:`run_benchmark` wrote: a JSON object with its keys
    (for :func:`inspector.outputs.claim_file`: ``bench --json`` replaces only one of these)."""
    data = json.loads(raw)
    return isinstance(data, dict) and {"schema_version", "model", "settings", "environment", "results"} <= set(data)


def format_results(report: dict[str, Any]) -> str:
    """A table: batch, iterations, images/s, latency p50/p90/p99, stage p50s."""
    stage_keys = sorted({k for r in report["results"] for k in r["stages_ms"] if k != "total"})
    head = f"{'batch':>5} {'iters':>6} {'img/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}"
    head += "".join(f" {k + ' p50':>12}" for k in stage_keys)
    lines = [f"{report['model']['path']} ({report['model']['backend']}, {report['model']['precision']})", head]
    for r in report["results"]:
        lat = r["latency_ms"]
        row = (f"{r['batch']:>5} {r['iterations']:>6} {r['images_per_s']:>9.1f} {lat['p50']:>8.3f} "
               f"{lat['p90']:>8.3f} {lat['p99']:>8.3f}")
        row += "".join(f" {r['stages_ms'].get(k, {}).get('p50', float('nan')):>12.3f}" for k in stage_keys)
        lines.append(row)
    return "\n".join(lines)
