"""INT8 by explicit quantization: a Q/DQ ONNX made on the CPU with ONNX Runtime.

TensorRT 11 removed the INT8 builder flag and calibrators; INT8 now means Q/DQ
nodes in the ONNX graph (DEPLOY.md). :func:`quantize_model` runs ONNX Runtime's
static quantizer (``quantize_static``, QDQ format) over calibration images:

* symmetric int8 activations (zero point 0, as TensorRT requires) and
  per-channel symmetric int8 weights, by default in 7 bits (|q| ≤ 64, ``weight_bits=7``); biases stay float.
  x86 CPUs without VNNI (AVX2, AVX-512F) compute u8×s8 products in pairs with ``VPMADDUBSW``, whose
  int16 sum saturates when both operands use the full 8-bit range, so ONNX Runtime's int8 kernels there
  return wrong features (measured: a good image scored 25.3 against 0.18 in FP32, 0.69 of the score scale).
  7-bit weights cannot saturate (2 × 255 × 64 < 32767); ONNX Runtime's quantization guide and OpenVINO's
  "Saturation (overflow) issue" page give the same rule. The INT8 graph can be deployed on any CPU that way;
  ``weight_bits=8`` halves the weight rounding step for TensorRT or VNNI-only deployments;
* only the *feature* convolutions (teacher/student) are quantized. Everything
  downstream of the first reduction or resize — L2 normalisation, distances,
  upsampling, the Gaussian smoothing (two 1-D convolutions) and map → score —
  is excluded by name, and no other op type is quantized, so those stay FP32;
* Q/DQ only on the inputs of a convolution, not its output: features leave the
  convolutions un-quantized before the distance computation;
* the convolutions that read the image itself (through preprocessing only: the
  teacher's and the student's first convolution) stay FP32 too
  (:func:`input_nodes`, which says why);
* the depthwise convolutions and the pointwise projections that read them (MobileNet/
  EfficientNet blocks) stay FP32 (:func:`separable_nodes`, which says why and what it costs).

Before anything is written, the INT8 graph is run against the FP32 graph on a few
images picked as verify picks them (:func:`check_samples`) with ``inspector verify``'s
figures and int8 tolerances (:func:`check_against_fp32`); outside them quantize refuses,
nothing written. Before,
the default on the step-by-step model scored 0.24 of the scale away from FP32 and
was written without a word.

Calibration runs one batch at a time (:class:`CalibrationImages`), so its memory does not grow with the number of
images; a batch that cannot fit in the memory available is refused before the work
(:func:`require_calibration_memory`).

The result is written as ``<base>.int8.onnx`` beside the FP32 graph with its own card
``<base>.int8.json`` (the FP32 sidecar's sections, ``graphs.int8``: file, sha256,
precision, how it was made and checked, and ``derived_from``). The FP32 graph and its
sidecar are only read: quantize used to add ``graphs.int8`` to that sidecar, modifying
its input. ONNX Runtime runs it on the CPU, so ``inspector verify`` measures its accuracy
against FP32 without a GPU; ``inspector build`` turns it into an INT8 engine.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import tempfile
from collections import deque
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx

from inspector.artifacts import input_spec as card_input_spec
from inspector.artifacts.frame_shapes import folder_watch, frame_shapes
from inspector.artifacts.model_card import (derived_card_path, read_sidecar, sha256_file, sidecar_path_for,
                                            split_graph_name, verify_graph, write_sidecar)
from inspector.contract import DEFAULT_BATCH, INPUT_NAME, OUTPUT_NAMES, InputSpec
from inspector.deploy.checks import read_graph_of_card
from inspector.errors import ConfigError, DataError, ExportError
from inspector.outputs import claim_outputs, cut_name, named_as_outputs, replace_together

log = logging.getLogger(__name__)

QUANTIZED_OP_TYPES = ("Conv",)
# The first op of the scoring tail: everything at or after one of these stays FP32.
TAIL_OPS = frozenset({"ReduceL2", "ReduceSum", "ReduceSumSquare", "ReduceMean", "ReduceMax", "ReduceMin",
                      "ReduceProd", "ReduceLogSumExp", "Resize", "Upsample", "TopK", "ArgMax"})
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
WEIGHT_BITS = (7, 8)  # 7: correct on every x86 CPU (see the module docstring); 8: TensorRT / VNNI CPUs only
# verify's int8 tolerances (score, map), relative to the FP32 scale (evaluation.verify.DEFAULT_TOLERANCES["int8"],
# which this layer may not import; tests/test_quantize.py holds them equal): the check before writing.
INT8_TOLERANCES = (0.10, 0.15)
CHECK_IMAGES = 16  # images the INT8 graph is checked on against FP32 before it is written (check_samples)


def name_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give every unnamed node a unique name (the quantizer excludes nodes by name)."""
    used = {n.name for n in model.graph.node if n.name}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)
    return model


