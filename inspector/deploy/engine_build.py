"""Build a TensorRT engine from an exported ONNX graph (TensorRT 10.x and 11.x).

The portable path (DEPLOY.md): precision lives in the ONNX graph — an FP16 graph
whose convolutions are FP16 and whose sensitive ops are FP32 behind explicit
Casts, or a Q/DQ INT8 graph from ``inspector quantize`` — and the network is
built *strongly typed*. TensorRT 11 removed ``BuilderFlag.FP16/INT8`` and the
INT8 calibrators; on 10.x an FP32 ONNX may still be built with the FP16 flag
(``--fp16``) as a fallback, on 11.x that is refused with the command to use.

Before building, :func:`check_strongly_typed` checks the graph on the CPU (every
tensor typed after ONNX shape inference, no op mixing float precisions without
an explicit Cast, I/O as the contract says). The engine gets an optimisation
profile for batch 1..max at the model's fixed H×W, a workspace limit, a builder
optimisation level and a persisted timing cache (read and merged under an
``fcntl.flock`` so concurrent builds can share it; a corrupt or mismatched one is
replaced by an empty one, as Polygraphy does), and a sidecar
(:func:`inspector.artifacts.engine_card.engine_sidecar_path`) recording TensorRT
version, GPU, precision, I/O shapes, profile, the source ONNX's sha256 and the
model card it was built from (its file and sha256 too: for the INT8 graph, its
own card). Engine, card and build log are made under temporary names beside
the output and moved in together, the card last, so a failed or interrupted build
leaves an earlier build at the same names as it was; only an earlier build's files
are ever replaced (:func:`check_engine_out`). Every Builder/Runtime gets the process's one TensorRT logger
(:func:`inspector.backends.tensorrt.shared_logger`); every None/False/-1 the
bindings return becomes a one-line ExportError. The daemon never imports this module.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import shlex
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import onnx
from onnx import TensorProto

from inspector.artifacts.engine_card import ENGINE_KIND, ENGINE_SCHEMA_VERSION, engine_file_prefix, write_engine_sidecar
from inspector.backends.tensorrt import collect_messages, import_tensorrt, shared_logger, tensorrt_major
from inspector.contract import DEFAULT_BATCH, INPUT_NAME, MAP_NAME, OUTPUT_RANKS, SCORE_NAME
from inspector.deploy.checks import read_graph_of_card
from inspector.deploy.timing_cache import check_timing_cache
from inspector.errors import ExportError
from inspector.outputs import claim_outputs, cut_name, named_as_outputs, replace_together, write_whole
from inspector.artifacts.model_card import read_sidecar, sha256_file, sidecar_path_for, split_graph_name, verify_graph

log = logging.getLogger(__name__)

FLOAT_TYPES = {TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16",
               TensorProto.BFLOAT16: "bfloat16", TensorProto.DOUBLE: "float64"}
# Ops whose float inputs may legitimately differ in precision (separate ONNX type constraints).
MIXED_PRECISION_OK = frozenset({"Cast", "CastLike", "QuantizeLinear", "DequantizeLinear", "Resize", "Upsample",
                                "BatchNormalization", "If", "Loop", "Scan"})
# Ops that overflow/underflow in FP16 on this project's models (MODELS.md "Precision").
FP32_SENSITIVE = frozenset({"ReduceL2", "ReduceSum", "ReduceSumSquare", "ReduceMean", "ReduceLogSumExp",
                            "Sqrt", "Pow", "Div", "Exp", "Log", "Softmax"})


# -- the strongly-typed check (CPU, pure ONNX) -------------------------------------


@dataclass
class TypingReport:
    """Result of :func:`check_strongly_typed`: problems fail the check, warnings do not."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    conv_precisions: dict[str, int] = field(default_factory=dict)
    has_qdq: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def precision(self) -> str:
        """int8 with Q/DQ nodes, fp16 when any convolution runs in FP16, else fp32."""
        if self.has_qdq:
            return "int8"
        return "fp16" if self.conv_precisions.get("float16") else "fp32"


def _elem_types(graph: onnx.GraphProto) -> dict[str, int]:
    types: dict[str, int] = {}
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
            types[vi.name] = vi.type.tensor_type.elem_type
    for init in graph.initializer:
        types[init.name] = init.data_type
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    types[node.output[0]] = attr.t.data_type
    return types


