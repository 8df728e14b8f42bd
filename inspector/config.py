"""Frozen, typed configuration loaded from YAML (and the schema check of every file the product reads).

Config objects are plain frozen dataclasses. :func:`from_dict` builds one from a
mapping, recursing into nested dataclasses, checking types and rejecting
unknown keys with a "did you mean" suggestion. Every numeric field declares its
range with :func:`bounded` (``field`` metadata), checked by the same loader, so
a value out of range is one line at load time, never a crash at run time;
floats must also be finite. Loading (YAML → dict → object) is kept apart from
deriving values, so a config can be saved back exactly as it was resolved
(:func:`to_dict`). :func:`load_yaml` and :func:`load_json` turn every way a file
can be malformed (invalid UTF-8, deep nesting, non-mapping top level, NaN in
JSON…) into one :class:`ConfigError` line naming the file.
"""

from __future__ import annotations

import dataclasses
import difflib
import errno
import ipaddress
import json
import math
import os
import re
import socket
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from inspector.errors import ConfigError, InspectorError

T = TypeVar("T")
MAX_FILE_BYTES = 64 << 20  # config, sidecar and calibration files are small; refuse anything absurd


@dataclass(frozen=True)
class Range:
    """The allowed interval of a numeric setting: ``ge``/``gt`` ≤ value ≤ ``le``/``lt``; ``None`` = unbounded side.

    An open upper side (``lt``) is for a consumer that refuses the edge itself (Adam's betas: 0 ≤ β < 1).

    Floats must be finite whatever the bounds (NaN compares false with everything, so a NaN would slip
    through any interval check further on).
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def describe(self) -> str:
        lo = f"[{_num(self.ge)}" if self.ge is not None else (f"({_num(self.gt)}" if self.gt is not None else "(-inf")
        hi = f"{_num(self.le)}]" if self.le is not None else (f"{_num(self.lt)})" if self.lt is not None else "inf)")
        return f"{lo}, {hi}"

    def check(self, where: str, value: Any) -> None:
        """Raise ConfigError naming ``where`` when a number in ``value`` (recursing into lists) is outside."""
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                self.check(f"{where}[{i}]", item)
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: {value} is not a finite number; allowed range {self.describe()}")
        if ((self.ge is not None and value < self.ge) or (self.gt is not None and value <= self.gt)
                or (self.le is not None and value > self.le) or (self.lt is not None and value >= self.lt)):
            raise ConfigError(f"{where}: {shown_number(value)} is out of range {self.describe()}")


def shown_number(value: int | float) -> str:
    """A number for a one-line message: as it is when short, a large float as ``1e+30``, an integer beyond the
    float range by its digit count (formatted as a float, 10**400 raised OverflowError inside the message that
    was to refuse it: a traceback out of ``run --check``)."""
    if isinstance(value, int) and abs(value) >= 10**300:
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    return f"{value:.3g}" if abs(value) >= 1e15 else str(value)


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def bounded(default: Any = dataclasses.MISSING, *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None) -> Any:
    """A dataclass field with a declared numeric range, checked by :func:`from_dict`.

    ``threads: int | None = bounded(None, ge=1, le=1024)``. With no bounds it still declares "any finite
    number" (e.g. a score threshold).
    """
    return dataclasses.field(default=default, metadata={"range": Range(ge=ge, gt=gt, le=le, lt=lt)})


def field_range(f: dataclasses.Field) -> Range | None:
    """The declared range of a dataclass field, or None."""
    return f.metadata.get("range")


class Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading floats the YAML 1.2 way.

    PyYAML implements YAML 1.1, whose float pattern needs a dot and a signed
    exponent, so ``1e-4`` or ``1E5`` load as strings. Users copy such values from
    papers and other tools (Ultralytics, anomalib); YAML 1.2 core schema reads them
    as floats, and so does this loader.

    Two refusals ``yaml.safe_load`` lacks, each a ``yaml.YAMLError`` naming the line: a key given twice in
    one mapping (PyYAML keeps the last one silently: a second ``cameras:`` dropped the first list), and
    aliases that expand to more than ``MAX_EXPANDED_NODES`` nodes (a "billion laughs" file of a few hundred
    bytes ran the config checks out of memory). Merge keys (``<<: *defaults``) and their overrides stay valid.
    And numbers that YAML 1.1 and 1.2 read differently (``010``, ``1:30``) are refused: :func:`_refuse_ambiguous_number`.
    """

    MAX_EXPANDED_NODES = 100_000  # a config or calibration file holds a few hundred

    def compose_node(self, parent, index):  # noqa: D102 - PyYAML API
        if self.check_event(yaml.AliasEvent):
            self.has_aliases = True
        return super().compose_node(parent, index)

    def compose_document(self):  # noqa: D102 - PyYAML API
        node = super().compose_document()
        if getattr(self, "has_aliases", False):
            _check_expansion(node, self.MAX_EXPANDED_NODES)
        return node

    def construct_mapping(self, node, deep=False):  # noqa: D102 - PyYAML API
        if isinstance(node, yaml.MappingNode):
            _check_unique_keys(self, node)
        return super().construct_mapping(node, deep=deep)


