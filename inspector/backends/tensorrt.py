"""TensorRT runtime backend (TensorRT 10.x and 11.x): deserialise an engine and run it.

An engine ``engines/rs-brick.fp16.plan`` comes with its sidecar
``engines/rs-brick.fp16.json`` written by ``inspector build``
(:mod:`inspector.deploy.engine_build`). An engine only runs with the TensorRT version
and the GPU it was built for, so the backend first checks the sidecar against
this machine (:func:`engine_mismatch`, a pure function) and refuses a mismatch
with one line ending in the exact ``inspector build …`` command that rebuilds it.

Runtime (one object per loaded engine, used from the thread that made it):

* one execution context and one CUDA stream, owned by the constructing thread;
* pinned host and device buffers for every I/O tensor, allocated once for the
  profile's maximum batch; ``set_tensor_address`` is called once;
* per batch: copy into the pinned input, ``set_input_shape`` only when the
  batch size changes, async H2D → ``execute_async_v3`` → async D2H on the one
  stream, one synchronisation; CUDA events time H2D, compute and D2H
  (``timings_ms`` keys ``h2d``, ``compute``, ``d2h``);
* optionally (``cuda_graphs=True``) the compute of each batch size is captured
  into a CUDA graph after its first (warm-up) run, on an execution context of
  its own, and replayed afterwards; a size whose capture fails runs by plain
  enqueue (warned once, counted in ``graph_capture_failures``), as trtexec does.

CUDA goes through :mod:`inspector.backends.cuda` (cuda-python by default,
pycuda with ``cuda="pycuda"``). Nothing here imports TensorRT at import time, so
the sidecar checks are usable (and tested) without a GPU. The daemon imports
this module, never the builder.
"""

from __future__ import annotations

import logging
import shlex
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inspector.backends.base import Backend, InferenceResult, InputSpec
from inspector.backends.cuda import GraphCaptureError
from inspector.config import not_a_file
from inspector.errors import BackendError
from inspector.artifacts import input_spec as card_input_spec, missing_model_hint
from inspector.artifacts.engine_card import ENGINE_SCHEMA_VERSION, read_engine_sidecar
from inspector.artifacts.model_card import sha256_file
from inspector.contract import INPUT_NAME, MAP_NAME, SCORE_NAME

log = logging.getLogger(__name__)

TIMING_KEYS = ("h2d", "compute", "d2h")


@dataclass(frozen=True)
class RuntimeFacts:
    """What this machine offers an engine: TensorRT version and GPU."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str


def rebuild_command(sidecar: dict[str, Any], engine_path: str | Path) -> str:
    """The ``inspector build …`` command that recreates this engine here."""
    build = sidecar.get("build") or {}
    if build.get("command"):
        return str(build["command"])
    onnx = (sidecar.get("onnx") or {}).get("path") or "<model>.onnx"
    max_batch = (sidecar.get("profile") or {}).get("max_batch")
    parts = ["inspector", "build", str(onnx), "--out", str(engine_path)]
    if max_batch:
        parts += ["--max-batch", str(max_batch)]
    return shlex.join(parts)


def source_onnx_candidates(sidecar: dict[str, Any], engine_path: str | Path) -> list[Path]:
    """Where the engine's source ONNX may be: beside the engine, then its recorded path."""
    onnx = sidecar.get("onnx") or {}
    found = []
    if onnx.get("file"):
        found.append(Path(engine_path).parent / onnx["file"])
    if onnx.get("path"):
        found.append(Path(onnx["path"]))
    return found


