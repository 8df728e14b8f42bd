"""The builder and runtime orchestration on the CPU, against a stand-in TensorRT and CUDA.

No GPU here, so these tests swap in (1) a fake ``tensorrt`` module exposing the
documented TensorRT 10/11 Python names the code uses, whose "engine" is the ONNX
graph run by ONNX Runtime, and (2) a fake CUDA wrapper whose "device memory" is
host bytes, driven through the real Stream/Event/PinnedBuffer/DeviceBuffer/
CudaGraph classes. They check what the code asks of TensorRT (strongly typed
network, profile, workspace, optimisation level, timing cache, FP16 flag only as
the 10.x fallback; set_tensor_address once, set_input_shape per batch-size change,
copy sizes, CUDA-graph capture after the warm-up run) and that outputs equal
ONNX Runtime's. What only a GPU can show is in test_tensorrt_gpu.py.
"""

from __future__ import annotations

import enum
import sys
import time
import types
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import inspector.backends.cuda as cuda_mod
from inspector.backends import load_backend
from inspector.backends.cuda import Cuda, DeviceInfo
from inspector.engine_build import BuildOptions, build_engine
from inspector.errors import BackendError, ExportError
from tiny_graphs import write_exported

SIZE = 32


# -- a fake CUDA: device memory is host bytes, work runs immediately -----------------------------


class FakeCuda(Cuda):
    api = "fake-cuda"
    memory: dict[int, np.ndarray] = {}  # device pointer → bytes (shared with the fake TensorRT)
    current: "FakeCuda | None" = None
    capturing: list | None = None  # work recorded while a stream capture is open

    def __init__(self, device=0):
        super().__init__(device)
        self.calls = Counter()
        self._next = 1 << 20

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
        pass

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
        ptr, self._next = self._next, self._next + nbytes + 256
        FakeCuda.memory[ptr] = np.zeros(nbytes, np.uint8)
        return ptr, ptr

    def _device_free(self, handle):
        del FakeCuda.memory[handle]

    def _copy_h2d(self, dst, src, nbytes, stream):
        FakeCuda.memory[dst.ptr][:nbytes] = src._raw[:nbytes]

    def _copy_d2h(self, dst, src, nbytes, stream):
        dst._raw[:nbytes] = FakeCuda.memory[src.ptr][:nbytes]

    def _capture_begin(self, stream):
        self.capturing = []

    def _capture_end(self, stream):
        captured, self.capturing = self.capturing, None
        return "graph", captured

    def _graph_launch(self, graph_exec, stream):
        for work in graph_exec:
            work()

    def _graph_destroy(self, graph, graph_exec):
        pass


# -- a fake TensorRT: the documented names, an "engine" that is the ONNX run by ONNX Runtime ---------