# Numbers YAML 1.1 (PyYAML) and YAML 1.2 read differently (https://yaml.org/spec/1.2.2/ext/changes/): a leading
# zero is octal in 1.1 (010 = 8; 007 = 7 either way) and decimal in 1.2, colons are base 60 in 1.1 (1:30 = 90) and
# text in 1.2.
_OCTAL_1_1 = re.compile(r"[-+]?0[0-7_]+")
_BASE_60_1_1 = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")


def _refuse_ambiguous_number(loader: yaml.SafeLoader, node: yaml.ScalarNode, value: Any) -> Any:
    """``value``, PyYAML's reading of the plain scalar ``node``, unless YAML 1.2 reads its text otherwise: then a
    YAMLError naming the line (taken silently, 'max_frames: 010' ran 8 frames, 'open_timeout_s: 1:30' was 90 s)."""
    text = node.value
    if node.style is None and _OCTAL_1_1.fullmatch(text) and value != int(text.replace("_", ""), 10):  # 07 is 7
        raise yaml.constructor.ConstructorError(
            None, None, f"{text} is {value} in YAML 1.1 (octal) but not in YAML 1.2; write {value} or "
            f"{int(text.replace('_', ''), 10)}, or quote it for text", node.start_mark)
    if node.style is None and _BASE_60_1_1.fullmatch(text):
        raise yaml.constructor.ConstructorError(
            None, None, f"{text} is {value} in YAML 1.1 (base 60) but text in YAML 1.2; write {value}, or quote it "
            f"for text", node.start_mark)
    return value


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    try:
        value = yaml.SafeLoader.construct_yaml_int(loader, node)
    except ValueError:  # Python's int() refuses more than sys.get_int_max_str_digits() (4300) digits
        raise yaml.constructor.ConstructorError(None, None, f"an integer of {len(node.value)} characters, beyond any "
                                                f"setting", node.start_mark) from None
    return _refuse_ambiguous_number(loader, node, value)


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    return _refuse_ambiguous_number(loader, node, yaml.SafeLoader.construct_yaml_float(loader, node))


Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def _check_expansion(root: yaml.Node, limit: int) -> None:
    """Raise a YAMLError when the document, its aliases expanded, holds more than ``limit`` nodes."""
    count, stack = 0, [root]
    while stack:
        node = stack.pop()
        count += 1
        if count > limit:
            raise yaml.composer.ComposerError(None, None, f"aliases expand to more than {limit} nodes",
                                              root.start_mark)
        if isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _check_unique_keys(loader: yaml.SafeLoader, node: yaml.MappingNode) -> None:
    """Raise a YAMLError at the second occurrence of a scalar key in ``node`` (merge keys excepted)."""
    seen = set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        try:
            duplicate = key in seen
        except TypeError:  # unhashable: PyYAML refuses it itself
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError("while constructing a mapping", node.start_mark,
                                                    f"found duplicate key {str(key)[:60]!r}", key_node.start_mark)
        seen.add(key)


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
    """Return ' (did you mean 'x'?)' for the closest choice, or ''. A choice with the same letters in another
    order comes first: a transposition is the commonest typo ('rstp' is 'rtsp', which difflib ranks below 'rtp')."""
    choices = [c for c in choices if isinstance(c, str)]
    if not isinstance(name, str):
        return ""
    close = [c for c in choices if c != name and sorted(c) == sorted(name)][:1]
    close = close or difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def refuse_empty(where: str, section: Any, names: tuple[str, ...]) -> None:
    """ConfigError ``<where>.<name>: empty …`` for the first of the path or URL settings ``names`` of ``section``
    given as ''. An empty path is no file: ``Path('')`` is '.', so an empty camera source read the working
    folder (after resolving, the config's own folder) as a folder camera and an empty ``recorder.dir`` recorded
    into it. Settings whose '' is a documented choice (``mqtt.url: ""`` = off) are not named here."""
    for name in names:
        if getattr(section, name) == "":
            raise ConfigError(f"{where}.{name}: empty; give a path (or leave the key out for its default)")