def engine_mismatch(sidecar: dict[str, Any], facts: RuntimeFacts, engine_path: str | Path,
                    onnx_sha256: str | None = None, engine_sha256: str | None = None) -> str | None:
    """Why this engine cannot run here (one line, ending in the rebuild command), or None.

    ``onnx_sha256`` is the hash of the source ONNX found beside the engine or at
    its recorded path (None when absent: then the ONNX is not compared); ``engine_sha256`` the hash of
    the engine file itself (None: not compared).
    """
    fix = f"; rebuild with: {rebuild_command(sidecar, engine_path)}"
    where = str(engine_path)
    if sidecar.get("schema_version") != ENGINE_SCHEMA_VERSION:
        return (f"{where}: engine sidecar schema {sidecar.get('schema_version')!r} is not "
                f"{ENGINE_SCHEMA_VERSION}{fix}")
    built_trt = str((sidecar.get("tensorrt") or {}).get("version", "?"))
    if built_trt != facts.tensorrt_version:
        return f"{where}: built with TensorRT {built_trt}, this machine has TensorRT {facts.tensorrt_version}{fix}"
    gpu = sidecar.get("gpu") or {}
    built_cc = str(gpu.get("compute_capability", "?"))
    built_name = str(gpu.get("name", "?"))
    if built_cc != facts.compute_capability or built_name != facts.gpu_name:
        return (f"{where}: built for {built_name} (compute capability {built_cc}), this GPU is "
                f"{facts.gpu_name} (compute capability {facts.compute_capability}){fix}")
    recorded = (sidecar.get("engine") or {}).get("sha256")
    if engine_sha256 is not None and recorded and recorded != engine_sha256:
        return (f"{where}: engine file sha256 {engine_sha256[:12]}… does not match its sidecar "
                f"({str(recorded)[:12]}…){fix}")
    onnx = sidecar.get("onnx") or {}
    if onnx_sha256 is not None and onnx.get("sha256") != onnx_sha256:
        return (f"{where}: built from {onnx.get('file', 'an ONNX')} with sha256 {str(onnx.get('sha256'))[:12]}…, "
                f"the source ONNX now has {onnx_sha256[:12]}…{fix}")
    return None


def check_engine(sidecar: dict[str, Any], facts: RuntimeFacts, engine_path: str | Path,
                 verify_files: bool = True) -> str | None:
    """Raise BackendError when the engine cannot run here (see :func:`engine_mismatch`).

    With ``verify_files`` the engine and its source ONNX are hashed and compared;
    returns the engine file's sha256 then, None otherwise (nothing is read).
    """
    onnx_sha = engine_sha = None
    if verify_files:
        engine_sha = sha256_file(engine_path)
        onnx_path = next((p for p in source_onnx_candidates(sidecar, engine_path) if p.is_file()), None)
        onnx_sha = sha256_file(onnx_path) if onnx_path is not None else None
    problem = engine_mismatch(sidecar, facts, engine_path, onnx_sha256=onnx_sha, engine_sha256=engine_sha)
    if problem:
        raise BackendError(problem)
    return engine_sha


# -- TensorRT helpers shared with the builder -------------------------------------


