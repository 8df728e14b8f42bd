"""The calibration file's ``data`` section is typed (:mod:`inspector.artifacts.calibration_data`): what calibrate
writes is read back whole, a wrong value in it is one line naming the file and the key when the file is read
(predict, the daemon's check), and files calibrate wrote before, or with notes added by hand, still load."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from inspector.cli import main

# Every key calibrate has written under data (good … warnings since its first version, batch_check since it
# checks batch sizes): readers quote them (README, calibration/README.md).
DATA_KEYS = {"good", "image_rule", "pixel_rule", "map_size", "resize", "defects", "uncertain", "warnings",
             "batch_check"}


@pytest.fixture(scope="module")
def calibrated(exported_model, tiny_dataset, tmp_path_factory) -> tuple[Path, object]:
    """(the file ``inspector calibrate`` wrote with every part of data: defects, uncertain band, warnings, batch
    check; the Thresholds the same run chose, as calibrate() returns them)."""
    from inspector.evaluation.calibrate import calibrate

    out = tmp_path_factory.mktemp("data_cal") / "rs.yaml"
    assert main(["calibrate", str(exported_model), "--data", str(tiny_dataset), "--use-defects",
                 "--uncertain-margin", "0.1", "--allow-few-good", "--out", str(out), "--batch-size", "2"]) == 0
    chosen = calibrate(exported_model, tiny_dataset, use_defects=True, uncertain_margin=0.1, allow_few_good=True,
                       batch_size=2)
    return out, chosen


def test_what_calibrate_writes_under_data_is_read_back_typed_and_whole(calibrated, tiny_dataset):
    """The file is read into the typed section, every field as calibrate chose it, under the keys it always
    had; they were a dict that every reader dug in with its own idea of what could be missing."""
    from inspector.artifacts.thresholds import read_thresholds

    out, chosen = calibrated
    raw = yaml.safe_load(out.read_text())["data"]
    assert set(raw) == DATA_KEYS, set(raw)
    assert set(raw["good"]) == {"source", "root", "layout", "n", "skipped"}
    assert set(raw["batch_check"]) == {"batch_sizes", "images", "spread"}
    assert set(raw["defects"]) == {"source", "n", "skipped", "with_mask"}
    assert set(raw["uncertain"]) == {"margin", "good_in_band"}
    back = read_thresholds(out)
    data = back.data
    assert (data.good.source, data.good.root, data.good.n) == ("validation split", str(tiny_dataset.absolute()), 2)
    assert data.image_rule.rule_text == chosen.image.details["rule_text"] and data.image_rule.f1 is not None
    assert data.pixel_rule.rule_text == chosen.pixel.details["rule_text"]
    assert data.defects.n == 6 and data.uncertain.margin == 0.1 and data.batch_check.batch_sizes == (1, 2)
    assert data.map_size == (64, 64) and data.resize == "square" and data.warnings == tuple(chosen.warnings)
    # the same run again gives the same section: everything written was read back, nothing added or lost
    assert data == chosen.thresholds.data and back.score_stats == chosen.thresholds.score_stats


def _edited(source: Path, folder: Path, key: str, value) -> Path:
    """A copy of the calibration ``source`` with ``data.<key>`` (dotted) set to ``value``."""
    raw = yaml.safe_load(source.read_text())
    *parents, last = key.split(".")
    section = raw["data"]
    for name in parents:
        section = section[name]
    section[last] = value
    bad = folder / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw, sort_keys=False))
    return bad


@pytest.mark.parametrize("key, value, said", [
    ("good", "test/good", "data.good: expected a mapping, got str"),
    ("good.n", "four", "data.good.n: expected an integer, got 'four'"),
    ("good.root", ["a", "b"], "data.good.root: expected a string, got list"),
    ("good.excluded", "a.png", "data.good.excluded: expected a list, got 'a.png'"),
    ("batch_check.images", "three", "data.batch_check.images: expected an integer, got 'three'"),
    ("batch_check.spread", -1e-6, "data.batch_check.spread: -1e-06 is out of range [0, inf)"),
    ("uncertain.margin", 2, "data.uncertain.margin: 2.0 is out of range (0, 1)"),
])
def test_predict_refuses_a_wrong_data_value_in_one_line(exported_model, tiny_dataset, calibrated, tmp_path, capsys,
                                                        key, value, said):
    """predict read data.good / data.batch_check only where it printed a calibrate command, each reader in its
    own way: a wrong data.good was taken for none (the command said --data <dir>), batch_check.images 'three'
    ended in a ValueError, a negative spread passed. Now the file is refused when read: one line, exit 2."""
    bad = _edited(calibrated[0], tmp_path, key, value)
    image = sorted((tiny_dataset / "test" / "good").glob("*.png"))[0]
    capsys.readouterr()
    assert main(["predict", str(exported_model), str(image), "--calibration", str(bad), "--batch-size", "1"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err, err
    (line,) = err.splitlines()
    assert line.startswith(f"error: {bad}: {said}"), err


def test_run_check_refuses_a_wrong_batch_check_in_one_line(exported_model, tiny_dataset, calibrated, tmp_path,
                                                          capsys):
    """The daemon's check read data.batch_check's images with int(): 'three' was a traceback, not exit 2."""
    bad = _edited(calibrated[0], tmp_path, "batch_check.images", "three")
    cfg = tmp_path / "inspector.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"path": str(exported_model)}, "thresholds": {"calibration": str(bad)},
                                   "cameras": [{"name": "c", "source": str(tiny_dataset / "test" / "good")}],
                                   "publish": {"endpoint": f"ipc://{tmp_path / 'events.sock'}"}}))
    capsys.readouterr()
    assert main(["run", "--config", str(cfg), "--check"]) == 2
    err = capsys.readouterr().err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert f"{bad}: data.batch_check.images: expected an integer, got 'three'" in line and "Traceback" not in err, err


def test_a_file_calibrate_wrote_before_and_notes_added_by_hand_still_load(exported_model, tiny_dataset, tmp_path,
                                                                           capsys):
    """A file as the first calibrate wrote it (no batch_check, a relative root), with a note added under data
    and under data.good: it loads, typed, and predict decides with it (the notes are ignored, as a model
    card's unknown keys; the keys calibrate wrote are checked)."""
    from inspector.artifacts.model_card import sha256_file
    from inspector.artifacts.thresholds import read_thresholds

    old = tmp_path / "old.yaml"
    old.write_text(f"""schema_version: 1
model: {{name: rs, sha256: {sha256_file(exported_model)}, precision: fp32, backend: onnxruntime}}
image_threshold: 1.0e+9
pixel_threshold: 1.0e+9
rule: false_alarm_rate=0.001, pixel_false_alarm_rate=0.001
uncertain_band: null
data:
  good: {{source: validation split, root: data/brick, layout: mvtec, n: 2, skipped: [], checked_by: A. N. Other}}
  image_rule: {{target_false_alarm_rate: 0.001, n_good: 2, resolution: 0.5, allowed_false_alarms: 0,
               false_alarms: 0, false_alarm_rate: 0.0, rule_text: above all 2 good scores (target finer than 1/2)}}
  pixel_rule: {{target_false_alarm_rate: 0.001, resolution: 1.2e-4, false_alarm_rate: 0.0,
               rule_text: above all 8192 good-image pixels (target finer than 1/8192), n_pixels: 8192,
               false_alarm_pixels: 0}}
  map_size: [64, 64]
  resize: square
  warnings: [image threshold on 2 good images]
  note: line 3, approved 2026-11-23
score_stats: {{mean: 0.1, std: 0.01, min: 0.09, max: 0.11, p50: 0.1, p99: 0.11, n: 2}}
""")
    data = read_thresholds(old).data
    assert (data.good.source, data.good.layout, data.batch_check, data.defects) == ("validation split", "mvtec",
                                                                                  None, None)
    assert data.pixel_rule.n_pixels == 8192 and data.warnings == ("image threshold on 2 good images",)
    image = sorted((tiny_dataset / "test" / "good").glob("*.png"))[0]
    capsys.readouterr()
    assert main(["predict", str(exported_model), str(image), "--calibration", str(old), "--batch-size", "1"]) == 0
    out, err = capsys.readouterr()
    assert out.split("\t")[0] == str(image) and "OK" in out, (out, err)
    assert "--data data/brick --split val" in err, err  # the made-before-batch-check line names its images
