"""ONNX Runtime backend on a real session of the test model (built by tests/pipeline/conftest.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from inspector.backends import load_backend
from inspector.backends.onnxruntime import OnnxRuntimeBackend
from inspector.errors import BackendError, ExportError
from inspector.artifacts.model_card import sha256_file

_CONFTEST = Path(__file__).resolve().parents[1] / "pipeline" / "conftest.py"


def _pipeline_conftest():
    spec = importlib.util.spec_from_file_location("pipeline_conftest", _CONFTEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    return _pipeline_conftest().build_tiny_model(tmp_path_factory.mktemp("ort")).parent


@pytest.fixture
def model(model_dir, tmp_path) -> Path:
    """A private copy (tests below tamper with it)."""
    for p in model_dir.iterdir():
        (tmp_path / p.name).write_bytes(p.read_bytes())
    return tmp_path / "tiny.onnx"


def _frames(n: int, defects=()) -> np.ndarray:
    rng = np.random.default_rng(0)
    batch = np.clip(rng.normal(128, 2, (n, 64, 64, 3)), 0, 255).astype(np.uint8)
    for i in defects:
        batch[i, 20:28, 30:38] = 0
    return batch


def test_loads_with_sidecar_identity(model):
    backend = load_backend(model, threads=1)
    assert isinstance(backend, OnnxRuntimeBackend)
    assert backend.name == "onnxruntime" and backend.precision == "fp32"
    assert backend.sha256 == sha256_file(model)
    assert backend.sidecar["model"]["name"] == "tiny"
    spec = backend.input_spec
    assert (spec.height, spec.width, spec.channels, spec.dtype, spec.layout, spec.color) == \
        (64, 64, 3, "uint8", "NHWC", "RGB")
    assert backend.map_hw == (32, 32)


def test_infer_scores_maps_and_timings(model):
    with OnnxRuntimeBackend(model, threads=1) as backend:
        result = backend.infer(_frames(3, defects=(1,)))
        assert result.scores.shape == (3,) and result.scores.dtype == np.float32
        assert result.maps.shape == (3, 1, 32, 32) and result.maps.dtype == np.float32
        np.testing.assert_allclose(result.scores, result.maps.reshape(3, -1).max(axis=1), rtol=1e-6)
        assert result.scores[1] > 5 * max(result.scores[0], result.scores[2])
        assert result.timings_ms["compute"] > 0
        defect_score = float(result.scores[1])
        # outputs are preallocated per batch size and reused (documented: copy what you keep)
        again = backend.infer(_frames(3))
        assert again.scores is result.scores and result.scores[1] != defect_score
        single = backend.infer(_frames(1, defects=(0,)))
        assert single.scores.shape == (1,) and single.scores[0] == pytest.approx(defect_score, rel=1e-3)


def test_rejects_bad_batches(model):
    backend = OnnxRuntimeBackend(model, threads=1)
    with pytest.raises(BackendError, match="expected dtype uint8"):
        backend.infer(_frames(2).astype(np.float32))
    with pytest.raises(BackendError, match=r"shape \(N, 64, 64, 3\)"):
        backend.infer(np.zeros((2, 32, 32, 3), np.uint8))
    backend.close()
    with pytest.raises(BackendError, match="closed"):
        backend.infer(_frames(1))


def test_sha_mismatch_refused(model):
    side = model.with_suffix(".json")
    data = json.loads(side.read_text())
    data["graphs"]["fp32"]["sha256"] = "0" * 64
    side.write_text(json.dumps(data))
    with pytest.raises(ExportError, match="does not match its sidecar"):
        OnnxRuntimeBackend(model)
    OnnxRuntimeBackend(model, verify=False).close()  # explicit opt-out still loads


def test_missing_sidecar_and_file(model, tmp_path):
    model.with_suffix(".json").unlink()
    with pytest.raises(ExportError, match="sidecar not found"):
        OnnxRuntimeBackend(model)
    with pytest.raises(BackendError, match="model file not found"):
        OnnxRuntimeBackend(tmp_path / "absent.onnx")


@pytest.mark.parametrize("content", [b"this is not a protobuf at all", "truncate"])
def test_corrupt_graph_is_one_line_error(model, content):
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 2] if content == "truncate" else content)
    side = model.with_suffix(".json")
    meta = json.loads(side.read_text())
    meta["graphs"]["fp32"]["sha256"] = sha256_file(model)  # the sidecar agrees, the file is still broken
    side.write_text(json.dumps(meta))
    with pytest.raises(BackendError, match="ONNX Runtime cannot load this graph") as info:
        OnnxRuntimeBackend(model)
    assert "\n" not in str(info.value)


def test_unavailable_provider(model):
    with pytest.raises(BackendError, match="not available"):
        OnnxRuntimeBackend(model, providers=["NoSuchExecutionProvider"])


def _config_entry(opts, key: str) -> str:
    try:
        return opts.get_session_config_entry(key)
    except RuntimeError:  # ONNX Runtime: "SessionOptions does not have configuration with key"
        return ""


@pytest.mark.parametrize("spinning, spin_us, expected", [
    (True, 200, ("1", "200")),
    (True, None, ("1", "")),
    (False, 200, ("0", "")),  # a bound on a spin that is off sets nothing
])
def test_spinning_settings_reach_the_session(model, spinning, spin_us, expected):
    """model.spinning / model.spin_us become ONNX Runtime's intra-op session config entries."""
    backend = load_backend(model, threads=1, spinning=spinning, spin_us=spin_us)
    try:
        opts = backend._session.get_session_options()
        got = tuple(_config_entry(opts, k) for k in ("session.intra_op.allow_spinning",
                                                     "session.intra_op.spin_duration_us"))
        assert got == expected
        assert backend.infer(_frames(2)).scores.shape == (2,)
    finally:
        backend.close()