def make_fake_trt(version: str, calls: list):
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    major = int(version.split(".")[0])

    class Severity(enum.Enum):
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    class ILogger:
        def __init__(self):
            pass

    ILogger.Severity = Severity
    trt.ILogger = ILogger
    trt.TensorIOMode = enum.Enum("TensorIOMode", "NONE INPUT OUTPUT")
    trt.DataType = enum.Enum("DataType", "FLOAT HALF INT8 INT32 BOOL UINT8")
    trt.MemoryPoolType = enum.Enum("MemoryPoolType", "WORKSPACE")
    flags = ["STRONGLY_TYPED"] + (["EXPLICIT_BATCH"] if major == 10 else [])
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", flags, start=0)
    trt.BuilderFlag = enum.Enum("BuilderFlag", ["FP16", "INT8"] if major == 10 else ["REFIT"])
    dtypes = {trt.DataType.UINT8: np.uint8, trt.DataType.FLOAT: np.float32, trt.DataType.HALF: np.float16}
    trt.nptype = lambda dt: dtypes[dt]

    class Tensor:
        def __init__(self, name, shape, dtype):
            self.name, self.shape, self.dtype = name, shape, dtype

    class Network:
        def __init__(self, flags):
            calls.append(("create_network", flags))
            self.inputs = []

        @property
        def num_inputs(self):
            return len(self.inputs)

        def get_input(self, i):
            return self.inputs[i]

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.num_errors = network, 0

        def parse_from_file(self, path):
            self.network.onnx = open(path, "rb").read()
            dims = onnx.load_from_string(self.network.onnx).graph.input[0].type.tensor_type.shape.dim
            self.network.inputs = [Tensor("images", (-1, dims[1].dim_value, dims[2].dim_value, 3),
                                          trt.DataType.UINT8)]
            return True

    class TimingCache:
        def __init__(self, blob):
            self.blob = bytes(blob) or b"fresh"

        def serialize(self):
            return memoryview(self.blob + b"+")

    class Config:
        def __init__(self):
            self.cache = None

        def set_memory_pool_limit(self, pool, size):
            calls.append(("workspace", pool.name, size))

        def __setattr__(self, name, value):
            if name == "builder_optimization_level":
                calls.append(("opt_level", value))
            object.__setattr__(self, name, value)

        def set_flag(self, flag):
            calls.append(("flag", flag.name))

        def add_optimization_profile(self, profile):
            calls.append(("profile", profile.shapes))

        def create_timing_cache(self, blob):
            calls.append(("timing_cache_in", bytes(blob)))
            return TimingCache(blob)

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache
            return True

        def get_timing_cache(self):
            return self.cache

    class Profile:
        def set_shape(self, name, lo, opt, hi):
            self.shapes = (name, lo, opt, hi)

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags=0):
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            self.logger.log(Severity.WARNING, "fake warning from the builder")
            return memoryview(network.onnx)

    class Engine:
        def __init__(self, blob):
            self.session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
            self.io = [(i.name, trt.TensorIOMode.INPUT) for i in self.session.get_inputs()]
            self.io += [(o.name, trt.TensorIOMode.OUTPUT) for o in self.session.get_outputs()]
            self.num_io_tensors, self.num_layers = len(self.io), len(self.io)
            self.hw = tuple(self.session.get_inputs()[0].shape[1:3])

        def get_tensor_name(self, i):
            return self.io[i][0]

        def get_tensor_mode(self, name):
            return dict(self.io)[name]

        def get_tensor_dtype(self, name):
            return trt.DataType.UINT8 if name == "images" else trt.DataType.FLOAT

        def get_tensor_shape(self, name):
            return {"images": (-1, *self.hw, 3), "score": (-1,), "anomaly_map": (-1, 1, *self.hw)}[name]

        def get_tensor_profile_shape(self, name, index):
            return [(1, *self.hw, 3), (4, *self.hw, 3), (4, *self.hw, 3)]

        def create_execution_context(self):
            return Context(self)

    class Context:
        def __init__(self, engine):
            self.engine, self.addresses, self.n = engine, {}, None

        def set_input_shape(self, name, shape):
            calls.append(("set_input_shape", shape[0]))
            if shape[0] > 4:
                return False
            self.n = shape[0]
            return True

        def get_tensor_shape(self, name):
            return (self.n,) + tuple(self.engine.get_tensor_shape(name)[1:])

        def set_tensor_address(self, name, ptr):
            calls.append(("set_tensor_address", name))
            self.addresses[name] = ptr
            return True

        def execute_async_v3(self, stream_handle):
            if FakeCuda.current.capturing is not None:
                FakeCuda.current.capturing.append(self._run)  # recorded, not run
                return True
            calls.append(("execute", self.n))
            self._run()
            return True

        def _run(self):
            n, mem, (h, w) = self.n, FakeCuda.memory, self.engine.hw
            images = mem[self.addresses["images"]][: n * h * w * 3].reshape(n, h, w, 3)
            score, amap = self.engine.session.run(["score", "anomaly_map"], {"images": images})
            for name, value in (("score", score), ("anomaly_map", amap)):
                raw = np.ascontiguousarray(value, np.float32).view(np.uint8).ravel()
                mem[self.addresses[name]][: raw.size] = raw

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, blob):
            return Engine(bytes(blob))

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, OnnxParser, Runtime
    return trt


