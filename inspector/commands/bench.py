"""`inspector bench MODEL --batch 1,4,8 --duration 10 --json out.json`: throughput and latency per batch size."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from inspector.commands.argtypes import default_of, float_range, int_list, int_range, out_file, out_folder
from inspector.commands.backend_flags import DEFAULTS
from inspector.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    from inspector.evaluation.bench import MAX_BATCH, run_benchmark

    def default(name):
        return default_of(run_benchmark, name)

    p = sub.add_parser(
        "bench", help="benchmark a model or engine",
        description="Warm up, then run MODEL back to back for --duration seconds per batch size; report images/s "
                    "and latency p50/p90/p99 (plus H2D/compute/D2H for TensorRT). Any backend: .onnx → ONNX "
                    "Runtime, .plan → TensorRT.")
    p.add_argument("model", nargs="?", help="ONNX graph or TensorRT engine (not with --suite)")
    p.add_argument("--suite", action="store_true",
                   help="run the whole benchmark suite (benchmarks/run_all.py) of a source checkout")
    p.add_argument("--quick", action="store_true", help="with --suite: the quick (< 5 min) variant")
    p.add_argument("--out", type=out_folder(), help="with --suite: results folder (default benchmarks/results/)")
    p.add_argument("--batch", dest="batches", type=int_list(1, MAX_BATCH), default=",".join(map(str, default("batches"))),
                   help=f"comma-separated batch sizes, each 1…{MAX_BATCH} (default %(default)s)")
    p.add_argument("--duration", dest="duration_s", type=float_range(0, 86400, lo_open=True),
                   default=default("duration_s"), help="measured seconds per batch size (default %(default)g)")
    # 1000: warm-up only fills caches and lets clocks settle (TensorRT's own trtexec warms up for 200 ms);
    # 100,000 was accepted, ≈ 50 s a batch size on the tiny test model and hours on a real one, all unmeasured
    p.add_argument("--warmup", type=int_range(0, 1000), default=default("warmup"),
                   help="warm-up iterations per batch size, 0…1000 (default %(default)s)")
    p.add_argument("--json", type=out_file(), help="write the results as JSON here (e.g. benchmarks/results/trt.json)")
    p.add_argument("--data", help="benchmark on these images (tiled to the batch) instead of random frames")
    p.add_argument("--backend", default="auto", help="auto (by file type), onnxruntime or tensorrt")
    p.add_argument("--threads", type=int_range(1, 1024), help="ONNX Runtime intra-op threads (default: ONNX Runtime's choice)")
    p.add_argument("--cuda", default=DEFAULTS["cuda"], choices=("cuda-python", "pycuda"), help="TensorRT's CUDA API (default cuda-python)")
    p.add_argument("--cuda-graphs", action="store_true", help="TensorRT: replay a CUDA graph per batch size")
    p.add_argument("--device", type=int_range(0, 63), default=DEFAULTS["device"], help="TensorRT: CUDA device index (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.suite and args.model:  # the suite benchmarks its own models: MODEL was ignored, for minutes
        raise ConfigError(f"bench: give a MODEL ({args.model}) or --suite (the suite's own models), not both")
    if args.suite:
        return run_suite(args)
    if not args.model:
        raise ConfigError("bench: give a MODEL (.onnx or .plan) or --suite")
    for flag, value in (("--quick", args.quick), ("--out", args.out)):
        if value:
            raise ConfigError(f"{flag}: only used with --suite (for one MODEL: --duration, and --json to save)")
    from inspector.backends import backend_name
    from inspector.commands.backend_flags import backend_options
    from inspector.evaluation.bench import format_results, is_bench_results, parse_batches, run_benchmark
    from inspector.outputs import claim_file

    # before any work: earlier results are replaced (said), anything else refused (outputs.claim_file)
    replaced = args.json and claim_file(args.json, is_bench_results, ConfigError, command="bench", option="--json",
                                        noun="benchmark results file")
    name = backend_name(args.model, args.backend)
    options = backend_options(args, args.model, args.backend)  # a flag this backend does not read: refused
    report = run_benchmark(args.model, parse_batches(args.batches), args.duration_s, args.warmup, backend=name,
                           data=args.data, json_path=args.json, options=options)
    print(format_results(report))
    if args.json:
        print(f"wrote {report['json_path']}" + (" (replaced the earlier results)" if replaced else ""))
    return 0


def run_suite(args: argparse.Namespace) -> int:
    """The suite lives in the repository's benchmarks/ (not installed), so run it as a script."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "run_all.py"
    if not script.is_file():
        raise ConfigError(f"{script}: benchmark suite not found (it ships with a source checkout)")
    cmd = [sys.executable, str(script), *(["--quick"] if args.quick else []),
           *(["--out", args.out] if args.out else [])]
    return subprocess.call(cmd)
