"""Export: the graphs' contract (I/O, no control flow, explicit types, FP16 split) and the sidecar."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from inspector.errors import ExportError
from inspector.deploy import check_graph, export_model, graph_paths
from inspector.deploy import export as export_mod
from inspector.deploy.checks import FP32_OPS, check_fp16, check_io, check_structure, infer_types
from inspector.artifacts.model_card import read_sidecar, sha256_file

H = W = 64


@pytest.fixture(scope="module")
def paths(exported_model) -> dict[str, Path]:
    return graph_paths(exported_model)


@pytest.fixture(scope="module")
def sidecar(paths) -> dict:
    return read_sidecar(paths["sidecar"])


# -- the files and the sidecar ------------------------------------------------

def test_export_writes_fp32_fp16_and_sidecar(paths, exported_model):
    assert paths["fp32"] == exported_model and exported_model.name == "rs.onnx"
    assert paths["fp16"].name == "rs.fp16.onnx" and paths["sidecar"].name == "rs.json"
    for path in paths.values():
        assert path.is_file()
    assert not [p for p in exported_model.parent.iterdir() if p.name.startswith(".")], "staging left behind"


def test_sidecar_describes_model_input_outputs(sidecar, trained_run):
    from inspector.artifacts.checkpoint import read_checkpoint

    payload = read_checkpoint(trained_run)
    assert sidecar["schema_version"] == 1
    model = sidecar["model"]
    assert (model["name"], model["preset"]) == ("reduced_student", "offline")
    assert model["version"] == sha256_file(trained_run / "best.pt")[:12]
    assert model["description"]["trainable_parameters"] > 0
    assert sidecar["input"] == {"name": "images", "dtype": "uint8", "layout": "NHWC", "batch": "batch",
                                "height": H, "width": W, "channels": 3, "color": "RGB", "resize": "square",
                                "downscale": "halving", "bit_depth": None}
    assert sidecar["outputs"]["score"]["shape"] == ["batch"]
    assert sidecar["outputs"]["anomaly_map"]["shape"] == ["batch", 1, H, W]
    assert sidecar["opset"] == 18
    assert {"inspector", "torch", "onnx"} <= set(sidecar["producer"])
    teacher = sidecar["teachers"][0]
    assert teacher["taps"] and teacher["weights"] != "random"  # the identity saved at training time
    training = sidecar["training"]
    assert training["data"] == payload["data"] and training["data"]["resize"] == "square"
    assert training["data"]["downscale"] == "halving"  # the default for new models
    assert training["checkpoint_sha256"] == sha256_file(trained_run / "best.pt")


def test_sidecar_hashes_match_graph_files(sidecar, paths):
    for precision in ("fp32", "fp16"):
        entry = sidecar["graphs"][precision]
        assert entry["file"] == paths[precision].name
        assert entry["precision"] == precision
        assert entry["sha256"] == sha256_file(paths[precision])
    assert sidecar["graphs"]["fp32"]["max_abs_map_diff_over_range"] < 1e-4


# -- the graph contract --------------------------------------------------------

@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_graph_contract(paths, precision):
    summary = check_graph(paths[precision], precision, H, W)  # checker, no control flow, I/O, types
    assert summary["batch"] == "batch" and summary["map_size"] == [H, W]
    model = onnx.load(str(paths[precision]))
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"If", "Loop", "Scan"}
    assert "BatchNormalization" not in ops  # folded into the convolutions
    assert sum(n.op_type == "Constant" for n in model.graph.node) == 0  # constants folded to initializers


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_every_tensor_has_an_explicit_type(paths, precision):
    model = onnx.load(str(paths[precision]))
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    typed = {v.name: v.type.tensor_type.elem_type for v in
             list(inferred.graph.value_info) + list(inferred.graph.output)}
    typed.update({i.name: i.data_type for i in inferred.graph.initializer})
    outputs = [o for n in inferred.graph.node for o in n.output if o]
    assert outputs and all(typed.get(o) for o in outputs)


def test_fp16_graph_runs_networks_in_half_and_sensitive_ops_in_float(paths):
    model = onnx.load(str(paths["fp16"]))
    types = infer_types(model, "fp16")
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    half = [n for n in convs if types[n.input[0]] == TensorProto.FLOAT16]
    assert len(half) >= len(convs) - 2  # all but the two 1-D Gaussian smoothing passes
    for node in model.graph.node:
        if node.op_type in FP32_OPS:
            assert types[node.input[0]] == TensorProto.FLOAT, node.name
    casts = [n for n in model.graph.node if n.op_type == "Cast"]
    to = {a.i for n in casts for a in n.attribute if a.name == "to"}
    assert {TensorProto.FLOAT16, TensorProto.FLOAT} <= to  # explicit casts both ways
    assert any(i.data_type == TensorProto.FLOAT16 for i in model.graph.initializer)


def test_fp16_and_fp32_graphs_have_the_same_io(paths):
    def io(path):
        g = onnx.load(str(path)).graph
        return [(v.name, v.type.tensor_type.elem_type,
                 [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
                for v in list(g.input) + list(g.output)]
    assert io(paths["fp32"]) == io(paths["fp16"])


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_dynamic_batch_1_and_8_on_onnxruntime(paths, precision):
    session = ort.InferenceSession(str(paths[precision]), providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(1).integers(0, 256, (8, H, W, 3), dtype=np.uint8)
    score8, map8 = session.run(None, {"images": batch})
    assert score8.shape == (8,) and map8.shape == (8, 1, H, W)
    assert score8.dtype == np.float32 and map8.dtype == np.float32
    score1, map1 = session.run(None, {"images": batch[3:4]})
    assert score1.shape == (1,) and map1.shape == (1, 1, H, W)
    np.testing.assert_allclose(score1[0], score8[3], rtol=1e-5)  # images are scored independently
    np.testing.assert_allclose(map1[0], map8[3], rtol=1e-4, atol=1e-6)


# -- the checks reject what they must reject (small hand-made graphs) ---------

def _model(nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _vi(name, elem, dims):
    return helper.make_tensor_value_info(name, elem, dims)


def test_control_flow_is_refused():
    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "b", [],
                               [_vi("y", TensorProto.FLOAT, [1])])
    node = helper.make_node("If", ["c"], ["out"], then_branch=branch, else_branch=branch)
    model = _model([node], [_vi("c", TensorProto.BOOL, [])], [_vi("out", TensorProto.FLOAT, [1])],
                   [helper.make_tensor("x", TensorProto.FLOAT, [1], [0.0])])
    with pytest.raises(ExportError, match=r"control flow \['If'\]"):
        check_structure(model, "m.onnx")


def _io_model(in_dims, in_type=TensorProto.UINT8, score_type=TensorProto.FLOAT):
    cast = helper.make_node("Cast", ["images"], ["f"], to=TensorProto.FLOAT)
    red = helper.make_node("ReduceMax", ["f"], ["score"], keepdims=0)
    ident = helper.make_node("Identity", ["f"], ["anomaly_map"])
    return _model([cast, red, ident], [_vi("images", in_type, in_dims)],
                  [_vi("score", score_type, ["batch"]), _vi("anomaly_map", TensorProto.FLOAT, ["batch", 1, 4, 4])])


@pytest.mark.parametrize("in_dims, in_type, score_type, message", [
    ([1, 4, 4, 3], TensorProto.UINT8, TensorProto.FLOAT, "symbolic"),  # static batch
    (["batch", 4, 4, 3], TensorProto.FLOAT, TensorProto.FLOAT, "uint8 input"),
    (["batch", 8, 4, 3], TensorProto.UINT8, TensorProto.FLOAT, "expected"),
    (["batch", 4, 4, 3], TensorProto.UINT8, TensorProto.FLOAT16, "expected float32"),
])
def test_io_contract_is_enforced(in_dims, in_type, score_type, message):
    with pytest.raises(ExportError, match=message):
        check_io(_io_model(in_dims, in_type, score_type), "m.onnx", 4, 4)


def _fp16_model(eps, reduce_in_half: bool = False):
    w = helper.make_tensor("w", TensorProto.FLOAT16, [1, 1, 1, 1], np.ones(1, np.float16).view(np.uint16).tolist())
    eps_t = numpy_helper.from_array(np.asarray(eps, np.float32), "eps")
    nodes = [helper.make_node("Cast", ["x"], ["xh"], to=TensorProto.FLOAT16),
             helper.make_node("Conv", ["xh", "w"], ["yh"])]
    if reduce_in_half:
        nodes += [helper.make_node("ReduceL2", ["yh"], ["rh"]), helper.make_node("Cast", ["rh"], ["r"], to=1)]
    else:
        nodes += [helper.make_node("Cast", ["yh"], ["y"], to=TensorProto.FLOAT),
                  helper.make_node("ReduceL2", ["y"], ["r"])]
    nodes.append(helper.make_node("Add", ["r", "eps"], ["out"]))
    return _model(nodes, [_vi("x", TensorProto.FLOAT, [1, 1, 4, 4])], [_vi("out", TensorProto.FLOAT, None)], [w, eps_t])


def test_fp16_checks_accept_a_correct_split():
    model = _fp16_model(1e-6)
    assert check_fp16(model, infer_types(model, "m"), "m")["conv_float16"] == 1


def test_fp16_epsilon_that_underflows_is_refused():
    model = _fp16_model(1e-12)
    with pytest.raises(ExportError, match="not representable in float16"):
        check_fp16(model, infer_types(model, "m"), "m")


def test_fp16_a_map_entry_below_the_maps_resolution_is_no_epsilon():
    """A data-derived constant (a per-position offset map) may hold an entry that flushes to 0 in float16 while
    its largest is ~1: that loss is rounding, not an epsilon that vanishes; the same value alone still is."""
    ok = _fp16_model(np.array([[0.3, -0.12], [2.6e-8, 0.05]], dtype=np.float32))
    assert check_fp16(ok, infer_types(ok, "m"), "m")["conv_float16"] == 1
    alone = _fp16_model(np.array([[2.6e-8, 0.0], [0.0, -1e-9]], dtype=np.float32))
    with pytest.raises(ExportError, match="not representable in float16"):
        check_fp16(alone, infer_types(alone, "m"), "m")


def test_fp16_sensitive_op_in_half_is_refused():
    model = _fp16_model(1e-6, reduce_in_half=True)
    with pytest.raises(ExportError, match="ReduceL2 .* reads float16"):
        check_fp16(model, infer_types(model, "m"), "m")


def test_untyped_tensor_is_refused():
    node = helper.make_node("Mystery", ["x"], ["y"], domain="vendor")
    model = helper.make_model(helper.make_graph([node], "g", [_vi("x", TensorProto.FLOAT, [1])],
                                                [_vi("y", TensorProto.FLOAT, [1])]),
                              opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("vendor", 1)])
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.UNDEFINED
    with pytest.raises(ExportError, match="without an explicit type"):
        infer_types(model, "m.onnx")


def test_fp32_graph_labelled_fp16_is_refused(paths):
    with pytest.raises(ExportError, match="no float16 convolution"):
        check_graph(paths["fp32"], "fp16", H, W)


# -- never a silent downgrade ----------------------------------------------------

def _load_trained(trained_run):
    from inspector.training.checkpoint import load_model

    return load_model(trained_run)[0]


def test_exporter_that_returns_fp32_for_fp16_fails_loudly(trained_run, paths, tmp_path, monkeypatch):
    """An exporter that quietly writes an FP32 graph for the FP16 request is caught; nothing is written."""
    def fake_export(model, path, height, width, opset):
        shutil.copy(paths["fp32"], path)  # the "downgrade"
    monkeypatch.setattr(export_mod, "export_graph", fake_export)
    with pytest.raises(ExportError, match="no float16 convolution"):
        export_model(_load_trained(trained_run), tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_fp16_conversion_failure_is_an_export_error(trained_run, paths, tmp_path, monkeypatch):
    from inspector.models.base import AnomalyModel

    monkeypatch.setattr(export_mod, "export_graph", lambda m, p, h, w, o: shutil.copy(paths["fp32"], p))
    def broken(self, dtype):
        raise RuntimeError("half not supported here")
    monkeypatch.setattr(AnomalyModel, "set_compute_dtype", broken)
    with pytest.raises(ExportError, match="cannot convert the networks to float16"):
        export_model(_load_trained(trained_run), tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_opset_outside_range_is_refused(trained_run, tmp_path):
    with pytest.raises(ExportError, match="opset 11"):
        export_model(_load_trained(trained_run), tmp_path / "m", opset=11)


def test_graph_paths_accept_base_or_onnx_name(tmp_path):
    for given in ("export/rs-brick", "export/rs-brick.onnx", "export/rs-brick.fp16.onnx", "export/rs-brick.json"):
        paths = graph_paths(given)
        assert [p.name for p in paths.values()] == ["rs-brick.onnx", "rs-brick.fp16.onnx", "rs-brick.json"]
