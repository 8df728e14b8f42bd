"""TensorRT on a real GPU (marker ``gpu``; skipped only where there is no NVIDIA GPU or no TensorRT installed).

Where a GPU is present and TensorRT imports, nothing here skips: a missing
cuda-python, a CUDA error or a failed engine build fails the test
(tests/gpu_guard.py). ``scripts/gpu_check.sh`` runs this file.

Builds FP16 and INT8 engines, runs them through the backend, checks the
precision gate passes against the FP32 ONNX, that CUDA-graph replay equals
normal execution, that pycuda and cuda-python give identical outputs, and that
a mismatched engine is refused.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from inspector.backends import load_backend
from inspector.evaluation.bench import run_benchmark
from inspector.deploy.engine_build import BuildOptions, build_engine
from inspector.errors import BackendError, ExportError
from inspector.deploy.quantize import quantize_model
from inspector.evaluation.verify import verify
from tiny_graphs import write_exported

pytestmark = pytest.mark.gpu

SIZE = 64
MAX_BATCH = 4
OPTIONS = BuildOptions(max_batch=MAX_BATCH, workspace_mb=1024, optimization_level=3)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, tiny_dataset):
    folder = tmp_path_factory.mktemp("trt") / "export"
    fp32 = write_exported(folder, height=SIZE, width=SIZE)
    quantize_model(fp32, tiny_dataset, batch_size=4)
    return folder


@pytest.fixture(scope="module")
def fp16_engine(export_dir):
    out = export_dir.parent / "engines" / "tiny.fp16.plan"
    build_engine(export_dir / "tiny.fp16.onnx", out, OPTIONS)
    return out


@pytest.fixture(scope="module")
def int8_engine(export_dir):
    out = export_dir.parent / "engines" / "tiny.int8.plan"
    build_engine(export_dir / "tiny.int8.onnx", out, OPTIONS)
    return out


def _batch(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def test_fp16_engine_and_sidecar(fp16_engine, export_dir):
    import tensorrt as trt

    sidecar = json.loads(fp16_engine.with_suffix(".json").read_text())
    assert sidecar["tensorrt"]["version"] == trt.__version__
    assert sidecar["precision"] == "fp16" and sidecar["network"] == "strongly_typed"
    assert sidecar["profile"] == {"min_batch": 1, "opt_batch": MAX_BATCH, "max_batch": MAX_BATCH}
    assert sidecar["io"]["images"]["dtype"] == "uint8" and sidecar["io"]["images"]["shape"] == [-1, SIZE, SIZE, 3]
    assert sidecar["io"]["score"]["dtype"] == "float" and sidecar["io"]["anomaly_map"]["shape"][1:] == [1, SIZE, SIZE]
    assert sidecar["onnx"]["file"] == "tiny.fp16.onnx"
    assert sidecar["model"]["graphs"]["fp16"]["sha256"] == sidecar["onnx"]["sha256"]
    assert sidecar["gpu"]["name"] and sidecar["gpu"]["compute_capability"]
    assert sidecar["build"]["command"].startswith("inspector build ")
    assert Path(sidecar["build"]["timing_cache"]).is_file()
    assert fp16_engine.with_suffix(".build.log").is_file()


def test_backend_runs_every_batch_size(fp16_engine):
    with load_backend(fp16_engine) as backend:
        assert backend.name == "tensorrt" and backend.precision == "fp16"
        assert backend.input_spec.max_batch == MAX_BATCH
        for n in (1, 3, MAX_BATCH, 2):
            result = backend.infer(_batch(n, seed=n))
            assert result.scores.shape == (n,) and result.maps.shape == (n, 1, SIZE, SIZE)
            assert result.scores.dtype == np.float32 and np.isfinite(result.maps).all()
            assert set(result.timings_ms) == {"h2d", "compute", "d2h", "total"}
            assert all(v >= 0 for v in result.timings_ms.values())
        one = backend.infer(_batch(3, seed=3))
        again = backend.infer(_batch(3, seed=3))
        np.testing.assert_array_equal(one.maps, again.maps)
        with pytest.raises(BackendError, match="exceeds the maximum"):
            backend.infer(_batch(MAX_BATCH + 1))


def test_fp16_engine_passes_the_gate(fp16_engine, export_dir, tiny_dataset):
    report = verify(fp16_engine, export_dir / "tiny.onnx", tiny_dataset)
    assert report["passed"], report["failures"]
    assert report["candidate"]["backend"] == "tensorrt"
    assert fp16_engine.with_name("tiny.fp16.verify.json").is_file()


def test_int8_engine_passes_the_gate(int8_engine, export_dir, tiny_dataset):
    sidecar = json.loads(int8_engine.with_suffix(".json").read_text())
    assert sidecar["precision"] == "int8" and sidecar["network"] == "strongly_typed"
    report = verify(int8_engine, export_dir / "tiny.onnx", tiny_dataset)
    assert report["passed"], report["failures"]


def test_cuda_graph_replay_equals_normal_execution(fp16_engine):
    order = (1, MAX_BATCH, 1, 3, MAX_BATCH, 3, 1)  # every size comes back after another one
    batches = [_batch(n, seed=10 + i) for i, n in enumerate(order)]
    with load_backend(fp16_engine) as plain:
        expected = [plain.infer(b).maps for b in batches]
    with load_backend(fp16_engine, cuda_graphs=True) as graphed:
        got = [graphed.infer(b).maps for b in batches]  # first of each size warms up, then replays
        assert graphed.graph_capture_failures == 0
        assert sorted(graphed._graphs) == [1, 3, MAX_BATCH]
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)


@pytest.mark.pycuda
def test_pycuda_and_cuda_python_give_identical_outputs(fp16_engine):
    batch = _batch(3, seed=7)
    with load_backend(fp16_engine, cuda="cuda-python") as a:
        ra = a.infer(batch)
    with load_backend(fp16_engine, cuda="pycuda") as b:
        rb = b.infer(batch)
        assert set(rb.timings_ms) == {"h2d", "compute", "d2h", "total"}
    np.testing.assert_array_equal(ra.scores, rb.scores)
    np.testing.assert_array_equal(ra.maps, rb.maps)


def test_backend_is_owned_by_its_thread(fp16_engine):
    errors = []
    with load_backend(fp16_engine) as backend:
        thread = threading.Thread(target=lambda: errors.append(_capture(backend.infer, _batch(1))))
        thread.start()
        thread.join()
    assert errors and "thread that did not create it" in str(errors[0])


def _capture(fn, *args):
    try:
        fn(*args)
    except BackendError as exc:
        return exc
    return None


def test_mismatched_engine_is_refused(fp16_engine, tmp_path):
    engine = tmp_path / fp16_engine.name
    shutil.copy(fp16_engine, engine)
    sidecar = json.loads(fp16_engine.with_suffix(".json").read_text())
    sidecar["tensorrt"]["version"] = "9.9.9"
    engine.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(BackendError, match=r"built with TensorRT 9\.9\.9.*rebuild with: inspector build"):
        load_backend(engine)


def test_fp16_flag_fallback_only_on_tensorrt_10(export_dir, tiny_dataset):
    import tensorrt as trt

    out = export_dir.parent / "engines" / "tiny-flag.fp16.plan"
    options = BuildOptions(max_batch=2, workspace_mb=512, fp16_flag=True)
    if int(trt.__version__.split(".")[0]) >= 11:
        with pytest.raises(ExportError, match="removed BuilderFlag.FP16"):
            build_engine(export_dir / "tiny.onnx", out, options)
        return
    sidecar = build_engine(export_dir / "tiny.onnx", out, options)
    assert sidecar["network"] == "fp16_flag" and sidecar["precision"] == "fp16"
    assert verify(out, export_dir / "tiny.onnx", tiny_dataset)["passed"]


def test_bench_reports_transfer_and_compute(fp16_engine, tmp_path):
    report = run_benchmark(fp16_engine, [1, MAX_BATCH], duration_s=0.5, warmup=3, json_path=tmp_path / "b.json",
                           options={"cuda_graphs": True})
    assert [r["batch"] for r in report["results"]] == [1, MAX_BATCH]
    for r in report["results"]:
        assert {"h2d", "compute", "d2h"} <= set(r["stages_ms"]) and r["images_per_s"] > 0
    assert report["environment"]["gpu"] and report["environment"]["tensorrt"]


def test_real_exported_model_builds_and_passes(request, tmp_path, tiny_dataset):
    pytest.importorskip("inspector.deploy")
    fp32 = request.getfixturevalue("exported_model")
    fp16 = fp32.with_name(fp32.name[: -len(".onnx")] + ".fp16.onnx")
    out = tmp_path / "real.fp16.plan"
    build_engine(fp16, out, OPTIONS)
    report = verify(out, fp32, tiny_dataset)
    assert report["passed"], report["failures"]
