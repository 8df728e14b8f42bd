"""The quality benchmark: its kNN reference and one --quick run end to end (tiny synthetic data)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_quality  # noqa: E402
from knn_reference import greedy_coreset  # noqa: E402
from inspector.models.base import OFFLINE_TEACHER  # noqa: E402


def test_greedy_coreset_takes_the_farthest_point_each_step():
    points = torch.tensor([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [0.0, 5.0], [9.9, 0.1]])
    chosen = greedy_coreset(points, 3).tolist()
    assert chosen == [0, 2, 3]  # 0 first, then the farthest from {0}, then the farthest from {0, 2}


@pytest.mark.parametrize("teacher", [None, "efficientnet_lite2"])
def test_quick_run_writes_every_model_and_the_reference(tiny_dataset, tmp_path, teacher):
    chosen = ["--teacher", teacher] if teacher else []
    path = bench_quality.main(["--quick", "--datasets", tiny_dataset.name, "--data-root", str(tiny_dataset.parent),
                               "--models", "reduced_student", "--out", str(tmp_path),
                               "--run-root", str(tmp_path / "runs"), *chosen])
    entry = json.loads(Path(path).read_text())["datasets"][0]
    assert entry["dataset"] == tiny_dataset.name
    rows = {r["model"]: r for r in entry["results"]}
    assert set(rows) == {"knn_reference", "reduced_student"}
    knn = rows["knn_reference"]
    assert knn["image_size"] == list(bench_quality.QUICK_SIZE)
    assert knn["metrics"]["image_auroc"] >= 0.75  # pretrained features find the pasted defects
    rs = rows["reduced_student"]
    # the student's teacher and the reference's backbone are one (the offline default unless chosen)
    assert knn["reference"]["backbone"] == rs["teacher"] == (teacher or OFFLINE_TEACHER)
    assert rs["train"]["epochs"] == [1] and "epochs" in rs["train"]["stop_reason"]  # --epochs 1 forced
    assert set(rs["level_image_auroc"]) == {"blocks.2", "blocks.4", "blocks.6"}  # offline: strides 8, 16, 32
    for value in [*rs["level_image_auroc"].values(), rs["metrics"]["image_auroc"], rs["metrics"]["pixel_auroc"]]:
        assert 0.0 <= value <= 1.0
    # the student against the reference on the same test images (no likely_defect in the tiny set)
    gap = rs["vs_knn"]["difference"]
    assert gap == round(rs["metrics"]["image_auroc"] - knn["metrics"]["image_auroc"], 4)
    assert rs["vs_knn"]["ci95"][0] <= gap <= rs["vs_knn"]["ci95"][1]


def test_the_paired_bootstrap_brackets_the_difference_and_pairs_the_draws():
    rng = np.random.default_rng(1)
    labels = np.r_[np.zeros(60), np.ones(90)].astype(int)
    test = {"labels": labels, "types": ["good"] * 60 + ["crack"] * 85 + [bench_quality.LIKELY] * 5}
    noise = rng.normal(size=labels.size)
    sharp, blurred = labels * 1.5 + noise, labels * 0.5 + noise
    # one model against itself: every paired draw differs by exactly 0 (unpaired draws would not)
    same = bench_quality.paired_bootstrap(sharp, sharp, test, rounds=200)
    assert same["difference"] == 0 and same["ci95"] == [0, 0] and same["share_above_zero"] == 1
    gap = bench_quality.paired_bootstrap(sharp, blurred, test, rounds=200)
    keep = np.array(test["types"]) != bench_quality.LIKELY
    from inspector.evaluation.metrics import auroc

    measured = auroc(sharp[keep], labels[keep]) - auroc(blurred[keep], labels[keep])
    assert gap["difference"] == round(measured, 4) > 0
    assert 0 < gap["ci95"][0] < measured < gap["ci95"][1] and gap["share_above_zero"] == 1
