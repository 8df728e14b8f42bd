"""`inspector enroll --model MC.pt --references 'good/*.png' --out export/NAME`: a new surface, no training."""

from __future__ import annotations

import argparse

from inspector.commands.argtypes import identifier, out_path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "enroll", help="enrol 1-50 normal images of a new surface into a meta-comparer graph",
        description="Compute the patch features of K = 1…50 normal reference images once with a trained "
                    "meta-comparer and export one graph with that reference bank as constants: NAME.onnx "
                    "(FP32), NAME.fp16.onnx (FP16) and NAME.json (model card: K, the references' sha256). "
                    "Calibrate, build and run it like any other model.")
    p.add_argument("--model", required=True, help="meta_comparer checkpoint (best.pt) or its run folder")
    p.add_argument("--references", required=True, nargs="+", metavar="IMAGE",
                   help="normal images of the new surface: files or quoted globs ('good/*.png'), 1…50 in all")
    p.add_argument("--out", required=True, type=out_path(), help="output base path without extension, e.g. export/new-product")
    p.add_argument("--model-version", type=identifier("model version"),
                   help="version string for the model card, carried by every event: 1-64 letters, digits, '.', "
                        "'_', '+' or '-' (default: checkpoint sha256 prefix + K)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inspector.artifacts.checkpoint import read_checkpoint
    from inspector.deploy.enroll import check_comparer, enroll, reference_files
    from inspector.deploy.export import check_out_base
    from inspector.training.checkpoint import load_model

    reference_files(args.references)  # a wrong pattern or K > 50 fails before the model loads
    # and a name of the export's that holds a user's file (NAME.json: notes, a config) before the references are
    # enrolled: export_model refused it only after that work (README "Outputs"; export claims at once too)
    earlier = check_out_base(args.out)["sidecar"].is_file()  # accepted: an earlier enrolment's, replaced (said)
    check_comparer(read_checkpoint(args.model))
    model, config, payload = load_model(args.model)
    result = enroll(model, config, payload, args.references, args.out, version=args.model_version)
    info = result["enrollment"]
    print(f"enrolled K={info['k']} reference image(s) in {info['seconds']:.2f} s "
          f"(bank: {', '.join(str(n) for n in info['bank_patches'])} patches per scale)")
    for precision in ("fp32", "fp16"):
        entry = result["metadata"]["graphs"][precision]
        print(f"{precision:7s} {result[precision]}  ({entry['bytes'] / 1e6:.1f} MB, sha256 {entry['sha256'][:12]})")
    print(f"model card {result['sidecar']}" + (" (replaced the earlier enrolment)" if earlier else ""))
    return 0