def refuse_unread(where: str, section: Any, unread: Mapping[str, str]) -> None:
    """ConfigError ``<where>.<name>: does nothing <why>; leave it out`` for the first setting of ``section`` named
    in ``unread`` (name → why the section's other settings leave it unread) whose value differs from its default.
    Ignored, such a setting changed nothing while ``run --check`` said "configuration OK" (``cuda_graphs: true``
    on an ONNX graph, ``genicam.exposure_us`` on a folder camera). A default written out, as a documented example
    config does, is accepted."""
    for f in dataclasses.fields(section):
        if f.name not in unread:
            continue
        value = getattr(section, f.name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if value == default:
            continue
        key = f.name
        if dataclasses.is_dataclass(value):  # name the setting changed, not its subsection
            key += "." + next(g.name for g in dataclasses.fields(value)
                              if getattr(value, g.name) != getattr(default, g.name))
        raise ConfigError(f"{where}.{key}: does nothing {unread[f.name]}; leave it out")


def _check_choice(where: str, value: Any, choices) -> None:
    hashable = not isinstance(value, (list, dict, set))
    if isinstance(value, (int, float)) and not isinstance(value, bool) and str(value) in choices:
        # YAML reads `protocol: 5` as a number: "'5' is not one of ['5', …] (did you mean '5'?)" said nothing
        raise ConfigError(f"{where}: {value} is read as a number; write it in quotes: \"{value}\"")
    if not hashable or value not in choices or type(value) is not type(next(c for c in choices if c == value)):
        shown = str(value) if hashable and isinstance(value, str) else _short(value)
        raise ConfigError(f"{where}: '{shown[:60]}' is not one of {list(choices)}{suggest(shown, choices)}")


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
        return _convert_union(where, args, value)
    if origin is typing.Literal:
        _check_choice(where, value, args)
        return value
    if origin in (dict, Mapping) or tp is dict:
        return _convert_mapping(where, args, value)
    if origin in (tuple, list):
        return _convert_sequence(where, origin, args, value)
    if tp in _SCALARS:
        return _SCALARS[tp](where, value)
    return value


def _convert_union(where: str, args: tuple, value: Any) -> Any:
    """The first member of ``Union[args]`` that accepts ``value`` (None for an Optional's None)."""
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


def _convert_mapping(where: str, args: tuple, value: Any) -> dict:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    key_tp, item_tp = args if len(args) == 2 else (str, Any)
    out = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise ConfigError(f"{where}: key {key!r} is not a string (quote it in YAML)")
        out[key] = _convert(f"{where}.{key}", item_tp, item)
    return out


def _convert_sequence(where: str, origin: type, args: tuple, value: Any) -> tuple:
    """A list or tuple annotation → a tuple (configs are frozen); fixed-length tuples are checked item by item."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_convert(f"{where}[{i}]", a, v) for i, (a, v) in enumerate(zip(args, value)))
    item_tp = args[0] if args else Any
    return tuple(_convert(f"{where}[{i}]", item_tp, v) for i, v in enumerate(value))


def _convert_bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    return value


def _convert_int(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: expected an integer, got {_short(value)}")
    return value


def _convert_float(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {_short(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise ConfigError(f"{where}: {shown_number(value)} is too large") from None
    if not math.isfinite(number):
        raise ConfigError(f"{where}: {value} is not a finite number")
    return number


def _convert_str(where: str, value: Any) -> str:
    """A text setting. A NUL (YAML's double-quoted "\\0", a JSON "\\u0000", --set) or a lone surrogate (a
    "\\ud800" escape: half of a UTF-16 pair, no character; a --set of bytes that are not UTF-8) is refused: no path,
    URL, name or secret holds one, and the checks handed it to the operating system or a library: ValueError
    ('embedded null byte') and UnicodeEncodeError tracebacks out of ``run --check``, and a camera URL one crashed
    the process (SIGSEGV in the video library)."""
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {_short(value)}")
    if "\0" in value:
        raise ConfigError(f"{where}: contains a NUL character (\\0), which no path, URL or name can hold")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(f"{where}: contains {ascii(value[exc.start])[1:-1]}, a lone surrogate (half of a UTF-16 "
                          f"pair, from a \\u escape or bytes that are not UTF-8), not a character") from None
    return value


_SCALARS = {bool: _convert_bool, int: _convert_int, float: _convert_float, str: _convert_str}


def _short(value: Any) -> str:
    """``repr`` cut to one short line (values in messages may be huge or nested)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        return f"an integer of {len(str(abs(value)))} digits"
    text = repr(value) if not isinstance(value, (dict, list, tuple)) else type(value).__name__
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "config", *,
              unknown: str = "reject") -> T:
    """Build the frozen dataclass ``cls`` from ``data``: types, declared ranges, ``validate(where)``.

    Unknown keys are rejected with a suggestion (``unknown="ignore"``, or a class attribute
    ``_unknown_keys = "ignore"``: skipped, for forward-compatible artifact files). Raises :class:`ConfigError` (one line naming ``where``) on any problem.
    """
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if not isinstance(key, str):
            raise ConfigError(f"{where}: key {_short(key)} is not a string (quote it in YAML: 'on', 'yes' and "
                              f"numbers are not text there)")
        if key not in fields and getattr(cls, "_unknown_keys", unknown) == "reject":
            raise ConfigError(f"{where}: unknown key '{key}'{suggest(key, fields)}")
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            value = _convert(f"{where}.{name}", hints[name], data[name])
            rng = field_range(field)
            if rng is not None:
                rng.check(f"{where}.{name}", value)
            kwargs[name] = value
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key '{name}'")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate(where)
    _refuse_switched_off(where, obj, data)
    return obj


