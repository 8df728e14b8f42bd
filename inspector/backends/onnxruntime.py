"""ONNX Runtime backend: the embedded default (CPU), same interface as TensorRT.

The exported graph is the whole inference (DESIGN.md seam 1): input ``images``
uint8 (N, H, W, 3) RGB, outputs ``score`` (N,) and ``anomaly_map`` (N, 1, h, w)
float32. The graph is checked against its sidecar (sha256) before it is loaded,
so a file that does not match what was exported is refused.

Outputs are bound with IO binding into buffers preallocated once per batch
size and reused: the arrays in an :class:`InferenceResult` stay valid until the
next :meth:`infer` call *with the same batch size*. Copy what you keep.

With ``replicas`` k > 1 (CPU provider only) a batch of at least k images is split
into k chunks, each run by its own single-threaded session at the same time
(:mod:`inspector.backends.ort_replicas`: data parallelism instead of intra-op
threads); smaller batches run whole on the one multi-threaded session, so a lone
frame keeps the lowest latency.
"""

from __future__ import annotations

import logging
import platform
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from inspector.backends.base import Backend, InferenceResult, InputSpec
from inspector.config import not_a_file
from inspector.errors import BackendError
from inspector.artifacts import input_spec as card_input_spec, missing_model_hint
from inspector.artifacts.model_card import (read_sidecar, sha256_file, sidecar_path_for,
                               split_graph_name, verify_graph)

from inspector.backends.ort_replicas import ReplicaRunner, chunk_bounds
from inspector.cores import capped_threads, usable_cores
from inspector.contract import INPUT_NAME, MAP_NAME, SCORE_NAME

log = logging.getLogger(__name__)
_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (``avx2``, ``avx512_vnni``, …); None where it cannot tell."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    line = next((line for line in text.splitlines() if line.startswith("flags")), None)
    return None if line is None else set(line.split(":", 1)[1].split())


def cpu_has_int8_dot_product() -> bool:
    """Whether this CPU multiplies int8 without int16 saturation: not x86, or x86 with VNNI or AMX.

    x86 CPUs without them (AVX2, AVX-512F) add u8×s8 products in pairs with ``VPMADDUBSW`` into int16, which
    saturates when the weights use the full int8 range (ONNX Runtime's quantization guide; OpenVINO's
    "Saturation (overflow) issue"). True where it cannot tell.
    """
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return True
    flags = cpu_flags()
    return flags is None or bool({"avx512_vnni", "avx_vnni", "amx_int8"} & flags)


def warn_if_int8_may_saturate(path: Path, entry: dict, providers: Sequence[str]) -> bool:
    """Log a warning (and return True) when an INT8 graph with 8-bit weights is to run on ONNX Runtime's CPU
    kernels of a CPU without int8 dot products: its scores can be far off there (``inspector.deploy.quantize``).
    Graphs quantized before ``weight_bits`` was recorded had 8-bit weights."""
    bits = (entry.get("quantization") or {}).get("weight_bits", 8)
    if entry.get("precision") != "int8" or bits != 8 or "CPUExecutionProvider" not in providers \
            or cpu_has_int8_dot_product():
        return False
    log.warning("%s: INT8 graph with 8-bit weights on a CPU without VNNI: ONNX Runtime's int8 kernels saturate "
                "here and its scores can be wrong; re-quantize (inspector quantize writes 7-bit weights) or run "
                "the FP32 graph, and check with inspector verify", path)
    return True


def _import_ort():
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - onnxruntime is a base requirement
        raise BackendError(f"onnxruntime is not installed ({exc}); pip install onnxruntime") from None
    return ort


class _Outputs:
    """Preallocated output buffers for one batch size, and one IO binding per session that runs a chunk
    of it (one session: the whole batch); each binding writes its rows of the shared buffers."""

    def __init__(self, sessions: Sequence[Any], n: int, map_hw: tuple[int, int], types: dict[str, Any]) -> None:
        self.scores = np.empty((n,), dtype=types[SCORE_NAME])
        self.maps = np.empty((n, 1) + map_hw, dtype=types[MAP_NAME])
        self.bounds = chunk_bounds(n, len(sessions))
        self.bindings = []
        for session, (a, b) in zip(sessions, self.bounds):
            binding = session.io_binding()
            for name, buf in ((SCORE_NAME, self.scores[a:b]), (MAP_NAME, self.maps[a:b])):
                binding.bind_output(name, "cpu", 0, buf.dtype, list(buf.shape), buf.ctypes.data)
            self.bindings.append(binding)


