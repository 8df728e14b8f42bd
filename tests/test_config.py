from dataclasses import dataclass
from typing import Literal

import pytest

from inspector.config import apply_overrides, from_dict, load_yaml, to_dict
from inspector.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    rate: float = 1.0
    mode: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    name: str
    size: tuple[int, int] = (8, 8)
    inner: Inner = Inner()
    path: str | None = None


def test_from_dict_builds_nested_frozen_objects():
    cfg = from_dict(Outer, {"name": "x", "size": [4, 6], "inner": {"rate": 2, "mode": "b"}})
    assert cfg == Outer("x", (4, 6), Inner(2.0, "b"))
    with pytest.raises(Exception):
        cfg.name = "y"  # frozen


def test_unknown_key_is_rejected_with_suggestion():
    with pytest.raises(ConfigError, match=r"config.inner: unknown key 'rte' \(did you mean 'rate'\?\)"):
        from_dict(Outer, {"name": "x", "inner": {"rte": 2}})


@pytest.mark.parametrize("data, message", [
    ({"name": 3}, "config.name: expected a string"),
    ({"name": "x", "size": [1, 2, 3]}, "config.size: expected 2 items"),
    ({"name": "x", "inner": {"mode": "c"}}, "config.inner.mode: 'c' is not one of"),
    ({"name": "x", "inner": {"rate": "fast"}}, "config.inner.rate: expected a number"),
    ({}, "missing required key 'name'"),
])
def test_type_errors_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        from_dict(Outer, data)


def test_overrides_parse_yaml_values_and_roundtrip(tmp_path):
    data = apply_overrides({"name": "x"}, ["inner.rate=0.5", "size=[2, 2]", "path=null"])
    cfg = from_dict(Outer, data)
    assert cfg.inner.rate == 0.5 and cfg.size == (2, 2) and cfg.path is None
    assert from_dict(Outer, to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides({}, ["novalue"])


def test_load_yaml_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML") as info:
        load_yaml(bad)
    assert "\n" not in str(info.value)


def test_load_yaml_errors_are_one_line(tmp_path):
    from inspector.config import load_yaml

    bad = tmp_path / "c.yaml"
    for content, words in ((b"model:\n  path: a\x07b\n", "unacceptable character"), (b"a: \xff\n", "not UTF-8"),
                           (b"a: [1,\n", "invalid YAML")):
        bad.write_bytes(content)
        with pytest.raises(ConfigError) as info:
            load_yaml(bad)
        assert words in str(info.value) and "\n" not in str(info.value)
