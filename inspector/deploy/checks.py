"""The exported graph's contract, checked on the ONNX file itself (onnx only, no torch).

Every check raises :class:`ExportError` with one line naming the file and what
is wrong; :func:`check_graph` runs them all and returns a small summary that
goes into the sidecar. The contract (DESIGN.md seams 1 and 3, MODELS.md
"Precision"):

* ``onnx.checker`` passes (full check, with shape inference);
* no control flow (``If``, ``Loop``, ``Scan``) anywhere, nor local functions
  that could hide one;
* one input ``images`` uint8 [batch, H, W, 3] with a symbolic batch dimension;
  outputs ``score`` float32 [batch] and ``anomaly_map`` float32 [batch, 1, h, w];
* after shape inference every tensor has an explicit element type (TensorRT 10
  and 11 build it as a strongly typed network);
* FP16 graph: convolutions run in float16 (at least one, or the graph is not
  FP16 at all), the numerically sensitive ops (reductions, powers, square roots,
  resizes) read float32, every float16 weight is finite, and every small float
  constant (epsilons, clamp bounds) survives a round trip to float16.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from inspector.contract import INPUT_NAME, MAP_NAME, OUTPUT_NAMES, SCORE_NAME
from inspector.errors import ExportError

CONTROL_FLOW_OPS = frozenset({"If", "Loop", "Scan"})
# Ops that must read float32 in the FP16 graph (MODELS.md "Precision": ReduceL2 over
# hundreds of channels overflows in FP16, small distances underflow).
FP32_OPS = frozenset({
    "ReduceL1", "ReduceL2", "ReduceSum", "ReduceSumSquare", "ReduceMean", "ReduceMax", "ReduceMin",
    "ReduceProd", "ReduceLogSum", "ReduceLogSumExp", "LpNormalization", "Pow", "Sqrt", "Resize",
})
SMALL_CONSTANT = 16  # constants with at most this many elements are checked as epsilons / bounds
FLOAT_TYPES = {TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16", TensorProto.DOUBLE: "float64",
               TensorProto.BFLOAT16: "bfloat16"}


def _elem_type(value: onnx.ValueInfoProto) -> int:
    return value.type.tensor_type.elem_type


def _dims(value: onnx.ValueInfoProto) -> list[int | str | None]:
    dims = []
    for d in value.type.tensor_type.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or None))
    return dims


def _all_nodes(graph: onnx.GraphProto):
    """Every node, subgraphs included (there should be none, but look)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                yield from _all_nodes(sub)


def check_structure(model: onnx.ModelProto, where: str) -> None:
    """onnx.checker (full) and no control flow."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # ValidationError, InferenceError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{where}: onnx.checker rejects the graph ({first[:300]})") from None
    flow = sorted({n.op_type for n in _all_nodes(model.graph) if n.op_type in CONTROL_FLOW_OPS})
    if flow:
        raise ExportError(f"{where}: graph contains control flow {flow}; fold it at export "
                          "(no data-dependent Python control flow in forward)")
    if len(model.functions):
        names = [f.name for f in model.functions]
        raise ExportError(f"{where}: graph keeps local functions {names[:5]}; expected a flat graph")


def check_io(model: onnx.ModelProto, where: str, height: int, width: int) -> dict:
    """The I/O contract; returns {"batch": symbol, "map_size": [h, w]}."""
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if [i.name for i in inputs] != [INPUT_NAME] or _elem_type(inputs[0]) != TensorProto.UINT8:
        got = [(i.name, TensorProto.DataType.Name(_elem_type(i))) for i in inputs]
        raise ExportError(f"{where}: expected one uint8 input '{INPUT_NAME}', graph has {got}")
    in_dims = _dims(inputs[0])
    if len(in_dims) != 4 or in_dims[1:] != [height, width, 3] or not isinstance(in_dims[0], str):
        raise ExportError(f"{where}: input '{INPUT_NAME}' has shape {in_dims}; expected "
                          f"[batch, {height}, {width}, 3] with a symbolic (dynamic) batch")
    batch = in_dims[0]
    outputs = {o.name: o for o in graph.output}
    if sorted(outputs) != sorted(OUTPUT_NAMES):
        raise ExportError(f"{where}: outputs are {sorted(outputs)}; expected {list(OUTPUT_NAMES)}")
    for name in OUTPUT_NAMES:
        if _elem_type(outputs[name]) != TensorProto.FLOAT:
            raise ExportError(f"{where}: output '{name}' is "
                              f"{TensorProto.DataType.Name(_elem_type(outputs[name]))}; expected float32")
    score, amap = _dims(outputs[SCORE_NAME]), _dims(outputs[MAP_NAME])
    if score != [batch]:
        raise ExportError(f"{where}: output 'score' has shape {score}; expected [{batch}]")
    if len(amap) != 4 or amap[0] != batch or amap[1] != 1 or not all(isinstance(d, int) for d in amap[2:]):
        raise ExportError(f"{where}: output 'anomaly_map' has shape {amap}; expected [{batch}, 1, h, w]")
    return {"batch": batch, "map_size": [int(amap[2]), int(amap[3])]}


def infer_types(model: onnx.ModelProto, where: str) -> dict[str, int]:
    """Strict shape/type inference; every tensor name → element type. Raises if one is untyped."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{where}: shape inference fails ({first[:300]})") from None
    graph = inferred.graph
    types = {v.name: _elem_type(v) for v in list(graph.value_info) + list(graph.input) + list(graph.output)}
    types.update({i.name: i.data_type for i in graph.initializer})
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    types[node.output[0]] = attr.t.data_type
    untyped = [o for n in graph.node for o in n.output if o and not types.get(o)]
    if untyped:
        raise ExportError(f"{where}: {len(untyped)} tensor(s) without an explicit type after shape inference "
                          f"(first: {untyped[0]}); a strongly typed TensorRT build needs every type")
    return types


