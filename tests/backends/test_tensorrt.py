"""TensorRT backend logic that runs without a GPU: engine-sidecar mismatch detection, the CUDA checker,
and clear refusals when the engine, its sidecar, TensorRT or CUDA are missing."""

from __future__ import annotations

import copy
import importlib.util
import json

import pytest

from inspector.backends import load_backend
from inspector.backends.cuda import check_cudart, open_cuda
from inspector.artifacts import input_spec
from inspector.artifacts.engine_card import (ENGINE_KIND, ENGINE_SCHEMA_VERSION, engine_sidecar_path,
                                             read_engine_sidecar, write_engine_sidecar)
from inspector.backends.tensorrt import RuntimeFacts, check_engine, engine_mismatch, rebuild_command
from inspector.errors import BackendError
from inspector.artifacts.model_card import sha256_file

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
HAS_CUDA_PYTHON = importlib.util.find_spec("cuda") is not None and importlib.util.find_spec("cuda.bindings") is not None
COMMAND = "inspector build export/rs.fp16.onnx --out engines/rs.fp16.plan --max-batch 8"
FACTS = RuntimeFacts("10.13.0.35", "NVIDIA RTX A2000", "8.6")


def _sidecar(onnx_sha="a" * 64, engine_sha="b" * 64) -> dict:
    return {
        "schema_version": ENGINE_SCHEMA_VERSION,
        "kind": ENGINE_KIND,
        "engine": {"file": "rs.fp16.plan", "sha256": engine_sha},
        "tensorrt": {"version": "10.13.0.35", "major": 10},
        "gpu": {"name": "NVIDIA RTX A2000", "compute_capability": "8.6"},
        "precision": "fp16",
        "io": {"images": {"mode": "input", "dtype": "uint8", "shape": [-1, 64, 48, 3]}},
        "profile": {"min_batch": 1, "opt_batch": 8, "max_batch": 8},
        "onnx": {"file": "rs.fp16.onnx", "path": "export/rs.fp16.onnx", "sha256": onnx_sha},
        "build": {"command": COMMAND},
        "model": {"input": {"dtype": "uint8", "layout": "NHWC", "height": 64, "width": 48, "channels": 3,
                            "color": "RGB", "resize": "square"}},
    }


def test_matching_engine_passes():
    assert engine_mismatch(_sidecar(), FACTS, "engines/rs.fp16.plan") is None
    assert engine_mismatch(_sidecar(), FACTS, "engines/rs.fp16.plan", onnx_sha256="a" * 64,
                           engine_sha256="b" * 64) is None


@pytest.mark.parametrize("change, facts, expected", [
    (lambda s: s["tensorrt"].update(version="10.12.0.36"), FACTS,
     "built with TensorRT 10.12.0.36, this machine has TensorRT 10.13.0.35"),
    (None, RuntimeFacts("11.4.0.106", "NVIDIA RTX A2000", "8.6"),
     "built with TensorRT 10.13.0.35, this machine has TensorRT 11.4.0.106"),
    (None, RuntimeFacts("10.13.0.35", "NVIDIA H100 80GB HBM3", "9.0"),
     "built for NVIDIA RTX A2000 (compute capability 8.6), this GPU is NVIDIA H100 80GB HBM3 (compute capability 9.0)"),
    (None, RuntimeFacts("10.13.0.35", "NVIDIA RTX A4000", "8.6"), "this GPU is NVIDIA RTX A4000"),
    (lambda s: s.update(schema_version=99), FACTS, "engine sidecar schema 99 is not 1"),
])
def test_mismatches_name_the_problem_and_the_rebuild_command(change, facts, expected):
    sidecar = _sidecar()
    if change:
        change(sidecar)
    message = engine_mismatch(sidecar, facts, "engines/rs.fp16.plan")
    assert message is not None and expected in message
    assert message.startswith("engines/rs.fp16.plan: ")
    assert message.endswith(f"; rebuild with: {COMMAND}")
    assert "\n" not in message


def test_changed_onnx_or_engine_file_is_refused():
    message = engine_mismatch(_sidecar(), FACTS, "e.plan", onnx_sha256="c" * 64)
    assert "built from rs.fp16.onnx with sha256 aaaaaaaaaaaa…, the source ONNX now has cccccccccccc…" in message
    message = engine_mismatch(_sidecar(), FACTS, "e.plan", engine_sha256="d" * 64)
    assert "engine file sha256 dddddddddddd… does not match its sidecar" in message


def test_rebuild_command_without_a_recorded_command():
    sidecar = _sidecar()
    del sidecar["build"]
    assert rebuild_command(sidecar, "engines/rs.fp16.plan") == COMMAND


