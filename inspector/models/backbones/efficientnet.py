"""EfficientNet-B0 / B5 with torchvision's layout and state-dict keys (pure torch).

Layout (torchvision ``torchvision/models/efficientnet.py``): ``features.0`` stem
(conv3x3/2 + BN + SiLU), ``features.1``..``features.7`` the MBConv stages, each
block an ``MBConv`` whose ``block`` Sequential holds [expand 1x1 (when the
expansion ratio is not 1)], depthwise kxk, ``SqueezeExcitation`` (``fc1``,
``fc2``) and the 1x1 projection; ``features.8`` the 1x1 head conv;
``classifier.1`` the Linear layer. torchvision's ImageNet files
(``efficientnet_b0_rwightman-*.pth``, ``efficientnet_b5_lukemelas-*.pth``) load
unchanged. Stochastic depth only acts in training mode; the frozen teacher
never trains.

Taps follow timm's naming: ``blocks.i`` is the output of ``features[i + 1]``.
B5 also has ``blocks36``, the output of its first 36 MBConv blocks counted
across stages (the AST feature); it is the end of stage 6 (304 channels,
stride 32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
from torch import nn

from inspector.models.backbones.features import FeatureTap, TapPoint


def make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's ``_make_divisible``: round to a multiple of ``divisor``, never down by more than 10%."""
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


class ConvNormAct(nn.Sequential):
    """torchvision's ``Conv2dNormActivation``: Conv2d (no bias) -> BN -> optional activation, keys .0/.1."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        activation: bool = True,
    ):
        padding = (kernel_size - 1) // 2
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False),
            norm_layer(out_channels),
        ]
        if activation:
            layers.append(nn.SiLU(inplace=True))
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """torchvision's ``SqueezeExcitation``: global average pool -> fc1 -> SiLU -> fc2 -> sigmoid, times input."""

    def __init__(self, channels: int, squeeze_channels: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = nn.SiLU(inplace=True)
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc2(self.activation(self.fc1(self.avgpool(x))))
        return self.scale_activation(scale) * x


class StochasticDepth(nn.Module):
    """Row-wise stochastic depth (torchvision ``StochasticDepth(p, "row")``); identity in eval mode."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        noise = torch.empty((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device).bernoulli_(survival)
        return x * noise / survival

    def extra_repr(self) -> str:
        return f"p={self.p}"


@dataclass(frozen=True)
class StageConfig:
    """One MBConv stage: expansion ratio, kernel, stride of its first block, channels in/out, block count."""

    expand_ratio: int
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    num_layers: int


class MBConv(nn.Module):
    """torchvision's MBConv block (expand, depthwise, squeeze-excitation, project; residual when shapes match)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expand_ratio: int,
        kernel: int,
        stride: int,
        stochastic_depth_prob: float,
        norm_layer: Callable[[int], nn.Module],
    ):
        super().__init__()
        self.use_res_connect = stride == 1 and in_channels == out_channels
        expanded = make_divisible(in_channels * expand_ratio)
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(ConvNormAct(in_channels, expanded, 1, norm_layer=norm_layer))
        layers.append(ConvNormAct(expanded, expanded, kernel, stride, groups=expanded, norm_layer=norm_layer))
        layers.append(SqueezeExcitation(expanded, max(1, in_channels // 4)))
        layers.append(ConvNormAct(expanded, out_channels, 1, norm_layer=norm_layer, activation=False))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.block(x)
        if self.use_res_connect:
            result = self.stochastic_depth(result) + x
        return result


# EfficientNet-B0 stages (torchvision ``_efficientnet_conf``): expand, kernel, stride, in, out, layers.
_B0_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)


def scaled_stages(width_mult: float, depth_mult: float) -> tuple[StageConfig, ...]:
    """B0's stages scaled as torchvision's ``MBConvConfig`` does (channels to multiples of 8, depth ceil)."""
    return tuple(
        StageConfig(
            e, k, s,
            make_divisible(cin * width_mult),
            make_divisible(cout * width_mult),
            int(math.ceil(n * depth_mult)),
        )
        for e, k, s, cin, cout, n in _B0_STAGES
    )


class EfficientNet(nn.Module):
    """EfficientNet (V1) ImageNet classifier with torchvision's module names."""

    def __init__(
        self,
        stages: tuple[StageConfig, ...],
        dropout: float,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        stochastic_depth_prob: float = 0.2,
        num_classes: int = 1000,
    ):
        super().__init__()
        self.stages = stages
        layers: list[nn.Module] = [ConvNormAct(3, stages[0].in_channels, 3, 2, norm_layer=norm_layer)]
        total = sum(s.num_layers for s in stages)
        block_id = 0
        for cfg in stages:
            stage = []
            for i in range(cfg.num_layers):
                stage.append(
                    MBConv(
                        cfg.in_channels if i == 0 else cfg.out_channels,
                        cfg.out_channels,
                        cfg.expand_ratio,
                        cfg.kernel,
                        cfg.stride if i == 0 else 1,
                        stochastic_depth_prob * block_id / total,
                        norm_layer,
                    )
                )
                block_id += 1
            layers.append(nn.Sequential(*stage))
        head_channels = 4 * stages[-1].out_channels
        layers.append(ConvNormAct(stages[-1].out_channels, head_channels, 1, norm_layer=norm_layer))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout, inplace=True), nn.Linear(head_channels, num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's EfficientNet initialisation."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                init_range = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -init_range, init_range)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(torch.flatten(self.avgpool(x), 1))

    def feature_steps(self) -> tuple[str, ...]:
        """Stem, then every MBConv block one by one (so a tap may sit inside a stage)."""
        steps = ["features.0"]
        for s, cfg in enumerate(self.stages, start=1):
            steps += [f"features.{s}.{i}" for i in range(cfg.num_layers)]
        return tuple(steps)

    def feature_taps(self) -> tuple[TapPoint, ...]:
        """``blocks.i`` = output of stage i (timm naming), with its channels and stride."""
        points = []
        stride = 2
        for s, cfg in enumerate(self.stages):
            stride *= cfg.stride
            last_block = f"features.{s + 1}.{cfg.num_layers - 1}"
            points.append(TapPoint(FeatureTap(f"blocks.{s}", cfg.out_channels, stride), last_block))
        return tuple(points)

    def block_count_tap(self, name: str, count: int) -> TapPoint:
        """A tap after the first ``count`` MBConv blocks counted across stages."""
        stride = 2
        for s, cfg in enumerate(self.stages):
            stride *= cfg.stride
            if count <= cfg.num_layers:
                return TapPoint(FeatureTap(name, cfg.out_channels, stride), f"features.{s + 1}.{count - 1}")
            count -= cfg.num_layers
        raise ValueError(f"{name}: the network has fewer blocks than requested")


class EfficientNetB0(EfficientNet):
    """torchvision ``efficientnet_b0``: width 1.0, depth 1.0, dropout 0.2, BatchNorm defaults."""

    def __init__(self, num_classes: int = 1000):
        super().__init__(scaled_stages(1.0, 1.0), dropout=0.2, num_classes=num_classes)


class EfficientNetB5(EfficientNet):
    """torchvision ``efficientnet_b5``: width 1.6, depth 2.2, dropout 0.4, BatchNorm eps 1e-3, momentum 0.01."""

    def __init__(self, num_classes: int = 1000):
        super().__init__(
            scaled_stages(1.6, 2.2),
            dropout=0.4,
            norm_layer=partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01),
            num_classes=num_classes,
        )

    def feature_taps(self) -> tuple[TapPoint, ...]:
        return super().feature_taps() + (self.block_count_tap("blocks36", 36),)
