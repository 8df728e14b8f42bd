"""The builder and runtime orchestration on the CPU, against a stand-in TensorRT and CUDA.

No GPU here, so these tests swap in (1) the faithful fake ``tensorrt`` module of
``tests/fake_tensorrt.py`` (TensorRT 10.x and 11.x enum values and return
conventions, from NVIDIA's sources), whose "engine" is the ONNX graph run by ONNX
Runtime, and (2) a fake CUDA wrapper whose "device memory" is host bytes, driven
through the real Stream/Event/PinnedBuffer/DeviceBuffer/CudaGraph classes. They
check what the code asks of TensorRT (strongly typed network per major, profile,
workspace, optimisation level, timing cache, FP16 flag only as the 10.x fallback;
set_tensor_address once, set_input_shape per batch-size change, copy sizes, one
execution context per captured batch size, capture fallback), that every failure
the bindings report becomes one line, and that outputs equal
ONNX Runtime's. What only a GPU can show is in test_tensorrt_gpu.py.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import inspector.backends.cuda as cuda_mod
from fake_tensorrt import CACHE_MAGIC, TRT10, TRT11, FakeCuda, make_fake_trt
from inspector.artifacts.engine_card import read_engine_sidecar
from inspector.backends import load_backend
from inspector.deploy.engine_build import BuildOptions, build_engine
from inspector.errors import BackendError, ExportError
from tiny_graphs import write_exported

SIZE = 32


@pytest.fixture()
def fake(monkeypatch, request):
    version = getattr(request, "param", TRT10)
    calls: list = []
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_trt(version, calls))

    def open_fake(api="cuda-python", device=0):
        FakeCuda.current = FakeCuda(device)
        return FakeCuda.current

    monkeypatch.setattr(cuda_mod, "open_cuda", open_fake)
    FakeCuda.memory.clear()
    return calls


@pytest.fixture()
def exported(tmp_path):
    return write_exported(tmp_path / "export", height=SIZE, width=SIZE)


def _batch(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def _trt():
    return sys.modules["tensorrt"]


# What each major must receive: 10.x the STRONGLY_TYPED bit (1 << 1; bit 0 is the ignored EXPLICIT_BATCH),
# 11.x no flag at all (always strongly typed; bit 1 would be PREFER_JIT_PYTHON_PLUGINS).
NETWORK = {TRT10: (1 << 1, {"STRONGLY_TYPED"}), TRT11: (0, set())}


@pytest.mark.parametrize("fake", [TRT10, TRT11], indirect=True)
def test_build_asks_for_a_strongly_typed_network_profile_workspace_and_cache(fake, exported, tmp_path):
    version = _trt().__version__
    out = tmp_path / "engines" / "tiny.fp16.plan"
    sidecar = build_engine(exported.with_name("tiny.fp16.onnx"), out,
                           BuildOptions(max_batch=4, opt_batch=2, workspace_mb=256, optimization_level=4))
    network = _trt()._fake_state.network
    flags, names = NETWORK[version]
    assert network.strongly_typed and network.flag_names == names
    assert [c for c in fake if c[0] == "create_network"] == [("create_network", flags)]
    assert ("workspace", "WORKSPACE", 256 << 20) in fake and ("opt_level", 4) in fake
    assert ("profile", ("images", (1, SIZE, SIZE, 3), (2, SIZE, SIZE, 3), (4, SIZE, SIZE, 3))) in fake
    assert not [c for c in fake if c[0] == "flag"]  # no precision flags on the strongly typed path
    assert sidecar["precision"] == "fp16" and sidecar["network"] == "strongly_typed"
    assert sidecar["tensorrt"] == {"version": version, "major": int(version[:2])}
    assert sidecar["gpu"] == {"name": "Fake GPU", "compute_capability": "8.6"}
    assert sidecar["profile"] == {"min_batch": 1, "opt_batch": 2, "max_batch": 4}
    assert sidecar["io"]["images"] == {"mode": "input", "dtype": "uint8", "shape": [-1, SIZE, SIZE, 3]}
    assert sidecar["io"]["score"] == {"mode": "output", "dtype": "float", "shape": [-1]}
    assert sidecar["build"]["log"]["warnings"] == ["fake warning from the builder"]
    assert "--max-batch 4 --opt-batch 2 --workspace-mb 256 --opt-level 4" in sidecar["build"]["command"]
    assert out.with_suffix(".build.log").read_text() == "[WARNING] fake warning from the builder\n"
    cache = tmp_path / "engines" / f"timing-trt{version}-sm86.cache"
    first = cache.read_bytes()
    assert first.startswith(CACHE_MAGIC + b"tactics-")
    build_engine(exported.with_name("tiny.fp16.onnx"), out, BuildOptions(max_batch=4))
    assert ("timing_cache_in", first) in fake  # the persisted cache is reused


def test_fp16_flag_fallback_on_10_only(fake, exported, tmp_path):
    sidecar = build_engine(exported, tmp_path / "tiny.fp16.plan", BuildOptions(max_batch=2, fp16_flag=True))
    assert ("flag", "FP16") in fake and ("create_network", 0) in fake
    assert not _trt()._fake_state.network.strongly_typed  # weakly typed: the FP16 flag decides precision
    assert sidecar["precision"] == "fp16" and sidecar["network"] == "fp16_flag"


@pytest.mark.parametrize("fake", [TRT11], indirect=True)
def test_tensorrt_11_refuses_the_fp16_flag_and_builds_strongly_typed(fake, exported, tmp_path):
    assert not hasattr(_trt().BuilderFlag, "FP16") and not hasattr(_trt().NetworkDefinitionCreationFlag,
                                                                    "EXPLICIT_BATCH")
    with pytest.raises(ExportError, match="TensorRT 11 removed BuilderFlag.FP16"):
        build_engine(exported, tmp_path / "x.plan", BuildOptions(fp16_flag=True))
    sidecar = build_engine(exported.with_name("tiny.fp16.onnx"), tmp_path / "tiny.fp16.plan", BuildOptions(max_batch=2))
    assert sidecar["tensorrt"] == {"version": TRT11, "major": 11} and sidecar["network"] == "strongly_typed"


def _engine(exported, tmp_path, max_batch=4):
    out = tmp_path / "engines" / "tiny.fp16.plan"
    build_engine(exported.with_name("tiny.fp16.onnx"), out, BuildOptions(max_batch=max_batch))
    return out


@pytest.mark.parametrize("fake", [TRT10, TRT11], indirect=True)
def test_runtime_matches_onnxruntime_and_sets_addresses_once(fake, exported, tmp_path):
    engine = _engine(exported, tmp_path)
    reference = load_backend(exported.with_name("tiny.fp16.onnx"))
    fake.clear()
    with load_backend(engine) as backend:
        assert backend.input_spec.max_batch == 4 and backend.precision == "fp16"
        assert [c[1] for c in fake if c[0] == "set_tensor_address"] == ["images", "score", "anomaly_map"]
        for n in (1, 3, 3, 4, 1):
            batch = _batch(n, seed=n)
            got, want = backend.infer(batch), reference.infer(batch)
            np.testing.assert_array_equal(got.scores, want.scores)
            np.testing.assert_array_equal(got.maps, want.maps)
            assert set(got.timings_ms) == {"h2d", "compute", "d2h", "total"}
        with pytest.raises(BackendError, match="exceeds the maximum 4"):
            backend.infer(_batch(5))
        cuda = FakeCuda.current
    assert [c[1] for c in fake if c[0] == "set_tensor_address"] == ["images", "score", "anomaly_map"]  # once
    assert [c[1] for c in fake if c[0] == "set_input_shape"] == [4, 1, 3, 4, 1]  # max at load, then on change
    assert cuda.calls["cudaStreamSynchronize"] == 5 + 1  # one per batch, one at close
    assert cuda.calls["cudaMalloc"] == 3 and cuda.calls["cudaFree"] == 3 and cuda.calls["cudaFreeHost"] == 3
    assert cuda.calls["cudaEventCreate"] == cuda.calls["cudaEventDestroy"] == 4
    assert FakeCuda.memory == {}  # every device buffer freed at close


ORDER = (1, 4, 1, 3, 4, 3, 1)  # the daemon's mixed batch sizes: every size comes back after another


def test_cuda_graphs_one_context_per_batch_size_replayed_in_mixed_order(fake, exported, tmp_path):
    engine = _engine(exported, tmp_path)
    with load_backend(engine) as plain:
        expected = [plain.infer(_batch(n, seed=i)).maps for i, n in enumerate(ORDER)]
    fake.clear()
    with load_backend(engine, cuda_graphs=True) as graphed:
        got = [graphed.infer(_batch(n, seed=i)).maps for i, n in enumerate(ORDER)]
        assert sorted(graphed._graphs) == [1, 3, 4] and graphed.graph_capture_failures == 0
        contexts = {n: c.context for n, c in graphed._graphs.items()}
        assert len({id(c) for c in contexts.values()} | {id(graphed._context)}) == 4  # one each, plus the plain one
        assert {n: c.n for n, c in contexts.items()} == {1: 1, 3: 3, 4: 4}  # shaped once, never re-shaped
    # each size: a plain warm-up run, one enqueue on its own context outside the capture, then replays only
    assert [c[1] for c in fake if c[0] in ("execute", "replay")] == [1, 1, 4, 4, 1, 3, 3, 4, 3, 1]
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)


def _fake_with(monkeypatch, faults, version=TRT10):
    calls: list = []
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_trt(version, calls, set(faults)))
    return calls


@pytest.mark.parametrize("fault", ["capture", "graph_context"])
def test_graph_capture_failure_falls_back_to_plain_enqueue(fake, exported, tmp_path, monkeypatch, caplog, fault):
    engine = _engine(exported, tmp_path)
    with load_backend(engine) as plain:
        expected = [plain.infer(_batch(n, seed=i)).maps for i, n in enumerate(ORDER)]
    calls = _fake_with(monkeypatch, {fault})
    with caplog.at_level("WARNING", logger="inspector.backends.tensorrt"):
        with load_backend(engine, cuda_graphs=True) as graphed:
            got = [graphed.infer(_batch(n, seed=i)).maps for i, n in enumerate(ORDER)]
            assert graphed._graphs == {} and graphed.graph_capture_failures == 3  # sizes 1, 4, 3: counted
            cuda = FakeCuda.current
            assert cuda.capturing is None and cuda.last_error == 0  # capture ended, error cleared
    warnings = [r.getMessage() for r in caplog.records if "CUDA graph capture failed" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0]  # warned once
    assert [c[1] for c in calls if c[0] == "replay"] == []
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)


def test_runtime_refuses_a_mismatched_engine(fake, exported, tmp_path, monkeypatch):
    engine = _engine(exported, tmp_path)
    sys.modules["tensorrt"].__version__ = "10.14.1.48"
    with pytest.raises(BackendError, match=r"built with TensorRT 10\.13\.0\.35, this machine has TensorRT "
                                           r"10\.14\.1\.48; rebuild with: inspector build .*tiny\.fp16\.onnx"):
        load_backend(engine)
    sys.modules["tensorrt"].__version__ = TRT10
    load_backend(engine).close()
    exported.with_name("tiny.fp16.onnx").write_bytes(b"re-exported")  # the source ONNX changed since the build
    with pytest.raises(BackendError, match="the source ONNX now has"):
        load_backend(engine)


def test_verify_and_bench_through_the_tensorrt_backend(fake, exported, tmp_path, tiny_dataset):
    from inspector.evaluation.bench import run_benchmark
    from inspector.evaluation.verify import verify

    sized = write_exported(tmp_path / "e64", height=64, width=64)  # the tiny_dataset's image size
    engine = _engine(sized, tmp_path)
    report = verify(engine, sized, tiny_dataset)
    assert report["passed"] and report["candidate"]["backend"] == "tensorrt"
    assert report["metrics"]["score_max_abs_diff"] > 0  # FP16 engine vs FP32 reference
    bench = run_benchmark(engine, [1, 4], duration_s=0.05, warmup=1)
    assert {"h2d", "compute", "d2h"} <= set(bench["results"][1]["stages_ms"])
    assert bench["environment"]["gpu"] == "Fake GPU" and bench["environment"]["cuda_api"] == "fake-cuda"


# -- every failure the bindings report, as one line ------------------------------------------------

BUILD_FAULTS = [
    ("parse", r"tiny\.fp16\.onnx: TensorRT's ONNX parser failed: In node 3 \(Conv\): INVALID_NODE: unsupported "
              r"attribute \| ModelImporter\.cpp:1: parse failed$"),
    ("builder_config", r"could not create a builder config"),
    ("profile_set_shape", r"tiny\.fp16\.onnx: optimisation profile .* refused: Shape provided for opt is inconsistent"),
    ("profile_index", r"tiny\.fp16\.onnx: optimisation profile for 'images' min/opt/max .* is invalid "
                      r"\(TensorRT returned -1"),
    ("build", r"tiny\.fp16\.onnx: TensorRT build failed: \[optimizer\.cpp::computeCosts\] Error Code 10: "
              r"no implementation$"),
    ("deserialize", r"tiny\.fp16\.plan: the engine just built does not deserialise"),
    ("timing_cache", r"tiny\.fp16\.onnx: TensorRT could not create an empty timing cache"),
]


@pytest.mark.parametrize("version", [TRT10, TRT11])
@pytest.mark.parametrize("fault, message", BUILD_FAULTS, ids=[f for f, _ in BUILD_FAULTS])
def test_build_failures_are_one_line_errors(monkeypatch, exported, tmp_path, version, fault, message):
    monkeypatch.setattr(cuda_mod, "open_cuda", lambda api="cuda-python", device=0: FakeCuda(device))
    _fake_with(monkeypatch, {fault}, version)
    with pytest.raises(ExportError, match=message) as info:
        build_engine(exported.with_name("tiny.fp16.onnx"), tmp_path / "tiny.fp16.plan", BuildOptions(max_batch=4))
    assert "\n" not in str(info.value)


RUNTIME_FAULTS = [
    ("deserialize", {}, r"TensorRT could not deserialise the engine .*; rebuild with: inspector build"),
    ("context", {}, r"cannot create an execution context"),
    ("set_input_shape", {}, r"set_input_shape\(4, 32, 32, 3\) refused \(profile max batch 4\)"),
    ("set_tensor_address", {}, r"set_tensor_address failed for 'images'"),
    ("execute", {"infer": 2}, r"execute_async_v3 failed at batch 2"),
]


@pytest.mark.parametrize("fault, when, message", RUNTIME_FAULTS, ids=[f for f, _, _ in RUNTIME_FAULTS])
def test_runtime_failures_are_one_line_errors_and_release_everything(fake, exported, tmp_path, monkeypatch,
                                                                      fault, when, message):
    engine = _engine(exported, tmp_path)
    _fake_with(monkeypatch, {fault})
    with pytest.raises(BackendError, match=message) as info:
        with load_backend(engine) as backend:
            backend.infer(_batch(when.get("infer", 1)))
    assert "\n" not in str(info.value) and str(info.value).startswith(str(engine))
    assert FakeCuda.memory == {} and FakeCuda.current.closed  # buffers freed, CUDA released


# -- timing cache: corrupt file, mismatch, concurrent builds --------------------------------------


def test_an_unreadable_timing_cache_is_used_as_an_empty_one_and_left_as_it_was(fake, exported, tmp_path, caplog):
    """A file TensorRT cannot read as a timing cache was replaced by this build's cache after the build: a file
    the build did not write is not its to replace. Now an empty cache is used and the file kept, with a warning."""
    out = tmp_path / "engines" / "tiny.fp16.plan"
    cache = tmp_path / "engines" / f"timing-trt{TRT10}-sm86.cache"
    cache.parent.mkdir()
    cache.write_bytes(b"\x00garbage of another tool")
    with caplog.at_level("WARNING", logger="inspector.deploy.engine_build"):
        sidecar = build_engine(exported.with_name("tiny.fp16.onnx"), out, BuildOptions(max_batch=4))
    assert [r.getMessage() for r in caplog.records if "timing cache" in r.getMessage()] == [
        f"{cache}: TensorRT cannot read this file as a timing cache; this build starts an empty one and leaves the "
        f"file as it was (--timing-cache another name to keep this build's)"]
    assert ("timing_cache_in", b"") in fake  # started empty
    assert cache.read_bytes() == b"\x00garbage of another tool"
    assert sidecar["build"]["timing_cache"] is None  # no cache was saved by this build


def test_a_timing_cache_of_another_gpu_is_used_as_an_empty_one_and_kept(monkeypatch, exported, tmp_path, caplog):
    monkeypatch.setattr(cuda_mod, "open_cuda", lambda api="cuda-python", device=0: FakeCuda(device))
    calls = _fake_with(monkeypatch, {"set_timing_cache"})
    cache = tmp_path / "c.cache"
    cache.write_bytes(CACHE_MAGIC + b"from-another-gpu")
    with caplog.at_level("WARNING", logger="inspector.deploy.engine_build"):
        build_engine(exported.with_name("tiny.fp16.onnx"), tmp_path / "tiny.fp16.plan",
                     BuildOptions(max_batch=4, timing_cache=str(cache)))
    assert any("timing cache of another TensorRT or GPU" in r.getMessage() for r in caplog.records)
    assert ("timing_cache_in", b"") in calls
    assert cache.read_bytes() == CACHE_MAGIC + b"from-another-gpu"


@pytest.mark.parametrize("what", ["engine card", "config", "onnx", "engine", "link"])
def test_a_file_that_is_clearly_no_timing_cache_is_refused_before_any_work(fake, exported, tmp_path, capsys, what):
    """``build --timing-cache engines/rs.json`` (the engine card, by a slip), a config or a graph: the build
    started an empty cache and wrote it over the file. Refused in one line, exit 2, before TensorRT is asked."""
    from inspector.cli import main

    engine = _engine(exported, tmp_path)  # an earlier build: an engine and its card
    card = json.loads(engine.with_suffix(".json").read_text())
    victim = {"engine card": engine.with_suffix(".json"), "config": tmp_path / "daemon.yaml",
              "onnx": exported, "engine": engine, "link": tmp_path / "link.cache"}[what]
    if what == "config":
        victim.write_text("model: {path: export/rs.onnx}\n")
    if what == "link":
        (tmp_path / "elsewhere.cache").write_bytes(CACHE_MAGIC + b"shared")  # a cache, but written through a link
        victim.symlink_to(tmp_path / "elsewhere.cache")
    kind = {"engine card": "text that begins '{", "config": "text that begins 'model: {path: export/rs.'",
            "onnx": "an ONNX graph", "engine": f"a TensorRT engine (its card {engine.with_suffix('.json')} names it)",
            "link": None}[what]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    fake.clear()
    assert main(["build", str(exported.with_name("tiny.fp16.onnx")), "--out", str(tmp_path / "new.fp16.plan"),
                 "--timing-cache", str(victim)]) == 2
    err = capsys.readouterr().err.strip()
    reason = "a symbolic link, not a TensorRT timing cache" if kind is None else f"is {kind}"
    assert err.startswith(f"error: {victim}: {reason}") and "\n" not in err, err
    assert err.endswith(f"; 'inspector build' replaces only its own files: --timing-cache another name, or move it")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert not [c for c in fake if c[0] == "timing_cache_in"] and card["kind"]  # TensorRT never asked


def test_timing_cache_is_locked_and_merged_with_a_concurrent_build(fake, exported, tmp_path):
    import fcntl

    cache = tmp_path / "shared.cache"
    state = _trt()._fake_state

    def concurrent_build_saves(config):  # another process saves its cache while this one builds
        cache.write_bytes(CACHE_MAGIC + b"tactics-of-the-other-build")

    def lock_is_held(_cache):  # while this build writes, nobody else may take the lock
        with open(cache.with_name(cache.name + ".lock"), "a") as other:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        state.lock_checked = True

    state.on_build, state.on_serialize_cache = concurrent_build_saves, lock_is_held
    build_engine(exported.with_name("tiny.fp16.onnx"), tmp_path / "tiny.fp16.plan",
                 BuildOptions(max_batch=4, timing_cache=str(cache)))
    assert state.lock_checked
    entries = cache.read_bytes()[len(CACHE_MAGIC):].decode().split(",")
    assert "tactics-of-the-other-build" in entries and any(e.startswith("tactics-") and "other" not in e
                                                           for e in entries)


# -- one logger per process; verify=False reads only the engine ---------------------------------------


@pytest.mark.parametrize("fake", [TRT10, TRT11], indirect=True)
def test_one_tensorrt_logger_per_process(fake, exported, tmp_path):
    engine = _engine(exported, tmp_path)
    build_engine(exported.with_name("tiny.fp16.onnx"), tmp_path / "again.fp16.plan", BuildOptions(max_batch=4))
    with load_backend(engine), load_backend(engine):
        pass
    loggers = _trt()._fake_state.loggers
    assert len(loggers) == 6 and len({id(x) for x in loggers}) == 1  # 2 builders, 2+2 runtimes: one logger


def test_verify_false_does_not_hash_the_engine(fake, exported, tmp_path, monkeypatch):
    import inspector.backends.tensorrt as trt_backend

    engine = _engine(exported, tmp_path)
    hashed = []
    real = trt_backend.sha256_file
    monkeypatch.setattr(trt_backend, "sha256_file", lambda path: hashed.append(str(path)) or real(path))
    with load_backend(engine, verify=False) as backend:
        assert backend.sha256 == read_engine_sidecar(engine)["engine"]["sha256"]
    assert hashed == []
    with load_backend(engine) as backend:
        assert str(engine) in hashed and backend.sha256 == real(engine)


def test_close_releases_everything_even_when_one_release_fails(fake, exported, tmp_path, monkeypatch):
    engine = _engine(exported, tmp_path)
    backend = load_backend(engine, cuda_graphs=True)
    backend.infer(_batch(2))
    cuda = FakeCuda.current

    def broken_free(handle):
        raise BackendError("fake-cuda: cudaFree failed: cudaErrorIllegalAddress")

    monkeypatch.setattr(cuda, "_device_free", broken_free)
    with pytest.raises(BackendError, match="cudaErrorIllegalAddress"):
        backend.close()
    assert cuda.closed and backend._graphs == {} and backend._context is None and backend._engine is None
    assert cuda.calls["cudaEventDestroy"] == 4 and cuda.calls["cudaStreamDestroy"] == 1
    backend.close()  # idempotent


def test_gpu_replay_script_compares_graphs_with_plain_enqueue(fake, exported, tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "gpu_replay.py"
    spec = importlib.util.spec_from_file_location("gpu_replay", path)
    replay = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(replay)
    engine = _engine(exported, tmp_path)
    out = tmp_path / "replay.json"
    assert replay.main([str(engine), str(out), "--order", "1,4,1,3,4", "--rounds", "3"]) == 0
    report = json.loads(out.read_text())
    assert report["graphs_equal_plain"] and report["cuda_graphs"]["graph_capture_failures"] == 0
    assert set(report["plain"]["latency_ms"]) == {"1", "3", "4"}
    assert replay.main([str(tmp_path / "missing.plan"), str(out)]) == 2
