"""`inspector verify CANDIDATE --reference FP32.onnx --data DIR`: the precision gate."""

from __future__ import annotations

import argparse

from inspector.commands.argtypes import default_of, float_range, int_range, model_file, out_file, score_value
from inspector.commands.backend_flags import DEFAULTS


def register(sub: argparse._SubParsersAction) -> None:
    from inspector.evaluation.verify import verify

    p = sub.add_parser(
        "verify", help="precision gate: compare a candidate with the FP32 reference",
        description="Run the candidate (TensorRT engine, FP16 ONNX or Q/DQ INT8 ONNX) and the FP32 reference on "
                    "the same images. Fails (exit 1) on NaN/Inf, a decision flip at the threshold, or score/map "
                    "differences above the tolerances. Writes <candidate>.verify.json.")
    p.add_argument("candidate", type=model_file(".onnx", ".plan", ".engine"), help="engine (.plan) or ONNX graph to check")
    p.add_argument("--reference", required=True, type=model_file(".onnx"), help="the FP32 ONNX graph")
    p.add_argument("--data", required=True, help="dataset folder (its test split is used) or a folder of images")
    p.add_argument("--threshold-file", help="calibration YAML (its image_threshold is checked for flips)")
    p.add_argument("--threshold", type=score_value(), help="image threshold to check for flips (instead of a file)")
    p.add_argument("--score-tolerance", type=float_range(0, 1e6), help="max |Δscore| / max |score_ref| (default by precision: "
                                                         "fp16 0.02, int8 0.1)")
    p.add_argument("--map-tolerance", type=float_range(0, 1e6), help="p99 |Δmap| / max |map_ref| (default by precision: "
                                                       "fp16 0.05, int8 0.15)")
    p.add_argument("--batch", type=int_range(1, 4096), default=default_of(verify, "batch"),
                   help="batch size (default %(default)s, capped at the engine's max)")
    p.add_argument("--limit", type=int_range(1, 10**9), help="use at most this many images (spread over the set)")
    p.add_argument("--report", type=out_file(), help="report path (default: <candidate>.verify.json)")
    p.add_argument("--cuda", default=DEFAULTS["cuda"], choices=("cuda-python", "pycuda"),
                   help="CUDA API for a TensorRT candidate (default cuda-python)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inspector.commands.backend_flags import backend_options
    from inspector.artifacts.engine_card import verify_report_path
    from inspector.errors import ConfigError
    from inspector.evaluation.verify import format_report, is_verify_report, verify
    from inspector.outputs import claim_file

    # before any work: an earlier report is replaced (said), anything else refused (outputs.claim_file)
    replaced = claim_file(args.report or verify_report_path(args.candidate), is_verify_report, ConfigError,
                          command="verify", option="--report", noun="verify report")
    options = backend_options(args, args.candidate)  # --cuda on an ONNX candidate: refused, not ignored
    report = verify(args.candidate, args.reference, args.data, threshold=args.threshold,
                    threshold_file=args.threshold_file, score_tolerance=args.score_tolerance,
                    map_tolerance=args.map_tolerance, batch=args.batch, limit=args.limit,
                    report_path=args.report, candidate_options=options)
    print(format_report(report) + (" (replaced the earlier report)" if replaced else ""))
    return 0 if report["passed"] else 1
