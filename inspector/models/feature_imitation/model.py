"""Multi-scale feature imitation (Hu & Lai): independent sub-blocks, feature and image pyramid.

Paper (../shared/papers/multiscale-feature-imitation.txt, §II):

* **Student** (§II-A, Fig. 1): a group of independent sub-blocks. Sub-block *l*
  has the structure of teacher stage *l* and takes the **teacher's** feature
  *l−1*: ``f_s^l = S^l(f_t^{l−1})``. Features are L2-normalised per pixel;
  loss Σ_l mean_p ‖f̂_t − f̂_s‖² (eq. 1–3).
* **Map** (eq. 4–6): per-level maps 0.25·‖f̂_t − f̂_s‖² ∈ [0, 1], upsampled to the
  input size and averaged.
* **Image pyramid** (§II-A-3, Fig. 2): one sub-block group per input scale, all
  sharing the frozen teacher; the maps of every (scale, level) module are
  interpolated to the reference size (the model input) and averaged.
* **Module-importance search** (§II-A-4, eq. 7–10): optional, see
  :mod:`inspector.models.feature_imitation.importance`; without a validation set
  with defects every module keeps weight 1/N (eq. 4).

Presets:

* ``paper``: ResNet-18 teacher (the paper's best is WideResNet-50, whose weights
  are not obtainable offline; a torchvision-format file is accepted), imitated
  levels layer1..layer3 (conv2_x..conv4_x: Table II, [2, 3, 4] beats [2, 3, 4, 5]),
  scales 0.5/1/1.5 of the input (128/256/384 at 256), cosine distance, max score.
* ``offline``: EfficientNet-Lite0 teacher (the others' offline teacher until they moved to Lite1 and, for
  stfpm, to strides 8/16/32, benchmarks/README.md "Session 24" and "Session 26"; this "next" model has not
  been re-measured on either), levels
  blocks.2 and blocks.3 (strides 8/16: the stride-4 level does not separate defects
  on real data, MODELS.md), teacher channels standardised over the training images
  before the per-pixel L2 normalisation, per-module map normalisation (per position
  shrunk toward global statistics, then quantiles: the other offline models' rule,
  which this model had ignored; ELPV poly 0.844 → 0.877, mono 0.928 → 0.943 on the
  same weights, benchmarks/README.md "Session 5"), top-k score. Scales 0.5 and 1: on 2 CPU cores the 1.5 scale alone costs 2.25× the
  single-scale model, while 0.5 costs 0.25× and adds the coarse context the paper
  finds best for large defects (Table III, transistor); small defects are better
  served by a larger ``image_size``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from inspector.config import bounded
from inspector.errors import ConfigError
from inspector.models.backbones import available_taps, build_backbone
from inspector.models.base import AnomalyModel, ModelConfig, teacher_identity
from inspector.models.common import FeatureStandardization, LevelNormalization, freeze, level_distance, upsample
from inspector.models.feature_imitation.subblocks import mirror_subblocks
from inspector.models.entry import ModelEntry

BACKBONES = {"paper": "resnet18", "offline": "efficientnet_lite0"}
EQUAL_WEIGHTS_NOTE = ("no validation set with defects was supplied (model.importance_data): "
                      "every module keeps equal weight 1/N (paper eq. 4)")


@dataclass(frozen=True)
class FeatureImitationConfig(ModelConfig):
    name: str = "feature_imitation"
    # cosine: ‖f̂_t − f̂_s‖² of per-pixel L2-normalised features (paper eq. 1, 5).
    # standardized_cosine: the same after standardising the teacher's channels over the
    # training images (EfficientAD), so low-range channels count in the direction too.
    distance: Literal["cosine", "standardized_cosine", "standardized_mse"] | None = None
    levels: tuple[str, ...] | None = None  # imitated teacher taps (f^2..f^L); None: the preset's
    # Image pyramid: input scales relative to image_size, each side rounded to a multiple of 16.
    scales: tuple[float, ...] | None = bounded(None, ge=0.125, le=4)
    # Module-importance search (paper §II-A-4): a dataset folder whose test split has defect
    # images with masks. It must not be the set the model is judged on.
    importance_data: str | None = None
    importance_topk: int | None = bounded(None, ge=1, le=256)  # modules kept after the search; None: all
    importance_steps: int = bounded(300, ge=1, le=100_000)
    importance_lr: float = bounded(0.05, gt=0, le=10)
    PRESET_DEFAULTS: ClassVar[dict[str, dict]] = {
        "paper": {**ModelConfig.PRESET_DEFAULTS["paper"], "levels": ("layer1", "layer2", "layer3"),
                  "scales": (0.5, 1.0, 1.5)},
        "offline": {**ModelConfig.PRESET_DEFAULTS["offline"], "distance": "standardized_cosine",
                    "levels": ("blocks.2", "blocks.3"), "scales": (0.5, 1.0)},
    }

    def validate(self, where: str) -> None:
        super().validate(where)
        if len(set(self.scales)) != len(self.scales):
            raise ConfigError(f"{where}.scales: each scale once, got {list(self.scales)}")
        if self.importance_topk is not None and self.importance_topk > len(self.scales) * len(self.levels):
            raise ConfigError(f"{where}.importance_topk: {self.importance_topk} exceeds the "
                              f"{len(self.scales) * len(self.levels)} modules (scales × levels)")


SIZE_STEP = 16  # the deepest imitated level of either preset has stride 16


def scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """``size`` × ``scale``, each side rounded half up to a multiple of 16 (at least 32).

    Multiples of 16 keep the stride-16 levels aligned with the image; 32 would bend the
    aspect ratio (416×160 at 0.5 would become 192×64 instead of 208×80).
    """
    return tuple(max(32, int(s * scale / SIZE_STEP + 0.5) * SIZE_STEP) for s in size)  # type: ignore[return-value]


def teacher_taps(backbone: str, levels: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """(teacher taps in depth order, index of each level among them).

    A level's input is the tap just before it in the backbone (paper: f^{l−1}); it is
    among the teacher taps, right before the level, so level index i has input index i−1.
    """
    order = [t.name for t in available_taps(backbone)]
    unknown = [lv for lv in levels if lv not in order]
    if unknown:
        raise ConfigError(f"model.levels: unknown tap '{unknown[0]}' of {backbone}; taps: {order}")
    if order[0] in levels:
        raise ConfigError(f"model.levels: '{order[0]}' is {backbone}'s first tap; no teacher feature precedes it")
    needed = sorted({order.index(lv) for lv in levels} | {order.index(lv) - 1 for lv in levels})
    taps = tuple(order[i] for i in needed)
    return taps, tuple(taps.index(lv) for lv in levels)


class FeatureImitationModel(AnomalyModel):
    """Frozen teacher; ``students[g][j]`` imitates level j at scale g from the teacher's level j−1.

    Module i = (scale g, level j) with i = g·len(levels) + j, named ``"{scale}x:{tap}"``.
    ``module_weight`` (buffer, sums to 1) weighs the module maps; modules of weight 0
    (dropped by the importance search) are not computed.
    """

    def __init__(self, config: FeatureImitationConfig, teacher: nn.Module, outputs: tuple[int, ...]) -> None:
        """``outputs``: indices of the imitated levels among the teacher's taps; tap i−1 is level i's input."""
        super().__init__(config)
        self.outputs = outputs
        self.sizes = tuple(scaled_size(config.image_size, s) for s in config.scales)
        # Copies are taken before the teacher is frozen; one independent group per scale.
        self.students = nn.ModuleList([self._group(teacher) for _ in config.scales])
        self.teacher = freeze(teacher)
        self.module_names = tuple(f"{s:g}x:{lv}" for s in config.scales for lv in config.levels)
        n = len(self.module_names)
        self.level_norm = LevelNormalization(n, self._module_shapes(teacher))
        channels = [teacher.feature_info[i].channels for i in outputs]
        self.standardize = nn.ModuleList([FeatureStandardization(channels) for _ in config.scales])
        self.register_buffer("module_weight", torch.full((n,), 1.0 / n))
        self.register_buffer("importance_searched", torch.zeros((), dtype=torch.bool))
        self.kept = tuple(range(n))
        self.register_load_state_dict_post_hook(lambda module, _keys: module.refresh_kept())

    def _module_shapes(self, teacher: nn.Module) -> list[tuple[int, int]] | None:
        """Static (h, w) of each module map when per-position normalisation is configured, else None."""
        c = self.config
        if c.map_normalization != "quantile" or c.position_normalization != "shrunk":
            return None
        strides = [teacher.feature_info[i].stride for i in self.outputs]
        return [(-(-h // s), -(-w // s)) for h, w in self.sizes for s in strides]

    def _group(self, teacher: nn.Module) -> nn.ModuleList:
        blocks = mirror_subblocks(teacher)  # one per tap after the first, in tap order
        return nn.ModuleList([blocks[i - 1] for i in self.outputs])

    def refresh_kept(self) -> None:
        """The modules computed by ``forward``: those of non-zero weight (a structural constant at export)."""
        self.kept = tuple(i for i, w in enumerate(self.module_weight.tolist()) if w > 0)

    def set_module_weights(self, weights: torch.Tensor, searched: bool = True) -> None:
        """Install (N,) module weights (≥ 0, renormalised to sum 1); zeros drop modules."""
        w = weights.detach().float().clamp_min(0).to(self.module_weight.device)
        self.module_weight.copy_(w / w.sum())
        self.importance_searched.fill_(searched)
        self.refresh_kept()

    def networks(self) -> list[nn.Module]:
        return [self.teacher, self.students]

    def trainable(self) -> list[nn.Parameter]:
        return list(self.students.parameters())

    def train(self, mode: bool = True) -> "FeatureImitationModel":
        super().train(mode)
        self.teacher.eval()  # a frozen teacher's BatchNorm never uses batch statistics
        return self

    def _scaled(self, x: torch.Tensor, g: int) -> torch.Tensor:
        """The FP32 normalised image ``x`` at scale g, in the networks' dtype."""
        size = self.sizes[g]
        if (x.shape[-2], x.shape[-1]) != size:
            # Bilinear in FP32 (a Resize stays FP32 in the FP16 graph); at 0.5 with
            # align_corners=False it is the 2×2 mean.
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x.to(self.compute_dtype)

    def _teacher_scale(self, x: torch.Tensor, g: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(sub-block inputs f_t^{l−1}, targets f_t^l) at scale g, for the FP32 normalised input ``x``."""
        with torch.no_grad():
            feats = self.teacher(self._scaled(x, g))
            targets = [feats[i] for i in self.outputs]
            if self.config.distance != "cosine":
                targets = self.standardize[g](targets)
            return [feats[i - 1] for i in self.outputs], targets

    def distance(self, teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        """Per-pixel module map (N, 1, h, w) FP32: 0.25·‖f̂_t − f̂_s‖² ∈ [0, 1] (eq. 5), or standardised MSE."""
        if self.config.distance == "standardized_mse":
            return (teacher.float() - student.float()).pow(2).mean(dim=1, keepdim=True)
        return 0.5 * level_distance(teacher, student)  # level_distance is 0.5·‖·‖²

    def teacher_targets(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Per scale: the sub-blocks' teacher inputs, then their targets (the loop caches them)."""
        x = self.normalize(images)  # FP32: each scale is resized, then cast
        out: list[torch.Tensor] = []
        for g in range(len(self.sizes)):
            ins, targets = self._teacher_scale(x, g)
            out += ins + targets
        return out

    def loss_with_targets(self, images: torch.Tensor, targets: list[torch.Tensor]) -> torch.Tensor:
        """Σ over scales and levels of the mean module map (eq. 3); needs only the teacher's features."""
        n = len(self.outputs)
        total = 0.0
        for g, group in enumerate(self.students):
            chunk = targets[2 * n * g: 2 * n * (g + 1)]
            for j, block in enumerate(group):
                pred = block(chunk[j].to(self.compute_dtype))
                total = total + self.distance(chunk[n + j], pred).mean()
        return total

    def loss(self, images: torch.Tensor) -> torch.Tensor:
        return self.loss_with_targets(images, self.teacher_targets(images))

    def module_maps(self, images: torch.Tensor, only: tuple[int, ...] | None = None) -> dict[int, torch.Tensor]:
        """Normalised module maps (N, 1, h_i, w_i) FP32 by module index (``only``: those indices)."""
        wanted = tuple(range(len(self.module_names))) if only is None else only
        x = self.normalize(images)  # FP32: each scale is resized, then cast
        n = len(self.outputs)
        maps: dict[int, torch.Tensor] = {}
        for g, group in enumerate(self.students):
            js = [j for j in range(n) if g * n + j in wanted]
            if not js:
                continue  # every module of this scale dropped: its teacher pass is skipped too
            ins, targets = self._teacher_scale(x, g)
            for j in js:
                i = g * n + j
                m = self.distance(targets[j], group[j](ins[j]))
                maps[i] = self.level_norm.level(i, m)
        return maps

    def named_level_maps(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {self.module_names[i]: m for i, m in self.module_maps(images).items()}

    def combine(self, maps: dict[int, torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """Σ_i w_i·upsample(φ_i) at the reference size (eq. 4 with equal weights, eq. 7 after a search)."""
        combined = None
        for i in self.kept:
            term = upsample(self.evidence([maps[i]])[0], size) * self.module_weight[i]  # a module only adds
            combined = term if combined is None else combined + term
        return combined

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.module_maps(images, only=self.kept)
        return self.finish(self.combine(maps, (images.shape[1], images.shape[2])))

    def forward_with_levels(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        maps = self.module_maps(images)
        score, amap = self.finish(self.combine(maps, (images.shape[1], images.shape[2])))
        return score, amap, {self.module_names[i]: m for i, m in maps.items()}

    @torch.no_grad()
    def fit_feature_statistics(self, images, batch_size: int = 16, max_images: int = 128) -> None:
        """Channel mean/std of each scale's target taps over uint8 training images (N, H, W, 3)."""
        if self.config.distance == "cosine":
            return
        if len(images) > max_images:
            images = images[np.linspace(0, len(images) - 1, max_images).round().astype(int)]
        for g, std in enumerate(self.standardize):
            sums, squares, counts = None, None, None
            for i in range(0, len(images), batch_size):
                batch = torch.as_tensor(images[i:i + batch_size]).to(self.normalize.mean.device)
                feats = self.teacher(self._scaled(self.normalize(batch), g))
                feats = [feats[k].float() for k in self.outputs]
                s1 = [f.sum(dim=(0, 2, 3)) for f in feats]
                s2 = [f.pow(2).sum(dim=(0, 2, 3)) for f in feats]
                c = [f.shape[0] * f.shape[2] * f.shape[3] for f in feats]
                sums = s1 if sums is None else [a + b for a, b in zip(sums, s1)]
                squares = s2 if squares is None else [a + b for a, b in zip(squares, s2)]
                counts = c if counts is None else [a + b for a, b in zip(counts, c)]
            std.fit(sums, squares, counts)

    def fit_after_training(self, data_config) -> dict | None:
        """Run the module-importance search when ``importance_data`` is set (training loop hook)."""
        if not self.config.importance_data:
            return None
        from inspector.models.feature_imitation.importance import search_from_dataset

        return search_from_dataset(self, self.config.importance_data, data_config)

    def describe(self) -> dict:
        info = super().describe()
        info["teachers"] = [teacher_identity(self.teacher)]
        info["levels"] = list(self.config.levels)
        info["scales"] = [{"scale": s, "input_size": list(hw)} for s, hw in zip(self.config.scales, self.sizes)]
        info["distance"] = self.config.distance
        info["map_combination"] = "weighted mean of upsampled module maps (scale x level)"
        weights = dict(zip(self.module_names, [round(w, 6) for w in self.module_weight.tolist()]))
        searched = bool(self.importance_searched)
        info["module_importance"] = {
            "searched": searched,
            "weights": weights,
            "kept": [self.module_names[i] for i in self.kept],
            "note": ("softmax weights learned on a validation set with defects (paper eq. 7-10); "
                     "student weights untouched" if searched else EQUAL_WEIGHTS_NOTE),
        }
        info["substitutions"] = [{"paper": "wide_resnet50_2", "used": BACKBONES[self.config.preset],
                                  "reason": "WideResNet-50 / ResNet-50 ImageNet weights are not obtainable "
                                            "offline; ResNet-18 (paper) or Lite0 (offline) instead"}]
        return info


def build_feature_imitation(config: FeatureImitationConfig) -> FeatureImitationModel:
    """Teacher (weights resolved as configured) and one random-init sub-block group per scale."""
    backbone = BACKBONES[config.preset]
    taps, outputs = teacher_taps(backbone, tuple(config.levels))
    teacher = build_backbone(backbone, taps, weights=config.teacher_weights)
    return FeatureImitationModel(config, teacher, outputs)


_SGD = {"optimizer": "sgd", "lr": 0.5, "momentum": 0.9, "weight_decay": 1e-4, "batch_size": 16}  # paper §III-A
_ADAM = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-5, "batch_size": 16}  # as the other offline presets
ENTRY = ModelEntry(FeatureImitationConfig, build_feature_imitation,
                   {"paper": {**_SGD, "epochs": 600}, "offline": {**_ADAM}})
