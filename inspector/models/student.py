"""Students built to mirror a teacher's feature taps (the reduced student and its offline variant).

A student is a stem followed by one residual stage per tap: each stage takes the
previous level to the tap's stride and channel count (MODELS.md, reduced student).
It returns one feature map per tap, shape-matched to the teacher's.

``depth`` (BasicBlocks per stage) and ``width`` (a stage's channels as a multiple of
its tap's; a 1×1 conv then projects each output to the tap's channels) set the
student's capacity; ``linear_heads`` gives every output a linear 1×1 conv, so it can
take negative values (standardised targets); ``coords`` appends the pixel coordinates to
the image the stem sees (CoordConv, Liu et al. 2018), so the student can predict what a place
of an aligned part should look like, not only what its neighbourhood suggests.
"""

from __future__ import annotations

import torch
from torch import nn

from inspector.models.backbones import BasicBlock
from inspector.models.backbones.features import FeatureTap

STEMS = {
    # name: (stride, channels)
    "resnet": (4, 64),  # conv7×7/2 → BN → ReLU → max-pool 3/2 (ResNet-18's stem)
    "lite": (2, 32),  # conv3×3/2 → BN → ReLU (EfficientNet-Lite's stem width)
}


def make_stem(kind: str, in_ch: int = 3) -> nn.Sequential:
    """The student's stem: 'resnet' (stride 4, 64 ch) or 'lite' (stride 2, 32 ch)."""
    if kind == "resnet":
        return nn.Sequential(
            nn.Conv2d(in_ch, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
    if kind == "lite":
        return nn.Sequential(nn.Conv2d(in_ch, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True))
    raise ValueError(f"unknown stem '{kind}'")


def residual_block(in_ch: int, out_ch: int, stride: int) -> BasicBlock:
    """One torchvision BasicBlock, with a 1×1 conv+BN shortcut when shape changes."""
    downsample = None
    if stride != 1 or in_ch != out_ch:
        downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
    return BasicBlock(in_ch, out_ch, stride=stride, downsample=downsample)


def residual_stage(in_ch: int, out_ch: int, stride: int, depth: int = 1) -> nn.Module:
    """``depth`` BasicBlocks: the first changes stride/channels, the rest keep them.

    One block is returned bare, so depth-1 students keep their checkpoints' parameter names.
    """
    if depth == 1:
        return residual_block(in_ch, out_ch, stride)
    return nn.Sequential(residual_block(in_ch, out_ch, stride),
                         *(residual_block(out_ch, out_ch, 1) for _ in range(depth - 1)))


class MirrorStudent(nn.Module):
    """Stem + one residual stage per tap; output i matches tap i's channels and stride.

    ``depth`` ≥ 1 BasicBlocks per stage; ``width`` ≥ 1: stage i has round(width·C_i)
    channels and a 1×1 conv (with bias) maps its output to the tap's C_i.
    ``linear_heads``: that 1×1 conv at every width. A BasicBlock ends in a ReLU, so
    without a head the outputs are ≥ 0: right for a ResNet teacher's (post-ReLU)
    features, but a channel-standardised teacher is about half negative, and a
    ReLU output cannot reach those targets (benchmarks/README.md, "Session 5").
    The next stage always takes the block's own (post-ReLU) output.
    ``source``: the student is fed that teacher tap (N, C, H/s, W/s) instead of the image; its
    stem is then a BatchNorm over the tap's channels and its stages start at the tap's stride
    (``taps[0]`` equal to ``source`` is passed through as output 0).
    ``coords``: the stem sees the image with two more channels, its y and x coordinates in
    [-1, 1] (:func:`with_coordinates`); image-fed students only. Zero-padded convolutions
    know where they are only near the border, so without them a student predicts the same
    features for the same neighbourhood anywhere on the part (benchmarks/README.md "Session 39":
    a small gain on KolektorSDD only, so off by default).
    The defaults (1, 1.0, False, None, False) are the reduced student of the paper.
    """

    def __init__(self, taps: tuple[FeatureTap, ...], stem: str = "resnet", depth: int = 1,
                 width: float = 1.0, linear_heads: bool = False, source: FeatureTap | None = None,
                 coords: bool = False) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"student depth must be >= 1 and width >= 1, got {depth}, {width}")
        if coords and source is not None:
            raise ValueError("a student fed a teacher tap takes no coordinate channels")
        self.coords = coords
        if source is None:
            self.stem = make_stem(stem, 5 if coords else 3)
            stride, channels = STEMS[stem]
        else:  # fed the teacher's own ``source`` tap: a BatchNorm brings its range to the blocks'
            self.stem = nn.BatchNorm2d(source.channels)
            stride, channels = source.stride, source.channels
        self.stem_is_first_tap = taps[0].stride == stride and taps[0].channels == channels
        stages, heads = [], []
        for tap in taps[1:] if self.stem_is_first_tap else taps:
            if tap.stride % stride:
                raise ValueError(f"tap {tap.name}: stride {tap.stride} not reachable from {stride}")
            hidden = int(round(tap.channels * width))
            stages.append(residual_stage(channels, hidden, tap.stride // stride, depth))
            linear = linear_heads or hidden != tap.channels
            heads.append(nn.Conv2d(hidden, tap.channels, 1) if linear else nn.Identity())
            stride, channels = tap.stride, hidden
        self.stages = nn.ModuleList(stages)
        self.heads = nn.ModuleList(heads)

    def forward(self, x):
        if self.coords:
            x = with_coordinates(x)
        x = self.stem(x)
        outputs = [x] if self.stem_is_first_tap else []
        for stage, head in zip(self.stages, self.heads):
            x = stage(x)
            outputs.append(head(x))
        return outputs


def with_coordinates(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) float → (N, C+2, H, W), same dtype: each pixel's row and column appended,
    scaled to [-1, 1] from the first to the last (CoordConv: Liu et al., "An intriguing failing of
    convolutional neural networks and the CoordConv solution", NeurIPS 2018, §4)."""
    n, _, h, w = x.shape
    ys = torch.arange(h, dtype=x.dtype, device=x.device) * (2.0 / max(h - 1, 1)) - 1.0
    xs = torch.arange(w, dtype=x.dtype, device=x.device) * (2.0 / max(w - 1, 1)) - 1.0
    grid_y = ys.view(1, 1, h, 1).expand(n, 1, h, w)
    grid_x = xs.view(1, 1, 1, w).expand(n, 1, h, w)
    return torch.cat([x, grid_y, grid_x], dim=1)
