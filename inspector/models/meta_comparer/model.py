"""Domain-generalised meta-comparer (Chen et al., ICME 2022; paper in shared/papers).

Trained once across several source surfaces with image-level labels; at inspection
time each query patch is compared with the patches of K normal **reference** images
of a surface never seen in training (no training on it). Pieces, per scale i:

* **Features** — a frozen pretrained teacher, two taps (offline: EfficientNet-Lite0
  ``blocks.2``/``blocks.3``, strides 8/16, the kNN reference's taps; paper preset:
  ResNet-18 ``layer2``/``layer3``, the paper's §3.1 backbone). Each tap is 3×3
  average-pooled, so a patch is the 3×3-cell neighbourhood of a grid position
  (the paper's BiFPN is replaced by the frozen pyramid: nothing of the backbone trains).
* **Co-attention** (§2.3) — a Siamese projection per scale (:class:`Projection`: an
  orthogonal linear skip plus a zero-initialised 1×1 MLP, on the L2-normalised patch) maps
  query and reference patches into a shared ``embed_dim`` space; cosine similarity rescaled to [0, 1]
  gives A_i ∈ [0,1]^{N_Q×N_R}; a_i^j = max_k A_i^{jk} (best-matching reference patch).
* **Meta-comparer** (§2.2) — one MLP with a sigmoid, shared by the scales, on
  [q, r*, |q − r*|] with r* the reference patch of highest co-attention, gives the
  patch score s_i^j ∈ (0, 1).
* **Inference** (eq. 5, 6) — score = max over scales and patches of s; map = per
  pixel the max over the patches containing it (3×3 max-pool of the score grid,
  nearest upsampling by the stride), max across scales. No smoothing.

Choices where the text is loose (README "meta_comparer"):

* eq. (1) literally takes max_k MLP([q, r_k]) over *all* N_R reference patches:
  that makes a normal patch anomalous as soon as one reference patch differs from
  it, and evaluating the MLP on N_Q·N_R pairs (50 references: 51 200 per query
  patch) does not fit a real-time graph. The comparer is evaluated on the pair the
  co-attention selects (k* = argmax_k a^{jk}); the MLP also sees |q − r*|.
* eq. (3) literally uses min_{j,k} a^{jk} over all pairs, which asks every query
  patch to resemble *every* reference patch on a normal image and collapses the
  shared space on any texture with two kinds of patch. The loss uses
  min_j max_k a^{jk}: the query patch whose best reference match is worst.
* **anchor**: eq. (1)'s MLP alone has no fixed orientation. Untrained or stopped early
  (a wall-clock cap under load did that: 1 epoch), its map is as likely high where the part
  matches the references as where it does not (KolektorSDD held out: pixel AUROC 0.24–0.30,
  inverted, while 1 − a alone gave 0.85). The patch logit is therefore
  g·((1 − a) − t) + MLP([q, r*, |q − r*|]) with g = softplus(·) > 0 and the MLP's last layer
  zero-initialised: untrained, the score is monotone in the co-attention dissimilarity (the
  paper's own patch-level cue, §2.3); training learns g, t and the MLP's correction. The
  projection starts as the teacher's own cosine for the same reason (a random ReLU MLP blurred
  it: KolektorSDD held out, untrained, pixel AUROC 0.85 vs 0.89).
* eq. (4) sums the ranking terms; here they are averaged over the sampled pairs
  (``rank_pairs`` per image), so ``rank_weight`` (λ) does not scale with the count.

The reference bank: :meth:`MetaComparerModel.enroll` stores the embedded,
L2-normalised reference patches of each scale as buffers (not in checkpoints: a
checkpoint is the comparer; an exported graph is comparer + bank as constants).
Without enrolment the bank is one zero row (every similarity 0.5): the contract
tests can run the untrained, un-enrolled model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from inspector.config import bounded
from inspector.contract import DEFAULT_BATCH
from inspector.errors import ConfigError
from inspector.models.backbones import build_backbone
from inspector.models.base import AnomalyModel, ModelConfig, teacher_identity
from inspector.models.common import freeze
from inspector.models.entry import ModelEntry

PRESETS = {
    "paper": {"backbone": "resnet18", "taps": ("layer2", "layer3")},
    "offline": {"backbone": "efficientnet_lite0", "taps": ("blocks.2", "blocks.3")},
}
EPS = 1e-6  # L2-normalisation floor, FP16-safe (MODELS.md "Distance per level")
MAX_REFERENCES = 50  # issue 21: K = 1…50 normal images per enrolment
# Initial dissimilarity anchor: gain softplus(10) ≈ 10, offset 0.25, so an untrained comparer gives
# sigmoid(10·(d − 0.25)): ≈ 0.1 for a well-matched patch (d = 1 − a ≈ 0.05), ≈ 0.9 at d = 0.5.
ANCHOR_GAIN_RAW = 10.0
ANCHOR_OFFSET = 0.25


@dataclass(frozen=True)
class MetaComparerConfig(ModelConfig):
    """Meta-comparer settings; ``backbone``/``taps`` None take the preset's value."""

    name: str = "meta_comparer"
    # The map is max-pooled patch scores, never smoothed; the score is its max (eq. 5).
    PRESET_DEFAULTS: ClassVar[dict[str, dict]] = {
        "paper": {"score": "max", "map_normalization": "none"},
        "offline": {"score": "max", "map_normalization": "none"},
    }
    smoothing_sigma: float = bounded(0.0, ge=0, le=64)
    backbone: str | None = None
    taps: tuple[str, ...] | None = None
    embed_dim: int = bounded(64, ge=4, le=1024)  # co-attention space (per-scale projection output)
    comparer_hidden: int = bounded(64, ge=4, le=1024)  # hidden units of the meta-comparer MLP
    # Training episodes (inspector/training/meta_comparer.py): references per query, patch pairs
    # of the ranking loss, batches per epoch, and the loss weights (eq. 2 + eq. 3 + λ·eq. 4).
    train_references: int = bounded(4, ge=1, le=MAX_REFERENCES)
    rank_pairs: int = bounded(256, ge=1, le=65_536)
    steps_per_epoch: int = bounded(40, ge=1, le=100_000)
    att_weight: float = bounded(1.0, ge=0, le=100)
    rank_weight: float = bounded(1.0, ge=0, le=100)  # λ of eq. (4)
    # Images drawn per source domain (seeded): normal ones serve as references and normal
    # queries, defective ones as abnormal queries; synthetic domains are generated at this count.
    domain_normals: int = bounded(120, ge=2, le=100_000)
    domain_defects: int = bounded(60, ge=1, le=100_000)

    def __post_init__(self) -> None:
        super().__post_init__()
        for key, value in PRESETS.get(self.preset, {}).items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        object.__setattr__(self, "taps", tuple(self.taps))
        object.__setattr__(self, "image_size", tuple(self.image_size))

    def validate(self, where: str) -> None:
        super().validate(where)
        if not self.taps:
            raise ConfigError(f"{where}.taps: at least one feature tap is needed")
        if self.smoothing_sigma != 0:
            raise ConfigError(f"{where}.smoothing_sigma: the meta-comparer's map is max-pooled patch "
                              f"scores (paper eq. 6) and is not smoothed; must be 0")


