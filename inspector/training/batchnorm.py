"""BatchNorm statistics that match the weights they are evaluated with ("precise BN").

A student trained from scratch changes fast, and the EfficientNet-Lite blocks it
may be built from use TensorFlow's BatchNorm momentum (0.99, i.e. torch 0.01):
after a few hundred steps the running statistics still hold mostly their initial
(0, 1), so the model in eval mode (validation, checkpoint, export) computes
something else than the model that was trained. Measured on KolektorSDD with the
offline STFPM student: train loss 5.8 → 1.7 over six epochs while the validation
loss rose 2.11 → 2.20, so early stopping kept epoch 1. An average over the whole
epoch is no cure: in epoch 1 the weights move so far that it describes none of
them (ELPV poly, reduced student: validation loss 4.80 against 2.71).

The rule (Wu & Johnson, "Rethinking Batch in BatchNorm", 2021, §3 "precise BN";
Detectron2's PreciseBN hook; ``torch.optim.swa_utils.update_bn``): after each
epoch, with the weights fixed, the running statistics of every BatchNorm layer
being trained are reset and re-estimated as a plain average (``momentum=None``)
over a few training batches. Frozen teachers are in eval mode and untouched.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

PRECISE_BN_IMAGES = 64  # 4 batches of 16: thousands of positions per channel; ~10% of an epoch's cost


def trained_batchnorm_layers(model: nn.Module) -> list[_BatchNorm]:
    """BatchNorm layers in training mode that keep running statistics (frozen teachers are in eval mode)."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.training and m.track_running_stats]


@torch.no_grad()
def recompute_batchnorm_statistics(model: nn.Module, forward: Callable[[np.ndarray, torch.Tensor], object],
                                   images: torch.Tensor, batch_size: int,
                                   max_images: int = PRECISE_BN_IMAGES) -> int:
    """Re-estimate the running statistics of the trained BatchNorm layers with the current weights.

    ``forward(indices, uint8 batch (B, H, W, 3))`` runs the model in training mode (the
    phase's loss); ``images`` are the phase's training images. At most ``max_images``
    evenly spaced images are used, in batches of ``batch_size`` (at least 2 images each).
    Each layer's momentum is restored afterwards. Returns how many layers were re-estimated.
    """
    layers = trained_batchnorm_layers(model)
    if not layers or len(images) < 2:
        return 0
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average since the reset
    n = min(len(images), max_images)
    order = np.linspace(0, len(images) - 1, n).round().astype(int)
    step = max(batch_size, 2)
    for start in range(0, n, step):
        idx = order[start:start + step]
        if len(idx) < 2:
            break  # a one-image batch has no batch statistics worth averaging
        forward(idx, images[torch.from_numpy(idx).to(images.device)])
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
    return len(layers)