def _check_io(graph: onnx.GraphProto, report: TypingReport) -> None:
    inputs = [i for i in graph.input if i.name not in {init.name for init in graph.initializer}]
    if [i.name for i in inputs] != [INPUT_NAME]:
        report.problems.append(f"graph inputs are {[i.name for i in inputs]}, expected ['{INPUT_NAME}']")
    else:
        t = inputs[0].type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        if t.elem_type != TensorProto.UINT8 or len(dims) != 4 or dims[3] != 3:
            report.problems.append(f"input '{INPUT_NAME}' is {TensorProto.DataType.Name(t.elem_type)} {dims}, "
                                   "expected UINT8 [N, H, W, 3]")
    outputs = {o.name: o.type.tensor_type for o in graph.output}
    for name, rank in OUTPUT_RANKS.items():
        t = outputs.get(name)
        if t is None:
            report.problems.append(f"graph lacks the output '{name}' (has {sorted(outputs)})")
        elif t.elem_type != TensorProto.FLOAT or len(t.shape.dim) != rank:
            report.problems.append(f"output '{name}' is {TensorProto.DataType.Name(t.elem_type)} rank "
                                   f"{len(t.shape.dim)}, expected FLOAT rank {rank}")


def check_strongly_typed(model: onnx.ModelProto, check_io: bool = True) -> TypingReport:
    """Check that ``model`` builds as a strongly typed TensorRT network with the intended precision.

    Problems: ONNX shape/type inference fails (strict mode); a node input or
    output without an inferred element type; an op (other than Cast, Q/DQ,
    Resize, BatchNormalization) whose float inputs mix precisions — it needs an
    explicit Cast; with ``check_io``, I/O differing from the contract (uint8
    ``images`` [N,H,W,3] → float32 ``score`` [N] and ``anomaly_map`` [N,1,h,w]).
    Warnings: FP32-sensitive ops (reductions, Sqrt, Div, Pow, Exp…) running in FP16.
    """
    report = TypingReport()
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:  # InferenceError / ValidationError
        report.problems.append(f"ONNX type inference failed: {str(exc).strip().splitlines()[0][:300]}")
        inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False)
    graph = inferred.graph
    types = _elem_types(graph)
    convs: Counter = Counter()
    for index, node in enumerate(graph.node):
        label = f"node {node.name or index} ({node.op_type})"
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            report.has_qdq = True
        untyped = [t for t in list(node.input) + list(node.output) if t and t not in types]
        if untyped:
            report.problems.append(f"{label}: tensor(s) {untyped[:3]} have no type after shape inference")
        floats = {FLOAT_TYPES[types[t]] for t in node.input if t and types.get(t) in FLOAT_TYPES}
        if len(floats) > 1 and node.op_type not in MIXED_PRECISION_OK:
            report.problems.append(f"{label}: mixes {sorted(floats)} inputs without an explicit Cast")
        if node.op_type in ("Conv", "ConvTranspose") and node.input and types.get(node.input[0]) in FLOAT_TYPES:
            convs[FLOAT_TYPES[types[node.input[0]]]] += 1
        if node.op_type in FP32_SENSITIVE and floats == {"float16"}:
            report.warnings.append(f"{label} runs in FP16 (overflow/underflow risk; keep it FP32)")
    report.conv_precisions = dict(convs)
    if check_io:
        _check_io(graph, report)
    return report


def require_strongly_typed(onnx_path: str | Path, model: onnx.ModelProto) -> TypingReport:
    """Run :func:`check_strongly_typed`; raise ExportError listing the first problems."""
    report = check_strongly_typed(model)
    for warning in report.warnings[:5]:
        log.warning("%s: %s", onnx_path, warning)
    if not report.ok:
        more = f" (+{len(report.problems) - 3} more)" if len(report.problems) > 3 else ""
        raise ExportError(f"{onnx_path}: not a valid strongly typed graph: {'; '.join(report.problems[:3])}{more}")
    return report


# -- the build ---------------------------------------------------------------------


