"""Plots and overlays are written as real, non-empty PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inspector.data.datasets import Sample
from inspector.data.images import read_image
from inspector.evaluation.metrics import roc_curve
from inspector.evaluation.plots import plot_roc, plot_score_histogram, save_overlays

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path, min_size: int = 1000) -> bool:
    return path.is_file() and path.stat().st_size > min_size and path.read_bytes()[:8] == PNG


def test_roc_and_histogram(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(30), np.ones(20)].astype(int)
    scores = rng.random(50) + labels * 0.5
    fpr, tpr, _ = roc_curve(scores, labels)
    path = plot_roc({"image": (fpr, tpr, 0.9), "other": (fpr, tpr, None)}, tmp_path / "sub" / "roc.png")
    assert path == tmp_path / "sub" / "roc.png" and _is_png(path)
    path = plot_score_histogram(scores, labels, tmp_path / "hist.png", threshold=0.7)
    assert _is_png(path)
    assert _is_png(plot_score_histogram(scores, labels, tmp_path / "hist2.png"))


def test_save_overlays_picks_the_worst_cases(tmp_path):
    rng = np.random.default_rng(1)
    n = 10
    images = rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)
    maps = rng.random((n, 16, 16)).astype(np.float32)
    scores = np.arange(n, dtype=float) / 10
    samples = [Sample(Path(f"/x/{i:03d}.png"), int(i % 2), "cut" if i % 2 else "good", None) for i in range(n)]
    paths = save_overlays(images, maps, scores, samples, tmp_path / "ov", k=2)
    names = [p.name for p in paths]
    assert len(paths) == 5 and all(_is_png(p, 100) for p in paths)
    assert names[0].startswith("missed_00_score0.1_cut_001")  # lowest-scored defect
    assert names[2].startswith("false_alarm_00_score0.8_good_008")  # highest-scored good
    assert names[4].startswith("top_defect_00_score0.9_cut_009")
    panel = read_image(paths[0])
    assert panel.shape[1] == 64 and panel.shape[0] > 32  # image | overlay, with a caption band
