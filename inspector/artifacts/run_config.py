"""The run configuration's schema: model + data + train sections (``runs/<run>/config.yaml`` and the
``config`` a checkpoint carries).

The data and train sections are defined here; the model section is the model's
own config (:class:`inspector.models.base.ModelConfig`), parsed by the model
registry, which also holds the train defaults per model and preset. So building
a :class:`RunConfig` from raw data is :func:`inspector.models.run_config.resolve_run_config`
and reading one from YAML with overrides is :func:`inspector.training.config.load_run_config`;
this module only needs the standard config loader (no torch, no models).
The resolved config is saved into the run folder so a run can be reproduced and exported exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from inspector.config import (bounded, from_dict, load_yaml, relative_to_file, resolve_path,
                              save_yaml, suggest, to_dict)
from inspector.contract import LEGACY_DOWNSCALE
from inspector.errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    path: str = ""
    resize: Literal["square", "shorter_side_crop", "letterbox"] = "square"
    # auto: model.image_size from the training images' median aspect at the default size's pixel
    # count (training/input_size.py); used only when model.image_size is not given and the preset
    # is offline (paper presets keep their papers' sizes). A trained run's config says fixed.
    input_size: Literal["auto", "fixed"] = "auto"
    # auto's pixel budget; None: the model's default input (offline presets 256x256 = 65,536)
    input_pixels: int | None = bounded(None, ge=64 * 64, le=2048 * 2048)
    # how frames larger than the model input are shrunk (inspector.data.images); recorded in the sidecar
    downscale: Literal["halving", "box_linear", "area"] = "halving"
    # Shares of the good training images kept out of training (inspector.data.datasets.split_good):
    # validation (stopping, best epoch, map normalisation) and calibration (used by nothing but
    # `inspector calibrate`, so its threshold comes from images scored as the line's will be). Whatever
    # they ask, split_good leaves images to train on. Calibration is off by default: the images it takes
    # from training cost the reduced student 0.003 image AUROC on ELPV mono (benchmarks/README.md, Session 36).
    val_fraction: float = bounded(0.2, gt=0, le=0.99)
    calibration_fraction: float = bounded(0.0, ge=0, le=0.99)
    split_seed: int = bounded(0, ge=0, le=2**32 - 1)
    # significant bits of the images when the files do not say (PNG sBIT / TIFF BitsPerSample win);
    # None: the container's depth. Recorded in the sidecar so the daemon scales camera frames the same way.
    bit_depth: int | None = bounded(None, ge=1, le=16)
    # Fields added after runs were saved, with the value such a run was trained with (a default changed):
    # a checkpoint's config without ``downscale`` predates it and was trained with INTER_AREA. Read by
    # inspector.models.checkpoint, so evaluate, predict, calibrate and export resize an old run alike.
    # A config without ``calibration_fraction`` was split into train/validation only.
    WRITTEN_BEFORE: ClassVar[dict[str, object]] = {"downscale": LEGACY_DOWNSCALE, "calibration_fraction": 0.0}

    def validate(self, where: str) -> None:
        from inspector.data.images import BIT_DEPTHS

        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"{where}.val_fraction: must be between 0 and 1, got {self.val_fraction}")
        if self.bit_depth is not None and self.bit_depth not in BIT_DEPTHS:
            raise ConfigError(f"{where}.bit_depth: must be one of {list(BIT_DEPTHS)} or null, got {self.bit_depth}")


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained. Every number has a declared range (``bounded``, checked at load).

    Stopping: ``epochs`` None (the default) trains until the validation loss stops
    improving — no relative improvement above ``min_delta`` for ``patience`` epochs
    (early stopping, Prechelt 1998) — at most ``max_epochs``. An integer ``epochs``
    (``--epochs N``) forces exactly N epochs with no early stop. ``time_budget_s``
    caps each phase's wall time in either mode.

    Learning rate, early-stopping mode only: ``lr_decay: plateau`` (the default;
    PyTorch/Keras ReduceLROnPlateau) multiplies the rate by ``lr_decay_factor``
    when ``lr_plateau`` (default ``patience``) epochs bring no improvement,
    at most ``lr_decays`` times, and stops after as many such epochs at the last rate.
    ``none``: a constant rate, stopping after ``patience`` epochs. A forced
    ``epochs`` count trains at a constant rate apart from the anneal below.

    Budget anneal (``lr_anneal``, both modes): over the last ``lr_anneal`` fraction of
    the phase's budget the rate falls linearly to 0, step by step. The budget is
    whichever ends first of the epoch limit (``epochs`` or ``max_epochs``) and the time
    cap (``time_budget_s``), so a run the budget cuts short still ends on an annealed
    rate rather than mid-descent (warmup-stable-decay: Hägele et al. 2024, "Scaling
    laws and compute-optimal training beyond fixed training durations"; linear decay
    to zero under a budget: Li et al., ICLR 2020, "Budgeted training"). A run that
    converges before ``1 − lr_anneal`` of its budget never sees it. Off by default (measured:
    benchmarks/README.md "Session 7").

    Device: ``precision: auto`` is bf16 autocast on CUDA GPUs that support it (else fp16
    with loss scaling) and on CPUs with hardware bf16 (AVX512-BF16, AMX, Arm BF16), else
    FP32; ``channels_last`` only changes a CUDA run (:mod:`inspector.training.device`).
    """

    epochs: int | None = bounded(None, ge=1, le=100_000)
    max_epochs: int = bounded(300, ge=1, le=100_000)
    patience: int = bounded(10, ge=1, le=10_000)
    # relative: an epoch counts as better below best·(1 − min_delta); a flow's log-likelihood (AST's teacher):
    # below best − min_delta nats per feature dimension (training/stopping.py)
    min_delta: float = bounded(0.005, ge=0, le=0.5)
    # generalisation-gap stop (early stopping only, training/stopping.py): stop once the gap (validation ÷ seen
    # loss − 1) has grown by more than this beyond its narrowest point for gap_patience epochs in a row; None: never
    max_gap_growth: float | None = bounded(0.05, ge=0, le=10)
    gap_patience: int = bounded(3, ge=1, le=10_000)
    lr_decay: Literal["plateau", "none"] = "plateau"
    lr_decay_factor: float = bounded(0.2, ge=0.1, le=0.5)  # the rate is multiplied by this at each plateau
    lr_decays: int = bounded(2, ge=0, le=10)  # plateaus that decay the rate before one stops the phase
    # epochs without improvement that make a plateau under lr_decay: plateau; None: patience
    lr_plateau: int | None = bounded(None, ge=1, le=10_000)
    # the last fraction of the budget (epochs or time cap) over which the rate falls linearly to 0; 0 (the
    # default): none, since at the budgets measured it lowered the loss but not the AUROC (benchmarks/README.md
    # "Session 7")
    lr_anneal: float = bounded(0.0, ge=0, le=1)
    # ≥ 2: a single-image training batch is skipped (it breaks BatchNorm statistics, training.loop.batches), so
    # batch_size 1 took no step at all: 'train 0.0000', exit 0, an untrained model saved as best.pt
    batch_size: int = bounded(16, ge=2, le=65_536)
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = bounded(0.4, gt=0, le=100)
    momentum: float = bounded(0.9, ge=0, le=1)
    weight_decay: float = bounded(1e-4, ge=0, le=1)
    # the ranges torch and numpy accept: Adam refuses β = 1 (ValueError), np.random.seed a seed ≥ 2**32
    betas: tuple[float, float] = bounded((0.9, 0.999), ge=0, lt=1)
    seed: int = bounded(0, ge=0, le=2**32 - 1)
    time_budget_s: float | None = bounded(None, gt=0, le=30 * 86_400)  # stop after this much wall time per phase
    threads: int | None = bounded(None, ge=1, le=4096)  # torch intra-op threads; None: all cores
    augment: Literal["none", "flip", "photometric"] = "none"
    # Where to train: auto = cuda when torch.cuda.is_available(), else cpu (see training/device.py).
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # auto = bf16 autocast where the device computes bf16 in hardware (CUDA: else fp16 with loss scaling;
    # CPU: else fp32); fp32 = no autocast; fp16 needs CUDA.
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool = True  # CUDA only: NHWC memory format for the networks

    @property
    def early_stopping(self) -> bool:
        return self.epochs is None

    @property
    def plateau_decay(self) -> bool:
        """True when a plateau decays the learning rate (early stopping with ``lr_decay: plateau``)."""
        return self.early_stopping and self.lr_decay == "plateau"

    @property
    def epoch_limit(self) -> int:
        """The last epoch a phase may run: ``epochs`` when forced, else ``max_epochs``."""
        return self.max_epochs if self.epochs is None else self.epochs


