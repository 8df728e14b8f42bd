"""Inference cost of an offline model per teacher (``model.teacher``): GFLOPs/image and ONNX Runtime batch 1.

    python benchmarks/cost_teachers.py [--model reduced_student] [--teachers efficientnet_lite0,...]
                                       [--sizes 256x256,416x160] [--runs 30] [--threads 1]

For each teacher and input size [H×W] the model (offline preset, untrained student:
cost does not depend on the weights) is exported to one FP32 ONNX graph and run on
ONNX Runtime at batch 1 with ``--threads`` threads. Recorded per point: GFLOPs per
image (``bench_cost.count_flops``), parameters, wall-clock p50 and the process CPU
seconds per call (``time.process_time``; on a shared machine the CPU time is the
figure to compare, the wall clock is not). JSON to ``benchmarks/results/`` (``--name``).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import claim_result_or_exit, percentiles, write_result  # noqa: E402
from bench_cost import count_flops  # noqa: E402

TEACHERS = "efficientnet_lite0,efficientnet_lite1,efficientnet_lite2"


def build(model: str, teacher: str, size: list[int]):
    from inspector.models.registry import build_model
    from inspector.training.config import load_run_config

    # ast names its frozen feature extractor ``backbone``; the other offline models ``teacher``
    section = {"name": model, "image_size": list(size), "backbone" if model == "ast" else "teacher": teacher}
    return build_model(load_run_config(base={"model": section, "data": {"path": "random"}}).model).eval()


def measure(model_name: str, teacher: str, size: list[int], runs: int, threads: int, workdir: Path) -> dict:
    import torch

    from inspector.backends import load_backend
    from inspector.deploy import export_model

    model = build(model_name, teacher, size)
    one = torch.randint(0, 256, (1, *size, 3), dtype=torch.uint8)
    gflops = count_flops(model, one) / 1e9
    graph = export_model(model, workdir / f"{teacher}-{size[0]}x{size[1]}", precisions=["fp32"])["fp32"]
    ort = load_backend(graph, "onnxruntime", threads=threads)
    batch = np.random.default_rng(0).integers(0, 256, (1, *size, 3), dtype=np.uint8)
    try:
        for _ in range(3):
            ort.infer(batch)
        wall, cpu0 = [], time.process_time()
        for _ in range(runs):
            t0 = time.perf_counter()
            ort.infer(batch)
            wall.append((time.perf_counter() - t0) * 1e3)
        cpu_ms = (time.process_time() - cpu0) * 1e3 / runs
    finally:
        ort.close()
    return {"model": model_name, "teacher": teacher, "image_size": list(size),
            "parameters": sum(p.numel() for p in model.parameters()),
            "teacher_parameters": sum(p.numel() for name, p in model.named_parameters() if name.startswith("teacher")),
            "gflops_per_image": round(gflops, 4), "ort_threads": threads, "runs": runs,
            "ort_wall_ms": percentiles(wall), "ort_cpu_ms_per_call": round(cpu_ms, 2)}


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="reduced_student", help="comma list of offline models")
    ap.add_argument("--teachers", default=TEACHERS)
    ap.add_argument("--sizes", default="256x256,416x160", help="comma list of HxW")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--name", default="cost-teachers")
    args = ap.parse_args(argv)
    claim_result_or_exit(args.name, args.out)  # before the work: a user's file at the name is kept
    import torch

    torch.set_num_threads(args.threads)
    sizes = [[int(v) for v in s.split("x")] for s in args.sizes.split(",")]
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        for model, teacher, size in itertools.product(args.model.split(","), args.teachers.split(","), sizes):
                p = measure(model, teacher, size, args.runs, args.threads, Path(tmp))
                points.append(p)
                print(f"{model} {teacher:18} {size[0]}x{size[1]}: {p['gflops_per_image']:.3f} GFLOPs, "
                      f"ORT p50 {p['ort_wall_ms']['p50']:.1f} ms, CPU {p['ort_cpu_ms_per_call']:.1f} ms/call",
                      flush=True)
    path = write_result(args.name, {"points": points}, args.out)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
