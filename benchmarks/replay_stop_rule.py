"""Where would a stopping rule have ended each recorded learning curve, and what did the curve score there?

    python benchmarks/replay_stop_rule.py benchmarks/results/gap-s25/learning-curve-*.json \
        [--settings 0.05:3,0.03:3,0.08:3,0.05:2,0.05:5] [--name NAME]

Each file is a ``learning_curve.py`` result with every epoch's history (validation and seen loss).
For each ``max_gap_growth:gap_patience`` setting the product's own :class:`StopRule` (early stopping,
all other settings at their defaults) is fed the recorded epochs in order; the row gives the epoch it
stops after (None: it runs through the curve), the epoch of the lowest validation loss by then (the
checkpoint training keeps), and the image AUROC of the last scored point at or before that epoch.
No training: the curves are the runs, so rules are compared on the very same weights.

JSON to ``benchmarks/results/replay-stop-rule[-NAME].json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import claim_result_or_exit, write_result  # noqa: E402


def replay(curve: dict, growth: float | None, patience: int) -> dict:
    """The stop epoch, kept epoch and its scored image AUROC for one curve under one setting."""
    from inspector.training.config import TrainConfig
    from inspector.training.stopping import StopRule

    rule = StopRule(TrainConfig(max_gap_growth=growth, gap_patience=patience))
    stop, kept, lowest = None, None, float("inf")
    for row in sorted(curve["history"], key=lambda r: r["epoch"]):
        rule.observe(row["epoch"], row["val_loss"], row.get("seen_loss"))
        if row["val_loss"] < lowest:
            kept, lowest = row["epoch"], row["val_loss"]
        if rule.reason_before(row["epoch"] + 1, 0.0) is not None:
            stop = row["epoch"]
            break
    scored = {p["epoch"]: p["image_auroc"] for p in curve["points"]}
    at = max((e for e in scored if e <= kept), default=None) if kept else None
    return {"stop_epoch": stop, "kept_epoch": kept, "scored_epoch": at,
            "image_auroc": scored.get(at), "last_image_auroc": scored[max(scored)] if scored else None}


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("curves", nargs="+", type=Path)
    p.add_argument("--settings", default="0.05:3,0.03:3,0.08:3,0.05:2,0.05:5",
                   help="comma-separated max_gap_growth:gap_patience pairs")
    p.add_argument("--name", default="")
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args(argv)
    name = "replay-stop-rule" + (f"-{args.name}" if args.name else "")
    claim_result_or_exit(name, args.out)  # before the work: a user's file at the name is kept
    settings = [(float(g), int(n)) for g, n in (s.split(":") for s in args.settings.split(","))]
    rows = []
    for path in args.curves:
        for curve in json.loads(path.read_text())["datasets"]:
            label = f"{curve['dataset']} {curve['model']} {' '.join(curve['overrides'])}".strip()
            for growth, patience in settings:
                row = {"curve": label, "max_gap_growth": growth, "gap_patience": patience,
                       **replay(curve, growth, patience)}
                rows.append(row)
                print(f"{label:45s} growth {growth:g} patience {patience}: stop {row['stop_epoch']} kept "
                      f"{row['kept_epoch']} image AUROC {row['image_auroc']} (last {row['last_image_auroc']})")
    return write_result(name, {"curves": [str(c) for c in args.curves], "rows": rows}, out_dir=Path(args.out))


if __name__ == "__main__":
    main()
