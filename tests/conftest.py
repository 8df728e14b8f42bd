"""Shared fixtures: paths to the real datasets, the `gpu` marker's skip rule."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("INSPECTOR_SHARED_DATA", REPO.parent / "shared" / "data"))


def _has_gpu() -> bool:
    try:
        from cuda.bindings import runtime  # noqa: F401
        import tensorrt  # noqa: F401
    except Exception:
        return False
    err, count = runtime.cudaGetDeviceCount()
    return int(err) == 0 and count > 0


def pytest_collection_modifyitems(config, items):
    if _has_gpu():
        return
    skip = pytest.mark.skip(reason="no NVIDIA GPU with TensorRT and cuda-python here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


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
    from inspector.exporting import export_run

    out_base = tmp_path_factory.mktemp("export") / "rs"
    result = export_run(trained_run, out_base)
    return Path(result["fp32"])
