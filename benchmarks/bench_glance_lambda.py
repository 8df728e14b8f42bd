"""Glance: the effect of λ (paper eq. 13, Tab. 4) measured on our data, from ONE trained model per dataset.

    python benchmarks/bench_glance_lambda.py --run-root runs/bench/quality [--datasets kolektorsdd,elpv/mono]

Reads the glance run folders that ``bench_quality.py`` left under
``RUN_ROOT/<dataset>/glance`` (the same weights as its quality rows), computes
the two heads' patch scores (s_IAD, s_DAD) of every test image once, and then
for λ in 0, 0.2, …, 1 the map λ·s_IAD + (1 − λ)·s_DAD → interpolation →
smoothing → score exactly as the model does, reporting image and pixel AUROC
(``bench_quality.metrics_for``: likely_defect left out). λ = 0 is the DAD head
alone, λ = 1 the IAD head alone, 0.8 the paper's choice and the default.
The paper reports PRO on MVTec AD (0.8 best on average, single heads worse).
``--strides 16,32``: the same weights rebuilt with each grid stride (the speed/accuracy
setting), evaluated at the model's λ.

JSON to ``benchmarks/results/glance-lambda.json`` (``--out`` folder, ``--name`` file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import claim_result_or_exit, write_result  # noqa: E402
from bench_quality import REAL, SHARED, load_test, metrics_for  # noqa: E402

LAMBDAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def head_scores(model, images: np.ndarray, batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """s_IAD and s_DAD on the model's grid for every image: two (N, 1, gh, gw) FP32."""
    iad, dad = [], []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            a, b = model.patch_scores(torch.from_numpy(images[i:i + batch_size]))
            iad.append(a)
            dad.append(b)
    return torch.cat(iad), torch.cat(dad)


def sweep(model, test: dict, lambdas=LAMBDAS) -> list[dict]:
    from inspector.models.glance.grid import scores_to_map

    iad, dad = head_scores(model, test["images"])
    size = test["images"].shape[1:3]
    c = model.config
    rows = []
    for lam in lambdas:
        combined = lam * iad + (1.0 - lam) * dad
        scores, maps = [], []
        with torch.inference_mode():
            for i in range(0, len(combined), 32):
                s, m = model.finish(scores_to_map(combined[i:i + 32], tuple(size), c.patch_size, c.grid_stride))
                scores.append(s.numpy())
                maps.append(m[:, 0].numpy())
        rows.append({"lambda": lam, **metrics_for(np.concatenate(scores), np.concatenate(maps), test)})
    return rows


def with_stride(model, stride: int):
    """The same trained weights on another patch grid (the indices are config, not weights)."""
    from dataclasses import replace

    from inspector.models.registry import build_model

    other = build_model(replace(model.config, grid_stride=stride, teacher_weights="random"))
    other.load_state_dict(model.state_dict())
    return other.eval()


def main(argv: list[str] | None = None) -> Path:
    from inspector.training.checkpoint import load_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-root", type=Path, required=True, help="bench_quality.py's --run-root")
    ap.add_argument("--datasets", default=",".join(REAL))
    ap.add_argument("--data-root", type=Path, default=SHARED)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--name", default="glance-lambda")
    ap.add_argument("--strides", default="", help="comma list of grid strides to compare at the model's λ")
    args = ap.parse_args(argv)
    claim_result_or_exit(args.name, args.out)  # before the work: a user's file at the name is kept
    results = []
    for name in args.datasets.split(","):
        run = args.run_root / name.replace("/", "_") / "glance"
        model, config, _ = load_model(run)
        test = load_test(args.data_root / name, tuple(config.model.image_size), config.data.resize)
        rows = sweep(model, test)
        strides = []
        for s in [int(v) for v in args.strides.split(",") if v]:
            row = sweep(with_stride(model, s), test, (config.model.score_lambda,))[0]
            strides.append({"grid_stride": s, **row})
            print(f"{name:12} stride {s} img {row['image_auroc']:.3f} px {row['pixel_auroc'] or 0:.3f}", flush=True)
        results.append({"dataset": name, "run": str(run), "grid_stride": config.model.grid_stride, "rows": rows,
                        "strides": strides})
        for r in rows:
            print(f"{name:12} λ={r['lambda']:.1f} img {r['image_auroc']:.3f} px {r['pixel_auroc'] or 0:.3f}", flush=True)
    path = write_result(args.name, {"lambdas": list(LAMBDAS), "datasets": results}, args.out)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
