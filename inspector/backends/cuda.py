"""A small CUDA wrapper for the TensorRT backend: cuda-python (default) or pycuda.

One interface, two implementations:

* :class:`CudaPython` — NVIDIA's ``cuda-python`` (``cuda.bindings.runtime``),
  what TensorRT's own samples use. Every call returns ``(err, value…)``.
* :class:`PyCuda` — ``pycuda`` on the device's primary context (the one the
  CUDA runtime and so TensorRT use), pushed on the constructing thread. pycuda
  contexts are per thread, so this wrapper refuses any call from another thread
  instead of failing later with "invalid device context".

Every CUDA call goes through :meth:`Cuda.call`, the one checker: a failure
becomes a one-line :class:`~inspector.errors.BackendError` naming the call and
the CUDA error. The resources the backend needs are one class each, each owning
exactly one handle and releasing it in an idempotent ``close()``:
:class:`Stream`, :class:`Event`, :class:`PinnedBuffer` (page-locked host memory
seen as a numpy array), :class:`DeviceBuffer` and :class:`CudaGraph`.

Nothing is imported or initialised at import time; the wrappers import their
CUDA package when constructed.
"""

from __future__ import annotations

import abc
import ctypes
import threading
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from inspector.errors import BackendError

CUDA_APIS = ("cuda-python", "pycuda")


@dataclass(frozen=True)
class DeviceInfo:
    """What an engine is bound to: the GPU's name and compute capability."""

    index: int
    name: str
    compute_capability: str  # "8.6"


class Cuda(abc.ABC):
    """The CUDA calls the TensorRT backend makes, behind one checker."""

    api: str = "cuda"

    def __init__(self, device: int = 0) -> None:
        self.device = int(device)
        self.owner_thread = threading.get_ident()

    # -- the one checker -------------------------------------------------------
    def call(self, what: str, fn: Callable, *args) -> Any:
        """Run one CUDA call; raise a one-line BackendError naming ``what`` on failure."""
        self._check_thread(what)
        try:
            result = fn(*args)
        except BackendError:
            raise
        except Exception as exc:  # pycuda raises; cuda-python raises on bad argument types
            raise BackendError(f"{self.api}: {what} failed: {_first_line(exc)}") from None
        return self._unwrap(what, result)

    def _check_thread(self, what: str) -> None:
        """Override to refuse calls from a thread that does not own the context."""

    def _unwrap(self, what: str, result: Any) -> Any:
        return result

    # -- primitives (implemented per API) -------------------------------------
    @abc.abstractmethod
    def device_info(self) -> DeviceInfo: ...

    @abc.abstractmethod
    def _stream_create(self) -> Any: ...

    @abc.abstractmethod
    def _stream_destroy(self, handle: Any) -> None: ...

    @abc.abstractmethod
    def stream_ptr(self, handle: Any) -> int:
        """The raw ``cudaStream_t`` as an int (what TensorRT takes)."""

    @abc.abstractmethod
    def _stream_synchronize(self, handle: Any) -> None: ...

    @abc.abstractmethod
    def _event_create(self) -> Any: ...

    @abc.abstractmethod
    def _event_destroy(self, handle: Any) -> None: ...

    @abc.abstractmethod
    def _event_record(self, event: Any, stream: Any) -> None: ...

    @abc.abstractmethod
    def _event_elapsed_ms(self, start: Any, end: Any) -> float: ...

    @abc.abstractmethod
    def _host_alloc(self, nbytes: int) -> tuple[Any, np.ndarray]:
        """Page-locked host memory: (handle, uint8 array of ``nbytes`` over it)."""

    @abc.abstractmethod
    def _host_free(self, handle: Any, array: np.ndarray) -> None: ...

    @abc.abstractmethod
    def _device_alloc(self, nbytes: int) -> tuple[Any, int]:
        """Device memory: (handle, device pointer as int)."""

    @abc.abstractmethod
    def _device_free(self, handle: Any) -> None: ...

    @abc.abstractmethod
    def _copy_h2d(self, dst: "DeviceBuffer", src: "PinnedBuffer", nbytes: int, stream: "Stream") -> None: ...

    @abc.abstractmethod
    def _copy_d2h(self, dst: "PinnedBuffer", src: "DeviceBuffer", nbytes: int, stream: "Stream") -> None: ...

    def _capture_begin(self, stream: "Stream") -> None:
        raise BackendError(f"{self.api}: CUDA graphs are not supported by this wrapper; use cuda-python")

    def _capture_end(self, stream: "Stream") -> tuple[Any, Any]:
        raise BackendError(f"{self.api}: CUDA graphs are not supported by this wrapper; use cuda-python")

    def _graph_launch(self, graph_exec: Any, stream: "Stream") -> None:
        raise BackendError(f"{self.api}: CUDA graphs are not supported by this wrapper")

    def _graph_destroy(self, graph: Any, graph_exec: Any) -> None:
        pass

    def _clear_error(self) -> Any:
        """Read and reset the runtime's last error (``cudaGetLastError``); return it (0 when none)."""
        return 0

    # -- resource factories ----------------------------------------------------
    def stream(self) -> "Stream":
        return Stream(self)

    def event(self) -> "Event":
        return Event(self)

    def pinned(self, shape: tuple[int, ...], dtype) -> "PinnedBuffer":
        return PinnedBuffer(self, shape, dtype)

    def device_buffer(self, nbytes: int) -> "DeviceBuffer":
        return DeviceBuffer(self, nbytes)

    def capture_graph(self, stream: "Stream", work: Callable[[], None]) -> "CudaGraph":
        """Capture what ``work()`` enqueues on ``stream`` into an instantiated graph."""
        return CudaGraph(self, stream, work)

    def close(self) -> None:
        """Release the wrapper's own state (contexts); resources are closed by their owners first."""