def tail_nodes(model: onnx.ModelProto) -> set[str]:
    """Names of the nodes at or downstream of a tail op (reductions, resizes): the scoring part."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for tensor in node.input:
            consumers.setdefault(tensor, []).append(node)
    queue = deque(n for n in model.graph.node if n.op_type in TAIL_OPS)
    seen: set[str] = set()
    while queue:
        node = queue.popleft()
        if node.name in seen:
            continue
        seen.add(node.name)
        for tensor in node.output:
            queue.extend(consumers.get(tensor, ()))
    return seen


def input_nodes(model: onnx.ModelProto, op_types: Sequence[str] = QUANTIZED_OP_TYPES) -> set[str]:
    """Names of the ``op_types`` nodes that read a graph input through non-``op_types`` nodes only.

    These are the first convolutions (teacher stem, student stem): they read the
    normalised image. Its range is fixed by the input format (0..255 through the
    per-channel mean/std), but calibration would set it from the good calibration
    images, and a defect is exactly a pixel value those images do not have: on the
    test brick set the good images span |x| <= 1.38 while defect pixels reach 1.98,
    so the calibrated int8 scale clipped the defect pixels (0.6 % of the test
    pixels) and with them the top-1 % score of the offline recipes. Measured on the
    trained reduced student and STFPM (64x64): that clip alone, in an otherwise
    FP32 graph, moved the score by 0.19 of its range and the maps by up to 0.19; the
    rounding at that scale alone by 0.008; all the other convolutions quantized
    together by 0.03. Everything after the first convolution is a feature, whose
    range calibration is meant to find (and clipping a feature's outliers is the
    usual INT8 trade). The stems have 3 input channels, so FP32 costs little.
    """
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for tensor in node.input:
            consumers.setdefault(tensor, []).append(node)
    initializers = {i.name for i in model.graph.initializer}
    queue = deque(t.name for t in model.graph.input if t.name not in initializers)
    seen_tensors: set[str] = set()
    found: set[str] = set()
    while queue:
        tensor = queue.popleft()
        if tensor in seen_tensors:
            continue
        seen_tensors.add(tensor)
        for node in consumers.get(tensor, ()):
            if node.op_type in op_types:
                if node.input and node.input[0] == tensor:  # the data input, not a weight fed from the graph
                    found.add(node.name)
                continue  # the image stops here: what a convolution computes is a feature
            queue.extend(node.output)
    return found


def _is_depthwise(node: onnx.NodeProto, weights: dict[str, onnx.TensorProto]) -> bool:
    """A grouped convolution with one input channel per group (weight [C, 1, kH, kW], group > 1)."""
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    weight = weights.get(node.input[1]) if len(node.input) > 1 else None
    return node.op_type == "Conv" and group > 1 and weight is not None and len(weight.dims) > 1 and weight.dims[1] == 1


def separable_nodes(model: onnx.ModelProto) -> set[str]:
    """Names of the depthwise convolutions and of the convolutions that read a depthwise output through
    non-convolution nodes only (the pointwise projection of a depthwise-separable block: MobileNet, EfficientNet).

    Why FP32: per-tensor int8 activations lose these layers. A depthwise convolution's output channels have very
    unequal ranges, some near zero, and one scale per tensor rounds the small ones away before the projection
    that mixes them (Nagel et al., "Data-Free Quantization", ICCV 2019, §3: MobileNetV2 per-tensor int8; Sheng et
    al., "A Quantization-Friendly Separable Convolution for MobileNets", 2018); the projection feeds the residual
    stream with no activation to bound the error, so it adds up over the blocks. Measured on the step-by-step
    reduced student (EfficientNet-Lite1 teacher, brick, 256×256; benchmarks/README.md "Session 36"): all
    feature convolutions int8, verify's score figure 0.23 of the scale (tolerance 0.1); the 62 teacher
    convolutions alone 0.23, the 18 student ones alone 0.005; the depthwise ones FP32 0.12; depthwise and
    projections FP32 0.04. They are 38 % of the model's multiply-adds (depthwise 7 %): the expansions and the
    student's convolutions, the rest, stay int8. A graph with no depthwise convolution keeps nothing here.
    """
    weights = {i.name: i for i in model.graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for tensor in node.input:
            consumers.setdefault(tensor, []).append(node)
    found: set[str] = set()
    for node in model.graph.node:
        if not _is_depthwise(node, weights):
            continue
        found.add(node.name)
        queue, seen = deque(node.output), set()
        while queue:
            tensor = queue.popleft()
            if tensor in seen:
                continue
            seen.add(tensor)
            for reader in consumers.get(tensor, ()):
                if reader.op_type == "Conv":  # the projection: what it computes is the next block's input
                    found.add(reader.name)
                else:
                    queue.extend(reader.output)
    return found


def split_quantizable(model: onnx.ModelProto, op_types: Sequence[str] = QUANTIZED_OP_TYPES,
                      exclude: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """(nodes to quantize, nodes of those op types kept FP32) for a named model.

    Kept FP32: the scoring tail (:func:`tail_nodes`), the convolutions that read the
    image (:func:`input_nodes`), the depthwise-separable pairs (:func:`separable_nodes`) and ``exclude``.
    ExportError when ``exclude`` names a node the graph lacks.
    """
    unknown = sorted(set(exclude) - {n.name for n in model.graph.node})
    if unknown:  # a misspelt name kept nothing FP32, silently
        raise ExportError(f"exclude: no node named {', '.join(repr(u[:60]) for u in unknown[:5])} in the graph",
                          field="exclude")
    tail = tail_nodes(model) | input_nodes(model, op_types) | separable_nodes(model) | set(exclude)
    candidates = [n.name for n in model.graph.node if n.op_type in op_types]
    return [n for n in candidates if n not in tail], [n for n in candidates if n in tail]


def calibration_images(folder: str | Path, max_images: int | None = None) -> list[Path]:
    """Good images for calibration: a dataset's train/good, or the images directly in ``folder``."""
    from inspector.data.datasets import load_dataset, not_good_images_problem

    # a dataset's defect or mask folder read as good images: INT8 ranges fitted to defects, with no word
    if why := not_good_images_problem(folder, "pass {dataset} (its train/ good images are used)"):
        raise DataError(why)
    dataset = load_dataset(folder)
    paths = [s.path for s in dataset.train]
    if not paths:
        raise DataError(f"{folder}: no calibration images")
    if max_images is not None and len(paths) > max_images:
        picks = np.linspace(0, len(paths) - 1, max_images).round().astype(int)  # spread over the set, stable
        paths = [paths[i] for i in sorted(set(picks.tolist()))]
    return paths


