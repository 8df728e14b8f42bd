"""Glance (Wang et al., CVPR 2021, "Glancing at the patch"): Local-Net vs Global-Net on every patch.

* **Local-Net** (:class:`LocalNet`) embeds a p×p patch into Z_l (n = 128). Phase
  ``local``: distilled from the frozen pretrained teacher (paper eqs. 1–3):
  λ_k·mean (D(Z_l) − R(p))² + λ_c·compactness(Z_l), where R(p) is the teacher's
  descriptor of the patch alone (its taps on the patch, averaged over space,
  standardised per channel over the training patches) and D a linear decoder.
  The paper first distils on ImageNet, then fine-tunes on the category with the
  same loss; ImageNet is not available offline, so this phase is the fine-tuning
  on the training set, starting from scratch (recorded in the model card).
* **Global-Net** (:class:`GlobalNet`) sees a ``context_size`` window centred on
  the patch with the patch masked out, through partial convolutions (eq. 5), so it
  cannot see the patch; it is trained to predict Z_l: l_IAD = ‖Z_l − Z_g‖²/n (eq. 7).
* **DAD head** (:class:`DadHead`) classifies [Z*, Z_g], Z* the feature of the
  patch or of a stained copy of it (:mod:`.stains`); binary cross-entropy (eq. 9).
  Phase ``global`` trains Global-Net and DAD head on l_IAD + λ_t·l_DAD (eq. 10),
  Local-Net frozen.
* **Score** per patch (eq. 13): λ·s_IAD + (1 − λ)·s_DAD, λ = 0.8 (offline 0.5), s_DAD = 1 − C
  with C the head's probability that the patch is normal (the paper's text names
  y = 1 for the negative patch and also s_DAD = 1 − C; we take C = P(normal) so
  that s_DAD rises on anomalies). Patch scores on the grid are interpolated into
  the map (:func:`.grid.scores_to_map`), smoothed, reduced to the image score.
  Offline preset: s_IAD (a squared distance, unbounded) and s_DAD (a probability)
  are first put on one scale by the map normalisation of the other offline models
  (:class:`~inspector.models.common.LevelNormalization`, fitted on the good validation
  images: per-position z-score shrunk toward global statistics, then the 0.9/0.995
  quantiles, clamped at 0), so λ weighs evidence, not units or positions where good
  images always score high; λ is then 0.5, the two heads in the same units counting
  alike. Raw, ELPV mono combined to 0.53 with the DAD head alone at 0.81; normalised
  with λ = 0.5, 0.85 (benchmarks/README.md, "Session 5"). A departure from eq. 13
  of the paper (which sums the raw heads with λ = 0.8): the paper preset keeps it.

Grid: patches of ``patch_size`` every ``grid_stride`` pixels, cut out as one batch
inside the graph. The stride is the speed/accuracy setting: the networks' cost
grows with the number of patches, ((H − p)/s + 1)·((W − p)/s + 1) — 225 at
256×256 with p = 32, s = 16 (map cells 16 px apart); s = 32 gives 64 patches,
3.5× less work, 32 px cells and no overlap. Training cost does not depend on it
(training samples random patch positions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from inspector.config import bounded
from inspector.contract import DEFAULT_BATCH
from inspector.errors import ConfigError
from inspector.models.backbones import build_backbone
from inspector.models.base import AnomalyModel, ModelConfig, teacher_identity
from inspector.models.common import FeatureStandardization, LevelNormalization, freeze
from inspector.models.entry import ModelEntry, Phase
from inspector.models.glance import grid
from inspector.models.glance.networks import DadHead, GlobalNet, LocalNet, compactness_loss
from inspector.models.glance.stains import add_stains

PRESETS = {
    # teacher backbone and the taps whose spatial means form the patch descriptor R(p)
    "paper": ("resnet18", ("layer2", "layer3")),  # the paper's ResNet-18
    "offline": ("efficientnet_lite0", ("blocks.2", "blocks.3")),
}
EVAL_SEED = 0  # validation draws the same patch positions and stains every epoch, so losses compare


@dataclass(frozen=True)
class GlanceConfig(ModelConfig):
    """Glance settings. Sizes in pixels of the model input."""

    name: str = "glance"
    # quantile + shrunk (offline): s_IAD and s_DAD normalised, per grid position too, from good
    # validation images before eq. 13 (module doc); paper: eq. 13 on the raw heads.
    PRESET_DEFAULTS: ClassVar[dict[str, dict]] = {
        "paper": {"score": "max", "map_normalization": "none", "distance": "cosine",
                  "position_normalization": "none", "score_lambda": 0.8},
        "offline": {"score": "topk", "map_normalization": "quantile", "distance": "cosine",
                    "position_normalization": "shrunk", "score_lambda": 0.5},
    }
    # 32: three stride-2 convs reach 4×4, and the teacher's stride-16 tap still has 2×2 cells.
    patch_size: int = bounded(32, ge=16, le=256)  # multiple of 8
    # Speed/accuracy: patches every grid_stride px at inference (even, ≤ patch_size); see module doc.
    grid_stride: int = bounded(16, ge=4, le=256)
    # Grid of the local phase's teacher descriptors (cached once per image). 32: tiles, 64 teacher passes
    # on 32×32 patches per 256×256 image; 16 would quadruple that one-off cost for overlapping, correlated targets.
    train_stride: int = bounded(32, ge=4, le=256)
    context_size: int = bounded(96, ge=24, le=1024)  # Global-Net window around the patch (3× the patch)
    feature_dim: int = bounded(128, ge=8, le=4096)  # n, of Z_l and Z_g
    # Light nets: both run once per patch (225 patches at 256×256, stride 16), so their width sets the cost:
    # ~0.84 M (local) + ~2.2 M (global) multiply-adds per patch with these defaults.
    local_channels: tuple[int, ...] = bounded((16, 32, 64), ge=1, le=4096)
    global_channels: tuple[int, ...] = bounded((16, 32, 64, 128), ge=1, le=4096)
    dad_hidden: int = bounded(128, ge=1, le=4096)
    # λ_s of eq. 13: paper 0.8 on the raw heads; offline 0.5, equal weight once both heads are in
    # the same normalised units (module doc). None: the preset's.
    score_lambda: float | None = bounded(None, ge=0, le=1)
    dad_weight: float = bounded(1.0, ge=0, le=100)  # λ_t of eq. 10
    distill_weight: float = bounded(1.0, ge=0, le=100)  # λ_k of eq. 3
    compactness_weight: float = bounded(1.0, ge=0, le=100)  # λ_c of eq. 3 (on the mean, not the sum)
    patches_per_step: int = bounded(16, ge=1, le=4096)  # random patch positions per training batch
    stain_scale: tuple[float, float] = bounded((0.1, 0.3), gt=0, le=0.5)  # stain semi-axes, fraction of the patch

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("local_channels", "global_channels", "stain_scale", "image_size"):
            object.__setattr__(self, key, tuple(getattr(self, key)))

    def validate(self, where: str) -> None:
        super().validate(where)
        p, h, w = self.patch_size, *self.image_size
        if p % 2 ** len(self.local_channels) or p % 8:
            raise ConfigError(f"{where}.patch_size: {p} must be a multiple of 8 and of 2^len(local_channels)")
        if p > min(h, w):
            raise ConfigError(f"{where}.patch_size: {p} is larger than the image {h}x{w}")
        for key in ("grid_stride", "train_stride"):
            s = getattr(self, key)
            if s % 2 or not 2 <= s <= p:
                raise ConfigError(f"{where}.{key}: must be even and in [2, patch_size={p}], got {s}")
        if (self.context_size - p) % 4 or self.context_size < p + 4:
            raise ConfigError(f"{where}.context_size: must be patch_size + a positive multiple of 4, "
                              f"got {self.context_size} with patch_size {p}")
        lo, hi = self.stain_scale
        if not 0 < lo <= hi <= 0.5:
            raise ConfigError(f"{where}.stain_scale: need 0 < low <= high <= 0.5, got {[lo, hi]}")
        if not 0 <= self.score_lambda <= 1:
            raise ConfigError(f"{where}.score_lambda: must be in [0, 1], got {self.score_lambda}")


class GlanceModel(AnomalyModel):
    """Frozen teacher → Local-Net (phase ``local``) → Global-Net + DAD head (phase ``global``)."""

    def __init__(self, config: GlanceConfig, teacher: nn.Module) -> None:
        super().__init__(config)
        c = config
        self.teacher = freeze(teacher)
        self.local = LocalNet(c.patch_size, c.local_channels, c.feature_dim)
        descriptor = sum(t.channels for t in teacher.feature_info)
        self.decoder = nn.Linear(c.feature_dim, descriptor)
        self.standardize = FeatureStandardization([descriptor])
        self.global_net = GlobalNet(c.global_channels, c.feature_dim)
        self.dad = DadHead(c.feature_dim, c.dad_hidden)
        h, w = c.image_size
        self.grid_shape = grid.grid_shape(h, w, c.patch_size, c.grid_stride)
        # The two heads as two "levels" on the patch grid; identity for the paper preset.
        shapes = [self.grid_shape] * 2 if c.position_normalization == "shrunk" else None
        self.level_norm = LevelNormalization(2, shapes) if c.map_normalization == "quantile" else None
        pos = grid.grid_positions(h, w, c.patch_size, c.grid_stride)
        # Functions of the config, rebuilt with the model: not persistent, constants in the graph.
        self.register_buffer("patch_index", grid.window_index(pos, c.patch_size, w), persistent=False)
        self.register_buffer("context_index", grid.context_index(pos, h, w, c.patch_size, c.context_size),
                             persistent=False)
        self.register_buffer("context_mask", grid.context_mask(pos, h, w, c.patch_size, c.context_size),
                             persistent=False)
        # Stain colours span what a uint8 pixel can be, in normalised units.
        self.register_buffer("colour_low", (-self.normalize.mean * self.normalize.inv_std).flatten(),
                             persistent=False)
        self.register_buffer("colour_high", ((255.0 - self.normalize.mean) * self.normalize.inv_std).flatten(),
                             persistent=False)

    # --- contract -----------------------------------------------------------------------------
    def networks(self) -> list[nn.Module]:
        return [self.teacher, self.local, self.decoder, self.global_net, self.dad]

    def trainable(self) -> list[nn.Parameter]:
        return [p for net in self.networks()[1:] for p in net.parameters()]

    def train(self, mode: bool = True) -> "GlanceModel":
        super().train(mode)
        self.teacher.eval()  # frozen: BatchNorm never uses batch statistics
        return self

    # --- pieces -------------------------------------------------------------------------------
    def windows(self, x: torch.Tensor, positions: torch.Tensor | None = None):
        """Patches (N·K, 3, p, p) and context windows (N·K, 3, c', c') + mask (K, 1, c', c'), compute dtype.

        ``positions`` (K, 2) even (top, left); None: the inference grid (constant indices).
        """
        c = self.config
        h, w = x.shape[-2:]
        if positions is None:
            p_idx, c_idx, mask = self.patch_index, self.context_index, self.context_mask
        else:
            p_idx = grid.window_index(positions, c.patch_size, w)
            c_idx = grid.context_index(positions, h, w, c.patch_size, c.context_size)
            mask = grid.context_mask(positions, h, w, c.patch_size, c.context_size)
        patches = grid.gather_windows(x, p_idx).to(self.compute_dtype)
        plane = grid.pooled_padded(x, c.patch_size, c.context_size)
        context = grid.gather_windows(plane, c_idx).to(self.compute_dtype)
        return patches, context, mask.to(self.compute_dtype)

    def local_features(self, patches: torch.Tensor) -> torch.Tensor:
        return self.local(patches.to(self.compute_dtype)).float()

    def global_features(self, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.global_net(context, mask)

    def teacher_descriptor(self, patches: torch.Tensor) -> torch.Tensor:
        """R(p): the teacher's taps on the patch alone, each averaged over space, concatenated, standardised."""
        with torch.no_grad():
            feats = self.teacher(patches.to(self.compute_dtype))
            desc = torch.cat([f.float().mean(dim=(2, 3)) for f in feats], dim=1)
        return self.standardize([desc[:, :, None, None]])[0].flatten(1)

    def _generator(self) -> torch.Generator | None:
        """Validation (eval mode) draws the same positions and stains every time; training the global RNG."""
        return None if self.training else torch.Generator().manual_seed(EVAL_SEED)

    # --- phase 1: Local-Net -------------------------------------------------------------------
    def train_positions(self, h: int, w: int) -> torch.Tensor:
        return grid.grid_positions(h, w, self.config.patch_size, self.config.train_stride).to(self.normalize.mean.device)

    def local_targets(self, images: torch.Tensor) -> list[torch.Tensor]:
        """R(p) of every patch of the training grid: [(N, K, D)] — cached once per image by the loop."""
        x = self.normalize(images)
        pos = self.train_positions(*x.shape[-2:])
        patches = grid.gather_windows(x, grid.window_index(pos, self.config.patch_size, x.shape[-1]))
        return [self.teacher_descriptor(patches).view(len(images), len(pos), -1)]

    def local_loss_from_targets(self, images: torch.Tensor, targets: list[torch.Tensor]) -> torch.Tensor:
        """λ_k·mean (D(Z_l) − R(p))² + λ_c·compactness; training: a random subset of the grid's patches."""
        c = self.config
        x = self.normalize(images)
        pos = self.train_positions(*x.shape[-2:])
        pick = torch.arange(len(pos), device=pos.device)
        if self.training and len(pos) > c.patches_per_step:
            pick = torch.randperm(len(pos))[: c.patches_per_step].to(pos.device)
        patches = grid.gather_windows(x, grid.window_index(pos[pick], c.patch_size, x.shape[-1]))
        z = self.local_features(patches)
        target = targets[0][:, pick.to(targets[0].device)].flatten(0, 1).float()
        distill = (self.decoder(z.to(self.decoder.weight.dtype)).float() - target).pow(2).mean()
        return c.distill_weight * distill + c.compactness_weight * compactness_loss(z)

    def local_loss(self, images: torch.Tensor) -> torch.Tensor:
        return self.local_loss_from_targets(images, self.local_targets(images))

    @torch.no_grad()
    def fit_feature_statistics(self, images, batch_size: int = DEFAULT_BATCH, max_images: int = 32) -> None:
        """Channel mean/std of R(p) over the training grid's patches of ≤ ``max_images`` uint8 images."""
        if len(images) > max_images:
            images = images[np.linspace(0, len(images) - 1, max_images).round().astype(int)]
        self.standardize.mean0.zero_()
        self.standardize.inv_std0.fill_(1.0)
        descs = [self.local_targets(torch.as_tensor(images[i:i + batch_size]).to(self.normalize.mean.device))[0]
                 for i in range(0, len(images), batch_size)]
        d = torch.cat(descs).flatten(0, 1)
        self.standardize.fit([d.sum(0)], [d.pow(2).sum(0)], [d.shape[0]])

    # --- phase 2: Global-Net and DAD head -----------------------------------------------------
    def random_positions(self, h: int, w: int, generator: torch.Generator | None) -> torch.Tensor:
        """(K, 2) even (top, left) positions anywhere in the image."""
        p, k = self.config.patch_size, self.config.patches_per_step
        ys = torch.randint(0, (h - p) // 2 + 1, (k,), generator=generator) * 2
        xs = torch.randint(0, (w - p) // 2 + 1, (k,), generator=generator) * 2
        return torch.stack([ys, xs], dim=1).to(self.normalize.mean.device)

    def global_loss(self, images: torch.Tensor) -> torch.Tensor:
        """l_IAD + λ_t·l_DAD (eq. 10) on random patches, each also as a stained negative."""
        gen = self._generator()
        x = self.normalize(images)
        patches, context, mask = self.windows(x, self.random_positions(*x.shape[-2:], gen))
        stained, _ = add_stains(patches.float(), self.colour_low, self.colour_high, self.config.stain_scale, gen)
        with torch.no_grad():
            z_l = self.local_features(patches)
            z_neg = self.local_features(stained)
        z_g = self.global_features(context, mask)
        iad = (z_l - z_g).pow(2).mean()
        logits = torch.cat([self.dad(z_l, z_g), self.dad(z_neg, z_g)])
        labels = torch.cat([torch.ones(len(z_l)), torch.zeros(len(z_neg))]).to(logits.device)
        return iad + self.config.dad_weight * F.binary_cross_entropy_with_logits(logits, labels)

    def loss(self, images: torch.Tensor) -> torch.Tensor:
        """The Global-Net objective; training runs :meth:`training_phases` (local, then global)."""
        return self.global_loss(images)

    def training_phases(self, cfg) -> list:
        """``local`` (Local-Net + decoder; teacher descriptors cached), then ``global`` (Global-Net + DAD)."""
        local_params = list(self.local.parameters()) + list(self.decoder.parameters())
        global_params = list(self.global_net.parameters()) + list(self.dad.parameters())
        return [
            Phase("local", local_params, self.local_loss, cfg,
                  targets=self.local_targets, loss_with_targets=self.local_loss_from_targets),
            Phase("global", global_params, self.global_loss, cfg, measures_gap=False),
        ]

    # --- inference ----------------------------------------------------------------------------
    def patch_scores(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """s_IAD and s_DAD on the inference grid: two FP32 (N, 1, gh, gw)."""
        x = self.normalize(images)
        patches, context, mask = self.windows(x)
        z_l = self.local_features(patches)
        z_g = self.global_features(context, mask)
        iad = (z_l - z_g).pow(2).mean(dim=1)
        dad = torch.sigmoid(-self.dad(z_l, z_g))  # 1 − C, C = sigmoid(logit) = P(normal)
        shape = (-1, 1, *self.grid_shape)  # -1: the batch stays symbolic in the exported graph
        return iad.view(shape), dad.view(shape)

    def head_maps(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """s_IAD and s_DAD on the grid, each quantile-normalised when configured: two FP32 (N, 1, gh, gw)."""
        iad, dad = self.patch_scores(images)
        if self.level_norm is None:
            return iad, dad
        return tuple(self.level_norm([iad, dad]))

    def named_level_maps(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The two heads' patch scores alone (λ = 1 and λ = 0 of eq. 13), on the grid."""
        iad, dad = self.head_maps(images)
        return {"iad": iad, "dad": dad}

    def forward_with_levels(self, images: torch.Tensor):
        iad, dad = self.head_maps(images)
        lam = self.config.score_lambda
        iad_e, dad_e = self.evidence([iad, dad])  # normalised heads only add evidence (clamped at 0)
        combined = lam * iad_e + (1.0 - lam) * dad_e
        amap = grid.scores_to_map(combined, (images.shape[1], images.shape[2]),
                                  self.config.patch_size, self.config.grid_stride)
        score, amap = self.finish(amap)
        return score, amap, {"iad": iad, "dad": dad}

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        score, amap, _ = self.forward_with_levels(images)
        return score, amap

    def describe(self) -> dict:
        info = super().describe()
        c = self.config
        backbone = PRESETS[c.preset][0]
        info["teachers"] = [{**teacher_identity(self.teacher), "backbone": backbone}]
        info["grid"] = {"patch_size": c.patch_size, "stride": c.grid_stride, "patches": list(self.grid_shape),
                        "context_size": c.context_size, "global_downscale": grid.GLOBAL_DOWNSCALE}
        info["score_lambda"] = c.score_lambda
        info["parameters_by_network"] = {name: sum(p.numel() for p in net.parameters()) for name, net in
                                         (("local", self.local), ("global", self.global_net), ("dad", self.dad))}
        info["substitutions"] = [{"part": "local_net_pretraining", "paper": "distillation on ImageNet, then "
                                  "fine-tuning on the category", "used": "distillation on the training set only",
                                  "reason": "no ImageNet offline"}]
        if c.preset != "paper":
            info["substitutions"].append({"part": "teacher", "paper": "resnet18", "used": backbone,
                                          "reason": f"{c.preset} preset"})
        return info


def build_glance(config: GlanceConfig) -> GlanceModel:
    """Teacher (weights resolved as configured) and the untrained Local-Net, Global-Net and DAD head."""
    backbone, taps = PRESETS[config.preset]
    return GlanceModel(config, build_backbone(backbone, taps, weights=config.teacher_weights))


_ADAM = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-5, "batch_size": 16}
# Offline: early stopping per phase (the loop's rule); the paper gives no epoch count.
ENTRY = ModelEntry(GlanceConfig, build_glance, {"paper": {**_ADAM, "epochs": 100}, "offline": {**_ADAM}})
