"""The student-teacher model contract and the shared single-teacher implementation.

Every model is an ``nn.Module`` whose eval ``forward`` takes the raw uint8 image
batch (N, H, W, 3) RGB and returns ``(score (N,), anomaly_map (N, 1, H, W))``:
normalisation, teacher, student, distances, upsampling, smoothing and the
map→score reduction are all inside, so the exported graph is the whole
inference (DESIGN.md seam 1). ``loss(images)`` is the training objective.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from inspector.config import bounded, suggest
from inspector.contract import MAX_IMAGE_SIDE  # one home: the contract (model cards share it)
from inspector.errors import ConfigError
from inspector.models.common import (
    configured_distance,
    ensemble_maps,
    FeatureStandardization,
    GaussianSmoothing,
    ImageNormalize,
    LevelNormalization,
    combine_levels,
    freeze,
    hard_mse,
    pooled_distance,
    reduce_score,
)


# Teachers an offline single-teacher recipe may use (``model.teacher``): EfficientNet-Lite
# variants share the stage layout (taps blocks.0..6 at the same strides), so a preset's
# taps fit each; the student adapts to their channels. Paper presets keep their paper's.
OfflineTeacher = Literal["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
# The offline presets' teacher (reduced_student, stfpm, mixed_teacher, ast): EfficientNet-Lite1 since
# benchmarks/README.md "Session 24" measured it against Lite0 on the current recipe. A checkpoint whose
# saved offline config names no teacher was trained on Lite0, the only one before ``teacher`` was a field.
OFFLINE_TEACHER = "efficientnet_lite1"
OFFLINE_TEACHER_BEFORE = "efficientnet_lite0"


def check_offline_teacher(config, where: str) -> None:
    """ConfigError if ``config.teacher`` is set on a preset other than ``offline``."""
    if config.preset != "offline" and config.teacher is not None:
        raise ConfigError(f"{where}.teacher: only the offline preset has a choice of teacher "
                          f"(the {config.preset} preset keeps its paper's); remove it or use preset: offline")


@dataclass(frozen=True)
class ModelConfig:
    """Fields every model has; each model subclasses it with its own defaults."""

    name: str = ""
    preset: Literal["offline", "paper"] = "offline"
    # (height, width) of the model input; at most MAX_IMAGE_SIDE (inspector.contract: the one rule)
    image_size: tuple[int, int] = bounded((256, 256), ge=32, le=MAX_IMAGE_SIDE)
    teacher_weights: str | None = None  # a file; None: default resolution; "random": tests only
    # Fields left at None take the preset's value (PRESET_DEFAULTS) when the config is built.
    score: Literal["max", "mean", "sum", "topk"] | None = None
    score_topk: float = bounded(0.01, gt=0, le=1)  # fraction of map pixels averaged by score: topk
    # quantile: per-level maps normalised from validation quantiles (EfficientAD) before combining.
    map_normalization: Literal["none", "quantile"] | None = None
    smoothing_sigma: float = bounded(4.0, ge=0, le=64)
    # Single-teacher models: cosine (STFPM's normalised-feature distance) or standardized_mse
    # (EfficientAD: teacher channels standardised over the training images, squared error),
    # and the hard-feature quantile of the loss (0: plain mean; EfficientAD: 0.999).
    distance: Literal["cosine", "standardized_mse"] | None = None
    # With quantile map normalisation: subtract each level's systematic per-position excess on
    # good validation images, shrunk toward none where positions carry no structure
    # (common.position_offset); "none": one global normalisation per level.
    position_normalization: Literal["none", "shrunk"] | None = None
    # None: the preset's (0, the plain mean, unless a model's offline recipe says otherwise)
    hard_quantile: float | None = bounded(None, ge=0, le=0.9999)
    # What the validation loss (and the seen-image loss of the gap rule) measures, which stops training and
    # picks the weights kept: "mean", the plain mean of the errors, or "hard", the training's hard loss.
    # A batch's top quantile follows the few worst errors of whichever images share the batch: at 0.99 it
    # stopped the reduced student on ELPV mono after 19 epochs (image AUROC 0.940), the mean after 70 (0.953)
    # (benchmarks/README.md "Session 46"). Runs saved before the field measured "hard".
    validation_loss: Literal["mean", "hard"] = "mean"
    # Level maps compare teacher and student after a residual_pool×residual_pool local average
    # (stride 1; PatchCore's neighbourhood aggregation, common.pooled_distance); 1: pixel by
    # pixel. The training loss stays per pixel. Odd, so the map stays aligned.
    residual_pool: int = bounded(1, ge=1, le=9)
    # Weight of EfficientAD's penalty (Batzner et al., WACV 2024, §3.2, "L_ST = L_hard +
    # mean(S(P)^2)"): the student's mean squared output on out-of-distribution images
    # (inspector.data.ood), so its imitation of the teacher does not generalise to what is not
    # the product (a defect included). Training only; 0: off. Needs standardized_mse, whose
    # zero is the teacher's channel mean.
    ood_penalty: float = bounded(0.0, ge=0, le=10)

    # Fields added after checkpoints were first written, with the value a checkpoint whose saved config
    # lacks them was trained with (models/checkpoint.py): a new default must not change an old model.
    WRITTEN_BEFORE: ClassVar[dict[str, object]] = {"residual_pool": 1, "ood_penalty": 0.0, "validation_loss": "hard"}
    # whether the model's training loss applies hard_quantile (with distance standardized_mse)
    HARD_LOSS: ClassVar[bool] = False
    # Offline recipes: measured on kolektorsdd + elpv (benchmarks/bench_quality.py, MODELS.md);
    # paper presets keep their papers' choices (max of the map, no map normalisation).
    PRESET_DEFAULTS: ClassVar[dict[str, dict]] = {
        "paper": {"score": "max", "map_normalization": "none", "distance": "cosine", "position_normalization": "none"},
        "offline": {"score": "topk", "map_normalization": "quantile", "distance": "standardized_mse",
                    "position_normalization": "shrunk"},
    }

    @classmethod
    def written_before(cls, saved: dict) -> dict[str, object]:
        """The fields a checkpoint's saved model config ``saved`` lacks, with the values it was trained with:
        :attr:`WRITTEN_BEFORE`, and for an offline preset with a ``teacher`` field, :data:`OFFLINE_TEACHER_BEFORE`
        (the paper presets take no teacher). ``models/checkpoint.py`` ``as_written`` applies them."""
        before = dict(cls.WRITTEN_BEFORE)
        if "teacher" in {f.name for f in fields(cls)} and saved.get("preset", "offline") == "offline":
            before["teacher"] = OFFLINE_TEACHER_BEFORE
        return {k: v for k, v in before.items() if k not in saved}

    def __post_init__(self) -> None:
        for key, value in self.PRESET_DEFAULTS.get(self.preset, {}).items():
            if getattr(self, key, None) is None:
                object.__setattr__(self, key, value)
        if self.hard_quantile is None:
            object.__setattr__(self, "hard_quantile", 0.0)

    def takes_hard_loss(self) -> bool:
        """Whether the training loss applies ``hard_quantile``: a student-teacher model (``HARD_LOSS``) whose
        distance is the squared error of standardised features (a cosine distance has no such quantile)."""
        return self.HARD_LOSS and self.distance == "standardized_mse"

    def validate(self, where: str) -> None:
        h, w = self.image_size
        if h < 32 or w < 32 or h % 32 or w % 32:
            raise ConfigError(f"{where}.image_size: {h}x{w} must be multiples of 32 and at least 32")
        if not 0 <= self.smoothing_sigma <= 64:
            raise ConfigError(f"{where}.smoothing_sigma: must be in [0, 64], got {self.smoothing_sigma}")
        if not 0 < self.score_topk <= 1:
            raise ConfigError(f"{where}.score_topk: must be in (0, 1], got {self.score_topk}")
        if not 0 <= self.hard_quantile < 1:
            raise ConfigError(f"{where}.hard_quantile: must be in [0, 1), got {self.hard_quantile}")
        if self.hard_quantile > 0 and not self.takes_hard_loss():
            raise ConfigError(f"{where}.hard_quantile: {self.hard_quantile} has no effect here: the hard loss "
                              f"needs a student-teacher model with distance standardized_mse "
                              f"(this is {self.preset!r} with distance {self.distance!r}); set it to 0")
        if not 0 <= self.ood_penalty <= 10:
            raise ConfigError(f"{where}.ood_penalty: must be in [0, 10], got {self.ood_penalty}")
        if self.ood_penalty > 0 and not (self.HARD_LOSS and self.distance == "standardized_mse"):
            what = (f"the {self.preset!r} preset uses distance {self.distance!r}" if self.HARD_LOSS
                    else f"{self.name} has no teacher-imitation loss it applies to")
            raise ConfigError(f"{where}.ood_penalty: {self.ood_penalty} has no effect here: the penalty needs "
                              f"a student-teacher model with distance standardized_mse ({what}); set it to 0")
        if not (isinstance(self.residual_pool, int) and 1 <= self.residual_pool <= 9 and self.residual_pool % 2):
            raise ConfigError(f"{where}.residual_pool: must be an odd integer in [1, 9], got {self.residual_pool!r}")


class AnomalyModel(nn.Module):
    """Base of all models: uint8 in, ``(score, map)`` out; FP16-capable networks."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.normalize = ImageNormalize()
        self.smoothing = GaussianSmoothing(config.smoothing_sigma)
        self.compute_dtype = torch.float32

    def networks(self) -> list[nn.Module]:
        """The convolutional networks that may run in FP16 (teachers and students)."""
        raise NotImplementedError

    def trainable(self) -> list[nn.Parameter]:
        """Parameters the optimiser updates."""
        raise NotImplementedError

    def set_compute_dtype(self, dtype: torch.dtype) -> "AnomalyModel":
        """Run the networks in ``dtype``; normalisation, distances and smoothing stay FP32."""
        for net in self.networks():
            net.to(dtype)
        self.compute_dtype = dtype
        return self

    def network_input(self, images: torch.Tensor) -> torch.Tensor:
        return self.normalize(images).to(self.compute_dtype)

    def distance(self, teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        """The per-pixel level map (N, 1, h, w) FP32 of the configured distance."""
        return configured_distance(self.config.distance, teacher, student)

    def map_distance(self, teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        """The level map (N, 1, h, w) FP32: the distance after ``residual_pool`` local averaging."""
        return pooled_distance(self.config.distance, teacher, student, self.config.residual_pool)

    def finish(self, amap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Smooth the full-resolution map and reduce it to a score (both FP32).

        Quantile-normalised maps are clamped at 0 first: below the 0.9 quantile of the
        good validation images is "normal", and the map contract (≥ 0, thresholds > 0) holds.
        """
        amap = amap.float()
        if self.config.map_normalization == "quantile":
            amap = amap.clamp_min(0.0)
        amap = self.smoothing(amap)
        return reduce_score(amap, self.config.score, self.config.score_topk), amap

    def evidence(self, level_maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """The level maps as they enter the combination: quantile-normalised maps clamped at 0 each.

        Below a level's 0.9 validation quantile is "normal" for that level; clamping each
        level before the sum means a level can only add evidence, never subtract it, so a
        level that scores defects lower than good images (MODELS.md, "Quality on real
        data") cannot cancel the levels that do see them.
        """
        if self.config.map_normalization != "quantile":
            return level_maps
        return [m.clamp_min(0.0) for m in level_maps]

    def named_level_maps(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The per-level maps for a uint8 (N, H, W, 3) batch, by level name: FP32 (N, 1, h_l, w_l).

        Maps are at their level's own resolution, after any map normalisation, before
        levels are combined; a diagnostic (per-level AUROC), not part of the graph.
        """
        raise NotImplementedError

    def forward_with_levels(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """``forward``'s (score, map) plus :meth:`named_level_maps`, in one pass where the model allows."""
        score, amap = self(images)
        return score, amap, self.named_level_maps(images)

    @torch.no_grad()
    def calibrate_maps(self, images, batch_size: int = 16) -> None:
        """Fit the per-level map normalisation from validation images (uint8 (N, H, W, 3)).

        A no-op unless ``map_normalization: quantile``; the constants are buffers,
        so the checkpoint and the exported graph carry them.
        """
        norm = getattr(self, "level_norm", None)
        if norm is None or self.config.map_normalization != "quantile":
            return
        was_training = self.training
        self.eval()
        norm.reset()  # a second calibration must see the raw maps, per-position offsets included
        collected: dict[str, list[torch.Tensor]] = {}
        device = self.normalize.mean.device  # the model's device (training may run on a GPU)
        for i in range(0, len(images), batch_size):
            batch = torch.as_tensor(images[i:i + batch_size]).to(device)
            for name, m in self.named_level_maps(batch).items():
                collected.setdefault(name, []).append(m.float())
        norm.fit([torch.cat(v) for v in collected.values()])
        self.train(was_training)

    def describe(self) -> dict:
        """Identity for the sidecar: name, preset, teachers and parameter counts."""
        return {
            "name": self.config.name,
            "preset": self.config.preset,
            "parameters": sum(p.numel() for p in self.parameters()),
            "trainable_parameters": sum(p.numel() for p in self.trainable()),
        }

    def hard_loss_applies(self) -> bool:
        """Whether the loss now is the hard loss: ``hard_quantile`` > 0 and training (train mode), or a
        validation that measures it (``validation_loss: hard``); else the plain mean."""
        return self.config.hard_quantile > 0 and (self.training or self.config.validation_loss == "hard")


class SingleTeacherModel(AnomalyModel):
    """One frozen teacher, one student, per-level distances combined into one map.

    ``teacher_pool[i]`` average-pools teacher level i by that factor before the
    comparison (the reduced student halves each level's resolution this way).
    ``compare`` names the taps whose teacher/student pair is trained and mapped
    (None: all); the student still computes the others on its way (they feed
    its next stage) but they carry no loss and no map.

    ``extra_students`` (same architecture as ``student``, independently initialised) make
    an ensemble (Uninformed Students, §3.3, :func:`~inspector.models.common.ensemble_maps`):
    each level then gives two maps, the ensemble mean's error and the students'
    variance, each normalised on its own before the sum (``level_names`` gains a
    ``<tap>/variance`` entry per level).

    ``student_source`` (a tap index, or None for the image): the students are fed that frozen
    teacher tap; the cached targets of :meth:`teacher_targets` then end with it.
    """

    def __init__(self, config, teacher: nn.Module, student: nn.Module,
                 teacher_pool: tuple[int, ...], map_combination: str,
                 compare: tuple[str, ...] | None = None, extra_students: tuple[nn.Module, ...] = (),
                 student_source: int | None = None) -> None:
        super().__init__(config)
        # None: the students see the image; i: they see the teacher's tap i (frozen, unpooled)
        self.student_source = student_source
        self.teacher = freeze(teacher)
        self.student = student
        self.teacher_pool = tuple(teacher_pool)
        self.map_combination = map_combination
        names = [t.name for t in teacher.feature_info]
        unknown = [c for c in compare or () if c not in names]
        if unknown:
            raise ConfigError(f"model.levels: unknown tap '{unknown[0]}'{suggest(unknown[0], names)}; "
                              f"taps of this preset: {names}")
        self.compare = tuple(range(len(names))) if not compare else tuple(names.index(c) for c in compare)
        # Students 2..M of an ensemble; the first keeps the name ``student``, so a
        # single-student checkpoint's parameter names are unchanged.
        self.extra_students = nn.ModuleList(extra_students)
        taps = [names[i] for i in self.compare]
        strides = [teacher.feature_info[i].stride * self.teacher_pool[i] for i in self.compare]
        if extra_students:
            taps, strides = taps + [f"{t}/variance" for t in taps], strides * 2
        self.level_names = tuple(taps)
        self.level_norm = LevelNormalization(len(self.level_names), level_shapes(config, strides))
        self.standardize = FeatureStandardization([teacher.feature_info[i].channels for i in self.compare])

    def networks(self) -> list[nn.Module]:
        return [self.teacher, self.student, *self.extra_students]

    def students(self) -> list[nn.Module]:
        return [self.student, *self.extra_students]

    def trainable(self) -> list[nn.Parameter]:
        return [p for s in self.students() for p in s.parameters()]

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # BatchNorm of a frozen teacher must never use batch statistics
        return self

    def teacher_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The compared teacher levels (pooled), in ``level_names`` order."""
        return self.teacher_pass(x)[0]

    def teacher_pass(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """One teacher pass: (:meth:`teacher_features`, the students' input: ``x`` or the teacher's source tap)."""
        feats = self.teacher(x)
        pooled = self.pool_levels(feats)
        targets = self.standardize(pooled) if self.config.distance == "standardized_mse" else pooled
        return targets, x if self.student_source is None else feats[self.student_source]

    def pooled_teacher(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.pool_levels(self.teacher(x))

    def pool_levels(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [feats[i] if self.teacher_pool[i] == 1 else F.avg_pool2d(feats[i], self.teacher_pool[i])
                for i in self.compare]

    def student_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the students see for a normalised input ``x`` (the teacher's source tap without gradients)."""
        if self.student_source is None:
            return x
        with torch.no_grad():
            return self.teacher(x)[self.student_source]

    @torch.no_grad()
    def fit_feature_statistics(self, images, batch_size: int = 16, max_images: int = 128) -> None:
        """Channel mean/std of the compared teacher levels over uint8 training images (N, H, W, 3)."""
        if self.config.distance != "standardized_mse":
            return
        fit_channel_statistics(self.standardize, lambda b: self.pooled_teacher(self.network_input(b)),
                               images, self.normalize.mean.device, batch_size, max_images)

    def student_features(self, x: torch.Tensor, student: nn.Module | None = None) -> list[torch.Tensor]:
        """``student``'s (default: the first) outputs for the compared levels, in tap order."""
        outputs = (student or self.student)(x)
        return [outputs[i] for i in self.compare]

    def level_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            teacher, x = self.teacher_pass(self.network_input(images))
        if not self.extra_students:
            student = self.student_features(x)
            return self.level_norm([self.map_distance(t, s) for t, s in zip(teacher, student)])
        per_student = [self.student_features(x, s) for s in self.students()]
        pairs = [ensemble_maps(self.config.distance, t, list(outs), self.config.residual_pool)
                 for t, outs in zip(teacher, zip(*per_student))]
        return self.level_norm([e for e, _ in pairs] + [v for _, v in pairs])

    def named_level_maps(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(self.level_names, self.level_maps(images)))

    def teacher_targets(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The frozen teacher's features: the training loop may compute them once and cache them."""
        with torch.no_grad():
            targets, source = self.teacher_pass(self.network_input(images))
        return targets if self.student_source is None else [*targets, source]

    def loss_with_targets(self, images: torch.Tensor, targets: list[torch.Tensor]) -> torch.Tensor:
        """Σ over levels of the mean (over pixels and batch) of the level map (an ensemble: mean over students).

        With ``hard_quantile`` > 0 (standardized_mse only), each level's term is the mean of
        its squared errors at or above that quantile of the batch (EfficientAD's hard loss).
        """
        if self.student_source is None:
            x = self.network_input(images)
        else:  # the cached targets end with the teacher's source tap
            targets, x = targets[:-1], targets[-1]
        return sum(self.student_loss(targets, self.student_features(x, s)) for s in self.students()) / (
            1 + len(self.extra_students))

    def student_loss(self, targets: list[torch.Tensor], student: list[torch.Tensor]) -> torch.Tensor:
        """One student's loss; an ensemble's loss is its students' mean (each student regresses alone)."""
        if self.config.distance == "standardized_mse" and self.hard_loss_applies():
            return sum(hard_mse(t, s, self.config.hard_quantile) for t, s in zip(targets, student))
        return sum(self.distance(t, s).mean() for t, s in zip(targets, student))

    def loss(self, images: torch.Tensor) -> torch.Tensor:
        return self.loss_with_targets(images, self.teacher_targets(images))

    def ood_penalty_loss(self, images: torch.Tensor) -> torch.Tensor:
        """EfficientAD's penalty (§3.2): Σ over levels of the mean squared student output on
        out-of-distribution uint8 images (B, H, W, 3), averaged over an ensemble's students.
        Unweighted; the loop multiplies it by ``config.ood_penalty``.
        """
        x = self.student_input(self.network_input(images))
        return sum(sum(s.pow(2).mean() for s in self.student_features(x, st)) for st in self.students()) / (
            1 + len(self.extra_students))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        score, amap, _ = self.forward_with_levels(images)
        return score, amap

    def forward_with_levels(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        levels = self.level_maps(images)
        size = (images.shape[1], images.shape[2])
        score, amap = self.finish(combine_levels(self.evidence(levels), size, self.map_combination))
        return score, amap, dict(zip(self.level_names, levels))

    def describe(self) -> dict:
        info = super().describe()
        info["teachers"] = [teacher_identity(self.teacher)]
        info["map_combination"] = self.map_combination
        info["levels"] = list(self.level_names)
        info["distance"] = self.config.distance
        return info


def level_shapes(config: ModelConfig, strides: list[int]) -> list[tuple[int, int]] | None:
    """Static (h, w) of each level map when the config asks for position offsets, else None.

    Input sizes are multiples of 32 (``validate``) and strides divide 32, so h = H / stride.
    """
    if config.map_normalization != "quantile" or config.position_normalization != "shrunk":
        return None
    h, w = config.image_size
    return [(-(-h // s), -(-w // s)) for s in strides]


@torch.no_grad()
def fit_channel_statistics(standardize: FeatureStandardization, features, images, device,
                           batch_size: int = 16, max_images: int = 128) -> None:
    """Fit ``standardize`` from ``features(uint8 batch) -> [level (N, C, h, w)]`` over training images.

    At most ``max_images`` evenly spaced images (uint8 (N, H, W, 3)): each gives hundreds
    of positions per channel, so more only costs teacher passes.
    """
    if len(images) > max_images:
        images = images[np.linspace(0, len(images) - 1, max_images).round().astype(int)]
    sums, squares, counts = None, None, None
    for i in range(0, len(images), batch_size):
        feats = features(torch.as_tensor(images[i:i + batch_size]).to(device))
        s1 = [f.float().sum(dim=(0, 2, 3)) for f in feats]
        s2 = [f.float().pow(2).sum(dim=(0, 2, 3)) for f in feats]
        n = [f.shape[0] * f.shape[2] * f.shape[3] for f in feats]
        sums = s1 if sums is None else [a + b for a, b in zip(sums, s1)]
        squares = s2 if squares is None else [a + b for a, b in zip(squares, s2)]
        counts = n if counts is None else [a + b for a, b in zip(counts, n)]
    standardize.fit(sums, squares, counts)


def teacher_identity(extractor: nn.Module) -> dict:
    """Backbone name, taps and weight source of a feature extractor (for the sidecar)."""
    return {
        "backbone": getattr(extractor, "backbone_name", type(extractor).__name__),
        "taps": [t.name for t in getattr(extractor, "feature_info", ())],
        "weights": getattr(extractor, "weights_source", "unknown"),
    }
