"""Write a checkpoint of a model and its run config (the training loop's side).

The file format is :mod:`inspector.artifacts.checkpoint`; rebuilding a model
from a checkpoint is :func:`inspector.models.checkpoint.load_model` (re-exported
here with :func:`host_state_dict` for the training code and scripts that import
them from this module).
"""

from __future__ import annotations

from pathlib import Path

from inspector.artifacts.checkpoint import read_checkpoint, write_checkpoint  # noqa: F401 (read_checkpoint: re-exported)
from inspector.artifacts.run_config import RunConfig, run_config_dict
from inspector.models.base import AnomalyModel
from inspector.models.checkpoint import host_state_dict, load_model  # noqa: F401 (load_model: re-exported)


def save_checkpoint(path: str | Path, model: AnomalyModel, config: RunConfig, **extra) -> None:
    """Write whole or not at all (:func:`inspector.artifacts.checkpoint.save_whole`): a full disk or Ctrl-C
    never leaves half a file."""
    write_checkpoint(path, {"config": run_config_dict(config), "model": model.describe(),
                            "state_dict": host_state_dict(model), **extra})
