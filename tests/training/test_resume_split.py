"""--resume keeps the split the run recorded, by content: a folder that gained, lost or renamed images drew
another seeded split, so images the student had trained on were validated on and the best loss carried over
was measured on other images (inspector.data.recorded_split)."""

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.cli import main
from inspector.data.datasets import Sample
from inspector.data.recorded_split import recorded_split
from inspector.errors import DataError

SETTINGS = ["--set", "model.image_size=[32,32]", "--set", "train.batch_size=4"]


def _write_good(good: Path, names: list[str], seed: int) -> None:
    good.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        cv2.imwrite(str(good / name), rng.integers(0, 255, (32, 32, 3), np.uint8))


def _data_summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())["data"]


def test_a_resume_after_images_were_added_and_renamed_validates_on_the_same_images(tmp_path, caplog):
    good = tmp_path / "part" / "train" / "good"
    _write_good(good, [f"{i:02d}.png" for i in range(10)], seed=0)
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "part"), "--out", str(run), "--epochs", "1", *SETTINGS]) == 0
    first = _data_summary(run)
    for path in sorted(good.iterdir()):  # renamed: the seeded draw over sorted names changes with the names
        path.rename(good / f"z{path.name}")
    _write_good(good, [f"new{i}.png" for i in range(6)], seed=1)
    with caplog.at_level(logging.WARNING):
        assert main(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 0
    second = _data_summary(run)
    assert sorted(second["val_sha256"]) == sorted(first["val_sha256"])
    assert sorted(second["train_sha256"]) == sorted(first["train_sha256"])
    told = [r.getMessage() for r in caplog.records if "were not in the run being resumed" in r.getMessage()]
    assert len(told) == 1 and told[0].startswith("6 good image(s)"), told


def _samples(tmp_path: Path, n: int) -> tuple[list[Sample], dict[Path, str]]:
    samples = [Sample(tmp_path / f"{i}.png", 0, "good") for i in range(n)]
    return samples, {s.path: f"d{i % 8}" for i, s in enumerate(samples)}  # 8 contents: 0..n-9 have copies


def test_each_image_goes_back_to_its_part_and_copies_count_as_often_as_the_run_had_them(tmp_path, caplog):
    samples, digests = _samples(tmp_path, 10)  # d0 and d1 twice
    recorded = {"train_sha256": ["d0", "d2", "d3", "d4", "d5"], "val_sha256": ["d1", "d6"],
                "calibration_sha256": ["d7"]}
    with caplog.at_level(logging.WARNING):
        split = recorded_split(samples, digests, recorded, min_train=2)
    assert [digests[s.path] for s in split.train] == ["d0", "d2", "d3", "d4", "d5"]
    assert sorted(digests[s.path] for s in split.val) == ["d1", "d6"]
    assert [digests[s.path] for s in split.calibration] == ["d7"]
    assert ["2 good image(s)" in r.getMessage() for r in caplog.records] == [True]  # the 2nd d0 and d1: unknown


def test_images_of_the_run_that_are_gone_are_counted_per_part(tmp_path, caplog):
    samples, digests = _samples(tmp_path, 6)
    recorded = {"train_sha256": ["d0", "d1", "d2", "d3", "x"], "val_sha256": ["d4", "d5", "y", "z"]}
    with caplog.at_level(logging.WARNING):
        split = recorded_split(samples, digests, recorded, min_train=2)
    assert len(split.train) == 4 and len(split.val) == 2
    assert [r.getMessage().split(" image(s)")[0] for r in caplog.records] == ["1 train, 2 validation"]


@pytest.mark.parametrize("recorded, expected", [
    ({"train_sha256": ["d0", "d1", "d2"], "val_sha256": ["gone"]}, "none of the 1 validation image(s)"),
    ({"train_sha256": ["d0", "g1", "g2"], "val_sha256": ["d3"]}, "1 of the 3 training images"),
])
def test_a_run_whose_parts_are_gone_is_refused_in_one_line(tmp_path, recorded, expected):
    samples, digests = _samples(tmp_path, 4)
    with pytest.raises(DataError) as caught:
        recorded_split(samples, digests, recorded, min_train=2)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("recorded", [None, {}, {"n_train": 8, "val_files": ["a.png"]}])
def test_a_run_that_recorded_no_digests_draws_the_seeded_split(tmp_path, recorded):
    samples, digests = _samples(tmp_path, 6)
    assert recorded_split(samples, digests, recorded, min_train=2) is None
