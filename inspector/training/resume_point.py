"""``resume.pt``: the training state after the last epoch, so ``inspector train --resume`` continues the run.

best.pt holds the weights of the best epoch, not the optimiser: a resumed run restarted Adam's moments from
zero (a large first step on a well-trained model), reshuffled its batches from a new seed and started again
from the best epoch's weights, so N/2 epochs + --resume for N/2 trained another model than N epochs straight.
After every epoch the loop writes this file (whole or not at all): the phase and epoch, the weights as
they are then, the optimiser's state (moments, step counts, learning rates), the learning-rate schedule, and
the random streams (batch order and flips, out-of-distribution images, torch's global stream). A resumed
phase continues from it when it is the point the run's history ends at; otherwise (a run from before this
file, or one killed between an epoch and its history) one line says the optimiser starts afresh.

Everything the file holds is checked before any of it is put back (:func:`point_problem`): a resume.pt copied in
from another run (another model, another architecture, or the same one trained elsewhere: its validation loss
is not the one the history recorded for that epoch), damaged, or of another structure, was a RuntimeError,
KeyError, ValueError or TypeError traceback from ``load_state_dict``/``set_state`` (or, worse, loaded half of
it). Now it is an unusable resume point like a missing one: the same one warning line, with why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inspector.artifacts.checkpoint import save_whole
from inspector.artifacts.run_files import RESUME
from inspector.errors import ConfigError, ModelError
from inspector.models.base import AnomalyModel
from inspector.models.checkpoint import host_state_dict
from inspector.training.stopping import ScheduleState, StopRule

log = logging.getLogger(__name__)
FORMAT = "inspector-resume-point"
VERSION = 2  # 2: the run's identity (model, model config, optimiser) and the epoch's validation loss


class ResumePoint:
    """Writes ``run_dir/resume.pt`` after each epoch (:meth:`keep`) and, for a resumed phase, puts the loop's
    state back as the file has it (:meth:`restore`)."""

    def __init__(self, run_dir: Path, resumed: bool) -> None:
        self.path, self.resumed = Path(run_dir) / RESUME, resumed

    def keep(self, phase: str, epoch: int, val_loss: float, model: AnomalyModel, optimizer: torch.optim.Optimizer,
             generator: torch.Generator, ood_rng: np.random.Generator | None, rule: StopRule) -> None:
        payload = {"format": FORMAT, "version": VERSION, "phase": phase, "epoch": epoch, "val_loss": val_loss,
                   "identity": identity(model, optimizer),
                   "state_dict": host_state_dict(model), "optimizer": _host(optimizer.state_dict()),
                   "lr_schedule": rule.state(phase).to_dict(), "generator": generator.get_state(),
                   "torch_rng": torch.get_rng_state(),
                   "ood_rng": None if ood_rng is None else ood_rng.bit_generator.state}
        save_whole(self.path, payload)  # a full disk or Ctrl-C mid-write leaves the previous epoch's file

    def restore(self, phase: str, start_epoch: int, model: AnomalyModel, optimizer: torch.optim.Optimizer,
                generator: torch.Generator, ood_rng: np.random.Generator | None, rule: StopRule,
                earlier: list[dict] = ()) -> bool:
        """Continue ``phase`` at ``start_epoch`` from the file; False (and one line said) when it cannot.
        ``earlier``: the history rows of ``phase`` (the row of the point's epoch tells this run's point from
        another's). Nothing is put back unless all of it fits; never raises for the file's content."""
        if not self.resumed or start_epoch <= 1:
            return False
        point = self._read()
        why = _why(point, phase, start_epoch - 1)
        if why is None:
            recorded = next((r.get("val_loss") for r in earlier if r.get("epoch") == start_epoch - 1), None)
            why = point_problem(point, phase, recorded, model, optimizer, generator, ood_rng)
        if why is not None:
            log.warning("%s: no optimiser state for %s epoch %d (%s); resuming with the optimiser's moments "
                        "afresh, from the best checkpoint's weights: not the run an uninterrupted training "
                        "would have made", self.path, phase, start_epoch - 1, why)
            return False
        _put_back(point, model, optimizer, generator, ood_rng, rule)
        log.info("resuming %s at epoch %d with the optimiser, schedule and random streams of epoch %d (%s)",
                 phase, start_epoch, start_epoch - 1, self.path)
        return True

    def _read(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        try:
            with self.path.open("rb") as fh:
                point = torch.load(fh, map_location="cpu", weights_only=True)
        except OSError as exc:
            # permissions, a disk error: the point may be sound; read as damaged, the run went on from best.pt and
            # the next epoch's point replaced it. history.json unreadable is refused the same way (loop.py)
            raise ModelError(f"{self.path}: cannot read the resume point ({exc.strerror or exc}); --resume "
                             f"continues from it") from None
        except Exception as exc:  # torch raises many types for a damaged file; the caller says it is not usable
            return {"unreadable": f"not a readable torch file ({type(exc).__name__})"}
        if not isinstance(point, dict) or point.get("format") != FORMAT:
            return {"unreadable": "not a resume point"}
        return point


def _put_back(point: dict, model: AnomalyModel, optimizer: torch.optim.Optimizer, generator: torch.Generator,
              ood_rng: np.random.Generator | None, rule: StopRule) -> None:
    """The loop's state as ``point`` has it; :func:`point_problem` found it whole and fitting."""
    model.load_state_dict(point["state_dict"])
    optimizer.load_state_dict(point["optimizer"])
    rule.restore(ScheduleState.parse(point["lr_schedule"], where=f"{RESUME}: lr_schedule"))  # checked before
    generator.set_state(point["generator"])
    torch.set_rng_state(point["torch_rng"])
    if ood_rng is not None and point.get("ood_rng") is not None:
        ood_rng.bit_generator.state = point["ood_rng"]


def identity(model: AnomalyModel, optimizer: torch.optim.Optimizer) -> dict[str, str]:
    """What makes a resume point this run's: the model's name, a hash of its whole config (a resume cannot
    change it) and the optimiser's kind (Adam moments do not fit SGD)."""
    config = json.dumps(vars(model.config), sort_keys=True, default=str)
    return {"model": model.config.name, "model_config": hashlib.sha256(config.encode()).hexdigest()[:16],
            "optimizer": type(optimizer).__name__}


# key → the types it must hold: anything else and the point is not usable (a KeyError/TypeError traceback before)
_FIELDS: dict[str, tuple[type, ...]] = {
    "version": (int,), "state_dict": (dict,), "optimizer": (dict,), "lr_schedule": (dict,),
    "generator": (torch.Tensor,), "torch_rng": (torch.Tensor,), "ood_rng": (dict, type(None)),
    "identity": (dict, type(None)), "val_loss": (int, float, type(None)),
}


def point_problem(point: dict, phase: str, recorded: float | None, model: AnomalyModel,
                  optimizer: torch.optim.Optimizer, generator: torch.Generator,
                  ood_rng: np.random.Generator | None) -> str | None:
    """Why ``point`` (a resume point of ``phase`` at the epoch resumed after) cannot be put back into this
    run's ``model``, ``optimizer`` and random streams, one phrase; None when all of it fits. ``recorded``:
    the validation loss history.json has for that epoch."""
    for key, types in _FIELDS.items():
        optional = type(None) in types
        if key not in point and not optional:
            return f"{RESUME} has no '{key}'"
        if not isinstance(point.get(key), types) or isinstance(point.get(key), bool):
            return f"{RESUME}: '{key}' holds a {type(point.get(key)).__name__}"
    if point["version"] > VERSION:
        return f"{RESUME} is of a newer inspector (version {point['version']})"
    if not all(isinstance(v, str) for v in (point.get("identity") or {}).values()):
        return f"{RESUME}: 'identity' holds something other than names"
    return (_run_problem(point, recorded, model, optimizer)
            or _weights_problem(point["state_dict"], model)
            or _optimizer_problem(point["optimizer"], optimizer)
            or _schedule_problem(point["lr_schedule"], phase)
            or _streams_problem(point, generator, ood_rng))


def _run_problem(point: dict, recorded: float | None, model: AnomalyModel,
                 optimizer: torch.optim.Optimizer) -> str | None:
    """Whether ``point`` is of another run: another model, model config or optimiser (its identity; files
    before version 2 have none), or the same kind trained elsewhere (the epoch's validation loss)."""
    saved, mine = point.get("identity") or {}, identity(model, optimizer)
    if saved.get("model", mine["model"]) != mine["model"]:
        return f"{RESUME} is of model '{str(saved['model'])[:40]}', this run trains '{mine['model']}'"
    if saved.get("model_config", mine["model_config"]) != mine["model_config"]:
        return f"{RESUME} is of another {mine['model']} config than this run's"
    if saved.get("optimizer", mine["optimizer"]) != mine["optimizer"]:
        return f"{RESUME} holds a {str(saved['optimizer'])[:20]} optimiser's state, this run trains with " \
               f"{mine['optimizer']}"
    val = point.get("val_loss")
    if val is not None and recorded is not None and not math.isclose(val, recorded, rel_tol=1e-9) \
            and not (math.isnan(val) and math.isnan(recorded)):
        return (f"{RESUME} is of another run: its epoch {point['epoch']} validation loss {val:.6g}, "
                f"history.json's {recorded:.6g}")
    return None


def _weights_problem(state: dict, model: AnomalyModel) -> str | None:
    """The first name or shape where the saved weights differ from the model's (load_state_dict's traceback)."""
    mine = model.state_dict()
    for name, tensor in state.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            return f"{RESUME}: 'state_dict' holds something other than named tensors"
        if name not in mine:
            return f"{RESUME} holds weights of another model: {name[:60]} is not in this one"
        if tuple(tensor.shape) != tuple(mine[name].shape):
            return (f"{RESUME} holds weights of another model: {name[:60]} is {list(tensor.shape)}, "
                    f"in this one {list(mine[name].shape)}")
    missing = [name for name in mine if name not in state]
    return f"{RESUME} lacks weights of this model: {missing[0][:60]}" if missing else None


def _optimizer_problem(saved: dict, optimizer: torch.optim.Optimizer) -> str | None:
    """Whether the saved optimiser state fits ``optimizer``: its parameter groups (count, sizes, the settings
    each step reads) and each parameter's state tensors (the parameter's shape, or a scalar step count)."""
    groups, state = saved.get("param_groups"), saved.get("state")
    mine = optimizer.state_dict()["param_groups"]
    if not isinstance(groups, list) or not isinstance(state, dict) or len(groups) != len(mine):
        return f"{RESUME}: the optimiser state is not {len(mine)} parameter group(s) and their state"
    params: dict = {}
    for group, own, current in zip(groups, mine, optimizer.param_groups):
        if not isinstance(group, dict) or not isinstance(group.get("params"), list) \
                or len(group["params"]) != len(own["params"]):
            return f"{RESUME}: the optimiser's parameter groups do not fit this model's"
        for key, value in own.items():
            if key != "params" and not _same_kind(group.get(key, _MISSING), value):
                return f"{RESUME}: the optimiser's setting '{key}' is {str(group.get(key, 'missing'))[:30]}"
        params.update(zip(group["params"], current["params"]))
    kind = type(optimizer).__name__
    for key, entry in state.items():
        if key not in params or not isinstance(entry, dict):
            return f"{RESUME}: the optimiser holds state of parameter {str(key)[:20]}, not one of this model's"
        if not _fits(entry, params[key], _STATE_KEYS.get(kind, ())):
            return f"{RESUME}: the optimiser's state of parameter {key} is not {kind}'s for its shape"
    return None


def _fits(entry: dict, param: torch.Tensor, needs: tuple[str, ...]) -> bool:
    """Whether one parameter's saved optimiser state is what the optimiser's step reads: each of ``needs``
    a tensor of the parameter's shape (SGD's momentum buffer may be None: no momentum), a step count ≥ 0."""
    for name in needs:
        value = entry.get(name, _MISSING)
        if name == "step":
            if not _is_step(value):
                return False
        elif not (isinstance(value, torch.Tensor) and value.shape == param.shape) \
                and not (name == "momentum_buffer" and value is None):
            return False
    return all(value.shape == param.shape for value in entry.values()
               if isinstance(value, torch.Tensor) and value.dim())


_MISSING = object()
# what each optimiser make_optimizer makes keeps per parameter (its step reads them without a check)
_STATE_KEYS = {"Adam": ("step", "exp_avg", "exp_avg_sq"), "SGD": ("momentum_buffer",)}


def _is_step(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.dim() == 0 and value.is_floating_point() and bool(value >= 0)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def _same_kind(saved: Any, mine: Any) -> bool:
    """Whether an optimiser setting read back can stand where ``mine`` stands (a number for a number, ...).
    A flag may be missing: torch fills those in as it loads (an older torch wrote fewer); a rate may not."""
    if isinstance(mine, bool) or mine is None:
        return saved is None or isinstance(saved, bool) or saved is _MISSING
    if isinstance(mine, (int, float)):
        return isinstance(saved, (int, float)) and not isinstance(saved, bool)
    if isinstance(mine, (tuple, list)):
        return isinstance(saved, (tuple, list)) and len(saved) == len(mine) \
            and all(_same_kind(s, m) for s, m in zip(saved, mine))
    return type(saved) is type(mine)


def _schedule_problem(raw: dict, phase: str) -> str | None:
    try:
        schedule = ScheduleState.parse(raw, where="lr_schedule")
    except ConfigError as exc:
        return f"{RESUME}: {exc}"
    return None if schedule.phase == phase else f"{RESUME}: its lr_schedule is of phase '{schedule.phase[:40]}'"


def _streams_problem(point: dict, generator: torch.Generator, ood_rng: np.random.Generator | None) -> str | None:
    """Whether the random streams' states are the states of such generators (set_state raised on others)."""
    for key, current in (("generator", generator.get_state()), ("torch_rng", torch.get_rng_state())):
        if point[key].dtype != current.dtype or point[key].shape != current.shape:
            return f"{RESUME}: '{key}' is not a random generator's state"
    if ood_rng is None or point.get("ood_rng") is None:
        return None
    try:  # tried on a fresh bit generator of the kind: numpy checks the state as it sets it
        type(ood_rng.bit_generator)().state = point["ood_rng"]
    except (TypeError, ValueError, KeyError) as exc:
        return f"{RESUME}: 'ood_rng' is not a random generator's state ({type(exc).__name__})"
    return None


def _why(point: dict | None, phase: str, epoch: int) -> str | None:
    """Why ``point`` is not the one of ``phase`` ``epoch`` (the history's last); None when it is."""
    if point is None:
        return f"no {RESUME}: a checkpoint from before optimiser states were saved"
    if point.get("unreadable"):
        return f"{RESUME} is damaged or {point['unreadable']}"
    if not isinstance(point.get("phase"), str) or type(point.get("epoch")) is not int:
        return f"{RESUME} names no phase and epoch"
    if (point["phase"], point["epoch"]) != (phase, epoch):
        return f"{RESUME} is of {point['phase'][:40]} epoch {point['epoch']}, not the history's last"
    return None


def _host(state: Any) -> Any:
    """The optimiser's state with its tensors on the host (a GPU run resumes on any device)."""
    if isinstance(state, torch.Tensor):
        return state.detach().cpu()
    if isinstance(state, dict):
        return {k: _host(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_host(v) for v in state]
    return state
