"""`inspector build ONNX --out ENGINE`: a TensorRT engine (+ sidecar) from an FP16, Q/DQ INT8 or FP32 ONNX."""

from __future__ import annotations

import argparse
from pathlib import Path

from inspector.commands.argtypes import default_of, int_range, model_file, out_file


def register(sub: argparse._SubParsersAction) -> None:
    from inspector.deploy.engine_build import BuildOptions

    def default(name):
        return default_of(BuildOptions, name)

    p = sub.add_parser(
        "build", help="build a TensorRT engine from an ONNX graph",
        description="Build a strongly typed TensorRT engine (TensorRT 10.x or 11.x) from an exported ONNX graph: "
                    "the FP16 graph (model.fp16.onnx) or the Q/DQ INT8 graph (model.int8.onnx). Writes the engine, "
                    "its sidecar (.json) and build log; runs the precision gate when --reference-data is given. An "
                    "earlier build at the same names is replaced, and the line saying what was built says so, with "
                    "when the earlier engine was built; any other file there is refused before any work.")
    p.add_argument("onnx", type=model_file(".onnx"), help="exported graph, e.g. export/rs-brick.fp16.onnx (its sidecar must be beside it)")
    p.add_argument("--out", type=out_file(), help="engine file (default: engines/<model>.<precision>.plan)")
    p.add_argument("--max-batch", type=int_range(1, 65536), default=default("max_batch"),
                   help="largest batch of the optimisation profile (default %(default)s)")
    p.add_argument("--opt-batch", type=int_range(1, 65536), help="batch size to optimise for (default: --max-batch)")
    p.add_argument("--workspace-mb", type=int_range(1, 1 << 20), default=default("workspace_mb"),
                   help="builder workspace limit in MiB (default %(default)s)")
    p.add_argument("--opt-level", dest="optimization_level", type=int_range(0, 5), default=default("optimization_level"),
                   help="builder optimisation level 0..5 (default %(default)s)")
    p.add_argument("--timing-cache", type=out_file(), help="timing cache file (default: beside the engine, per TensorRT version "
                                          "and GPU); '' disables it")
    p.add_argument("--fp16", dest="fp16_flag", action="store_true",
                   help="TensorRT 10.x only: build an FP32 ONNX with the FP16 builder flag (fallback; refused on 11.x)")
    p.add_argument("--device", type=int_range(0, 63), default=default("device"), help="CUDA device index (default %(default)s)")
    p.add_argument("--reference-data", help="after building, run 'inspector verify' on these images")
    p.add_argument("--reference", type=model_file(".onnx"), help="FP32 ONNX for the gate (default: <model>.onnx beside the input)")
    p.add_argument("--threshold-file", help="calibration YAML whose image threshold the gate checks for flips")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inspector.deploy.engine_build import BuildOptions, build
    from inspector.artifacts.model_card import split_graph_name
    from inspector.errors import ConfigError

    for flag, value in (("--reference", args.reference), ("--threshold-file", args.threshold_file)):
        if value and not args.reference_data:  # it would be ignored, after the whole build
            raise ConfigError(f"{flag}: only used by the precision gate; add --reference-data IMAGES")
    options = BuildOptions(max_batch=args.max_batch, opt_batch=args.opt_batch, workspace_mb=args.workspace_mb,
                           optimization_level=args.optimization_level, timing_cache=args.timing_cache,
                           fp16_flag=args.fp16_flag, device=args.device)
    sidecar, replaced = build(args.onnx, args.out, options)
    engine = Path(args.out) if args.out else Path("engines") / sidecar["engine"]["file"]
    b = sidecar["build"]
    print(f"built {engine}: TensorRT {sidecar['tensorrt']['version']}, {sidecar['gpu']['name']} "
          f"(sm {sidecar['gpu']['compute_capability']}), {sidecar['precision']} ({sidecar['network']}), "
          f"batch 1..{sidecar['profile']['max_batch']}, {b['layers']} layers, {b['seconds']:.1f} s, "
          f"{sidecar['engine']['bytes'] / 2**20:.1f} MiB, {len(b['log']['warnings'])} warning(s)"
          + (f" (replaced {replaced})" if replaced else ""))  # README "Outputs": a replaced output is said
    if not args.reference_data:
        return 0
    from inspector.evaluation.verify import format_report, verify

    base, _ = split_graph_name(args.onnx)
    reference = args.reference or str(base.with_name(base.name + ".onnx"))
    report = verify(engine, reference, args.reference_data, threshold_file=args.threshold_file,
                    candidate_options={"device": args.device})
    print(format_report(report))
    return 0 if report["passed"] else 1