@dataclass(frozen=True)
class BuildOptions:
    max_batch: int = DEFAULT_BATCH
    opt_batch: int | None = None  # None: = max_batch (the daemon batches up to max)
    workspace_mb: int | None = 2048  # None: TensorRT's default (device memory)
    optimization_level: int = 3  # builder_optimization_level 0..5
    timing_cache: str | None = None  # None: <engine dir>/timing-trt<ver>-sm<cc>.cache; "" disables
    fp16_flag: bool = False  # TensorRT 10.x only: FP32 ONNX + BuilderFlag.FP16 (weakly typed fallback)
    device: int = 0

    def validate(self) -> None:
        if self.max_batch < 1:
            raise ExportError(f"max_batch must be ≥ 1, got {self.max_batch}", field="max_batch")
        if self.opt_batch is not None and not 1 <= self.opt_batch <= self.max_batch:
            raise ExportError(f"opt_batch must be in 1..{self.max_batch}, got {self.opt_batch}",
                              field="opt_batch")
        if not 0 <= self.optimization_level <= 5:
            raise ExportError(f"optimization_level must be in 0..5, got {self.optimization_level}",
                              field="optimization_level")
        if self.workspace_mb is not None and self.workspace_mb < 1:
            raise ExportError(f"workspace_mb must be ≥ 1, got {self.workspace_mb}", field="workspace_mb")


def default_engine_path(onnx_path: str | Path, precision: str, out_dir: str | Path = "engines") -> Path:
    """``export/rs-brick.fp16.onnx`` → ``engines/rs-brick.fp16.plan``."""
    base, _ = split_graph_name(onnx_path)
    return Path(out_dir) / f"{base.name}.{precision}.plan"


def plan_network(graph_precision: str, trt_major: int, fp16_flag: bool, onnx_path: str | Path) -> tuple[str, str]:
    """(network mode, engine precision) for a graph: ('strongly_typed'|'fp16_flag', 'fp32'|'fp16'|'int8').

    Pure, so the TensorRT 10/11 rules are tested without a GPU.
    """
    if not fp16_flag:
        return "strongly_typed", graph_precision
    if graph_precision != "fp32":
        raise ExportError(f"{onnx_path}: fp16_flag is only for an FP32 ONNX; this graph is already {graph_precision} "
                          "and builds strongly typed without it", field="fp16_flag")
    if trt_major >= 11:
        base, _ = split_graph_name(onnx_path)
        raise ExportError(f"{onnx_path}: TensorRT {trt_major} removed BuilderFlag.FP16 (all networks are strongly "
                          f"typed); build the FP16 ONNX instead: inspector build {base}.fp16.onnx")
    return "fp16_flag", "fp16"


def _rebuild_command(onnx_path: Path, out: Path, opts: BuildOptions) -> str:
    parts = ["inspector", "build", str(onnx_path), "--out", str(out), "--max-batch", str(opts.max_batch)]
    if opts.opt_batch is not None:
        parts += ["--opt-batch", str(opts.opt_batch)]
    if opts.workspace_mb is not None:
        parts += ["--workspace-mb", str(opts.workspace_mb)]
    parts += ["--opt-level", str(opts.optimization_level)]
    if opts.fp16_flag:
        parts.append("--fp16")
    if opts.device:
        parts += ["--device", str(opts.device)]
    return shlex.join(parts)


def network_flags(trt, strongly_typed: bool) -> int:
    """The ``create_network`` flags: the STRONGLY_TYPED bit on TensorRT 10, none on 11+.

    The bit position comes from the installed module's enum, never a constant:
    in 10.x ``EXPLICIT_BATCH=0`` (ignored since 10.0) and ``STRONGLY_TYPED=1``;
    in 11.x ``STRONGLY_TYPED=0`` is deprecated and ignored (every network is
    strongly typed) and 1 is ``PREFER_JIT_PYTHON_PLUGINS`` (NvInfer.h of 10.13 / 11.1).
    """
    if not strongly_typed or tensorrt_major(trt) >= 11:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def _parse(trt, builder, logger, onnx_path: Path, strongly_typed: bool):
    network = builder.create_network(network_flags(trt, strongly_typed))
    if network is None:
        raise ExportError(f"{onnx_path}: TensorRT could not create a network definition (see the log above)")
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        detail = " | ".join(" ".join(e.split()) for e in errors[:3]) or "no detail"
        raise ExportError(f"{onnx_path}: TensorRT's ONNX parser failed: {detail}")
    return network, parser


