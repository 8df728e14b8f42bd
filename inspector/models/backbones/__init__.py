"""Frozen ImageNet teacher backbones: registry, feature extractors and full classifiers.

    extractor = build_backbone("resnet18", ["layer1", "layer2", "layer3"])
    [t.channels for t in extractor.feature_info]   # [64, 128, 256]
    layer1, layer2, layer3 = extractor(normalised_batch)
    extractor.weights_source   # one line for the sidecar, e.g.
    # "path:/root/.cache/torch/hub/checkpoints/resnet18-f37072fd.pth sha256=f37072fd47e8…"

Extractors are built in eval mode but not frozen (the owning model freezes
its teachers). Inputs are float NCHW batches already ImageNet-normalised (mean 0.485, 0.456,
0.406; std 0.229, 0.224, 0.225 on a 0..1 scale). Weight resolution is described
in :mod:`inspector.models.backbones.weights`.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

from torch import nn

from inspector.config import suggest
from inspector.errors import ModelError
from inspector.models.backbones.efficientnet import EfficientNetB0, EfficientNetB5
from inspector.models.backbones.efficientnet_lite import EfficientNetLite0, EfficientNetLite1, EfficientNetLite2
from inspector.models.backbones.features import FeatureExtractor, FeatureTap, TapPoint, select_taps
from inspector.models.backbones.resnet import BasicBlock, ResNet18
from inspector.models.backbones.weights import RANDOM, load_checked, locate_weights

__all__ = [
    "BACKBONES",
    "BasicBlock",
    "FeatureExtractor",
    "FeatureTap",
    "available_backbones",
    "available_taps",
    "build_backbone",
    "build_classifier",
]

# name -> constructor of the full ImageNet classifier (random init).
BACKBONES: dict[str, Callable[[], nn.Module]] = {
    "resnet18": ResNet18,
    "efficientnet_b0": EfficientNetB0,
    "efficientnet_b5": EfficientNetB5,
    "efficientnet_lite0": EfficientNetLite0,
    "efficientnet_lite1": EfficientNetLite1,
    "efficientnet_lite2": EfficientNetLite2,
}

def available_backbones() -> tuple[str, ...]:
    return tuple(BACKBONES)


def _network(name: str) -> nn.Module:
    if name not in BACKBONES:
        raise ModelError(
            f"unknown backbone '{name}'{suggest(str(name), BACKBONES)}; available: {', '.join(BACKBONES)}"
        )
    return BACKBONES[name]()


def _tap_points(net: nn.Module) -> tuple[TapPoint, ...]:
    return net.feature_taps()  # type: ignore[operator]


def available_taps(name: str) -> tuple[FeatureTap, ...]:
    """Every tap of backbone ``name``, shallowest first."""
    return tuple(p.tap for p in _tap_points(_network(name)))


def build_backbone(name: str, taps: Sequence[str], weights: str | os.PathLike | None = None) -> FeatureExtractor:
    """A :class:`FeatureExtractor` of ``name`` with ``taps``, truncated after the deepest, in eval mode.

    Not frozen: a teacher's owner freezes it (``requires_grad_(False)``, ``.eval()``
    in its ``train()``); a ``weights="random"`` extractor can be trained as a student.

    ``weights``: None resolves the ImageNet weights (hub cache, package, download,
    else ModelError); ``"random"`` keeps the random initialisation (tests only);
    anything else is the path of a state-dict file.
    """
    net = _network(name)
    points = select_taps(name, _tap_points(net), taps)
    full_state = net.state_dict()
    located = locate_weights(name, weights)
    source = RANDOM if located is None else located[1]
    extractor = FeatureExtractor(net, net.feature_steps(), points, source)  # type: ignore[operator]
    extractor.backbone_name = name  # recorded in the sidecar's teacher identity
    if located is not None:
        load_checked(name, extractor.body, full_state, located[0])
    return extractor


def build_classifier(name: str, weights: str | os.PathLike | None = None) -> nn.Module:
    """The full ImageNet classifier ``name`` (logits from a normalised float batch), in eval mode.

    Weights resolve as in :func:`build_backbone`; the result has a ``weights_source`` attribute.
    """
    net = _network(name)
    located = locate_weights(name, weights)
    if located is not None:
        load_checked(name, net, net.state_dict(), located[0])
    net.weights_source = RANDOM if located is None else located[1]
    return net.eval()
