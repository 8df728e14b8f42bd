"""Student sub-blocks that mirror the teacher stage they imitate (Hu & Lai, §II-A, Fig. 1).

Sub-block *l* has the module structure of the teacher's stage *l* (the steps
between tap *l−1* and tap *l*), is randomly initialised, and maps the
**teacher's** feature *l−1* to a prediction of the teacher's feature *l*:
``f_s^l = S^l(f_t^{l−1})``. Nothing links one sub-block to another, so each
can be trained, weighted or dropped on its own.
"""

from __future__ import annotations

import copy

from torch import nn

from inspector.models.backbones.features import FeatureExtractor


def stage_steps(extractor: FeatureExtractor) -> list[tuple[str, ...]]:
    """For each tap of ``extractor``, the step paths run after the previous tap up to this one.

    Tap 0's steps start at the input. ``extractor`` must list its taps shallowest first.
    """
    stages, current, seen = [], [], 0
    for step, slots in zip(extractor._steps, extractor._slots):  # noqa: SLF001 — the extractor's own layout
        current.append(step)
        if slots:
            if min(slots) != seen:
                raise ValueError("sub-blocks need the teacher's taps shallowest first, one per stage")
            stages.append(tuple(current))
            current, seen = [], seen + len(slots)
    return stages


def reinitialise(module: nn.Module) -> nn.Module:
    """Fresh parameters and BatchNorm statistics for every layer of a copied stage (trainable, train mode)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            # weight 1, bias 0, running mean 0 / var 1; the copied Lite0 momentum (0.01) stays: training
            # re-estimates the statistics after every epoch (inspector/training/batchnorm.py)
            m.reset_parameters()
        elif hasattr(m, "reset_parameters") and m is not module:
            m.reset_parameters()
    for p in module.parameters():
        p.requires_grad_(True)
    return module.train()


def mirror_subblocks(teacher: FeatureExtractor) -> nn.ModuleList:
    """One sub-block per teacher tap after the first: a random-init copy of the stage that produces it.

    ``teacher`` taps ``(f^1, …, f^L)``; sub-block ``l−2`` maps f^{l−1} (channels and
    stride of tap l−1) to the shape of f^l. Takes the copy before the teacher is frozen or not:
    parameters are re-initialised and made trainable either way.
    """
    stages = stage_steps(teacher)
    blocks = []
    for steps in stages[1:]:
        block = nn.Sequential(*[copy.deepcopy(teacher.body.get_submodule(s)) for s in steps])
        blocks.append(reinitialise(block))
    return nn.ModuleList(blocks)