class Projection(nn.Module):
    """Co-attention projection of one scale: (N, C, h, w) → (N, D, h, w), FP32.

    Of the L2-normalised patch feature: a linear skip with orthonormal rows/columns (an isometry
    when D ≥ C) plus a 1×1 MLP whose last layer starts at zero: untrained, the co-attention is
    the teacher features' own cosine similarity (up to the D < C truncation), not that of a
    random ReLU network, which blurs it (KolektorSDD held out, untrained: pixel AUROC 0.85 with
    the random MLP, 0.89 raw).
    """

    def __init__(self, channels: int, dim: int) -> None:
        super().__init__()
        self.skip = nn.Conv2d(channels, dim, 1, bias=False)
        nn.init.orthogonal_(self.skip.weight)
        self.mlp = nn.Sequential(nn.Conv2d(channels, dim, 1), nn.ReLU(inplace=True), nn.Conv2d(dim, dim, 1))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        # unit-norm input: the cosine is unchanged, and an optimizer step moves the MLP's output by
        # the same amount whatever the teacher's feature scale (a random teacher's features are
        # large enough for the first step to swamp the skip and collapse every similarity to 1)
        feats = feats / feats.norm(dim=1, keepdim=True).clamp_min(EPS)
        return self.skip(feats) + self.mlp(feats)