def _check_network(trt, network, onnx_path: Path, height: int, width: int) -> None:
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    if [i.name for i in inputs] != [INPUT_NAME]:
        raise ExportError(f"{onnx_path}: network inputs {[i.name for i in inputs]}, expected ['{INPUT_NAME}']")
    shape = tuple(inputs[0].shape)
    if inputs[0].dtype != trt.DataType.UINT8 or len(shape) != 4 or shape[3] != 3:
        raise ExportError(f"{onnx_path}: input '{INPUT_NAME}' is {inputs[0].dtype} {shape}, expected UINT8 (N, H, W, 3)")
    for dim, want, what in ((shape[1], height, "height"), (shape[2], width, "width")):
        if dim not in (-1, want):
            raise ExportError(f"{onnx_path}: input {what} {dim} differs from the sidecar's {want}")


def _timing_cache_path(opts: BuildOptions, out: Path, trt_version: str, cc: str) -> Path | None:
    if opts.timing_cache == "":
        return None
    if opts.timing_cache:
        return Path(opts.timing_cache)
    return out.parent / f"timing-trt{trt_version}-sm{cc.replace('.', '')}.cache"


@contextlib.contextmanager
def _locked(path: Path | None):
    """Hold an exclusive ``fcntl.flock`` on ``<cache>.lock`` (concurrent builds share one cache file).

    As Polygraphy's ``util.LockFile`` around its timing-cache load and save; the
    lock is released when the file is closed, also when the process dies.
    """
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _load_timing_cache(config, path: Path):
    """The cache in ``path`` or None when it is missing or TensorRT cannot read it (corrupt, truncated)."""
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("%s: cannot read the timing cache (%s); starting an empty one", path, exc)
        return None
    return config.create_timing_cache(blob) if blob else None  # None: the callers say what they do instead


def _attach_timing_cache(config, path: Path | None, onnx_path: Path) -> bool:
    """Attach the persisted cache (or an empty one when missing, unreadable or mismatched), as Polygraphy does;
    whether the file may be written back: not when TensorRT cannot read it or it is the cache of another
    TensorRT or GPU (:mod:`inspector.deploy.timing_cache`: a file the build did not write is not its to replace)."""
    if path is None:
        return False
    with _locked(path):
        cache = _load_timing_cache(config, path)
        unread = cache is None and path.is_file() and path.stat().st_size > 0
    if cache is not None and not config.set_timing_cache(cache, False):
        log.warning("%s: timing cache of another TensorRT or GPU; this build starts an empty one and leaves the file "
                    "as it was (--timing-cache another name to keep this build's)", path)
        cache, unread = None, True
    elif unread:
        log.warning("%s: TensorRT cannot read this file as a timing cache; this build starts an empty one and leaves "
                    "the file as it was (--timing-cache another name to keep this build's)", path)
    if cache is None:
        cache = config.create_timing_cache(b"")
        if cache is None or not config.set_timing_cache(cache, False):
            raise ExportError(f"{onnx_path}: TensorRT could not create an empty timing cache "
                              "(disable it with --timing-cache '')")
    return not unread


def _save_timing_cache(config, path: Path | None) -> Path | None:
    """Merge this build's cache with the file's current one (another build may have saved since) and write it,
    whole or not at all (:func:`inspector.outputs.write_whole`); the path written, or None. A file there that
    TensorRT cannot read as a cache (put there since the build began) is left as it was. OSError when it cannot
    be written."""
    if path is None:
        return None
    cache = config.get_timing_cache()
    if cache is None:
        return None
    with _locked(path):
        on_disk = _load_timing_cache(config, path)
        if on_disk is None and path.is_file() and path.stat().st_size > 0:
            log.warning("%s: no longer a timing cache TensorRT can read; left as it was, this build's not saved", path)
            return None
        if on_disk is not None and not cache.combine(on_disk, True):
            log.warning("%s: could not merge the timing cache saved by another build; keeping this build's", path)
        write_whole(path, bytes(memoryview(cache.serialize())))  # a reader never finds half a cache
    return path


def _io_record(trt, engine) -> dict[str, Any]:
    io = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        io[name] = {
            "mode": "input" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "output",
            "dtype": str(engine.get_tensor_dtype(name)).split(".")[-1].lower(),
            "shape": [int(d) for d in engine.get_tensor_shape(name)],
        }
    return io


