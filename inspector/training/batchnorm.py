"""BatchNorm statistics that match the weights they are evaluated with.

A student trained from scratch changes fast, and the EfficientNet-Lite blocks it
is built from use TensorFlow's BatchNorm momentum (0.99, i.e. torch 0.01): after
a few hundred steps the running statistics still hold mostly their initial
(0, 1), so the model in eval mode (validation, checkpoint, export) computes
something else than the model that was trained. Measured on KolektorSDD with
the offline STFPM student: train loss 5.8 → 1.7 over six epochs while the
validation loss rose 2.11 → 2.20, so early stopping kept epoch 1.

The rule (as in SWA's ``update_bn``, torch.optim.swa_utils): the running
statistics of every BatchNorm layer being trained are reset at the start of
each epoch and accumulated as a plain average (``momentum=None``) over that
epoch's batches. They then describe the current weights, whatever the layer's
momentum, at no extra cost. Frozen teachers are in eval mode and untouched.
"""

from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def restart_batchnorm_statistics(model: nn.Module) -> int:
    """Reset the running statistics of every BatchNorm layer in training mode; average them over the epoch.

    Call after ``model.train()`` at the start of an epoch. Layers in eval mode (frozen
    teachers) and layers without running statistics are left alone. Returns how many
    layers were restarted.
    """
    restarted = 0
    for module in model.modules():
        if isinstance(module, _BatchNorm) and module.training and module.track_running_stats:
            module.reset_running_stats()
            module.momentum = None  # cumulative moving average since the reset
            restarted += 1
    return restarted
