"""The reduced student: one residual block per teacher level, trained from scratch.

Paper preset (MODELS.md): ResNet-18 teacher tapped at the stem, layer1, layer2,
layer3, with layer1..3 average-pooled by 2 so each level halves the resolution
(64→32→16→8 at 256 input); student = ResNet stem + one stride-2 BasicBlock per level.
Offline preset: EfficientNet-Lite1 teacher (``teacher``: Lite0 or Lite2 instead; Lite0 before
benchmarks/README.md "Session 24") tapped at
``blocks.1/2/3/4/6`` (strides 4/8/16/16/32), student = light stem + one BasicBlock per tap
mirroring them, each output through a linear 1×1 head (the channel-standardised targets
are signed, a BasicBlock's ReLU output is not: benchmarks/README.md, "Session 5, why the
students trail"); the
levels compared (``levels``) are ``blocks.2``, ``blocks.4`` and ``blocks.6``
(strides 8/16/32): on real data the stride-4 map scores defective images no
higher than good ones (MODELS.md, "Quality on real data"), and adding the deeper
stride-16 and stride-32 levels (as MixedTeacher's EfficientNet part has) raised
KolektorSDD from 0.86 to 0.94 image AUROC at 12 epochs (benchmarks/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Literal

from inspector.config import bounded
from inspector.errors import ConfigError
from inspector.models.backbones import build_backbone
from inspector.models.base import (OFFLINE_TEACHER, ModelConfig, OfflineTeacher, SingleTeacherModel,
                                   check_offline_teacher)
from inspector.models.common import OFFLINE_HARD_QUANTILE
from inspector.models.entry import ADAM, SGD, ModelEntry
from inspector.models.student import MirrorStudent

PRESETS = {
    # backbone, taps, teacher pooling per tap, student stem
    "paper": ("resnet18", ("stem", "layer1", "layer2", "layer3"), (1, 2, 2, 2), "resnet"),
    "offline": (OFFLINE_TEACHER, ("blocks.1", "blocks.2", "blocks.3", "blocks.4", "blocks.6"), (1, 1, 1, 1, 1),
                "lite"),
}


@dataclass(frozen=True)
class ReducedStudentConfig(ModelConfig):
    name: str = "reduced_student"
    HARD_LOSS: ClassVar[bool] = True  # its student loss applies hard_quantile (common.hard_mse)
    map_combination: Literal["sum", "product"] = "sum"
    # Taps whose teacher/student pair is trained and mapped; None: the preset's (see OFFLINE_LEVELS).
    levels: tuple[str, ...] | None = None
    # Offline preset only: the frozen teacher (benchmarks/README.md "Session 5" and "Session 24" compare them).
    teacher: OfflineTeacher | None = None
    # Student capacity (MirrorStudent): BasicBlocks per stage and channels as a multiple of the
    # tap's; None: the preset's (paper: one block, the tap's width).
    student_depth: int | None = bounded(None, ge=1, le=4)
    student_width: float | None = bounded(None, ge=1, le=4)
    # "linear": a 1×1 conv after each compared block, so the student's outputs can be negative
    # (needed for channel-standardised targets, distance: standardized_mse); "relu": the block's
    # own ReLU output (the paper: a ResNet teacher's post-ReLU features).
    student_head: Literal["relu", "linear"] | None = None
    # Independently initialised students trained together and scored as an ensemble (Uninformed
    # Students, Bergmann et al. CVPR 2020 §3.3: error of the students' mean + their variance;
    # benchmarks/README.md "Session 6, an ensemble of students"); the paper preset keeps 1.
    students: int = bounded(1, ge=1, le=4)
    # "image": the students start from the image with their own stem (the paper); "teacher": they
    # start from the frozen teacher's first tap (offline: blocks.1, stride 4), so only the later
    # stages are learned: fewer epochs, 0.92× the GFLOPs, and 0.001–0.013 lower image AUROC on
    # KolektorSDD and ELPV (benchmarks/README.md "Session 29").
    student_input: Literal["image", "teacher"] = "image"
    # The image-fed student's stem also sees each pixel's (y, x) in [-1, 1] (CoordConv, MirrorStudent),
    # as on aligned parts a place's normal look depends on where it is. Off by default: +0.006 image AUROC
    # on KolektorSDD over two seeds, ±0.000 on ELPV mono and tiles of many shapes (benchmarks/README.md
    # "Session 39"). A student fed the teacher's tap (student_input: teacher) has no image stem and takes none.
    student_coords: bool = False
    WRITTEN_BEFORE: ClassVar[dict[str, object]] = {**ModelConfig.WRITTEN_BEFORE, "student_head": "relu",
                                                   "students": 1, "student_input": "image",
                                                   "student_coords": False}
    PRESET_DEFAULTS: ClassVar[dict[str, dict]] = {
        "paper": {**ModelConfig.PRESET_DEFAULTS["paper"], "levels": PRESETS["paper"][1],
                  "student_depth": 1, "student_width": 1.0, "student_head": "relu",
},
        "offline": {**ModelConfig.PRESET_DEFAULTS["offline"], "levels": ("blocks.2", "blocks.4", "blocks.6"),
                    "teacher": PRESETS["offline"][0], "student_depth": 1, "student_width": 1.0,
                    "student_head": "linear", "hard_quantile": OFFLINE_HARD_QUANTILE},
    }

    def validate(self, where: str) -> None:
        super().validate(where)
        check_offline_teacher(self, where)
        if not (isinstance(self.students, int) and not isinstance(self.students, bool) and 1 <= self.students <= 4):
            raise ConfigError(f"{where}.students: must be an integer in [1, 4], got {self.students!r}")


def build_reduced_student(config: ReducedStudentConfig, taps: tuple[str, ...] | None = None) -> SingleTeacherModel:
    """Teacher + reduced student; ``taps`` overrides the preset's (MixedTeacher uses fewer)."""
    backbone, preset_taps, pool, stem = PRESETS[config.preset]
    backbone = config.teacher or backbone
    levels = config.levels or None
    if taps and levels:  # MixedTeacher's cut: the preset's levels beyond it are not this part's to compare
        levels = tuple(t for t in levels if t in taps) or None
    taps = taps or preset_taps
    pool = pool[: len(taps)]
    teacher = build_backbone(backbone, taps, weights=config.teacher_weights)
    pooled = tuple(replace(t, stride=t.stride * k) for t, k in zip(teacher.feature_info, pool))
    source = pooled[0] if config.student_input == "teacher" else None
    students = [MirrorStudent(pooled, stem=stem, depth=config.student_depth, width=config.student_width,
                              linear_heads=config.student_head == "linear", source=source,
                              coords=bool(config.student_coords) and source is None)
                for _ in range(config.students)]
    # a level that is no tap of the teacher is refused there (one line naming it), never dropped: a config's
    # levels: [blocks.9] trained on every tap instead, silently
    return SingleTeacherModel(config, teacher, students[0], pool, config.map_combination, compare=levels,
                              extra_students=tuple(students[1:]),
                              student_source=0 if source is not None else None)


ENTRY = ModelEntry(ReducedStudentConfig, build_reduced_student, {"paper": {**SGD, "epochs": 100}, "offline": {**ADAM}})
