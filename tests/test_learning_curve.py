"""The learning-curve benchmark: its synthetic-defect proxy, and one tiny run end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import learning_curve  # noqa: E402


def test_synthetic_defects_draw_one_defect_inside_a_square_crop_of_a_non_square_image():
    rng = np.random.default_rng(0)
    images = rng.integers(90, 110, size=(6, 96, 40, 3), dtype=np.uint8)  # portrait, like KolektorSDD's input
    out = learning_curve.synthetic_defects(images, seed=0)
    assert out.shape == images.shape and out.dtype == np.uint8
    changed = (out != images).any(axis=3)
    for img_changed in changed:
        rows = np.flatnonzero(img_changed.any(axis=1))
        assert rows.size > 0  # every copy has a defect
        assert rows.max() - rows.min() < 40  # within one 40×40 crop (the generator's square canvas)
    assert (learning_curve.synthetic_defects(images, seed=0) == out).all()  # seeded


def test_curve_scores_every_nth_epoch_of_one_run(tiny_dataset, tmp_path):
    path = learning_curve.main(["--datasets", tiny_dataset.name, "--data-root", str(tiny_dataset.parent),
                                "--epochs", "4", "--every", "2", "--set", "model.image_size=[64,64]",
                                "--set", "train.batch_size=4", "--run-root", str(tmp_path / "runs"),
                                "--out", str(tmp_path), "--name", "t"])
    entry = json.loads(Path(path).read_text())["datasets"][0]
    assert [p["epoch"] for p in entry["points"]] == [2, 4]
    assert entry["phases"][0]["epochs_run"] == 4  # the probe does not change the run
    # every epoch's losses, the seen loss among them: the generalisation gap along the curve
    assert [r["epoch"] for r in entry["history"]] == [1, 2, 3, 4]
    assert all(r["seen_loss"] > 0 and r["val_loss"] > 0 for r in entry["history"])
    for point in entry["points"]:
        assert set(point["level_image_auroc"]) == {"blocks.2", "blocks.4", "blocks.6"}
        for value in (point["image_auroc"], point["synthetic_val_auroc"], *point["level_image_auroc"].values()):
            assert 0.0 <= value <= 1.0
    assert entry["image_size"] == [64, 64]
