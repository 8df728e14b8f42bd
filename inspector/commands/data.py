"""`inspector data synth|info`: make a synthetic defect dataset, or describe a dataset folder."""

from __future__ import annotations

import argparse
import json

from inspector.commands.argtypes import default_of, int_range, out_folder


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="create or inspect datasets (e.g. 'data synth')",
                       description="Create a synthetic dataset or describe an existing one.")
    actions = p.add_subparsers(dest="data_command", metavar="<action>")

    from inspector.data.synth import BUILTIN_TEXTURES, synthesize

    def default(name):
        return default_of(synthesize, name)


    s = actions.add_parser("synth", help="write an MVTec-layout dataset from a texture photo with injected defects",
                           description="Write an MVTec-layout dataset: good crops of a real texture photo and "
                                       "test images with procedural defects and exact masks.")
    s.add_argument("--texture", default=default("texture"),
                   help=f"built-in photo ({', '.join(BUILTIN_TEXTURES)}) or a folder of good images "
                        "(default: %(default)s)")
    s.add_argument("--out", required=True, type=out_folder(), help="output folder (must be empty or absent unless --force)")
    s.add_argument("--size", type=int_range(16, 8192), default=default("size"),
                   help="image side in pixels (default: %(default)s)")
    s.add_argument("--train", dest="n_train", metavar="N", type=int_range(1, 1_000_000), default=default("n_train"),
                   help="good training images (default: %(default)s)")
    s.add_argument("--test-good", dest="n_test_good", metavar="N", type=int_range(0, 1_000_000), default=default("n_test_good"),
                   help="good test images (default: %(default)s)")
    s.add_argument("--test-defect", dest="n_test_defect", metavar="N", type=int_range(0, 1_000_000),
                   default=default("n_test_defect"),
                   help="defective test images, spread over the defect kinds (default: %(default)s)")
    s.add_argument("--defects", default=",".join(default("defects")),
                   help="comma-separated defect kinds (default: %(default)s)")
    s.add_argument("--seed", type=int_range(0, 2**32 - 1), default=default("seed"),
                   help="random seed; same seed, same bytes (default: %(default)s)")
    s.add_argument("--no-tint", action="store_true", help="keep built-in textures grey")
    s.add_argument("--force", dest="overwrite", action="store_true",
                   help="replace a data set that synth wrote in --out (only its own files, and the line says "
                        "so; any other non-empty folder is refused)")
    s.set_defaults(func=run_synth)

    i = actions.add_parser("info", help="print a dataset's layout and counts",
                           description="Detect a dataset's layout (MVTec AD, BTAD, folder) and print its counts.")
    i.add_argument("root", help="dataset folder")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")
    i.set_defaults(func=run_info)


def run_synth(args: argparse.Namespace) -> int:
    import time

    from inspector.data.synth import earlier_synth, synthesize

    start = time.perf_counter()
    replaced = earlier_synth(args.out) if args.overwrite else None  # refused by synthesize when not its own
    defects = tuple(k.strip() for k in args.defects.split(",") if k.strip())
    dataset = synthesize(args.out, texture=args.texture, size=args.size, n_train=args.n_train,
                         n_test_good=args.n_test_good, n_test_defect=args.n_test_defect, seed=args.seed,
                         defects=defects, tint=not args.no_tint, overwrite=args.overwrite)
    summary = dataset.summary()
    test = ", ".join(f"{k} {v}" for k, v in summary["test"].items())
    print(f"wrote {summary['root']} in {time.perf_counter() - start:.1f} s: "
          f"train {summary['n_train']}, test {summary['n_test']} ({test})"
          + (f" (replaced {replaced})" if replaced else ""))
    return 0


def run_info(args: argparse.Namespace) -> int:
    from inspector.data.datasets import load_dataset

    summary = load_dataset(args.root).summary()
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{summary['root']}  layout: {summary['layout']}")
    for split in ("train", "test"):
        counts = ", ".join(f"{k} {v}" for k, v in summary[split].items()) or "none"
        print(f"  {split:5} {summary['n_' + split]:5}  ({counts})")
    if summary["test_defect_without_mask"]:
        print(f"  {summary['test_defect_without_mask']} defect image(s) without a mask")
    return 0
