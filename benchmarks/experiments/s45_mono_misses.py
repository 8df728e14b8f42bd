"""Which defects a trained student misses that the kNN reference finds, and whether a global-feature Gaussian
(Rippel et al., "Modeling the Distribution of Normal Data in Pre-Trained Deep Features for Anomaly Detection",
ICPR 2020: a Gaussian on each image's pooled teacher features, scored by Mahalanobis distance) added to the
student's score recovers them (Session 45, ELPV mono).

    python benchmarks/experiments/s45_mono_misses.py --data ../shared/data/elpv/mono --run RUN --out benchmarks/results/X.json

RUN is a bench_quality.py run folder of the student (``--run-root R`` keeps it at R/elpv_mono/reduced_student).
The Gaussian is fitted on 85 % of the training images; both scores are put on the scale of good images (median
0, 99th percentile 1): the Gaussian's from the other 15 %, the student's from test/good (optimistic for the sum,
which only makes a null result stronger).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent.parent))
from _common import claim_out_or_exit, write_out  # noqa: E402
from bench_quality import LIKELY, bench_knn, score_with_levels  # noqa: E402

from inspector.data.datasets import load_batch, load_dataset  # noqa: E402
from inspector.evaluation.metrics import auroc  # noqa: E402
from inspector.models.backbones import build_backbone  # noqa: E402
from inspector.models.common import ImageNormalize  # noqa: E402
from inspector.training.checkpoint import load_model  # noqa: E402

TAPS = ("blocks.2", "blocks.4", "blocks.6")
NAME = "s45_mono_misses"


@torch.no_grad()
def pooled_features(net, images: np.ndarray) -> np.ndarray:
    """(N, 2·ΣC) float64: each tap's per-channel mean and std over positions."""
    norm, out = ImageNormalize(), []
    for i in range(0, len(images), 16):
        feats = [f.float() for f in net(norm(torch.from_numpy(images[i:i + 16])))]
        out.append(torch.cat([f.mean((2, 3)) for f in feats] + [f.std((2, 3)) for f in feats], 1))
    return torch.cat(out).double().numpy()


def gaussian_scores(train: np.ndarray, test: np.ndarray, fit_share: float = 0.85) -> tuple[np.ndarray, np.ndarray]:
    """(Mahalanobis distances of the held-out training images, of ``test``): mean and covariance (shrunk 1 %
    towards its average variance) from a random ``fit_share`` of ``train``."""
    perm = np.random.default_rng(0).permutation(len(train))
    fit, held = train[perm[:int(fit_share * len(train))]], train[perm[int(fit_share * len(train)):]]
    mu = fit.mean(0)
    cov = np.cov(fit - mu, rowvar=False)
    precision = np.linalg.inv(cov + 0.01 * np.trace(cov) / len(cov) * np.eye(len(cov)))
    dist = lambda f: np.sqrt(np.einsum("ij,jk,ik->i", f - mu, precision, f - mu))  # noqa: E731
    return dist(held), dist(test)


def good_scale(scores: np.ndarray, good: np.ndarray) -> np.ndarray:
    """``scores`` with the good scores' median at 0 and their 99th percentile at 1."""
    return (scores - np.median(good)) / (np.quantile(good, 0.99) - np.median(good))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    claim_out_or_exit(args.out, NAME)  # before the minutes of work: a user's file at --out is kept
    torch.set_num_threads(1)
    model, config, _ = load_model(args.run)
    size, resize = tuple(config.model.image_size), config.data.resize
    tests: dict = {}
    bench_knn(args.data, size, resize, tests, False)
    test = tests[(size, resize)]
    student, _, _ = score_with_levels(model, test["images"])
    knn, labels = test["knn_scores"], test["labels"]
    keep = np.array([t != LIKELY for t in test["types"]])
    good = keep & (labels == 0)
    defect = keep & (labels == 1)
    net = build_backbone(config.model.teacher, TAPS).eval()
    train_images, _, _ = load_batch(load_dataset(args.data).train, size[0], size[1], resize)
    held, gauss = gaussian_scores(pooled_features(net, train_images), pooled_features(net, test["images"]))
    z_student, z_gauss = good_scale(student, student[good]), good_scale(gauss, held)
    missed = lambda s: int((s[defect] < np.quantile(s[good], 0.9)).sum())  # noqa: E731
    result = {
        "data": str(args.data), "run": str(args.run), "n_good": int(good.sum()), "n_defect": int(defect.sum()),
        "image_auroc": {"student": auroc(student[keep], labels[keep]), "knn": auroc(knn[keep], labels[keep]),
                        "global_gaussian": auroc(gauss[keep], labels[keep])},
        "defects_below_the_good_90th_percentile": {"student": missed(student), "knn": missed(knn)},
        "student_plus_global_gaussian": {str(w): auroc((z_student + w * np.maximum(z_gauss, 0))[keep], labels[keep])
                                         for w in (0.0, 0.25, 0.5, 1.0)},
    }
    write_out(args.out, NAME, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
