"""The CUDA wrapper on a real GPU, without TensorRT (marker ``cuda``: needs a GPU and cuda-bindings).

Round trips through pinned host memory and device memory, event timing, CUDA
graph capture and replay, and the capture-failure fallback (an illegal call
under capture invalidates it; the wrapper ends it, clears the error and the
stream stays usable). ``scripts/gpu_check.sh --cuda-only`` runs this file.
"""

from __future__ import annotations

import numpy as np
import pytest

from inspector.backends.cuda import GraphCaptureError, open_cuda

pytestmark = pytest.mark.cuda


@pytest.fixture()
def cuda():
    wrapper = open_cuda("cuda-python", 0)
    yield wrapper
    wrapper.close()


def test_device_info(cuda):
    info = cuda.device_info()
    major, minor = (int(x) for x in info.compute_capability.split("."))
    assert info.name and major >= 5 and minor >= 0


def test_pinned_round_trip_through_device_memory(cuda):
    stream, start, end = cuda.stream(), cuda.event(), cuda.event()
    src, dst = cuda.pinned((8, 64, 64, 3), np.uint8), cuda.pinned((8, 64, 64, 3), np.uint8)
    device = cuda.device_buffer(src.nbytes)
    try:
        src.array[:] = np.random.default_rng(0).integers(0, 256, src.shape, dtype=np.uint8)
        start.record(stream)
        device.copy_from(src, src.nbytes, stream)
        device.copy_to(dst, 3 * 64 * 64 * 3, stream)  # a partial copy: the first 3 images
        end.record(stream)
        stream.synchronize()
        np.testing.assert_array_equal(dst.array[:3], src.array[:3])
        assert not dst.array[3:].any()
        assert end.elapsed_ms(start) >= 0
    finally:
        for resource in (device, dst, src, end, start, stream):
            resource.close()


def test_graph_capture_replays_the_captured_copies(cuda):
    stream = cuda.stream()
    src, dst = cuda.pinned((1024,), np.float32), cuda.pinned((1024,), np.float32)
    device = cuda.device_buffer(src.nbytes)
    try:
        graph = cuda.capture_graph(stream, lambda: (device.copy_from(src, src.nbytes, stream),
                                                    device.copy_to(dst, dst.nbytes, stream)))
        for value in (1.5, -2.0):
            src.array[:] = value
            graph.launch(stream)  # the graph reads the pinned buffer at replay time
            stream.synchronize()
            np.testing.assert_array_equal(dst.array, value)
        graph.close()
    finally:
        for resource in (device, dst, src, stream):
            resource.close()


def test_failed_capture_leaves_the_stream_usable(cuda):
    stream = cuda.stream()
    src, dst = cuda.pinned((256,), np.uint8), cuda.pinned((256,), np.uint8)
    device = cuda.device_buffer(src.nbytes)
    try:
        with pytest.raises(GraphCaptureError, match="capture ended"):
            cuda.capture_graph(stream, stream.synchronize)  # synchronising a capturing stream is illegal
        assert int(cuda.rt.cudaGetLastError()[0]) == 0  # the error was cleared
        src.array[:] = 9
        device.copy_from(src, src.nbytes, stream)
        device.copy_to(dst, dst.nbytes, stream)
        stream.synchronize()
        np.testing.assert_array_equal(dst.array, 9)
    finally:
        for resource in (device, dst, src, stream):
            resource.close()