@pytest.fixture()
def fake(monkeypatch, request):
    version = getattr(request, "param", "10.13.0.35")
    calls: list = []
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_trt(version, calls))

    def open_fake(api="cuda-python", device=0):
        FakeCuda.current = FakeCuda(device)
        return FakeCuda.current

    monkeypatch.setattr(cuda_mod, "open_cuda", open_fake)
    FakeCuda.memory.clear()
    return calls


@pytest.fixture()
def exported(tmp_path):
    return write_exported(tmp_path / "export", height=SIZE, width=SIZE)


def _batch(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def test_build_asks_for_a_strongly_typed_network_profile_workspace_and_cache(fake, exported, tmp_path):
    out = tmp_path / "engines" / "tiny.fp16.plan"
    sidecar = build_engine(exported.with_name("tiny.fp16.onnx"), out,
                           BuildOptions(max_batch=4, opt_batch=2, workspace_mb=256, optimization_level=4))
    assert ("create_network", 1 << 0) in fake  # STRONGLY_TYPED
    assert ("workspace", "WORKSPACE", 256 << 20) in fake and ("opt_level", 4) in fake
    assert ("profile", ("images", (1, SIZE, SIZE, 3), (2, SIZE, SIZE, 3), (4, SIZE, SIZE, 3))) in fake
    assert not [c for c in fake if c[0] == "flag"]  # no precision flags on the strongly typed path
    assert sidecar["precision"] == "fp16" and sidecar["network"] == "strongly_typed"
    assert sidecar["gpu"] == {"name": "Fake GPU", "compute_capability": "8.6"}
    assert sidecar["profile"] == {"min_batch": 1, "opt_batch": 2, "max_batch": 4}
    assert sidecar["io"]["images"] == {"mode": "input", "dtype": "uint8", "shape": [-1, SIZE, SIZE, 3]}
    assert sidecar["build"]["log"]["warnings"] == ["fake warning from the builder"]
    assert "--max-batch 4 --opt-batch 2 --workspace-mb 256 --opt-level 4" in sidecar["build"]["command"]
    assert out.with_suffix(".build.log").read_text() == "[WARNING] fake warning from the builder\n"
    cache = tmp_path / "engines" / "timing-trt10.13.0.35-sm86.cache"
    assert cache.read_bytes() == b"fresh+"
    build_engine(exported.with_name("tiny.fp16.onnx"), out, BuildOptions(max_batch=4))
    assert ("timing_cache_in", b"fresh+") in fake  # the persisted cache is reused
    assert cache.read_bytes() == b"fresh++"


def test_fp16_flag_fallback_on_10_only(fake, exported, tmp_path):
    sidecar = build_engine(exported, tmp_path / "tiny.fp16.plan", BuildOptions(max_batch=2, fp16_flag=True))
    assert ("flag", "FP16") in fake and ("create_network", 0) in fake
    assert sidecar["precision"] == "fp16" and sidecar["network"] == "fp16_flag"


@pytest.mark.parametrize("fake", ["11.4.0.106"], indirect=True)
def test_tensorrt_11_refuses_the_fp16_flag_and_builds_strongly_typed(fake, exported, tmp_path):
    with pytest.raises(ExportError, match="TensorRT 11 removed BuilderFlag.FP16"):
        build_engine(exported, tmp_path / "x.plan", BuildOptions(fp16_flag=True))
    sidecar = build_engine(exported.with_name("tiny.fp16.onnx"), tmp_path / "tiny.fp16.plan", BuildOptions(max_batch=2))
    assert sidecar["tensorrt"] == {"version": "11.4.0.106", "major": 11} and sidecar["network"] == "strongly_typed"


def _engine(exported, tmp_path, max_batch=4):
    out = tmp_path / "engines" / "tiny.fp16.plan"
    build_engine(exported.with_name("tiny.fp16.onnx"), out, BuildOptions(max_batch=max_batch))
    return out


def test_runtime_matches_onnxruntime_and_sets_addresses_once(fake, exported, tmp_path):
    engine = _engine(exported, tmp_path)
    reference = load_backend(exported.with_name("tiny.fp16.onnx"))
    fake.clear()
    with load_backend(engine) as backend:
        assert backend.input_spec.max_batch == 4 and backend.precision == "fp16"
        assert [c[1] for c in fake if c[0] == "set_tensor_address"] == ["images", "score", "anomaly_map"]
        for n in (1, 3, 3, 4, 1):
            batch = _batch(n, seed=n)
            got, want = backend.infer(batch), reference.infer(batch)
            np.testing.assert_array_equal(got.scores, want.scores)
            np.testing.assert_array_equal(got.maps, want.maps)
            assert set(got.timings_ms) == {"h2d", "compute", "d2h", "total"}
        with pytest.raises(BackendError, match="exceeds the maximum 4"):
            backend.infer(_batch(5))
        cuda = FakeCuda.current
    assert [c[1] for c in fake if c[0] == "set_tensor_address"] == ["images", "score", "anomaly_map"]  # once
    assert [c[1] for c in fake if c[0] == "set_input_shape"] == [4, 1, 3, 4, 1]  # max at load, then on change
    assert cuda.calls["cudaStreamSynchronize"] == 5 + 1  # one per batch, one at close
    assert cuda.calls["cudaMalloc"] == 3 and cuda.calls["cudaFree"] == 3 and cuda.calls["cudaFreeHost"] == 3
    assert cuda.calls["cudaEventCreate"] == cuda.calls["cudaEventDestroy"] == 4
    assert FakeCuda.memory == {}  # every device buffer freed at close


def test_cuda_graph_captured_after_warm_up_and_replayed(fake, exported, tmp_path):
    engine = _engine(exported, tmp_path)
    with load_backend(engine) as plain:
        expected = [plain.infer(_batch(n, seed=n)).maps for n in (2, 2, 4, 2)]
    fake.clear()
    with load_backend(engine, cuda_graphs=True) as graphed:
        got = [graphed.infer(_batch(n, seed=n)).maps for n in (2, 2, 4, 2)]
        assert sorted(graphed._graphs) == [2, 4]
    assert [c[1] for c in fake if c[0] == "execute"] == [2, 4]  # only the warm-up runs; the rest are replays
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)