def make_reader(paths: Sequence[Path], spec: InputSpec, batch_size: int = DEFAULT_BATCH,
                on_size=None) -> "CalibrationImages":
    """An ONNX Runtime calibration data reader yielding uint8 NHWC batches for the graph input, made
    from ``paths`` as ``spec`` says (size, resize policy, bit depth, downscale method). ``on_size``: called with
    each image read and its own height and width (:func:`inspector.data.datasets.load_batch`)."""
    return CalibrationImages(paths, spec, batch_size, on_size)


class CalibrationImages:
    """ONNX Runtime's ``CalibrationDataReader`` for calibration images, decoded one batch at a time.

    ONNX Runtime's reader type accepts any object with ``get_next`` (its ``__subclasshook__``), so onnxruntime is
    not imported to define this. Beside plain iteration (``get_next`` until None) it serves the chunked calibration
    of ``quantize_static``'s ``CalibStridedMinMax`` option (onnxruntime/quantization/quantize.py: ``len(reader)``
    ranges, each ``set_range`` then ``collect_data`` until None): one batch per range, so the calibrator holds the
    activations of one batch, not of every image. Why that matters: the histogram calibrators (entropy,
    percentile) keep every output of every ``collect_data`` call until the call ends
    (onnxruntime/quantization/calibrate.py ``HistogramCalibrater.collect_data``), so one call over all the images
    held images × activation bytes, and a few hundred images at 512² were killed by the kernel for memory.
    Every range must yield a batch (the histogram calibrators raise "No data is collected." otherwise): when a
    whole chunk of images cannot be read, the next readable batches are handed out in smaller parts, and only
    when fewer readable images than ranges are left is the last image handed out again (``repeated``).
    """

    def __init__(self, paths: Sequence[Path], spec: InputSpec, batch_size: int, on_size=None) -> None:
        from inspector.data.datasets import Sample

        self.samples = [Sample(Path(p), 0, "good") for p in paths]
        self.spec, self.batch_size, self.on_size = spec, batch_size, on_size
        self.position = 0  # next sample to decode
        self.used = 0  # distinct images decoded and handed out
        self.repeated = 0
        self.pending: np.ndarray | None = None  # decoded images not handed out yet (ranged mode)
        self.last: np.ndarray | None = None
        self.ranges_left: int | None = None  # ranged mode: ranges still to come after the current one
        self.served = False  # ranged mode: the current range had its batch

    def __len__(self) -> int:
        return math.ceil(len(self.samples) / self.batch_size)

    def set_range(self, start_index: int, end_index: int) -> None:
        """Start the next range of ONNX Runtime's chunked calibration (they come in order, one chunk each)."""
        self.ranges_left = (len(self) if self.ranges_left is None else self.ranges_left) - 1
        self.served = False

    def _decode_next(self) -> np.ndarray | None:
        from inspector.data.datasets import load_batch

        spec = self.spec
        while self.position < len(self.samples):
            chunk = self.samples[self.position:self.position + self.batch_size]
            self.position += len(chunk)
            images, kept, _ = load_batch(chunk, spec.height, spec.width, spec.resize, spec.bit_depth, spec.downscale,
                                         on_size=self.on_size)
            if kept:
                self.used += len(kept)
                return images
        return None

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.ranges_left is None:  # plain iteration over every image
            images = self._decode_next()
            return None if images is None else {INPUT_NAME: images}
        if self.served:
            return None
        self.served = True
        if self.pending is None or not len(self.pending):
            self.pending = self._decode_next()
        if self.pending is None:
            if self.last is None:
                return None  # nothing readable at all: the caller says so
            self.repeated += 1
            return {INPUT_NAME: self.last}
        # keep one image back for each range that the chunks left can no longer fill
        short = max(0, self.ranges_left - math.ceil((len(self.samples) - self.position) / self.batch_size))
        give = max(1, len(self.pending) - short)
        images, self.pending = self.pending[:give], self.pending[give:]
        self.last = images[-1:]
        return {INPUT_NAME: images}

    def rewind(self) -> None:
        self.position, self.pending, self.last, self.ranges_left = 0, None, None, None


