"""Calibration file: write/read round trip, validation, binding to the model hash."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from inspector.errors import ConfigError
from inspector.artifacts.calibration_data import CalibrationData, GoodImages
from inspector.artifacts.thresholds import (ModelBinding, Thresholds, load_thresholds, read_thresholds, score_stats,
                                  write_thresholds)

SHA = "a" * 64


def _thresholds(**kw) -> Thresholds:
    base = dict(model=ModelBinding("rs-brick", SHA, "fp16", "onnxruntime"), image_threshold=0.5,
                pixel_threshold=0.4, rule="false_alarm_rate=0.01", uncertain_band=(0.45, 0.6),
                data=CalibrationData(good=GoodImages("test/good", "data/brick", n=100)),
                score_stats=score_stats(np.linspace(0.1, 0.3, 101)))
    base.update(kw)
    return Thresholds(**base)


def test_round_trip(tmp_path):
    t = _thresholds()
    path = write_thresholds(t, tmp_path / "cal" / "rs.yaml")
    raw = yaml.safe_load(path.read_text())
    assert list(raw)[:2] == ["schema_version", "model"] and raw["schema_version"] == 1
    assert raw["uncertain_band"] == [0.45, 0.6]
    back = read_thresholds(path)
    assert back == t
    assert back.score_stats.n == 101 and back.score_stats.p50 == pytest.approx(0.2)


def test_the_calibrate_command_suggested_is_read_back_by_a_shell_as_the_paths_it_names(tmp_path):
    """'inspector calibrate export/line 1/rs.fp16.onnx … --out <folder with a space>/…' copied from the error line
    named the files 'export/line' and '1/rs.fp16.onnx'."""
    import shlex

    folder = tmp_path / "line 1"
    folder.mkdir()
    path = write_thresholds(_thresholds(), folder / "rs.yaml")
    model = "export/line 1/rs.fp16.onnx"
    with pytest.raises(ConfigError) as info:
        load_thresholds(path, "b" * 64, model)
    argv = shlex.split(str(info.value).split("calibrate it with: ", 1)[1].replace("<dir>", "d"))
    assert argv == ["inspector", "calibrate", model, "--data", "d", "--out", str(folder / "rs.fp16.yaml")]


def test_load_refuses_other_model(tmp_path):
    path = write_thresholds(_thresholds(), tmp_path / "rs.yaml")
    assert load_thresholds(path, SHA, "export/rs.onnx").image_threshold == 0.5
    with pytest.raises(ConfigError) as info:
        load_thresholds(path, "b" * 64, "export/rs.fp16.onnx")
    msg = str(info.value)
    assert "another model" in msg and "\n" not in msg
    # a file of its own beside the other one: following the hint left the FP32 model's calibration, which its
    # daemon config names, replaced by its FP16 copy's
    assert msg.endswith(f"calibrate it with: inspector calibrate export/rs.fp16.onnx --data <dir> --out "
                        f"{tmp_path / 'rs.fp16.yaml'}")
    with pytest.raises(ConfigError) as info:  # the model re-exported under its name: its calibration is remade
        load_thresholds(path, "b" * 64, "export/rs.onnx")
    assert str(info.value).endswith(f"--out {path}")


@pytest.mark.parametrize("edit, match", [
    ({"image_threshld": 0.5}, "did you mean 'image_threshold'"),
    ({"schema_version": 2}, "unsupported schema_version 2"),
    ({"uncertain_band": [0.6, 0.7]}, "uncertain_band"),
    ({"image_threshold": "high"}, "expected a number"),
    ({"model": {"name": "x", "sha256": "xyz"}}, "64 lowercase hex"),
])
def test_invalid_files(tmp_path, edit, match):
    path = write_thresholds(_thresholds(), tmp_path / "rs.yaml")
    raw = yaml.safe_load(path.read_text())
    if "image_threshld" in edit:
        raw.pop("image_threshold")
    raw.update(edit)
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=match):
        read_thresholds(path)


def test_missing_and_malformed(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        read_thresholds(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="invalid YAML"):
        read_thresholds(bad)
    bad.write_text("- a list")
    with pytest.raises(ConfigError, match="must be a mapping"):
        read_thresholds(bad)


def test_written_as_utf8_not_escaped(tmp_path):
    """Folder names in the file stay readable (Prüfstand, 検査) instead of "\\xFC" / "\\u691C" escapes."""
    t = _thresholds(data=CalibrationData(good=GoodImages("folder", "data/Prüfstand/検査/good", n=100)))
    path = write_thresholds(t, tmp_path / "rs.yaml")
    text = path.read_bytes().decode("utf-8")
    assert "Prüfstand/検査" in text and "\\x" not in text and "\\u" not in text
    assert read_thresholds(path) == t


@pytest.mark.parametrize("text", ["", "# only a comment\n", "{}\n"])
def test_an_empty_calibration_file_is_told_empty(tmp_path, text):
    path = tmp_path / "cal.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"^{path}: calibration file is empty; make one with 'inspector calibrate'$"):
        read_thresholds(path)


def test_the_model_card_named_as_the_calibration_is_said_to_be_no_calibration_file(exported_model, tmp_path, capsys):
    """``--calibration export/rs-brick.json`` (the model card beside the graph: it has a schema_version and a model,
    as a calibration does) read "unknown key 'input'", which told a newcomer nothing; one line now says what the
    file is not, in predict, verify and the daemon alike (all read it through read_thresholds)."""
    from inspector.cli import main

    card = exported_model.with_suffix(".json")
    import cv2

    image = tmp_path / "part.png"
    assert cv2.imwrite(str(image), np.full((64, 64, 3), 128, np.uint8))
    with pytest.raises(ConfigError) as err:
        read_thresholds(card)
    assert str(err.value).startswith(f"{card}: not a calibration file (no image_threshold; its keys: schema_version, "
                                     f"model, ") and str(err.value).endswith("make one with 'inspector calibrate'")
    assert main(["predict", str(exported_model), str(image), "--calibration", str(card)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0] == f"error: {err.value}", lines
