"""Frames shaped unlike the images a model was trained on (inspector.artifacts.frame_shapes): train records the
good images' sizes in the card; predict and calibrate tell each folder of images unlike them, once.

A camera whose frames had another aspect ratio or a far other size than the training images was resized like any,
its parts squashed or shrunk, and its scores were meaningless without a word. Real files through OpenCV, the real
trained and exported model (the daemon's side: tests/pipeline/test_frame_shapes_told.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.artifacts.frame_shapes import frame_shapes, image_size_range, unlike_training
from inspector.artifacts.model_card import CardImageSizes, parse_model_card, sidecar_path_for
from inspector.cli import main
from inspector.errors import ExportError

TOLD = "unlike the model's training images"


def _images(folder: Path, n: int, height: int, width: int, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        assert cv2.imwrite(str(folder / f"{i:03d}.png"), rng.integers(100, 140, (height, width, 3), np.uint8))
    return folder


def _told(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if TOLD in r.getMessage()]


def test_train_records_the_good_images_sizes_and_export_puts_them_in_the_card(exported_model):
    card = json.loads(sidecar_path_for(exported_model).read_text())
    assert card["training"]["data"]["image_sizes"] == {"min_width": 64, "max_width": 64, "min_height": 64,
                                                       "max_height": 64, "min_aspect": 1.0, "max_aspect": 1.0}
    assert parse_model_card(card, "card").training.data.image_sizes == CardImageSizes(64, 64, 64, 64, 1.0, 1.0)


def test_tiles_of_several_sizes_record_their_range_not_one_size(tmp_path):
    # a dataset of tiles cut at several sizes and aspects: the range of all of them, so none is told later
    from inspector.training.config import load_run_config
    from inspector.training.loop import load_training_images

    good = tmp_path / "part" / "train" / "good"
    good.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(32, 32), (40, 60), (48, 36), (32, 32), (32, 32)] * 2):
        assert cv2.imwrite(str(good / f"{i:03d}.png"), rng.integers(100, 140, (h, w, 3), np.uint8))
    config = load_run_config(base={"model": {"name": "reduced_student", "image_size": [32, 32]},
                                   "data": {"path": str(tmp_path / "part")}})
    _, _, summary = load_training_images(config)
    sizes = summary["image_sizes"]
    assert sizes == {"min_width": 32, "max_width": 60, "min_height": 32, "max_height": 48,
                     "min_aspect": 0.75, "max_aspect": 1.5}, sizes
    ranged = CardImageSizes(**sizes)
    assert unlike_training(ranged, 36, 48) is None and unlike_training(ranged, 40, 60) is None  # both trained on
    assert unlike_training(ranged, 32, 64) == "aspect ratio 2.00"


def test_ranges_round_outwards_so_the_training_images_stay_inside():
    sizes = image_size_range([(3, 1), (3, 2)])  # 0.3333…, 0.6666…
    assert sizes["min_aspect"] <= 1 / 3 and sizes["max_aspect"] >= 2 / 3 and image_size_range([]) is None


@pytest.mark.parametrize("height, width, why", [
    (64, 64, None), (64, 70, None),  # 1.09: inside the 10 % tolerance
    (64, 72, "aspect ratio 1.12"), (64, 114, "aspect ratio 1.78"), (72, 64, "aspect ratio 0.89"),
    (128, 128, None), (129, 129, "size"), (32, 32, None), (31, 31, "size"),
    (2160, 3840, "aspect ratio 1.78 and size"),
])
def test_the_documented_tolerances(height, width, why):
    assert unlike_training(CardImageSizes(64, 64, 64, 64, 1.0, 1.0), height, width) == why


def test_a_card_from_before_the_sizes_loads_and_checks_nothing(exported_model):
    card = json.loads(sidecar_path_for(exported_model).read_text())
    del card["training"]["data"]["image_sizes"]
    parse_model_card(card, "old.json")
    assert frame_shapes(card, "old.json", retell=False) is None and frame_shapes({}, "none", retell=True) is None
    card["training"]["data"]["image_sizes"] = {"min_width": 9, "max_width": 8, "min_height": 1, "max_height": 1,
                                               "min_aspect": 1.0, "max_aspect": 1.0}
    with pytest.raises(ExportError, match=r"bad.json.*min_width: 9 is above max_width 8"):
        frame_shapes(card, "bad.json", retell=False)


def test_predict_tells_each_folder_of_wide_images_once_naming_it_the_size_and_the_range(exported_model, tmp_path,
                                                                                       capsys, caplog):
    wide = _images(tmp_path / "wide", 3, 64, 120)
    square = _images(tmp_path / "square", 2, 64, 64)
    with caplog.at_level(logging.WARNING):
        assert main(["predict", str(exported_model), str(wide), str(square)]) == 0
    told = _told(caplog)
    assert len(told) == 1, told
    assert told[0].startswith(f"{wide}: frames of 120x64 px (aspect ratio 1.88 {TOLD}: 64x64 px, aspect ratio 1.00)")
    # one line that says what to do, not only what is wrong
    assert told[0].endswith("; give frames like the training images (crop or scale them: a camera's region of "
                            "interest or resolution), or train on frames like these"), told
    assert len(capsys.readouterr().out.splitlines()) == 5  # every image still scored


def test_calibrate_tells_a_good_folder_of_4k_frames_once_and_keeps_it_in_the_file(exported_model, tmp_path, caplog):
    from inspector.evaluation.calibrate import calibrate

    big = _images(tmp_path / "big", 10, 270, 480)  # 16:9 and far larger than the 64-px training images
    with caplog.at_level(logging.WARNING):
        result = calibrate(exported_model, good_dir=big, false_alarm_rate=0.2)
    told = _told(caplog)
    assert len(told) == 1 and told[0].startswith(f"{big}: frames of 480x270 px (aspect ratio 1.78 and size"), told
    # the file's warnings are what a later reader of the threshold sees: the log is gone by then
    assert told[0] in result.thresholds.data.warnings
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        result = calibrate(exported_model, good_dir=_images(tmp_path / "like", 10, 64, 64), false_alarm_rate=0.2)
    assert not _told(caplog)
    assert not [w for w in result.thresholds.data.warnings or () if TOLD in w]