@dataclass(frozen=True)
class RunConfig:
    model: Any  # the model's own config, an inspector.models.base.ModelConfig (artifacts do not import models)
    data: DataConfig
    train: TrainConfig


SECTIONS = ("model", "data", "train")


def check_sections(raw: dict) -> DataConfig:
    """The section names and the data and train sections of a raw run config; the data section parsed.

    Only what can be checked without torch (the model section needs the registry), so a config error
    prints in well under a second. Raises ConfigError naming the section and key.
    """
    for key in raw:
        if not isinstance(key, str):
            raise ConfigError(f"config: section name {str(key)[:40]!r} is not a string")
        if key not in SECTIONS:
            raise ConfigError(f"config: unknown section '{key}'{suggest(key, SECTIONS)}")
        if raw[key] is not None and not isinstance(raw[key], dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(raw[key]).__name__}")
    data = from_dict(DataConfig, raw.get("data"), where="data")
    from_dict(TrainConfig, raw.get("train"), where="train")  # the user's keys and values
    return data


# Keys whose values are file or folder paths. Inside a config file they resolve against that
# file's folder; on the command line (``base``, ``--set``) against the working directory.
PATH_KEYS = (("data", "path"), ("model", "teacher_weights"), ("model", "efficientnet_weights"))
NOT_PATHS = ("", "random")  # ``teacher_weights: random`` is a keyword, not a file


