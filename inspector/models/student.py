"""Students built to mirror a teacher's feature taps (the reduced student and its offline variant).

A student is a stem followed by one residual block per tap: each block takes the
previous level to the tap's stride and channel count (MODELS.md, reduced student).
It returns one feature map per tap, shape-matched to the teacher's.
"""

from __future__ import annotations

from torch import nn

from inspector.models.backbones import BasicBlock
from inspector.models.backbones.features import FeatureTap

STEMS = {
    # name: (stride, channels)
    "resnet": (4, 64),  # conv7×7/2 → BN → ReLU → max-pool 3/2 (ResNet-18's stem)
    "lite": (2, 32),  # conv3×3/2 → BN → ReLU (EfficientNet-Lite's stem width)
}


def make_stem(kind: str) -> nn.Sequential:
    """The student's stem: 'resnet' (stride 4, 64 ch) or 'lite' (stride 2, 32 ch)."""
    if kind == "resnet":
        return nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
    if kind == "lite":
        return nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True))
    raise ValueError(f"unknown stem '{kind}'")


def residual_stage(in_ch: int, out_ch: int, stride: int) -> BasicBlock:
    """One torchvision BasicBlock, with a 1×1 conv+BN shortcut when shape changes."""
    downsample = None
    if stride != 1 or in_ch != out_ch:
        downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
    return BasicBlock(in_ch, out_ch, stride=stride, downsample=downsample)


class MirrorStudent(nn.Module):
    """Stem + one BasicBlock per tap; output i matches tap i's channels and stride."""

    def __init__(self, taps: tuple[FeatureTap, ...], stem: str = "resnet") -> None:
        super().__init__()
        self.stem = make_stem(stem)
        stride, channels = STEMS[stem]
        self.stem_is_first_tap = taps[0].stride == stride and taps[0].channels == channels
        stages = []
        for tap in taps[1:] if self.stem_is_first_tap else taps:
            if tap.stride % stride:
                raise ValueError(f"tap {tap.name}: stride {tap.stride} not reachable from {stride}")
            stages.append(residual_stage(channels, tap.channels, tap.stride // stride))
            stride, channels = tap.stride, tap.channels
        self.stages = nn.ModuleList(stages)

    def forward(self, x):
        x = self.stem(x)
        outputs = [x] if self.stem_is_first_tap else []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs
