"""A bad value in a file is one line naming the file, then the key path apart from it.

Glued (``daemon.yaml.batching.max_batch: …``) the key path read as one starting at a key called ``yaml``; the
training config's messages did not name the file at all (``train.epochs: -3 …``: which file, the user's or the
run folder's?). Each file kind is loaded the way its command loads it.
"""

from __future__ import annotations

import json

import pytest
import yaml

from inspector.cli import main
from inspector.config import file_key_message
from inspector.errors import ConfigError, ExportError


def _error_line(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_a_daemon_config_names_the_file_then_the_key(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "daemon.yaml").write_text("model: {path: m.onnx}\nthresholds: {image: 0.5}\n"
                                          "cameras: [{name: a, source: synthetic}]\nbatching: {max_batch: -1}\n")
    err = _error_line(capsys, ["run", "--config", "daemon.yaml", "--check"])
    assert err.startswith("error: daemon.yaml: batching.max_batch: -1 is out of range"), err


@pytest.mark.parametrize("overrides, expected", [
    (["batching.max_batch=.nan"], "error: --set batching.max_batch: expected an integer, got nan"),
    (["batching.max_batch=4"], "error: {path}: batching.max_wait_ms: -1.0 is out of range"),
    (["=3"], "error: --set =3: expected key=value"),
    (["batching..max_batch=3"], "error: --set batching..max_batch=3: expected key=value"),
    # the key as typed after --set, and the suggestion as a key to type there
    (["batching.max_wait_ms=1", "publish.endpont=tcp://127.0.0.1:5556"], "error: --set publish.endpont: unknown "
                                                                          "key (did you mean 'publish.endpoint'?)"),
    (["publsh.endpoint=tcp://127.0.0.1:5556"], "error: --set publsh: unknown key (did you mean 'publish'?)"),
], ids=["set-value", "file-value-beside-set", "set-no-key", "set-empty-part", "set-unknown-key",
        "set-unknown-section"])
def test_a_value_set_on_the_command_line_is_told_as_set_there(tmp_path, capsys, overrides, expected):
    path = tmp_path / "daemon.yaml"
    path.write_text("model: {path: m.onnx}\nthresholds: {image: 0.5}\ncameras: [{name: a, source: synthetic}]\n"
                    "batching: {max_wait_ms: -1}\n")
    argv = ["run", "--config", str(path), "--check"] + [a for o in overrides for a in ("--set", o)]
    err = _error_line(capsys, argv)
    assert err.startswith(expected.format(path=path)), err


_CAMERA = "cameras: [{name: a, source: synthetic}]\nthresholds: {image: 0.5}\n"


@pytest.mark.parametrize("text, overrides, expected", [
    ("model: {path: missing.onnx}\n", [], "error: {path}: model.path: {folder}/missing.onnx not found"),
    ("model: {path: missing.onnx}\n", ["model.path={folder}/other.onnx"],
     "error: --set model.path: {folder}/other.onnx not found"),
    ("model: {path: m.onnx}\npublish: {endpoint: 'inproc://x'}\n", [],
     "error: {path}: publish.endpoint: inproc://x can be reached only from inside this process"),
    ("model: {path: m.onnx}\nrecorder: {enabled: true}\n", ["recorder.dir={folder}/m.onnx"],
     "error: --set recorder.dir: {folder}/m.onnx exists and is not a folder"),
], ids=["file", "set", "file-publish", "set-recorder"])
@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
def test_what_the_daemon_refuses_as_it_starts_names_the_file_too(tmp_path, capsys, text, overrides, expected, check):
    """Settings the daemon checks as it starts (the model there, the endpoint, the recorder's folder) were told
    by their key alone (``model.path: … not found``), where the loader's messages name the file: with a config
    per production line, which one? A value given with --set is told as set there."""
    (tmp_path / "m.onnx").write_bytes(b"")
    path = tmp_path / "daemon.yaml"
    path.write_text(text + _CAMERA)
    argv = ["run", "--config", str(path)] + (["--check"] if check else []) + [
        a for o in overrides for a in ("--set", o.format(folder=tmp_path))]
    err = _error_line(capsys, argv)
    assert err.startswith(expected.format(path=path, folder=tmp_path)), err


def test_a_key_in_a_list_and_a_check_that_names_two_keys(tmp_path):
    from inspector.pipeline.config import load_daemon_config

    path = tmp_path / "d.yaml"
    path.write_text("model: {path: m.onnx}\nthresholds: {image: 0.5}\ncameras: [{name: a, source: synthetic, "
                    "fps: -1}]\n")
    with pytest.raises(ConfigError) as exc:
        load_daemon_config(path)
    assert str(exc.value).startswith(f"{path}: cameras[0].fps: "), exc.value
    path.write_text("model: {path: m.onnx}\nthresholds: {image: 0.5}\ncameras: [{name: a, source: synthetic}]\n"
                    "publish: {mqtt: {url: 'mqtt://u:p@host'}}\n")
    with pytest.raises(ConfigError) as exc:
        load_daemon_config(path)
    assert str(exc.value).startswith(f"{path}: publish.mqtt.url: ") and f"{path}." not in str(exc.value)
    assert "set publish.mqtt.username and publish.mqtt.password_file" in str(exc.value)


def test_a_calibration_file_names_the_file_then_the_key(tmp_path):
    from inspector.artifacts.thresholds import read_thresholds

    path = tmp_path / "cal.yaml"
    path.write_text(yaml.safe_dump({"schema_version": 1, "model": {"name": "m", "sha256": "0" * 64,
                                                                   "precision": "fp32"},
                                    "image_threshold": float("nan")}))
    with pytest.raises(ConfigError) as exc:
        read_thresholds(path)
    assert str(exc.value).startswith(f"{path}: image_threshold: nan is not a finite number"), exc.value


def test_a_model_card_names_the_file_then_the_key(tmp_path):
    from inspector.artifacts.model_card import read_sidecar

    card = {"schema_version": 1, "model": {"name": "m", "version": "1"},
            "input": {"name": "images", "dtype": "uint8", "layout": "NHWC", "batch": "N", "height": -5, "width": 32,
                      "channels": 3, "color": "RGB", "resize": "square"},
            "outputs": {"score": {"dtype": "float32"}, "anomaly_map": {"dtype": "float32"}},
            "graphs": {"fp32": {"file": "m.onnx", "sha256": "0" * 64, "precision": "fp32"}}}
    path = tmp_path / "rs.json"
    path.write_text(json.dumps(card))
    with pytest.raises(ExportError) as exc:
        read_sidecar(path)
    assert str(exc.value).startswith(f"sidecar {path}: input.height: -5 is out of range"), exc.value


@pytest.mark.parametrize("text, argv, expected", [
    ("train: {epochs: -3}\n", [], "error: {path}: train.epochs: -3 is out of range"),
    ("train: {epoch: 3}\n", [], "error: {path}: train: unknown key 'epoch'"),
    ("modl: {}\n", [], "error: {path}: unknown section 'modl'"),
    ("model: {image_size: [63, 64]}\n", [], "error: {path}: model.image_size: 63x64"),
    # the command line overrides the file: the value that is wrong is not the file's
    ("train: {epochs: 3}\n", ["--set", "train.epochs=-2"], "error: --set train.epochs: -2 is out of range"),
    ("train: {epochs: 3}\n", ["--epochs", "1", "--set", "train.lr=-1"], "error: --set train.lr: -1.0 is out of range"),
    ("train: {epochs: 3}\n", ["--set", "train.foo=1"], "error: --set train.foo: unknown key"),
    ("train: {epochs: 3}\n", ["--set", "train.epoch=1"],
     "error: --set train.epoch: unknown key (did you mean 'train.epochs'?)"),
    ("train: {epochs: 3}\n", ["--set", "trian.epochs=1"],
     "error: --set trian: unknown section (did you mean 'train'?)"),
    ("train: {epochs: 3}\n", ["--set", "foo"], "error: --set foo: expected key=value"),
    ("train: {epochs: 3}\n", ["--set", "train.epochs.x=3"], "error: --set train.epochs.x=3: 'epochs' is not a section"),
], ids=["range", "unknown-key", "unknown-section", "model-check", "set-overrides-file", "set-and-flag", "set-unknown",
        "set-unknown-suggested", "set-unknown-section", "set-no-value", "set-not-a-section"])
def test_a_training_config_names_the_file(tmp_path, capsys, text, argv, expected):
    path = tmp_path / "my.yaml"
    path.write_text(text + f"data: {{path: {tmp_path}}}\n")
    err = _error_line(capsys, ["train", "--config", str(path), "--out", str(tmp_path / "run"), *argv])
    assert err.startswith(expected.format(path=path)), err
    assert not (tmp_path / "run").exists()


def test_a_set_value_is_told_as_set_without_a_config_file_too(tmp_path, capsys):
    err = _error_line(capsys, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"),
                               "--set", "model.image_size=big"])
    assert err == "error: --set model.image_size: expected a list, got 'big'", err


@pytest.mark.parametrize("message, expected", [
    ("a/d.yaml.cameras[0].name: x", "a/d.yaml: cameras[0].name: x"),
    ("a/d.yaml: unknown key 'z'", "a/d.yaml: unknown key 'z'"),
    ("a/d.yaml.x: set a/d.yaml.y too; b/a/d.yaml.x is another file", "a/d.yaml: x: set y too; b/a/d.yaml.x is "
                                                                     "another file"),
])
def test_file_key_message(message, expected):
    assert file_key_message(message, "a/d.yaml") == expected
