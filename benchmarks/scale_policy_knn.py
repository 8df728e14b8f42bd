"""The kNN reference on parts of many sizes: each image stretched to one input, or all at one pixel scale.

    python benchmarks/scale_policy_knn.py runs/tiles/kolektorsdd-tiles --out benchmarks/results/scale-policy-knn-tiles.json

A camera at a fixed distance sees every part at one pixel scale, while ``data.resize: square`` stretches
each image to the model's input, so parts of different sizes reach the teacher at different scales (up to
~2.5× apart on the varied tiles, and anisotropically). The teacher is fully convolutional, so the kNN
reference can instead take every image whole at ONE scale (the factor that brings the training images'
median pixel count to the input's): ``constant``. Same features, taps, coreset rule and seed as
:mod:`knn_reference`; one image at a time (sizes differ); image AUROC by the map's max, and the Spearman
correlation of good images' scores with their pixel count (how much the size alone moves the score).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import claim_out_or_exit, write_out  # noqa: E402
from knn_reference import KnnReference, KnnSettings, greedy_coreset  # noqa: E402

from inspector.evaluation.metrics import auroc  # noqa: E402


def load_rgb(paths: list[Path]) -> list[np.ndarray]:
    return [cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2RGB) for p in paths]


def policy_resizer(train: list[np.ndarray], pixels: int):
    """{policy: image → resized image}: ``stretch`` to the median aspect at ``pixels``, ``constant`` scale."""
    hw = np.array([im.shape[:2] for im in train], dtype=float)
    h = int(round(np.sqrt(pixels * np.median(hw[:, 0]) / np.median(hw[:, 1])) / 32) * 32)
    w = int(round(pixels / h / 32) * 32)
    scale = float(np.sqrt(pixels / np.median(hw[:, 0] * hw[:, 1])))

    def constant(im):
        return cv2.resize(im, (max(32, round(im.shape[1] * scale)), max(32, round(im.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    return {"stretch": lambda im: cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA),
            "constant": constant}, (h, w), scale


def run_policy(knn: KnnReference, resize, train, test, labels, sizes) -> dict:
    t0 = time.time()
    bank = torch.cat([knn.embed(resize(im)[None])[0].flatten(1).T for im in train])
    g = torch.Generator().manual_seed(knn.settings.seed)
    if len(bank) > knn.settings.max_pool:
        bank = bank[torch.randperm(len(bank), generator=g)[:knn.settings.max_pool]]
    proj = torch.randn(bank.shape[1], knn.settings.projection_dim, generator=g)
    core = bank[greedy_coreset(bank @ proj, max(1, round(len(bank) * knn.settings.coreset_fraction)))]
    scores = np.array([float(torch.cdist(knn.embed(resize(im)[None])[0].flatten(1).T, core).amin(dim=1).max())
                       for im in test])
    good = ~labels
    return {"image_auroc": round(float(auroc(scores, labels)), 4), "seconds": round(time.time() - t0, 1),
            "spearman_good_score_vs_pixels": round(float(spearmanr(scores[good], sizes[good])[0]), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="an MVTec-layout dataset (train/good, test/<kind>)")
    ap.add_argument("--pixels", type=int, default=384 * 160, help="input pixel budget (default 384×160)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/scale-policy-knn.json"))
    args = ap.parse_args()
    claim_out_or_exit(args.out, "scale-policy-knn")  # before the work: a user's file at --out is kept
    torch.set_num_threads(1)
    train = load_rgb(sorted((args.data / "train" / "good").iterdir()))
    paths = sorted((args.data / "test").glob("*/*"))
    test, labels = load_rgb(paths), np.array([p.parent.name != "good" for p in paths])
    sizes = np.array([im.shape[0] * im.shape[1] for im in test])
    resizers, stretch_hw, scale = policy_resizer(train, args.pixels)
    knn = KnnReference(KnnSettings())
    result = {"data": str(args.data), "pixels": args.pixels, "stretch_hw": list(stretch_hw), "scale": scale,
              **{name: run_policy(knn, fn, train, test, labels, sizes) for name, fn in resizers.items()}}
    write_out(args.out, "scale-policy-knn", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
