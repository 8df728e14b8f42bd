"""Parity of the exported graphs with the torch model, for every registered single-teacher model.

* torch eager vs ONNX Runtime FP32: max |Δmap| ≤ 1e-4 of the map's range and the
  same score ranking, on the synthetic test split plus real KolektorSDD images.
* FP16 graph vs FP32 graph on real KolektorSDD images: no NaN/inf, score relative
  error and image-AUROC difference measured and bounded. The FP16 graph runs on
  ``onnx.reference.ReferenceEvaluator`` (numpy: float16 tensors, float32
  accumulation in the convolutions' matmuls) because ONNX Runtime's CPU provider
  on x86-64 has no float16 Conv kernel: it wraps those nodes in Casts and computes
  them in float32 (pinned by the last test), which would hide FP16 error.

Run with ``-s`` to see the figures: ``python -m pytest tests/test_parity.py -s``.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto
from onnx.reference import ReferenceEvaluator

from inspector.backends import load_backend
from inspector.data.datasets import list_images
from inspector.data.images import read_image, resize_image
from inspector.evaluation.metrics import auroc
from inspector.deploy import export_run, graph_paths
from inspector.artifacts.model_card import read_sidecar
from tiny_models import untrained_run

MAP_TOLERANCE = 1e-4  # of the map's range, torch eager vs ORT FP32
N_REAL = 6  # KolektorSDD images per class for the FP16 comparison (ReferenceEvaluator is slow)
FP16_SCORE_RTOL = 2e-2
FP16_AUROC_DIFF = 0.06


@pytest.fixture(scope="module")
def glance_run(tiny_dataset, tmp_path_factory) -> Path:
    """A glance run folder: its patch grid (3x3 at 64x64) gathered inside the graph, untrained nets."""
    return untrained_run("glance", tiny_dataset, tmp_path_factory)


@pytest.fixture(scope="module")
def stfpm_run(tiny_dataset, tmp_path_factory) -> Path:
    return untrained_run("stfpm", tiny_dataset, tmp_path_factory)


@pytest.fixture(scope="module")
def feature_imitation_run(tiny_dataset, tmp_path_factory) -> Path:
    return untrained_run("feature_imitation", tiny_dataset, tmp_path_factory)


@pytest.fixture(scope="module", params=["reduced_student", "stfpm", "glance", "feature_imitation"])
def exported(request, tmp_path_factory) -> tuple[str, Path, Path]:
    """(model name, run folder, FP32 graph path)."""
    if request.param == "reduced_student":
        return request.param, request.getfixturevalue("trained_run"), request.getfixturevalue("exported_model")
    run = request.getfixturevalue(f"{request.param}_run")
    result = export_run(run, tmp_path_factory.mktemp("export") / request.param)
    return request.param, run, Path(result["fp32"])


def _load(paths: list[Path], sidecar: dict) -> np.ndarray:
    inp = sidecar["input"]
    return np.stack([resize_image(read_image(p), inp["height"], inp["width"], inp["resize"]) for p in paths])


@pytest.fixture(scope="module")
def real_paths(kolektor) -> tuple[list[Path], np.ndarray]:
    good = list_images(kolektor / "test" / "good")[:N_REAL]
    bad = list_images(kolektor / "test" / "defect")[:N_REAL]
    assert len(good) == len(bad) == N_REAL
    return good + bad, np.array([0] * N_REAL + [1] * N_REAL)


def _synthetic_test_paths(tiny_dataset: Path) -> list[Path]:
    return sorted(p for p in (tiny_dataset / "test").rglob("*.png"))


def _reference(path: Path, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    score, amap = ReferenceEvaluator(str(path)).run(["score", "anomaly_map"], {"images": batch})
    return score, amap


def test_torch_eager_vs_onnxruntime_fp32(exported, tiny_dataset, real_paths):
    name, run, fp32 = exported
    sidecar = read_sidecar(graph_paths(fp32)["sidecar"])
    batch = np.concatenate([_load(_synthetic_test_paths(tiny_dataset), sidecar), _load(real_paths[0], sidecar)])
    with load_backend(run, "torch") as torch_backend, load_backend(fp32) as ort_backend:
        ref = torch_backend.infer(batch)
        got = ort_backend.infer(batch)
        ref_scores, ref_maps = ref.scores.copy(), ref.maps.copy()
        scores, maps = got.scores.copy(), got.maps.copy()
    span = float(ref_maps.max() - ref_maps.min())
    diff = float(np.abs(maps - ref_maps).max()) / span
    print(f"\n[parity] {name} torch vs ORT FP32 on {len(batch)} images: max |Δmap| = {diff:.2e} of the map range "
          f"({span:.3g}), max |Δscore| = {np.abs(scores - ref_scores).max():.2e}, "
          f"ranking identical: {np.array_equal(np.argsort(scores), np.argsort(ref_scores))}")
    assert diff <= MAP_TOLERANCE
    assert np.array_equal(np.argsort(scores, kind="stable"), np.argsort(ref_scores, kind="stable"))


def test_fp16_graph_vs_fp32_on_real_images(exported, real_paths):
    name, _, fp32 = exported
    paths = graph_paths(fp32)
    sidecar = read_sidecar(paths["sidecar"])
    paths_real, labels = real_paths
    batch = _load(paths_real, sidecar)
    with load_backend(fp32) as backend:
        result = backend.infer(batch)
        s32, m32 = result.scores.copy(), result.maps.copy()
    s16, m16 = _reference(paths["fp16"], batch)
    assert np.isfinite(s16).all() and np.isfinite(m16).all()
    rel = float(np.max(np.abs(s16 - s32) / np.abs(s32)))
    map_diff = float(np.abs(m16 - m32).max() / (m32.max() - m32.min()))
    a32, a16 = auroc(s32, labels), auroc(s16, labels)
    print(f"\n[parity] {name} FP16 (ReferenceEvaluator) vs FP32 (ORT) on {len(batch)} KolektorSDD images: "
          f"max score rel. error {rel:.2e}, max |Δmap| {map_diff:.2e} of the range, "
          f"image AUROC {a32:.4f} → {a16:.4f} (Δ {abs(a16 - a32):.4f})")
    assert rel <= FP16_SCORE_RTOL
    assert abs(a16 - a32) <= FP16_AUROC_DIFF


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 kernel coverage fact")
def test_onnxruntime_cpu_computes_fp16_convs_in_float32(exported_model, tmp_path):
    """Why the FP16 parity test uses ReferenceEvaluator: ORT CPU upcasts FP16 Conv nodes to float32."""
    fp16 = graph_paths(exported_model)["fp16"]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "as_run.onnx")
    ort.InferenceSession(str(fp16), options, providers=["CPUExecutionProvider"])
    as_run = onnx.shape_inference.infer_shapes(onnx.load(str(tmp_path / "as_run.onnx")))
    types = {v.name: v.type.tensor_type.elem_type for v in list(as_run.graph.value_info) + list(as_run.graph.input)}
    conv_inputs = {types.get(n.input[0]) for n in as_run.graph.node if n.op_type == "Conv"}
    assert conv_inputs == {TensorProto.FLOAT}, "ORT now runs float16 Conv on this CPU: revisit export/README.md"