# While a histogram calibrator (entropy, percentile) bins one batch it holds the batch's outputs and, for the
# tensor it is binning, np.asarray, flatten and np.absolute copies of it (calibrate.py HistogramCollector.collect_*).
HISTOGRAM_COPIES = 3
_FLOAT_BYTES = {onnx.TensorProto.FLOAT: 4, onnx.TensorProto.FLOAT16: 2}


def calibration_bytes(model: onnx.ModelProto, batch: int, method: str,
                      op_types: Sequence[str] = QUANTIZED_OP_TYPES) -> int:
    """Bytes ONNX Runtime's calibrator holds at once for one batch of ``batch`` images (int, bytes; 0 for minmax,
    whose calibrator reduces every tensor to its min and max inside the graph).

    For entropy and percentile: every float tensor read or written by an ``op_types`` node (the tensors ONNX
    Runtime calibrates: calibrate.py ``select_tensors_to_calibrate``) at the shapes ONNX shape inference gives for
    that batch, plus :data:`HISTOGRAM_COPIES` copies of the largest. A tensor whose shape is not inferred counts
    0, so this is a lower bound; 0 when the graph cannot be shape-inferred at all (over 2 GB)."""
    if method == "minmax":
        return 0
    graph_input = next(i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer})
    first = graph_input.type.tensor_type.shape.dim[0]
    saved = onnx.TensorShapeProto.Dimension()
    saved.CopyFrom(first)
    first.dim_value = batch  # the input's batch axis is dynamic ("N"); the graph is only read, then put back
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # noqa: BLE001 - onnx raises several kinds (ValueError for 2 GB, InferenceError): no estimate
        return 0
    finally:
        first.CopyFrom(saved)
    infos = {v.name: v for v in (*inferred.graph.value_info, *inferred.graph.output)}
    weights = {t.name for t in inferred.graph.initializer}
    names = {t for n in inferred.graph.node if n.op_type in op_types for t in (*n.input, *n.output)}
    sizes = [_tensor_bytes(infos[t]) for t in sorted(names - weights) if t in infos]
    return sum(sizes) + HISTOGRAM_COPIES * max(sizes, default=0)


def _tensor_bytes(info: onnx.ValueInfoProto) -> int:
    """Bytes of a float tensor of known shape; 0 for another type or an unknown dimension."""
    tensor = info.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tensor.shape.dim]
    return _FLOAT_BYTES.get(tensor.elem_type, 0) * math.prod(dims) if tensor.HasField("shape") else 0


