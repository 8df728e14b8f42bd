"""metrics.json (inspector evaluate), the ``inspector bench --json`` file and the benchmark results
(benchmarks/_common.py) go through the one sanitiser, inspector.config.json_safe: a NaN or infinity
reads the same (null) in each, and each file is strict JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from inspector.config import json_safe
from inspector.evaluation.bench import write_results
from inspector.evaluation.evaluate import write_metrics

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _common  # noqa: E402

PAYLOAD = {"image_auroc": float("nan"), "fps": np.float32("inf"), "latency_ms": np.array([1.5, -np.inf]),
           "n_images": np.int64(3), "per_defect_type": {"crack": {"pixel_auroc": np.float64("nan")}}}
EXPECTED = {"image_auroc": None, "fps": None, "latency_ms": [1.5, None], "n_images": 3,
            "per_defect_type": {"crack": {"pixel_auroc": None}}}


def _strict(path: Path) -> dict:
    def refuse(constant):
        raise AssertionError(f"{path.name}: non-standard JSON constant {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_every_report_writes_non_finite_values_as_null(tmp_path):
    assert json_safe(PAYLOAD) == EXPECTED
    written = {
        "metrics.json": _strict(write_metrics(tmp_path / "eval", PAYLOAD)),
        "bench --json": _strict(write_results(tmp_path / "bench.json", PAYLOAD)),
        "benchmark result": _strict(_common.write_result("nan_check", PAYLOAD, tmp_path / "results")),
    }
    for name, data in written.items():
        assert {k: data[k] for k in EXPECTED} == EXPECTED, name
    assert written["benchmark result"]["benchmark"] == "nan_check"  # the suite's own fields are kept