def _refuse_switched_off(where: str, section: Any, data: Mapping[str, Any]) -> None:
    """ConfigError when ``data`` sets keys of a section that is off because its switch was left out.

    A section that is off by default declares ``_switch = (key, how to turn it on)``: ``recorder`` is on with
    ``enabled: true``, the MQTT bridge with a ``url``, the metrics and dashboard with a ``listen`` address. With
    the switch left out, its other keys changed nothing (``recorder: {dir: /data/ng}`` recorded no defect, and
    ``run --check`` said "configuration OK"). A switch written off (``enabled: false``, ``url: ""``) is the
    user's choice, as a section kept for later, and is accepted."""
    switch = getattr(type(section), "_switch", None)
    if switch is None or switch[0] in data or section.enabled:
        return
    given = next((key for key in data if key != switch[0]), None)
    value = data.get(given)
    while isinstance(value, Mapping) and value:  # name the setting written, not its subsection
        key, value = next(iter(value.items()))
        given = f"{given}.{key}"
    if given is not None:
        raise ConfigError(f"{where}.{given}: does nothing while {where} is off ({where}.{switch[0]} is not set); "
                          f"set {where}.{switch[1]}, or leave {where}.{given} out")


def from_file_dict(cls: type[T], data: Mapping[str, Any] | None, path: str | Path, *, unknown: str = "reject",
                   overrides: list[str] | tuple[str, ...] = ()) -> T:
    """:func:`from_dict` for ``data`` read from the file ``path`` (then ``overrides``, ``--set key=value``, applied):
    a message names the file, then the key path apart from it (``daemon.yaml: batching.max_batch: -1 is out of
    range [1, 1024]``); glued, as the checks build key paths (``daemon.yaml.batching.max_batch``), it read as a key
    called ``yaml``. A value set by an override is told as ``--set batching.max_batch: …``. Raises ConfigError."""
    where = str(path)
    try:
        return from_dict(cls, data, where=where, unknown=unknown)
    except ConfigError as exc:
        keyed = file_key_message(str(exc), where)
        message = keyed[len(where) + 2:] if keyed.startswith(f"{where}: ") else None
        raise ConfigError(keyed if message is None else from_file(message, where, overrides),
                          field=exc.field) from None