def require_calibration_memory(model: onnx.ModelProto, batch: int, spec: InputSpec, method: str,
                               op_types: Sequence[str], where: Path) -> None:
    """ExportError (one line with the numbers and what to do) when calibrating one batch of ``batch`` images
    (:func:`calibration_bytes`) needs more memory than is available now
    (:func:`inspector.data.memory.available_memory_bytes`: MemAvailable, within a cgroup's limit); the backstop
    to the batch-at-a-time calibration: a large model at a large size can still not fit one batch."""
    from inspector.data.memory import available_memory_bytes

    need = calibration_bytes(model, batch, method, op_types)
    available = available_memory_bytes() if need else None
    if available is None or need <= available:
        return
    gib = 1 << 30
    one = calibration_bytes(model, 1, method, op_types)
    advice = (f"lower --batch-size (1 image needs about {one / gib:.2f} GiB), or use --method minmax" if one <= available
              else "use --method minmax (it keeps only each tensor's range), or quantize on a machine with more memory")
    raise ExportError(f"{where}: --method {method} calibration holds about {need / gib:.1f} GiB per batch of {batch} "
                      f"image(s) at {spec.height}x{spec.width}, {available / gib:.1f} GiB is available: {advice}")


def _calibration_method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if name not in methods:
        raise ExportError(f"unknown calibration method '{name}'; choose one of {list(methods)}")
    return methods[name]


def default_int8_path(fp32_path: str | Path) -> Path:
    base, _ = split_graph_name(fp32_path)
    return base.with_name(base.name + ".int8.onnx")


def quantize_model(fp32_path: str | Path, calibration: str | Path, out: str | Path | None = None, *,
                   max_images: int | None = 256, batch_size: int = DEFAULT_BATCH, method: str = "minmax",
                   op_types: Sequence[str] = QUANTIZED_OP_TYPES, exclude: Sequence[str] = (),
                   weight_bits: int = 7, check_images: int = CHECK_IMAGES,
                   check_data: str | Path | None = None) -> dict[str, Any]:
    """Quantize the FP32 graph to ``<base>.int8.onnx`` with its own card ``<base>.int8.json``; return the card's
    ``graphs.int8`` entry. The FP32 graph and its sidecar are only read (a command never modifies its input).

    ``weight_bits``: 7 (default, |q| ≤ 64: no int16 saturation on x86 CPUs without VNNI) or 8 (full range).
    ``check_images``: before anything is written, the INT8 graph is run against FP32 on that many images of
    ``check_data`` (default: ``calibration``), chosen as verify chooses them (:func:`check_samples`), with verify's
    figures and int8 tolerances (:func:`check_against_fp32`); outside them ExportError and nothing is written;
    0 skips the check. Graph and card are moved into place together
    (:func:`inspector.outputs.replace_together`). Raises ConfigError for another ``weight_bits``,
    ExportError / DataError as described above.
    """
    if weight_bits not in WEIGHT_BITS:
        raise ConfigError(f"weight_bits {weight_bits}: choose 7 (any CPU) or 8 (TensorRT, VNNI CPUs)",
                          field="weight_bits")
    fp32_path = Path(fp32_path)
    sidecar_file, sidecar, out, card_file = _check_paths(fp32_path, out)
    paths = calibration_images(calibration, max_images)
    spec = card_input_spec(sidecar, str(sidecar_file))
    # images unlike the model's training images: ranges and a check of frames it should not be given (kept in
    # the card's quantization.warnings)
    told: list[str] = []
    watch = folder_watch(frame_shapes(sidecar, str(sidecar_file), retell=False), told)
    reader = make_reader(paths, spec, batch_size, watch)
    checks = check_samples(check_data or calibration, check_images) if check_images else None  # before the minutes

    model = name_nodes(read_graph_of_card(fp32_path, sidecar))
    quantize, kept = split_quantizable(model, op_types, exclude)
    if not quantize:
        raise ExportError(f"{fp32_path}: no {list(op_types)} node before the scoring tail to quantize")
    require_calibration_memory(model, min(batch_size, len(paths)), spec, method, op_types, fp32_path)
    log.info("quantizing %d %s node(s) of %s on %d calibration image(s) from %s; %d kept FP32 "
             "(reading the image, depthwise-separable, or in the scoring tail)",
             len(quantize), "/".join(op_types), fp32_path, len(paths), calibration, len(kept))
    with _staging_folder(out) as tmp, named_as_outputs(tmp, out.parent):  # errors name out, not the staging
        staged = Path(tmp) / out.name
        _quantize_to(model, staged, reader, quantize, kept, op_types, method, weight_bits, fp32_path, calibration)
        entry = _int8_entry(staged, out.name, method, reader.used, calibration, len(quantize), kept, op_types,
                            weight_bits)
        if checks:
            entry["quantization"]["check"] = check_against_fp32(staged, fp32_path, checks, spec, weight_bits,
                                                                batch_size, watch)
        entry["quantization"]["warnings"] = told
        staged_card = Path(tmp) / card_file.name
        write_sidecar(_int8_card(sidecar, sidecar_file, fp32_path, entry), staged_card)
        replace_together([(staged, out), (staged_card, card_file)], Path(tmp))  # the card last: it marks the pair
    log.info("wrote %s (%d Q/DQ-quantized node(s)) and its card %s", out, len(quantize), card_file)
    return entry


