"""Every numeric setting declares a range; every file the product reads is schema-checked (one line, exit 2)."""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import random
import typing

import pytest

from inspector.config import field_range, from_dict, load_json, load_yaml
from inspector.errors import ConfigError, ExportError, InspectorError
from inspector.pipeline.config import DaemonConfig, daemon_config
from inspector.artifacts.engine_card import EngineCard
from inspector.artifacts.model_card import CardInput, ModelCard, read_sidecar, validate_model_card
from inspector.artifacts.thresholds import Thresholds, read_thresholds
from inspector.training.config import DataConfig, TrainConfig


def _config_classes() -> list[type]:
    from inspector.models.registry import get_entry, model_names

    return [DaemonConfig, TrainConfig, DataConfig, Thresholds, ModelCard, EngineCard,
            *(get_entry(name).config_cls for name in model_names())]


def _numeric(tp) -> bool:
    if tp in (int, float):
        return True
    return any(_numeric(a) for a in typing.get_args(tp) if a is not Ellipsis)


def _walk(cls, seen: set) -> list[str]:
    """Names of numeric fields without a declared range, in ``cls`` and the dataclasses it nests."""
    if cls in seen:
        return []
    seen.add(cls)
    missing, hints = [], typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        nested = [a for a in (tp, *typing.get_args(tp)) if dataclasses.is_dataclass(a)]
        for inner in nested:
            missing += _walk(inner, seen)
        if _numeric(tp) and not nested and field_range(f) is None:
            missing.append(f"{cls.__name__}.{f.name}")
    return missing


def test_every_numeric_setting_declares_a_range():
    classes = _config_classes()
    assert len(classes) >= 8
    missing = [name for cls in classes for name in _walk(cls, set())]
    assert missing == [], f"numeric fields without bounded(...): {missing}"


def _daemon(**changes) -> dict:
    cfg = {"model": {"path": "m.onnx"}, "thresholds": {"image": 0.5},
           "cameras": [{"name": "c", "source": "synthetic", "max_frames": 4}]}
    for dotted, value in changes.items():
        node = cfg
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        node[leaf] = value
    return cfg


# The examples: each refused at load (so by --check) with a line naming the key.
@pytest.mark.parametrize("key, value", [
    ("postprocess__thumbnail__quality", 2147483648), ("postprocess__thumbnail__quality", 500),
    ("batching__max_batch", 10**12), ("publish__sndhwm", 2**31), ("shutdown_timeout_s", math.nan),
    ("shutdown_timeout_s", -1), ("shutdown_timeout_s", 1e30), ("cameras__0__synthetic__pool", 10**30),
    ("model__threads", 0), ("postprocess__max_regions", -1), ("drift__window", 0), ("recorder__queue_size", 0),
    ("cameras__0__fps", math.inf), ("publish__wait_for_subscribers", -1), ("cameras__0__source", -3),
])
def test_out_of_range_settings_are_refused(key, value):
    with pytest.raises(ConfigError) as err:
        daemon_config(_daemon(**{key: value}))
    message = str(err.value)
    assert key.split("__")[-1] in message and "\n" not in message and len(message) < 200
    assert "out of range" in message or "finite" in message


def test_in_range_settings_load():
    cfg = daemon_config(_daemon(postprocess__thumbnail__quality=100, model__threads=1, drift__window=1,
                                drift__min_samples=1, publish__wait_for_subscribers=2,
                                thresholds__calibration="cal.yaml"))  # drift compares with its statistics
    assert cfg.postprocess.thumbnail.quality == 100 and cfg.publish.wait_for_subscribers == 2