def from_file(message: str, path: str | None, overrides: list[str] | tuple[str, ...] = ()) -> str:
    """A config message about a key (``batching.max_batch: …``) said of where its value came from: ``--set`` when
    one of ``overrides`` (``key=value``) set it, else the file ``path`` (``daemon.yaml: batching.max_batch: …``;
    None: no file, the message as it is)."""
    told = message.removeprefix("config: ")  # the root of a config built without a file name (a run config)
    if message_is_about(message, [item.split("=", 1)[0].strip() for item in overrides if "=" in item]):
        return f"--set {set_key_message(told)}"
    return message if path is None else f"{path}: {told}"


def set_key_message(message: str) -> str:
    """An unknown-key message said of the key a user typed after ``--set``: ``train: unknown key 'epoch' (did you
    mean 'epochs'?)`` becomes ``train.epoch: unknown key (did you mean 'train.epochs'?)``; as it was, after
    ``--set`` it read as if ``--set train`` had been typed. Any other message is returned as it is."""
    unknown = re.fullmatch(r"(?:([^:']*): )?unknown (key|section) '([^']*)'(.*)", message, re.DOTALL)
    if unknown is None:
        return message
    section, kind, name, rest = unknown.groups()
    if section:
        name = f"{section}.{name}"
        rest = re.sub(r"'([^']*)'", lambda m: f"'{section}.{m[1]}'", rest)
    return f"{name}: unknown {kind}{rest}"


def message_is_about(message: str, keys: list[str]) -> bool:
    """Whether the dotted key a config message is about (``train.epochs: …``; ``train: unknown key 'x'`` is about
    ``train.x``) is one of ``keys`` or inside one (``cameras[0].fps`` is inside ``cameras``)."""
    key = message.split(": ", 1)[0].strip()
    unknown = re.match(r"(?:([^:']*): )?unknown (?:key|section) '([^']*)'", message)
    if unknown:
        root = unknown[1] in (None, "config", "")
        key = unknown[2] if root else f"{unknown[1]}.{unknown[2]}"
        if root:  # --set trian.epochs=3 is about the unknown top-level name trian
            keys = [k.split(".", 1)[0] for k in keys]
    return any(key == k or key.startswith((k + ".", k + "[")) for k in keys if k)


def file_key_message(message: str, path: str) -> str:
    """``message`` with the key paths that start with the file name ``path`` set apart from it: the leading one
    as ``path: key.sub``, later ones (``set path.publish.mqtt.username``) as the bare key path."""
    glued = re.compile(rf"(?<![\w./\\-]){re.escape(path)}(?:\.(?=[^\W\d])|(?=\[))")
    head = glued.match(message)
    if head is None:
        return glued.sub("", message)
    return f"{path}: " + glued.sub("", message[head.end():])


