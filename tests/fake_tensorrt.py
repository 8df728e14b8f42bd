"""A faithful stand-in for the ``tensorrt`` module (10.x and 11.x) and a fake CUDA, for CPU tests.

Why a fake: TensorRT cannot be installed here (PyPI has only sdists that fetch
NVIDIA's libraries at install time) and there is no GPU. So this module mirrors
what NVIDIA's sources say the Python bindings do, per major version:

* enum values from ``include/NvInfer.h`` / ``NvInferRuntime*.h`` of TensorRT
  10.13 and 11.1 (``NetworkDefinitionCreationFlag``: 10.x ``EXPLICIT_BATCH=0``,
  ``STRONGLY_TYPED=1``; 11.x ``STRONGLY_TYPED=0`` (deprecated, ignored) and no
  ``EXPLICIT_BATCH``; ``BuilderFlag`` without FP16/BF16/INT8/FP8/... in 11.x).
  Like pybind11's ``py::arithmetic`` enums they are ints whose ``str`` is
  ``"DataType.UINT8"``;
* return conventions of ``python/src/infer/pyCore.cpp``: ``None`` from
  ``parse``-failed builds, ``build_serialized_network``,
  ``deserialize_cuda_engine``, ``create_timing_cache`` and
  ``create_execution_context`` on failure; ``False`` from ``set_input_shape``,
  ``set_tensor_address``, ``set_timing_cache``, ``execute_async_v3``; ``-1`` from
  ``add_optimization_profile`` for an invalid profile; ``RuntimeError`` from
  ``IOptimizationProfile.set_shape`` for inconsistent shapes;
* plain-integer handles (``set_tensor_address(name, int)``,
  ``execute_async_v3(int)``: pybind11 converts only ints) and ``-1`` for
  dimensions a shape does not yet resolve.

Faults are switched on by name (``faults`` set) to reach every error path. The
"engine" is the ONNX graph behind a magic header, run by ONNX Runtime, so
outputs can be compared with the real ONNX backend. The fake CUDA keeps device
memory as host bytes and mirrors stream capture: work enqueued while capturing
is recorded with the shapes of that moment, an invalidated capture ends with
``cudaErrorStreamCaptureInvalidated`` and leaves a pending last error that
TensorRT's next enqueue trips over until ``cudaGetLastError`` clears it.
"""

from __future__ import annotations

import enum
import time
import types
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort

from inspector.backends.cuda import Cuda, DeviceInfo
from inspector.errors import BackendError

TRT10 = "10.13.0.35"
TRT11 = "11.1.0.20"
PLAN_MAGIC = b"FAKEPLAN"
CACHE_MAGIC = b"\x00FAKECACHE:"  # binary, as TensorRT's own cache archive (never text: deploy.timing_cache)