@pytest.mark.parametrize("text, match", [
    (b"model: {path: m.onnx}\ncameras: [{name: c, source: x}]\nrecorder: {on: true}\n", "not a string"),
    (b"7: seven\n", "not a string"),
    (b"summary_json: /tmp/s\xff\xfe.json\n", "not UTF-8"),
    (b"zz: " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "nested too deeply"),
    (b"summary_json: /tmp/s\x01.json\n", "invalid YAML"),
    (b"- a list\n", "must be a mapping at the top level"),
])
def test_malformed_yaml_is_one_line(tmp_path, text, match):
    path = tmp_path / "cfg.yaml"
    path.write_bytes(text)
    with pytest.raises(ConfigError, match=match) as err:
        from_dict(DaemonConfig, load_yaml(path), where=str(path))
    assert "\n" not in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("text, match", [
    ('{"a": NaN}', "NaN is not valid JSON"), ('{"a": Infinity}', "Infinity"),
    ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ('{"a": ' + "9" * 5000 + "}", "not valid JSON"), ("[1]", "JSON object"), ("{", "not valid JSON"),
])
def test_malformed_json_is_one_line(tmp_path, text, match):
    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as err:
        load_json(path, "sidecar")
    assert "\n" not in str(err.value)


def _sidecar() -> dict:
    return {"schema_version": 1, "model": {"name": "m", "version": "1"},
            "input": {"dtype": "uint8", "layout": "NHWC", "height": 64, "width": 64, "channels": 3, "color": "RGB",
                      "resize": "square", "batch": "N"},
            "outputs": {}, "graphs": {"fp32": {"file": "m.onnx", "sha256": "a" * 64}}, "extra": {"future": 1}}


@pytest.mark.parametrize("mutate, match", [
    (lambda s: s["input"].update(layout="NCHW"), "layout"),
    (lambda s: s["input"].update(resize="fit"), "resize"),
    (lambda s: s["input"].pop("height"), "height"),
    (lambda s: s["input"].update(width="yes"), "width"),
    (lambda s: s["input"].update(width=[[]]), "width"),
    (lambda s: s["input"].update(height=10**30), "height"),
    (lambda s: s["input"].update(channels="ça☃ü"), "channels"),
    (lambda s: s.update(input=math.inf), "input"),
    (lambda s: s["graphs"].update(fp32="/dev/null"), "fp32"),
    (lambda s: s["graphs"]["fp32"].update(sha256=7), "sha256"),
    (lambda s: s.update(schema_version=2), "schema"),
])
def test_sidecar_schema(mutate, match):
    validate_model_card(_sidecar(), "m.json")  # unknown keys are ignored (forward-compatible artifacts)
    bad = _sidecar()
    mutate(bad)
    with pytest.raises(ExportError, match=match) as err:
        validate_model_card(bad, "m.json")
    assert "\n" not in str(err.value) and "m.json" in str(err.value)


@pytest.mark.parametrize("side", ["height", "width"])
def test_a_model_card_input_side_follows_the_one_largest_side_rule(side):
    """The model card took input sides up to 8192 while a model config's image_size (and so anything training
    writes) stopped at 2048: two rules for one number. Both read the contract's MAX_IMAGE_SIDE now, so a card
    no training run could write is refused in one line naming the key and the range."""
    from inspector.contract import MAX_IMAGE_SIDE
    from inspector.models.base import ModelConfig

    card = _sidecar()
    card["input"][side] = MAX_IMAGE_SIDE
    validate_model_card(card, "m.json")
    card["input"][side] = MAX_IMAGE_SIDE + 1
    with pytest.raises(ExportError) as err:
        validate_model_card(card, "m.json")
    assert f"input.{side}: {MAX_IMAGE_SIDE + 1} is out of range [1, {MAX_IMAGE_SIDE}]" in str(err.value), err.value
    assert "\n" not in str(err.value) and "m.json" in str(err.value)
    config_side = field_range(next(f for f in dataclasses.fields(ModelConfig) if f.name == "image_size"))
    card_side = field_range(next(f for f in dataclasses.fields(CardInput) if f.name == side))
    assert card_side.le == config_side.le == MAX_IMAGE_SIDE