class MetaComparerModel(AnomalyModel):
    """uint8 (N, H, W, 3) → score (N,) in (0, 1), map (N, 1, H, W) in (0, 1); FP32 outputs."""

    def __init__(self, config: MetaComparerConfig, teacher: nn.Module) -> None:
        super().__init__(config)
        self.teacher = freeze(teacher)
        self.level_names = tuple(t.name for t in teacher.feature_info)
        self.strides = tuple(t.stride for t in teacher.feature_info)
        dim = config.embed_dim
        self.projections = nn.ModuleList(Projection(t.channels, dim) for t in teacher.feature_info)
        self.comparer = nn.Sequential(nn.Linear(3 * dim, config.comparer_hidden), nn.ReLU(inplace=True),
                                      nn.Linear(config.comparer_hidden, config.comparer_hidden // 2),
                                      nn.ReLU(inplace=True), nn.Linear(config.comparer_hidden // 2, 1))
        # The MLP is a learned correction on top of the dissimilarity anchor (see compare()): zero at
        # initialisation, so an untrained comparer scores exactly by the co-attention dissimilarity.
        nn.init.zeros_(self.comparer[-1].weight)
        nn.init.zeros_(self.comparer[-1].bias)
        # anchor logit = softplus(gain_raw)·((1 − a) − offset); softplus keeps the gain > 0, so the
        # anchor can never rank the best-matched patch above a patch unlike every reference
        self.anchor_gain_raw = nn.Parameter(torch.tensor(ANCHOR_GAIN_RAW))
        self.anchor_offset = nn.Parameter(torch.tensor(ANCHOR_OFFSET))
        for i in range(len(self.level_names)):
            self.register_buffer(f"bank_{i}", torch.zeros(1, dim), persistent=False)
        self.references: dict = {"k": 0}

    # --- contract -----------------------------------------------------------------------------
    def networks(self) -> list[nn.Module]:
        return [self.teacher]

    def trainable(self) -> list[nn.Parameter]:
        return (list(self.projections.parameters()) + list(self.comparer.parameters())
                + [self.anchor_gain_raw, self.anchor_offset])

    def train(self, mode: bool = True) -> "MetaComparerModel":
        super().train(mode)
        self.teacher.eval()  # frozen: BatchNorm never uses batch statistics
        return self

    # --- pieces -------------------------------------------------------------------------------
    def patch_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Frozen teacher taps, 3×3 average-pooled: FP32 (N, C_i, h_i, w_i) per scale, no gradient."""
        with torch.no_grad():
            feats = self.teacher(self.network_input(images))
            return [F.avg_pool2d(f.float(), 3, 1, 1) for f in feats]

    def embed(self, level: int, feats: torch.Tensor) -> torch.Tensor:
        """Patches of one scale in the shared space: (N, C, h, w) → (N, h·w, D), unit L2 norm, FP32."""
        z = self.projections[level](feats.float()).flatten(2).transpose(1, 2)
        return z / z.norm(dim=-1, keepdim=True).clamp_min(EPS)

    def compare(self, query: torch.Tensor, refs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Co-attention and comparer for embedded patches.

        query (N, n, D), refs (N, m, D) or (m, D) (a shared bank). Returns the patch
        scores s (N, n) in (0, 1), the co-attention scores a = max_k A (N, n) and the
        full matrix A (N, n, m), both in [0, 1].

        s = sigmoid(g·((1 − a) − t) + MLP([q, r*, |q − r*|])), g > 0: the comparer MLP corrects a
        score anchored on the co-attention dissimilarity 1 − a (module docstring, "anchor").
        """
        att = 0.5 * (torch.matmul(query, refs.transpose(-1, -2)) + 1.0)
        best, index = att.max(dim=-1)
        if refs.dim() == 2:
            matched = refs[index]
        else:
            matched = torch.gather(refs, 1, index.unsqueeze(-1).expand(-1, -1, refs.shape[-1]))
        pair = torch.cat([query, matched, (query - matched).abs()], dim=-1)
        anchor = F.softplus(self.anchor_gain_raw) * ((1.0 - best) - self.anchor_offset)
        scores = torch.sigmoid(anchor + self.comparer(pair).squeeze(-1))
        return scores, best, att

    # --- enrolment ----------------------------------------------------------------------------
    @torch.no_grad()
    def enroll(self, images: torch.Tensor, batch_size: int = DEFAULT_BATCH) -> None:
        """Store the reference bank of K normal uint8 (K, H, W, 3) images (K ≤ MAX_REFERENCES)."""
        if not 1 <= len(images) <= MAX_REFERENCES:
            raise ConfigError(f"references: {len(images)} image(s); the meta-comparer takes 1…{MAX_REFERENCES}")
        was_training = self.training
        self.eval()
        banks: list[list[torch.Tensor]] = [[] for _ in self.level_names]
        for start in range(0, len(images), batch_size):
            for i, f in enumerate(self.patch_features(images[start:start + batch_size])):
                banks[i].append(self.embed(i, f).reshape(-1, self.config.embed_dim))
        for i, parts in enumerate(banks):
            setattr(self, f"bank_{i}", torch.cat(parts).contiguous())
        self.references = {"k": len(images)}
        self.train(was_training)

    # --- inference ----------------------------------------------------------------------------
    def level_scores(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Patch scores against the enrolled bank: FP32 (N, 1, h_i, w_i) per scale."""
        return self.scores_from_features(self.patch_features(images))

    def scores_from_features(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """:meth:`level_scores` from :meth:`patch_features` output (a benchmark may cache those)."""
        out = []
        for i, feats in enumerate(features):
            scores, _, _ = self.compare(self.embed(i, feats), getattr(self, f"bank_{i}"))
            out.append(scores.reshape(feats.shape[0], 1, feats.shape[2], feats.shape[3]))
        return out

    @staticmethod
    def pixel_map(levels: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """eq. (6): per pixel the max over the patches containing it, across scales: (N, 1, H, W).

        Patch j of a scale covers the 3×3 cells around j (the average pooling), so a cell takes
        the max of its 3×3 neighbours before nearest upsampling to the input size.
        """
        maps = [F.interpolate(F.max_pool2d(s, 3, 1, 1), size=size, mode="nearest") for s in levels]
        return torch.stack(maps).amax(dim=0)

    def named_level_maps(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(self.level_names, self.level_scores(images)))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        score, amap, _ = self.forward_with_levels(images)
        return score, amap

    def forward_with_levels(self, images: torch.Tensor):
        levels = self.level_scores(images)
        amap = self.pixel_map(levels, (images.shape[1], images.shape[2]))
        return amap.flatten(1).amax(dim=1), amap, dict(zip(self.level_names, levels))

    def describe(self) -> dict:
        info = super().describe()
        cfg = self.config
        info["teachers"] = [{**teacher_identity(self.teacher), "backbone": cfg.backbone}]
        info["levels"] = list(self.level_names)
        info["strides"] = list(self.strides)
        info["embed_dim"] = cfg.embed_dim
        info["references"] = dict(self.references)
        info["bank_patches"] = [int(getattr(self, f"bank_{i}").shape[0]) for i in range(len(self.level_names))]
        if cfg.preset == "offline":
            info["substitutions"] = [{"part": "features", "paper": "ResNet-18 + BiFPN (trained)",
                                      "used": f"{cfg.backbone}:{','.join(cfg.taps)} (frozen)",
                                      "reason": "offline preset; CPU-sized training"}]
        return info


def build_meta_comparer(config: MetaComparerConfig) -> MetaComparerModel:
    """Teacher (weights resolved as configured), per-scale projections and the comparer."""
    teacher = build_backbone(config.backbone, config.taps, weights=config.teacher_weights)
    return MetaComparerModel(config, teacher)


_ADAM = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-5, "batch_size": 8}
ENTRY = ModelEntry(MetaComparerConfig, build_meta_comparer,
                   {"paper": {**_ADAM, "epochs": 100}, "offline": {**_ADAM}})