def test_check_engine_hashes_the_files_beside_the_engine(tmp_path):
    engine = tmp_path / "rs.fp16.plan"
    engine.write_bytes(b"serialized engine")
    onnx_file = tmp_path / "rs.fp16.onnx"
    onnx_file.write_bytes(b"onnx v1")
    sidecar = _sidecar(onnx_sha=sha256_file(onnx_file), engine_sha=sha256_file(engine))
    sidecar["onnx"]["path"] = str(tmp_path / "missing" / "rs.fp16.onnx")
    check_engine(sidecar, FACTS, engine)  # all match
    onnx_file.write_bytes(b"onnx v2 (re-exported)")
    with pytest.raises(BackendError, match="the source ONNX now has"):
        check_engine(sidecar, FACTS, engine)
    onnx_file.unlink()  # no ONNX beside it: the ONNX is not compared
    check_engine(sidecar, FACTS, engine)
    engine.write_bytes(b"another engine")
    with pytest.raises(BackendError, match="engine file sha256"):
        check_engine(sidecar, FACTS, engine)
    check_engine(sidecar, FACTS, engine, verify_files=False)


def test_engine_sidecar_round_trip_and_input_spec(tmp_path):
    engine = tmp_path / "rs.fp16.plan"
    assert engine_sidecar_path(engine) == tmp_path / "rs.fp16.json"
    with pytest.raises(BackendError, match=r"engine sidecar rs.fp16.json not found; rebuild with: inspector build"):
        read_engine_sidecar(engine)
    write_engine_sidecar(_sidecar(), engine)
    assert read_engine_sidecar(engine) == _sidecar()
    spec = input_spec(_sidecar())
    assert (spec.height, spec.width, spec.channels, spec.max_batch, spec.layout) == (64, 48, 3, 8, "NHWC")
    engine_sidecar_path(engine).write_text(json.dumps({"schema_version": 1, "kind": "calibration"}))  # not a card
    with pytest.raises(BackendError, match="not a TensorRT engine sidecar"):
        read_engine_sidecar(engine)
    # a model card at the short name: the engine beside its graph has its card at the whole engine name
    engine_sidecar_path(engine).write_text(json.dumps({"schema_version": 1, "graphs": {}}))
    assert engine_sidecar_path(engine) == tmp_path / "rs.fp16.plan.json"
    with pytest.raises(BackendError, match=r"engine sidecar rs.fp16.plan.json not found \(rs.fp16.json beside it "
                                           r"is a model card\); rebuild with"):
        read_engine_sidecar(engine)


def test_load_backend_refuses_missing_engine_and_sidecar(tmp_path):
    with pytest.raises(BackendError, match="engine file not found"):
        load_backend(tmp_path / "none.plan")
    engine = tmp_path / "rs.fp16.plan"
    engine.write_bytes(b"x")
    with pytest.raises(BackendError, match="sidecar rs.fp16.json not found"):
        load_backend(engine)


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
def test_backend_without_tensorrt_says_how_to_install(tmp_path):
    engine = tmp_path / "rs.fp16.plan"
    engine.write_bytes(b"x")
    write_engine_sidecar(_sidecar(), engine)
    with pytest.raises(BackendError, match=r"TensorRT is not installed.*pip install -e \"\.\[tensorrt\]\""):
        load_backend(engine)


class _FakeCudart:
    """Just enough of cuda.bindings.runtime for the checker (error enum + name/string lookups)."""

    class Err(int):
        pass

    @staticmethod
    def cudaGetErrorName(err):
        return 0, b"cudaErrorMemoryAllocation"

    @staticmethod
    def cudaGetErrorString(err):
        return 0, b"out of memory"


def test_cuda_python_checker_unwraps_and_raises_one_line():
    rt = _FakeCudart
    assert check_cudart(rt, "cudaMalloc", (rt.Err(0), 1234)) == 1234
    assert check_cudart(rt, "cudaStreamSynchronize", (rt.Err(0),)) is None
    assert check_cudart(rt, "cudaEventElapsedTime", (rt.Err(0), 1.5, "x")) == (1.5, "x")
    with pytest.raises(BackendError) as info:
        check_cudart(rt, "cudaMalloc", (rt.Err(2), None))
    assert str(info.value) == "cuda-python: cudaMalloc failed: cudaErrorMemoryAllocation (out of memory)"


def test_unknown_cuda_api():
    with pytest.raises(BackendError, match=r"unknown CUDA API 'cupy'; choose one of \['cuda-python', 'pycuda'\]"):
        open_cuda("cupy")


@pytest.mark.skipif(not HAS_CUDA_PYTHON, reason="cuda-python not installed")
def test_cuda_python_without_a_gpu_fails_with_one_line():
    from cuda.bindings import runtime

    err, count = runtime.cudaGetDeviceCount()
    if int(err) == 0 and count > 0:
        pytest.skip("a GPU is present")
    with pytest.raises(BackendError) as info:
        open_cuda("cuda-python")
    assert str(info.value).startswith("cuda-python: cudaGetDeviceCount failed: cudaError")
    assert "\n" not in str(info.value)


@pytest.mark.skipif(importlib.util.find_spec("pycuda") is not None, reason="pycuda is installed here")
def test_pycuda_missing_says_how_to_install():
    with pytest.raises(BackendError, match=r"pycuda is not installed.*\.\[pycuda\]"):
        open_cuda("pycuda")


def test_mismatch_message_is_stable_under_copy():
    sidecar = _sidecar()
    before = copy.deepcopy(sidecar)
    engine_mismatch(sidecar, RuntimeFacts("11.0.0", "x", "1.0"), "e.plan")
    assert sidecar == before  # pure: the sidecar is not modified
