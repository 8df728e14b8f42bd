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


def test_a_transposition_is_suggested_before_a_closer_looking_word():
    from inspector.config import suggest

    assert suggest("rstp", ["rtp", "rtsp", "http"]) == " (did you mean 'rtsp'?)"  # difflib alone says 'rtp'
    assert suggest("rtp", ["rtp", "rtsp"]) == " (did you mean 'rtp'?)"
    assert suggest("zzz", ["rtp", "rtsp"]) == ""


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


@pytest.mark.parametrize("text, line, key", [
    ("model: {path: a.onnx}\ncameras: [{name: a}]\ncameras:\n", 3, "cameras"),  # the first list was dropped
    ("thresholds:\n  image: 0.5\n  image: 99\n", 3, "image"),  # nested: the second one won silently
    ("a: {x: 1, x: 2}\n", 1, "x"),
])
def test_a_key_given_twice_is_refused_with_its_line(tmp_path, text, line, key):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert str(info.value) == f"{path}: line {line} invalid YAML in this config file (found duplicate key '{key}')"


def test_merge_keys_and_small_aliases_still_load(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("base: &cam {fps: 2, loop: true}\ncameras:\n  - {<<: *cam, name: a, fps: 5}\n"
                    "  - {<<: *cam, name: b}\nkinds: &k [scratch]\nother: *k\n")
    data = load_yaml(path)
    assert data["cameras"] == [{"fps": 5, "loop": True, "name": "a"}, {"fps": 2, "loop": True, "name": "b"}]
    assert data["other"] == ["scratch"]


def test_an_alias_bomb_is_refused_quickly(tmp_path):
    """A few hundred bytes expanding to 10^9 nodes: before, the config checks ran out of memory."""
    import time

    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    start = time.monotonic()
    with pytest.raises(ConfigError, match="invalid YAML in this config file \\(aliases expand to more than"):
        load_yaml(path)
    assert time.monotonic() - start < 5


def test_a_json_key_given_twice_is_refused(tmp_path):
    from inspector.config import load_json

    path = tmp_path / "m.json"
    path.write_text('{"input": {"height": 64, "height": 128}}')
    with pytest.raises(ConfigError, match="model card is not valid JSON \\(duplicate key 'height'\\)"):
        load_json(path, "model card")


def test_a_byte_order_mark_is_read_past_in_json_as_in_yaml(tmp_path):
    """A sidecar re-saved by a Windows editor: 'Unexpected UTF-8 BOM', while a YAML file with one loaded."""
    from inspector.config import load_json

    (tmp_path / "m.json").write_bytes(b'\xef\xbb\xbf{"input": {"height": 64}}\r\n')
    (tmp_path / "c.yaml").write_bytes(b"\xef\xbb\xbfinput: {height: 64}\r\n")
    assert load_json(tmp_path / "m.json", "model card") == load_yaml(tmp_path / "c.yaml") == {"input": {"height": 64}}


def test_a_folder_given_as_a_file_is_named_a_folder(tmp_path):
    """'config file not found' for a path that exists (as a folder) sent users looking for a missing file."""
    from inspector.artifacts.model_card import read_sidecar
    from inspector.artifacts.thresholds import read_thresholds
    from inspector.errors import ExportError

    folder = tmp_path / "m.json"
    folder.mkdir()
    with pytest.raises(ConfigError, match=f"^{folder}: is a folder, not a config file$"):
        load_yaml(folder)
    with pytest.raises(ConfigError, match=f"^{folder}: is a folder, not a calibration file$"):
        read_thresholds(folder)
    with pytest.raises(ExportError, match=f"^{folder}: is a folder, not a sidecar$"):
        read_sidecar(folder)


@pytest.mark.parametrize("text", ["010", "-0100", "0777", "1:30", "1:30:00", "-2:05", "1:30.5", "0_10"])
def test_a_number_yaml_1_1_and_1_2_read_differently_is_refused(tmp_path, text):
    """PyYAML reads YAML 1.1: a leading zero is octal ('max_frames: 010' was 8 frames) and colons are base 60
    ('open_timeout_s: 1:30' was 90); YAML 1.2, which this loader follows for floats, and most other tools read
    them as 10 and as text. Taken silently, the run used another number than the one written: refused in one line
    naming the line, with the way to write it."""
    path = tmp_path / "c.yaml"
    path.write_text(f"a: 1\nvalue: {text}\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert str(info.value).startswith(f"{path}: line 2 invalid YAML in this config file ({text} is ")
    assert str(info.value).endswith("or quote it for text)")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text, value", [("10", 10), ("0", 0), ("-0", 0), ("0x1f", 31), ("1_000", 1000),
                                         ("00", 0), ("007", 7), ("-05", -5),
                                         ("0.5", 0.5), ("00.5", 0.5), ("'010'", "010"), ('"1:30"', "1:30"),
                                         ("1:x", "1:x"), ("10:00 am", "10:00 am")])
def test_numbers_and_quoted_texts_that_read_alike_everywhere_still_load(tmp_path, text, value):
    path = tmp_path / "c.yaml"
    path.write_text(f"value: {text}\n")
    assert load_yaml(path) == {"value": value}


@pytest.mark.parametrize("line, said", [
    ("shutdown_timeout_s: 1" + "0" * 400, "shutdown_timeout_s: an integer of about 401 digits is too large"),
    ("batching: {max_batch: 1" + "0" * 400 + "}", "batching.max_batch: an integer of about 401 digits is out of range"),
    ("batching: {max_batch: -1" + "0" * 400 + "}", "batching.max_batch: an integer of about 401 digits is out of range"),
    ("shutdown_timeout_s: 1" + "0" * 5000, "invalid YAML in this config file (an integer of 5001 characters"),
])
def test_an_integer_beyond_the_float_range_is_refused_in_one_line(tmp_path, line, said):
    """An integer setting of 10**400: the message refusing it formatted it as a float (OverflowError), and a YAML
    integer of more than 4300 digits made Python's int() raise ValueError: tracebacks out of ``run --check``."""
    import subprocess
    import sys

    path = tmp_path / "cfg.yaml"
    path.write_text("model: {path: m.onnx}\nthresholds: {image: 0.5}\n"
                    "cameras: [{name: c, source: synthetic, max_frames: 4}]\n" + line + "\n")
    res = subprocess.run([sys.executable, "-m", "inspector", "run", "--config", str(path), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-1500:]
    assert res.stderr.strip().splitlines() == [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert said in res.stderr, res.stderr