# -- resources: one class per CUDA object, each owning one handle -------------


class Stream:
    """A CUDA stream."""

    def __init__(self, cuda: Cuda) -> None:
        self.cuda = cuda
        self.handle = cuda.call("cudaStreamCreate", cuda._stream_create)
        self.ptr = cuda.stream_ptr(self.handle)

    def synchronize(self) -> None:
        self.cuda.call("cudaStreamSynchronize", self.cuda._stream_synchronize, self.handle)

    def close(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            self.cuda.call("cudaStreamDestroy", self.cuda._stream_destroy, handle)


class Event:
    """A CUDA event used for timing."""

    def __init__(self, cuda: Cuda) -> None:
        self.cuda = cuda
        self.handle = cuda.call("cudaEventCreate", cuda._event_create)

    def record(self, stream: Stream) -> None:
        self.cuda.call("cudaEventRecord", self.cuda._event_record, self.handle, stream.handle)

    def elapsed_ms(self, since: "Event") -> float:
        """Milliseconds from ``since`` to this event (both recorded and complete)."""
        return float(self.cuda.call("cudaEventElapsedTime", self.cuda._event_elapsed_ms, since.handle, self.handle))

    def close(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            self.cuda.call("cudaEventDestroy", self.cuda._event_destroy, handle)


class PinnedBuffer:
    """Page-locked host memory, exposed as a numpy array of ``shape``/``dtype``."""

    def __init__(self, cuda: Cuda, shape: tuple[int, ...], dtype) -> None:
        self.cuda = cuda
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.handle, self._raw = cuda.call("cudaMallocHost", cuda._host_alloc, max(self.nbytes, 1))
        self.array = self._raw[: self.nbytes].view(self.dtype).reshape(self.shape)
        self.ptr = int(self._raw.ctypes.data)

    def close(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            raw, self._raw, self.array = self._raw, None, None
            self.cuda.call("cudaFreeHost", self.cuda._host_free, handle, raw)


class DeviceBuffer:
    """Device memory of ``nbytes``."""

    def __init__(self, cuda: Cuda, nbytes: int) -> None:
        self.cuda = cuda
        self.nbytes = int(nbytes)
        self.handle, self.ptr = cuda.call("cudaMalloc", cuda._device_alloc, max(self.nbytes, 1))

    def copy_from(self, src: PinnedBuffer, nbytes: int, stream: Stream) -> None:
        """Asynchronous host → device copy of the first ``nbytes`` of ``src``."""
        _check_size(nbytes, src.nbytes, self.nbytes)
        self.cuda.call("cudaMemcpyAsync(HostToDevice)", self.cuda._copy_h2d, self, src, nbytes, stream)

    def copy_to(self, dst: PinnedBuffer, nbytes: int, stream: Stream) -> None:
        """Asynchronous device → host copy of the first ``nbytes`` into ``dst``."""
        _check_size(nbytes, dst.nbytes, self.nbytes)
        self.cuda.call("cudaMemcpyAsync(DeviceToHost)", self.cuda._copy_d2h, dst, self, nbytes, stream)

    def close(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            self.cuda.call("cudaFree", self.cuda._device_free, handle)


class GraphCaptureError(BackendError):
    """A CUDA-graph capture failed; the stream was left usable (capture ended, error cleared)."""


class CudaGraph:
    """An instantiated CUDA graph captured from the work enqueued on a stream.

    Raises :class:`GraphCaptureError` when the work fails under capture (TensorRT's
    ``enqueueV3`` returns false for an engine with ops not permitted in capture
    mode) or the capture cannot be ended or instantiated. Before raising it does
    what trtexec does (TensorRT ``samples/common/sampleDevice.h``,
    ``TrtCudaGraph::endCaptureOnError``, and ``sampleInference.cpp``): end the
    invalidated capture, destroy any graph it returned and clear the error with
    ``cudaGetLastError``, so the caller can fall back to plain enqueue.
    """

    def __init__(self, cuda: Cuda, stream: Stream, work: Callable[[], None]) -> None:
        self.cuda = cuda
        self.graph = self.exec = None
        cuda.call("cudaStreamBeginCapture", cuda._capture_begin, stream)
        try:
            work()
        except BackendError as exc:
            raise GraphCaptureError(f"{_abandon_capture(cuda, stream)}: {exc}") from None
        except BaseException:
            _abandon_capture(cuda, stream)
            raise
        try:
            self.graph, self.exec = cuda.call("cudaStreamEndCapture/cudaGraphInstantiate", cuda._capture_end, stream)
        except BackendError as exc:
            cuda._clear_error()
            raise GraphCaptureError(str(exc)) from None

    def launch(self, stream: Stream) -> None:
        self.cuda.call("cudaGraphLaunch", self.cuda._graph_launch, self.exec, stream)

    def close(self) -> None:
        if self.exec is not None or self.graph is not None:
            graph, graph_exec, self.graph, self.exec = self.graph, self.exec, None, None
            self.cuda.call("cudaGraphDestroy", self.cuda._graph_destroy, graph, graph_exec)


def _abandon_capture(cuda: Cuda, stream: Stream) -> str:
    """End a capture the work invalidated, drop its graph, clear the error; say what happened."""
    ended = "capture ended"
    try:
        graph, graph_exec = cuda.call("cudaStreamEndCapture", cuda._capture_end, stream)
        cuda.call("cudaGraphDestroy", cuda._graph_destroy, graph, graph_exec)
    except BackendError as exc:  # expected: cudaErrorStreamCaptureInvalidated, no graph
        ended = f"capture ended ({_first_line(exc).split(' failed: ')[-1]})"
    cleared = cuda._clear_error()
    return f"{ended}, last error cleared ({cleared})" if cleared else ended


def _check_size(nbytes: int, host: int, device: int) -> None:
    if nbytes < 0 or nbytes > host or nbytes > device:
        raise BackendError(f"copy of {nbytes} bytes exceeds its buffers (host {host}, device {device} bytes)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


# -- cuda-python ---------------------------------------------------------------


def _import_cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python ≥ 12.6 layout
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError as exc:
            raise BackendError(f"cuda-python is not installed ({exc}); pip install -e \".[tensorrt]\"") from None
    return cudart


def check_cudart(cudart, what: str, result: Any) -> Any:
    """The cuda-python checker: ``(err, *values)`` → values, or a one-line BackendError."""
    if not isinstance(result, tuple):
        result = (result,)
    err, values = result[0], result[1:]
    if int(err) != 0:
        raise BackendError(f"cuda-python: {what} failed: {_cudart_error_text(cudart, err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _cudart_error_text(cudart, err) -> str:
    try:
        _, name = cudart.cudaGetErrorName(err)
        _, text = cudart.cudaGetErrorString(err)
        name = name.decode() if isinstance(name, bytes) else str(name)
        text = text.decode() if isinstance(text, bytes) else str(text)
        return f"{name} ({text})"
    except Exception:
        return str(err)


class CudaPython(Cuda):
    """cuda-python's runtime API (``cuda.bindings.runtime``)."""

    api = "cuda-python"

    def __init__(self, device: int = 0) -> None:
        super().__init__(device)
        self.rt = _import_cudart()
        count = self.call("cudaGetDeviceCount", self.rt.cudaGetDeviceCount)
        if not count or self.device >= int(count):
            raise BackendError(f"cuda-python: no CUDA device {self.device} (found {count or 0})")
        self.call("cudaSetDevice", self.rt.cudaSetDevice, self.device)
        self.call("cudaFree(0) (context init)", self.rt.cudaFree, 0)

    def _unwrap(self, what: str, result: Any) -> Any:
        return check_cudart(self.rt, what, result)

    def device_info(self) -> DeviceInfo:
        prop = self.call("cudaGetDeviceProperties", self.rt.cudaGetDeviceProperties, self.device)
        name = prop.name.split(b"\0", 1)[0].decode() if isinstance(prop.name, bytes) else str(prop.name)
        return DeviceInfo(self.device, name.strip(), f"{prop.major}.{prop.minor}")

    def _stream_create(self):
        return self.rt.cudaStreamCreateWithFlags(self.rt.cudaStreamNonBlocking)

    def _stream_destroy(self, handle):
        return self.rt.cudaStreamDestroy(handle)

    def stream_ptr(self, handle) -> int:
        return int(handle)

    def _stream_synchronize(self, handle):
        return self.rt.cudaStreamSynchronize(handle)

    def _event_create(self):
        return self.rt.cudaEventCreateWithFlags(self.rt.cudaEventDefault)

    def _event_destroy(self, handle):
        return self.rt.cudaEventDestroy(handle)

    def _event_record(self, event, stream):
        return self.rt.cudaEventRecord(event, stream)

    def _event_elapsed_ms(self, start, end):
        return self.rt.cudaEventElapsedTime(start, end)

    def _host_alloc(self, nbytes):
        err, ptr = self.rt.cudaMallocHost(nbytes)
        if int(err) != 0:
            return (err, None)
        array = np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(int(ptr)))
        return (err, (int(ptr), array))

    def _host_free(self, handle, array):
        return self.rt.cudaFreeHost(handle)

    def _device_alloc(self, nbytes):
        err, ptr = self.rt.cudaMalloc(nbytes)
        return (err, (ptr, int(ptr) if int(err) == 0 else 0))

    def _device_free(self, handle):
        return self.rt.cudaFree(handle)

    def _copy_h2d(self, dst, src, nbytes, stream):
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        return self.rt.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, kind, stream.handle)

    def _copy_d2h(self, dst, src, nbytes, stream):
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        return self.rt.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, kind, stream.handle)

    def _capture_begin(self, stream):
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        return self.rt.cudaStreamBeginCapture(stream.handle, mode)

    def _capture_end(self, stream):
        graph = check_cudart(self.rt, "cudaStreamEndCapture", self.rt.cudaStreamEndCapture(stream.handle))
        try:
            graph_exec = check_cudart(self.rt, "cudaGraphInstantiate", self.rt.cudaGraphInstantiate(graph, 0))
        except BackendError:
            self.rt.cudaGraphDestroy(graph)
            raise
        return (self.rt.cudaError_t.cudaSuccess, (graph, graph_exec))

    def _graph_launch(self, graph_exec, stream):
        return self.rt.cudaGraphLaunch(graph_exec, stream.handle)

    def _clear_error(self):
        err = self.rt.cudaGetLastError()[0]  # returns and resets the last error; not itself an error
        return 0 if int(err) == 0 else _cudart_error_text(self.rt, err)

    def _graph_destroy(self, graph, graph_exec):
        if graph_exec is not None:
            check_cudart(self.rt, "cudaGraphExecDestroy", self.rt.cudaGraphExecDestroy(graph_exec))
        if graph is not None:
            check_cudart(self.rt, "cudaGraphDestroy", self.rt.cudaGraphDestroy(graph))
        return (self.rt.cudaError_t.cudaSuccess,)


# -- pycuda ----------------------------------------------------------------------


class PyCuda(Cuda):
    """pycuda on the device's primary context, pushed on (and only usable from) this thread."""

    api = "pycuda"

    def __init__(self, device: int = 0) -> None:
        super().__init__(device)
        try:
            import pycuda.driver as drv
        except ImportError as exc:
            raise BackendError(f"pycuda is not installed ({exc}); pip install -e \".[pycuda]\"") from None
        self.drv = drv
        self.context = None
        self.call("cuInit", drv.init)
        count = self.call("cuDeviceGetCount", drv.Device.count)
        if self.device >= int(count):
            raise BackendError(f"pycuda: no CUDA device {self.device} (found {count})")
        self._dev = self.call("cuDeviceGet", drv.Device, self.device)
        # The primary context is the one the CUDA runtime (TensorRT) uses: share it, never make a new one.
        context = self.call("cuDevicePrimaryCtxRetain", self._dev.retain_primary_context)
        try:
            self.call("cuCtxPushCurrent", context.push)
        except BaseException:
            context.detach()
            raise
        self.context = context  # pushed on this thread: close() pops it

    def _check_thread(self, what: str) -> None:
        if threading.get_ident() != self.owner_thread:
            raise BackendError(
                f"pycuda: {what} called from a thread that does not own the CUDA context; "
                "pycuda contexts are per thread: create and use the backend in one thread")

    def device_info(self) -> DeviceInfo:
        major, minor = self.call("cuDeviceComputeCapability", self._dev.compute_capability)
        return DeviceInfo(self.device, str(self.call("cuDeviceGetName", self._dev.name)).strip(), f"{major}.{minor}")

    def _stream_create(self):
        return self.drv.Stream()

    def _stream_destroy(self, handle):
        del handle  # pycuda destroys the stream when its object goes away

    def stream_ptr(self, handle) -> int:
        return int(handle.handle)

    def _stream_synchronize(self, handle):
        handle.synchronize()

    def _event_create(self):
        return self.drv.Event()

    def _event_destroy(self, handle):
        del handle

    def _event_record(self, event, stream):
        event.record(stream)

    def _event_elapsed_ms(self, start, end):
        end.synchronize()
        return end.time_since(start)

    def _host_alloc(self, nbytes):
        array = self.drv.pagelocked_empty((nbytes,), np.uint8)
        return (array.base, array)

    def _host_free(self, handle, array):
        handle.free()

    def _device_alloc(self, nbytes):
        alloc = self.drv.mem_alloc(nbytes)
        return (alloc, int(alloc))

    def _device_free(self, handle):
        handle.free()

    def _copy_h2d(self, dst, src, nbytes, stream):
        self.drv.memcpy_htod_async(dst.ptr, src._raw[:nbytes], stream.handle)

    def _copy_d2h(self, dst, src, nbytes, stream):
        self.drv.memcpy_dtoh_async(dst._raw[:nbytes], src.ptr, stream.handle)

    def close(self) -> None:
        """Pop the primary context pushed at construction and release it (even when the pop fails)."""
        if self.context is not None:
            self._check_thread("close (cuCtxPopCurrent)")  # only the owner thread can pop its context
            context, self.context = self.context, None
            try:
                self.call("cuCtxPopCurrent", self.drv.Context.pop)
            finally:
                self.call("cuDevicePrimaryCtxRelease", context.detach)


def open_cuda(api: str = "cuda-python", device: int = 0) -> Cuda:
    """The CUDA wrapper named ``api`` ('cuda-python' or 'pycuda') on ``device``."""
    if api == "cuda-python":
        return CudaPython(device)
    if api == "pycuda":
        return PyCuda(device)
    raise BackendError(f"unknown CUDA API '{api}'; choose one of {list(CUDA_APIS)}")
