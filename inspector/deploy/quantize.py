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
  (:func:`input_nodes`, which says why).

The result is written as ``<base>.int8.onnx`` beside the FP32 graph and added to
the model sidecar as ``graphs.int8`` (file, sha256, precision, how it was made).
ONNX Runtime runs it on the CPU, so ``inspector verify`` measures its accuracy
against FP32 without a GPU; ``inspector build`` turns it into an INT8 engine.
"""

from __future__ import annotations

import logging
import tempfile
from collections import deque
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx

from inspector.artifacts import input_spec as card_input_spec
from inspector.artifacts.model_card import (read_sidecar, sha256_file, sidecar_path_for, split_graph_name, verify_graph,
                                            write_sidecar)
from inspector.contract import DEFAULT_BATCH, INPUT_NAME, InputSpec
from inspector.deploy.checks import read_graph_of_card
from inspector.errors import ConfigError, DataError, ExportError

log = logging.getLogger(__name__)

QUANTIZED_OP_TYPES = ("Conv",)
# The first op of the scoring tail: everything at or after one of these stays FP32.
TAIL_OPS = frozenset({"ReduceL2", "ReduceSum", "ReduceSumSquare", "ReduceMean", "ReduceMax", "ReduceMin",
                      "ReduceProd", "ReduceLogSumExp", "Resize", "Upsample", "TopK", "ArgMax"})
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
WEIGHT_BITS = (7, 8)  # 7: correct on every x86 CPU (see the module docstring); 8: TensorRT / VNNI CPUs only


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


def split_quantizable(model: onnx.ModelProto, op_types: Sequence[str] = QUANTIZED_OP_TYPES,
                      exclude: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """(nodes to quantize, nodes of those op types kept FP32) for a named model.

    Kept FP32: the scoring tail (:func:`tail_nodes`), the convolutions that read the
    image (:func:`input_nodes`) and ``exclude``. ExportError when ``exclude`` names a node the graph lacks.
    """
    unknown = sorted(set(exclude) - {n.name for n in model.graph.node})
    if unknown:  # a misspelt name kept nothing FP32, silently
        raise ExportError(f"exclude: no node named {', '.join(repr(u[:60]) for u in unknown[:5])} in the graph",
                          field="exclude")
    tail = tail_nodes(model) | input_nodes(model, op_types) | set(exclude)
    candidates = [n.name for n in model.graph.node if n.op_type in op_types]
    return [n for n in candidates if n not in tail], [n for n in candidates if n in tail]


def calibration_images(folder: str | Path, max_images: int | None = None) -> list[Path]:
    """Good images for calibration: a dataset's train/good, or the images directly in ``folder``."""
    from inspector.data.datasets import load_dataset

    dataset = load_dataset(folder)
    paths = [s.path for s in dataset.train]
    if not paths:
        raise DataError(f"{folder}: no calibration images")
    if max_images is not None and len(paths) > max_images:
        picks = np.linspace(0, len(paths) - 1, max_images).round().astype(int)  # spread over the set, stable
        paths = [paths[i] for i in sorted(set(picks.tolist()))]
    return paths