def to_dict(obj: Any) -> Any:
    """Turn a config object back into plain YAML-able data. A dataclass with ``_omit_none = True`` leaves out its
    fields that are None (keys its file holds only sometimes, e.g. a calibration's ``data.defects``)."""
    if dataclasses.is_dataclass(obj):
        values = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        omit = getattr(obj, "_omit_none", False)
        return {name: to_dict(value) for name, value in values.items() if not (omit and value is None)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def not_a_file(path: Path, what: str) -> str | None:
    """Why ``path`` cannot be read as a ``what`` because it is no regular file, one line naming it (None: it is
    one). A folder is told as one: "not found" sent users looking for a file that is there, as a folder; a device
    or pipe (/dev/zero, a FIFO), read, never ends or blocks. A symbolic link loop and a link whose target is gone
    are told as such: "not found" sent users looking for a file whose name is listed there."""
    if path.is_dir():
        return f"{path}: is a folder, not {'an' if what[:1] in 'aeiou' else 'a'} {what}"
    if not path.is_file():
        return f"{path}: {what} is not a regular file" if path.exists() else _missing(path, what)
    return None


def _missing(path: Path, what: str) -> str:
    """Why ``path``, which does not lead to a file, is no ``what``: a symbolic link loop, a broken link, or nothing
    there."""
    a = "an" if what[:1] in "aeiou" else "a"
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{path}: a symbolic link loop (too many levels of symbolic links), not {a} {what}"
    if path.is_symlink():
        return f"{path}: broken symbolic link (its target {os.readlink(path)} does not exist), not {a} {what}"
    return f"{path}: {what} not found"


def read_text(path: str | Path, what: str = "config file", error: type[InspectorError] = ConfigError) -> str:
    """The UTF-8 text of a small file; one-line ``error`` when missing, unreadable, huge or not UTF-8."""
    path = Path(path)
    if (why := not_a_file(path, what)) is not None:
        raise error(why)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise error(f"{path}: {what} is larger than {MAX_FILE_BYTES >> 20} MiB")
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: {what} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror or exc})") from None


def read_secret(path: str | Path, where: str) -> str:
    """The stripped text of a file holding a secret (an access token, a password), through :func:`read_text`:
    a one-line ConfigError naming the setting ``where`` when it is missing, a folder or device, huge or not
    UTF-8 (read by hand, a token file of binary bytes ended ``run --check`` in a UnicodeDecodeError traceback)."""
    try:
        return read_text(path, "secret file").strip()
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def parse_yaml(text: str, where: str, error: type[InspectorError] = ConfigError, what: str = "file") -> Any:
    """:func:`yaml_load` with every failure (syntax, control characters, deep nesting) as one line."""
    try:
        return yaml_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())[:120]
        raise error(f"{where}:{line} invalid YAML in this {what} ({problem})") from None
    except RecursionError:
        raise error(f"{where}: invalid YAML in this {what} (nested too deeply)") from None


def parse_json(text: str, where: str, error: type[InspectorError] = ConfigError, what: str = "file") -> Any:
    """Strict JSON (no NaN/Infinity, no key twice in an object) with every failure as one line."""
    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    def unique_keys(pairs: list) -> dict:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            twice = next(k for i, k in enumerate(keys) if k in keys[:i])
            raise ValueError(f"duplicate key {twice[:60]!r}")  # json.loads keeps the last one silently
        return dict(pairs)

    try:
        # a byte-order mark (a Windows editor's save) is not content: RFC 8259 §8.1 lets parsers ignore it,
        # and YAML files with one load already
        return json.loads(text.removeprefix("\ufeff"), parse_constant=no_constants, object_pairs_hook=unique_keys)
    except RecursionError:
        raise error(f"{where}: {what} is not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, integers too long to convert
        raise error(f"{where}: {what} is not valid JSON ({' '.join(str(exc).split())[:120]})") from None


def load_yaml(path: str | Path, what: str = "config file", error: type[InspectorError] = ConfigError) -> dict:
    """Read a YAML mapping; one-line ``error`` for a missing or malformed file (empty file → ``{}``)."""
    data = parse_yaml(read_text(path, what, error), str(path), error, what)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"{path}: {what} must be a mapping at the top level, got {type(data).__name__}")
    return data


def load_json(path: str | Path, what: str, error: type[InspectorError] = ConfigError) -> dict:
    """Read a JSON object; one-line ``error`` for a missing or malformed file."""
    data = parse_json(read_text(path, what, error), str(path), error, what)
    if not isinstance(data, dict):
        raise error(f"{path}: {what} must be a JSON object at the top level, got {type(data).__name__}")
    return data