def test_sidecar_file_and_calibration_file(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(_sidecar()))
    assert read_sidecar(path)["input"]["height"] == 64
    cal = tmp_path / "cal.yaml"
    cal.write_text("schema_version: 1\nmodel: {name: m, sha256: " + "a" * 64 + "}\nimage_threshold: .nan\n"
                   "pixel_threshold: 1\n")
    with pytest.raises(ConfigError, match="image_threshold: nan is not a finite number"):
        read_thresholds(cal)
    cal.write_text("schema_version: 1\nmodel: {name: m, sha256: " + "a" * 64 + "}\nimage_threshold: 1\n"
                   "pixel_threshold: 1\nscore_stats: {~: 1, mean: 0, std: 1, min: 0, max: 1, p50: 0, p99: 1, n: 3}\n")
    with pytest.raises(ConfigError, match="not a string"):
        read_thresholds(cal)


def test_every_numeric_command_line_argument_declares_a_range():
    """No bare ``type=int`` / ``type=float``: every number on the command line goes through argtypes."""
    import argparse

    from inspector.cli import build_parser

    def walk(parser: argparse.ArgumentParser, prefix: str):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from walk(child, f"{prefix} {name}")
            elif action.type in (int, float):
                yield f"{prefix} {'/'.join(action.option_strings) or action.dest}"

    bare = sorted(set(walk(build_parser(), "inspector")))
    assert bare == [], f"numeric arguments without a range (use commands.argtypes): {bare}"


@pytest.mark.parametrize("argv", [["evaluate", "run", "--batch-size", "0"], ["predict", "m.onnx", "x.png", "--threads",
                                  "-1"], ["calibrate", "m.onnx", "--false-alarm-rate", "inf"],
                                  ["data", "synth", "--out", "d", "--size", "99999999999999999999999999999999"],
                                  # accepted before: ≈ 50 s of warm-up a batch size on the tiny model, days of demo
                                  ["bench", "m.onnx", "--warmup", "100000"], ["demo", "--frames", "1000000000"],
                                  ["demo", "--epochs", "100000"],
                                  ["verify", "c.onnx", "--reference", "r.onnx", "--data", "d", "--limit", "0"]])
def test_out_of_range_arguments_are_one_line(argv, capsys, tmp_path, monkeypatch):
    from inspector.cli import main

    monkeypatch.chdir(tmp_path)  # were a range lost, the command would run here (the demo in runs/demo)

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ("out of range" in err or "not a finite number" in err), err


FUZZ_VALUES = ["0", "-1", "nan", "-inf", "inf", "1e12", "1e309", "9" * 40, "-" + "9" * 40, "0x10", "abc", "", " ",
               "1_0", "٣", "4.5", "1e-320"]


def _numeric_options():
    import argparse

    from inspector.cli import build_parser

    def walk(parser: argparse.ArgumentParser, prefix: str):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from walk(child, f"{prefix} {name}")
            elif getattr(action.type, "range", None) is not None:
                yield f"{prefix} {'/'.join(action.option_strings) or action.dest}", action.type

    return list(walk(build_parser(), "inspector"))


def test_fuzz_every_numeric_command_line_argument():
    """Every numeric option of every command (verify, demo, bench … as the parser has them), given zero,
    negatives, NaN, infinities, huge and non-numbers: either a finite value inside its declared range, or
    argparse's one-line refusal (ArgumentTypeError, exit 2), never another exception."""
    import argparse

    options = _numeric_options()
    assert len(options) >= 30 and any(name.startswith("inspector verify") for name, _ in options)
    for name, parse in options:
        lo, hi = (b() if callable(b) else b for b in parse.range)
        for text in FUZZ_VALUES:
            try:
                value = parse(text)
            except argparse.ArgumentTypeError as err:
                assert "\n" not in str(err) and len(str(err)) < 120, (name, text, err)
                continue
            for one in value if isinstance(value, list) else [value]:
                assert math.isfinite(one) and (lo is None or one >= lo) and (hi is None or one <= hi), (name, text)


