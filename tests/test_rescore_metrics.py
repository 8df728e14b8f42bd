"""The metric rescoring benchmark: its trained metric and combination reproduce the model's own scores."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_quality  # noqa: E402
import rescore_metrics  # noqa: E402


def test_the_trained_metric_summed_reproduces_the_run_s_own_image_scores(trained_run, tiny_dataset):
    rows, test, own, config = rescore_metrics.rescore_run(trained_run, tiny_dataset)
    from inspector.training.checkpoint import load_model

    model = load_model(trained_run)[0].eval()
    product, _, _ = bench_quality.score_with_levels(model, test["images"])
    # the same maps, normalisation refitted on the same validation images: the scores agree, not only the AUROC
    np.testing.assert_allclose(own, product, rtol=1e-4, atol=1e-6)
    assert rows["std"]["sum"] == rescore_metrics.image_auroc(product, test)
    assert set(rows) == set(rescore_metrics.METRICS)
    assert all(set(r) == set(rescore_metrics.COMBINATIONS) and all(0 <= v <= 1 for v in r.values())
               for r in rows.values())


def test_raw_and_cosine_metrics_measure_the_de_standardised_student():
    from inspector.models.common import FeatureStandardization

    standardize = FeatureStandardization([2])
    standardize.mean0.fill_(3.0)
    standardize.inv_std0.fill_(0.5)
    model = type("M", (), {"standardize": standardize})()
    teacher = [torch.tensor([[[[5.0]], [[1.0]]]])]  # standardised: (1, -1)
    student = [torch.tensor([[[[1.0]], [[1.0]]]])]  # de-standardised: (5, 5)
    std = rescore_metrics.residual_maps(model, "std", teacher, student)
    raw = rescore_metrics.residual_maps(model, "raw", teacher, student)
    cos = rescore_metrics.residual_maps(model, "cos", teacher, student)
    assert std[0].item() == pytest.approx((0 ** 2 + 2 ** 2) / 2)
    assert raw[0].item() == pytest.approx((0 ** 2 + 4 ** 2) / 2)
    assert cos[0].item() == pytest.approx(1 - (25 + 5) / (np.sqrt(26) * np.sqrt(50)))
    assert len(rescore_metrics.residual_maps(model, "std+cos", teacher, student)) == 2


def test_z_sum_standardises_by_the_validation_scores_in_the_same_units(trained_run, tiny_dataset):
    from inspector.training.checkpoint import load_model

    model, config, _ = load_model(trained_run)
    model.eval()
    val = rescore_metrics.features(model, rescore_metrics.validation_images(config, tiny_dataset))
    size = tuple(config.model.image_size)
    for metric in rescore_metrics.METRICS:
        # scored against themselves, the validation images' z-scores are centred: mean 0 per level, so 0 summed
        z = rescore_metrics.metric_scores(model, metric, val, val, size, positional=True)["z-sum"]
        assert abs(float(np.mean(z))) < 1e-4, metric

