"""Equal-budget CPU training + evaluation of several models on one dataset.

    python benchmarks/bench_training.py --data ../shared/data/kolektorsdd \
        --models stfpm,reduced_student --budget 300 --size 448x192 --name kolektor

For each model: train (offline preset) for the same wall-clock budget, evaluate
on the test split (image/pixel AUROC, AUPRO), and time torch-eager inference
per image (batch 1, median of repeated runs). JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import claim_result_or_exit, parse_size, percentiles, time_calls, write_result  # noqa: E402


def bench_model(name: str, args, run_root: Path) -> dict:
    from inspector.evaluation.evaluate import evaluate_dataset
    from inspector.training.checkpoint import load_model
    from inspector.training.config import load_run_config
    from inspector.training.loop import train

    config = load_run_config(base={
        "model": {"name": name, "preset": "offline", "image_size": parse_size(args.size)},
        "data": {"path": args.data, "resize": args.resize},
        "train": {"epochs": args.max_epochs, "time_budget_s": args.budget, "seed": args.seed},
    })
    run_dir = run_root / name
    t0 = time.monotonic()
    summary = train(config, run_dir)
    train_s = time.monotonic() - t0
    model, config, _ = load_model(run_dir)

    def scorer(batch):
        with torch.inference_mode():
            s, m = model(torch.from_numpy(batch))
        return s.numpy(), m.numpy()

    metrics = evaluate_dataset(scorer, args.data, config.model.image_size, config.data.resize,
                               run_dir / "eval", plots=False)
    h, w = config.model.image_size
    one = torch.randint(0, 255, (1, h, w, 3), dtype=torch.uint8)
    with torch.inference_mode():
        latency = percentiles(time_calls(lambda: model(one), warmup=3, runs=args.runs))
    return {
        "model": name, "preset": "offline", "image_size": [h, w],
        "train": {"budget_s": args.budget, "seconds": round(train_s, 1), "phases": summary["phases"]},
        "metrics": {k: metrics[k] for k in ("image_auroc", "pixel_auroc", "aupro", "f1_max")},
        "per_defect_type": metrics["per_defect_type"],
        "torch_eager_batch1_ms": latency,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.trainable()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--models", default="stfpm,reduced_student")
    ap.add_argument("--budget", type=float, default=300.0, help="training seconds per model")
    ap.add_argument("--max-epochs", type=int, default=1000)
    ap.add_argument("--size", default="256x256", help="HxW model input")
    ap.add_argument("--resize", default="square")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=30, help="timed inference runs")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--name", default="training")
    ap.add_argument("--run-root", default="runs/bench")
    args = ap.parse_args()
    claim_result_or_exit(args.name, None)  # before the work: a user's file at the name is kept
    if args.threads:
        torch.set_num_threads(args.threads)
    results = [bench_model(m.strip(), args, Path(args.run_root) / args.name) for m in args.models.split(",")]
    if len(results) == 2:
        a, b = results
        ratio = a["torch_eager_batch1_ms"]["p50"] / b["torch_eager_batch1_ms"]["p50"]
        speed = {"first": a["model"], "second": b["model"], "latency_ratio_first_over_second": round(ratio, 3)}
    else:
        speed = {}
    path = write_result(args.name, {"data": args.data, "threads": torch.get_num_threads(),
                                    "results": results, "comparison": speed})
    for r in results:
        m = r["metrics"]
        print(f"{r['model']:16} img AUROC {m['image_auroc']:.3f} px AUROC {m['pixel_auroc'] or 0:.3f} "
              f"AUPRO {m['aupro'] or 0:.3f} eager p50 {r['torch_eager_batch1_ms']['p50']:.1f} ms "
              f"({r['train']['seconds']} s training)")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
