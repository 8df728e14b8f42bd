"""The run-config settings a training leaves unread, and the one rule for those the user gave.

Rule (the daemon config's :func:`inspector.config.refuse_unread`, on a run config): a ``model.*`` or ``train.*``
setting the user gave (config file, flag or ``--set``) with a value other than the chosen model and preset's own,
that the training never reads, is refused in one line naming it, exit 2. Ignored, ``train --model meta_comparer
--device cuda`` trained on the CPU, ``--epochs 20 --set train.patience=3`` ran 20 epochs, ``--set
model.score_topk=0.05`` with ``score: max`` scored the max, and ``--set model.score=topk`` on the meta-comparer
(its score is the max of its map, paper eq. 5) changed nothing, each saving a run config that claimed the setting.
A value equal to the model's own (written out, as a documented example config does) is accepted. A saved run's
config is not checked: it loads as it was trained.
"""

from __future__ import annotations

from typing import Any, Mapping

from inspector.errors import ConfigError

# train settings only early stopping reads (training/stopping.py; training/meta_comparer.py reads min_delta in
# both modes, to pick its best epoch): with ``train.epochs`` set a phase runs exactly that many epochs
EARLY_STOPPING_ONLY = ("max_epochs", "patience", "min_delta", "max_gap_growth", "gap_patience", "lr_decay",
                       "lr_decay_factor", "lr_decays", "lr_plateau")
# train settings only the plateau decay reads (training/stopping.py StopRule)
PLATEAU_ONLY = ("lr_decay_factor", "lr_decays", "lr_plateau")
# train settings the meta-comparer's trainer (training/meta_comparer.py) never reads: it trains on the CPU in
# FP32 on cached features, with its own episodes and a constant rate
META_COMPARER_UNREAD = ("max_gap_growth", "gap_patience", "lr_decay", "lr_decay_factor", "lr_decays", "lr_plateau",
                        "lr_anneal", "augment", "device", "precision", "channels_last")
# data settings the meta-comparer never reads: it splits each domain 80/20 by train.seed, at model.image_size
META_COMPARER_DATA_UNREAD = ("input_size", "input_pixels", "val_fraction", "calibration_fraction", "split_seed",
                             "bit_depth")
# model settings the meta-comparer never reads: its map is its patch scores and its score their max (paper eqs. 5-6;
# hard_quantile, ood_penalty and smoothing_sigma are refused by its config itself)
META_COMPARER_MODEL_UNREAD = ("score", "score_topk", "map_normalization", "distance", "position_normalization",
                              "residual_pool", "validation_loss")


def unread_train(config) -> dict[str, str]:
    """``train.*`` name → why the training of ``config`` (a RunConfig) never reads it."""
    train, unread = config.train, {}
    if config.model.name == "meta_comparer":
        unread |= {k: "for meta_comparer (its trainer runs on the CPU in FP32, unaugmented, at a constant rate, "
                      "stopped by patience only)"
                   for k in META_COMPARER_UNREAD}
    if not train.early_stopping:
        kept = ("min_delta",) if config.model.name == "meta_comparer" else ()
        unread |= {k: f"with train.epochs={train.epochs} (exactly that many epochs, no early stop)"
                   for k in EARLY_STOPPING_ONLY if k not in kept and k not in unread}
    if train.lr_decay != "plateau":
        unread |= {k: f"with train.lr_decay: {train.lr_decay} (a constant rate)" for k in PLATEAU_ONLY
                   if k not in unread}
    return unread


def unread_data(config) -> dict[str, str]:
    """``data.*`` name → why the training of ``config`` (a RunConfig) never reads it."""
    if config.model.name != "meta_comparer":
        return {}
    return {k: "for meta_comparer (it splits each domain 80/20 by train.seed, at model.image_size)"
            for k in META_COMPARER_DATA_UNREAD}


def unread_model(model) -> dict[str, str]:
    """``model.*`` name → why the model of config ``model`` (a ModelConfig) never reads it."""
    unread = {}
    if model.name == "meta_comparer":
        unread |= {k: "for meta_comparer (its map is its patch scores, its score their max)"
                   for k in META_COMPARER_MODEL_UNREAD}
    if model.score != "topk":
        unread.setdefault("score_topk", f"with score: {model.score} (only score: topk averages a fraction)")
    if model.map_normalization != "quantile":
        unread.setdefault("position_normalization", f"with map_normalization: {model.map_normalization} "
                                                    f"(it refines the quantile normalisation)")
    return unread


def refuse_unread_given(config, given: Mapping[str, Any], train_defaults: Mapping[str, Any]) -> None:
    """ConfigError ``<section>.<name>: does nothing <why>; leave it out`` for the first setting of the model,
    data or train section of ``given`` (the raw mapping the user wrote: file, flags, ``--set``) that ``config`` (the
    RunConfig built from it) never reads and whose value differs from the model and preset's own (``model``: its
    config class with that preset; ``data``: DataConfig's defaults; ``train``: TrainConfig's, updated by
    ``train_defaults``)."""
    from inspector.artifacts.run_config import DataConfig, TrainConfig
    from inspector.config import from_dict

    own = {"model": type(config.model)(preset=config.model.preset), "data": DataConfig(),
           "train": from_dict(TrainConfig, dict(train_defaults), where="train")}
    for section, unread in (("model", unread_model(config.model)), ("data", unread_data(config)),
                            ("train", unread_train(config))):
        written = given.get(section) or {}
        for key, why in unread.items():
            if key in written and getattr(getattr(config, section), key) != getattr(own[section], key):
                raise ConfigError(f"{section}.{key}: does nothing {why}; leave it out", field=f"{section}.{key}")
