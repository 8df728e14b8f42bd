"""Score-distribution and per-level diagnostics of `inspector evaluate`."""

import json

import numpy as np
import pytest

from inspector.cli import main
from inspector.evaluation.diagnostics import (
    format_diagnostics,
    level_aurocs,
    level_peaks,
    score_distribution,
)
from inspector.evaluation.evaluate import diagnostics
from inspector.evaluation.reports import diagnostics_section
from inspector.training.checkpoint import load_model


def test_stats_and_overlap_of_known_scores():
    good = np.arange(100, dtype=float)  # p5 4.95, p50 49.5, p95 94.05, max 99
    defect = np.array([10, 50, 94, 95, 200], dtype=float)  # p5 = 10 + 0.2·40 = 18
    dist = score_distribution(np.r_[good, defect], np.r_[np.zeros(100), np.ones(5)])
    g = dist["good"]
    assert (g["count"], g["mean"], g["min"], g["max"]) == (100, 49.5, 0.0, 99.0)
    assert (g["p5"], g["p50"], g["p95"]) == pytest.approx((4.95, 49.5, 94.05))
    assert dist["defect"]["count"] == 5 and dist["defect"]["max"] == 200.0
    ov = dist["overlap"]
    assert ov["defect_below_good_p95"] == pytest.approx(3 / 5)  # 10, 50, 94
    assert ov["defect_below_good_max"] == pytest.approx(4 / 5)  # and 95
    assert ov["good_above_defect_p5"] == pytest.approx(81 / 100)  # 19 … 99


def test_separation_is_cohens_d():
    ov = score_distribution([0.0, 2.0, 4.0, 6.0], [0, 0, 1, 1])["overlap"]
    assert ov["separation"] == pytest.approx(4.0)  # means 1 and 5, both stds 1
    assert score_distribution([3.0, 1.0], [0, 1])["overlap"]["separation"] is None  # no spread: undefined


def test_no_defective_images_still_gives_the_good_spread():
    dist = score_distribution([0.1, 0.2, 0.4], [0, 0, 0])
    assert dist["defect"] is None and dist["overlap"] is None
    assert dist["good"]["count"] == 3 and dist["good"]["max"] == 0.4
    text = format_diagnostics({"score_distribution": dist})
    assert "good" in text and "no defective test images" in text
    assert "Score distribution" in diagnostics_section({"score_distribution": dist}).title


def test_level_aurocs_say_which_level_separates():
    labels = np.array([0, 0, 1, 1])
    peaks = level_peaks(lambda batch: {"s4": -batch[:, 0], "s16": batch[:, 0]}, np.array([[1], [2], [3], [4]]),
                        batch_size=3)
    assert level_aurocs(peaks, labels) == {"s4": 0.0, "s16": 1.0}
    assert level_aurocs(peaks, np.zeros(4)) == {"s4": None, "s16": None}
    out = diagnostics(np.array([1.0, 2, 3, 4]), labels, np.zeros((4, 1)), None, 8)
    assert out["per_level"] is None and out["score_distribution"]["defect"]["count"] == 2


def test_evaluate_reports_distribution_and_levels(trained_run, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["evaluate", str(trained_run), "--data", str(tiny_dataset), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    dist = metrics["score_distribution"]
    assert (dist["good"]["count"], dist["defect"]["count"]) == (metrics["n_good"], metrics["n_defect"]) == (4, 6)
    scores = np.load(out / "scores.npz")
    assert dist["defect"]["max"] == pytest.approx(scores["scores"][scores["labels"] == 1].max())
    levels = metrics["per_level"]
    model, _, _ = load_model(trained_run)
    assert list(levels) == list(model.level_names) and len(levels) >= 2  # one entry per level map
    assert all(0.0 <= v <= 1.0 for v in levels.values())
    assert "overlap:" in printed and "image AUROC per level" in printed
    html = (out / "report.html").read_text()
    assert "Score distribution" in html and "Cohen" in html and model.level_names[-1] in html


def test_per_level_can_be_skipped(trained_run, tiny_dataset, tmp_path):
    out = tmp_path / "ev"
    assert main(["evaluate", str(trained_run), "--data", str(tiny_dataset), "--out", str(out),
                 "--no-plots", "--no-per-level"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["per_level"] is None and metrics["score_distribution"]["defect"]["count"] == 6
