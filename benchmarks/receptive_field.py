"""The theoretical receptive field of a single-teacher model's teacher and student at every tap.

    python benchmarks/receptive_field.py [--model reduced_student] [--set model.student_depth=2] [--size 512]

Builds the offline model (untrained: the support of a gradient does not depend on the
weights' values) at a ``--size``² input and, for each tap, back-propagates from the centre
position of that tap's output: the receptive field is the height and width in input pixels
of the region whose gradient is non-zero. A student whose field is smaller than its
teacher's at a level must predict features from less context than they were computed from.
(The effective receptive field, where most of the weight lies, is smaller than this bound.)
JSON to ``benchmarks/results/<--name>.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import claim_result_or_exit, write_result  # noqa: E402


def field(net: torch.nn.Module, index: int, x: torch.Tensor) -> list[int]:
    """[height, width] in input pixels of output ``index``'s centre position's gradient support."""
    x = x.clone().requires_grad_(True)
    out = net(x)[index]
    h, w = out.shape[-2:]
    out[0, :, h // 2, w // 2].sum().backward()
    support = x.grad[0].abs().sum(0) > 0
    rows, cols = support.any(1).nonzero(), support.any(0).nonzero()
    return [int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)]


def main(argv: list[str] | None = None) -> Path:
    from inspector.models.registry import build_model
    from inspector.training.config import load_run_config

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="reduced_student")
    ap.add_argument("--set", action="append", default=[], help="config override, e.g. model.student_depth=2")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--name", default="receptive-field")
    args = ap.parse_args(argv)
    claim_result_or_exit(args.name, args.out)  # before the work: a user's file at the name is kept
    config = load_run_config(base={"model": {"name": args.model, "image_size": [args.size, args.size],
                                             "teacher_weights": "random"}, "data": {"path": "random"}},
                             overrides=args.set)
    model = build_model(config.model).eval()
    x = torch.randn(1, 3, args.size, args.size)
    taps = [t.name for t in model.teacher.feature_info]
    rows = {tap: {"teacher": field(model.teacher, i, x), "student": field(model.student, i, x)}
            for i, tap in enumerate(taps)}
    for tap, row in rows.items():
        print(f"{tap:10} teacher {row['teacher']}  student {row['student']}")
    return write_result(args.name, {"model": args.model, "overrides": args.set, "size": args.size, "taps": rows},
                        args.out)


if __name__ == "__main__":
    main()
