"""`inspector quantize FP32.onnx --calibration DIR`: an INT8 Q/DQ graph with ONNX Runtime (CPU)."""

from __future__ import annotations

import argparse

from inspector.commands.argtypes import default_of, int_range, model_file, out_file


def register(sub: argparse._SubParsersAction) -> None:
    from inspector.deploy.quantize import quantize_model

    def default(name):
        return default_of(quantize_model, name)

    p = sub.add_parser(
        "quantize", help="make an INT8 Q/DQ ONNX from calibration images",
        description="Quantize the FP32 graph with ONNX Runtime's static quantizer (QDQ, symmetric int8 activations, "
                    "per-channel int8 weights in 7 bits by default) on good calibration images. Only the feature convolutions are "
                    "quantized; the image-reading and depthwise-separable ones, normalisation, distances, upsampling, "
                    "smoothing and scoring stay FP32. Checks the result against FP32 on --check-images images "
                    "with verify's int8 tolerances and refuses (nothing written) outside them. Writes "
                    "<model>.int8.onnx and its own card <model>.int8.json; the FP32 graph and its sidecar are only "
                    "read. With --data, measures the result against FP32 ('inspector verify') on the CPU.")
    p.add_argument("onnx", type=model_file(".onnx"), help="the FP32 graph, e.g. export/rs-brick.onnx")
    p.add_argument("--calibration", required=True,
                   help="folder of good images (or a dataset whose train/good is used), e.g. calibration/rs-brick/")
    p.add_argument("--out", type=out_file(), help="output (default and required name: <model>.int8.onnx beside the input)")
    p.add_argument("--max-images", type=int_range(1, 1_000_000), default=default("max_images"),
                   help="calibration images to use (default %(default)s)")
    p.add_argument("--batch-size", type=int_range(1, 4096), default=default("batch_size"),
                   help="calibration batch size (default %(default)s)")
    p.add_argument("--method", default=default("method"), choices=("minmax", "entropy", "percentile"),
                   help="activation range calibration (default minmax: nothing a defect produces is clipped "
                        "more than the good images' range)")
    p.add_argument("--weight-bits", type=int_range(7, 8), default=default("weight_bits"),
                   help="weight range: 7 (default) is correct on every x86 CPU; 8 halves the rounding step but "
                        "saturates in ONNX Runtime's int8 kernels on CPUs without VNNI: only for TensorRT or VNNI CPUs")
    p.add_argument("--exclude", nargs="*", default=(), metavar="NODE", help="extra node names to keep FP32")
    p.add_argument("--check-images", type=int_range(0, 4096), default=default("check_images"),
                   help="images the INT8 graph is checked on against FP32 before it is written, as verify "
                        "picks them from --data, else from --calibration (a dataset's test split, else its good "
                        "images); outside verify's int8 tolerance nothing is written, exit 2 (default %(default)s; "
                        "0: no check)")
    p.add_argument("--data", help="after quantizing, compare INT8 with FP32 on these images (precision gate)")
    p.add_argument("--threshold-file", help="calibration YAML for the gate's decision-flip check")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inspector.artifacts.model_card import derived_card_path
    from inspector.deploy.quantize import default_int8_path, quantize_model
    from inspector.errors import ConfigError

    if args.threshold_file and not args.data:  # it would be ignored, after minutes of calibration
        raise ConfigError("--threshold-file: only used by the precision gate; add --data IMAGES")
    if args.data:  # the gate's images, read as the gate will, before the minutes of calibration: not after
        from inspector.data.datasets import load_dataset

        load_dataset(args.data)
    # a card there that quantize accepts is an earlier INT8 graph's, which this one replaces: said (README "Outputs")
    earlier = derived_card_path(args.out or default_int8_path(args.onnx)).is_file()
    entry = quantize_model(args.onnx, args.calibration, args.out, max_images=args.max_images,
                           batch_size=args.batch_size, method=args.method, exclude=args.exclude,
                           weight_bits=args.weight_bits, check_images=args.check_images, check_data=args.data)
    q = entry["quantization"]
    out = args.out or str(default_int8_path(args.onnx))
    check = q.get("check") or {}
    checked = (f"; against FP32 on {check['images']} image(s): score {check['score_rel_diff']:.3f}, "
               f"map {check['map_rel_diff']:.3f} of the scale" if check.get("checked") else "; not checked against FP32")
    print(f"wrote {out} and {derived_card_path(out)}: {q['quantized_nodes']} convolution(s) quantized, "
          f"{len(q['kept_fp32_nodes'])} kept FP32, {q['calibration_images']} calibration image(s), "
          f"{q['calibration_method']}, {q['weight_bits']}-bit weights{checked}"
          + (" (replaced the earlier INT8 graph)" if earlier else ""))
    if not args.data:
        return 0
    from inspector.evaluation.verify import format_report, verify

    report = verify(out, args.onnx, args.data, threshold_file=args.threshold_file)
    print(format_report(report))
    return 0 if report["passed"] else 1