@pytest.mark.parametrize("spinning, after_run, expected", [
    (True, False, "1"),  # stop spinning when Run() returns
    (True, True, "0"),
    (False, False, ""),  # no spin to stop: nothing set
])
def test_spin_after_run_reaches_the_session(model, spinning, after_run, expected):
    """model.spin_after_run false becomes ONNX Runtime's session.force_spinning_stop = 1."""
    backend = load_backend(model, threads=1, spinning=spinning, spin_after_run=after_run)
    try:
        assert _config_entry(backend._session.get_session_options(), "session.force_spinning_stop") == expected
        assert backend.infer(_frames(2)).scores.shape == (2,)
    finally:
        backend.close()


@pytest.mark.parametrize("replicas", [2, 3])
def test_a_batch_split_across_replicas_scores_like_the_whole_batch(model, replicas):
    """Data parallelism (model.replicas): every batch size gives the whole batch's scores and maps, rows
    in order; batches smaller than the replica count run whole on the multi-threaded session."""
    frames = _frames(8, defects=(1, 6))
    whole = load_backend(model, threads=2)
    split = load_backend(model, threads=2, replicas=replicas)
    try:
        assert split.replicas == replicas
        for n in range(1, 9):
            want, got = whole.infer(frames[:n]), split.infer(frames[:n])
            np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(got.maps, want.maps, rtol=1e-5, atol=1e-6)
            assert len(split._outputs[n].bindings) == (replicas if n >= replicas else 1)
    finally:
        whole.close()
        split.close()


def test_replica_threads_start_while_loading_and_end_on_close(model):
    """The daemon counts the threads a backend starts while loading as its pool (CPU per role): the
    replicas' threads must exist once the backend is loaded, and end with close()."""
    import threading

    before = set(threading.enumerate())
    backend = load_backend(model, replicas=3)
    started = [t for t in threading.enumerate() if t not in before]
    assert len(started) == 2 and all(t.name.startswith("inspector-ort-replica-") for t in started)
    backend.close()
    assert not any(t.is_alive() for t in started)
    assert load_backend(model, replicas=1).replicas == 1


def test_a_failing_chunk_fails_the_batch_after_every_chunk_has_ended():
    """A chunk's error is raised by run(), and only once all chunks are done (their buffers are the
    caller's). Sessions stand in for ONNX Runtime's: a fault a real session cannot be made to raise on
    one chunk only; same method name and exception type (onnxruntime raises RuntimeError subclasses)."""
    import threading
    import time

    from inspector.backends.ort_replicas import ReplicaRunner, chunk_bounds

    finished = threading.Event()

    class Slow:
        def run_with_iobinding(self, binding):
            time.sleep(0.2)
            finished.set()

    class Failing:
        def run_with_iobinding(self, binding):
            raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : chunk failed")

    runner = ReplicaRunner([Failing(), Slow()])
    try:
        with pytest.raises(RuntimeError, match="chunk failed"):
            runner.run(["b0", "b1"])
        assert finished.is_set()
    finally:
        runner.close()
    assert chunk_bounds(8, 3) == [(0, 3), (3, 6), (6, 8)] and chunk_bounds(2, 2) == [(0, 1), (1, 2)]
    with pytest.raises(ValueError):
        chunk_bounds(2, 3)


def test_the_default_split_never_runs_more_threads_than_the_budget():
    """model.replicas unset: one session per core the thread budget allows, at most the batch; a budget of one
    thread (a box sharing its cores) means no split at all."""
    from inspector.backends.ort_replicas import default_replicas

    assert default_replicas(None, 8, cores=2) == 2
    assert default_replicas(1, 8, cores=2) == 1
    assert default_replicas(None, 8, cores=16) == 8
    assert default_replicas(4, 8, cores=16) == 4
    assert default_replicas(None, 1, cores=4) == 1


def test_more_threads_than_cores_are_held_to_the_cores(model, caplog):
    """``predict --threads 1024`` / ``calibrate --threads``: ONNX Runtime started 1024 spinning intra-op threads
    on 2 cores, each operator's barrier waiting for descheduled ones (``run --check`` took 139 s); the backend
    now uses the usable cores and says so, as the daemon does for model.threads."""
    from inspector.cores import usable_cores

    with OnnxRuntimeBackend(model, threads=1024) as backend:
        assert backend._session.get_session_options().intra_op_num_threads == usable_cores()
    assert f"threads: 1024 exceeds the {usable_cores()} usable core(s)" in caplog.text
