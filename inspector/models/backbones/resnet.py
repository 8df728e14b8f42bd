"""ResNet-18 with torchvision's layout and state-dict keys (pure torch).

torchvision's ``resnet18-f37072fd.pth`` loads into :class:`ResNet18` unchanged:
``conv1``, ``bn1``, ``layer1``..``layer4`` (two :class:`BasicBlock` each, with a
``downsample`` 1x1 conv + BN where the shape changes) and ``fc``.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from inspector.models.backbones.features import FeatureTap, TapPoint


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (torchvision's ``conv3x3``)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias (torchvision's ``conv1x1``)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock: conv3x3-BN-ReLU-conv3x3-BN, + identity or downsample, ReLU."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


def make_downsample(inplanes: int, planes: int, stride: int) -> Optional[nn.Sequential]:
    """The 1x1/stride conv + BN shortcut torchvision uses when the block changes shape, else None."""
    if stride == 1 and inplanes == planes:
        return None
    return nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))


def make_layer(inplanes: int, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
    """A ResNet stage of ``blocks`` BasicBlocks, the first one with ``stride``."""
    layers = [BasicBlock(inplanes, planes, stride, make_downsample(inplanes, planes, stride))]
    layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def init_resnet_weights(module: nn.Module) -> None:
    """torchvision's ResNet initialisation: Kaiming-normal (fan_out, ReLU) convs, BN weight 1 / bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


class ResNet18(nn.Module):
    """ResNet-18 (ImageNet classifier), torchvision layout."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = make_layer(64, 64, 2)
        self.layer2 = make_layer(64, 128, 2, stride=2)
        self.layer3 = make_layer(128, 256, 2, stride=2)
        self.layer4 = make_layer(256, 512, 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)
        init_resnet_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for step in self.feature_steps():
            x = self.get_submodule(step)(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))

    @staticmethod
    def feature_steps() -> tuple[str, ...]:
        return ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")

    @staticmethod
    def feature_taps() -> tuple[TapPoint, ...]:
        return (
            TapPoint(FeatureTap("stem", 64, 4), "maxpool"),
            TapPoint(FeatureTap("layer1", 64, 4), "layer1"),
            TapPoint(FeatureTap("layer2", 128, 8), "layer2"),
            TapPoint(FeatureTap("layer3", 256, 16), "layer3"),
            TapPoint(FeatureTap("layer4", 512, 32), "layer4"),
        )