def import_tensorrt():
    """Import TensorRT or explain how to install it (one line)."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendError(f"TensorRT is not installed ({exc}); on a machine with an NVIDIA GPU: "
                           "pip install -e \".[tensorrt]\"") from None
    return trt


def tensorrt_major(trt) -> int:
    return int(str(trt.__version__).split(".")[0])


_LOGGERS: dict[int, Any] = {}  # id(tensorrt module) → the process's one logger
_LOGGERS_LOCK = threading.Lock()
_LEVELS = ("INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE")
_PY_LEVELS = (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG)


def shared_logger(trt):
    """The one TensorRT logger of this process, forwarding to :mod:`logging` (``inspector.tensorrt``).

    TensorRT keeps the logger of the first Builder/Runtime as its global logger
    (``getLogger()`` in NvInferRuntime.h) and warns when a later one passes a
    different logger; pyCoreDoc.h: "The logger should be valid until all objects
    created are released". So every Builder and Runtime here gets this one
    object, which lives as long as the process. Messages below WARNING go to
    ``logging.DEBUG``/``INFO`` and are filtered there. A build collects its
    messages with :func:`collect_messages`.
    """
    with _LOGGERS_LOCK:
        logger = _LOGGERS.get(id(trt))
        if logger is None:
            logger = _LOGGERS[id(trt)] = _make_logger_class(trt)()
        return logger


def _make_logger_class(trt):
    sev = trt.ILogger.Severity
    levels = {getattr(sev, name): level for name, level in zip(_LEVELS, _PY_LEVELS)}
    trt_log = logging.getLogger("inspector.tensorrt")

    class _Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.sinks: list[list] = []  # lists collecting (level name, message), see collect_messages
            self.lock = threading.Lock()

        def log(self, severity, msg):  # called by TensorRT, possibly from its own threads
            level = levels.get(severity, logging.INFO)
            if level >= logging.INFO:
                with self.lock:
                    for sink in self.sinks:
                        sink.append((logging.getLevelName(level), str(msg)))
            trt_log.log(level, "%s", msg)

    return _Logger


class collect_messages:
    """``with collect_messages(logger) as records:`` — TensorRT messages (INFO and up) logged meanwhile."""

    def __init__(self, logger) -> None:
        self.logger, self.records = logger, []

    def __enter__(self) -> list[tuple[str, str]]:
        with self.logger.lock:
            self.logger.sinks.append(self.records)
        return self.records

    def __exit__(self, *exc) -> None:
        with self.logger.lock:
            self.logger.sinks.remove(self.records)


def runtime_facts(trt, cuda) -> RuntimeFacts:
    info = cuda.device_info()
    return RuntimeFacts(str(trt.__version__), info.name, info.compute_capability)


# -- the backend ------------------------------------------------------------------

# CUDA graphs: one execution context per captured batch size, never one context
# re-shaped between replays. A captured graph replays the kernels, launch
# parameters and addresses of the shapes set when it was captured; TensorRT's
# developer guide ("CUDA Graphs") says to call enqueueV3 once after an input
# shape change before capturing (it updates the context's internal state) and to
# re-capture when input shapes change. Re-capturing on every change would defeat
# the graphs for a batch order like 1,4,1,3,4, and replaying a graph after
# set_input_shape moved the context to another shape has no precedent in
# NVIDIA's code. trtexec (samples/common/sampleInference.cpp) captures one graph
# per execution context whose shapes then never change; so does this backend:
# each captured size gets its own context, shaped once, on the shared I/O buffers.
# Cost: each such context holds its own activation memory (device_memory_size_v2).


class _Tensor:
    """One I/O tensor: name, dtype, per-sample shape, pinned host + device buffers for max batch."""

    def __init__(self, cuda, name: str, dtype: np.dtype, sample_shape: tuple[int, ...], max_batch: int) -> None:
        self.name = name
        self.dtype = np.dtype(dtype)
        self.sample_shape = tuple(int(d) for d in sample_shape)
        self.sample_bytes = int(np.prod(self.sample_shape, dtype=np.int64)) * self.dtype.itemsize
        self.host = cuda.pinned((max_batch,) + self.sample_shape, self.dtype)
        self.device = cuda.device_buffer(self.host.nbytes)

    def close(self) -> None:
        for buf in (self.device, self.host):
            buf.close()


@dataclass(frozen=True)
class _Captured:
    """A batch size's own execution context (shaped once) and the CUDA graph captured from it."""

    context: Any
    graph: Any


