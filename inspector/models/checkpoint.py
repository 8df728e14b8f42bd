"""Rebuild a trained model from its checkpoint (or run folder).

The file format (plain data + tensors, read with ``weights_only=True``) is
:mod:`inspector.artifacts.checkpoint`; the run config it carries is
:mod:`inspector.artifacts.run_config`. Rebuilding needs the model registry, so it
lives with the models: export, the torch backend and evaluation use it without
depending on the training code. Writing a checkpoint is the training loop's
(:func:`inspector.training.checkpoint.save_checkpoint`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from inspector.artifacts.checkpoint import read_checkpoint
from inspector.artifacts.run_config import DataConfig, RunConfig
from inspector.errors import ModelError
from inspector.models.base import AnomalyModel
from inspector.models.registry import build_model
from inspector.models.run_config import resolve_run_config


def host_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state as host tensors in the default layout: a checkpoint written on a GPU
    (channels-last weights) loads anywhere."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def load_model(path: str | Path) -> tuple[AnomalyModel, RunConfig, dict]:
    """Rebuild the model of a checkpoint (or run folder) in eval mode: (model, run config, payload).

    Raises ModelError (one line naming the file) when the file is missing or unreadable, when the run
    that wrote it has phases that never finished (``phases`` against ``completed_phases``), or when its
    weights do not fit the model its config names; ConfigError when that config is invalid.
    """
    payload = read_checkpoint(path)
    untrained = [p for p in payload.get("phases") or [] if p not in (payload.get("completed_phases") or [])]
    if untrained:  # random weights where a trained network belongs would score silently wrong
        run = Path(payload["path"]).parent
        finish = ("train it again (meta_comparer has no --resume)" if untrained == ["meta_comparer"]
                  else f"finish it with 'inspector train --out {run} --resume'")
        raise ModelError(f"{payload['path']}: the run is incomplete, its phase(s) {', '.join(untrained)} "
                         f"never finished (training interrupted or still running); {finish}")
    config = _saved_run_config(payload["config"])
    # The checkpoint carries the teacher, so skip resolving ImageNet weights.
    model_cfg = type(config.model)(**{**vars(config.model), "teacher_weights": "random"})
    model = build_model(model_cfg)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelError(f"{payload['path']}: weights do not fit model '{config.model.name}' ({first})") from None
    model.config = config.model
    _restore_weight_sources(model, payload.get("model") or {})
    return model.eval(), config, payload


def _saved_run_config(raw: dict) -> RunConfig:
    """A checkpoint's run config, fields added since it was written set to what it was trained with
    (:func:`as_written`). Every reader of a checkpoint's config (evaluate, the torch backend, export, enroll)
    goes through here: an old run read with today's defaults was resized differently by evaluate
    (``data.downscale`` halving) than by predict, calibrate and the exported sidecar (area).
    """
    return resolve_run_config(as_written(raw))


def as_written(raw: dict) -> dict:
    """A checkpoint's raw run config with the fields added since it was written filled in with what it was
    trained with: ``ModelConfig.written_before`` and ``DataConfig.WRITTEN_BEFORE`` name them; a field the
    saved config has keeps its value. ``train --resume`` starts from this too, so an old run goes on
    training as it began. ConfigError as :func:`resolve_run_config` for a config that does not parse."""
    config = resolve_run_config(raw)
    saved_model, saved_data = raw.get("model") or {}, raw.get("data") or {}
    missing = type(config.model).written_before(saved_model)
    missing_data = {k: v for k, v in DataConfig.WRITTEN_BEFORE.items() if k not in saved_data}
    if not (missing or missing_data):
        return raw
    return {**raw, "model": {**saved_model, **missing}, "data": {**saved_data, **missing_data}}


def _restore_weight_sources(model: AnomalyModel, saved: dict) -> None:
    """Put back where the teachers' weights came from: the rebuild used 'random' before loading them."""
    teachers = [t for t in (saved.get("teachers") or []) if _teacher_record(t)]  # skip damaged records
    for name, module in model.named_modules():
        backbone = getattr(module, "backbone_name", None)
        if backbone is None or not name.split(".")[0].startswith("teacher"):
            continue  # students can be extractors too (STFPM); only teachers had ImageNet weights
        taps = {t.name for t in module.feature_info}
        for teacher in teachers:
            if teacher.get("backbone") == backbone and set(teacher.get("taps", ())) <= taps:
                module.weights_source = teacher.get("weights", module.weights_source)
                break


def _teacher_record(teacher) -> bool:
    """True for a well-formed ``teachers`` entry of a checkpoint's model description: where its weights came
    from is provenance only, so a damaged entry is skipped rather than failing the load."""
    return (isinstance(teacher, dict) and isinstance(teacher.get("taps", ()), (list, tuple))
            and all(isinstance(t, str) for t in teacher.get("taps", ()))
            and isinstance(teacher.get("weights", ""), str))