def _quantize_to(model: onnx.ModelProto, staged: Path, reader, quantize: list[str], kept: list[str],
                 op_types: Sequence[str], method: str, weight_bits: int, fp32_path: Path,
                 calibration: str | Path) -> None:
    """Run the quantizer into ``staged``; the library's failures as one DataError / ExportError line."""
    try:
        _run_quantizer(model, staged, reader, quantize, kept, op_types, method, weight_bits)
    except (DataError, ExportError):
        raise
    except Exception as exc:
        if reader.used == 0:
            raise DataError(f"{calibration}: none of the calibration images could be read") from None
        raise ExportError(f"{fp32_path}: ONNX Runtime quantization failed ({str(exc).strip().splitlines()[0][:300]})") from None
    if reader.used == 0:
        raise DataError(f"{calibration}: none of the calibration images could be read")
    if reader.repeated:
        log.warning("%s: the unreadable calibration images left %d batch(es) empty; the last image was binned once "
                    "more for each (ONNX Runtime calibrates batch by batch and needs one in each)", calibration,
                    reader.repeated)


def _staging_folder(out: Path) -> tempfile.TemporaryDirectory:
    """A temporary folder beside ``out`` (same file system: the files are renamed into place from it)."""
    try:
        return tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{cut_name(out.name, 10)}-")
    except OSError as exc:
        raise ExportError(f"{out.parent}: cannot write the INT8 graph there ({exc.strerror or exc})") from None


def precision_figures(cand_scores: np.ndarray, ref_scores: np.ndarray, cand_maps: np.ndarray,
                      ref_maps: np.ndarray) -> tuple[float, float]:
    """(score figure, map figure) of a candidate against the FP32 reference, as ``inspector verify`` computes
    them (:func:`inspector.evaluation.verify.judge`): max |Δscore| / max |score_ref|, and the worst image's
    99th percentile of |Δmap| / max |map_ref|. Scores (N,), maps (N, 1, h, w), float."""
    return _figures(cand_scores, ref_scores, _map_p99s(cand_maps, ref_maps), float(np.abs(ref_maps).max()))


def _map_p99s(cand_maps: np.ndarray, ref_maps: np.ndarray) -> list[float]:
    """Each image's 99th percentile of |Δmap| (maps (N, 1, h, w))."""
    return [float(np.percentile(np.abs(cm.astype(np.float64) - rm.astype(np.float64)), 99))
            for cm, rm in zip(cand_maps, ref_maps)]


def _figures(cand_scores, ref_scores, map_p99s: Sequence[float], map_scale: float) -> tuple[float, float]:
    c, r = np.asarray(cand_scores, np.float64), np.asarray(ref_scores, np.float64)
    score_max_abs, score_scale = float(np.abs(c - r).max()), float(np.abs(r).max())

    def relative(diff: float, scale: float) -> float:
        return diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)

    return relative(score_max_abs, score_scale), relative(max(map_p99s), map_scale)


def check_samples(folder: str | Path, limit: int) -> list:
    """Up to ``limit`` images to check the INT8 graph on, spread over the set, chosen as ``inspector verify``
    chooses its reference images (:func:`inspector.evaluation.verify.reference_samples`): a dataset's test split
    (good and defective), else its good images.

    Why not only good images when defective ones are there: verify's figures are relative to the largest FP32
    score, and on good images alone that can be near 0 (quantile-normalised maps clamp the normal range to 0).
    The tests' trained reduced student (64×64, 2 epochs) measured 1.6 of the scale on its 12 good images with
    an INT8 graph that verify passes at 0.02 on its test split: the figure there says nothing.
    """
    from inspector.data.datasets import load_dataset

    dataset = load_dataset(folder)
    samples = list(dataset.test) or list(dataset.train)
    if len(samples) > limit:
        picks = np.linspace(0, len(samples) - 1, limit).round().astype(int)
        samples = [samples[i] for i in sorted(set(picks.tolist()))]
    if not samples:
        raise DataError(f"{folder}: no images to check the INT8 graph on")
    return samples


