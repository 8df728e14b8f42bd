"""`inspector export RUN --out export/NAME`: FP32 + FP16 ONNX graphs and their sidecar JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_DIR = Path("export")


def register(sub: argparse._SubParsersAction) -> None:
    from inspector.exporting.export import DEFAULT_OPSET

    p = sub.add_parser(
        "export", help="export a run to ONNX (FP32 + FP16) with a sidecar",
        description="Export a trained run to NAME.onnx (FP32), NAME.fp16.onnx (strongly typed FP16: "
                    "convolutions in float16, normalisation/distances/smoothing/score in float32) and "
                    "NAME.json (the sidecar: input spec, resize policy, sha256 of each graph, opset, "
                    "teacher identity, training data). An FP16 failure is an error, never a silent FP32 copy.")
    p.add_argument("run", help="training run folder (or its best.pt checkpoint)")
    p.add_argument("--out", help="output base path without extension (default: export/<run folder name>)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--model-version", help="version string for the sidecar (default: checkpoint sha256 prefix)")
    p.set_defaults(func=run)


def default_out(run: str | Path) -> Path:
    run = Path(run)
    name = run.name if run.is_dir() else run.parent.name
    return DEFAULT_DIR / (name or "model")


def run(args: argparse.Namespace) -> int:
    from inspector.exporting import export_run

    out = Path(args.out) if args.out is not None else default_out(args.run)
    result = export_run(args.run, out, opset=args.opset, version=args.model_version)
    sidecar = result["metadata"]
    for precision, entry in sidecar["graphs"].items():
        extra = (f", {entry['conv_float16']} FP16 / {entry['conv_float32']} FP32 convolutions"
                 if precision == "fp16" else "")
        print(f"{precision:7s} {result[precision]}  ({entry['bytes'] / 1e6:.1f} MB, {entry['nodes']} nodes, "
              f"sha256 {entry['sha256'][:12]}{extra})")
    inp = sidecar["input"]
    print(f"sidecar {result['sidecar']}  (input uint8 [N, {inp['height']}, {inp['width']}, 3] RGB, "
          f"resize '{inp['resize']}', opset {sidecar['opset']})")
    return 0