def resolve_file_paths(raw: dict, base_dir: Path) -> dict:
    """Copy of ``raw`` with the relative paths of :data:`PATH_KEYS` joined to ``base_dir``.

    The one path rule of every inspector config file (docs: README "Paths"):
    relative paths in a file are relative to the folder of that file.
    """
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for section, key in PATH_KEYS:
        node = raw.get(section)
        value = node.get(key) if isinstance(node, dict) else None
        if isinstance(value, str) and value not in NOT_PATHS:
            node[key] = resolve_path(value, base_dir, f"{section}.{key}")
    return raw


def run_config_dict(config: RunConfig) -> dict:
    return to_dict(config)


def saved_data_path(run_dir: str | Path) -> str | None:
    """The dataset of the run in ``run_dir`` as its ``config.yaml`` names it, made valid from the current
    working directory (that file spells it relative to its folder), or None when the file names none."""
    saved = Path(run_dir) / "config.yaml"
    if saved.is_file():
        data = resolve_file_paths(load_yaml(saved), saved.parent).get("data")
        if isinstance(data, dict) and isinstance(data.get("path"), str) and data["path"]:
            return data["path"]
    return None


def run_data_path(run_dir: str | Path, config: RunConfig) -> str:
    """The dataset a run was trained on, as a path valid from the current working directory.

    The run folder's ``config.yaml`` spells it relative to that folder (the file rule), so
    ``inspector evaluate RUN`` finds it from anywhere; a run without one falls back to the
    checkpoint's copy (relative to the directory training was started from).
    """
    return saved_data_path(run_dir) or config.data.path


def save_run_config(config: RunConfig, path: str | Path) -> None:
    """Write ``config`` as YAML at ``path`` with its paths relative to ``path``'s folder.

    Paths in the config object are relative to the working directory (or absolute);
    the saved file follows the file rule, so it stays valid from any working
    directory and when the run folder moves together with its data.
    """
    data = run_config_dict(config)
    for section, key in PATH_KEYS:
        value = data.get(section, {}).get(key)
        if isinstance(value, str) and value not in NOT_PATHS:
            data[section][key] = relative_to_file(value, path)
    save_yaml(data, path)