def check_against_fp32(int8_path: Path, fp32_path: Path, samples: Sequence, spec: InputSpec, weight_bits: int,
                       batch_size: int = DEFAULT_BATCH, on_size=None) -> dict[str, Any]:
    """Run the INT8 graph and the FP32 graph on ``samples`` (:func:`check_samples`) with ONNX Runtime on the CPU
    and compare them with verify's figures (:func:`precision_figures`) and int8 tolerances (:data:`INT8_TOLERANCES`).

    Returns what was measured. ExportError (one line, nothing written by the caller) when a figure is outside its
    tolerance or the INT8 graph gives NaN/Inf. Not checked (a warning) for 8-bit weights on a CPU without VNNI,
    where ONNX Runtime's int8 kernels themselves are wrong (:mod:`inspector.backends.onnxruntime`). ``on_size``:
    called with each image read and its own height and width (:func:`inspector.data.datasets.load_batch`).
    """
    from inspector.backends.onnxruntime import cpu_has_int8_dot_product
    from inspector.data.datasets import load_batch, none_readable

    if weight_bits == 8 and not cpu_has_int8_dot_product():
        log.warning("%s: not checked against FP32: ONNX Runtime's int8 kernels saturate with 8-bit weights on this "
                    "CPU (no VNNI); check the TensorRT engine with inspector verify", int8_path.name)
        return {"checked": False, "why": "8-bit weights on a CPU without VNNI"}
    # both graphs on each batch, its maps reduced to figures at once: memory is one batch's, not the check set's
    # (--check-images up to 4096 at 512² held 8 GiB of maps)
    sessions = _cpu_session(int8_path), _cpu_session(fp32_path)
    scores, p99s, map_scale, finite = ([], []), [], 0.0, True
    for start in range(0, len(samples), batch_size):
        images, kept, _ = load_batch(samples[start:start + batch_size], spec.height, spec.width, spec.resize,
                                     spec.bit_depth, spec.downscale, on_size=on_size)
        if not kept:
            continue
        (cand_s, cand_m), (ref_s, ref_m) = (s.run(list(OUTPUT_NAMES), {INPUT_NAME: images}) for s in sessions)
        finite = finite and bool(np.isfinite(cand_s).all() and np.isfinite(cand_m).all())
        scores[0].append(cand_s)
        scores[1].append(ref_s)
        p99s.extend(_map_p99s(cand_m, ref_m) if finite else ())
        map_scale = max(map_scale, float(np.abs(ref_m).max()))
    if not scores[1]:
        raise none_readable(samples, "check image(s)")
    n = sum(len(s) for s in scores[1])
    if not finite:
        raise ExportError(f"{fp32_path}: the INT8 graph gives NaN/Inf on {n} check image(s); nothing written")
    score_rel, map_rel = _figures(np.concatenate(scores[0]), np.concatenate(scores[1]), p99s, map_scale)
    result = {"checked": True, "images": n, "score_rel_diff": round(score_rel, 6), "map_rel_diff": round(map_rel, 6),
              "tolerances": {"score": INT8_TOLERANCES[0], "map": INT8_TOLERANCES[1]}}
    log.info("INT8 against FP32 on %d image(s): score %.4f, map %.4f of the scale", n, score_rel, map_rel)
    if score_rel > INT8_TOLERANCES[0] or map_rel > INT8_TOLERANCES[1]:
        raise ExportError(f"{fp32_path}: the INT8 graph is outside verify's int8 tolerance on {n} image(s) "
                          f"(score {score_rel:.3f} of the scale, tolerance {INT8_TOLERANCES[0]:g}; map {map_rel:.3f}, "
                          f"tolerance {INT8_TOLERANCES[1]:g}); nothing written: keep more convolutions FP32 "
                          "(--exclude NODE)")
    return result


def _cpu_session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _check_paths(fp32_path: Path, out: str | Path | None) -> tuple[Path, dict[str, Any], Path, Path]:
    """(FP32 sidecar file, verified sidecar, INT8 output path, INT8 card path); ExportError unless the input is the
    FP32 graph named beside its sidecar, ``out`` is the INT8 name beside it, and the INT8 graph and card may be
    written (free, or the files of an earlier quantize: :func:`inspector.outputs.claim_outputs`)."""
    if split_graph_name(fp32_path)[1] != "fp32":
        raise ExportError(f"{fp32_path}: quantize the FP32 graph (e.g. export/model.onnx), not a reduced-precision one")
    sidecar_file = sidecar_path_for(fp32_path)
    sidecar = verify_graph(fp32_path, read_sidecar(sidecar_file))
    expected = default_int8_path(fp32_path)
    out = Path(out) if out is not None else expected
    if split_graph_name(out)[1] != "int8" or out.parent.resolve() != expected.parent.resolve() \
            or out.name != expected.name:
        raise ExportError(f"out: {out}: the INT8 graph must be {expected} (beside the FP32 graph)", field="out")
    card_file = derived_card_path(out)
    legacy = sidecar["graphs"].get("int8", {}).get("file") == out.name and not os.path.lexists(card_file)
    names = [card_file] if legacy and out.is_file() and not out.is_symlink() else [out, card_file]
    claim_outputs(out, names, card_file, _files_of_int8_card, ExportError, command="quantize",
                  card_noun="INT8 card", file_noun="graph")
    return sidecar_file, sidecar, out, card_file


