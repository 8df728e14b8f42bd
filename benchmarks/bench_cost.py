"""Cost growth: latency and memory vs input resolution and vs batch size, on torch eager and ONNX Runtime FP32.

    python benchmarks/bench_cost.py                         # reduced_student,stfpm,feature_imitation; 256/384/512; batch 1,2,4,8
    python benchmarks/bench_cost.py --quick     # reduced_student; 256/384/512 at batch 1, batch 1,2,4 at 256

For each model and input size the model is built untrained (offline preset:
speed and memory do not depend on the weights), exported to an FP32 ONNX graph
and run on both backends. Each point (backend, size, batch) is warmed up, then
timed ``--runs`` times (p50/p99/max and the number of runs are recorded).
Memory is the peak resident-set growth of this process while the point runs
(sampled every 2 ms from /proc/self/statm, relative to the RSS just before the
point's first call, after freed heap pages were handed back with malloc_trim):
it shows how activation memory grows with the work, not the model's total
footprint. GFLOPs per image come from :func:`count_flops` (2 × multiply-
accumulates of every nn.Conv2d and nn.Linear module; functional ops such as
the map smoothing are not counted — within ~1 % of torch's FlopCounterMode on
the models here).

Also the home of :func:`count_flops` and :func:`model_facts` (parameters and
GFLOPs per image), used by ``run_all.py`` for the backends table.
JSON to ``benchmarks/results/cost.json`` (``--out`` folder, ``--name`` file).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import claim_result_or_exit, percentiles, write_result  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


# ------------------------------------------------------------------------------------------ FLOPs
def _layer_macs(module, output) -> int:
    """Multiply-accumulates of one Conv2d or Linear call, from its output shape."""
    import torch.nn as nn

    if isinstance(output, tuple):  # glance's partial convolutions return (features, mask)
        output = output[0]
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * kh * kw
    return output.numel() * module.in_features


def count_flops(model, example) -> int:
    """FLOPs of one forward of ``model`` on ``example``: 2 × MACs of every Conv2d and Linear (bias ignored).

    A forward hook on each such layer reads the output shape, so the count is
    what actually runs (layers cut from the graph are not counted).
    """
    import torch
    import torch.nn as nn

    total = [0]

    def hook(module, _inputs, output):
        total[0] += 2 * _layer_macs(module, output)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.inference_mode():
            model(example)
    finally:
        for h in handles:
            h.remove()
    return total[0]


def build_untrained(name: str, size: list[int]):
    """The model ``name`` (offline preset, untrained student) at input ``size`` [H, W], in eval mode."""
    from inspector.models.registry import build_model
    from inspector.training.config import load_run_config

    config = load_run_config(base={"model": {"name": name, "image_size": list(size)}, "data": {"path": "random"}})
    return build_model(config.model).eval()


def model_facts(name: str, size: list[int]) -> dict:
    """Parameters and GFLOPs per image of model ``name`` at input ``size``."""
    import torch

    model = build_untrained(name, size)
    image = torch.randint(0, 256, (1, size[0], size[1], 3), dtype=torch.uint8)
    return {"model": name, "image_size": list(size), "parameters": sum(p.numel() for p in model.parameters()),
            "gflops_per_image": round(count_flops(model, image) / 1e9, 4)}


# ------------------------------------------------------------------------------------------ memory
def rss_bytes() -> int:
    """Current resident set size of this process (0 where /proc is absent)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc), so RSS growth is measurable."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakRss:
    """Samples RSS in a thread while the ``with`` block runs; ``growth_mib`` = peak − RSS at entry."""

    def __init__(self, interval_s: float = 0.002) -> None:
        self.interval_s, self.base, self.peak = interval_s, 0, 0
        self._stop = threading.Event()

    def __enter__(self) -> "PeakRss":
        release_free_memory()
        self.base = self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def growth_mib(self) -> float:
        return round((self.peak - self.base) / 2**20, 1)