def _log_summary(records: list[tuple[str, str]]) -> dict[str, Any]:
    counts = Counter(level for level, _ in records)
    warnings = [msg for level, msg in records if level == "WARNING"]
    return {"messages": dict(counts), "warnings": warnings[:20]}


def _configure(trt, builder, mode: str, options: BuildOptions, height: int, width: int):
    """Builder config: workspace, optimisation level, FP16 flag (10.x fallback only), batch profile."""
    config = builder.create_builder_config()
    if config is None:
        raise ExportError("TensorRT could not create a builder config (see the log above)")
    if options.workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_mb) << 20)
    config.builder_optimization_level = int(options.optimization_level)
    if mode == "fp16_flag":
        config.set_flag(trt.BuilderFlag.FP16)
    opt_batch = options.opt_batch or options.max_batch
    shapes = [(b, height, width, 3) for b in (1, opt_batch, options.max_batch)]
    profile = builder.create_optimization_profile()
    try:
        profile.set_shape(INPUT_NAME, *shapes)  # the binding raises RuntimeError for inconsistent shapes
    except RuntimeError as exc:
        raise ExportError(f"optimisation profile {shapes} refused: {str(exc).strip()}") from None
    if config.add_optimization_profile(profile) < 0:  # -1: invalid profile (IBuilderConfig::addOptimizationProfile)
        raise ExportError(f"optimisation profile for '{INPUT_NAME}' min/opt/max {shapes} is invalid "
                          "(TensorRT returned -1; see the log above)")
    return config


def _engine_sidecar(trt, engine, staged: Path, out: Path, onnx_path: Path, report: TypingReport,
                    model_sidecar: dict, gpu, mode: str, precision: str, options: BuildOptions) -> dict[str, Any]:
    return {
        "schema_version": ENGINE_SCHEMA_VERSION,
        "kind": ENGINE_KIND,
        "engine": {"file": out.name, "sha256": sha256_file(staged), "bytes": staged.stat().st_size},
        "tensorrt": {"version": str(trt.__version__), "major": tensorrt_major(trt)},
        "gpu": {"name": gpu.name, "compute_capability": gpu.compute_capability},
        "precision": precision,
        "network": mode,
        "io": _io_record(trt, engine),
        "profile": {"min_batch": 1, "opt_batch": options.opt_batch or options.max_batch,
                    "max_batch": options.max_batch},
        "onnx": {"file": onnx_path.name, "path": str(onnx_path), "sha256": sha256_file(onnx_path),
                 "precision": report.precision, "conv_precisions": report.conv_precisions},
        "build": {"options": asdict(options), "layers": int(getattr(engine, "num_layers", -1)),
                  "command": _rebuild_command(onnx_path, out, options)},
        "model": model_sidecar,
    }


def engine_paths(out: str | Path) -> dict[str, Path]:
    """The files of a build at ``out`` (``engines/x.fp16.plan``): the engine, the precision gate's report on the
    earlier engine (it judged an engine this build replaces, so it goes with it; ``inspector verify`` or ``build
    --reference-data`` writes the new one), the build log and the engine card, named from
    :func:`inspector.artifacts.engine_card.engine_file_prefix`; and where they are named without the suffix, the
    same engine under the other suffix (``.engine``: an earlier build there shares this build's card and log, so it
    is replaced with them)."""
    engine = Path(out)
    prefix = engine_file_prefix(engine)
    paths = {"engine": engine, "verify": Path(f"{prefix}.verify.json"), "log": Path(f"{prefix}.build.log"),
             "card": Path(f"{prefix}.json")}
    if prefix != engine:
        paths["other"] = engine.with_suffix(".engine" if engine.suffix == ".plan" else ".plan")
    return paths


def check_engine_out(out: str | Path) -> dict[str, Path]:
    """The build's file names at ``out`` (:func:`engine_paths`), once it is known they may be written: an engine
    file name (.plan or .engine) in a folder that can be made and written in, each name free or holding a file
    of an earlier build there (an engine card written by build, the engine it names and its log), which a new
    build replaces as a whole. ExportError (one line naming the file) otherwise: a user's ``NAME.json``, a model
    card, an engine from elsewhere, a link or a folder at one of the names was replaced without a word, after
    the whole build (the rule and messages of export: :func:`inspector.outputs.claim_outputs`)."""
    if Path(out).suffix not in (".plan", ".engine"):
        raise ExportError(f"{out}: engine files end in .plan or .engine")
    paths = engine_paths(out)
    full = paths["card"].name == f"{paths['engine'].name}.json"
    claim_outputs(out, list(paths.values()), paths["card"], lambda card: _files_of_build(card, full), ExportError,
                  command="build", card_noun="engine card", file_noun="file")
    return paths