_ENV_REFERENCE = re.compile(r"\$([A-Za-z_]\w*|\{[^}]*\})")


def expanded_path(value: str, key: str = "") -> Path:
    """A path written in a config file with ``~`` and environment variables (``$NAME``, ``${NAME}``) expanded, as a
    shell would. Only ``~`` was: ``summary_json: ${HOME}/x.json`` wrote into a folder literally named ``${HOME}``.
    ConfigError naming the setting (``key``), the variable and the value when one is not set (a path with a hole
    in it is no path to write to).
    """
    expanded = os.path.expandvars(os.path.expanduser(value))
    if (unset := _ENV_REFERENCE.search(expanded)) is not None:
        name = unset.group(1).strip("{}")
        raise ConfigError(f"{key + ': ' if key else ''}environment variable {name} is not set in {value!r} (paths "
                          f"expand ~ and $NAME)")
    return Path(expanded)


def resolve_path(value: str, base_dir: str | Path, key: str = "") -> str:
    """A path written in a config file: ``~`` and environment variables expanded (:func:`expanded_path`), relative
    → joined to ``base_dir``.

    ``base_dir`` is the folder of the file the value was read from, so a config file
    means the same thing whatever the working directory (README, "Paths"). The joined path is
    shortened (``runs/a/b/../../data`` → ``data``) where that names the same file, so messages show
    the path a user would type; where a symlink makes ``x/..`` somewhere else, it stays as joined.
    """
    p = expanded_path(value, key)
    return str(p) if p.is_absolute() else _shortened(str(Path(base_dir) / p))


def _shortened(path: str) -> str:
    short = os.path.normpath(path)
    try:
        return short if short == path or os.path.samefile(short, path) else path
    except OSError:  # not there (yet): the lexical form may be wrong only through a symlink, so keep the joined form
        return path


def tcp_port_problem(endpoint: str, bind: bool) -> str | None:
    """Why the port of a ``tcp://host:port`` ZeroMQ endpoint is out of range, or its bracketed host no IPv6
    address, or None (other transports too).

    libzmq reads the port into 16 bits without a range check: ``tcp://127.0.0.1:99999`` bound port 34463
    and ``:-5`` port 65531, so a daemon served, and a subscriber listened to, another port than written.
    A port is 1-65535 (RFC 6335); binding also takes ``*`` or 0, an ephemeral port (zmq_tcp(7)).
    """
    if not endpoint.startswith("tcp://"):
        return None
    host, port = _tcp_host_port(endpoint)
    if host.startswith("["):  # libzmq took '[zz]' or an unclosed '[::1' and 'connected' for ever to nothing
        try:
            ipaddress.IPv6Address(host[1:-1] if host.endswith("]") else "unclosed")
        except ValueError:
            return "its host in brackets is no IPv6 address, or its ']' is missing ([::1], [fe80::1%eth0])"
    if bind and port in ("*", "0"):
        return None
    if not re.fullmatch(r"\d{1,5}", port) or not 0 < int(port) < 65536:
        return (f"'{port}' is not a TCP port (1-65535{', or * for any free port' if bind else ''})" if port
                else "no port (tcp://host:port)")
    return None


def _tcp_host_port(endpoint: str) -> tuple[str, str]:
    """(host, port) of ``tcp://[source;]host:port``; the host keeps its brackets ('[::1]'), a part that is
    absent is ''."""
    rest = endpoint[len("tcp://"):].rsplit(";", 1)[-1]  # 'src;dst': connecting from a source address
    if rest.startswith("[") and "]" in rest:  # an IPv6 address: its colons are not the port's
        host, _, tail = rest.partition("]")
        return host + "]", tail[1:] if tail.startswith(":") else ""
    host, colon, port = rest.rpartition(":")
    return (host, port) if colon else (rest, "")