# NvInfer.h (TensorRT 10.13 / 11.1): enum name → value
NETWORK_FLAGS = {
    10: {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1, "PREFER_JIT_PYTHON_PLUGINS": 2, "PREFER_AOT_PYTHON_PLUGINS": 3},
    11: {"STRONGLY_TYPED": 0, "PREFER_JIT_PYTHON_PLUGINS": 1, "PREFER_AOT_PYTHON_PLUGINS": 2},
}
BUILDER_FLAGS = {
    10: dict(FP16=0, INT8=1, DEBUG=2, GPU_FALLBACK=3, REFIT=4, DISABLE_TIMING_CACHE=5, TF32=6, SPARSE_WEIGHTS=7,
             SAFETY_SCOPE=8, OBEY_PRECISION_CONSTRAINTS=9, PREFER_PRECISION_CONSTRAINTS=10, DIRECT_IO=11,
             REJECT_EMPTY_ALGORITHMS=12, VERSION_COMPATIBLE=13, EXCLUDE_LEAN_RUNTIME=14, FP8=15,
             ERROR_ON_TIMING_CACHE_MISS=16, BF16=17, DISABLE_COMPILATION_CACHE=18, STRIP_PLAN=19, REFIT_IDENTICAL=20,
             WEIGHT_STREAMING=21, INT4=22, REFIT_INDIVIDUAL=23, STRICT_NANS=24, MONITOR_MEMORY=25, FP4=26,
             EDITABLE_TIMING_CACHE=27, DISTRIBUTIVE_INDEPENDENCE=28),
    11: dict(DEBUG=2, GPU_FALLBACK=3, REFIT=4, DISABLE_TIMING_CACHE=5, TF32=6, SPARSE_WEIGHTS=7, SAFETY_SCOPE=8,
             DIRECT_IO=11, VERSION_COMPATIBLE=12, EXCLUDE_LEAN_RUNTIME=13, ERROR_ON_TIMING_CACHE_MISS=15,
             DISABLE_COMPILATION_CACHE=17, STRIP_PLAN=18, REFIT_IDENTICAL=19, WEIGHT_STREAMING=20, REFIT_INDIVIDUAL=22,
             STRICT_NANS=23, MONITOR_MEMORY=24, EDITABLE_TIMING_CACHE=26, DISTRIBUTIVE_INDEPENDENCE=27),
}
DATA_TYPES = dict(FLOAT=0, HALF=1, INT8=2, INT32=3, BOOL=4, UINT8=5, FP8=6, BF16=7, INT64=8, INT4=9, FP4=10, E8M0=11)
FAULTS = frozenset({"parse", "builder_config", "profile_set_shape", "profile_index", "build", "deserialize",
                    "timing_cache", "set_timing_cache", "context", "set_input_shape", "set_tensor_address",
                    "execute", "capture", "graph_context"})


class _PyEnum(enum.IntEnum):
    """pybind11 ``py::arithmetic`` enums: ints whose str() is ``Type.NAME``."""

    def __str__(self) -> str:
        return f"{type(self).__name__}.{self.name}"


def _enum(name: str, values: dict[str, int]):
    return _PyEnum(name, values)


class Dims(tuple):
    """``trt.Dims``: iterable ints, -1 where the shape is not resolved."""


# -- the fake CUDA ------------------------------------------------------------------------------


class FakeCuda(Cuda):
    """Device memory is host bytes; work runs at once, or is recorded while a capture is open."""

    api = "fake-cuda"
    memory: dict[int, np.ndarray] = {}  # device pointer → bytes (shared with the fake TensorRT)
    current: "FakeCuda | None" = None

    def __init__(self, device=0):
        super().__init__(device)
        self.calls = Counter()
        self.capturing: list | None = None  # work recorded while a capture is open
        self.invalidated = False  # the open capture was invalidated (an op not permitted in capture)
        self.last_error = 0  # cudaGetLastError's pending value
        self.closed = False

    def _unwrap(self, what, result):
        self.calls[what] += 1
        return result

    def device_info(self):
        return DeviceInfo(self.device, "Fake GPU", "8.6")

    def _stream_create(self):
        return object()

    def _stream_destroy(self, handle):
        pass

    def stream_ptr(self, handle):
        return id(handle)

    def _stream_synchronize(self, handle):
        if self.capturing is not None:  # synchronising a capturing stream is illegal: it invalidates the capture
            self.invalidate()
            raise BackendError("fake-cuda: cudaStreamSynchronize failed: cudaErrorStreamCaptureUnsupported")

    def _event_create(self):
        return [0.0]

    def _event_destroy(self, handle):
        pass

    def _event_record(self, event, stream):
        event[0] = time.perf_counter()

    def _event_elapsed_ms(self, start, end):
        return (end[0] - start[0]) * 1e3

    def _host_alloc(self, nbytes):
        raw = np.zeros(nbytes, np.uint8)
        return raw, raw

    def _host_free(self, handle, array):
        pass

    def _device_alloc(self, nbytes):
        ptr = max(FakeCuda.memory, default=1 << 20) + (1 << 24)  # distinct across wrappers sharing the memory
        FakeCuda.memory[ptr] = np.zeros(nbytes, np.uint8)
        return ptr, ptr

    def _device_free(self, handle):
        del FakeCuda.memory[handle]

    def _copy_h2d(self, dst, src, nbytes, stream):
        FakeCuda.memory[dst.ptr][:nbytes] = src._raw[:nbytes]

    def _copy_d2h(self, dst, src, nbytes, stream):
        dst._raw[:nbytes] = FakeCuda.memory[src.ptr][:nbytes]

    def invalidate(self):
        self.invalidated = True
        self.last_error = "cudaErrorStreamCaptureInvalidated"

    def _capture_begin(self, stream):
        self.capturing, self.invalidated = [], False

    def _capture_end(self, stream):
        captured, self.capturing = self.capturing, None
        if self.invalidated:
            raise BackendError("fake-cuda: cudaStreamEndCapture failed: cudaErrorStreamCaptureInvalidated")
        return "graph", captured

    def _graph_launch(self, graph_exec, stream):
        for work in graph_exec:
            work()

    def _graph_destroy(self, graph, graph_exec):
        pass

    def _clear_error(self):
        err, self.last_error = self.last_error, 0
        return err

    def close(self):
        self.closed = True


