"""The training loop: seeded split, epochs, validation, best-checkpoint rule, Ctrl-C safety.

Images are decoded and resized once into memory (uint8) — datasets of good
parts are small, and decoding PNGs every epoch would dominate a CPU run.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from inspector.cores import capped_threads
from inspector.data.datasets import (MIN_TRAIN_IMAGES, Dataset, calibration_shortfall, keep_copies_together, load_batch,
                                     GoodSplit, load_dataset, no_good_folder, split_good)
from inspector.data.ood import ood_batch
from inspector.data.recorded_split import recorded_split
from inspector.errors import ConfigError, DataError, ModelError
from inspector.interrupts import held
from inspector.outputs import write_whole
from inspector.models.base import AnomalyModel
from inspector.models.entry import Phase, default_phases  # noqa: F401 (Phase: re-exported)
from inspector.models.registry import build_model
from inspector.artifacts.checkpoint import BEST, read_checkpoint, update_checkpoint
from inspector.artifacts.frame_shapes import image_size_range
from inspector.artifacts.model_card import sha256_file
from inspector.training.batchnorm import recompute_batchnorm_statistics
from inspector.training.checkpoint import host_state_dict, save_checkpoint
from inspector.training.resume_point import ResumePoint
from inspector.training.config import RunConfig, TrainConfig, save_run_config
from inspector.training.device import TrainingDevice
from inspector.training.input_size import resolve_input_size
from inspector.data.memory import require_image_memory
from inspector.training.progress import Progress, format_duration
from inspector.training.run_lock import hold_run_folder
from inspector.training.stopping import INTERRUPTED, ScheduleState, StopRule

log = logging.getLogger(__name__)
CPU = TrainingDevice(torch.device("cpu"))


@dataclass
class FitResult:
    best_epoch: int = 0
    best_val_loss: float = math.inf
    epochs_run: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of this process (all threads): comparable on a shared machine
    interrupted: bool = False
    stop_reason: str = ""  # one of stopping.STOP_REASONS
    stop_detail: str = ""  # the same, as a sentence for the user
    history: list = field(default_factory=list)
    schedule: ScheduleState | None = None  # the learning-rate schedule after the last epoch


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def resolve_input(config: RunConfig) -> RunConfig:
    """``config`` with the input size it will train at (``data.input_size: auto`` resolved from the data)."""
    if config.data.input_size != "auto":
        return config
    return resolve_input_size(config, _training_set(config.data.path).train)


def _training_set(path) -> "Dataset":
    """The dataset at ``path``; DataError when it has no training images (a tree of ``test/`` alone), the same
    line whether or not ``model.image_size`` was given: with it, the line was "need at least 3 good training images
    …, found 0", which did not say that the tree had no ``train/good`` folder."""
    dataset = load_dataset(path)
    if not dataset.train:
        why = no_good_folder(dataset.root) or "train/good; a tree of test/ alone can be evaluated, not trained on"
        raise DataError(f"{path}: no good training images ({why})")
    return dataset


# 2 images to train on (a training batch of one breaks BatchNorm, see batches(); with a single training image
# every batch is that one: "Expected more than 1 value per channel when training") and 1 to validate on
MIN_GOOD_IMAGES = MIN_TRAIN_IMAGES + 1


