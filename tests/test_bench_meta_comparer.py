"""The meta-comparer benchmark, one --quick fold end to end on the real domains (leather held out)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_meta_comparer  # noqa: E402

pytestmark = pytest.mark.slow  # reads every real domain (a few images each): ~5-13 s


def test_quick_fold_records_both_methods_per_k_its_step_budget_and_the_figure(shared_data, tmp_path):
    if not all((shared_data / name).is_dir() for name in bench_meta_comparer.REAL):
        pytest.skip(f"the real domains {bench_meta_comparer.REAL} are not all under {shared_data}")
    path = bench_meta_comparer.main(["--quick", "--held-out", "mvtec_leather_subset", "--domain-images", "6",
                                     "--data-root", str(shared_data), "--out", str(tmp_path)])
    result = json.loads(Path(path).read_text())
    fold = result["folds"][0]
    assert result["complete"] and fold["held_out"] == "mvtec_leather_subset" and fold["n_train_good"] == 4
    # the held-out domain is never a source; the budget is steps (1 epoch x steps_per_epoch), not wall time
    assert len(fold["train"]["sources"]) == 6 and not any("leather" in s for s in fold["train"]["sources"])
    assert fold["train"]["steps"] == result["settings"]["step_budget"] == 40 and fold["train"]["budget_reached"]
    # K = 5 and 20 exceed the 4 good training images: the whole pool, once
    assert [r["k"] for r in fold["results"]] == [1, 4]
    for row in fold["results"]:
        for method in ("meta_comparer", "knn_reference"):
            metrics = row[method]
            assert 0 <= metrics["image_auroc"] <= 1 and 0 <= metrics["pixel_auroc"] <= 1  # leather has masks
            assert metrics["n_good"] + metrics["n_defect"] == fold["n_test"]
    assert (tmp_path / result["figure"]).stat().st_size > 0
