"""Shared fixtures: paths to the real datasets, the skip rule of the `gpu`/`cuda`/`pycuda` markers.

``INSPECTOR_REQUIRE_MARKERS=genicam,mqtt,browser,rtsp`` (set by .ci/run) turns a skipped test carrying one
of those markers into a failure, so CI cannot pass with the integration tests silently skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("INSPECTOR_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_collection_modifyitems(config, items):
    """Skip gpu/cuda/pycuda tests only where there is no GPU or the package is absent (tests/gpu_guard.py)."""
    from gpu_guard import NEEDS, probe_gpu, skip_reason

    marked = [(item, {m.name for m in item.iter_markers()}) for item in items]
    marked = [(item, names) for item, names in marked if NEEDS.keys() & names]
    if not marked:
        return
    gpu = probe_gpu()
    for item, names in marked:
        reason = skip_reason(names, gpu)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


_REQUIRED_MARKERS = {m.strip() for m in os.environ.get("INSPECTOR_REQUIRE_MARKERS", "").split(",") if m.strip()}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    required = _REQUIRED_MARKERS & {m.name for m in item.iter_markers()}
    if required and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"marked {sorted(required)}, required by INSPECTOR_REQUIRE_MARKERS, but skipped: {reason}"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of ../shared/data (override with INSPECTOR_SHARED_DATA)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def kolektor(shared_data) -> Path:
    path = shared_data / "kolektorsdd"
    if not path.is_dir():
        pytest.skip(f"{path} missing")
    return path


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A small synthetic MVTec-layout dataset (real brick texture, injected defects)."""
    from inspector.data.synth import synthesize

    root = tmp_path_factory.mktemp("data") / "brick"
    synthesize(root, texture="brick", size=64, n_train=12, n_test_good=4, n_test_defect=6, seed=0)
    return root


@pytest.fixture(scope="session")
def trained_run(tiny_dataset, tmp_path_factory) -> Path:
    """A really trained (2 epochs, 64×64) offline reduced student run folder."""
    from inspector.training.config import load_run_config
    from inspector.training.loop import train

    run_dir = tmp_path_factory.mktemp("runs") / "rs"
    config = load_run_config(base={
        "model": {"name": "reduced_student", "image_size": [64, 64], "smoothing_sigma": 1.0},
        "data": {"path": str(tiny_dataset)},
        "train": {"epochs": 2, "batch_size": 4},
    })
    train(config, run_dir)
    return run_dir


@pytest.fixture(scope="session")
def exported_model(trained_run, tmp_path_factory) -> Path:
    """The trained run exported: returns the FP32 ONNX path (FP16 graph and sidecar beside it)."""
    from inspector.deploy import export_run

    out_base = tmp_path_factory.mktemp("export") / "rs"
    result = export_run(trained_run, out_base)
    return Path(result["fp32"])
