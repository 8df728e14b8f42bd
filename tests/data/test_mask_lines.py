"""Defect images without a mask are told once, in one line, by one rule (DESIGN "Errors"; README "Data").

Faults: ``calibrate --use-defects`` read its dataset twice (good images, then defects) and logged "N defect
image(s) without a ground-truth mask" twice; a ground_truth folder with no folder for a type (``cracks`` for
``test/crack``) told the same images in a warning and again in that INFO line; and a masks folder under another
name (``groundtruth``, ``ground-truth``, ``GT``, ``Masks``) was never named at all, only the INFO line, so the
user could not tell why pixel metrics were empty."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from inspector.cli import main
from inspector.data.datasets import load_dataset
from inspector.data.synth import synthesize
from tiny_graphs import write_exported


def _img(path, value=128, shape=(16, 16, 3)):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full(shape, value, np.uint8))


def _part(root, truth: str | None, types=("crack", "hole")):
    """An MVTec tree with one image per defect type and, when ``truth``, their masks in the folder ``truth``."""
    _img(root / "train" / "good" / "0.png")
    _img(root / "test" / "good" / "0.png")
    for kind in types:
        _img(root / "test" / kind / "000.png")
        if truth:
            _img(root / truth / kind / "000_mask.png", 255, (16, 16))
    return root


def _about_masks(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "inspector.data.datasets" and r.levelno >= logging.INFO
            and "mask" in r.getMessage()]


@pytest.mark.parametrize("name", ["groundtruth", "ground-truth", "GT", "Masks", "gt_masks_v2"])
def test_a_misnamed_masks_folder_is_named_in_one_line(name, tmp_path, caplog):
    """``gt_masks_v2`` is no name of the list: it holds folders named like the defect types."""
    root = _part(tmp_path / "part", name)
    with caplog.at_level(logging.INFO):
        for _ in range(2):  # a command reads its dataset more than once
            assert all(s.mask_path is None for s in load_dataset(root).test if s.label)
    told = _about_masks(caplog)
    assert told == [f"{root / name}: not read (masks are read from ground_truth/<defect type>): rename it "
                    "ground_truth; 2 defect image(s) without a ground-truth mask (pixel metrics skip them)"], told
    assert caplog.records[-1].levelno == logging.WARNING


def test_a_folder_of_other_files_is_not_taken_for_masks(tmp_path, caplog):
    root = _part(tmp_path / "part", None)
    (root / "labels").mkdir()
    (root / "labels" / "notes.csv").write_text("a,b\n")
    with caplog.at_level(logging.INFO):
        load_dataset(root)
    assert _about_masks(caplog) == [f"{root}: 2 defect image(s) without a ground-truth mask (pixel metrics skip "
                                    "them)"]


@pytest.mark.parametrize("name", ["cracks", "crack-masks", "crack_gt"])
def test_a_misnamed_type_folder_in_ground_truth_is_told_in_one_line(name, tmp_path, caplog):
    """ground_truth/cracks for test/crack: "no folder for defect type crack", "1 mask folder(s) name no
    test/<defect type> ..., e.g. cracks" and the INFO count all told the one finding."""
    root = _part(tmp_path / "part", "ground_truth")
    (root / "ground_truth" / "crack").rename(root / "ground_truth" / name)
    with caplog.at_level(logging.INFO):
        for _ in range(2):
            load_dataset(root)
    told = _about_masks(caplog)
    assert told == [f"{root / 'ground_truth'}: no folder for defect type(s) crack: their 1 image(s) have no mask "
                    f"(pixel metrics skip them), e.g. {root / 'test' / 'crack' / '000.png'}; the folder holds "
                    f"{', '.join(sorted([name, 'hole']))} ({name}: naming no test/<defect type>, not read)"], told


def test_calibrate_tells_unmasked_images_once(tmp_path, caplog, capsys):
    """The line counted in what the command logs: calibrate --use-defects reads its dataset twice."""
    data = tmp_path / "brick"
    synthesize(data, texture="brick", size=32, n_train=6, n_test_good=4, n_test_defect=4, seed=0)
    (data / "ground_truth").rename(data / "old_masks")  # nothing beside test/ looks like masks: the INFO line
    for kind in ("crack", "hole", "scratch", "stain"):
        (data / "old_masks" / kind).rename(data / "old_masks" / f"{kind}-v1")
    model = write_exported(tmp_path / "m")
    with caplog.at_level(logging.INFO):
        assert main(["calibrate", str(model), "--data", str(data), "--use-defects", "--out",
                     str(tmp_path / "c.yaml")]) == 0
    told = [m for m in _about_masks(caplog) if "without a ground-truth mask" in m]
    assert told == [f"{data}: 4 defect image(s) without a ground-truth mask (pixel metrics skip them)"], told
