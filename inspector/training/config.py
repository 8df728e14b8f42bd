"""The run configuration as the training commands read it: YAML file → command-line values → ``--set``.

The schema (data and train sections, :class:`RunConfig`, the path rule) is
:mod:`inspector.artifacts.run_config`, building one from raw data (the model
section, train defaults per model and preset) is
:mod:`inspector.models.run_config`; their names are re-exported here for the
training code and scripts that import them from this module.
"""

from __future__ import annotations

from pathlib import Path

from inspector.artifacts.run_config import (NOT_PATHS, PATH_KEYS, SECTIONS, DataConfig, RunConfig,  # noqa: F401
                                            TrainConfig, resolve_file_paths, run_config_dict, run_data_path,
                                            save_run_config)
from inspector.config import apply_overrides, from_file, load_yaml, message_is_about
from inspector.errors import ConfigError
from inspector.models.run_config import resolve_run_config

__all__ = ["NOT_PATHS", "PATH_KEYS", "SECTIONS", "DataConfig", "RunConfig", "TrainConfig", "load_run_config",
           "resolve_file_paths", "resolve_run_config", "run_config_dict", "run_data_path", "save_run_config"]


def load_run_config(path: str | Path | None = None, overrides: list[str] | None = None,
                    base: dict | None = None) -> RunConfig:
    """YAML file (optional) → ``base`` values → ``--set`` overrides → RunConfig; a setting of them the
    training never reads is refused (:mod:`inspector.models.unread_settings`).

    Relative paths in the file resolve against its folder; those in ``base`` and
    ``overrides`` (the command line) stay relative to the working directory.
    """
    raw = resolve_file_paths(load_yaml(path), Path(path).parent) if path else {}
    for section, values in (base or {}).items():
        current = raw.setdefault(section, {})
        if current is not None and not isinstance(current, dict):
            raise ConfigError(f"{path}: {section}: expected a mapping, got {type(current).__name__}")
        raw[section] = {**(current or {}), **values}
    raw = apply_overrides(raw, overrides or [])  # its own errors name the --set item
    try:
        return resolve_run_config(raw, given=raw)
    except ConfigError as exc:
        flags = [f"{section}.{name}" for section, values in (base or {}).items() for name in (values or {})]
        if message_is_about(str(exc), flags):
            raise  # a command-line flag's value (``--epochs``): the file is not where it is wrong
        raise ConfigError(from_file(str(exc), path and str(path), overrides or []), field=exc.field) from None