def test_runtime_refuses_a_mismatched_engine(fake, exported, tmp_path, monkeypatch):
    engine = _engine(exported, tmp_path)
    sys.modules["tensorrt"].__version__ = "10.14.1.48"
    with pytest.raises(BackendError, match=r"built with TensorRT 10\.13\.0\.35, this machine has TensorRT "
                                           r"10\.14\.1\.48; rebuild with: inspector build .*tiny\.fp16\.onnx"):
        load_backend(engine)
    sys.modules["tensorrt"].__version__ = "10.13.0.35"
    load_backend(engine).close()
    exported.with_name("tiny.fp16.onnx").write_bytes(b"re-exported")  # the source ONNX changed since the build
    with pytest.raises(BackendError, match="the source ONNX now has"):
        load_backend(engine)


def test_verify_and_bench_through_the_tensorrt_backend(fake, exported, tmp_path, tiny_dataset):
    from inspector.benchmarking import run_benchmark
    from inspector.verify import verify

    sized = write_exported(tmp_path / "e64", height=64, width=64)  # the tiny_dataset's image size
    engine = _engine(sized, tmp_path)
    report = verify(engine, sized, tiny_dataset)
    assert report["passed"] and report["candidate"]["backend"] == "tensorrt"
    assert report["metrics"]["score_max_abs_diff"] > 0  # FP16 engine vs FP32 reference
    bench = run_benchmark(engine, [1, 4], duration_s=0.05, warmup=1)
    assert {"h2d", "compute", "d2h"} <= set(bench["results"][1]["stages_ms"])
    assert bench["environment"]["gpu"] == "Fake GPU" and bench["environment"]["cuda_api"] == "fake-cuda"