class TensorRTBackend(Backend):
    """A TensorRT engine with its sidecar, run on one stream from the constructing thread."""

    name = "tensorrt"

    def __init__(self, path: str | Path, device: int = 0, cuda: str = "cuda-python",
                 cuda_graphs: bool = False, verify: bool = True) -> None:
        self.path = Path(path)
        self._closed = True
        if (why := not_a_file(self.path, "engine file")) is not None:  # a folder is told as one, not "not found"
            raise BackendError(why + missing_model_hint(self.path))
        if cuda_graphs and cuda == "pycuda":
            raise BackendError(f"{self.path}: CUDA graphs need the cuda-python wrapper (pycuda has no graph API)")
        self.sidecar = read_engine_sidecar(self.path)
        self.precision = str(self.sidecar.get("precision", "fp32"))
        self.cuda_graphs = bool(cuda_graphs)
        self.owner_thread = threading.get_ident()
        trt = import_tensorrt()
        from inspector.backends.cuda import open_cuda

        self._cuda = open_cuda(cuda, device)
        self._closed = False
        self._tensors: dict[str, _Tensor] = {}
        self._graphs: dict[int, _Captured] = {}
        self._uncapturable: set[int] = set()
        self.graph_capture_failures = 0  # captures that failed and fell back to plain enqueue
        self._events: list = []
        self._stream = None
        self._context = self._engine = self._runtime = None
        try:
            self.facts = runtime_facts(trt, self._cuda)
            engine_sha = check_engine(self.sidecar, self.facts, self.path, verify_files=verify)
            # verify=False reads nothing beyond the engine itself: the recorded hash stands for it
            self.sha256 = engine_sha if verify else (self.sidecar.get("engine") or {}).get("sha256")
            self._load(trt)
        except BaseException:
            self.close()
            raise

    # -- loading ---------------------------------------------------------------
    def _load(self, trt) -> None:
        self._runtime = trt.Runtime(shared_logger(trt))
        self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self._engine is None:
            raise BackendError(f"{self.path}: TensorRT could not deserialise the engine (see the log above); "
                               f"rebuild with: {rebuild_command(self.sidecar, self.path)}")
        self._spec = self._check_io(trt)
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise BackendError(f"{self.path}: cannot create an execution context (out of GPU memory?)")
        self._stream = self._cuda.stream()
        self._events = [self._cuda.event() for _ in range(4)]
        self._allocate(trt)
        self._batch = 0
        self.map_hw = self._tensors[MAP_NAME].sample_shape[-2:]

    def _check_io(self, trt) -> InputSpec:
        engine = self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        modes = {n: engine.get_tensor_mode(n) for n in names}
        inputs = [n for n in names if modes[n] == trt.TensorIOMode.INPUT]
        if inputs != [INPUT_NAME]:
            raise BackendError(f"{self.path}: expected one input '{INPUT_NAME}', engine has {inputs}")
        missing = [n for n in (SCORE_NAME, MAP_NAME) if n not in names]
        if missing:
            raise BackendError(f"{self.path}: engine lacks output(s) {missing} (has {names})")
        if engine.get_tensor_dtype(INPUT_NAME) != trt.DataType.UINT8:
            raise BackendError(f"{self.path}: input '{INPUT_NAME}' is {engine.get_tensor_dtype(INPUT_NAME)}, expected UINT8")
        spec = card_input_spec(self.sidecar, str(self.path))
        shape = tuple(engine.get_tensor_shape(INPUT_NAME))
        if len(shape) != 4 or shape[1:] != (spec.height, spec.width, spec.channels):
            raise BackendError(f"{self.path}: engine input shape {shape} does not match the sidecar's "
                               f"(N, {spec.height}, {spec.width}, {spec.channels})")
        if shape[0] >= 0:
            max_batch = int(shape[0])
        else:
            max_batch = int(tuple(engine.get_tensor_profile_shape(INPUT_NAME, 0)[2])[0])
        return spec.with_max_batch(max_batch)

    def _allocate(self, trt) -> None:
        spec, engine, context = self._spec, self._engine, self._context
        self._set_batch(spec.max_batch)  # output shapes at max batch tell the buffer sizes
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            shape = tuple(context.get_tensor_shape(name))
            if any(d < 0 for d in shape) or shape[0] != spec.max_batch:
                raise BackendError(f"{self.path}: tensor '{name}' has unresolved shape {shape} at batch {spec.max_batch}")
            tensor = _Tensor(self._cuda, name, trt.nptype(engine.get_tensor_dtype(name)), shape[1:], spec.max_batch)
            self._tensors[name] = tensor
            if not context.set_tensor_address(name, tensor.device.ptr):
                raise BackendError(f"{self.path}: set_tensor_address failed for '{name}'")
        score, amap = self._tensors[SCORE_NAME], self._tensors[MAP_NAME]
        if score.sample_shape != () or len(amap.sample_shape) != 3 or amap.sample_shape[0] != 1:
            raise BackendError(f"{self.path}: outputs have per-image shapes score {score.sample_shape}, "
                               f"anomaly_map {amap.sample_shape}; expected () and (1, h, w)")

    # -- inference -------------------------------------------------------------
    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    def _set_batch(self, n: int) -> None:
        self._shape_context(self._context, n)
        self._batch = n

    def _shape_context(self, context, n: int) -> None:
        shape = (n, self._spec.height, self._spec.width, self._spec.channels)
        if not context.set_input_shape(INPUT_NAME, shape):
            raise BackendError(f"{self.path}: set_input_shape{shape} refused "
                               f"(profile max batch {self._spec.max_batch})")

    def _execute(self, context, n: int) -> None:
        if not context.execute_async_v3(self._stream.ptr):
            raise BackendError(f"{self.path}: execute_async_v3 failed at batch {n} (see the TensorRT log)")

    def _run(self, batch: np.ndarray) -> InferenceResult:
        if self._closed:
            raise BackendError(f"{self.path}: backend is closed")
        if threading.get_ident() != self.owner_thread:
            raise BackendError(f"{self.path}: TensorRT backend used from a thread that did not create it")
        start = time.perf_counter()
        n = int(batch.shape[0])
        images, score, amap = (self._tensors[k] for k in (INPUT_NAME, SCORE_NAME, MAP_NAME))
        images.host.array[:n] = batch
        stream, ev = self._stream, self._events
        ev[0].record(stream)
        images.device.copy_from(images.host, n * images.sample_bytes, stream)
        ev[1].record(stream)
        captured = self._graphs.get(n)
        if captured is not None:
            captured.graph.launch(stream)
        else:
            if n != self._batch:
                self._set_batch(n)
            self._execute(self._context, n)
        ev[2].record(stream)
        for out in (score, amap):
            out.device.copy_to(out.host, n * out.sample_bytes, stream)
        ev[3].record(stream)
        stream.synchronize()
        scores = score.host.array[:n].astype(np.float32, copy=True)
        maps = amap.host.array[:n].astype(np.float32, copy=True)
        timings = {"h2d": ev[1].elapsed_ms(ev[0]), "compute": ev[2].elapsed_ms(ev[1]),
                   "d2h": ev[3].elapsed_ms(ev[2])}
        if self.cuda_graphs and captured is None and n not in self._uncapturable:
            self._capture(n)  # after this (warm-up) run of batch size n; outputs are already copied out
        timings["total"] = (time.perf_counter() - start) * 1e3
        return InferenceResult(scores=scores, maps=maps, timings_ms=timings)

    # -- CUDA graphs (see the comment above the class) ----------------------------
    def _capture(self, n: int) -> None:
        """Capture batch size ``n`` on its own execution context; on failure fall back to plain enqueue."""
        context = self._engine.create_execution_context()
        if context is None:
            return self._capture_failed(n, "no execution context for the graph (out of GPU memory?)")
        for name, tensor in self._tensors.items():
            if not context.set_tensor_address(name, tensor.device.ptr):
                raise BackendError(f"{self.path}: set_tensor_address failed for '{name}' (graph context, batch {n})")
        self._shape_context(context, n)
        self._execute(context, n)  # enqueue once after the shape change, outside the capture
        self._stream.synchronize()
        try:
            graph = self._cuda.capture_graph(self._stream, lambda: self._execute(context, n))
        except GraphCaptureError as exc:
            return self._capture_failed(n, str(exc))
        self._graphs[n] = _Captured(context, graph)

    def _capture_failed(self, n: int, why: str) -> None:
        """As trtexec: warn (once per backend), count, and run batch size ``n`` without a graph from now on."""
        self._uncapturable.add(n)
        self.graph_capture_failures += 1
        if self.graph_capture_failures == 1:
            log.warning("%s: CUDA graph capture failed at batch %d (%s); running without CUDA graphs for the "
                        "batch sizes that cannot be captured", self.path, n, why)
        else:
            log.debug("%s: CUDA graph capture failed at batch %d (%s)", self.path, n, why)

    def close(self) -> None:
        """Release graphs, buffers, events, contexts, stream, CUDA; all steps run, the first error is re-raised."""
        if self._closed:
            return
        self._closed = True
        steps = [self._stream.synchronize] if self._stream is not None else []
        steps += [c.graph.close for c in self._graphs.values()] + [t.close for t in self._tensors.values()]
        steps += [e.close for e in self._events] + [self._drop_trt_objects]
        steps += [self._stream.close] if self._stream is not None else []
        steps.append(self._cuda.close)
        first = None
        for step in steps:
            try:
                step()
            except Exception as exc:  # keep releasing; report the first failure
                first = first or exc
        self._stream, self._events = None, []
        if first is not None:
            raise first

    def _drop_trt_objects(self) -> None:
        # contexts before the engine, the engine before the runtime (TensorRT's destruction order)
        self._graphs.clear()
        self._tensors.clear()
        self._context = None
        self._engine = None
        self._runtime = None

    def __repr__(self) -> str:
        return f"TensorRTBackend({str(self.path)!r}, precision={self.precision!r})"
