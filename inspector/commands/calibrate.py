"""`inspector calibrate MODEL --data DIR --out calibration/NAME.yaml`: thresholds from the deployed backend."""

from __future__ import annotations

import argparse
from pathlib import Path

from inspector.commands.argtypes import default_of, float_range, int_range, model_file, out_path


# What calibrate takes instead of a training run: the threshold is bound to the file the line runs.
DEPLOYED_ONLY = "; calibrate the file the line runs: export the run first (inspector export RUN --out export/NAME)"


def register(sub: argparse._SubParsersAction) -> None:
    from inspector.evaluation.calibrate import SPLITS, calibrate

    def default(name):
        return default_of(calibrate, name)


    p = sub.add_parser(
        "calibrate", help="choose thresholds on good parts with the deployed backend",
        description="Score good images with the model file and backend that run in production (FP16/INT8 graphs "
                    "and TensorRT engines shift scores), choose the image threshold at a target false-alarm rate "
                    "(or, with --use-defects, the F1-optimal one) and the anomaly-map threshold for defect "
                    "regions, and write a calibration file bound to the model file's sha256. Good images: "
                    "--good-dir, else the calibration images the model's training kept out of every fit, else "
                    "its validation images (a warning says why they run low), else test/good.")
    # a training run or its checkpoint was scored by torch, bound to no deployable file, then failed on the
    # folder's sha256 ("Is a directory") or calibrated test/good ignoring the run's calibration split
    p.add_argument("model", type=model_file(".onnx", ".plan", ".engine", hint=DEPLOYED_ONLY),
                   help="the deployed model: an exported .onnx (any precision) or a TensorRT .plan")
    p.add_argument("--data", help="dataset root (MVTec / BTAD layout, or a folder of good images)")
    p.add_argument("--good-dir", help="a folder of good images to calibrate on (instead of the dataset's)")
    p.add_argument("--split", default=default("split"), choices=SPLITS,
                   help="which good images of --data: the calibration images kept out of training "
                        "(calibration), the model's validation images (val), test/good (test), or the first of "
                        "those recorded and found (auto, default)")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt"],
                   help="runtime (default: by file type: .onnx → onnxruntime, .plan → tensorrt)")
    p.add_argument("--false-alarm-rate", type=float_range(0, 1, lo_open=True, hi_open=True), default=default("false_alarm_rate"),
                   help="target share of good parts flagged NG (default %(default)s); with n good "
                        "images the finest measurable rate is about 1/n")
    p.add_argument("--pixel-false-alarm-rate", type=float_range(0, 1, lo_open=True, hi_open=True), default=default("pixel_false_alarm_rate"),
                   help="target share of good-image map pixels above the region threshold (default %(default)s)")
    p.add_argument("--use-defects", action="store_true",
                   help="also score test/<defect> images of --data and choose F1-optimal thresholds")
    p.add_argument("--uncertain-margin", type=float_range(0, 1, lo_open=True, hi_open=True), metavar="FRACTION",
                   help="mark scores within ±FRACTION of the image threshold as 'uncertain' (e.g. 0.1)")
    p.add_argument("--out", type=out_path(), help="calibration file to write, or an existing folder to write <model name>.yaml in "
                                 "(default: calibration/<model name>.yaml)")
    p.add_argument("--batch-size", type=int_range(1, 4096), default=default("batch_size"),
                   help="images per inference call, and the largest batch the threshold is checked to hold at: "
                        "the good images nearest the threshold are scored again at batch sizes up to it, as "
                        "scores differ by 1e-7 to 3e-6 between batch sizes; give the daemon's batching.max_batch "
                        "(default %(default)s)")
    p.add_argument("--exclude-outliers", action="store_true", default=default("exclude_outliers"),
                   help="leave good images that score far above the rest (a defective part among the good ones?; "
                        "with --data, also above all its test/good images) out of the thresholds (default: off: they are kept and named in a warning with the "
                        "threshold with and without them)")
    p.add_argument("--allow-few-good", action="store_true", default=default("allow_few_good"),
                   help="calibrate on fewer than 4 good images, whose threshold says nothing about its "
                        "false-alarm rate (default: off: refused)")
    p.add_argument("--threads", type=int_range(1, 1024), help="ONNX Runtime intra-op threads (default: all cores; refused "
                                               "for a TensorRT engine, which does not read it)")
    p.set_defaults(func=run)


def default_out(model: str | Path) -> Path:
    """``export/rs-brick.fp16.onnx`` → ``calibration/rs-brick.fp16.yaml`` (one file per deployed model file)."""
    from inspector.artifacts.thresholds import calibration_name

    return Path("calibration") / calibration_name(model)


def run(args: argparse.Namespace) -> int:
    from inspector.artifacts.thresholds import is_calibration
    from inspector.commands.backend_flags import backend_options
    from inspector.errors import ConfigError
    from inspector.evaluation.calibrate import calibrate
    from inspector.outputs import claim_file

    backend_options(args, args.model, args.backend)  # --threads on a TensorRT engine: refused, not ignored
    if args.data is None and args.good_dir is None:
        raise ConfigError("calibrate: give --data DIR (a dataset) or --good-dir DIR (a folder of good images)")
    out = Path(args.out) if args.out else default_out(args.model)
    if out.is_dir():  # a folder: the default file name inside it
        out = out / default_out(args.model).name
    # before any work: an earlier calibration is replaced (said), anything else refused (outputs.claim_file)
    replaced = claim_file(out, is_calibration, ConfigError, command="calibrate", option="--out",
                          noun="calibration file")
    result = calibrate(args.model, args.data, args.backend, args.false_alarm_rate, out,
                       good_dir=args.good_dir, split=args.split, use_defects=args.use_defects,
                       pixel_false_alarm_rate=args.pixel_false_alarm_rate, uncertain_margin=args.uncertain_margin,
                       batch_size=args.batch_size, threads=args.threads, exclude_outliers=args.exclude_outliers,
                       allow_few_good=args.allow_few_good)
    for line in result.summary_lines():
        print(line)
    for warning in result.warnings:
        print(f"warning: {warning}")
    print(f"wrote {result.path}" + (" (replaced the earlier calibration)" if replaced else ""))
    return 0
