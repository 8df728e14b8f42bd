"""Why a trained AST ranks images worse than its pixels: per-image evidence, no retraining.

    python benchmarks/diagnose_ast.py --run-root RUN_ROOT [--datasets kolektorsdd,elpv/mono,...] [--out F.json]

Loads the AST run folders that ``bench_quality.py`` left under ``RUN_ROOT/<dataset>/ast``
(read-only), and on the test split (``likely_defect`` left out) reports for each part of
the model — the student distance (mean over channels of (z_t − z_s)²), the flow's
negative log-likelihood, and its 0.5·‖z‖² alone — each scored by the product's own
pipeline (bicubic upsampling, Gaussian smoothing, top-1 % mean):

* ``image_auroc`` raw, and after the quantile + per-position normalisation fitted on the
  run's own validation images (is the map position-dependent?);
* ``border``: the mean low-resolution map of good images in the outermost ring of
  feature cells against the interior, and the share of good images whose peak cell
  lies on that ring (a zero-padding / image-edge artefact shows as a ring > 1);
* ``top_good``: the good images that score highest: file, score rank, peak cell;
* ``defect_peaks``: share of defective images (with a mask) whose peak pixel lies
  in the (dilated by one feature cell) defect mask.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import claim_out_or_exit, write_out  # noqa: E402
from bench_quality import load_test  # noqa: E402
from rescore_parts import data_path, validation_images  # noqa: E402

LIKELY = "likely_defect"
SOURCES = {"student": {"score_source": "student"},
           "nll": {"score_source": "likelihood", "likelihood_map": "nll"},
           "z_norm": {"score_source": "likelihood", "likelihood_map": "z_norm"}}
NORMS = {"raw": {"map_normalization": "none", "position_normalization": "none"},
         "quantile+position": {"map_normalization": "quantile", "position_normalization": "shrunk"}}


def auc(scores, labels) -> float:
    from inspector.evaluation.metrics import auroc

    return round(float(auroc(np.asarray(scores), np.asarray(labels))), 4)


def variant(model, overrides: dict):
    from inspector.models.registry import build_model

    other = build_model(replace(model.config, **overrides, teacher_weights="random"))
    other.load_state_dict(model.state_dict(), strict=False)
    return other.eval()


@torch.no_grad()
def run(model, images: np.ndarray, batch: int = 8):
    """(scores (N,), full maps (N, H, W), low-res maps (N, h, w))."""
    scores, maps, lows = [], [], []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i:i + batch])
        parts = model.normalized_maps(x)
        s, m = model.finish_low_res(parts, x)
        low = sum(model.evidence(parts))
        scores.append(s.numpy())
        maps.append(m[:, 0].numpy())
        lows.append(low[:, 0].numpy())
    return np.concatenate(scores), np.concatenate(maps), np.concatenate(lows)


def border_stats(lows: np.ndarray) -> dict:
    ring = np.ones(lows.shape[1:], bool)
    ring[1:-1, 1:-1] = False
    peaks = lows.reshape(len(lows), -1).argmax(1)
    on_ring = ring.flatten()[peaks]
    mean_ring, mean_in = lows[:, ring].mean(), lows[:, ~ring].mean()
    return {"ring_over_interior": round(float(mean_ring / max(mean_in, 1e-12)), 3),
            "ring_cells_share": round(float(ring.mean()), 3),
            "peak_on_ring_share": round(float(on_ring.mean()), 3)}


def defect_peak_in_mask(maps: np.ndarray, masks: list, stride: int) -> float | None:
    hits, n = 0, 0
    for m, mask in zip(maps, masks):
        if mask is None or not mask.any():
            continue
        grown = F.max_pool2d(torch.from_numpy(mask.astype(np.float32))[None, None], 2 * stride + 1, 1, stride)
        r, c = np.unravel_index(m.argmax(), m.shape)
        hits += bool(grown[0, 0, r, c] > 0)
        n += 1
    return round(hits / n, 3) if n else None


def diagnose(run_dir: Path, data: Path, name: str) -> dict:
    from inspector.training.checkpoint import load_model

    model, config, _ = load_model(run_dir)
    test = load_test(data, tuple(config.model.image_size), config.data.resize)
    val = validation_images(config, data)
    keep = np.array([t != LIKELY for t in test["types"]])
    labels = test["labels"][keep]
    images = test["images"][keep]
    masks = [m for m, k in zip(test["masks"], keep) if k]
    files = [s for s, k in zip(test.get("files", [None] * len(keep)), keep) if k]
    stride = model.feature_tap.stride
    out = {"dataset": name, "image_size": list(config.model.image_size), "stride": stride, "parts": {}}
    for src, src_over in SOURCES.items():
        for norm, norm_over in NORMS.items():
            m = variant(model, {**src_over, **norm_over})
            with torch.inference_mode():
                m.calibrate_maps(torch.from_numpy(val))
            scores, maps, lows = run(m, images)
            good = lows[labels == 0]
            row = {"image_auroc": auc(scores, labels), "border_good": border_stats(good),
                   "border_defect": border_stats(lows[labels == 1]),
                   "defect_peak_in_mask": defect_peak_in_mask(maps[labels == 1],
                                                              [k for k, l in zip(masks, labels) if l], stride)}
            order = np.argsort(-scores)
            ranks = {int(i): r for r, i in enumerate(order)}
            good_idx = np.flatnonzero(labels == 0)
            top = sorted(good_idx, key=lambda i: ranks[int(i)])[:5]
            row["top_good"] = [{"index": int(i), "rank": ranks[int(i)], "of_defects_above": int(
                sum(labels[order[:ranks[int(i)]]] == 1)), "peak_cell": list(map(int, np.unravel_index(
                    lows[i].argmax(), lows[i].shape))), "file": files[i]} for i in top]
            out["parts"][f"{src}/{norm}"] = row
            print(f"{name:14} {src:8} {norm:18} img {row['image_auroc']:.3f} ring/int good "
                  f"{row['border_good']['ring_over_interior']:.2f} peak-on-ring good "
                  f"{row['border_good']['peak_on_ring_share']:.2f} (ring {row['border_good']['ring_cells_share']:.2f})"
                  f" defect-peak-in-mask {row['defect_peak_in_mask']}", flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-root", type=Path, required=True)
    ap.add_argument("--datasets", default="kolektorsdd,elpv/mono,elpv/poly,mvtec_leather_subset,synthetic-grass")
    ap.add_argument("--data-root", type=Path, default=HERE.parent.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    claim_out_or_exit(args.out, "diagnose-ast")  # before the work: a user's file at --out is kept
    torch.set_num_threads(1)
    rows = []
    for name in args.datasets.split(","):
        data = data_path(args.run_root, args.data_root, name)
        rows.append(diagnose(args.run_root / name.replace("/", "_") / "ast", data, name))
    if args.out:
        write_out(args.out, "diagnose-ast", rows)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