class OnnxRuntimeBackend(Backend):
    """An exported ONNX graph on ONNX Runtime (CPU by default)."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None,
                 providers: Sequence[str] | str | None = None, verify: bool = True,
                 spinning: bool | None = None, spin_us: int | None = None,
                 spin_after_run: bool | None = None, replicas: int | None = None) -> None:
        self.path = Path(path)
        if (why := not_a_file(self.path, "model file")) is not None:  # a folder is told as one, not "not found"
            raise BackendError(why + missing_model_hint(self.path))
        self.sidecar = read_sidecar(sidecar_path_for(self.path))
        if verify:
            verify_graph(self.path, self.sidecar)
        _, suffix_precision = split_graph_name(self.path)
        entry = self.sidecar["graphs"].get(suffix_precision) or {}
        self.sha256 = entry.get("sha256") if verify else sha256_file(self.path)
        self.precision = entry.get("precision", suffix_precision)
        self._spec = card_input_spec(self.sidecar, str(self.path))
        self._session = self._open_session(threads, providers, spinning, spin_us, spin_after_run)
        self._runner = self._open_replicas(replicas, threads, providers)
        warn_if_int8_may_saturate(self.path, {**entry, "precision": self.precision}, self._session.get_providers())
        self._types = self._check_io()
        self._outputs: dict[int, _Outputs] = {}
        self.map_hw = self._probe_map_size()

    # -- loading -----------------------------------------------------------
    def _open_session(self, threads: int | None, providers, spinning: bool | None = None,
                      spin_us: int | None = None, spin_after_run: bool | None = None):
        ort = _import_ort()
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.inter_op_num_threads = 1
        if threads is not None:
            if threads < 0:
                raise BackendError(f"{self.path}: threads must be ≥ 0 (0 = all cores), got {threads}")
            opts.intra_op_num_threads = capped_threads(int(threads), "threads")
        if spinning is not None:
            # Idle intra-op threads busy-wait for work by default: fastest alone, but on a machine whose
            # cores the pipeline's own threads also need, the spinning takes their CPU (issue 17).
            opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        if spin_us is not None and spinning is not False:
            if spin_us < 1:
                raise BackendError(f"{self.path}: spin_us must be ≥ 1 microsecond, got {spin_us}")
            # Bounded spin (ONNX Runtime >= 1.26; older versions ignore the key): fast hand-offs inside a run,
            # no core burnt between runs.
            opts.add_session_config_entry("session.intra_op.spin_duration_us", str(int(spin_us)))
        if spin_after_run is not None and spinning is not False:
            # session.force_spinning_stop (onnxruntime_session_options_config_keys.h): the intra-op threads stop
            # spinning the moment Run() returns and start again with the next Run(), so a run keeps its fast
            # hand-offs between operators while the cores are free between runs.
            opts.add_session_config_entry("session.force_spinning_stop", "0" if spin_after_run else "1")
        opts.log_severity_level = 3
        available = ort.get_available_providers()
        if providers is None:
            providers = ["CPUExecutionProvider"]
        elif providers == "auto":
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        elif isinstance(providers, str):
            providers = [providers]
        missing = [p for p in providers if p not in available]
        if missing:
            raise BackendError(f"{self.path}: ONNX Runtime provider(s) {missing} not available here; have {available}")
        try:
            return ort.InferenceSession(str(self.path), sess_options=opts, providers=list(providers))
        except Exception as exc:  # InvalidProtobuf, InvalidGraph, Fail … all subclasses of RuntimeError
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BackendError(f"{self.path}: ONNX Runtime cannot load this graph ({first[:200]})") from None

    def _open_replicas(self, replicas: int | None, threads: int | None, providers) -> ReplicaRunner | None:
        """``replicas`` sessions sharing ``threads`` (None: every usable core) and the threads that run them,
        or None (1, None, or a GPU provider: a GPU runs a batch whole). Raises BackendError for a count below 1.
        """
        if replicas is None or replicas == 1:
            return None
        if replicas < 1:
            raise BackendError(f"{self.path}: replicas must be ≥ 1, got {replicas}")
        if self._session.get_providers()[0] != "CPUExecutionProvider":
            log.info("%s: replicas=%d ignored on %s", self.path, replicas, self._session.get_providers()[0])
            return None
        # the cores shared out, one intra-op thread each where there are no more cores than replicas: then
        # nothing spins or hands work over, and the chunks never wait on one another
        each = max(1, (threads or usable_cores()) // replicas)
        return ReplicaRunner([self._open_session(each, providers, False if each == 1 else None)
                              for _ in range(replicas)])

    @property
    def replicas(self) -> int:
        """Sessions a batch of at least this many images is split across (1: none)."""
        return len(self._runner.sessions) if self._runner is not None else 1

    def _check_io(self) -> dict[str, Any]:
        inputs = {i.name: i for i in self._session.get_inputs()}
        outputs = {o.name: o for o in self._session.get_outputs()}
        if list(inputs) != [INPUT_NAME] or inputs[INPUT_NAME].type != "tensor(uint8)":
            got = [(i.name, i.type) for i in inputs.values()]
            raise BackendError(f"{self.path}: expected one uint8 input '{INPUT_NAME}', graph has {got}")
        shape = inputs[INPUT_NAME].shape
        spec = self._spec
        if len(shape) != 4 or any(isinstance(d, int) and d != e for d, e in
                                  zip(shape[1:], (spec.height, spec.width, spec.channels))):
            raise BackendError(f"{self.path}: graph input shape {shape} does not match the sidecar's "
                               f"(N, {spec.height}, {spec.width}, {spec.channels})")
        if isinstance(shape[0], int):  # a static batch dimension
            self._spec = spec.with_max_batch(shape[0])
        types = {}
        for name in (SCORE_NAME, MAP_NAME):
            if name not in outputs:
                raise BackendError(f"{self.path}: graph lacks the '{name}' output (has {sorted(outputs)})")
            if outputs[name].type not in _ORT_TYPES:
                raise BackendError(f"{self.path}: output '{name}' has unsupported type {outputs[name].type}")
            types[name] = _ORT_TYPES[outputs[name].type]
        return types

    def _probe_map_size(self) -> tuple[int, int]:
        """One warm-up run at batch 1: learns the map size (may be symbolic) and warms the session."""
        spec = self._spec
        probe = np.zeros((1, spec.height, spec.width, spec.channels), dtype=np.uint8)
        try:
            score, amap = self._session.run([SCORE_NAME, MAP_NAME], {INPUT_NAME: probe})
        except Exception as exc:
            raise BackendError(f"{self.path}: warm-up run failed ({str(exc).splitlines()[0][:200]})") from None
        if score.shape != (1,) or amap.ndim != 4 or amap.shape[:2] != (1, 1):
            raise BackendError(f"{self.path}: outputs have shapes score {score.shape}, anomaly_map {amap.shape}; "
                               f"expected (N,) and (N, 1, h, w)")
        return int(amap.shape[2]), int(amap.shape[3])

    # -- inference -----------------------------------------------------------
    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    def _run(self, batch: np.ndarray) -> InferenceResult:
        if self._session is None:
            raise BackendError(f"{self.path}: backend is closed")
        n = batch.shape[0]
        out = self._outputs.get(n)
        if out is None:
            split = self._runner is not None and n >= self.replicas
            sessions = self._runner.sessions if split else [self._session]
            out = self._outputs[n] = _Outputs(sessions, n, self.map_hw, self._types)
        batch = np.ascontiguousarray(batch)
        for binding, (a, b) in zip(out.bindings, out.bounds):
            binding.bind_cpu_input(INPUT_NAME, batch[a:b])
        start = time.perf_counter()
        try:
            if len(out.bindings) == 1:
                self._session.run_with_iobinding(out.bindings[0])
            else:
                self._runner.run(out.bindings)
        except Exception as exc:
            raise BackendError(f"{self.path}: inference failed ({str(exc).splitlines()[0][:200]})") from None
        compute_ms = (time.perf_counter() - start) * 1e3
        scores, maps = out.scores, out.maps
        if scores.dtype != np.float32:
            scores, maps = scores.astype(np.float32), maps.astype(np.float32)
        return InferenceResult(scores=scores, maps=maps, timings_ms={"compute": compute_ms})

    def close(self) -> None:
        self._outputs.clear()
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        self._session = None

    def __repr__(self) -> str:
        return f"OnnxRuntimeBackend({str(self.path)!r}, precision={self.precision!r})"
