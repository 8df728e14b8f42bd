"""Small real ONNX graphs with the project's I/O contract, built with onnx.helper (no torch).

``images`` uint8 [N, H, W, 3] → Cast/Transpose/normalise → a 2-conv "teacher"
and a 2-conv "student" → channel L2 normalisation, 0.5·‖t̂ − ŝ‖² → bilinear
resize to H×W → separable 5-tap Gaussian smoothing (two 1-D Convs) → ``anomaly_map``
float32 [N, 1, H, W] and ``score`` = max of the map, float32 [N].

The FP16 variant runs the four feature convolutions in FP16 between explicit
Casts and keeps normalisation, distances, resize, smoothing and the score FP32,
like the project's exporter. Used by the quantize / engine-build / verify /
bench tests until (and besides) real exported models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from inspector.artifacts.model_card import sha256_file, write_sidecar

OPSET = 17
MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)


def _conv_weights(rng, cout, cin, k=3):
    w = rng.normal(0, (2.0 / (cin * k * k)) ** 0.5, size=(cout, cin, k, k)).astype(np.float32)
    b = rng.normal(0, 0.05, size=(cout,)).astype(np.float32)
    return w, b


def build_model(height: int = 32, width: int = 32, fp16: bool = False, seed: int = 0, *,
                map_scale: float = 1.0, nan: bool = False, break_types: bool = False,
                fp16_output: bool = False) -> onnx.ModelProto:
    """The tiny anomaly graph; ``map_scale``/``nan`` make deliberately wrong variants,
    ``break_types`` an FP16 graph with an op mixing FP16 and FP32 without a Cast,
    ``fp16_output`` one whose ``score`` output is FP16."""
    rng = np.random.default_rng(seed)
    conv_t = helper.tensor_dtype_to_np_dtype(TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT)
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(op, inputs, output, **attrs):
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    x = node("Cast", ["images"], "x_f", to=TensorProto.FLOAT)
    x = node("Transpose", [x], "x_nchw", perm=[0, 3, 1, 2])
    x = node("Div", [x, const("c255", np.float32(255.0))], "x_01")
    x = node("Sub", [x, const("mean", MEAN)], "x_centred")
    x = node("Div", [x, const("std", STD)], "x_norm")
    if fp16:
        x = node("Cast", [x], "x_half", to=TensorProto.FLOAT16)

    def branch(prefix):
        h = x
        for i, (cin, cout) in enumerate(((3, 8), (8, 16))):
            w, b = _conv_weights(rng, cout, cin)
            h = node("Conv", [h, const(f"{prefix}{i}_w", w.astype(conv_t)), const(f"{prefix}{i}_b", b.astype(conv_t))],
                     f"{prefix}{i}_conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2])
            h = node("Relu", [h], f"{prefix}{i}_relu")
        if fp16:
            h = node("Cast", [h], f"{prefix}_f32", to=TensorProto.FLOAT)
        return h

    feats = {}
    for prefix in ("teacher", "student"):
        f = branch(prefix)
        norm = node("ReduceL2", [f], f"{prefix}_l2", axes=[1], keepdims=1)
        norm = node("Max", [norm, const(f"{prefix}_eps", np.float32(1e-6))], f"{prefix}_l2eps")
        feats[prefix] = node("Div", [f, norm], f"{prefix}_unit")
    if break_types:  # FP16 tensor meets an FP32 one without a Cast
        feats["teacher"] = node("Add", [feats["teacher"], "teacher1_relu"], "mixed_add")
    d = node("Sub", [feats["teacher"], feats["student"]], "diff")
    d = node("Mul", [d, d], "diff2")
    d = node("ReduceSum", [d, const("axis_c", np.array([1], np.int64))], "dist", keepdims=1)
    d = node("Mul", [d, const("half", np.float32(0.5))], "dist_half")
    shape = node("Shape", [d], "dist_shape")
    nc = node("Slice", [shape, const("s0", np.array([0], np.int64)), const("s2", np.array([2], np.int64))], "nc")
    sizes = node("Concat", [nc, const("hw", np.array([height, width], np.int64))], "sizes", axis=0)
    m = node("Resize", [d, "", "", sizes], "map_up", mode="linear", coordinate_transformation_mode="half_pixel")
    g = np.exp(-0.5 * (np.arange(-2, 3) / 1.0) ** 2).astype(np.float32)
    g /= g.sum()
    m = node("Conv", [m, const("gauss_row", g.reshape(1, 1, 1, 5))], "smooth_rows", kernel_shape=[1, 5],
             pads=[0, 2, 0, 2])
    m = node("Conv", [m, const("gauss_col", g.reshape(1, 1, 5, 1))], "smooth_cols", kernel_shape=[5, 1],
             pads=[2, 0, 2, 0])
    if map_scale != 1.0:
        m = node("Mul", [m, const("map_scale", np.float32(map_scale))], "map_scaled")
    if nan:
        m = node("Mul", [m, const("nan", np.float32(np.nan))], "map_nan")
    m = node("Identity", [m], "anomaly_map")
    score = node("ReduceMax", [m], "score_max", axes=[1, 2, 3], keepdims=0)
    score_type = TensorProto.FLOAT
    if fp16_output:
        score = node("Cast", [score], "score", to=TensorProto.FLOAT16)
        score_type = TensorProto.FLOAT16
    else:
        score = node("Identity", [score], "score")
    graph = helper.make_graph(
        nodes, "tiny_anomaly",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", height, width, 3])],
        [helper.make_tensor_value_info("score", score_type, ["N"]),
         helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, ["N", 1, height, width])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def sidecar_for(name: str, height: int, width: int, graphs: dict[str, Path],
                map_size: tuple[int, int] | None = None) -> dict:
    """A model card for ``graphs`` ({precision: path}) of input ``height`` x ``width``; the map is
    ``map_size`` (h, w), the input size unless given."""
    map_h, map_w = map_size or (height, width)
    return {
        "schema_version": 1,
        "model": {"name": name, "preset": "tiny-test", "version": "0"},
        "input": {"dtype": "uint8", "layout": "NHWC", "height": height, "width": width, "channels": 3,
                  "color": "RGB", "resize": "square"},
        "outputs": {"score": {"dtype": "float32", "shape": ["N"]},
                    "anomaly_map": {"dtype": "float32", "shape": ["N", 1, map_h, map_w]}},
        "graphs": {p: {"file": f.name, "sha256": sha256_file(f), "precision": p} for p, f in graphs.items()},
        "opset": OPSET,
    }


def write_exported(folder: Path, name: str = "tiny", height: int = 32, width: int = 32, seed: int = 0,
                   fp16: bool = True, **variant) -> Path:
    """Write ``name.onnx`` (+ ``name.fp16.onnx``) and ``name.json`` in ``folder``; return the FP32 path.

    ``variant`` (map_scale, nan, …) applies to the FP16 graph only, to make a wrong candidate.
    """
    folder.mkdir(parents=True, exist_ok=True)
    graphs = {"fp32": folder / f"{name}.onnx"}
    onnx.save(build_model(height, width, fp16=False, seed=seed), str(graphs["fp32"]))
    if fp16:
        graphs["fp16"] = folder / f"{name}.fp16.onnx"
        onnx.save(build_model(height, width, fp16=True, seed=seed, **variant), str(graphs["fp16"]))
    write_sidecar(sidecar_for(name, height, width, graphs), folder / f"{name}.json")
    return graphs["fp32"]