# -- the fake TensorRT ------------------------------------------------------------------------------


def make_fake_trt(version: str, calls: list, faults: set | frozenset = frozenset()):
    """A ``tensorrt`` module of ``version`` ('10.x' or '11.x'); ``calls`` records what the code asked."""
    unknown = set(faults) - FAULTS
    assert not unknown, f"unknown fault(s) {unknown}"
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.NetworkDefinitionCreationFlag = _enum("NetworkDefinitionCreationFlag", NETWORK_FLAGS[major])
    trt.BuilderFlag = _enum("BuilderFlag", BUILDER_FLAGS[major])
    trt.DataType = _enum("DataType", DATA_TYPES)
    trt.TensorIOMode = _enum("TensorIOMode", dict(NONE=0, INPUT=1, OUTPUT=2))
    trt.MemoryPoolType = _enum("MemoryPoolType", dict(WORKSPACE=0, DLA_MANAGED_SRAM=1, DLA_LOCAL_DRAM=2,
                                                      DLA_GLOBAL_DRAM=3, TACTIC_DRAM=4, TACTIC_SHARED_MEMORY=5))
    severity = _enum("Severity", dict(INTERNAL_ERROR=0, ERROR=1, WARNING=2, INFO=3, VERBOSE=4))
    dtypes = {trt.DataType.UINT8: np.uint8, trt.DataType.FLOAT: np.float32, trt.DataType.HALF: np.float16}
    trt.nptype = lambda dt: dtypes[dt]
    state = types.SimpleNamespace(loggers=[])
    trt._fake_state = state

    class ILogger:
        Severity = severity

        def __init__(self):
            pass

    trt.ILogger = ILogger

    def _remember(logger):
        assert isinstance(logger, ILogger), "TensorRT takes an ILogger subclass"
        state.loggers.append(logger)

    class Tensor:
        def __init__(self, name, shape, dtype):
            self.name, self.shape, self.dtype = name, Dims(shape), dtype

    class Network:
        def __init__(self, flags):
            calls.append(("create_network", flags))
            known = {f.name: f for f in trt.NetworkDefinitionCreationFlag}
            self.flag_names = {n for n, f in known.items() if flags & (1 << int(f))}
            assert flags < (1 << len(known)), f"create_network: flag bits {flags:#x} beyond the enum"
            # 10.x: only the STRONGLY_TYPED bit makes it strongly typed (EXPLICIT_BATCH is ignored);
            # 11.x: always strongly typed, the deprecated bit is ignored
            self.strongly_typed = major >= 11 or "STRONGLY_TYPED" in self.flag_names
            self.inputs = []
            state.network = self

        @property
        def num_inputs(self):
            return len(self.inputs)

        def get_input(self, i):
            return self.inputs[i]

    class ParserError:
        def __init__(self, text):
            self.text = text

        def __str__(self):
            return self.text

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.errors = network, []

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, i):
            return self.errors[i]

        def parse_from_file(self, path):
            if "parse" in faults:
                self.errors = [ParserError("In node 3 (Conv): INVALID_NODE:\nunsupported attribute"),
                               ParserError("ModelImporter.cpp:1: parse failed")]
                return False
            self.network.onnx = open(path, "rb").read()
            dims = onnx.load_from_string(self.network.onnx).graph.input[0].type.tensor_type.shape.dim
            self.network.inputs = [Tensor("images", (-1, dims[1].dim_value, dims[2].dim_value, 3),
                                          trt.DataType.UINT8)]
            return True

    class TimingCache:
        def __init__(self, entries):
            self.entries = list(entries)

        def serialize(self):
            state.on_serialize_cache(self)
            return memoryview(CACHE_MAGIC + ",".join(self.entries).encode())

        def combine(self, other, ignore_mismatch):
            calls.append(("combine_cache", tuple(other.entries)))
            self.entries += [e for e in other.entries if e not in self.entries]
            return True

    state.on_serialize_cache = lambda cache: None

    class Profile:
        def set_shape(self, input, min, opt, max):  # noqa: A002 - the binding's keyword names
            if "profile_set_shape" in faults or not (min[0] <= opt[0] <= max[0]):
                raise RuntimeError("Shape provided for opt is inconsistent with other shapes.")
            self.shapes = (input, tuple(min), tuple(opt), tuple(max))

    class Config:
        def __init__(self):
            self.cache = None
            self.profiles = []

        def set_memory_pool_limit(self, pool, pool_size):
            calls.append(("workspace", pool.name, pool_size))

        def __setattr__(self, name, value):
            if name == "builder_optimization_level":
                calls.append(("opt_level", value))
            object.__setattr__(self, name, value)

        def set_flag(self, flag):
            assert isinstance(flag, trt.BuilderFlag)
            calls.append(("flag", flag.name))

        def add_optimization_profile(self, profile):
            calls.append(("profile", profile.shapes))
            if "profile_index" in faults:
                return -1
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, serialized_timing_cache):
            blob = bytes(serialized_timing_cache)
            calls.append(("timing_cache_in", blob))
            if "timing_cache" in faults or (blob and not blob.startswith(CACHE_MAGIC)):
                return None  # nullptr: not a timing cache
            text = blob[len(CACHE_MAGIC):].decode()
            return TimingCache(text.split(",") if text else [])

        def set_timing_cache(self, cache, ignore_mismatch):
            if "set_timing_cache" in faults and cache.entries:
                return False  # a cache from another device/TensorRT
            self.cache = cache
            return True

        def get_timing_cache(self):
            return self.cache

    class Builder:
        def __init__(self, logger):
            _remember(logger)
            self.logger = logger

        def create_network(self, flags=0):
            return Network(flags)

        def create_builder_config(self):
            return None if "builder_config" in faults else Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            assert config.profiles, "a dynamic-batch network needs an optimisation profile"
            self.logger.log(severity.WARNING, "fake warning from the builder")
            state.on_build(config)
            if "build" in faults:
                self.logger.log(severity.ERROR, "[optimizer.cpp::computeCosts] Error Code 10:\nno implementation")
                return None
            if config.cache is not None:
                config.cache.entries.append(f"tactics-{len(network.onnx)}")
            return memoryview(PLAN_MAGIC + network.onnx)

    state.on_build = lambda config: None

    class Engine:
        def __init__(self, blob):
            self.session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
            self.io = [(i.name, trt.TensorIOMode.INPUT) for i in self.session.get_inputs()]
            self.io += [(o.name, trt.TensorIOMode.OUTPUT) for o in self.session.get_outputs()]
            self.num_io_tensors, self.num_layers = len(self.io), len(self.io)
            self.hw = tuple(self.session.get_inputs()[0].shape[1:3])
            self.max_batch = 4
            self.contexts = 0

        def get_tensor_name(self, index):
            return self.io[index][0]

        def get_tensor_mode(self, name):
            return dict(self.io)[name]

        def get_tensor_dtype(self, name):
            return trt.DataType.UINT8 if name == "images" else trt.DataType.FLOAT

        def get_tensor_shape(self, name):
            shapes = {"images": (-1, *self.hw, 3), "score": (-1,), "anomaly_map": (-1, 1, *self.hw)}
            return Dims(shapes[name])

        def get_tensor_profile_shape(self, name, profile_index):
            return [Dims((b, *self.hw, 3)) for b in (1, self.max_batch, self.max_batch)]

        def create_execution_context(self):
            if "context" in faults or ("graph_context" in faults and self.contexts >= 1):
                return None
            self.contexts += 1
            return Context(self)

    class Context:
        def __init__(self, engine):
            self.engine, self.addresses, self.n = engine, {}, None
            state.contexts = getattr(state, "contexts", []) + [self]

        def set_input_shape(self, name, shape):
            calls.append(("set_input_shape", shape[0]))
            if "set_input_shape" in faults or not 1 <= shape[0] <= self.engine.max_batch:
                return False
            self.n = shape[0]
            return True

        def get_tensor_shape(self, name):
            rest = tuple(self.engine.get_tensor_shape(name)[1:])
            return Dims(((self.n if self.n is not None else -1),) + rest)

        def set_tensor_address(self, name, memory):
            assert type(memory) is int, f"set_tensor_address takes an int pointer, got {type(memory).__name__}"
            calls.append(("set_tensor_address", name))
            if "set_tensor_address" in faults:
                return False
            self.addresses[name] = memory
            return True

        def execute_async_v3(self, stream_handle):
            assert type(stream_handle) is int, f"execute_async_v3 takes an int stream, got {type(stream_handle)}"
            cuda = FakeCuda.current
            if "execute" in faults or cuda.last_error:  # TensorRT checks cudaGetLastError after its launches
                return False
            if cuda.capturing is not None:
                if "capture" in faults:  # an op not permitted under capture: enqueue fails, capture invalidated
                    cuda.invalidate()
                    return False
                n = self.n
                cuda.capturing.append(lambda: self._replay(n))  # the graph bakes in this shape
                return True
            calls.append(("execute", self.n))
            self._run(self.n)
            return True

        def _replay(self, n):
            assert self.n == n, f"graph captured at batch {n} replayed on a context re-shaped to {self.n}"
            calls.append(("replay", n))
            self._run(n)

        def _run(self, n):
            mem, (h, w) = FakeCuda.memory, self.engine.hw
            images = mem[self.addresses["images"]][: n * h * w * 3].reshape(n, h, w, 3)
            score, amap = self.engine.session.run(["score", "anomaly_map"], {"images": images})
            for name, value in (("score", score), ("anomaly_map", amap)):
                raw = np.ascontiguousarray(value, np.float32).view(np.uint8).ravel()
                mem[self.addresses[name]][: raw.size] = raw

    class Runtime:
        def __init__(self, logger):
            _remember(logger)

        def deserialize_cuda_engine(self, serialized_engine):
            blob = bytes(serialized_engine)
            if "deserialize" in faults or not blob.startswith(PLAN_MAGIC):
                return None  # the binding returns None (nullptr) for an engine it cannot read
            return Engine(blob[len(PLAN_MAGIC):])

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, OnnxParser, Runtime
    return trt