def _constants(model: onnx.ModelProto):
    """(name, numpy array) of every initializer and Constant node value."""
    for init in model.graph.initializer:
        yield init.name, numpy_helper.to_array(init)
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    yield node.output[0], numpy_helper.to_array(attr.t)


def check_fp16(model: onnx.ModelProto, types: dict[str, int], where: str) -> dict:
    """The FP16 precision contract; returns conv counts per precision for the sidecar."""
    convs = Counter()
    for node in model.graph.node:
        if node.op_type == "Conv":
            convs[FLOAT_TYPES.get(types.get(node.input[0]), "other")] += 1
        if node.op_type in FP32_OPS:
            got = types.get(node.input[0])
            if got != TensorProto.FLOAT:
                raise ExportError(f"{where}: {node.op_type} node '{node.name}' reads "
                                  f"{FLOAT_TYPES.get(got, got)}; sensitive ops must stay float32 (explicit Cast)")
    if not convs["float16"]:
        raise ExportError(f"{where}: the FP16 graph has no float16 convolution ({dict(convs)}); "
                          "refusing to label an FP32 graph as FP16")
    for name, value in _constants(model):
        if not np.issubdtype(value.dtype, np.floating):
            continue
        if value.dtype == np.float16 and not np.isfinite(value).all():
            raise ExportError(f"{where}: float16 constant '{name}' holds inf/NaN (overflow in the conversion)")
        if value.size <= SMALL_CONSTANT:
            v = value.astype(np.float64)
            as16 = v.astype(np.float16)
            # a nonzero that flushes to 0 matters where it is the constant's own scale (an epsilon, a bound); in a
            # data-derived map (a per-position offset) an entry below fp16's resolution of the map's largest one
            # is lost as any rounding is (a 4-entry offset map with one 2.6e-08 was refused: Session 39)
            scale = float(np.abs(v[np.isfinite(v)]).max(initial=0.0))
            tiny = (v != 0) & (as16 == 0) & (np.abs(v) > scale * 2.0 ** -11)
            bad = tiny | (np.isfinite(v) & ~np.isfinite(as16))
            if bad.any():
                raise ExportError(f"{where}: constant '{name}' = {v[bad].ravel()[0]:g} is not representable "
                                  "in float16 (an epsilon or bound that under/overflows)")
    return {"conv_float16": convs["float16"], "conv_float32": convs["float32"]}


def read_graph(path: str | Path) -> onnx.ModelProto:
    """The ONNX file at ``path``; ExportError (one line) when its bytes are not an ONNX model.

    Every command that reads a graph with ``onnx`` (export's checks, build, quantize) loads it here: a graph
    cut short by a copy whose sidecar had been re-hashed ended ``build`` and ``quantize`` in protobuf's
    DecodeError traceback. OSErrors (no file, unreadable) are left to the caller's one-line handling.
    """
    from google.protobuf.message import Error as ProtobufError

    try:
        return onnx.load(str(path))
    except (ProtobufError, ValueError, RecursionError) as exc:
        raise ExportError(f"{path}: not a readable ONNX file ({type(exc).__name__}: "
                          f"{str(exc).strip()[:120] or 'no detail'})") from None


def read_graph_of_card(path: str | Path, card: dict) -> onnx.ModelProto:
    """The ONNX graph at ``path`` (:func:`read_graph`), checked against its model ``card`` (the sidecar):
    the I/O contract of :func:`check_io` at the card's input height and width. ExportError otherwise.

    ONNX Runtime's backend checks the same before inference; build and quantize read the graph with onnx
    instead, and a graph of another size under a copied sidecar went on to ONNX Runtime's quantizer (its
    "invalid dimensions" error) or to TensorRT's builder."""
    model = read_graph(path)
    spec = card.get("input", {}) if isinstance(card, dict) else {}
    check_io(model, str(path), spec.get("height"), spec.get("width"))
    return model


def check_graph(path: str | Path, precision: str, height: int, width: int) -> dict:
    """Run every check on the saved graph at ``path``; returns a summary for the sidecar."""
    where = str(path)
    model = read_graph(path)
    check_structure(model, where)
    summary = check_io(model, where, height, width)
    types = infer_types(model, where)
    summary["opset"] = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    summary["nodes"] = len(model.graph.node)
    if precision == "fp16":
        summary.update(check_fp16(model, types, where))
    return summary
