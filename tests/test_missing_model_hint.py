"""A model file that is not there is one line naming the command that makes one of its kind, in every command that
takes one and in the daemon: an engine is built (``inspector build``), an INT8 graph quantized, a graph exported.

A newcomer's ``run`` before ``build`` (``model.path: engines/rs-brick.fp16.plan``) was told "export a model with
'inspector export'", which makes no engine, and ``predict``/``bench``/``verify``/``calibrate`` of that engine said
"engine file not found" and nothing about what to do next. Real files and folders; no model is needed, since
nothing is there."""

from __future__ import annotations

import pytest
import yaml

from inspector.cli import main

# (model path, the command that makes it; {d}: the folder the paths are relative to)
KINDS = [("engines/rs.fp16.plan", "inspector build GRAPH.onnx --out {d}engines/rs.fp16.plan (on the box with the GPU)"),
         ("engines/rs.engine", "inspector build GRAPH.onnx --out {d}engines/rs.engine (on the box with the GPU)"),
         ("export/rs.int8.onnx", "inspector quantize {d}export/rs.onnx --calibration DIR --out {d}export/rs.int8.onnx"),
         ("export/rs.fp16.onnx", "inspector export RUN --out {d}export/rs"),
         ("export/rs.onnx", "inspector export RUN --out {d}export/rs")]


def _image(tmp_path):
    import cv2
    import numpy as np

    assert cv2.imwrite(str(tmp_path / "part.png"), np.full((32, 32, 3), 128, np.uint8))
    return "part.png"


@pytest.mark.parametrize("model, make", KINDS)
@pytest.mark.parametrize("command", ["predict", "bench", "calibrate", "verify"])
def test_a_missing_model_names_the_command_that_makes_it(command, model, make, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    image = _image(tmp_path)
    argv = {"predict": ["predict", model, image], "bench": ["bench", model, "--duration", "1"],
            "calibrate": ["calibrate", model, "--good-dir", ".", "--out", "c.yaml"],
            "verify": ["verify", model, "--reference", "export/ref.onnx", "--data", "."]}[command]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {model}: "), err
    assert err[0].endswith("; make it with: " + make.format(d="")), err


@pytest.mark.parametrize("model, make", KINDS)
def test_the_daemon_names_the_command_that_makes_its_missing_model(model, make, tmp_path, capsys):
    image = _image(tmp_path)
    config = tmp_path / "line.yaml"
    config.write_text(yaml.safe_dump({"model": {"path": model}, "thresholds": {"image": 1.0},
                                      "cameras": [{"name": "c", "source": image}],
                                      "publish": {"endpoint": f"ipc://{tmp_path}/s.sock"}}))
    assert main(["run", "--config", str(config), "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "export a model with 'inspector export'" not in err[0], err
    assert err[0] == (f"error: {config}: model.path: {tmp_path / model} not found; make it with: "
                      + make.format(d=f"{tmp_path}/")), err


def test_a_model_that_is_there_but_no_file_gets_no_recipe(tmp_path, capsys):
    """A folder is told as one: a recipe for making the file would send the user to make what is there."""
    (tmp_path / "rs.onnx").mkdir()
    assert main(["predict", str(tmp_path / "rs.onnx"), str(tmp_path / _image(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and "make it with" not in err