def load_training_images(config: RunConfig, recorded: dict | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Decode the good images once and split the readable ones into train/validation uint8 (N, H, W, 3) arrays.

    Unreadable images are dropped before the split, so they can never empty the
    validation set while readable images remain; the split keeps :data:`MIN_TRAIN_IMAGES` to train on
    whatever ``data.val_fraction`` asks. The calibration part (``data.calibration_fraction``, off by
    default; :func:`~inspector.data.datasets.split_good`) is neither returned nor used: the summary records
    it (names and sha256) for ``inspector calibrate``. ``recorded``: the data summary of a run being resumed,
    whose parts are found again by content (:func:`~inspector.data.recorded_split.recorded_split`); None or a
    summary without digests: the seeded split. Raises :class:`DataError` when fewer than
    :data:`MIN_GOOD_IMAGES` good images can be read, when a calibration part asked for cannot be made
    (:func:`~inspector.data.datasets.calibration_shortfall`), or when they would not fit in the memory available
    (:func:`~inspector.data.memory.require_image_memory`).
    """
    dataset = _training_set(config.data.path)
    need = f"need at least {MIN_GOOD_IMAGES} good training images ({MIN_TRAIN_IMAGES} to train on, 1 to validate)"
    if len(dataset.train) < MIN_GOOD_IMAGES:
        raise DataError(f"{config.data.path}: {need}, found {len(dataset.train)}")
    h, w = config.model.image_size
    require_image_memory(len(dataset.train), h, w, str(config.data.path))
    sizes: dict = {}  # path → the image's own (height, width): the card's range the daemon checks frames by
    images, kept, skipped = load_batch(dataset.train, h, w, config.data.resize, config.data.bit_depth,
                                       config.data.downscale, on_size=lambda s, *size: sizes.update({s.path: size}))
    if len(kept) < MIN_GOOD_IMAGES:
        raise DataError(f"{config.data.path}: {need}, found {len(kept)} readable of {len(dataset.train)} "
                        f"(see the warnings above)")
    digests = {s.path: sha256_file(s.path) for s in kept}
    split = recorded_split(kept, digests, recorded, MIN_TRAIN_IMAGES) or _draw_split(config, kept, digests)
    train, val, calibration = split.train, split.val, split.calibration
    row = {s.path: i for i, s in enumerate(kept)}
    summary = {
        "root": str(dataset.root),
        "layout": dataset.layout,
        "n_train": len(train),
        "n_val": len(val),
        "n_calibration": len(calibration),
        "skipped": [str(s.path) for s, _ in skipped],
        # calibrate and evaluate tell good images the model was fitted on by content (a threshold or a metric
        # on them is optimistic): a --good-dir of train/good gave no word
        "train_sha256": [digests[s.path] for s in train],
        "val_files": [s.path.name for s in val],
        "val_sha256": [digests[s.path] for s in val],  # calibrate knows them by content, not a bare name
        "calibration_files": [s.path.name for s in calibration],
        "calibration_sha256": [digests[s.path] for s in calibration],
        "image_size": list(config.model.image_size),
        "image_sizes": image_size_range(sizes[s.path] for s in kept),  # frames unlike them are told (run, predict)
        "resize": config.data.resize,
        "downscale": config.data.downscale,
    }
    return images[[row[s.path] for s in train]], images[[row[s.path] for s in val]], summary


def _draw_split(config: RunConfig, kept: list, digests: dict) -> GoodSplit:
    """The seeded split of a new run (or of a resumed one that recorded no digests), copies kept together."""
    split = split_good(kept, config.data.val_fraction, config.data.calibration_fraction, config.data.split_seed,
                       MIN_TRAIN_IMAGES)
    split = keep_copies_together(split, digests)
    # refused before any epoch: a part asked for and silently not made surfaced only at calibrate time
    if shortfall := calibration_shortfall(len(kept), split, config.data.calibration_fraction, MIN_TRAIN_IMAGES):
        raise DataError(f"{config.data.path}: {shortfall}")
    return split


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Train the next steps at ``lr`` (the plateau schedule of :class:`StopRule`)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def batches(images: np.ndarray | torch.Tensor, batch_size: int, generator: torch.Generator | None, augment: str):
    """Yield (indices, uint8 batch (B, H, W, 3)) on the device ``images`` lives on; shuffled with a generator."""
    images = torch.from_numpy(images) if isinstance(images, np.ndarray) else images
    n = len(images)
    order = torch.randperm(n, generator=generator).numpy() if generator is not None else np.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        if generator is not None and len(idx) < 2 and n >= 2:
            continue  # a single-image batch breaks BatchNorm statistics; it is re-drawn next epoch
        batch = images[torch.from_numpy(idx).to(images.device)]  # a copy: flipping it leaves images as they are
        if augment == "flip" and generator is not None:
            flip = (torch.rand(len(idx), generator=generator) < 0.5).to(batch.device)
            batch[flip] = batch[flip].flip(2)
        if augment == "photometric" and generator is not None:
            batch = photometric(batch, generator)
        yield idx, batch


PHOTOMETRIC = 0.2  # the brightness and contrast jitter of EfficientAD's autoencoder images (Batzner et al., §3.3)


def photometric(batch: torch.Tensor, generator: torch.Generator, most: float = PHOTOMETRIC) -> torch.Tensor:
    """Each uint8 (B, H, W, C) image with its own brightness and contrast factor in [1 − most, 1 + most].

    Brightness scales the pixels; contrast scales their distance from the image's mean grey (torchvision's rule).
    """
    x = batch.float()
    factors = (1 + most * (2 * torch.rand(len(batch), 2, generator=generator) - 1)).to(batch.device)
    x = x * factors[:, 0].view(-1, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * factors[:, 1].view(-1, 1, 1, 1) + mean
    return x.round_().clamp_(0, 255).to(torch.uint8)


class PhaseLoss:
    """A phase's loss over an image array, with frozen targets cached when possible.

    ``images`` (and the cache) are placed by ``device``: on the GPU when they fit,
    else in host memory with per-batch copies; on CPU nothing moves.
    """

    def __init__(self, phase: Phase, images: np.ndarray, model: AnomalyModel,
                 device: TrainingDevice = CPU, ood_seed: int | None = None) -> None:
        self.phase = phase
        self.device = device
        # the training loss only: the validation loss (the stopping signal) is imitation alone
        self.ood_rng = np.random.default_rng(ood_seed) if phase.penalty and ood_seed is not None else None
        self.cache: list[torch.Tensor] | None = None
        if phase.targets and phase.loss_with_targets and phase.train.augment == "none":
            self.cache = self._targets(model, images)
        host = [torch.from_numpy(images)] + (self.cache or [])
        resident = device.fits(sum(t.numel() * t.element_size() for t in host))
        self.images, *cache = [device.place(t, resident) for t in host]
        self.cache = cache if self.cache is not None else None

    def _targets(self, model: AnomalyModel, images: np.ndarray) -> list[torch.Tensor]:
        """The frozen targets of every image, in FP32 (computed once, so precision costs nothing) on the host."""
        model.eval()
        parts = [[t.cpu() for t in self.phase.targets(self.device.to_device(torch.from_numpy(images[i:i + 16])))]
                 for i in range(0, len(images), 16)]
        model.train()
        return [torch.cat(level) for level in zip(*parts)]

    def __call__(self, idx: np.ndarray, batch: torch.Tensor, penalty: bool = True) -> torch.Tensor:
        """The loss of ``batch`` (images ``idx``); ``penalty=False`` leaves out the out-of-distribution term."""
        batch = self.device.to_device(batch)
        with self.device.autocast():
            if self.cache is None:
                loss = self.phase.loss(batch)
            else:
                index = torch.from_numpy(np.asarray(idx)).to(self.cache[0].device)
                targets = [self.device.to_device(level[index]) for level in self.cache]
                loss = self.phase.loss_with_targets(batch, targets)
            if penalty and self.ood_rng is not None:
                ood = ood_batch(len(batch), batch.shape[1], batch.shape[2], self.ood_rng)
                loss = loss + self.phase.penalty_weight * self.phase.penalty(
                    self.device.to_device(torch.from_numpy(ood)))
            return loss


def validation_loss(model: AnomalyModel, loss_fn: PhaseLoss, batch_size: int, limit: int | None = None) -> float:
    """The mean loss of ``loss_fn``'s images in eval mode, without the out-of-distribution penalty.

    ``limit``: at most that many evenly spaced images (the seen-image loss of :func:`_validate`).
    """
    model.eval()
    total, count = 0.0, 0
    images = loss_fn.images
    if limit is not None and limit < len(images):
        order = torch.from_numpy(np.linspace(0, len(images) - 1, limit).round().astype(np.int64))
        images, index = images[order.to(images.device)], order.numpy()
    else:
        index = np.arange(len(images))
    with torch.no_grad():
        for idx, batch in batches(images, batch_size, None, "none"):
            total += float(loss_fn(index[idx], batch, penalty=False)) * len(batch)
            count += len(batch)
    model.train()  # the authors' code forgets this, leaving BatchNorm in eval mode from epoch 2
    return total / max(count, 1)


def train_epoch(phase: Phase, loss_fn: PhaseLoss, optimizer: torch.optim.Optimizer, generator: torch.Generator,
                epoch: int, progress: Progress, epochs_label: str,
                lr_at: Callable[[float], float] | None = None, may_end_early: bool = False) -> float:
    """One pass over ``loss_fn.images``; returns the mean training loss. Raises FloatingPointError on NaN/inf.

    ``lr_at(fraction)``: the learning rate of the step that starts at ``fraction`` ∈ [0, 1)
    of the epoch (the budget anneal of :meth:`StopRule.rate`); None keeps the optimizer's.
    ``may_end_early``: end the pass at a step whose rate is 0 (the time budget is spent, so
    the remaining steps could not move the weights; not the first epoch of an invocation).
    """
    cfg = phase.train
    running, seen = 0.0, 0
    steps = _steps_per_epoch(len(loss_fn.images), cfg.batch_size)
    for step, (idx, batch) in enumerate(batches(loss_fn.images, cfg.batch_size, generator, cfg.augment)):
        if lr_at is not None:
            lr = lr_at(step / steps)
            if lr == 0 and may_end_early and seen:
                break
            set_lr(optimizer, lr)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(idx, batch)
        value = float(loss.detach())  # one device sync per step: the progress line and the NaN check need it
        if not math.isfinite(value):
            raise FloatingPointError(f"{phase.name}: loss became {value} at epoch {epoch}")
        loss_fn.device.backward_step(loss, optimizer)
        running += value * len(batch)
        seen += len(batch)
        progress.step(epoch, epochs_label, value)
    return running / max(seen, 1)


def fit(model: AnomalyModel, phase: Phase, train_imgs: np.ndarray, val_imgs: np.ndarray,
        on_best: Callable[[int, float], None], progress_label: str = "train",
        start_epoch: int = 1, best: tuple[int, float] = (0, math.inf), earlier: list[dict] = (),
        device: TrainingDevice = CPU, schedule: ScheduleState | None = None,
        on_epoch: Callable[[int, float], None] | None = None, point: ResumePoint | None = None) -> FitResult:
    """Train one phase until its :class:`StopRule` says stop; call ``on_best(epoch, val_loss)``
    whenever the validation loss reaches a new minimum, and ``on_epoch(epoch, val_loss)`` (when
    given) after every epoch's validation.

    ``start_epoch``/``best``/``earlier`` continue a resumed phase: epochs before
    ``start_epoch`` were run earlier (their history rows are ``earlier``), ``best``
    is (epoch, val loss) of the checkpoint kept then, ``schedule`` the learning-rate
    schedule it recorded (continued when it is this phase's). ``model`` must already
    be on ``device`` (:meth:`TrainingDevice.prepare_model`). ``point`` (when given) writes the state after
    every epoch and, for a resumed phase, continues from the one it kept (optimiser, schedule, random streams).
    """
    cfg = phase.train
    rule = _stop_rule(phase, earlier, schedule)
    generator = torch.Generator().manual_seed(cfg.seed + start_epoch - 1)
    optimizer = make_optimizer(phase.parameters, cfg)
    set_lr(optimizer, rule.lr)
    epochs_label = f"≤{cfg.max_epochs}" if cfg.early_stopping else str(cfg.epochs)
    progress = _progress(phase, len(train_imgs), start_epoch, progress_label)
    result = FitResult(best_epoch=best[0], best_val_loss=best[1], epochs_run=start_epoch - 1)
    start, cpu_start = time.monotonic(), time.process_time()
    since = _phase_clock(earlier, start, cpu_start)  # history's and the summary's seconds span every invocation
    train_loss_fn = PhaseLoss(phase, train_imgs, model, device, ood_seed=cfg.seed + start_epoch - 1)
    val_loss_fn = PhaseLoss(phase, val_imgs, model, device)
    state = (optimizer, generator, train_loss_fn.ood_rng, rule)  # what resume.pt keeps besides the weights
    if point is not None:
        point.restore(phase.name, start_epoch, model, *state, earlier=earlier)
    model.train()
    epoch = start_epoch
    try:
        while (reason := rule.reason_before(epoch, time.monotonic() - start, first=epoch == start_epoch)) is None:
            def lr_at(fraction: float, epoch: int = epoch) -> float:
                return rule.rate(rule.budget_progress(epoch, fraction, time.monotonic() - start))
            # without an anneal the optimizer already trains at the plateau rate (_observe sets it)
            train_loss = train_epoch(phase, train_loss_fn, optimizer, generator, epoch, progress, epochs_label,
                                     lr_at if cfg.lr_anneal > 0 else None, may_end_early=epoch != start_epoch)
            val, seen = _validate(model, train_loss_fn, val_loss_fn, cfg.batch_size)
            with held():  # the row, best.pt, resume.pt: all or none (a stop between them lost --resume's state)
                improved = _record_epoch(result, rule, optimizer, phase.name, epoch, (train_loss, seen), val,
                                         *since)
                if improved:
                    on_best(epoch, val)
                if point is not None:
                    point.keep(phase.name, epoch, val, model, *state)
            if on_epoch is not None:
                on_epoch(epoch, val)
            gap = f" gap {rule.gap:+.1%}" if math.isfinite(rule.gap) else ""
            progress.epoch_end(epoch, epochs_label, f"{_train_label(model, phase)} {train_loss:.4f} val {val:.4f}{gap}"
                                                    f"{' *' if improved else ''}")
            epoch += 1
    except KeyboardInterrupt:
        reason = INTERRUPTED
    _close(result, rule, phase.name, reason, *since)
    model.eval()
    return result


def _train_label(model: AnomalyModel, phase: Phase) -> str:
    """The progress line's name of the training loss: 'train (hard loss)' where the phase's loss is the hard loss
    and the validation loss the plain mean (ModelConfig.validation_loss), whose values are an order of magnitude
    apart."""
    config = getattr(model, "config", None)
    hard = (getattr(config, "hard_quantile", 0) or 0) > 0 and phase.hard_loss
    return "train (hard loss)" if hard and getattr(config, "validation_loss", "hard") == "mean" else "train"


def _phase_clock(earlier: list[dict], start: float, cpu_start: float) -> tuple[float, float]:
    """(wall, CPU) clock origins of a phase so that its seconds count every invocation: ``start`` and
    ``cpu_start`` (``time.monotonic()``, ``time.process_time()`` now) moved back by the seconds the last of
    the ``earlier`` rows (a resumed phase's) recorded. They counted from each invocation's start, so a resumed
    run's history went 12.93 s at epoch 4 to 10.37 s at epoch 5 and its summary gave only the last part."""
    last = earlier[-1] if earlier else {}
    wall, cpu = (v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 else 0.0
                 for v in (last.get("seconds"), last.get("cpu_seconds")))
    return start - wall, cpu_start - cpu


def _record_epoch(result: "FitResult", rule: StopRule, optimizer: torch.optim.Optimizer, phase: str, epoch: int,
                  train: tuple[float, float], val: float, start: float, cpu_start: float) -> bool:
    """The epoch's history row and schedule step into ``result``/``rule``; whether it is the best so far.

    ``train``: (the epoch's running training loss, the seen loss of :func:`_validate`)."""
    result.history.append(_history_row(phase, epoch, train, val, optimizer, start, cpu_start))
    _observe(rule, optimizer, phase, epoch, val, train[1])
    result.epochs_run = epoch
    improved = val < result.best_val_loss
    if improved:
        result.best_epoch, result.best_val_loss = epoch, val
    return improved


def _stop_rule(phase: Phase, earlier: list[dict], schedule: ScheduleState | None) -> StopRule:
    """The phase's stop rule, continued from the epochs an earlier run recorded and its schedule."""
    rule = StopRule(phase.train, measures_gap=phase.measures_gap, nll_dims=phase.nll_dims)
    rule.replay(list(earlier))
    if schedule is not None and schedule.phase == phase.name:
        rule.restore(schedule)
    return rule


def _progress(phase: Phase, n_train: int, start_epoch: int, label: str) -> Progress:
    cfg = phase.train
    steps = _steps_per_epoch(n_train, cfg.batch_size) * max(cfg.epoch_limit - start_epoch + 1, 1)
    return Progress(steps, label=label, budget_s=cfg.time_budget_s, eta_is_bound=cfg.early_stopping)


def _validate(model: AnomalyModel, train_loss_fn: PhaseLoss, val_loss_fn: PhaseLoss,
              batch_size: int) -> tuple[float, float]:
    """(validation loss, seen loss) of the weights just trained, after re-estimating their eval-mode
    BatchNorm statistics (batchnorm.py) from the product's images only: out-of-distribution batches would
    skew them. The seen loss is the same measure on as many evenly spaced training images as there are
    validation images, so their ratio is the generalisation gap (stopping.py) with nothing else differing:
    mode, penalty and sample size are the same."""
    recompute_batchnorm_statistics(model, lambda i, b: train_loss_fn(i, b, penalty=False),
                                   train_loss_fn.images, batch_size)
    val = validation_loss(model, val_loss_fn, batch_size)
    seen = validation_loss(model, train_loss_fn, batch_size, limit=len(val_loss_fn.images))
    return val, seen


def _close(result: FitResult, rule: StopRule, phase: str, reason: str, start: float, cpu_start: float) -> None:
    """Record why and when the phase stopped, and the schedule a resume continues."""
    result.interrupted = reason == INTERRUPTED
    result.stop_reason, result.stop_detail = reason, rule.explain(reason)
    result.schedule = rule.state(phase)
    log.info("%s stopped: %s", phase, result.stop_detail)
    result.seconds, result.cpu_seconds = time.monotonic() - start, time.process_time() - cpu_start


def _history_row(phase: str, epoch: int, train: tuple[float, float], val: float,
                 optimizer: torch.optim.Optimizer, start: float, cpu_start: float) -> dict:
    """One ``history.json`` row: the epoch's losses (``train``: running training loss, seen loss), the rate
    its last step trained at, wall and CPU seconds since the phase started, across ``--resume`` invocations
    (``start``/``cpu_start``: :func:`_phase_clock`'s origins)."""
    return {"phase": phase, "epoch": epoch, "train_loss": train[0], "seen_loss": train[1], "val_loss": val,
            "lr": float(optimizer.param_groups[0]["lr"]), "seconds": round(time.monotonic() - start, 2),
            "cpu_seconds": round(time.process_time() - cpu_start, 2)}


def _steps_per_epoch(images: int, batch_size: int) -> int:
    """Optimizer steps in one pass over ``images`` (a last batch of one image is dropped: BatchNorm)."""
    return max(1, images // batch_size + (images % batch_size >= 2))


def _observe(rule: StopRule, optimizer: torch.optim.Optimizer, phase: str, epoch: int, val: float,
             seen: float | None = None) -> None:
    """Feed ``rule`` an epoch's validation (and seen) loss; apply (and say) a learning-rate decay it makes."""
    decays = rule.decays
    rule.observe(epoch, val, seen)
    if rule.decays != decays:
        set_lr(optimizer, rule.lr)
        log.info("%s: no validation improvement for %d epochs; learning rate decayed to %g (%d/%d)",
                 phase, rule.plateau, rule.lr, rule.decays, rule.cfg.lr_decays)


def train(config: RunConfig, run_dir: str | Path, resume: bool = False,
          on_epoch: Callable[[AnomalyModel, str, int, float, np.ndarray], None] | None = None) -> dict:
    """Train a model as ``config`` says into ``run_dir``; return the run summary.

    ``on_epoch(model, phase, epoch, val_loss, val_images)``, when given, is called after every
    epoch's validation (benchmarks/learning_curve.py scores a copy of the model there); the
    validation images are uint8 (N, H, W, 3) at the model's input size.

    ``resume``: continue the run already in ``run_dir`` from its ``best.pt``: phases
    it completed are skipped, an interrupted phase restarts after its last
    recorded epoch as the uninterrupted run would: the weights, optimiser state, schedule and random streams
    of ``resume.pt`` (:mod:`inspector.training.resume_point`; a run without it: the best weights, the optimiser
    afresh, said in one line). A finished
    run is extended when ``config`` allows its last phase more epochs (a larger
    ``train.epochs`` or ``max_epochs``); otherwise ConfigError.
    """
    device = TrainingDevice.from_config(config.train)  # first: a wrong device fails before any work
    run_dir = Path(run_dir)
    with hold_run_folder(run_dir):
        return _train_held(config, run_dir, device, resume, on_epoch)


def _train_held(config: RunConfig, run_dir: Path, device: TrainingDevice, resume: bool, on_epoch) -> dict:
    """:func:`train` in ``run_dir`` once this process holds it."""
    config = _settle(config, resume)
    model = build_model(config.model)
    phases = default_phases(model, config.train)
    completed, resumed, history = _start_state(model, phases, run_dir, resume)
    device.prepare_model(model)
    # first: a data error leaves no half run; a resumed run keeps the split it recorded
    train_imgs, val_imgs, data_summary = load_training_images(config, resumed.get("data"))
    save_run_config(config, run_dir / "config.yaml")  # paths relative to the run folder (file rule)
    fit_statistics = getattr(model, "fit_feature_statistics", None)
    if callable(fit_statistics) and not resume:
        fit_statistics(train_imgs)  # before targets are cached: they are standardised with these
    summary = {"model": config.model.name, "preset": config.model.preset, "data": data_summary,
               "device": device.describe(), "phases": []}
    if resume:  # phases kept from the run being resumed, as that run recorded them
        summary["earlier_phases"] = _earlier_phases(run_dir, completed)

    for phase in phases:
        if phase.name in completed:
            log.info("phase %s was completed by the run being resumed; skipping it", phase.name)
            continue

        on_best = _best_saver(run_dir / BEST, model, config, phase.name, data_summary, completed, phases)
        earlier = [h for h in history if h.get("phase") == phase.name]
        start, best = _start_point(phase.name, earlier, resumed)
        each = _epoch_callback(on_epoch, model, phase.name, val_imgs)
        result = fit(model, phase, train_imgs, val_imgs, on_best, progress_label=phase.name,
                     start_epoch=start, best=best, earlier=earlier, device=device,
                     schedule=resumed.get("schedule"), on_epoch=each, point=ResumePoint(run_dir, resume))
        summary["phases"].append(_phase_record(phase.name, result))
        if result.best_epoch == 0:  # interrupted before the first validation: keep what we have
            on_best(0, None)
        _record_phase_end(run_dir, result, history)
        if result.interrupted and not _finishes_when_interrupted(phase is phases[-1], result):
            break
        completed.append(phase.name)
        norm = finish_phase(model, run_dir / BEST, completed, val_imgs, last=phase is phases[-1],
                            after=lambda: after_training(model, config))
        if phase is phases[-1]:
            _add_final_steps(summary, norm)
    _write_summary(summary, run_dir)
    return summary


def _finishes_when_interrupted(last: bool, result: FitResult) -> bool:
    """Whether an interrupted phase is finished like a completed one (True) or the run stops as it is.

    The last phase, once it has a validated best epoch, is: its best weights get the map normalisation
    fitted as at a normal end, so an interrupted run can be evaluated and exported (with the constants at
    their identity the level maps were summed unnormalised, a silently weaker model). ``--resume`` then
    extends it, as it extends a finished run. An earlier phase, or one interrupted before its first
    validation, leaves the run incomplete; ``load_model`` refuses such a run in one line.
    """
    if last and result.best_epoch > 0:
        log.info("interrupted: finishing the best weights (epoch %d) so the run can be evaluated and exported; "
                 "--resume trains on", result.best_epoch)
        return True
    log.warning("interrupted before the last phase was trained: the run is incomplete until resumed (--resume)")
    return False


def _epoch_callback(on_epoch, model: AnomalyModel, phase: str, val_imgs: np.ndarray):
    """``train``'s ``on_epoch`` as ``fit`` calls it, with the model in eval mode meanwhile; None stays None."""
    if on_epoch is None:
        return None

    def each(epoch: int, val: float) -> None:
        model.eval()
        on_epoch(model, phase, epoch, val, val_imgs)
        model.train()
    return each


def _add_final_steps(summary: dict, norm: tuple[dict, dict | None]) -> None:
    """The last phase's map normalisation and after-training step (if any) into the run summary."""
    summary["map_normalization"], after = norm
    if after is not None:
        summary["after_training"] = after


def _write_summary(summary: dict, run_dir: Path) -> None:
    write_run_json(run_dir / "summary.json", summary, indent=2)
    total = sum(p["seconds"] for p in summary["phases"])
    log.info("training on %s finished in %s; best checkpoint %s", summary["device"]["device"],
             format_duration(total), run_dir / BEST)


def write_run_json(path: Path, obj, indent: int = 1) -> None:
    """A run's JSON record (``history.json``, ``summary.json``), whole or not at all
    (:func:`inspector.outputs.write_whole`): rewritten in place, a full disk or a stop part-way left half a
    history, which ``--resume`` then refuses, so the run could not go on. OSError when it cannot be written."""
    write_whole(path, json.dumps(obj, indent=indent).encode("utf-8"))


def _record_phase_end(run_dir: Path, result: FitResult, history: list[dict]) -> None:
    """Add the phase's epochs to ``history`` and history.json, and store its learning-rate schedule after
    the last epoch (not the best one's) in best.pt, so --resume continues both."""
    history.extend(result.history)
    write_run_json(run_dir / "history.json", history)
    update_checkpoint(run_dir / BEST, read_checkpoint(run_dir / BEST), lr_schedule=result.schedule.to_dict(),
                      stop_reason=result.stop_reason)  # --resume tells an interrupted phase from a finished run


def _settle(config: RunConfig, resume: bool) -> RunConfig:
    """The config a run trains with (a new run's input size resolved from its data); threads and seed set."""
    if not resume:
        config = resolve_input(config)
        if config.data.input_size == "fixed":
            log.info("input size %dx%d (height x width)", *config.model.image_size)
    if config.train.threads:
        torch.set_num_threads(capped_threads(config.train.threads, "train.threads"))
    seed_everything(config.train.seed)
    return config


def _start_state(model, phases: list, run_dir: Path, resume: bool) -> tuple[list[str], dict, list[dict]]:
    """(completed phase names, the resumed checkpoint's position, epoch history): empty for a new run."""
    if not resume:
        return [], {}, []
    completed, resumed, history = _resume_state(model, run_dir, [p.name for p in phases])
    reopened = _reopen_finished(phases, completed, history, run_dir, resumed["stop_reason"] == INTERRUPTED)
    resumed["extending"] = reopened != completed and resumed["stop_reason"] != INTERRUPTED
    return reopened, resumed, history


def _start_point(phase: str, earlier: list[dict], resumed: dict) -> tuple[int, tuple[int, float]]:
    """(first epoch, (best epoch, best validation loss)) of ``phase``: after its recorded epochs, if any."""
    start, best = 1 + max((h["epoch"] for h in earlier), default=0), (0, math.inf)
    if resumed.get("phase") == phase:
        best = (resumed["epoch"], math.inf if resumed["val_loss"] is None else resumed["val_loss"])
    if start > 1:  # where the weights, optimiser and schedule come from: resume.pt (ResumePoint) says
        what = "extending a finished run" if resumed.get("extending") else "resuming interrupted phase"
        log.info("%s: %s at epoch %d (best so far: epoch %d, validation loss %.5g)", what, phase, start, *best)
    return start, best


def _best_saver(path: Path, model: AnomalyModel, config: RunConfig, phase: str, data: dict,
                completed: list[str], phases: list[Phase]) -> Callable[[int, float | None], None]:
    """``fit``'s ``on_best(epoch, val_loss)`` for ``phase``: the weights into ``path`` with the run's
    bookkeeping (the phases completed so far, and every phase of the run: what makes it complete)."""
    def on_best(epoch: int, val: float | None) -> None:
        save_checkpoint(path, model, config, phase=phase, epoch=epoch, val_loss=val, data=data,
                        completed_phases=list(completed), phases=[p.name for p in phases])
    return on_best


def _phase_record(name: str, result: FitResult) -> dict:
    """The summary.json entry of one phase, including why it stopped."""
    return {"name": name, "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
            "best_val_loss": result.best_val_loss, "seconds": round(result.seconds, 1),
            "cpu_seconds": round(result.cpu_seconds, 1),
            "interrupted": result.interrupted, "stop_reason": result.stop_reason,
            "stop_detail": result.stop_detail, "lr_decays": result.schedule.decays,
            "final_lr": result.schedule.lr}


def _reopen_finished(phases: list[Phase], completed: list[str], history: list[dict], run_dir: Path,
                     interrupted: bool = False) -> list[str]:
    """For a run whose phases all completed: reopen the last one if its config allows more epochs
    (``interrupted``: its last phase was interrupted and finished as it was, :func:`_finishes_when_interrupted`).

    Only the last phase is extended: earlier ones feed it (AST's flow → student),
    so extending them would make the later phase's training stale.
    """
    if any(p.name not in completed for p in phases):
        return completed
    last = phases[-1]
    rule = StopRule(last.train)
    rows = [h for h in history if h.get("phase") == last.name]
    rule.replay(rows)
    ran = max((h["epoch"] for h in rows), default=0)
    reason = rule.reason_before(ran + 1, 0.0)
    if reason is not None:
        raise ConfigError(f"{run_dir}: the run already finished ({last.name}: {rule.explain(reason)}); "
                          f"to extend it pass --epochs N with N > {ran}")
    if not interrupted:
        log.info("extending a finished run: phase %s after epoch %d", last.name, ran)
    return [name for name in completed if name != last.name]


def _earlier_phases(run_dir: Path, completed: list[str]) -> list[dict]:
    """summary.json entries (its ``phases`` and ``earlier_phases``) of the phases a resumed run keeps."""
    path = run_dir / "summary.json"
    if not path.is_file():
        return []
    try:
        old = json.loads(path.read_text())
        phases = old.get("earlier_phases", []) + old.get("phases", [])
    except (ValueError, AttributeError, TypeError):
        return []  # a damaged summary only loses the record of earlier phases, not the run
    return [p for p in phases if isinstance(p, dict) and p.get("name") in completed]


def finish_phase(model: AnomalyModel, path: Path, completed: list[str], val_imgs: np.ndarray,
                 last: bool, after: Callable[[], dict | None] | None = None):
    """A phase's end: ``best.pt`` read once and written once.

    Loads the best weights into ``model`` (later phases start from them, as the
    rule says), records ``completed`` (for --resume) and, after the last phase,
    fits the map normalisation on the validation images into the stored weights,
    then runs ``after`` (a model's post-training step, e.g. a module-importance search)
    and stores what it changed with the model card. Returns the fitted constants per
    level (or None) for a phase that is not the last, else (those, ``after``'s summary).
    """
    payload = read_checkpoint(path)
    model.load_state_dict(payload["state_dict"])
    changes: dict = {"completed_phases": list(completed)}
    norm = _fit_map_normalization(model, val_imgs) if last else None
    if norm is not None:
        changes["state_dict"] = host_state_dict(model)
    extra = after() if last and after is not None else None
    if extra is not None:
        changes["state_dict"] = host_state_dict(model)
        changes["model"] = model.describe()
    update_checkpoint(path, payload, **changes)
    return (norm, extra) if last else norm


def _fit_map_normalization(model: AnomalyModel, val_imgs: np.ndarray) -> dict | None:
    """Fit the model's quantile map normalisation on ``val_imgs``; None when it has none to fit."""
    if getattr(model, "level_norm", None) is None or model.config.map_normalization != "quantile":
        return None
    device = next(model.parameters()).device  # the training device: calibrate where the model is
    with torch.no_grad():
        model.calibrate_maps(torch.from_numpy(val_imgs).to(device))
    norm = model.level_norm
    return {"shift": norm.shift.tolist(), "scale": norm.scale.tolist()}


def after_training(model: AnomalyModel, config: RunConfig) -> dict | None:
    """A model's optional ``fit_after_training(data_config)`` step, run on the best weights.

    For steps that fix constants of a trained model without touching its trained weights
    (feature_imitation's module-importance search). Returns the step's summary, or None.
    """
    step = getattr(model, "fit_after_training", None)
    return step(config.data) if callable(step) else None


def _resume_state(model: AnomalyModel, run_dir: Path, phase_names: list[str]) -> tuple[list[str], dict, list]:
    """Load ``best.pt`` of the run to resume into ``model``: (completed phases, checkpoint, history)."""
    path = run_dir / BEST
    if not path.is_file():
        raise ModelError(f"{path}: nothing to resume (no checkpoint in the run folder)")
    payload = read_checkpoint(run_dir)  # the folder: its best.pt is checked against its other files
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:  # weights of another architecture than the config the run resumes with
        raise ModelError(f"{path}: weights do not fit model '{model.config.name}' "
                         f"({str(exc).splitlines()[0]})") from None
    phase = payload.get("phase")
    if phase not in phase_names:
        raise ModelError(f"{path}: checkpoint of phase '{phase}', but this model trains {phase_names}")
    # Checkpoints written before completed_phases existed: every earlier phase was completed.
    completed = list(payload.get("completed_phases", phase_names[: phase_names.index(phase)]))
    history = _read_history(run_dir / "history.json")
    resumed = {"phase": phase, "epoch": payload.get("epoch") or 0, "val_loss": payload.get("val_loss"),
               "schedule": _read_schedule(payload, path), "stop_reason": payload.get("stop_reason"),
               "data": payload.get("data")}
    return completed, resumed, history


def _read_history(path: Path) -> list[dict]:
    """The epoch rows of a run being resumed ([] when nothing, not even a link, has the name). ModelError naming
    the file when it is no readable regular file (a folder, a FIFO, a link to nothing or to itself), is not JSON
    or a row lacks a phase name, an epoch number ≥ 1 or a numeric val_loss: the resume replays them. Such a
    name was taken for no history: a finished run was extended from epoch 0, trained whole, and failed only
    when its history was written ("Is a directory")."""
    if not os.path.lexists(path):
        return []
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # checked first: reading a FIFO waits for a writer for ever
            raise IsADirectoryError(errno.EISDIR, "Is a directory") if path.is_dir() else \
                OSError(errno.EINVAL, "not a regular file")
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ModelError(f"{path}: unreadable epoch history ({reason}); --resume replays it") from None
    if not isinstance(rows, list):
        raise ModelError(f"{path}: epoch history is a {type(rows).__name__}, not a list of epochs")
    for i, row in enumerate(rows):
        if not (isinstance(row, dict) and isinstance(row.get("phase"), str) and _is_number(row.get("epoch"), int)
                and row["epoch"] >= 1 and _is_number(row.get("val_loss"), (int, float))):
            raise ModelError(f"{path}: epoch history row {i} needs a phase name, an epoch ≥ 1 and a val_loss; "
                             f"got {str(row)[:80]}")
    return rows


def _is_number(value, types) -> bool:
    return isinstance(value, types) and not isinstance(value, bool)


def _read_schedule(payload: dict, path: Path) -> ScheduleState | None:
    """The checkpoint's ``lr_schedule`` (None in checkpoints written before it existed); ModelError if malformed."""
    raw = payload.get("lr_schedule")
    if raw is None:
        return None  # the schedule is then replayed from history.json alone (StopRule.replay)
    try:
        return ScheduleState.parse(raw, where="lr_schedule")
    except ConfigError as exc:
        raise ModelError(f"{path}: {exc}") from None
