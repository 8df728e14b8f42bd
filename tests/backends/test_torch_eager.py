"""The torch eager backend: the reference every exported graph is compared with."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from inspector.backends import load_backend
from inspector.backends.torch_eager import TorchEagerBackend
from inspector.errors import BackendError, InspectorError


@pytest.fixture(scope="module")
def backend(trained_run):
    with TorchEagerBackend(trained_run) as b:
        yield b


def test_loads_a_run_folder_and_declares_its_input(backend):
    spec = backend.input_spec
    assert (spec.height, spec.width, spec.channels, spec.dtype, spec.layout, spec.color) == \
        (64, 64, 3, "uint8", "NHWC", "RGB")
    assert backend.resize == "square" and backend.precision == "fp32"


def test_infer_returns_float32_scores_and_maps(backend):
    batch = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    result = backend.infer(batch)
    assert result.scores.shape == (3,) and result.maps.shape == (3, 1, 64, 64)
    assert result.scores.dtype == np.float32 and result.maps.dtype == np.float32
    assert result.timings_ms["compute"] > 0
    # the offline recipe's score: the mean of the top 1 % of the map (41 of 64×64 pixels)
    top = np.sort(result.maps.reshape(3, -1), axis=1)[:, -41:]
    np.testing.assert_allclose(result.scores, top.mean(axis=1), rtol=1e-5)


def test_auto_backend_for_run_folder_and_checkpoint_file(trained_run):
    batch = np.zeros((1, 64, 64, 3), dtype=np.uint8)
    a = load_backend(trained_run)
    b = load_backend(trained_run / "best.pt")
    assert isinstance(a, TorchEagerBackend) and isinstance(b, TorchEagerBackend)
    np.testing.assert_array_equal(a.infer(batch).scores, b.infer(batch).scores)


def test_onnx_path_resolves_to_the_checkpoint_its_sidecar_names(exported_model, trained_run):
    backend = load_backend(exported_model, "torch")
    assert backend.checkpoint_path == (trained_run / "best.pt").resolve()


def test_onnx_whose_run_is_gone_gives_one_clear_line(exported_model, tmp_path):
    import json

    for p in exported_model.parent.glob("rs*"):
        shutil.copy(p, tmp_path / p.name)
    sidecar = json.loads((tmp_path / "rs.json").read_text())
    sidecar["training"]["checkpoint"] = str(tmp_path / "gone" / "best.pt")
    (tmp_path / "rs.json").write_text(json.dumps(sidecar))
    with pytest.raises(BackendError, match="pass the run folder instead") as err:
        load_backend(tmp_path / "rs.onnx", "torch")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("batch, message", [
    (np.zeros((1, 32, 64, 3), np.uint8), r"expected a batch of shape \(N, 64, 64, 3\)"),
    (np.zeros((1, 64, 64, 1), np.uint8), r"expected a batch of shape \(N, 64, 64, 3\)"),
    (np.zeros((1, 64, 64, 3), np.float32), "expected dtype uint8"),
    (np.zeros((64, 64, 3), np.uint8), "expected a batch of shape"),
])
def test_bad_input_gives_one_clear_line(backend, batch, message):
    with pytest.raises(BackendError, match=message) as err:
        backend.infer(batch)
    assert "\n" not in str(err.value)


def test_missing_run_and_bad_checkpoint(tmp_path):
    with pytest.raises(BackendError, match="not found"):
        TorchEagerBackend(tmp_path / "nope")
    (tmp_path / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InspectorError, match=r"best.pt: not a checkpoint \(text that begins"):  # text: no pickle
        TorchEagerBackend(tmp_path)


def test_closed_backend_refuses(trained_run):
    backend = TorchEagerBackend(trained_run)
    backend.close()
    with pytest.raises(BackendError, match="closed"):
        backend.infer(np.zeros((1, 64, 64, 3), np.uint8))
