"""Cost of the hard loss's threshold in one training step of the offline reduced student.

    python benchmarks/hard_loss_cost.py [--rounds 5] [--batch 16]

One process, one thread, the three variants interleaved round by round (so a change of
machine load falls on all alike): the threshold by ``torch.quantile`` (a sort; the code
before session 9), by ``kthvalue`` (``inspector.models.common.quantile_threshold``), and
the plain mean (no hard loss). Prints the p50 and min ms per step (forward, backward, Adam)
and writes ``benchmarks/results/hard-loss-cost.json``.
"""
import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
from _common import claim_result_or_exit, write_result  # noqa: E402
import inspector.models.base as base  # noqa: E402
import inspector.models.common as common  # noqa: E402
from inspector.models.registry import build_model  # noqa: E402
from inspector.training.config import load_run_config  # noqa: E402


def old_hard(teacher: torch.Tensor, student: torch.Tensor, quantile: float) -> torch.Tensor:
    """The hard loss as it was before session 9: the threshold by torch.quantile (a sort)."""
    err = (teacher.float() - student.float()).pow(2)
    flat = err.detach().flatten()
    return err[err >= torch.quantile(flat, quantile)].mean()


def main() -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=16, help="the offline recipe's batch size")
    args = p.parse_args()
    claim_result_or_exit("hard-loss-cost")  # before the work: a user's file at the name is kept
    torch.set_num_threads(1)
    cfg = load_run_config(base={"model": {"name": "reduced_student", "image_size": [256, 256]},
                                "data": {"path": "."}, "train": {}})
    model = build_model(cfg.model).train()
    x = (torch.rand(args.batch, 256, 256, 3) * 255).to(torch.uint8)
    targets = model.teacher_targets(x)
    opt = torch.optim.Adam(model.trainable(), 1e-3)
    quantile = model.config.hard_quantile
    configs = {False: model.config, True: dataclasses.replace(model.config, hard_quantile=0.0)}
    times: dict[str, list[float]] = {"torch.quantile": [], "kthvalue": [], "plain mean": []}
    try:
        for _ in range(args.rounds):
            for variant in times:
                base.hard_mse = old_hard if variant == "torch.quantile" else common.hard_mse
                # the same weights under the variant's (frozen) config: only the loss reads it
                model.config = configs[variant == "plain mean"]
                for i in range(3):  # the first step of each turn is not timed
                    t0 = time.perf_counter()
                    loss = model.loss_with_targets(x, targets)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    if i:
                        times[variant].append((time.perf_counter() - t0) * 1e3)
    finally:
        base.hard_mse = common.hard_mse
    steps = {k: {"p50_ms": round(sorted(v)[len(v) // 2], 1), "min_ms": round(min(v), 1)} for k, v in times.items()}
    for k, v in steps.items():
        print(f"{k}: {v['p50_ms']} ms per step (min {v['min_ms']})")
    return write_result("hard-loss-cost", {"settings": {"batch": args.batch, "size": [256, 256], "threads": 1,
                                                        "quantile": quantile, "rounds": args.rounds},
                                           "step_ms": steps})


if __name__ == "__main__":
    main()
