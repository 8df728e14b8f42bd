"""What a model hands the registry and the training loop: its entry and its training phases.

``models/`` owns everything the loop consumes (DESIGN.md seam 1): a model
folder declares an :data:`ENTRY` (config class, builder, training defaults per
preset) and, if it trains in more than one phase, ``training_phases(cfg)``
returning :class:`Phase` objects. The loop (:mod:`inspector.training.loop`)
imports these; nothing here imports training code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from inspector.errors import ConfigError
from inspector.models.base import AnomalyModel, ModelConfig


@dataclass(frozen=True)
class ModelEntry:
    """A model's registry entry: ``config_cls`` (frozen dataclass), ``build(config) -> AnomalyModel``.

    ``train_defaults``: training settings per preset. Paper presets fix the papers'
    epoch counts; offline ones leave ``train.epochs`` unset, so they train until the
    validation loss stops improving.
    """

    config_cls: type[ModelConfig]
    build: Callable[[Any], AnomalyModel]
    train_defaults: dict[str, dict] = field(default_factory=dict)


@dataclass
class Phase:
    """One optimisation phase: which parameters, which loss (AST trains two in a row).

    ``train`` is the phase's :class:`inspector.artifacts.run_config.TrainConfig`.
    """

    name: str
    parameters: list
    loss: Callable[[torch.Tensor], torch.Tensor]
    train: Any
    # Optional split of ``loss`` into frozen targets + the trainable part: when given and
    # there is no augmentation, targets are computed once per image and cached.
    targets: Callable[[torch.Tensor], list[torch.Tensor]] | None = None
    loss_with_targets: Callable[[torch.Tensor, list[torch.Tensor]], torch.Tensor] | None = None
    # Optional training-only term on out-of-distribution images (uint8 (B, H, W, 3)) and its
    # weight: EfficientAD's penalty (ModelConfig.ood_penalty); the validation loss leaves it out.
    penalty: Callable[[torch.Tensor], torch.Tensor] | None = None
    penalty_weight: float = 0.0
    # Whether the loss is a distance to frozen targets, whose ratio on unseen and seen images is a
    # generalisation gap (training/stopping.py); not a flow's log-likelihood or a loss on random negatives.
    measures_gap: bool = True
    # A loss that is a negative log-likelihood over this many dimensions per position (a flow's) has no
    # natural zero, so an improvement counts in nats per dimension, not relative to the loss (stopping.py).
    nll_dims: int | None = None
    # Whether the loss applies the model's hard_quantile (training/loop.py names it "train (hard loss)"); AST's
    # flow phase does not, its student phase does.
    hard_loss: bool = True


def default_phases(model: AnomalyModel, cfg: Any) -> list[Phase]:
    """Models may declare ``training_phases(cfg)``; otherwise one phase on ``loss``."""
    custom = getattr(model, "training_phases", None)
    if callable(custom):
        return custom(cfg)
    weight = getattr(model.config, "ood_penalty", 0.0)
    penalty = getattr(model, "ood_penalty_loss", None)
    if weight > 0 and penalty is None:
        raise ConfigError(f"model.ood_penalty: {model.config.name} has no out-of-distribution penalty; set it to 0")
    return [Phase("student", model.trainable(), model.loss, cfg,
                  targets=getattr(model, "teacher_targets", None),
                  loss_with_targets=getattr(model, "loss_with_targets", None),
                  penalty=penalty if weight > 0 else None, penalty_weight=weight)]


# Shared training defaults of the single-teacher students (stfpm, reduced_student).
SGD = {"optimizer": "sgd", "lr": 0.4, "momentum": 0.9, "weight_decay": 1e-4, "batch_size": 16}
# Offline: squared error on standardised teacher features (ModelConfig.distance), for which
# SGD at lr 0.4 (tuned for the bounded cosine distance) diverges; Adam as in EfficientAD, at 3e-3
# (EfficientAD: 1e-4) because a CPU run has hundreds of steps, not EfficientAD's 70 000: at 12 epochs
# 1e-3 → 3e-3 lowered the reduced student's validation loss on all four sets measured and raised the
# image AUROC where it moved (ELPV mono +0.007, synthetic grass +0.022; benchmarks/README.md
# "Session 7"); the plateau schedule (training/stopping.py) lowers it once the loss stalls.
ADAM = {"optimizer": "adam", "lr": 3e-3, "weight_decay": 1e-5, "batch_size": 16}