def test_every_numeric_command_line_argument_has_two_finite_bounds():
    """A range with an open side is no range: ``verify --threshold -1e308`` and ``predict --vmin 1e300`` were
    "any finite number", so a flip check that could never flip passed. Bounds may be functions (export --opset)."""
    for name, parse in _numeric_options():
        bounds = [b() if callable(b) else b for b in parse.range]
        assert all(b is not None and math.isfinite(b) for b in bounds), f"{name}: range {bounds}"


def _bad_values(parse) -> list[str]:
    """Values outside ``parse``'s range, and non-finite ones: just outside each bound, far outside, NaN, ±inf."""
    lo, hi = (b() if callable(b) else b for b in parse.range)
    if lo is None or hi is None:  # no range at all: the far values and non-finite ones still must be refused
        return ["-1e308", "1e308", "nan", "inf", "-inf"]
    step = 1 if isinstance(lo, int) and isinstance(hi, int) else max(abs(hi - lo) * 1e-3, 1e-9)
    return [repr(lo - step), repr(hi + step), "-1e308", "1e308", "nan", "inf", "-inf", "-3"]


def test_bad_numeric_values_through_every_command_are_one_line_and_exit_2(capsys, tmp_path, monkeypatch):
    """A bounded fuzz through ``main``: each numeric option of each command, given values outside its range or
    not finite (``--epochs -3``, ``--threshold nan``, ``--time-budget -inf`` …), ends the command with exit 2 and
    one line naming the option, before any work (the run would otherwise start here, in tmp_path)."""
    from inspector.cli import main

    monkeypatch.chdir(tmp_path)
    checked = 0
    for name, parse in _numeric_options():
        words = name.split()[1:]
        command, option = words[:-1], words[-1].split("/")[0]
        lo, hi = (b() if callable(b) else b for b in parse.range)
        for text in _bad_values(parse):
            if text == "-3" and lo is not None and lo <= -3:
                continue  # a range that allows it; every other value here is outside any sensible range
            assert main([*command, f"{option}={text}"]) == 2, (name, text)
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and option in err and "Traceback" not in err, (name, text, err)
            checked += 1
    assert checked >= 150 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("profile", [{"min_batch": 8, "max_batch": 2}, {"min_batch": 1, "opt_batch": 4, "max_batch": 2},
                                     {"min_batch": 4, "opt_batch": 2}])
def test_an_engine_card_profile_out_of_order_is_refused(tmp_path, profile):
    """Each batch bound was range-checked alone: a card whose min_batch exceeded its max_batch loaded."""
    from inspector.artifacts.engine_card import read_engine_sidecar

    card = {"schema_version": 1, "kind": "tensorrt-engine", "engine": {"file": "e.plan"}, "profile": profile,
            "model": {"input": {"name": "images", "dtype": "uint8", "layout": "NHWC", "batch": "N", "height": 32,
                                "width": 32, "channels": 3, "color": "RGB", "resize": "square"}}}
    (tmp_path / "e.plan").write_bytes(b"plan")
    (tmp_path / "e.json").write_text(json.dumps(card))
    with pytest.raises(InspectorError, match=f"^engine sidecar {tmp_path / 'e.json'}: profile: min_batch .* does not "
                                             f"hold$"):
        read_engine_sidecar(tmp_path / "e.plan")
    card["profile"] = {"min_batch": 1, "opt_batch": 2, "max_batch": 2}
    (tmp_path / "e.json").write_text(json.dumps(card))
    read_engine_sidecar(tmp_path / "e.plan")


@pytest.mark.parametrize("text, said", [("/tmp/a\x00b", "NUL"), ("/tmp/a\ud800b", "\\ud800"),
                                        ("/tmp/a\udcffb", "\\udcff")], ids=["nul", "surrogate", "low-surrogate"])
@pytest.mark.parametrize("key", ["summary_json", "recorder__dir", "publish__endpoint", "metrics__token_file",
                                 "model__path", "cameras__0__name", "cameras__0__source", "publish__mqtt__username"])
