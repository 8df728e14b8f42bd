"""Whether a run folder's ``best.pt`` is the checkpoint of the run the folder's other files record.

A run folder's files are read together: ``evaluate RUN`` scores best.pt on the data config.yaml names, and
``train --resume`` adds history.json (the epochs it replays) and resume.pt. A best.pt copied in from another
run, whole in itself, was read as this run's: evaluate reported another model's numbers under this run's name,
--resume trained a mixture of two runs (or, for another model, ended in a traceback from resume.pt). The files
record some facts twice, so a foreign one shows: config.yaml has the model settings best.pt must have, and
history.json the validation loss of best.pt's epoch, or (an invocation killed before its rows were written)
resume.pt an epoch at least as late.
"""

from __future__ import annotations

import json
import math
import stat
from pathlib import Path

from inspector.artifacts.run_config import PATH_KEYS
from inspector.config import load_yaml
from inspector.errors import ModelError

CONFIG, HISTORY, RESUME = "config.yaml", "history.json", "resume.pt"
# where weights were read from, not what the model is; config.yaml spells them relative to itself (file rule)
WEIGHT_FILES = {key for section, key in PATH_KEYS if section == "model"}


def check_checkpoint_of_run(path: Path, payload: dict) -> None:
    """Raise ModelError naming ``path`` (a run folder's best.pt, read as ``payload``) when the config.yaml
    beside it has another value for a model setting the checkpoint has, or the history.json beside it
    another validation loss for the checkpoint's epoch. Files a run lacks (from before they existed, or a
    run killed before its history was written) are not compared, nor is a history that does not parse (the
    command that replays it says so), nor a config.yaml that does not parse."""
    saved = path.parent / CONFIG
    if saved.is_file():
        _compare_models(path, payload, saved)
    phase, epoch, val = payload.get("phase"), payload.get("epoch"), payload.get("val_loss")
    rows = _phase_rows(path.parent / HISTORY, phase)
    row = rows.get(epoch)
    if row is not None and val is not None and not _same_loss(row, val):
        raise ModelError(f"{path}: not the checkpoint of this run: its {phase} epoch {epoch} "
                         f"has validation loss {val:.6g}, the run's {HISTORY} {row:.6g} (copied in from another "
                         f"run?)")
    if epoch not in rows and rows and not _resume_point_reached(path.parent / RESUME, phase, epoch):
        # history.json gets a phase's rows when an invocation ends; only one killed later (whose resume.pt
        # has passed this epoch) can have a best.pt of an epoch the history lacks
        raise ModelError(f"{path}: not the checkpoint of this run: its {phase} epoch {epoch} is not in the run's "
                         f"{HISTORY} (epochs {min(rows)}-{max(rows)}) and its {RESUME} never reached it (copied "
                         f"in from another run?)")


def _compare_models(path: Path, payload: dict, saved: Path) -> None:
    """best.pt's model section against config.yaml's, on the keys both have (a newer version writes more),
    weight files aside."""
    try:
        theirs = load_yaml(saved, "run config", ModelError).get("model")
    except ModelError:
        return  # a command that reads config.yaml says what is wrong with it; export needs only best.pt
    mine = payload["config"].get("model") or {}
    if not isinstance(theirs, dict):
        return  # no model section to compare with: the checkpoint's is the run's
    for key in sorted(mine.keys() & theirs.keys() - WEIGHT_FILES, key=lambda k: (k != "name", str(k))):
        if not _same(mine[key], theirs[key]):
            raise ModelError(f"{path}: not the checkpoint of this run: its model.{key} is {_short(mine[key])}, "
                             f"the run's {CONFIG} has {_short(theirs[key])} (copied in from another run?)")


def _phase_rows(path: Path, phase) -> dict:
    """{epoch: validation loss or None} of the rows history.json records for ``phase``; {} without the file
    (or one that does not parse, or no regular file: reading a FIFO waits for a writer for ever, which held
    ``evaluate``, ``export`` and ``train --resume`` of a run whose history.json was one)."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return {}
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    found = {}
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and row.get("phase") == phase and isinstance(row.get("epoch"), int):
            val = row.get("val_loss")
            found[row["epoch"]] = float(val) if isinstance(val, (int, float)) and not isinstance(val, bool) else None
    return found


def _resume_point_reached(path: Path, phase, epoch) -> bool:
    """Whether the run's resume.pt (written after every epoch) is of ``phase`` at ``epoch`` or later."""
    import torch

    try:
        # mmap: only the two header fields are read; the weights and optimiser state stay on disk
        point = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # missing, damaged or not a zip checkpoint: it cannot vouch for the epoch
        return False
    return (isinstance(point, dict) and point.get("phase") == phase and isinstance(point.get("epoch"), int)
            and isinstance(epoch, int) and point["epoch"] >= epoch)


def _same(mine, theirs) -> bool:
    try:
        return bool(mine == theirs)
    except Exception:  # noqa: BLE001 -- a tensor or other odd value a hand-made payload holds: not the same
        return False


def _same_loss(recorded: float, saved: float) -> bool:
    return math.isclose(recorded, saved, rel_tol=1e-9) or (math.isnan(recorded) and math.isnan(saved))


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
