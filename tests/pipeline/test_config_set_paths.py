"""README "Paths": a path on the command line (``--set``) is relative to the working directory, one inside the
daemon config to the config's folder (``inspector.pipeline.config.load_daemon_config``)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from inspector.config import from_dict
from inspector.pipeline.config import (PATH_KEYS, DaemonConfig, _dotted, _with_dotted, load_daemon_config,
                                       resolve_paths)

FILE = "model:\n  path: m.onnx\nthresholds:\n  calibration: c.yaml\ncameras:\n  - name: a\n    source: vids/a.mp4\n"


def test_a_path_given_with_set_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    (tmp_path / "runs" / "demo" / "daemon.yaml").write_text(FILE)
    cfg = load_daemon_config("runs/demo/daemon.yaml", ["model.path=runs/demo/export/m.onnx", "recorder.enabled=true", "recorder.dir=rec",
                                                        "publish.endpoint=tcp://127.0.0.1:6000"])
    assert cfg.model.path == "runs/demo/export/m.onnx"  # was runs/demo/runs/demo/export/m.onnx
    assert cfg.recorder.dir == "rec"
    # the file's own paths stay relative to its folder; non-path settings are untouched
    assert cfg.thresholds.calibration == "runs/demo/c.yaml" and cfg.cameras[0].source == "runs/demo/vids/a.mp4"
    assert cfg.publish.endpoint == "tcp://127.0.0.1:6000"
    plain = load_daemon_config("runs/demo/daemon.yaml")
    assert plain.model.path == "runs/demo/m.onnx" and plain.recorder.dir == "runs/demo/runs/recordings"


def test_path_keys_are_every_setting_resolve_paths_resolves():
    # PATH_KEYS must follow resolve_paths: a path setting missing from it would again resolve against the file
    cfg = from_dict(DaemonConfig, yaml.safe_load(FILE), where="test")
    for key in PATH_KEYS:
        cfg = _with_dotted(cfg, key, "relative/file")
    a, b = resolve_paths(cfg, Path("/a")), resolve_paths(cfg, Path("/b"))
    differ = {k for k in _leaf_keys(a) if _dotted(a, k) != _dotted(b, k)} - {"cameras"}
    assert differ == set(PATH_KEYS), differ ^ set(PATH_KEYS)


def _leaf_keys(cfg, prefix: str = "") -> list[str]:
    out = []
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        key = prefix + field.name
        out += _leaf_keys(value, key + ".") if dataclasses.is_dataclass(value) else [key]
    return out