def test_a_text_setting_no_path_can_hold_is_refused_at_load(key, text, said):
    """A NUL (YAML's double-quoted "\\0", a JSON "\\u0000", --set) or a lone surrogate (a "\\ud800" escape: half
    of a UTF-16 pair, no character) in a path or text: no file, URL or name can hold one, and the checks of
    ``run --check`` handed it to the operating system or a library: ValueError ('embedded null byte') or
    UnicodeEncodeError tracebacks, and a camera URL one crashed the process (SIGSEGV). Refused where every text
    setting is read, in one line naming the key and the character, escaped."""
    with pytest.raises(ConfigError) as err:
        daemon_config(_daemon(**{key: text}))
    message = str(err.value)
    assert key.split("__")[-1] in message and said in message and "\n" not in message
    assert message.encode("utf-8") and "\x00" not in message


@pytest.mark.parametrize("line", ['summary_json: "/tmp/x\\0y.json"', 'recorder: {enabled: true, dir: "r\\0ec"}',
                                  'summary_json: "/tmp/x\\ud800y.json"', 'publish: {endpoint: "tcp://\\ud800:5860"}',
                                  'cameras: [{name: a, source: "rtsp://h\\ud800/x"}]'])
def test_a_text_setting_no_path_can_hold_through_run_check_is_one_line(tmp_path, line):
    import subprocess
    import sys

    path = tmp_path / "cfg.yaml"
    cameras = "" if line.startswith("cameras") else "cameras: [{name: c, source: synthetic, max_frames: 4}]\n"
    path.write_text("model: {path: m.onnx}\nthresholds: {image: 0.5}\n" + cameras + line + "\n")
    res = subprocess.run([sys.executable, "-m", "inspector", "run", "--config", str(path), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "Traceback" not in res.stderr, (res.returncode, res.stderr[-2000:])
    assert [l for l in res.stderr.splitlines() if l.startswith("error:")] == res.stderr.strip().splitlines()[-1:]
    assert "NUL" in res.stderr or "surrogate" in res.stderr, res.stderr


# -- a bounded, seeded fuzz over every setting of every config class ------------------------------------------
FUZZ_SEED = 20261207
FUZZ_VALUES_PER_SETTING = 12
HOSTILE_SETTINGS = [math.nan, math.inf, -math.inf, 10**400, -10**400, 2**63, -1, 0, 1e308, -1e-308, True, False,
                    None, [], {}, [1, 2], {"a": 1}, "", " ", "10ms", "1e3", "\x00", "\ud800", "\x1b[2J", "a\nb",
                    "a" * 5000, "../../x", "~", "${HOME}/x", "yes", "0x10"]


def _settings(cls, prefix: tuple = ()) -> list[tuple[tuple, dataclasses.Field]]:
    """(path, field) of every leaf setting of ``cls`` and the dataclasses it nests (a tuple of them: item 0)."""
    out, hints = [], typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        nested = [a for a in (tp, *typing.get_args(tp)) if dataclasses.is_dataclass(a)]
        if nested:
            many = typing.get_origin(tp) in (tuple, list)
            out += _settings(nested[0], prefix + ((f.name, 0) if many else (f.name,)))
        else:
            out.append((prefix + (f.name,), f))
    return out


def _edges(rng, f: dataclasses.Field) -> list:
    """Values at and just past a setting's declared bounds, and hostile ones of every type."""
    rng_ = field_range(f)
    near = []
    for bound in ([] if rng_ is None else [rng_.ge, rng_.gt, rng_.le, rng_.lt]):
        if bound is not None:
            near += [bound, bound - 1, bound + 1, bound * (1 + 1e-12), -bound, float(bound)]
    pool = near + HOSTILE_SETTINGS
    return rng.sample(pool, min(FUZZ_VALUES_PER_SETTING, len(pool)))


def _put(doc: dict, path: tuple, value) -> bool:
    """Set ``path`` in ``doc`` to ``value``; False (nothing set) when its section is not in ``doc``: an optional
    section given in part is refused for the keys it lacks, whatever the value."""
    for part in path[:-1]:
        if isinstance(part, int) and isinstance(doc, list) and part < len(doc):
            doc = doc[part]
        elif isinstance(doc, dict) and isinstance(doc.get(part), (dict, list)):
            doc = doc[part]
        elif isinstance(doc, dict) and part not in doc and len(path) == 2:  # a top-level section left to defaults
            doc = doc.setdefault(part, {})
        else:
            return False
    doc[path[-1]] = value
    return True


def _fuzz_loaders():
    from inspector.config import to_dict
    from inspector.models.registry import get_entry, model_names

    from pathlib import Path

    from inspector.artifacts.model_card import parse_model_card
    from test_fuzz_files import _sidecar

    yield "daemon", DaemonConfig, _daemon, daemon_config
    for cls in (TrainConfig, DataConfig, *(get_entry(n).config_cls for n in model_names())):
        yield cls.__name__, cls, (lambda c=cls: to_dict(c())), (lambda d, c=cls: from_dict(c, d))
    calibration = {"schema_version": 1, "model": {"name": "m", "sha256": "a" * 64}, "image_threshold": 0.5,
                   "pixel_threshold": 0.4, "uncertain_band": [0.4, 0.6], "rule": "manual",
                   "score_stats": {"mean": 0.1, "std": 0.01, "min": 0.0, "max": 0.2, "p50": 0.1, "p99": 0.2, "n": 9}}
    yield "calibration", Thresholds, lambda: calibration, lambda d: from_dict(Thresholds, d)
    yield "model card", ModelCard, lambda: _sidecar(Path("/x/m.onnx"), "a" * 64), lambda d: parse_model_card(d, "m.json")


def _value_at(obj, path: tuple):
    for part in path:
        obj = obj[part] if isinstance(part, int) else getattr(obj, part)
    return obj


def test_fuzz_every_setting_of_every_config_is_loaded_in_range_or_refused_in_one_line():
    """Each setting of the daemon, training, data and model configs, a calibration file and a model card set to values at and past its declared bounds
    and to hostile values of every type (NaN, 10**400, bools, texts with units, NUL, lone surrogates, lists):
    loading either takes it (a number then lies within its range and is finite) or refuses it with one ConfigError
    line that names it; never another exception."""
    import copy

    rng = random.Random(FUZZ_SEED)
    failures, counts = [], collections.Counter()
    for name, cls, base, load in _fuzz_loaders():
        for path, f in _settings(cls):
            for value in _edges(rng, f):
                doc = copy.deepcopy(base())
                if not _put(doc, path, value):
                    continue
                try:
                    loaded = _value_at(load(doc), path)
                except InspectorError as exc:  # ConfigError; a model card's ExportError
                    counts["refused"] += 1
                    text = str(exc)
                    if "\n" in text or "\x00" in text or "\x1b" in text or len(text) > 400 or f.name.split("_")[0] not in text:
                        failures.append(f"{name} {path}={str(value)[:40]!r}: message {text[:200]!r}")
                    continue
                except Exception as exc:  # noqa: BLE001 - the finding
                    failures.append(f"{name} {path}={str(value)[:40]!r}: {type(exc).__name__}: {str(exc)[:120]}")
                    continue
                counts["loaded"] += 1
                numbers = [v for v in (loaded if isinstance(loaded, tuple) else (loaded,))
                           if isinstance(v, (int, float)) and not isinstance(v, bool)]
                for number in numbers:
                    if isinstance(number, float) and not math.isfinite(number):
                        failures.append(f"{name} {path}={value!r}: loaded as {number}")
                    elif field_range(f) is not None:
                        try:
                            field_range(f).check("x", number)
                        except ConfigError as exc:
                            failures.append(f"{name} {path}={value!r}: loaded out of range ({exc})")
    print(f"\nconfig fuzz (seed {FUZZ_SEED}): {dict(counts)}")
    assert not failures, f"{len(failures)} failure(s):\n" + "\n".join(failures[:30])
    assert counts["refused"] > 1000 and counts["loaded"] > 100, counts
