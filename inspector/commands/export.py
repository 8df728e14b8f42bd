"""`inspector export RUN --out export/NAME`: FP32 + FP16 ONNX graphs and their sidecar JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from inspector.commands.argtypes import identifier, int_range, out_path
from inspector.deploy.opsets import DEFAULT_OPSET, MIN_OPSET, newest_opset

DEFAULT_DIR = Path("export")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export a run to ONNX (FP32 + FP16) with a sidecar",
        description="Export a trained run to NAME.onnx (FP32), NAME.fp16.onnx (strongly typed FP16: "
                    "convolutions in float16, normalisation/distances/smoothing/score in float32) and "
                    "NAME.json (the sidecar: input spec, resize policy, sha256 of each graph, opset, "
                    "teacher identity, training data). An FP16 failure is an error, never a silent FP32 copy.")
    p.add_argument("run", help="training run folder (or its best.pt checkpoint)")
    p.add_argument("--out", type=out_path(), help="output base path without extension, or an existing folder (or one ending in '/') "
                                 "to write <run folder name>.* into (default: export/<run folder name>)")
    p.add_argument("--opset", type=int_range(MIN_OPSET, newest_opset), default=DEFAULT_OPSET,
                   help=f"ONNX opset, {MIN_OPSET} to the installed onnx's newest (default {DEFAULT_OPSET}, "
                        "recorded in the sidecar)")
    p.add_argument("--model-version", type=identifier("model version"),
                   help="version string for the sidecar, carried by every event: 1-64 letters, digits, '.', '_', "
                        "'+' or '-' (default: checkpoint sha256 prefix)")
    p.set_defaults(func=run)


def default_out(run: str | Path, folder: str | Path = DEFAULT_DIR) -> Path:
    """``folder/<run folder name>``: the base path (no extension) of the exported files."""
    run = Path(run)
    name = run.name if run.is_dir() else run.parent.name
    return Path(folder) / (name or "model")


def out_base(run: str | Path, out: str | None) -> Path:
    """``--out`` as a base path; an existing folder (or a name ending in '/') receives ``<run name>.*``."""
    if out is None:
        return default_out(run)
    if out and (Path(out).is_dir() or out.endswith(("/", "\\"))):  # '' is refused by the exporter
        return default_out(run, out)
    return Path(out)


def run(args: argparse.Namespace) -> int:
    from inspector.deploy import export_run
    from inspector.deploy.export import graph_paths
    out = out_base(args.run, args.out)
    _refuse_unenrolled(args.run)
    # a sidecar there that export_run accepts is an earlier export's, which this one replaces: said, as every
    # command that replaces its own output says (README "Outputs")
    earlier = graph_paths(out)["sidecar"].is_file()
    result = export_run(args.run, out, opset=args.opset, version=args.model_version)
    sidecar = result["metadata"]
    for precision, entry in sidecar["graphs"].items():
        extra = (f", {entry['conv_float16']} FP16 / {entry['conv_float32']} FP32 convolutions"
                 if precision == "fp16" else "")
        print(f"{precision:7s} {result[precision]}  ({entry['bytes'] / 1e6:.1f} MB, {entry['nodes']} nodes, "
              f"sha256 {entry['sha256'][:12]}{extra})")
    inp = sidecar["input"]
    print(f"sidecar {result['sidecar']}  (input uint8 [N, {inp['height']}, {inp['width']}, 3] RGB, "
          f"resize '{inp['resize']}', downscale '{inp.get('downscale', 'area')}', opset {sidecar['opset']})"
          + (" (replaced the earlier export)" if earlier else ""))
    return 0


def _refuse_unenrolled(run: str) -> None:
    """A meta-comparer has no reference bank until `inspector enroll` gives it one: exporting it bare is a mistake."""
    from inspector.errors import ConfigError
    from inspector.artifacts.checkpoint import read_checkpoint

    name = ((read_checkpoint(run).get("config") or {}).get("model") or {}).get("name")
    if name == "meta_comparer":
        raise ConfigError(f"{run}: a meta_comparer needs normal reference images of the product: "
                          f"inspector enroll --model {run} --references 'good/*.png' --out export/NAME")
