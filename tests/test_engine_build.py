"""Engine builder logic that runs without a GPU: the strongly-typed check and the TensorRT 10/11 rules.

The real builds (FP16 and INT8 engines) are GPU tests in tests/backends/test_tensorrt_gpu.py.
"""

from __future__ import annotations

import importlib.util

import onnx
import pytest
from onnx import TensorProto, helper

from inspector.deploy.engine_build import (BuildOptions, build_engine, check_strongly_typed, default_engine_path,
                                    plan_network)
from inspector.errors import BackendError, ExportError
from tiny_graphs import build_model, write_exported

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def test_fp16_graph_is_strongly_typed():
    report = check_strongly_typed(build_model(32, 32, fp16=True))
    assert report.ok, report.problems
    assert report.precision == "fp16"
    assert report.conv_precisions == {"float16": 4, "float32": 2}  # features FP16, smoothing FP32
    assert not report.warnings  # reductions, divisions, resize all FP32


def test_fp32_graph_precision():
    report = check_strongly_typed(build_model(32, 32))
    assert report.ok and report.precision == "fp32" and report.conv_precisions == {"float32": 6}


def test_mixed_precision_without_cast_fails():
    report = check_strongly_typed(build_model(32, 32, fp16=True, break_types=True))
    assert not report.ok
    assert any("mixes ['float16', 'float32'] inputs without an explicit Cast" in p for p in report.problems)


def test_output_type_must_match_the_contract():
    report = check_strongly_typed(build_model(32, 32, fp16=True, fp16_output=True))
    assert report.problems == ["output 'score' is FLOAT16 rank 1, expected FLOAT rank 1"]


def _tiny_graph(nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_untyped_tensor_and_fp16_reduction_are_reported():
    vi = helper.make_tensor_value_info
    # a custom-domain op: ONNX cannot infer its output type
    model = _tiny_graph(
        [helper.make_node("Cast", ["images"], ["h"], to=TensorProto.FLOAT16),
         helper.make_node("ReduceSum", ["h", "axes"], ["s"], keepdims=0),
         helper.make_node("Mystery", ["s"], ["m"], domain="custom"),
         helper.make_node("Cast", ["m"], ["score"], to=TensorProto.FLOAT)],
        [vi("images", TensorProto.UINT8, ["N", 4, 4, 3])],
        [vi("score", TensorProto.FLOAT, ["N"])],
        [helper.make_tensor("axes", TensorProto.INT64, [3], [1, 2, 3])])
    model.opset_import.append(helper.make_opsetid("custom", 1))
    report = check_strongly_typed(model)
    assert any("have no type after shape inference" in p for p in report.problems)
    assert any("graph lacks the output 'anomaly_map'" in p for p in report.problems)
    assert any("ReduceSum" in w and "FP16" in w for w in report.warnings)


def test_resize_and_qdq_may_mix_float_types():
    vi = helper.make_tensor_value_info
    model = _tiny_graph(
        [helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT16),
         helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
         helper.make_node("Resize", ["t", "", "scales"], ["r"], mode="nearest"),  # FP16 data, FP32 scales
         helper.make_node("Cast", ["r"], ["anomaly_map"], to=TensorProto.FLOAT),
         helper.make_node("ReduceMax", ["anomaly_map"], ["score"], axes=[1, 2, 3], keepdims=0)],
        [vi("images", TensorProto.UINT8, ["N", 4, 4, 3])],
        [vi("score", TensorProto.FLOAT, ["N"]), vi("anomaly_map", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])])
    report = check_strongly_typed(model)
    assert report.ok, report.problems


def test_network_plan_for_tensorrt_10_and_11():
    assert plan_network("fp16", 10, False, "m.fp16.onnx") == ("strongly_typed", "fp16")
    assert plan_network("int8", 11, False, "m.int8.onnx") == ("strongly_typed", "int8")
    assert plan_network("fp32", 11, False, "m.onnx") == ("strongly_typed", "fp32")
    assert plan_network("fp32", 10, True, "m.onnx") == ("fp16_flag", "fp16")  # 10.x fallback
    with pytest.raises(ExportError, match=r"TensorRT 11 removed BuilderFlag.FP16.*inspector build export/m.fp16.onnx"):
        plan_network("fp32", 11, True, "export/m.onnx")
    with pytest.raises(ExportError, match="only for an FP32 ONNX"):
        plan_network("fp16", 10, True, "m.fp16.onnx")


def test_default_engine_path_and_options():
    assert default_engine_path("export/rs-brick.fp16.onnx", "fp16").as_posix() == "engines/rs-brick.fp16.plan"
    assert default_engine_path("export/rs-brick.int8.onnx", "int8").as_posix() == "engines/rs-brick.int8.plan"
    # The library names the field it was given (the CLI swaps in its flag: tests/test_cli_fields.py).
    for bad, field in ((dict(max_batch=0), "max_batch"), (dict(max_batch=4, opt_batch=8), "opt_batch"),
                       (dict(optimization_level=7), "optimization_level"), (dict(workspace_mb=0), "workspace_mb")):
        with pytest.raises(ExportError, match=f"^{field} must be") as err:
            BuildOptions(**bad).validate()
        assert err.value.field == field and "--" not in str(err.value)


def test_build_refuses_a_badly_typed_graph_before_touching_tensorrt(tmp_path):
    fp32 = write_exported(tmp_path, break_types=True)
    with pytest.raises(ExportError, match="not a valid strongly typed graph.*explicit Cast"):
        build_engine(fp32.with_name("tiny.fp16.onnx"), tmp_path / "x.plan")


def test_build_refuses_a_graph_that_does_not_match_its_sidecar(tmp_path):
    fp32 = write_exported(tmp_path)
    onnx.save(build_model(32, 32, fp16=True, seed=1), str(fp32.with_name("tiny.fp16.onnx")))
    with pytest.raises(ExportError, match="does not match its sidecar"):
        build_engine(fp32.with_name("tiny.fp16.onnx"), tmp_path / "x.plan")


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
def test_build_without_tensorrt_says_how_to_install(tmp_path):
    fp32 = write_exported(tmp_path)
    with pytest.raises(BackendError, match=r"TensorRT is not installed.*\.\[tensorrt\]"):
        build_engine(fp32.with_name("tiny.fp16.onnx"), tmp_path / "x.plan")


def test_exported_fp16_graph_is_strongly_typed(request):
    """The real exporter's FP16 graph passes the check (once inspector.deploy exists)."""
    pytest.importorskip("inspector.deploy")
    pytest.importorskip("torch")
    fp32 = request.getfixturevalue("exported_model")
    fp16 = fp32.with_name(fp32.name[: -len(".onnx")] + ".fp16.onnx")
    report = check_strongly_typed(onnx.load(str(fp16)))
    assert report.ok, report.problems
    assert report.precision == "fp16"
    assert report.conv_precisions.get("float16", 0) > 0
    assert check_strongly_typed(onnx.load(str(fp32))).precision == "fp32"