def make_reader(paths: Sequence[Path], spec: InputSpec, batch_size: int = DEFAULT_BATCH):
    """An ONNX Runtime CalibrationDataReader yielding uint8 NHWC batches for the graph input, made
    from ``paths`` as ``spec`` says (size, resize policy, bit depth, downscale method)."""
    from onnxruntime.quantization import CalibrationDataReader

    from inspector.data.datasets import Sample, load_batch

    class ImageReader(CalibrationDataReader):
        def __init__(self) -> None:
            self.samples = [Sample(Path(p), 0, "good") for p in paths]
            self.position = 0
            self.used = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            while self.position < len(self.samples):
                chunk = self.samples[self.position:self.position + batch_size]
                self.position += len(chunk)
                images, kept, _ = load_batch(chunk, spec.height, spec.width, spec.resize, spec.bit_depth,
                                             spec.downscale)
                if kept:
                    self.used += len(kept)
                    return {INPUT_NAME: images}
            return None

        def rewind(self) -> None:
            self.position = 0

    return ImageReader()


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
                   weight_bits: int = 7) -> dict[str, Any]:
    """Quantize the FP32 graph to ``<base>.int8.onnx``; update the sidecar; return the sidecar's int8 entry.

    ``weight_bits``: 7 (default, |q| ≤ 64: no int16 saturation on x86 CPUs without VNNI) or 8 (full range).
    Raises ConfigError for another value, ExportError / DataError as described above.
    """
    if weight_bits not in WEIGHT_BITS:
        raise ConfigError(f"weight_bits {weight_bits}: choose 7 (any CPU) or 8 (TensorRT, VNNI CPUs)",
                          field="weight_bits")
    fp32_path = Path(fp32_path)
    sidecar_file, sidecar, out = _check_paths(fp32_path, out)
    paths = calibration_images(calibration, max_images)
    reader = make_reader(paths, card_input_spec(sidecar, str(sidecar_file)), batch_size)

    model = name_nodes(read_graph_of_card(fp32_path, sidecar))
    quantize, kept = split_quantizable(model, op_types, exclude)
    if not quantize:
        raise ExportError(f"{fp32_path}: no {list(op_types)} node before the scoring tail to quantize")
    log.info("quantizing %d %s node(s) of %s on %d calibration image(s) from %s; %d kept FP32 "
             "(reading the image, or in the scoring tail)",
             len(quantize), "/".join(op_types), fp32_path, len(paths), calibration, len(kept))
    try:
        _run_quantizer(model, out, reader, quantize, kept, op_types, method, weight_bits)
    except (DataError, ExportError):
        raise
    except Exception as exc:
        if reader.used == 0:
            raise DataError(f"{calibration}: none of the calibration images could be read") from None
        raise ExportError(f"{fp32_path}: ONNX Runtime quantization failed ({str(exc).strip().splitlines()[0][:300]})") from None
    if reader.used == 0:
        raise DataError(f"{calibration}: none of the calibration images could be read")
    entry = _int8_entry(out, method, reader.used, calibration, len(quantize), kept, op_types, weight_bits)
    sidecar["graphs"]["int8"] = entry
    write_sidecar(sidecar, sidecar_file)
    log.info("wrote %s (%d Q/DQ-quantized node(s)) and updated %s", out, len(quantize), sidecar_file)
    return entry


def _check_paths(fp32_path: Path, out: str | Path | None) -> tuple[Path, dict[str, Any], Path]:
    """(sidecar file, verified sidecar, INT8 output path); ExportError unless the input is the FP32 graph
    named beside its sidecar and ``out`` is the INT8 name beside the same sidecar."""
    if split_graph_name(fp32_path)[1] != "fp32":
        raise ExportError(f"{fp32_path}: quantize the FP32 graph (e.g. export/model.onnx), not a reduced-precision one")
    sidecar_file = sidecar_path_for(fp32_path)
    sidecar = verify_graph(fp32_path, read_sidecar(sidecar_file))
    out = Path(out) if out is not None else default_int8_path(fp32_path)
    if split_graph_name(out)[1] != "int8" or sidecar_path_for(out).resolve() != sidecar_file.resolve():
        raise ExportError(f"out: {out}: the INT8 graph must be {default_int8_path(fp32_path)} (beside its sidecar)",
                          field="out")
    return sidecar_file, sidecar, out


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

    with tempfile.TemporaryDirectory(prefix="inspector-quant-") as tmp, _QuantizerAdvice():
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
                "ActivationSymmetric": True,
                "WeightSymmetric": True,
                "QuantizeBias": False,
                "OpTypesToExcludeOutputQuantization": list(op_types),
            },
        )


def _int8_entry(out: Path, method: str, used: int, calibration: str | Path, n_quantized: int, kept: list[str],
                op_types: Sequence[str], weight_bits: int) -> dict[str, Any]:
    """The model card's ``graphs.int8`` entry: the file, its hash and how it was quantized."""
    return {
        "file": out.name,
        "sha256": sha256_file(out),
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