# ------------------------------------------------------------------------------------------ timing
def measure_point(infer, batch: np.ndarray, warmup: int, runs: int) -> dict:
    """Warm up, then time ``runs`` calls of ``infer(batch)``; latency percentiles and memory growth."""
    with PeakRss() as mem:
        for _ in range(warmup):
            infer(batch)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            infer(batch)
            times.append((time.perf_counter() - t0) * 1e3)
    lat = percentiles(times)
    n = int(batch.shape[0])
    return {"batch": n, "runs": runs, "warmup": warmup, "latency_ms": lat,
            "ms_per_image": round(lat["p50"] / n, 3), "images_per_s": round(n * 1e3 / lat["p50"], 2),
            "rss_growth_mib": mem.growth_mib}


def runners(name: str, size: list[int], workdir: Path, threads: int | None) -> dict:
    """``{"torch": infer, "onnxruntime": infer}`` for an untrained ``name`` at ``size`` (ORT graph exported here)."""
    import torch

    from inspector.backends import load_backend
    from inspector.deploy import export_model

    model = build_untrained(name, size)
    graph = export_model(model, workdir / f"{name}-{size[0]}x{size[1]}", precisions=["fp32"])["fp32"]
    ort = load_backend(graph, "onnxruntime", threads=threads)

    def eager(batch):
        with torch.inference_mode():
            return model(torch.from_numpy(batch))

    return {"torch": eager, "onnxruntime": ort.infer, "_close": ort.close, "_model": model}


def bench_size(name: str, size: int, batches: list[int], args, workdir: Path) -> list[dict]:
    """All points of one model at one square input size."""
    import torch

    hw = [size, size]
    run = runners(name, hw, workdir, args.threads)
    one = torch.randint(0, 256, (1, size, size, 3), dtype=torch.uint8)
    gflops = round(count_flops(run["_model"], one) / 1e9, 4)
    rng = np.random.default_rng(0)
    points = []
    try:
        for n in batches:
            batch = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
            for backend in ("torch", "onnxruntime"):
                point = measure_point(run[backend], batch, args.warmup, args.runs)
                point.update({"model": name, "backend": backend, "size": size, "gflops_per_image": gflops})
                points.append(point)
                print(f"{name:16} {backend:11} {size}x{size} batch {n}: p50 {point['latency_ms']['p50']:8.1f} ms "
                      f"({point['ms_per_image']:.1f} ms/img), +{point['rss_growth_mib']} MiB", flush=True)
    finally:
        run["_close"]()
    return points


def plan(args) -> list[tuple[int, list[int]]]:
    """(size, batches) pairs: every size at batch 1, every batch at the smallest size."""
    pairs = {s: [1] for s in args.sizes}
    pairs[min(args.sizes)] = sorted(set([1] + args.batches))
    return sorted(pairs.items())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=None, help="comma list (default reduced_student,stfpm,feature_imitation; quick reduced_student)")
    ap.add_argument("--sizes", default="256,384,512", help="square input sides (default 256,384,512)")
    ap.add_argument("--batches", default=None, help="batch sizes at the smallest size (default 1,2,4,8; quick 1,2,4)")
    ap.add_argument("--runs", type=int, default=None, help="timed calls per point (default 20, quick 5)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up calls per point (default 3, quick 1)")
    ap.add_argument("--threads", type=int, default=None, help="torch and ONNX Runtime threads (default: all cores)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    ap.add_argument("--name", default="cost")
    args = ap.parse_args(argv)
    claim_result_or_exit(args.name, args.out)  # before the work: a user's file at the name is kept
    args.models = (args.models or ("reduced_student" if args.quick else "reduced_student,stfpm,feature_imitation")).split(",")
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.batches = [int(b) for b in (args.batches or ("1,2,4" if args.quick else "1,2,4,8")).split(",")]
    args.runs = args.runs or (5 if args.quick else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    points = []
    with tempfile.TemporaryDirectory(prefix="inspector-cost-") as tmp:
        for name in args.models:
            for size, batches in plan(args):
                points += bench_size(name.strip(), size, batches, args, Path(tmp))
    settings = {"models": args.models, "sizes": args.sizes, "batches": args.batches, "runs": args.runs,
                "warmup": args.warmup, "threads": args.threads, "quick": args.quick,
                "memory": "peak RSS growth while the point runs (sampled every 2 ms)",
                "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
    path = write_result(args.name, {"settings": settings, "points": points}, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