def needs_ipv6(endpoint: str) -> bool:
    """Whether a ZeroMQ socket must have ZMQ_IPV6 on to bind or connect ``endpoint``: a tcp:// host that is an
    IPv6 address (``tcp://[::1]:5556``, ``[fe80::1%eth0]``, unbracketed ``::1``) or a name that has IPv6
    addresses only. libzmq resolves tcp hosts as IPv4 unless ZMQ_IPV6 is set (zmq_setsockopt(3)): binding
    ``tcp://[::1]:5556`` failed with 'No such device' and a subscriber never connected. A name with an IPv4
    address stays IPv4, as before: with IPv6 on libzmq takes the first address the resolver gives (often ::1
    for 'localhost'), and would miss a daemon bound to 127.0.0.1. ``*`` stays IPv4 (0.0.0.0) too."""
    if not endpoint.startswith("tcp://"):
        return False
    host = _tcp_host_port(endpoint)[0]
    if host.startswith("[") or ":" in host:
        return True
    if not host or host == "*" or re.fullmatch(r"[\d.]+", host):
        return False
    try:  # a name (or an interface: it resolves to nothing and stays IPv4)
        families = {info[0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except (OSError, UnicodeError):
        return False
    return socket.AF_INET6 in families and socket.AF_INET not in families


def relative_to_file(path: str | Path, config_file: str | Path) -> str:
    """``path`` written as a config file at ``config_file`` must spell it (inverse of :func:`resolve_path`)."""
    return os.path.relpath(Path(path).absolute(), Path(config_file).absolute().parent)


def save_yaml(data: Any, path: str | Path) -> None:
    """Write config data (an object or a dict) as YAML, whole or not at all (:func:`inspector.outputs.write_whole`:
    a stop or a full disk part-way leaves the earlier file, never half of one)."""
    from inspector.outputs import write_whole

    write_whole(path, yaml_dump(to_dict(data)).encode("utf-8"))


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a nested dict."""
    data = _deepcopy(data)
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"overrides {item}: expected key=value", field="overrides")
        key, raw = item.split("=", 1)
        if not all(part.strip() for part in key.split(".")):  # '=3', 'a..b=3': told as the file's unknown key ''
            raise ConfigError(f"overrides {item}: expected key=value, with no empty part in the key", field="overrides")
        try:
            value = yaml_load(raw)
        except yaml.YAMLError:
            value = raw
        except RecursionError:
            raise ConfigError(f"overrides {key}: value nested too deeply", field="overrides") from None
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"overrides {item}: '{part}' is not a section", field="overrides")
            node = child
        node[parts[-1]] = value
    return data


def _deepcopy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deepcopy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deepcopy(v) for v in data]
    return data


def json_safe(obj: Any) -> Any:
    """``obj`` as plain, strict JSON types: the one sanitiser for every JSON the project writes or publishes.

    Mappings → dicts with str keys, tuples/lists/arrays → lists, numpy scalars → Python
    numbers, NaN and ±inf → None (RFC 8259 JSON has neither), anything else → ``str``.
    """
    if type(obj) is dict and _plain_flat(obj):  # the common case (a frame's source metadata, per event)
        return dict(obj)
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        obj = obj.tolist()  # numpy scalars → Python numbers, arrays → (nested) lists
        if isinstance(obj, list):
            return json_safe(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


_PLAIN = frozenset({str, int, bool, type(None)})


def _plain_flat(d: dict) -> bool:
    """True if every key is a str and every value a str, int, bool, None or finite float (exact types):
    then :func:`json_safe` would return an equal copy, made ~5x faster by ``dict(d)``."""
    for k, v in d.items():
        t = type(v)
        if type(k) is not str or (t not in _PLAIN and not (t is float and math.isfinite(v))):
            return False
    return True


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as strict JSON through :func:`json_safe` (NaN/±inf → null), with a final newline.

    The one writer for the JSON reports (``metrics.json``, ``inspector bench --json``, the benchmark
    results), so a non-finite value reads the same in each. Creates the parent folder; returns ``path``.
    """
    from inspector.outputs import write_whole

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # whole or not at all: a report cut short by a stop or a full disk read as a broken one (or an old one gone)
    write_whole(path, (json.dumps(json_safe(obj), indent=indent, allow_nan=False) + "\n").encode("utf-8"))
    return path
