"""Threshold rules on hand-made scores, the calibration file's binding, and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from inspector.evaluation.calibrate import (pixel_threshold_at_false_alarm_rate, pixel_threshold_f1,
                                   threshold_at_false_alarm_rate, threshold_f1, uncertain_band)
from inspector.errors import ConfigError, DataError


# -- image threshold at a false-alarm rate ---------------------------------------------------------
def test_false_alarm_rate_exact_count():
    scores = np.arange(100, dtype=float)  # 0 … 99
    choice = threshold_at_false_alarm_rate(scores, 0.05)
    assert choice.threshold == pytest.approx(94.5)  # halfway between the 6th and 5th highest
    assert choice.details["false_alarms"] == 5 and choice.details["false_alarm_rate"] == pytest.approx(0.05)
    assert choice.details["resolution"] == pytest.approx(0.01)
    assert choice.rule == "false_alarm_rate=0.05" and not choice.warnings


def test_false_alarm_rate_order_independent_and_at_resolution():
    rng = np.random.default_rng(0)
    scores = rng.normal(1.0, 0.1, 10)
    a = threshold_at_false_alarm_rate(scores, 0.1)  # exactly 1/n: one false alarm allowed
    b = threshold_at_false_alarm_rate(rng.permutation(scores), 0.1)
    top2 = np.sort(scores)[-2:]
    assert a.threshold == b.threshold == pytest.approx(top2.mean())
    assert a.details["false_alarms"] == 1 and not a.warnings


def test_target_finer_than_resolution_warns_and_says_what_was_used():
    scores = np.linspace(0.2, 0.6, 40)
    choice = threshold_at_false_alarm_rate(scores, 0.001)
    assert choice.threshold > 0.6 and choice.threshold == pytest.approx(0.6)  # just above the highest good score
    assert choice.details["false_alarms"] == 0 and choice.details["allowed_false_alarms"] == 0
    (warning,) = choice.warnings
    assert "finer than the resolution of 40" in warning and "1/40" in warning
    assert "above all 40 good scores" in warning and "1000" in warning  # how many images reach the target


@pytest.mark.parametrize("n", [1, 2, 3])
def test_too_few_good_images_to_bound_the_rate_say_so(n):
    """With n ≤ 3 good images the rule-of-three bound 3/n is ≥ 1: the warning says nothing is known (it read
    "the true rate is only known to be below about 3/1 = 1") and how to get a usable threshold."""
    (warning,) = threshold_at_false_alarm_rate(np.linspace(0.2, 0.6, n), 0.01).warnings
    assert f"only {n} good image(s): nothing is known about this threshold's false-alarm rate" in warning
    assert "≥ 100 for the target 0.01" in warning and "below about" not in warning
    (four,) = threshold_at_false_alarm_rate(np.linspace(0.2, 0.6, 4), 0.01).warnings
    assert "below about 3/4 = 0.75" in four


@pytest.mark.parametrize("seed", range(20))
def test_never_more_false_alarms_than_allowed_even_with_ties(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, size=int(rng.integers(5, 60))).astype(np.float32)  # many ties
    rate = float(rng.uniform(0.01, 0.5))
    choice = threshold_at_false_alarm_rate(scores, rate)
    flagged = int((scores >= choice.threshold).sum())
    assert flagged == choice.details["false_alarms"] <= int(np.floor(rate * scores.size))
    assert choice.threshold > np.sort(scores)[::-1][int(np.floor(rate * scores.size))]  # the (k+1)-th passes


def test_all_ties_above_cut_give_zero_false_alarms():
    choice = threshold_at_false_alarm_rate([1, 1, 1, 2, 2, 2, 3, 3, 3, 3], 0.2)
    assert choice.threshold > 3 and choice.details["false_alarms"] == 0


@pytest.mark.parametrize("rate", [0, 1, -0.1, 1.5])
def test_bad_rate_is_a_config_error(rate):
    with pytest.raises(ConfigError, match="between 0 and 1"):
        threshold_at_false_alarm_rate([1.0, 2.0], rate)


def test_nan_scores_are_refused():
    with pytest.raises(DataError, match="NaN"):
        threshold_at_false_alarm_rate([1.0, float("nan")], 0.1)
    with pytest.raises(DataError, match="no scores"):
        threshold_at_false_alarm_rate([], 0.1)


# -- F1 with defects -----------------------------------------------------------------------------
def test_f1_optimal_threshold_with_precision_recall():
    good = [0.1, 0.2, 0.3, 0.4]
    defects = [0.35, 0.5, 0.6]
    # ≥0.5: F1 .8; ≥0.35: TP 3, FP 1 → P .75, R 1, F1 .857 (best); ≥0.3: F1 .75
    choice = threshold_f1(good, defects)
    assert choice.threshold == pytest.approx(0.325)  # halfway between 0.3 and 0.35: same decisions, more margin
    d = choice.details
    assert d["f1"] == pytest.approx(6 / 7) and d["precision"] == pytest.approx(0.75) and d["recall"] == 1.0
    assert d["false_alarms"] == 1 and d["missed"] == 0
    assert choice.rule == "f1"


def test_f1_separable_puts_threshold_in_the_gap():
    choice = threshold_f1([0.1, 0.2], [0.8, 0.9])
    assert 0.2 < choice.threshold < 0.8 and choice.details["f1"] == 1.0


# -- pixel thresholds ------------------------------------------------------------------------------
def test_pixel_threshold_at_rate():
    maps = np.arange(2 * 10 * 10, dtype=np.float32).reshape(2, 10, 10)  # 200 distinct values
    choice = pixel_threshold_at_false_alarm_rate(maps, 0.01)
    assert (maps >= choice.threshold).sum() == 2
    assert choice.details["n_pixels"] == 200 and choice.rule == "pixel_false_alarm_rate=0.01"


def test_pixel_f1_finds_the_region():
    rng = np.random.default_rng(0)
    maps = rng.uniform(0, 0.5, (3, 16, 16)).astype(np.float32)
    masks = np.zeros((3, 16, 16), bool)
    masks[1, 4:8, 4:8] = True
    maps[1][masks[1]] += 1.0
    choice = pixel_threshold_f1(list(maps), [masks[0], masks[1], None])
    assert 0.5 <= choice.threshold <= 1.0 and choice.details["f1"] == 1.0
    with pytest.raises(DataError, match="no defect pixels"):
        pixel_threshold_f1(list(maps), [masks[0], masks[0], None])


def test_uncertain_band():
    assert uncertain_band(2.0, 0.1) == pytest.approx((1.8, 2.2))
    with pytest.raises(ConfigError):
        uncertain_band(2.0, 1.5)
    with pytest.raises(ConfigError, match="positive"):
        uncertain_band(-1.0, 0.1)


# -- with a real exported model: the deployed backend, the binding, the CLI ---------------------------
def test_calibrate_binds_to_the_scored_file(exported_model, tiny_dataset, tmp_path):
    from inspector.evaluation.calibrate import calibrate
    from inspector.artifacts.model_card import read_sidecar, sha256_file, sidecar_path_for
    from inspector.artifacts.thresholds import load_thresholds

    fp32 = exported_model
    fp16 = fp32.with_name(fp32.name.replace(".onnx", ".fp16.onnx"))
    out32, out16 = tmp_path / "fp32.yaml", tmp_path / "fp16.yaml"
    few = {"allow_few_good": True}  # the fixture model's 2 validation images (fewer than 4 are refused)
    c32 = calibrate(fp32, tiny_dataset, "onnxruntime", 0.001, out32, uncertain_margin=0.1, **few)
    c16 = calibrate(fp16, tiny_dataset, "onnxruntime", 0.001, out16, **few)

    t = load_thresholds(out32, sha256_file(fp32), fp32)  # accepted for the file it was made with
    assert t.model.precision == "fp32" and t.model.backend == "onnxruntime" and t.model.name == fp32.stem
    assert load_thresholds(out16, sha256_file(fp16), fp16).model.precision == "fp16"
    with pytest.raises(ConfigError, match=r"another model.*inspector calibrate"):
        load_thresholds(out32, sha256_file(fp16), fp16)  # refused for the FP16 graph

    val_files = read_sidecar(sidecar_path_for(fp32))["training"]["data"]["val_files"]
    assert t.data.good.source == "validation split" and t.data.good.n == len(val_files)
    assert t.score_stats.n == len(val_files) and t.score_stats.max < t.image_threshold
    assert t.uncertain_band[0] < t.image_threshold < t.uncertain_band[1]
    said = "nothing is known" if len(val_files) <= 3 else "finer than the resolution"  # 0.001, a handful of images
    assert any(said in w for w in c32.warnings), c32.warnings
    # scores came from the deployed graphs: FP16 shifts them a little, never by much
    assert not np.array_equal(c16.good.scores, c32.good.scores)
    # Judged per score, on the scale of all the model's scores (good and defective), not as a ratio
    # to the threshold: with 2 validation images the threshold is the larger of two near-zero
    # scores (evidence above the good 0.9 quantile), so a ratio to it is ill-posed (a 0.08 shift of a
    # good score was 0.38 of it, while defects scored 21-1063). The fixture is a 64-px, 2-epoch model
    # whose stride-32 level is 2x2; the FP16 gate on real images is test_parity.
    d32 = calibrate(fp32, tiny_dataset, "onnxruntime", 0.001, tmp_path / "d32.yaml", use_defects=True, **few)
    d16 = calibrate(fp16, tiny_dataset, "onnxruntime", 0.001, tmp_path / "d16.yaml", use_defects=True, **few)
    s32 = np.concatenate([d32.good.scores, d32.defects.scores])
    s16 = np.concatenate([d16.good.scores, d16.defects.scores])
    tolerance = 0.05 * np.abs(s32) + 0.01 * (s32.max() - s32.min())  # 5 % of the score + 1 % of the range
    assert np.all(np.abs(s16 - s32) <= tolerance), np.abs(s16 - s32) / tolerance
    raw = yaml.safe_load(out32.read_text())
    assert list(raw)[:2] == ["schema_version", "model"] and raw["rule"].startswith("false_alarm_rate=0.001")


def test_calibrate_with_defects_and_good_dir(exported_model, tiny_dataset, tmp_path):
    from inspector.evaluation.calibrate import calibrate

    c = calibrate(exported_model, tiny_dataset, use_defects=True, out=tmp_path / "f1.yaml", allow_few_good=True)
    assert c.image.rule == "f1" and c.pixel.rule == "pixel_f1"
    rule = c.thresholds.data.image_rule
    assert None not in (rule.f1, rule.precision, rule.recall)
    assert c.thresholds.data.defects.n == 6

    g = calibrate(exported_model, good_dir=tiny_dataset / "test" / "good", false_alarm_rate=0.25)
    assert g.path is None and (g.thresholds.data.good.source, g.thresholds.data.good.n) == ("folder", 4)
    assert g.image.details["false_alarms"] == 1


def test_calibrate_cli(exported_model, tiny_dataset, tmp_path, capsys):
    from inspector.cli import main

    out = tmp_path / "cli.yaml"
    assert main(["calibrate", str(exported_model), "--data", str(tiny_dataset), "--split", "test",
                 "--false-alarm-rate", "0.001", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "image      threshold" in text and "warning:" in text and "1/4" in text and out.is_file()
    assert main(["calibrate", str(exported_model), "--data", str(tiny_dataset), "--false-alarm-rate", "2",
                 "--out", str(out)]) == 2
    assert "--false-alarm-rate: 2 is out of range (0, 1)" in capsys.readouterr().err
    assert main(["calibrate", str(exported_model), "--out", str(out)]) == 2
    assert main(["calibrate", str(tmp_path / "missing.onnx"), "--data", str(tiny_dataset)]) == 2
    folder = tmp_path / "calibration"
    folder.mkdir()
    assert main(["calibrate", str(exported_model), "--data", str(tiny_dataset), "--split", "test",
                 "--out", str(folder)]) == 0  # an existing folder: the default name inside it
    assert (folder / f"{exported_model.stem}.yaml").is_file()
    # --split chooses among --data's images; with --good-dir it would do nothing, so it is refused by name
    good = tiny_dataset / "test" / "good"
    capsys.readouterr()
    assert main(["calibrate", str(exported_model), "--good-dir", str(good), "--split", "test", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --split 'test'") and "no effect" in err[0], err


# -- which good images ----------------------------------------------------------------------------
def test_good_images_fall_back_to_test_good_with_a_warning(tiny_dataset):
    from inspector.evaluation.calibrate import select_good_images

    sidecar = {"training": {"data": {"root": str(tiny_dataset), "val_files": ["000.png", "003.png", "gone.png"]}}}
    samples, desc, warnings = select_good_images(tiny_dataset, sidecar)
    assert desc["source"] == "validation split" and [s.path.name for s in samples] == ["000.png", "003.png"]
    assert "1 validation image(s)" in warnings[0]
    samples, desc, warnings = select_good_images(tiny_dataset, {})  # nothing recorded: test/good
    assert desc["source"] == "test/good" and len(samples) == 4 and "optimistic" in warnings[0]
    with pytest.raises(DataError, match="no validation images"):
        select_good_images(tiny_dataset, {}, split="val")
    with pytest.raises(ConfigError, match="give data .* or good_dir"):
        select_good_images(None, {})


def test_calibrate_takes_the_images_training_kept_out_of_every_fit(tmp_path, capsys):
    """The validation images chose the best epoch and fitted the map normalisation, so new good parts score
    higher than they do (ELPV mono: median +33 %): a threshold from them flags more than its rate on the line.
    A run with ``data.calibration_fraction`` keeps that share of its good images out of everything, records
    them in the model card, and calibrate takes them first; on the validation images it says why they run low."""
    from inspector.cli import main
    from inspector.data.synth import synthesize
    from inspector.deploy import export_run
    from inspector.training.config import load_run_config
    from inspector.training.loop import train

    data = tmp_path / "brick"
    synthesize(data, texture="brick", size=64, n_train=24, n_test_good=2, n_test_defect=2, seed=1)
    config = load_run_config(base={"model": {"name": "reduced_student", "image_size": [64, 64]},
                                   "data": {"path": str(data), "calibration_fraction": 0.5},
                                   "train": {"epochs": 1, "batch_size": 4}})
    summary = train(config, tmp_path / "run")
    held = summary["data"]
    assert (held["n_train"], held["n_val"], held["n_calibration"]) == (7, 5, 12)
    assert not set(held["calibration_files"]) & set(held["val_files"])
    onnx = export_run(tmp_path / "run", tmp_path / "export" / "rs")["fp32"]
    capsys.readouterr()
    assert main(["calibrate", str(onnx), "--data", str(data), "--out", str(tmp_path / "cal.yaml")]) == 0
    out = capsys.readouterr().out
    assert "12 image(s) from calibration split" in out and "validation images, which chose" not in out, out
    assert main(["calibrate", str(onnx), "--data", str(data), "--split", "val", "--out", str(tmp_path / "v.yaml")]) == 0
    out = capsys.readouterr().out
    assert "5 image(s) from validation split" in out and "warning: calibrating on the validation images" in out, out


def test_calibrate_advises_a_calibration_fraction_that_makes_a_part_for_this_model(exported_model, tiny_dataset,
                                                                                     tmp_path, capsys):
    """On the validation images calibrate advised ``--set data.calibration_fraction=0.1`` whatever the model:
    0.1 of 40 good images is 4, under the 10 a part needs, so that training made none (a run that had set 0.2
    got none and was told to set it again). The advice is a fraction that makes a part for this model's good
    images, or, when they are too few for any, says so with the numbers."""
    from inspector.cli import main

    data = tmp_path / "brick"
    assert main(["data", "synth", "--out", str(data), "--size", "32", "--train", "40", "--test-good", "1",
                 "--test-defect", "1"]) == 0
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--epochs", "1", "--set",
                 "model.image_size=[32,32]", "--set", "train.batch_size=8"]) == 0
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "export" / "rs")]) == 0
    capsys.readouterr()
    assert main(["calibrate", str(tmp_path / "export" / "rs.onnx"), "--data", str(data), "--out",
                 str(tmp_path / "cal.yaml")]) == 0
    printed = "".join(capsys.readouterr())
    assert ("or train with --set data.calibration_fraction=0.25 or more to keep images out of every fit for "
            "calibrate (10 of this model's 40 good images; a part of fewer than 10 is not made)") in printed, printed
    assert main(["calibrate", str(exported_model), "--data", str(tiny_dataset), "--out",
                 str(tmp_path / "tiny.yaml"), "--allow-few-good"]) == 0  # its 2 validation images
    printed = "".join(capsys.readouterr())
    assert ("(this model's 12 good images are too few for a calibration part: it needs 10 beside 2 to validate "
            "and 2 to train on; add good images)") in printed, printed
    assert "calibration_fraction" not in printed, printed


def test_a_split_the_model_card_does_not_record_is_refused_by_name(tiny_dataset):
    from inspector.evaluation.calibrate import select_good_images

    sidecar = {"training": {"data": {"root": str(tiny_dataset), "val_files": ["000.png"]}}}
    with pytest.raises(DataError, match="records no calibration images"):
        select_good_images(tiny_dataset, sidecar, split="calibration")
    samples, desc, warnings = select_good_images(tiny_dataset, sidecar)  # auto: validation, with the reason
    assert desc["source"] == "validation split" and warnings[-1].startswith("calibrating on the validation images")


def test_validation_images_are_known_by_content_not_by_a_bare_name(exported_model, tiny_dataset, tmp_path):
    """Calibrating on another dataset took its train/good images that merely share a name with the model's
    validation images for them. Known by content now (sha256 recorded at training): a moved copy of the dataset
    still finds them, a same-named other image is not one; a model card from before the hashes matches by
    resolved path (its recorded root), never by name alone."""
    import shutil

    import cv2

    from inspector.artifacts.model_card import read_sidecar, sidecar_path_for
    from inspector.evaluation.calibrate import select_good_images

    sidecar = read_sidecar(sidecar_path_for(exported_model))
    val_files = sidecar["training"]["data"]["val_files"]
    moved, other = tmp_path / "moved", tmp_path / "other"
    shutil.copytree(tiny_dataset, moved)
    shutil.copytree(tiny_dataset, other)
    for name in val_files:  # the same names, other pictures
        path = other / "train" / "good" / name
        assert cv2.imwrite(str(path), cv2.flip(cv2.imread(str(path)), 1))
    samples, desc, _ = select_good_images(moved, sidecar)
    assert desc["source"] == "validation split" and sorted(s.path.name for s in samples) == sorted(val_files)
    samples, desc, warnings = select_good_images(other, sidecar)
    assert desc["source"] == "test/good" and all(s.path.parent.parent.name == "test" for s in samples)
    assert f"none of the model's {len(val_files)} validation image(s)" in warnings[0], warnings
    legacy = {"training": {"data": {"root": str(tiny_dataset), "val_files": val_files}}}
    assert select_good_images(tiny_dataset, legacy)[1]["source"] == "validation split"
    assert select_good_images(other, legacy)[1]["source"] == "test/good"


def test_split_test_without_good_test_images_names_only_what_is_missing(tiny_dataset, tmp_path):
    """``--split test`` on a dataset with no test/good images: the line said "no validation split recorded",
    which --split test never asked for."""
    import shutil

    from inspector.evaluation.calibrate import select_good_images

    data = tmp_path / "d"
    shutil.copytree(tiny_dataset, data)
    shutil.rmtree(data / "test" / "good")
    with pytest.raises(DataError) as info:
        select_good_images(data, {}, split="test")
    assert str(info.value).endswith(": no test/good images; use --good-dir"), info.value
    with pytest.raises(DataError, match="no validation split recorded for this model and no test/good"):
        select_good_images(data, {})


def test_engine_sidecar_nests_the_model_sidecar():
    from types import SimpleNamespace

    from inspector.evaluation.calibrate import model_sidecar

    onnx_sidecar = {"graphs": {}, "input": {"resize": "shorter_side_crop"}, "training": {"data": {}}}
    assert model_sidecar(SimpleNamespace(sidecar=onnx_sidecar)) is onnx_sidecar
    engine = SimpleNamespace(sidecar={"kind": "tensorrt-engine", "engine": {"sha256": "x"}, "precision": "fp16",
                                      "model": onnx_sidecar})
    assert model_sidecar(engine) is onnx_sidecar


def test_corrupt_good_images_are_skipped_and_counted(exported_model, tiny_dataset, tmp_path):
    import shutil

    from inspector.evaluation.calibrate import calibrate

    folder = tmp_path / "good"
    shutil.copytree(tiny_dataset / "test" / "good", folder)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    c = calibrate(exported_model, good_dir=folder, false_alarm_rate=0.2)
    assert c.thresholds.data.good.n == 4 and c.thresholds.data.good.skipped[0].endswith("broken.png")
    assert any("could not be read" in w for w in c.warnings)


def test_defects_without_masks_fall_back_to_good_pixels(exported_model, tiny_dataset, tmp_path):
    import shutil

    from inspector.evaluation.calibrate import calibrate

    data = tmp_path / "nomasks"
    shutil.copytree(tiny_dataset, data, ignore=shutil.ignore_patterns("ground_truth"))
    c = calibrate(exported_model, data, use_defects=True, split="test")
    assert c.image.rule == "f1" and c.pixel.rule.startswith("pixel_false_alarm_rate")
    assert c.thresholds.rule == f"f1, {c.pixel.rule}" and c.thresholds.data.defects.with_mask == 0
    assert any(w.startswith("no defective image has a ground-truth mask: ") for w in c.warnings), c.warnings


def _masks_made(root, kind: str) -> None:
    """Every ground-truth mask of ``root`` made empty (all zero: 0 or 1 values, 8 or 16 bit), or one empty, one
    of another aspect and one removed."""
    import cv2

    masks = sorted((root / "ground_truth").glob("*/*_mask.png"))
    for i, path in enumerate(masks):
        if kind == "empty" or i == 0:
            assert cv2.imwrite(str(path), np.zeros((64, 64), np.uint16 if i % 2 else np.uint8))
        elif i == 1:
            assert cv2.imwrite(str(path), np.full((32, 64), 255, np.uint8))
        else:
            path.unlink()


@pytest.mark.parametrize("kind, said", [
    ("empty", "the ground-truth masks of all 6 defective image(s) are empty (no pixel marked, e.g. "),
    ("mixed", "none of the 6 defective image(s) has a usable ground-truth mask: 4 with no mask file found, e.g. "),
])
def test_masks_that_exist_but_mark_nothing_are_not_said_to_be_missing(exported_model, tiny_dataset, tmp_path,
                                                                      kind, said):
    """A ground_truth folder whose masks were all empty (zero) was "no ground-truth masks for the defective
    images", which sent the user looking for a naming fault; the warning now says what the masks are (all empty,
    or how many of each kind: no file, empty, unusable), naming an example, in one line."""
    import shutil

    from inspector.evaluation.calibrate import calibrate

    data = tmp_path / "part"
    shutil.copytree(tiny_dataset, data)
    _masks_made(data, kind)
    c = calibrate(exported_model, data, use_defects=True, split="test")
    assert c.pixel.rule.startswith("pixel_false_alarm_rate") and c.thresholds.data.defects.with_mask == 0
    (told,) = [w for w in c.warnings if "pixel threshold comes from good-image pixels" in w]
    assert told.startswith(said) and "no ground-truth masks" not in told, told
    assert str(data / "ground_truth") in told, told
    if kind == "mixed":
        assert "1 with an empty mask" in told and "1 with a mask that could not be used" in told, told


def test_a_pixel_f1_threshold_says_how_many_defective_images_it_rests_on(exported_model, tiny_dataset, tmp_path):
    """With some defect images unmasked, the pixel-F1 threshold was chosen over the masked ones alone while the
    summary said "[pixel_f1]" and the file "over the pixels of images with ground-truth masks", 1 or 6 of them.
    The rule text (summary line and file) now counts them; no closing warning repeats the count
    (tests/test_calibrate_said_once.py)."""
    import shutil

    from inspector.artifacts.thresholds import read_thresholds
    from inspector.evaluation.calibrate import calibrate

    data = tmp_path / "part"
    shutil.copytree(tiny_dataset, data)
    for path in sorted((data / "ground_truth").glob("*/*_mask.png"))[:2]:
        path.unlink()
    c = calibrate(exported_model, data, use_defects=True, split="test", out=tmp_path / "c.yaml")
    covers = ("pixel-F1-optimal over the pixels of 4 good image(s) and the 4 of 6 defective image(s) with a usable "
              "ground-truth mask")
    assert c.pixel.rule == "pixel_f1" and f"[pixel_f1: {covers}]" in "\n".join(c.summary_lines())
    assert read_thresholds(tmp_path / "c.yaml").data.pixel_rule.rule_text == covers
    assert not [w for w in c.warnings if "4 of the 6" in w or "4 of 6" in w], c.warnings


def test_no_readable_image_names_the_folder(exported_model, tmp_path):
    """Every good image corrupt: the one-line error says which folder, not just 'none of the N image(s)'."""
    from inspector.evaluation.calibrate import calibrate

    folder = tmp_path / "line3" / "good"
    folder.mkdir(parents=True)
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match=rf"^{folder}: none of the 2 image\(s\) could be read"):
        calibrate(exported_model, good_dir=folder)


@pytest.mark.parametrize("text, keys", [
    ("model:\n  name: reduced_student\ndata:\n  path: d\ntrain:\n  epochs: 2\n", "model, data, train"),
    ("cameras: []\nthresholds:\n  calibration: c.yaml\n", "cameras, thresholds"),
])
def test_another_yaml_named_as_the_calibration_is_said_to_be_no_calibration_file(tmp_path, text, keys):
    """A run's config.yaml or a daemon config given as --calibration read "unknown key 'train'" (or a
    "did you mean 'pixel_threshold'" for 'thresholds'): one line now says what the file is not."""
    from inspector.artifacts.thresholds import read_thresholds

    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        read_thresholds(path)
    assert str(err.value) == (f"{path}: not a calibration file (no image_threshold; its keys: {keys}); make one "
                              f"with 'inspector calibrate'")


def test_use_defects_leaves_ambiguous_labels_out_of_the_f1_threshold(exported_model, tiny_dataset, tmp_path):
    """--use-defects took ELPV's test/likely_defect (defect probability 2/3) as defects, so images its annotators
    were unsure of pulled the F1-optimal threshold; evaluate and the benchmarks leave them out, so calibrate does."""
    import shutil

    from inspector.evaluation.calibrate import calibrate

    data = tmp_path / "with_likely"
    shutil.copytree(tiny_dataset, data)
    shutil.copytree(tiny_dataset / "train" / "good", data / "test" / "likely_defect")  # good-looking 'defects'
    c = calibrate(exported_model, data, use_defects=True, split="test")
    plain = calibrate(exported_model, tiny_dataset, use_defects=True, split="test")
    assert c.thresholds.data.defects.n == plain.thresholds.data.defects.n == 6
    assert c.thresholds.image_threshold == plain.thresholds.image_threshold


def test_use_defects_with_only_ambiguous_defects_names_them(exported_model, tiny_dataset, tmp_path):
    """test/ holding likely_defect alone: --use-defects said 'needs test/<defect type> images; found none' beside a
    folder of defect images, which sent the user looking for a layout fault; it names the folder left out."""
    import shutil

    from inspector.evaluation.calibrate import calibrate

    data = tmp_path / "likely_only"
    shutil.copytree(tiny_dataset / "train", data / "train")
    shutil.copytree(tiny_dataset / "test" / "good", data / "test" / "good")
    shutil.copytree(tiny_dataset / "train" / "good", data / "test" / "likely_defect")
    with pytest.raises(DataError) as err:
        calibrate(exported_model, data, use_defects=True, split="test", allow_few_good=True)
    assert "found only ambiguously labelled ones, likely_defect (12 image(s))" in str(err.value)
    assert "found none" not in str(err.value)


def test_good_images_the_model_was_fitted_on_are_told(exported_model, tiny_dataset, tmp_path):
    """calibrate --good-dir data/train/good (the images the model trained on, which score below new good parts)
    gave no word, while the validation split has warned since Session 35: the card now records the trained-on
    images by content, and a good-image folder or test/good holding any of them is told, with how many."""
    import shutil

    from inspector.evaluation.calibrate import calibrate

    c = calibrate(exported_model, good_dir=tiny_dataset / "train" / "good", false_alarm_rate=0.2)
    told = [w for w in c.warnings if "fitted on" in w]
    assert len(told) == 1 and told[0].startswith("12 of the 12 good image(s) are images the model was fitted on"), told
    assert "trained on" in told[0] and "validated on" in told[0]
    unseen = calibrate(exported_model, good_dir=tiny_dataset / "test" / "good", false_alarm_rate=0.2)
    assert not [w for w in unseen.warnings if "fitted on" in w]
    leak = tmp_path / "leak"
    shutil.copytree(tiny_dataset, leak)
    shutil.copy(tiny_dataset / "train" / "good" / "000.png", leak / "test" / "good" / "leaked.png")
    c = calibrate(exported_model, leak, split="test", false_alarm_rate=0.2)
    assert [w for w in c.warnings if w.startswith("1 of the 5 test/good image(s) are images the model was fitted")]


def test_uncertain_margin_range_on_the_command_line_is_the_one_calibrate_takes(tmp_path, capsys):
    """--uncertain-margin 1 passed the flag's advertised range (0, 1] and was then refused by calibrate itself
    ('must be between 0 and 1, got 1.0', after loading the model): one range, told by the flag."""
    from inspector.cli import main

    assert main(["calibrate", str(tmp_path / "m.onnx"), "--uncertain-margin", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: inspector calibrate: argument --uncertain-margin: 1 is out of range (0, 1) "
                   "(see 'inspector calibrate --help')"], err


# -- the threshold gives the right decision on the line -------------------------------------------------------
@pytest.fixture(scope="module")
def new_good(tmp_path_factory) -> Path:
    """24 good brick images the fixture model never saw (another seed): what a line collects to calibrate on."""
    from inspector.data.synth import synthesize

    root = tmp_path_factory.mktemp("new_good") / "brick"
    # seed 8: none of them stands apart for the fixture model (4 of the 12 sets of seeds 7-18 have one that does)
    synthesize(root, texture="brick", size=64, n_train=24, n_test_good=0, n_test_defect=0, seed=8)
    return root / "train" / "good"


def _scores(model: Path, paths: list, batch: int) -> np.ndarray:
    """``paths`` scored by a real ONNX Runtime session, ``batch`` images per call (as calibrate feeds them)."""
    from inspector.backends import load_backend
    from inspector.data.datasets import Sample
    from inspector.evaluation.calibrate import score_samples

    backend = load_backend(model, "onnxruntime")
    try:
        return score_samples(backend, [Sample(Path(p), 0, "good") for p in paths], batch).scores
    finally:
        backend.close()


def test_scores_far_above_the_rest_are_found_by_the_gap_rule():
    from inspector.evaluation.calibrate import OUTLIER_GAP, apart_from_the_rest

    rng = np.random.default_rng(0)
    healthy = rng.exponential(0.3, 24)
    assert apart_from_the_rest(healthy) == (0, 0.0)
    j, ratio = apart_from_the_rest(np.r_[healthy, 40.0, 25.0])  # two defective parts: both, not only the top
    assert j == 2 and ratio > OUTLIER_GAP
    assert apart_from_the_rest(np.r_[np.zeros(20), 5.0]) == (0, 0.0)  # no spread among the rest: no scale
    assert apart_from_the_rest([0.1, 0.2, 0.3, 9.0]) == (0, 0.0)  # too few to judge
    # how often healthy sets with an exponential tail are told apart, as the module docstring gives it
    told = {n: np.mean([apart_from_the_rest(rng.exponential(1.0, n))[0] > 0 for _ in range(2000)])
            for n in (10, 24, 100)}
    assert 0.04 < told[10] < 0.10 and 0.004 < told[24] < 0.02 and told[100] < 0.002, told


def test_a_defective_part_among_the_good_images_is_named_with_both_thresholds(exported_model, tiny_dataset,
                                                                                new_good, tmp_path, capsys):
    """The threshold is put just above the highest good score, so one defective part in --good-dir raised it
    above that defect's score and the line passed such defects, without a word. calibrate now names it, with
    the threshold with and without it; it stays in unless --exclude-outliers (a rule cannot tell a mislabelled
    part from a rare good one: a look at the image can)."""
    import shutil

    from inspector.cli import main
    from inspector.evaluation.calibrate import calibrate

    defects = sorted(p for p in (tiny_dataset / "test").glob("*/*.png") if p.parent.name != "good")
    worst = defects[int(np.argmax(_scores(exported_model, defects, 8)))]
    folder = tmp_path / "good"
    shutil.copytree(new_good, folder)
    shutil.copy(worst, folder / "mislabelled.png")
    clean = calibrate(exported_model, good_dir=new_good)
    assert not [w for w in clean.warnings if "far above" in w], clean.warnings
    kept = calibrate(exported_model, good_dir=folder)
    defect_score = float(kept.good.scores[[s.path.name for s in kept.good.samples].index("mislabelled.png")])
    assert kept.thresholds.image_threshold > defect_score  # kept: the rule is as documented
    (told,) = [w for w in kept.warnings if "far above" in w]
    assert f"{folder / 'mislabelled.png'} (score {defect_score:.6g})" in told, told
    assert (f"threshold is {kept.thresholds.image_threshold:.6g} with them, "
            f"{clean.thresholds.image_threshold:.6g} without") in told and "--exclude-outliers" in told, told
    left_out = calibrate(exported_model, good_dir=folder, exclude_outliers=True)
    # as if it were not there, to within what scoring it at other batch sizes moves a score: the batch guard's
    # window held it, and ONNX Runtime's kernels give batch-size differences on some CPUs and none on others
    spread = max(left_out.thresholds.data.batch_check.spread, clean.thresholds.data.batch_check.spread)
    steps = 2 * float(np.spacing(np.float32(clean.thresholds.image_threshold)))  # each put a float32 step above
    assert abs(left_out.thresholds.image_threshold - clean.thresholds.image_threshold) <= spread + steps
    assert left_out.thresholds.image_threshold < defect_score
    assert left_out.thresholds.data.good.excluded == (str(folder / "mislabelled.png"),)
    capsys.readouterr()
    assert main(["calibrate", str(exported_model), "--good-dir", str(folder), "--out", str(tmp_path / "c.yaml")]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "far above" in ln]
    assert len(lines) == 1 and lines[0].startswith("warning: 1 good image(s) score far above the other 24"), lines


@pytest.mark.parametrize("n", [1, 3])
def test_too_few_good_images_are_refused_in_one_line_unless_allowed(exported_model, tiny_dataset, tmp_path,
                                                                    capsys, n):
    """One good image made a threshold just above it (exit 0, a warning that nothing is known of its false-alarm
    rate) that the line then used. Fewer than 4 (the rule of three's 3/n ≥ 1) are refused in one line with the
    count and what the rate needs; --allow-few-good calibrates anyway, with that warning."""
    import shutil

    from inspector.cli import main

    folder = tmp_path / "few"
    folder.mkdir()
    for path in sorted((tiny_dataset / "test" / "good").glob("*.png"))[:n]:
        shutil.copy(path, folder)
    out = tmp_path / "cal.yaml"
    capsys.readouterr()
    assert main(["calibrate", str(exported_model), "--good-dir", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {folder} (folder): only {n} good image(s)"), err
    assert "fewer than 4" in err[0] and "needs 1000" in err[0] and "--allow-few-good" in err[0], err
    assert not out.exists()
    assert main(["calibrate", str(exported_model), "--good-dir", str(folder), "--out", str(out),
                 "--allow-few-good"]) == 0
    assert f"warning: image: only {n} good image(s): nothing is known" in capsys.readouterr().out


def test_the_highest_good_image_is_ok_at_batch_1_and_at_the_calibration_batch_size(exported_model, new_good,
                                                                                   tmp_path, capsys):
    """ONNX Runtime's kernels differ per batch size: an image's score differs by ~1e-7 between batch 1 and
    batch 8, and the threshold was one float32 step above the highest good score as calibrate batched it,
    so the daemon (any batch size up to max_batch) or predict --batch-size 1 flagged that good image NG.
    Here the highest good image is one that scores higher alone than in calibrate's batch of 8."""
    import shutil

    from inspector.cli import main

    paths = sorted(new_good.glob("*.png"))
    in_batches, alone = _scores(exported_model, paths, 8), _scores(exported_model, paths, 1)
    for top in np.argsort(-alone):  # a good image with 7 lower-scoring ones: calibrate's one batch of 8
        lower = [i for i in np.argsort(in_batches) if in_batches[i] < in_batches[top]][:7]
        if len(lower) < 7:
            continue
        folder = tmp_path / f"good{top}"
        folder.mkdir()
        for rank, i in enumerate([top, *lower]):  # file order is batch order: the top image first
            shutil.copy(paths[i], folder / f"{rank:03d}.png")
        calibrated = _scores(exported_model, sorted(folder.glob("*.png")), 8)
        if _scores(exported_model, [folder / "000.png"], 1)[0] > calibrated.max():
            break
    else:
        pytest.fail("no good image scores higher alone than in a batch of 8 with this ONNX Runtime build")
    cal = tmp_path / "cal.yaml"
    assert main(["calibrate", str(exported_model), "--good-dir", str(folder), "--out", str(cal)]) == 0
    for batch in ("1", "8"):
        capsys.readouterr()
        assert main(["predict", str(exported_model), *map(str, sorted(folder.glob("*.png"))), "--calibration",
                     str(cal), "--batch-size", batch]) == 0
        rows = [line.split("\t") for line in capsys.readouterr().out.strip().splitlines()]
        assert [r[2] for r in rows] == ["OK"] * 8, (batch, rows)


@pytest.mark.parametrize("given", ["run", "checkpoint"])
def test_a_training_run_or_its_checkpoint_is_refused_before_any_work(tiny_dataset, tmp_path_factory, tmp_path,
                                                                     capsys, given):
    """The README's backends error says "expected .onnx, .plan or a training run folder", so a newcomer gave
    calibrate the run: torch scored 40 test/good images, then it failed on the folder's sha256 ("runs/rs-brick:
    Is a directory"); given best.pt it ignored the run's calibration split, said "no validation split recorded",
    and bound the threshold to a checkpoint that predict and the daemon refuse. Now: one line before any work,
    saying to export first, from the CLI and the API."""
    from tiny_models import untrained_run

    from inspector.cli import main
    from inspector.evaluation.calibrate import calibrate

    run = untrained_run("reduced_student", tiny_dataset, tmp_path_factory)
    model = run if given == "run" else run / "best.pt"
    out = tmp_path / "c.yaml"
    assert main(["calibrate", str(model), "--data", str(tiny_dataset), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(model) in err[0] and "inspector export RUN" in err[0], err
    assert not out.exists()
    with pytest.raises(ConfigError, match="export the run first"):
        calibrate(model, tiny_dataset)


# The README walkthrough's 20 calibration-split scores and its 40 test/good scores (a newcomer's session 44,
# trained until the stop rule ended it): the gap rule told the top 2 apart, though new good parts score as high.
WALKTHROUGH_CALIBRATION = [0.466402, 0.345032, 0.174117, 0.171293, 0.162506, 0.161573, 0.156020, 0.143928, 0.142653,
                           0.138783, 0.137112, 0.128219, 0.117455, 0.115432, 0.115177, 0.108407, 0.105833, 0.101959,
                           0.076582, 0.068456]
WALKTHROUGH_TEST_GOOD = [0.496215, 0.351517, 0.281122, 0.245419, 0.229029, 0.211594, 0.208077, 0.206303, 0.193997,
                         0.181421, 0.173764, 0.171347, 0.163899, 0.160094, 0.158173, 0.156931, 0.147133, 0.145760,
                         0.140794, 0.140144, 0.136029, 0.130039, 0.124616, 0.123462, 0.122347, 0.114485, 0.112036,
                         0.107260, 0.105595, 0.102643, 0.101850, 0.099829, 0.099313, 0.088969, 0.088579, 0.088141,
                         0.080769, 0.078115, 0.077487, 0.066735]


def test_a_heavy_tail_of_good_scores_is_judged_with_the_datasets_other_good_parts():
    """On the README's own flow calibrate warned that 2 of its 20 good images were "far above the rest" and
    advised leaving them out: the threshold without them (0.174) flags 10 of the 40 good test parts. Judged
    together with test/good (other good parts, never fitted), they are the tail good parts have; a defective
    part stays apart."""
    from inspector.evaluation.calibrate import apart_from_reference, apart_from_the_rest

    assert apart_from_the_rest(WALKTHROUGH_CALIBRATION)[0] == 2
    assert apart_from_reference(WALKTHROUGH_CALIBRATION, WALKTHROUGH_TEST_GOOD) == (0, 0.0)
    j, ratio = apart_from_reference(WALKTHROUGH_CALIBRATION + [2.9], WALKTHROUGH_TEST_GOOD)  # a hole: 2.9
    assert j == 1 and ratio > 3
    # a defect among test/good is no good image of this calibration's: nothing to name here
    assert apart_from_reference(WALKTHROUGH_CALIBRATION[2:], WALKTHROUGH_TEST_GOOD + [2.9]) == (0, 0.0)


def test_calibrate_with_data_names_no_good_part_test_good_scores_as_high_but_still_a_defect(
        exported_model, tiny_dataset, tmp_path):
    """A folder of good parts holds one the model scores far above the rest (the pool's second highest over its
    23 lowest): alone, the gap rule names it (a false alarm: it is a good part). Given --data whose test/good
    holds the other good parts (the pool's highest among them), calibrate scores those too and names nothing,
    as no test/good part was outscored; a real defect added is still named, above all of them. The parts are
    chosen by the fixture model's own scores, which differ from CPU to CPU (Intel and AMD train it apart)."""
    import shutil

    from inspector.data.synth import synthesize
    from inspector.evaluation.calibrate import calibrate

    for seed in (7, 10, 11, 12):
        synthesize(tmp_path / f"s{seed}", texture="brick", size=64, n_train=24, n_test_good=0, n_test_defect=0,
                   seed=seed)
    pool = sorted(tmp_path.glob("s*/train/good/*.png"))
    order = np.argsort(_scores(exported_model, pool, 8), kind="stable")
    folder, data = tmp_path / "good", tmp_path / "line"  # data: a test/good alone, other good parts of the line
    picked = {int(i) for i in order[:23]} | {int(order[-2])}
    for i, path in enumerate(pool):
        into = folder if i in picked else data / "test" / "good"
        into.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, into / f"{path.parts[-4]}-{path.name}")  # s7-000.png: seeds share file names
    alone = calibrate(exported_model, good_dir=folder)
    assert [w for w in alone.warnings if "far above" in w], alone.warnings
    judged = calibrate(exported_model, data, good_dir=folder)
    assert not [w for w in judged.warnings if "far above" in w], judged.warnings
    assert judged.thresholds.image_threshold == alone.thresholds.image_threshold  # the threshold is unchanged
    defects = sorted(p for p in (tiny_dataset / "test").glob("*/*.png") if p.parent.name != "good")
    worst = defects[int(np.argmax(_scores(exported_model, defects, 8)))]
    shutil.copy(worst, folder / "mislabelled.png")
    (told,) = [w for w in calibrate(exported_model, data, good_dir=folder).warnings if "far above" in w]
    highest = _scores(exported_model, sorted((data / "test" / "good").iterdir()), 8).max()
    said = f"1 good image(s) score far above the other 24 and above all {len(pool) - 24} test/good image(s) (at most "
    assert told.startswith(said), told
    assert float(told[len(said):].split(")")[0]) == pytest.approx(highest, rel=1e-5), (told, highest)
    assert f"{folder / 'mislabelled.png'} (score" in told, told


def test_good_images_told_apart_by_the_gap_alone_are_not_called_defects_without_evidence(exported_model, tmp_path,
                                                                                          capsys):
    """Without other good parts to judge by (--good-dir alone), the gap rule tells healthy sets apart now and
    then (4 of 12 sets of 24 new good parts on this model) and asked "a defective or mislabelled part among the
    good images?" of a good part, advising to leave it out, which flags good parts like it. The warning now
    says what it rests on (the gap alone, no other good parts scored, healthy sets told apart too) and what
    leaving a good part out costs; the threshold and the rule are unchanged."""
    import shutil

    from inspector.cli import main
    from inspector.data.synth import synthesize

    for seed in (7, 10):
        synthesize(tmp_path / f"s{seed}", texture="brick", size=64, n_train=24, n_test_good=0, n_test_defect=0,
                   seed=seed)
    pool = sorted(tmp_path.glob("s*/train/good/*.png"))
    order = np.argsort(_scores(exported_model, pool, 8), kind="stable")
    folder = tmp_path / "good"  # healthy: the pool's 23 lowest and its second highest, by this model's scores
    folder.mkdir()
    for i in [*order[:23], order[-2]]:
        shutil.copy(pool[i], folder / f"{pool[i].parts[-4]}-{pool[i].name}")
    for extra in ([], ["--exclude-outliers"]):
        assert main(["calibrate", str(exported_model), "--good-dir", str(folder), "--out", str(tmp_path / "c.yaml"),
                     *extra]) == 0
        (told,) = [ln for ln in capsys.readouterr().out.splitlines() if "far above" in ln]
        assert told.startswith("warning: 1 good image(s) score far above the other 23: "), told
        assert "That gap is all this rests on: no other good parts were scored to compare them with" in told, told
        assert "healthy sets with a long tail are told apart so too" in told, told
        assert "a defective or mislabelled part among the good images?" not in told, told
        assert ("leaving it out would flag them" if not extra else "the line will flag parts scoring like them") in told


def test_a_dataset_given_as_the_good_image_folder_is_one_line_saying_to_give_it_as_data(exported_model,
                                                                                        tiny_dataset, tmp_path,
                                                                                        capsys, caplog):
    """`calibrate MODEL --good-dir data/brick` (the dataset, not its good images) printed a log warning about its
    sub-folders and then an error saying the same: two lines, neither saying what to give. Now one line, naming
    the dataset's sub-folders and the --data that takes it; a folder of unread formats alone says so too."""
    import logging

    from inspector.cli import main

    out = str(tmp_path / "c.yaml")
    with caplog.at_level(logging.WARNING):
        assert main(["calibrate", str(exported_model), "--good-dir", str(tiny_dataset), "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"give it as --data {tiny_dataset} (or --good-dir {tiny_dataset / 'test' / 'good'})" \
        in err[0], err
    assert "sub-folder(s) holding images are not read" in err[0], err
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records
    gifs = tmp_path / "gifs"
    gifs.mkdir()
    (gifs / "a.gif").write_bytes(b"GIF89a")
    assert main(["calibrate", str(exported_model), "--good-dir", str(gifs), "--out", out]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"error: {gifs}: no images in the good-image folder; 1 file(s) of an image format that is not " \
                   f"read, e.g. a.gif", line
