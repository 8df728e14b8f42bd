"""Frozen, typed configuration loaded from YAML.

Config objects are plain frozen dataclasses. :func:`from_dict` builds one from a
mapping, recursing into nested dataclasses, checking types and rejecting
unknown keys with a "did you mean" suggestion. Loading (YAML → dict → object)
is kept apart from deriving values, so a config can be saved back exactly as it
was resolved (:func:`to_dict`).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from inspector.errors import ConfigError

T = TypeVar("T")


class Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading floats the YAML 1.2 way.

    PyYAML implements YAML 1.1, whose float pattern needs a dot and a signed
    exponent, so ``1e-4`` or ``1E5`` load as strings. Users copy such values from
    papers and other tools (Ultralytics, anomalib); YAML 1.2 core schema reads them
    as floats, and so does this loader. Everything else is as ``yaml.safe_load``.
    """


# YAML 1.2 core schema float (https://yaml.org/spec/1.2.2/#10214-floating-point), plus 1.1's
# ".inf"/".nan" forms, which the 1.2 core schema keeps.
_FLOAT_1_2 = re.compile(r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
                          |[-+]?\.(?:inf|Inf|INF)
                          |\.(?:nan|NaN|NAN))$""", re.X)
# Only candidates for the new rule: leave ints ("12") to the int resolver, which is tried first.
Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _first in "-+.0123456789":
    Loader.yaml_implicit_resolvers.setdefault(_first, []).append(("tag:yaml.org,2002:float", _FLOAT_1_2))


def yaml_load(text: str) -> Any:
    """Parse YAML text with :class:`Loader` (YAML 1.2 floats)."""
    return yaml.load(text, Loader=Loader)  # noqa: S506 - Loader is a SafeLoader


def yaml_dump(data: Any) -> str:
    """YAML text as inspector writes it: key order kept, non-ASCII as UTF-8 (not ``\\u`` escapes)."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def suggest(name: str, choices) -> str:
    """Return ' (did you mean 'x'?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_choice(where: str, value: Any, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{where}: '{value}' is not one of {sorted(choices)}{suggest(str(value), choices)}")


def _convert(where: str, tp: Any, value: Any) -> Any:
    """Convert/validate ``value`` against the annotation ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where=where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(where, arg, value)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        _check_choice(where, value, args)
        return value
    if origin in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_convert(f"{where}[{i}]", a, v) for i, (a, v) in enumerate(zip(args, value)))
        item_tp = args[0] if args else Any
        return tuple(_convert(f"{where}[{i}]", item_tp, v) for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "config") -> T:
    """Build the frozen dataclass ``cls`` from ``data``; reject unknown keys."""
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            raise ConfigError(f"{where}: unknown key '{key}'{suggest(key, fields)}")
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = _convert(f"{where}.{name}", hints[name], data[name])
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key '{name}'")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate(where)
    return obj


def to_dict(obj: Any) -> Any:
    """Turn a config object back into plain YAML-able data."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping; one-line errors for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        # ReaderError (a control character) has no 'problem' and a two-line str(): keep one line
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{line} invalid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def resolve_path(value: str, base_dir: str | Path) -> str:
    """A path written in a config file: ``~`` expanded, relative → joined to ``base_dir``.

    ``base_dir`` is the folder of the file the value was read from, so a config file
    means the same thing whatever the working directory (README, "Paths").
    """
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else Path(base_dir) / p)


def relative_to_file(path: str | Path, config_file: str | Path) -> str:
    """``path`` written as a config file at ``config_file`` must spell it (inverse of :func:`resolve_path`)."""
    return os.path.relpath(Path(path).absolute(), Path(config_file).absolute().parent)


def save_yaml(data: Any, path: str | Path) -> None:
    """Write config data (an object or a dict) as YAML."""
    Path(path).write_text(yaml_dump(to_dict(data)), encoding="utf-8")


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a nested dict."""
    data = _deepcopy(data)
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml_load(raw)
        except yaml.YAMLError:
            value = raw
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item}: '{part}' is not a section")
            node = child
        node[parts[-1]] = value
    return data


def _deepcopy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deepcopy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deepcopy(v) for v in data]
    return data
