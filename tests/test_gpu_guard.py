"""The GPU-test skip rule: skip only where there is no GPU (or the package is not installed at all)."""

from __future__ import annotations

import pytest

from gpu_guard import GpuProbe, probe_gpu, skip_reason

NO_GPU, ONE_GPU = GpuProbe(0), GpuProbe(1)


def _installed(*modules):
    return lambda module: module in modules


@pytest.mark.parametrize("markers, gpu, modules, expected", [
    ({"gpu"}, NO_GPU, ("tensorrt", "cuda.bindings"), "no NVIDIA GPU here"),
    ({"gpu"}, ONE_GPU, ("tensorrt", "cuda.bindings"), None),
    ({"gpu"}, ONE_GPU, ("tensorrt",), None),  # TensorRT imports, cuda-python missing: run and fail, never skip
    ({"gpu"}, ONE_GPU, (), 'GPU present but tensorrt is not installed: pip install -e ".[tensorrt]"'),
    ({"cuda"}, ONE_GPU, ("cuda.bindings",), None),
    ({"cuda"}, NO_GPU, ("cuda.bindings",), "no NVIDIA GPU here"),
    ({"gpu", "pycuda"}, ONE_GPU, ("tensorrt",), "GPU present but pycuda is not installed"),
    ({"slow"}, NO_GPU, (), None),
])
def test_skip_only_without_a_gpu_or_an_installed_package(markers, gpu, modules, expected):
    reason = skip_reason(markers, gpu, _installed(*modules))
    assert reason == expected or (expected and reason and reason.startswith(expected))


def test_a_driver_that_fails_on_a_machine_with_a_gpu_is_not_no_gpu(monkeypatch):
    monkeypatch.setattr("os.path.exists", lambda path: path == "/dev/nvidia0")
    broken = GpuProbe(0, "cuInit failed with CUresult 999")
    assert broken.present and skip_reason({"gpu"}, broken, _installed("tensorrt")) is None


def test_probe_without_a_driver_library():
    assert probe_gpu("libcuda-that-does-not-exist.so.1") == GpuProbe(0)
