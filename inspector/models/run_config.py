"""A run config from raw data: the model section parsed by the registry, train defaults per model and preset.

The schema is :mod:`inspector.artifacts.run_config`; the model section and the train
defaults are the models' (``models/registry.py``), so building a :class:`RunConfig`
lives here. Everything that can be checked without torch is checked first (section
names, the data and train sections, the model name against the packages on disk),
so a config error prints in well under a second.
"""

from __future__ import annotations

from dataclasses import replace

from inspector.artifacts.run_config import RunConfig, TrainConfig, check_sections
from inspector.config import from_dict, suggest
from inspector.errors import ConfigError


def resolve_run_config(raw: dict, given: dict | None = None) -> RunConfig:
    """Build a RunConfig from a raw mapping, filling model-specific train defaults.

    Raises ConfigError (one line naming the section and key) for an unknown section, key, model or value,
    and, when ``given`` (what the user wrote: the raw mapping of a new run, the flags and ``--set`` of a resumed
    one) is passed, for a setting of it the training never reads (:mod:`inspector.models.unread_settings`).
    """
    data = check_sections(raw)
    _check_model_name(raw.get("model"))
    from inspector.models.registry import get_entry, parse_model_config  # imports torch: after the checks

    model = parse_model_config(raw.get("model"))
    defaults = get_entry(model.name).train_defaults.get(model.preset, {})
    train = from_dict(TrainConfig, {**defaults, **(raw.get("train") or {})}, where="train")
    if "image_size" in (raw.get("model") or {}) or model.preset != "offline":
        data = replace(data, input_size="fixed")
    config = RunConfig(model=model, data=data, train=train)
    if given is not None:
        from inspector.models.unread_settings import refuse_unread_given

        refuse_unread_given(config, given, defaults)
    return config


def _check_model_name(model: object) -> None:
    """model.name against the model packages on disk (the registry needs torch; it re-checks)."""
    from inspector.models import model_package_names

    name = model.get("name", "reduced_student") if isinstance(model, dict) else "reduced_student"
    if not isinstance(name, str):
        raise ConfigError(f"model.name: expected a string, got {type(name).__name__}")
    known = model_package_names()
    if name not in known:
        raise ConfigError(f"model.name: unknown model '{name[:60]}'{suggest(name, known)}; known: {sorted(known)}")
