"""Training speed per device: seconds per epoch and epochs/s on CPU (FP32, and bf16 autocast where the CPU has
hardware bf16) and, where torch sees one, on CUDA.

    python benchmarks/bench_train_device.py --data ../shared/data/kolektorsdd --size 448x192 --epochs 4

Each (model, device, precision) trains the offline preset for exactly ``--epochs``
epochs (no early stop) into its own run folder. The per-epoch time is the median
of the epochs after the first (the first also decodes nothing but caches the
frozen teacher's targets and warms up kernels). JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import claim_result_or_exit, parse_size, write_result  # noqa: E402


def bench(model: str, device: str, precision: str, args) -> dict:
    from inspector.training.config import load_run_config
    from inspector.training.loop import train

    config = load_run_config(base={
        "model": {"name": model, "image_size": parse_size(args.size)},
        "data": {"path": args.data},
        "train": {"epochs": args.epochs, "device": device, "precision": precision, "seed": 0},
    })
    run_dir = Path(args.run_root) / f"{model}-{device}-{precision}"
    summary = train(config, run_dir)
    history = json.loads((run_dir / "history.json").read_text())
    per_epoch, first = [], []
    for phase in summary["phases"]:  # "seconds" restarts with each phase (AST trains two)
        ends = [h["seconds"] for h in history if h["phase"] == phase["name"]]
        first.append(ends[0])
        per_epoch += [b - a for a, b in zip(ends, ends[1:])] or ends
    seconds = statistics.median(per_epoch)
    return {"model": model, "device": summary["device"], "epochs": args.epochs,
            "seconds_per_epoch": round(seconds, 3), "epochs_per_s": round(1.0 / seconds, 4),
            "first_epoch_s": [round(f, 2) for f in first], "final_val_loss": history[-1]["val_loss"],
            "n_train": summary["data"]["n_train"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--models", default="reduced_student")
    ap.add_argument("--size", default="256x256", help="HxW model input")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--precisions", default="auto,fp32", help="CUDA precisions to time")
    ap.add_argument("--run-root", default="runs/bench/train_device")
    args = ap.parse_args()
    claim_result_or_exit("train_device")  # before the work: a user's file at the name is kept
    from inspector.training.device import cpu_has_native_bf16

    cpu_precisions = ["fp32", "bf16"] if cpu_has_native_bf16() else ["fp32"]
    results = []
    for model in args.models.split(","):
        results += [bench(model, "cpu", p, args) for p in cpu_precisions]
        if torch.cuda.is_available():
            results += [bench(model, "cuda", p, args) for p in args.precisions.split(",")]
    for r in results:
        print(f"{r['model']:16} {r['device']['device']:5} {r['device']['precision']:5} "
              f"{r['seconds_per_epoch']:8.2f} s/epoch  {r['epochs_per_s']:.3f} epochs/s")
    write_result("train_device", {"settings": vars(args), "cuda": torch.cuda.is_available(),
                                  "cpu_native_bf16": cpu_has_native_bf16(), "results": results})


if __name__ == "__main__":
    main()