def _files_of_build(card: Any, full: bool = False) -> set[str] | None:
    """The engine an engine card written by build names, that engine's build log and its precision report (named
    with the engine's suffix when ``full``: :func:`inspector.artifacts.engine_card.engine_file_prefix`); None
    when ``card`` is no such card (the user's JSON, a model card)."""
    engine = card.get("engine") if isinstance(card, dict) and card.get("kind") == ENGINE_KIND else None
    name = engine.get("file") if isinstance(engine, dict) else None
    if not isinstance(name, str) or not name:
        return None
    prefix = name if full else Path(name).stem
    return {name, f"{prefix}.build.log", f"{prefix}.verify.json"}


class Built(NamedTuple):
    """What :func:`build` did: the engine card written, and what it replaced (:func:`earlier_build`: None when the
    names were free)."""

    sidecar: dict[str, Any]
    replaced: str | None


def earlier_build(paths: dict[str, Path]) -> str | None:
    """``'the earlier engine, built 2026-12-07 07:20 UTC'`` when a build at ``paths`` (:func:`engine_paths`, once
    :func:`check_engine_out` has accepted them: only an earlier build's files are there) replaces an earlier
    one, None when the names are free. The time is its engine's (else its card's) modification time, which the
    build that wrote it set. Build replaced an earlier engine without a word, while export, quantize, calibrate
    and evaluate said so (README "Outputs")."""
    nouns = {"engine": "the earlier engine", "other": "the earlier engine {}", "card": "the earlier build's card {}"}
    there = [(noun, paths[key]) for key, noun in nouns.items() if key in paths and paths[key].is_file()]
    if not there:
        return None
    noun, path = there[0]
    when = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"{noun.format(path.name)}, built {when}"


def build_engine(onnx_path: str | Path, out: str | Path | None = None,
                 options: BuildOptions = BuildOptions()) -> dict[str, Any]:
    """:func:`build`'s engine card."""
    return build(onnx_path, out, options).sidecar


def build(onnx_path: str | Path, out: str | Path | None = None, options: BuildOptions = BuildOptions()) -> Built:
    """Build ``onnx_path`` into an engine; write the engine, its sidecar and build log; return the sidecar and
    what it replaced (:class:`Built`).

    All or none, as export: the three files are made under temporary names in the output folder and moved into
    place together, the card last (:func:`inspector.outputs.replace_together`); a failure or Ctrl-C anywhere
    leaves the names as they were. Only an earlier build at ``out`` is replaced (:func:`check_engine_out`, before
    any work). ExportError (one line) for bad options, a graph or place that does not fit, or a failed build;
    BackendError when TensorRT or CUDA is missing; OSError when the disk fails.
    """
    options.validate()
    onnx_path = Path(onnx_path)
    # before reading the graph: a name that may not be written is told at once (the default name needs the graph)
    paths = check_engine_out(out) if out is not None else None
    if options.timing_cache:  # the default cache's name needs TensorRT's version and the GPU: checked in _build
        check_timing_cache(options.timing_cache, list(paths.values()) if paths else [])
    card_file = sidecar_path_for(onnx_path)  # the INT8 graph's own card, else the export's sidecar
    model_sidecar = verify_graph(onnx_path, read_sidecar(card_file))
    model = read_graph_of_card(onnx_path, model_sidecar)
    report = require_strongly_typed(onnx_path, model)
    trt = import_tensorrt()
    mode, precision = plan_network(report.precision, tensorrt_major(trt), options.fp16_flag, onnx_path)
    paths = paths or check_engine_out(default_engine_path(onnx_path, precision))
    out, replaced = paths["engine"], earlier_build(paths)
    size = int(model_sidecar["input"]["height"]), int(model_sidecar["input"]["width"])
    gpu = _gpu(options.device)
    logger = shared_logger(trt)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{cut_name(out.stem, 10)}-") as tmp, \
            named_as_outputs(tmp, out.parent):  # an error names the engine's files, not the staging folder's
        staged = {key: Path(tmp) / path.name for key, path in paths.items()}
        with collect_messages(logger) as records:
            serialized, cache_path, seconds = _build(trt, logger, records, onnx_path, out, options, mode, gpu, *size)
        write_whole(staged["engine"], bytes(memoryview(serialized)))
        del serialized
        sidecar = _describe_engine(trt, logger, staged["engine"], out, onnx_path, report, model_sidecar, gpu, mode,
                                   precision, options)
        sidecar["build"].update(timing_cache=str(cache_path) if cache_path else None, seconds=round(seconds, 2),
                                log=_log_summary(records))
        sidecar["onnx"].update(card=card_file.name, card_sha256=sha256_file(card_file))  # the card embedded as model
        write_engine_sidecar(sidecar, staged["engine"], staged["card"])
        write_whole(staged["log"], "".join(f"[{lvl}] {msg}\n" for lvl, msg in records).encode())
        # engine first, card last; an earlier build's engine under the other suffix goes (the card is this one's),
        # and the precision report on the earlier engine: it would pass off its verdict as this engine's
        replace_together([(None if key in ("other", "verify") else staged[key], paths[key])
                          for key in ("engine", "other", "verify", "log", "card") if key in paths], Path(tmp))
    log.info("built %s in %.1f s: %d layers, %.1f MB, %d warning(s); sidecar %s", out, seconds,
             sidecar["build"]["layers"], out.stat().st_size / 2**20, len(sidecar["build"]["log"]["warnings"]),
             paths["card"])
    return Built(sidecar, replaced)


