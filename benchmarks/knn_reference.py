"""A PatchCore-style kNN anomaly reference on a frozen teacher's features (benchmark anchor, not a product model).

Roth et al., "Towards Total Recall in Industrial Anomaly Detection" (CVPR 2022):
locally aware patch features (each level 3×3 average-pooled, the deeper level
bilinearly upsampled to the shallower one's grid and concatenated), a memory bank of
the training images' patches thinned by greedy k-centre coreset selection
(on a random projection, as the paper does), and per-patch nearest-neighbour
distance to the coreset as the anomaly map; the image score is the map's max.

Used by ``bench_quality.py`` with the same teacher (the offline students' ``model.teacher``,
EfficientNet-Lite1 by default, ``OFFLINE_TEACHER``; ``--teacher`` sets both), taps
(strides 8 and 16), input size and resize policy as the student models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from inspector.models.backbones import build_backbone
from inspector.models.base import OFFLINE_TEACHER
from inspector.models.common import ImageNormalize


@dataclass(frozen=True)
class KnnSettings:
    backbone: str = OFFLINE_TEACHER  # bench_quality passes the students' teacher
    taps: tuple[str, ...] = ("blocks.2", "blocks.3")  # strides 8 and 16
    coreset_fraction: float = 0.10
    # Greedy selection is O(bank × coreset); above this many patches a random subset is
    # the candidate pool (the coreset stays 10% of the pool). Recorded in the results.
    max_pool: int = 50_000
    projection_dim: int = 64  # for the coreset selection only; distances use the full features
    seed: int = 0


class KnnReference:
    """Fit on good uint8 (N, H, W, 3) images; ``score`` gives (scores (N,), maps (N, H, W)) float32."""

    def __init__(self, settings: KnnSettings = KnnSettings(), teacher_weights: str | None = None) -> None:
        self.settings = settings
        self.teacher = build_backbone(settings.backbone, settings.taps, weights=teacher_weights).eval()
        self.normalize = ImageNormalize()
        self.coreset: torch.Tensor | None = None
        self.info: dict = {}

    @torch.no_grad()
    def embed(self, images: np.ndarray) -> torch.Tensor:
        """(N, C, h, w) locally aware patch features on the shallowest tap's grid."""
        out = []
        for i in range(0, len(images), 16):
            feats = self.teacher(self.normalize(torch.from_numpy(images[i:i + 16])))
            feats = [F.avg_pool2d(f.float(), 3, 1, 1) for f in feats]
            size = feats[0].shape[-2:]
            feats = [feats[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False)
                                  for f in feats[1:]]
            out.append(torch.cat(feats, dim=1))
        return torch.cat(out)

    @torch.no_grad()
    def fit(self, images: np.ndarray) -> "KnnReference":
        s = self.settings
        emb = self.embed(images)
        bank = emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1])
        g = torch.Generator().manual_seed(s.seed)
        n_patches = len(bank)
        if len(bank) > s.max_pool:
            bank = bank[torch.randperm(len(bank), generator=g)[: s.max_pool]]
        k = max(1, int(round(len(bank) * s.coreset_fraction)))
        proj = torch.randn(bank.shape[1], min(s.projection_dim, bank.shape[1]), generator=g)
        self.coreset = bank[greedy_coreset(bank @ proj, k)]
        self.info = {"patches": n_patches, "pool": len(bank), "coreset": k, "channels": bank.shape[1],
                     **{k_: v for k_, v in vars(s).items() if k_ != "taps"}, "taps": list(s.taps)}
        return self

    @torch.no_grad()
    def score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert self.coreset is not None, "fit() first"
        h, w = images.shape[1:3]
        scores, maps = [], []
        for i in range(0, len(images), 16):
            emb = self.embed(images[i:i + 16])
            n, c, fh, fw = emb.shape
            q = emb.permute(0, 2, 3, 1).reshape(-1, c)
            dist = torch.cdist(q, self.coreset).amin(dim=1).view(n, 1, fh, fw)
            scores.append(dist.flatten(1).amax(dim=1))
            maps.append(F.interpolate(dist, size=(h, w), mode="bilinear", align_corners=False)[:, 0])
        return torch.cat(scores).numpy(), torch.cat(maps).numpy()


def greedy_coreset(points: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of ``k`` rows chosen by greedy k-centre (farthest point first), starting at row 0."""
    chosen = torch.empty(k, dtype=torch.long)
    norms = points.pow(2).sum(dim=1)
    idx = 0
    min_dist = torch.full_like(norms, float("inf"))
    for j in range(k):
        chosen[j] = idx
        # ‖p − c‖² = ‖p‖² − 2 p·c + ‖c‖²: one matrix-vector product per step
        dist = norms - 2.0 * (points @ points[idx]) + norms[idx]
        torch.minimum(min_dist, dist, out=min_dist)
        idx = int(torch.argmax(min_dist))
    return chosen
