"""``resume.pt``: the training state after the last epoch, so ``inspector train --resume`` continues the run.

best.pt holds the weights of the best epoch, not the optimiser: a resumed run restarted Adam's moments from
zero (a large first step on a well-trained model), reshuffled its batches from a new seed and started again
from the best epoch's weights, so N/2 epochs + --resume for N/2 trained another model than N epochs straight.
After every epoch the loop writes this file (atomically, temp + rename): the phase and epoch, the weights as
they are then, the optimiser's state (moments, step counts, learning rates), the learning-rate schedule, and
the random streams (batch order and flips, out-of-distribution images, torch's global stream). A resumed
phase continues from it when it is the point the run's history ends at; otherwise (a run from before this
file, or one killed between an epoch and its history) one line says the optimiser starts afresh.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inspector.models.base import AnomalyModel
from inspector.models.checkpoint import host_state_dict
from inspector.training.stopping import ScheduleState, StopRule

log = logging.getLogger(__name__)
RESUME = "resume.pt"
FORMAT = "inspector-resume-point"
VERSION = 1


class ResumePoint:
    """Writes ``run_dir/resume.pt`` after each epoch (:meth:`keep`) and, for a resumed phase, puts the loop's
    state back as the file has it (:meth:`restore`)."""

    def __init__(self, run_dir: Path, resumed: bool) -> None:
        self.path, self.resumed = Path(run_dir) / RESUME, resumed

    def keep(self, phase: str, epoch: int, model: AnomalyModel, optimizer: torch.optim.Optimizer,
             generator: torch.Generator, ood_rng: np.random.Generator | None, rule: StopRule) -> None:
        payload = {"format": FORMAT, "version": VERSION, "phase": phase, "epoch": epoch,
                   "state_dict": host_state_dict(model), "optimizer": _host(optimizer.state_dict()),
                   "lr_schedule": rule.state(phase).to_dict(), "generator": generator.get_state(),
                   "torch_rng": torch.get_rng_state(),
                   "ood_rng": None if ood_rng is None else ood_rng.bit_generator.state}
        tmp = self.path.with_suffix(".pt.tmp")
        torch.save(payload, tmp)
        os.replace(tmp, self.path)  # Ctrl-C mid-write leaves the previous epoch's file, never half a file

    def restore(self, phase: str, start_epoch: int, model: AnomalyModel, optimizer: torch.optim.Optimizer,
                generator: torch.Generator, ood_rng: np.random.Generator | None, rule: StopRule) -> bool:
        """Continue ``phase`` at ``start_epoch`` from the file; False (and one line said) when it cannot."""
        if not self.resumed or start_epoch <= 1:
            return False
        point = self._read()
        if point is not None and not point.get("unreadable") and not _fits(point, model, optimizer):
            point = {"foreign": True}  # a file copied from another run: loading it would fail half-way
        if point is None or point.get("phase") != phase or point.get("epoch") != start_epoch - 1:
            log.warning("%s: no optimiser state for %s epoch %d (%s); resuming with the optimiser's moments "
                        "afresh, from the best checkpoint's weights: not the run an uninterrupted training "
                        "would have made", self.path, phase, start_epoch - 1, _why(point, phase))
            return False
        model.load_state_dict(point["state_dict"])
        optimizer.load_state_dict(point["optimizer"])
        rule.restore(ScheduleState.parse(point["lr_schedule"], where=f"{self.path}: lr_schedule"))
        generator.set_state(point["generator"])
        torch.set_rng_state(point["torch_rng"])
        if ood_rng is not None and point.get("ood_rng") is not None:
            ood_rng.bit_generator.state = point["ood_rng"]
        log.info("resuming %s at epoch %d with the optimiser, schedule and random streams of epoch %d (%s)",
                 phase, start_epoch, start_epoch - 1, self.path)
        return True

    def _read(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        try:
            point = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:  # torch raises many types for a damaged file; the caller says it is not usable
            return {"unreadable": True}
        return point if isinstance(point, dict) and point.get("format") == FORMAT else {"unreadable": True}


def _fits(point: dict, model: AnomalyModel, optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``point`` holds this model's weights (same names and shapes) and an optimiser state with this
    optimiser's parameter groups, checked before anything is loaded: ``load_state_dict`` copies what matches
    before it raises, so a file from another run (another model, size or teacher) would leave half its weights."""
    own, saved = model.state_dict(), point.get("state_dict")
    if not isinstance(saved, dict) or set(saved) != set(own):
        return False
    if any(not isinstance(saved[k], torch.Tensor) or saved[k].shape != own[k].shape for k in own):
        return False
    groups = point.get("optimizer", {}).get("param_groups") if isinstance(point.get("optimizer"), dict) else None
    mine = optimizer.state_dict()["param_groups"]
    return (isinstance(groups, list) and len(groups) == len(mine)
            and all(isinstance(g, dict) and len(g.get("params", ())) == len(m["params"]) for g, m in zip(groups, mine))
            and all(isinstance(point.get(k), (dict, torch.Tensor)) for k in ("lr_schedule", "generator", "torch_rng")))


def _why(point: dict | None, phase: str) -> str:
    if point is None:
        return f"no {RESUME}: a checkpoint from before optimiser states were saved"
    if point.get("unreadable"):
        return f"{RESUME} is damaged or not a resume point"
    if point.get("foreign"):
        return f"{RESUME} holds another model's weights or optimiser (copied from another run?)"
    return f"{RESUME} is of {point.get('phase')} epoch {point.get('epoch')}, not the history's last"


def _host(state: Any) -> Any:
    """The optimiser's state with its tensors on the host (a GPU run resumes on any device)."""
    if isinstance(state, torch.Tensor):
        return state.detach().cpu()
    if isinstance(state, dict):
        return {k: _host(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_host(v) for v in state]
    return state
