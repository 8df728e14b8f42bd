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