def _gpu(device: int):
    """The name and compute capability of CUDA device ``device`` (selecting it)."""
    from inspector.backends.cuda import open_cuda

    cuda = open_cuda("cuda-python", device)
    try:
        return cuda.device_info()
    finally:
        cuda.close()


def _build(trt, logger, records: list, onnx_path: Path, out: Path, options: BuildOptions, mode: str, gpu,
           height: int, width: int):
    """Parse, configure and build: (serialized engine, timing-cache path, seconds); ExportError on failure."""
    builder = trt.Builder(logger)
    if builder is None:
        raise ExportError(f"{onnx_path}: TensorRT could not create a builder (see the log above)")
    network, _parser = _parse(trt, builder, logger, onnx_path, strongly_typed=(mode == "strongly_typed"))
    _check_network(trt, network, onnx_path, height, width)
    try:
        config = _configure(trt, builder, mode, options, height, width)
    except ExportError as exc:
        raise ExportError(f"{onnx_path}: {exc}") from None
    cache_path = _timing_cache_path(options, out, str(trt.__version__), gpu.compute_capability)
    check_timing_cache(cache_path, list(engine_paths(out).values())) if cache_path else None  # before the build
    writable = _attach_timing_cache(config, cache_path, onnx_path)
    log.info("building %s → %s (TensorRT %s, %s, %s, batch 1..%d)", onnx_path, out, trt.__version__, gpu.name,
             mode, options.max_batch)
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        errors = [" ".join(msg.split()) for level, msg in records if level in ("ERROR", "CRITICAL")]
        raise ExportError(f"{onnx_path}: TensorRT build failed: {' | '.join(errors[-3:]) or 'see the log above'}")
    saved = _save_timing_cache(config, cache_path if writable else None)
    return serialized, saved, seconds


def _describe_engine(trt, logger, staged: Path, out: Path, onnx_path: Path, report: TypingReport,
                     model_sidecar: dict, gpu, mode: str, precision: str, options: BuildOptions) -> dict[str, Any]:
    """Deserialise the engine just written at ``staged`` (to be named ``out``) and describe it in its sidecar."""
    runtime = trt.Runtime(logger)  # must outlive the engine
    engine = runtime.deserialize_cuda_engine(staged.read_bytes())
    if engine is None:
        raise ExportError(f"{out}: the engine just built does not deserialise (see the log above)")
    try:
        return _engine_sidecar(trt, engine, staged, out, onnx_path, report, model_sidecar, gpu, mode, precision,
                               options)
    finally:
        del engine, runtime
