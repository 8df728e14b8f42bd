"""``train --data`` naming a folder of a dataset that holds no good images (a defect folder, the masks) is refused in
one line naming the dataset to pass, before any training.

A newcomer's ``train --data data/brick/test/hole`` trained on the defects as the normal look of the part without a
word, and ``--data data/brick/ground_truth/hole`` on the masks with a warning only: both are folders of images, so
they were read as a plain folder of good images. Real folders, real PNGs through OpenCV."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inspector.cli import main


def _dataset(root, good="good", bad="crack"):
    for folder, value in ((f"train/{good}", 120), (f"test/{good}", 120), (f"test/{bad}", 20)):
        (root / folder).mkdir(parents=True)
        for i in range(3):
            assert cv2.imwrite(str(root / folder / f"{i:03d}.png"), np.full((32, 32, 3), value + i, np.uint8))
    (root / "ground_truth" / bad).mkdir(parents=True)
    for i in range(3):
        assert cv2.imwrite(str(root / "ground_truth" / bad / f"{i:03d}_mask.png"), np.full((32, 32), 255, np.uint8))
    return root


@pytest.mark.parametrize("layout", ["mvtec", "btad"])
@pytest.mark.parametrize("inner, said", [("test/{bad}", "the defective images ({bad}) of the dataset"),
                                         ("ground_truth/{bad}", "the ground-truth masks of the dataset")])
def test_a_folder_of_defects_or_masks_is_not_trained_on(layout, inner, said, tmp_path, monkeypatch, capsys):
    good, bad = ("good", "crack") if layout == "mvtec" else ("ok", "ko")
    _dataset(tmp_path / "data" / "part", good, bad)
    monkeypatch.chdir(tmp_path)
    folder = "data/part/" + inner.format(bad=bad)
    assert main(["train", "--data", folder, "--out", "runs/x", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {folder}: {said.format(bad=bad)} data/part, no good images; "
                                               f"pass data/part"), err
    assert not (tmp_path / "runs").exists()


def test_its_good_folders_stay_trainable_folders_of_good_images(tmp_path):
    from inspector.data.datasets import not_good_images_problem

    root = _dataset(tmp_path / "part")
    for folder in ("train/good", "test/good", "", "train"):
        assert not_good_images_problem(root / folder) is None, folder
