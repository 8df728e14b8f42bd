"""Every CUDA call of the cuda-python wrapper, made through the real ``cuda-bindings`` module.

No GPU is needed: ``cuda.bindings.runtime`` type-checks each argument before it
reaches the driver (a wrong type raises TypeError), then answers an error code
such as ``cudaErrorInsufficientDriver`` when there is no driver. The
:class:`PassThrough` proxy sends every call to the real function, checks that
it answered ``(cudaError_t, …)``, and, where it failed for want of a GPU,
returns a success carrying a value of the binding's own type (``cudaStream_t()``,
``cudaGraph_t()``, a real host address for ``cudaMallocHost``…) so the wrapper
walks its whole GPU path. The list of calls the wrapper's source makes is
compared with the calls made, so a new call cannot go untested.

Verified with cuda-bindings 12.9.4 (CUDA 12) and 13.5.0 (CUDA 13); the test
runs with whichever is installed and skips cleanly without one. On a machine
with a GPU, tests/backends/test_cuda_gpu.py makes the same calls for real.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import inspector.backends.cuda as cuda_mod
from inspector.backends.cuda import CudaPython, check_cudart
from inspector.errors import BackendError

rt = pytest.importorskip("cuda.bindings.runtime", reason="cuda-bindings not installed (pip install -e \".[dev]\")")


def _gpu_present() -> bool:
    err, count = rt.cudaGetDeviceCount()
    return int(err) == 0 and count > 0


pytestmark = pytest.mark.skipif(_gpu_present(), reason="a GPU is present: test_cuda_gpu.py makes these calls for real")

# every runtime function the wrapper names (``self.rt.cudaX`` / ``cudart.cudaX``); constants and types aside
WRAPPER_CALLS = {name for name in re.findall(r"\b(?:rt|cudart)\.(cuda\w+)", Path(cuda_mod.__file__).read_text())
                 if callable(getattr(rt, name)) and not isinstance(getattr(rt, name), type)}


class PassThrough:
    """``cuda.bindings.runtime`` as the wrapper sees it: real calls, GPU-less failures turned into typed successes."""

    def __init__(self):
        self.calls: list[str] = []
        self.errors: set[str] = set()
        self.host: list[np.ndarray] = []  # keeps the memory behind fake cudaMallocHost pointers alive

    def _value(self, name: str, args: tuple):
        if name == "cudaMallocHost":
            self.host.append(np.zeros(int(args[0]), np.uint8))
            return int(self.host[-1].ctypes.data)
        values = {"cudaGetDeviceCount": 1, "cudaGetDeviceProperties": rt.cudaDeviceProp(),
                  "cudaStreamCreateWithFlags": rt.cudaStream_t(), "cudaEventCreateWithFlags": rt.cudaEvent_t(),
                  "cudaEventElapsedTime": 0.25, "cudaMalloc": 1 << 40,
                  "cudaStreamEndCapture": rt.cudaGraph_t(), "cudaGraphInstantiate": rt.cudaGraphExec_t()}
        assert name in values, f"{name} returns a value: add one of its real type here"
        return values[name]

    def __getattr__(self, name):
        real = getattr(rt, name)
        if not name.startswith("cuda") or isinstance(real, type) or not callable(real):
            return real  # enums, handle types and constants pass through untouched

        def call(*args):
            self.calls.append(name)
            result = real(*args)  # a TypeError here: the binding refuses the wrapper's argument types
            assert isinstance(result, tuple) and isinstance(result[0], rt.cudaError_t), (name, result)
            if int(result[0]) == 0 or name == "cudaGetLastError":
                return result
            self.errors.add(result[0].name)
            success = rt.cudaError_t.cudaSuccess
            return (success,) if len(result) == 1 else (success, self._value(name, args))

        return call


@pytest.fixture()
def cudart(monkeypatch):
    proxy = PassThrough()
    monkeypatch.setattr(cuda_mod, "_import_cudart", lambda: proxy)
    return proxy


def test_every_wrapper_call_is_accepted_by_the_real_bindings(cudart):
    cuda = CudaPython(0)  # cudaGetDeviceCount, cudaSetDevice, cudaFree(0)
    info = cuda.device_info()
    assert info.compute_capability == "0.0" and info.name == ""
    stream, start, end = cuda.stream(), cuda.event(), cuda.event()
    host = cuda.pinned((2, 4, 4, 3), np.uint8)
    host.array[:] = 7
    device = cuda.device_buffer(host.nbytes)
    start.record(stream)
    device.copy_from(host, host.nbytes, stream)
    device.copy_to(host, host.nbytes, stream)
    end.record(stream)
    stream.synchronize()
    assert end.elapsed_ms(start) == 0.25
    graph = cuda.capture_graph(stream, lambda: device.copy_from(host, 16, stream))
    graph.launch(stream)
    graph.close()
    with pytest.raises(cuda_mod.GraphCaptureError):  # the fallback path: end capture, destroy, cudaGetLastError
        cuda.capture_graph(stream, _failing_enqueue)
    for resource in (device, host, start, end, stream):
        resource.close()
    cuda.close()
    with pytest.raises(BackendError, match=r"cudaMalloc failed: cudaErrorMemoryAllocation \(out of memory\)"):
        check_cudart(cudart, "cudaMalloc", (rt.cudaError_t.cudaErrorMemoryAllocation, None))
    assert WRAPPER_CALLS <= set(cudart.calls), f"never exercised: {sorted(WRAPPER_CALLS - set(cudart.calls))}"
    assert len(WRAPPER_CALLS) >= 20
    assert cudart.errors <= {"cudaErrorInsufficientDriver", "cudaErrorNoDevice", "cudaErrorInvalidValue",
                             "cudaErrorInvalidResourceHandle", "cudaErrorStreamCaptureInvalidated"}, cudart.errors


def _failing_enqueue():
    raise BackendError("execute_async_v3 failed under capture")


def test_without_a_gpu_the_wrapper_says_so_in_one_line():
    with pytest.raises(BackendError) as info:
        CudaPython(0)
    message = str(info.value)
    assert re.fullmatch(r"cuda-python: cudaGetDeviceCount failed: cudaError\w+ \(.+\)", message), message


def test_error_codes_are_named_by_the_real_bindings():
    with pytest.raises(BackendError) as info:
        check_cudart(rt, "cudaMalloc", (rt.cudaError_t.cudaErrorMemoryAllocation, None))
    assert str(info.value) == "cuda-python: cudaMalloc failed: cudaErrorMemoryAllocation (out of memory)"