def _files_of_int8_card(data: Any) -> set[str] | None:
    """The graph an INT8 card written by quantize names; None for any other JSON (a model card, the user's)."""
    if not isinstance(data, dict) or not isinstance(data.get("derived_from"), dict):
        return None
    entry = (data.get("graphs") or {}).get("int8") if isinstance(data.get("graphs"), dict) else None
    name = entry.get("file") if isinstance(entry, dict) else None
    return {name} if isinstance(name, str) and name else None


def _int8_card(sidecar: dict[str, Any], sidecar_file: Path, fp32_path: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """The INT8 graph's own card: the FP32 export's card (identity, input, outputs, training) with this one graph,
    and ``derived_from`` naming the FP32 graph and sidecar (with their sha256) it was made from."""
    card = {key: value for key, value in sidecar.items() if key != "graphs"}
    card["graphs"] = {"int8": entry}
    card["derived_from"] = {"graph": fp32_path.name, "sha256": sidecar["graphs"]["fp32"]["sha256"],
                            "sidecar": sidecar_file.name, "sidecar_sha256": sha256_file(sidecar_file),
                            "command": "inspector quantize"}
    return card


class _QuantizerAdvice(logging.Filter):
    """While the quantizer runs, its advice to the root logger below ERROR ("Please consider to run
    pre-processing before quantization", a link) is a library message: shown only with ``-v``, like its INFO lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        from_quantizer = record.name == "root" and "quantization" in record.pathname.replace("\\", "/")
        return not from_quantizer or record.levelno >= logging.ERROR or logging.getLogger().isEnabledFor(logging.DEBUG)

    def __enter__(self) -> "_QuantizerAdvice":
        for handler in logging.getLogger().handlers:
            handler.addFilter(self)
        return self

    def __exit__(self, *exc) -> None:
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self)


def _run_quantizer(model: onnx.ModelProto, out: Path, reader, quantize: list[str], kept: list[str],
                   op_types: Sequence[str], method: str, weight_bits: int) -> None:
    """ONNX Runtime's static QDQ quantizer: symmetric int8 activations, per-channel int8 weights in
    ``weight_bits`` bits (``reduce_range``: 7), FP32 bias."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    printed = io.StringIO()  # the histogram collector print()s a line per batch; kept for -v, not for stdout
    with tempfile.TemporaryDirectory(prefix="inspector-quant-") as tmp, _QuantizerAdvice(), \
            contextlib.redirect_stdout(printed):
        named = Path(tmp) / "named.onnx"
        onnx.save(model, str(named))
        quantize_static(
            str(named), str(out), reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(op_types),
            nodes_to_quantize=quantize,
            nodes_to_exclude=kept,
            per_channel=True,
            reduce_range=weight_bits == 7,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=_calibration_method(method),
            extra_options={
                "CalibStridedMinMax": 1,  # one batch per collect_data call: memory bounded (CalibrationImages)
                "ActivationSymmetric": True,
                "WeightSymmetric": True,
                "QuantizeBias": False,
                "OpTypesToExcludeOutputQuantization": list(op_types),
            },
        )
    for line in dict.fromkeys(printed.getvalue().splitlines()):
        log.debug("onnxruntime: %s", line)


def _int8_entry(staged: Path, name: str, method: str, used: int, calibration: str | Path, n_quantized: int,
                kept: list[str], op_types: Sequence[str], weight_bits: int) -> dict[str, Any]:
    """The INT8 card's ``graphs.int8`` entry: the file (``staged``, to be named ``name``), its hash and how it
    was quantized."""
    return {
        "file": name,
        "sha256": sha256_file(staged),
        "precision": "int8",
        "quantization": {
            "tool": "onnxruntime.quantization.quantize_static",
            "format": "QDQ",
            "activations": "int8 symmetric (per tensor)",
            "weights": f"int8 symmetric per channel, {weight_bits}-bit range",
            "weight_bits": weight_bits,
            "calibration_method": method,
            "calibration_images": used,
            "calibration_folder": str(calibration),
            "quantized_nodes": n_quantized,
            "kept_fp32_nodes": kept,
            "op_types": list(op_types),
        },
    }
