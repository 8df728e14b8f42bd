"""The run configuration: model + data + train sections, loaded from YAML.

Train defaults depend on the model and preset (the registry's table); values
from the YAML file and ``--set`` overrides win over them. The resolved config is
saved into the run folder so a run can be reproduced and exported exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from inspector.config import apply_overrides, from_dict, load_yaml, suggest, to_dict
from inspector.errors import ConfigError
from inspector.models.base import ModelConfig
from inspector.models.registry import get_entry, parse_model_config


@dataclass(frozen=True)
class DataConfig:
    path: str = ""
    resize: Literal["square", "shorter_side_crop"] = "square"
    val_fraction: float = 0.2
    split_seed: int = 0
    # significant bits of the images when the files do not say (PNG sBIT / TIFF BitsPerSample win);
    # None: the container's depth. Recorded in the sidecar so the daemon scales camera frames the same way.
    bit_depth: int | None = None

    def validate(self, where: str) -> None:
        from inspector.data.images import BIT_DEPTHS

        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"{where}.val_fraction: must be between 0 and 1, got {self.val_fraction}")
        if self.bit_depth is not None and self.bit_depth not in BIT_DEPTHS:
            raise ConfigError(f"{where}.bit_depth: must be one of {list(BIT_DEPTHS)} or null, got {self.bit_depth}")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 40
    batch_size: int = 16
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.4
    momentum: float = 0.9
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    seed: int = 0
    time_budget_s: float | None = None  # stop after this much wall time (equal-budget comparisons)
    threads: int | None = None  # torch intra-op threads; None: all cores
    augment: Literal["none", "flip"] = "none"

    def validate(self, where: str) -> None:
        if self.epochs < 1:
            raise ConfigError(f"{where}.epochs: must be ≥ 1")
        if self.batch_size < 1:
            raise ConfigError(f"{where}.batch_size: must be ≥ 1")
        if self.lr <= 0:
            raise ConfigError(f"{where}.lr: must be > 0")


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig
    data: DataConfig
    train: TrainConfig


SECTIONS = ("model", "data", "train")


def resolve_run_config(raw: dict) -> RunConfig:
    """Build a RunConfig from a raw mapping, filling model-specific train defaults."""
    for key in raw:
        if key not in SECTIONS:
            raise ConfigError(f"config: unknown section '{key}'{suggest(key, SECTIONS)}")
    model = parse_model_config(raw.get("model"))
    defaults = get_entry(model.name).train_defaults.get(model.preset, {})
    train = from_dict(TrainConfig, {**defaults, **(raw.get("train") or {})}, where="train")
    data = from_dict(DataConfig, raw.get("data"), where="data")
    return RunConfig(model=model, data=data, train=train)


def load_run_config(path: str | Path | None = None, overrides: list[str] | None = None,
                    base: dict | None = None) -> RunConfig:
    """YAML file (optional) → ``base`` values → ``--set`` overrides → RunConfig."""
    raw = load_yaml(path) if path else {}
    for section, values in (base or {}).items():
        raw.setdefault(section, {})
        raw[section] = {**(raw[section] or {}), **values}
    return resolve_run_config(apply_overrides(raw, overrides or []))


def run_config_dict(config: RunConfig) -> dict:
    return to_dict(config)
