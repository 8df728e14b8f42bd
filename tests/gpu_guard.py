"""When GPU tests may skip: only where there is no NVIDIA GPU (or the optional package is not installed).

The GPU is detected through the driver itself (``libcuda.so.1``: ``cuInit`` and
``cuDeviceGetCount`` via ctypes), never through cuda-python or TensorRT, so a
broken install cannot pass for "no GPU": where a GPU is present and TensorRT
imports, a failing CUDA call or engine build fails the test. A package that is
not installed at all (``find_spec`` is None) skips with a reason naming it;
``scripts/gpu_check.sh`` treats any skip on a GPU machine as a failure.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from dataclasses import dataclass

CUDA_ERROR_NO_DEVICE = 100


@dataclass(frozen=True)
class GpuProbe:
    """What the driver says: number of GPUs, or why it could not tell (None: it answered)."""

    count: int
    problem: str | None = None

    @property
    def present(self) -> bool:
        """A GPU exists: the driver counts one, or a device node exists though the driver failed."""
        return self.count > 0 or (self.problem is not None and os.path.exists("/dev/nvidia0"))


def probe_gpu(library: str = "libcuda.so.1") -> GpuProbe:
    try:
        lib = ctypes.CDLL(library)
    except OSError:
        return GpuProbe(0)  # no NVIDIA driver: no GPU
    err = lib.cuInit(0)
    if err == CUDA_ERROR_NO_DEVICE:
        return GpuProbe(0)
    if err != 0:
        return GpuProbe(0, f"cuInit failed with CUresult {err}")
    count = ctypes.c_int(0)
    err = lib.cuDeviceGetCount(ctypes.byref(count))
    return GpuProbe(count.value) if err == 0 else GpuProbe(0, f"cuDeviceGetCount failed with CUresult {err}")


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


# marker → (module it needs, install hint)
NEEDS = {"gpu": ("tensorrt", 'pip install -e ".[tensorrt]"'),
         "cuda": ("cuda.bindings", 'pip install -e ".[dev]" (cuda-bindings)'),
         "pycuda": ("pycuda", 'pip install -e ".[pycuda]" (needs nvcc)'),
         # GPU training: torch is always installed; a CPU-only build on a GPU machine fails the test.
         "torch_cuda": ("torch", "a CUDA build of torch")}


def skip_reason(markers: set[str], gpu: GpuProbe, is_installed=installed) -> str | None:
    """Why a test with ``markers`` must skip here, or None: it runs (and fails if CUDA/TensorRT fail)."""
    wanted = [m for m in NEEDS if m in markers]
    if not wanted:
        return None
    if not gpu.present:
        return "no NVIDIA GPU here"
    for marker in wanted:
        module, hint = NEEDS[marker]
        if not is_installed(module):
            return f"GPU present but {module} is not installed: {hint}"
    return None
