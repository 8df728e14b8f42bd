"""feature_imitation: the image pyramid's gain over a single scale (Hu & Lai, Table III), on our data.

    python benchmarks/bench_feature_imitation.py --run runs/bench/quality/kolektorsdd/feature_imitation \
        --data ../shared/data/kolektorsdd [--run R2 --data D2 ...]

Sub-block groups are independent (one per scale, each trained only by its own loss
terms), so one trained pyramid model holds the single-scale models too: a scale
alone is the pyramid with the other scales' module weights set to 0, exactly the
"disassemble and combine without retraining" of the paper (§II-A-2). For each run,
the test split is scored once per module; every subset of scales (each scale alone,
and all together) is then combined, smoothed and reduced as the model's graph does,
and its image AUROC, pixel AUROC and AUPRO are reported. Uses ``bench_quality``'s
loading and metrics, so the figures are comparable with its rows.

JSON to ``benchmarks/results/feature_imitation_pyramid.json`` (``--out``, ``--name``).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import claim_result_or_exit, write_result  # noqa: E402
from bench_quality import load_test, metrics_for  # noqa: E402


@torch.inference_mode()
def module_maps(model, images: np.ndarray, batch_size: int = 8) -> dict[int, torch.Tensor]:
    """Every module's normalised map over ``images`` (uint8 (N, H, W, 3)), by module index."""
    parts: dict[int, list[torch.Tensor]] = {}
    for i in range(0, len(images), batch_size):
        for k, m in model.module_maps(torch.from_numpy(images[i:i + batch_size])).items():
            parts.setdefault(k, []).append(m)
    return {k: torch.cat(v) for k, v in parts.items()}


@torch.inference_mode()
def subset_scores(model, maps: dict[int, torch.Tensor], kept: list[int], size: tuple[int, int]):
    """(scores (N,), maps (N, H, W)) of the model with only modules ``kept``, at equal weight."""
    weights = torch.zeros(len(model.module_names))
    weights[kept] = 1.0
    model.set_module_weights(weights, searched=False)
    scores, out = [], []
    for i in range(0, len(next(iter(maps.values()))), 8):
        s, m = model.finish(model.combine({k: v[i:i + 8] for k, v in maps.items()}, size))
        scores.append(s.numpy())
        out.append(m[:, 0].numpy())
    return np.concatenate(scores), np.concatenate(out)


def bench_run(run: Path, data: Path) -> dict:
    from inspector.training.checkpoint import load_model

    model, config, _ = load_model(run)
    size, resize = tuple(config.model.image_size), config.data.resize
    test = load_test(data, size, resize)
    maps = module_maps(model.eval(), test["images"])
    scales, levels = list(config.model.scales), list(config.model.levels)
    rows = []
    subsets = [c for r in range(1, len(scales) + 1) for c in itertools.combinations(range(len(scales)), r)]
    for subset in subsets:
        kept = [g * len(levels) + j for g in subset for j in range(len(levels))]
        scores, amaps = subset_scores(model, maps, kept, size)
        m = metrics_for(scores, amaps, test)
        rows.append({"scales": [scales[g] for g in subset], "metrics": m})
        print(f"{data.name:14} scales {[scales[g] for g in subset]!s:18} img {m['image_auroc']:.3f} "
              f"px {m['pixel_auroc'] or 0:.3f} aupro {m['aupro'] or 0:.3f}", flush=True)
    return {"run": str(run), "data": str(data), "image_size": list(size), "levels": levels, "rows": rows}


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, action="append", required=True, help="a trained feature_imitation run")
    ap.add_argument("--data", type=Path, action="append", required=True, help="its dataset (same order as --run)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--name", default="feature_imitation_pyramid")
    args = ap.parse_args(argv)
    claim_result_or_exit(args.name, args.out)  # before the work: a user's file at the name is kept
    if len(args.run) != len(args.data):
        ap.error("give one --data per --run")
    results = [bench_run(r, d) for r, d in zip(args.run, args.data)]
    path = write_result(args.name, {"method": "one trained pyramid model, scale subsets by module weights",
                                    "results": results}, args.out)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
