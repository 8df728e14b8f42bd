"""Bounded, seeded fuzz of every file the product reads: one line and exit 2, or it loads — never a traceback.

Per file kind (daemon config, training config, model sidecar, engine sidecar, calibration file, ONNX bytes)
``CASES`` mutations of a valid file are fed to the loader the CLI uses, in-process (the CLI's behaviour is the
same function plus "InspectorError → one line, exit 2"), each under a time limit. Outcome per case: "0" (it
loads), "2" (InspectorError with a one-line message), "traceback" (anything else) or "hang". A few mutated
daemon configs also go through a real ``inspector run --check`` subprocess. The seed is fixed, so a failure
reproduces; ``INSPECTOR_FUZZ_SEED`` explores other seeds. Checkpoints (torch payloads) get fewer cases
through the loader export, evaluate and ``predict --backend torch`` share (each case rebuilds the model).
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from inspector.errors import InspectorError

CASES = 250  # per file kind
SEED = int(os.environ.get("INSPECTOR_FUZZ_SEED", "15"))
CASE_LIMIT_S = 5.0  # a case slower than this counts as a hang
REPO = Path(__file__).resolve().parents[1]
SHA = "0" * 64
CHECKPOINT = b"a run's checkpoint"  # the model card's training.checkpoint (only its path and sha256 are read)
CHECKPOINT_SHA = hashlib.sha256(CHECKPOINT).hexdigest()

EXTREMES: list[Any] = [-1, 0, 1, 2**31, 2**63, 10**30, -(10**30), 1e308, float("nan"), float("inf"), -0.0, 0.5,
                       "", "yes", "on", "ça☃ü", "x" * 300, "../../etc", None, True, [], [[]], {}, {"a": 1},
                       {1: "int key"}, {None: "null key"}, {True: "bool key"}, [1, 2, 3]]


# -- valid seeds ---------------------------------------------------------------------------------------------
def _onnx_model(path: Path, size: int = 32) -> bytes:
    """A tiny valid graph with the exported layout: uint8 (N, H, W, 3) → score (N,), anomaly_map (N, 1, H, W)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Cast", ["images"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["f"], ["g"], axes=[3], keepdims=1),
             helper.make_node("Transpose", ["g"], ["anomaly_map"], perm=[0, 3, 1, 2]),
             helper.make_node("ReduceMax", ["anomaly_map"], ["score"], axes=[1, 2, 3], keepdims=0)]
    graph = helper.make_graph(
        nodes, "fuzz", [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", size, size, 3])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"]),
         helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, ["N", 1, size, size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    data = model.SerializeToString()
    path.write_bytes(data)
    return data


def _sidecar(graph: Path, sha: str, size: int = 32) -> dict:
    return {"schema_version": 1, "model": {"name": "fuzz", "version": "1"},
            "input": {"name": "images", "dtype": "uint8", "layout": "NHWC", "batch": "N", "height": size,
                      "width": size, "channels": 3, "color": "RGB", "resize": "square"},
            "outputs": {"score": {"dtype": "float32"}, "anomaly_map": {"dtype": "float32"}},
            "graphs": {"fp32": {"file": graph.name, "sha256": sha, "precision": "fp32"}}, "opset": 13,
            "training": {"checkpoint": str(graph.with_name("best.pt")), "checkpoint_sha256": CHECKPOINT_SHA,
                         "data": {"root": "brick", "val_files": ["004.png", "010.png"],
                                  "val_sha256": ["0" * 64, "1" * 64]}}}


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, Any]:
    from inspector.artifacts.model_card import sha256_file

    root = tmp_path_factory.mktemp("fuzz")
    graph = root / "m.onnx"
    onnx_bytes = _onnx_model(graph)
    (root / "best.pt").write_bytes(CHECKPOINT)
    sidecar = _sidecar(graph, sha256_file(graph))
    (root / "m.json").write_text(json.dumps(sidecar))
    daemon = {"model": {"path": str(graph), "threads": 1}, "thresholds": {"image": 0.5},
              "cameras": [{"name": "c", "source": "synthetic", "max_frames": 2,
                           "synthetic": {"texture": "procedural", "size": 32, "pool": 1}}],
              "batching": {"max_batch": 2}, "postprocess": {"thumbnail": {"quality": 80}},
              "publish": {"endpoint": f"ipc://{root}/p.sock", "sndhwm": 10}, "drift": {"enabled": False, "window": 100, "min_samples": 10},
              "recorder": {"enabled": False, "dir": str(root / "rec")}, "shutdown_timeout_s": 5.0}
    train = {"model": {"name": "reduced_student", "image_size": [64, 64]}, "data": {"path": str(root)},
             "train": {"epochs": 2, "batch_size": 4, "lr": 0.1, "threads": 1}}
    calibration = {"schema_version": 1, "model": {"name": "fuzz", "sha256": sidecar["graphs"]["fp32"]["sha256"]},
                   "image_threshold": 0.5, "pixel_threshold": 0.4, "uncertain_band": [0.4, 0.6], "rule": "manual",
                   "score_stats": {"mean": 0.1, "std": 0.01, "min": 0.0, "max": 0.2, "p50": 0.1, "p99": 0.2, "n": 9}}
    engine = {"schema_version": 1, "kind": "tensorrt-engine", "engine": {"file": "m.plan", "sha256": SHA},
              "tensorrt": {"version": "10.0"}, "gpu": {"name": "GPU", "compute_capability": "8.6"},
              "precision": "fp16", "profile": {"min_batch": 1, "opt_batch": 4, "max_batch": 4},
              "onnx": {"file": "m.onnx", "sha256": SHA}, "model": sidecar}
    return {"root": root, "graph": graph, "onnx": onnx_bytes, "sidecar": sidecar, "daemon": daemon,
            "train": train, "calibration": calibration, "engine": engine}


# -- mutations -----------------------------------------------------------------------------------------------
def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def _mutate_tree(rng: random.Random, doc: Any) -> Any:
    doc = json.loads(json.dumps(doc))
    path = rng.choice(_paths(doc)[1:])
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    leaf = path[-1]
    action = rng.random()
    if action < 0.15 and isinstance(parent, dict):
        del parent[leaf]
    elif action < 0.25 and isinstance(parent, dict):
        parent[rng.choice([1, None, True, 2.5, "unknown_key"])] = rng.choice(EXTREMES)
    elif action < 0.35:
        parent[leaf] = rng.choice([[parent[leaf]], {"x": parent[leaf]}, str(parent[leaf])])
    else:
        parent[leaf] = rng.choice(EXTREMES)
    return doc


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        pos = rng.randrange(len(data) + 1)
        action = rng.random()
        if action < 0.25:
            del data[pos:pos + rng.randint(1, 16)]
        elif action < 0.5:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif action < 0.7 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif action < 0.8:
            data = data[:pos]
        elif action < 0.9:
            depth = rng.choice([10, 1000, 100_000])
            data[pos:pos] = b"[" * depth + b"]" * depth
        else:
            data[pos:pos] = rng.choice([b"\xff\xfe", b"\x00", b"\x01", b"\xc3", b"&a *a", b"!!python/object:os.system"])
        if not data:
            break
    return bytes(data)


def _text_cases(rng: random.Random, doc: Any, dump: Callable[[Any], bytes]) -> bytes:
    """Half structured mutations (valid syntax, wrong content), half raw byte damage."""
    if rng.random() < 0.5:
        try:
            return dump(_mutate_tree(rng, doc))
        except (ValueError, TypeError, yaml.YAMLError):  # e.g. JSON cannot carry a None key: damage bytes instead
            pass
    return _mutate_bytes(rng, dump(doc))


def _yaml(doc: Any) -> bytes:
    return yaml.safe_dump(doc, allow_unicode=True).encode()


def _json(doc: Any) -> bytes:
    return json.dumps(doc, indent=1).encode()  # NaN/Infinity come out as JSON extensions the reader refuses


# -- loaders (what the CLI calls) -----------------------------------------------------------------------------
def _load_daemon(path: Path, seeds) -> None:
    from inspector.pipeline.config import load_daemon_config

    load_daemon_config(path)


def _load_train(path: Path, seeds) -> None:
    from inspector.training.config import load_run_config

    load_run_config(path)


def _load_sidecar(path: Path, seeds) -> None:
    """What the CLI reads of a model card: the input spec (every command), the validation file names
    (calibrate) and the training checkpoint (``predict --backend torch``; not here: one line, exit 2)."""
    from inspector.artifacts import input_spec
    from inspector.artifacts.model_card import read_sidecar
    from inspector.backends.torch_eager import resolve_checkpoint
    from inspector.evaluation.calibrate import recorded_validation

    card = read_sidecar(path)
    input_spec(card)
    recorded_validation(card)
    resolve_checkpoint(path.with_suffix(".onnx"))


def _load_engine_sidecar(path: Path, seeds) -> None:
    from inspector.artifacts import input_spec
    from inspector.artifacts.engine_card import read_engine_sidecar

    input_spec(read_engine_sidecar(path.with_suffix(".plan")))


def _load_calibration(path: Path, seeds) -> None:
    from inspector.artifacts.thresholds import read_thresholds

    read_thresholds(path)


def _load_onnx(path: Path, seeds) -> None:
    from inspector.backends import load_backend
    from inspector.artifacts.model_card import sha256_file

    (path.parent / "m.json").write_text(json.dumps(_sidecar(path, sha256_file(path))))  # damage reaches ORT
    load_backend(path, "onnxruntime", threads=1).close()


KINDS = {  # kind: (file name, make mutated bytes, loader)
    "daemon config": ("cfg.yaml", lambda rng, s: _text_cases(rng, s["daemon"], _yaml), _load_daemon),
    "training config": ("train.yaml", lambda rng, s: _text_cases(rng, s["train"], _yaml), _load_train),
    "model sidecar": ("m.json", lambda rng, s: _text_cases(rng, s["sidecar"], _json), _load_sidecar),
    "engine sidecar": ("m.json", lambda rng, s: _text_cases(rng, s["engine"], _json), _load_engine_sidecar),
    "calibration file": ("cal.yaml", lambda rng, s: _text_cases(rng, s["calibration"], _yaml), _load_calibration),
    "ONNX bytes": ("m.onnx", lambda rng, s: _mutate_bytes(rng, s["onnx"]), _load_onnx),
}


def _control_bytes(kind: str, seeds) -> bytes:
    key = {"daemon config": "daemon", "training config": "train", "model sidecar": "sidecar",
           "engine sidecar": "engine", "calibration file": "calibration"}[kind]
    return (_yaml if kind.endswith(("config", "file")) else _json)(seeds[key])


class _Hang(Exception):
    pass


def _alarm(*_):
    raise _Hang()


def _outcome(load: Callable[[], None], said: list[str] | None = None) -> tuple[str, str]:
    """The case's outcome code and why it failed; ``said`` gets the one-line message of an exit 2."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_LIMIT_S)
    try:
        load()
        return "0", ""
    except InspectorError as exc:
        message = str(exc)
        if said is not None:
            said.append(message)
        return ("2", "") if message and "\n" not in message and len(message) < 600 else ("traceback", f"bad line {message[:200]!r}")
    except _Hang:
        return "hang", ""
    except Exception as exc:  # noqa: BLE001 - any other exception is a traceback at the CLI
        return "traceback", f"{type(exc).__name__}: {str(exc)[:160]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _where_problem(kind: str, path: Path, message: str) -> str | None:
    """What is wrong with where a one-line message points, or None. A YAML file's message names the file (a
    training config's did not: "train.epochs: …", which file?), and no message glues a key path to the file's
    name ("cfg.yaml.batching.max_batch", which read as a key called 'yaml')."""
    if re.search(re.escape(str(path)) + r"\.[^\W\d]|" + re.escape(str(path)) + r"\[", message):
        return f"key path glued to the file name: {message[:200]!r}"
    if kind.endswith(("config", "file")) and str(path) not in message:
        return f"the file is not named: {message[:200]!r}"
    return None


def test_fuzz_every_file_kind(seeds, tmp_path):
    figures: dict[str, collections.Counter] = {}
    failures: list[str] = []
    for k, (kind, (name, mutate, loader)) in enumerate(KINDS.items()):
        rng = random.Random(SEED * 1000 + k)
        folder = tmp_path / kind.replace(" ", "_")
        folder.mkdir()
        (folder / "m.onnx").write_bytes(seeds["onnx"])
        (folder / "m.json").write_text(json.dumps(seeds["sidecar"]))
        counts = figures[kind] = collections.Counter()
        control = folder / name
        control.write_bytes({"ONNX bytes": seeds["onnx"]}.get(kind) or _control_bytes(kind, seeds))
        assert _outcome(lambda: loader(control, seeds)) == ("0", ""), f"the unmutated {kind} does not load"
        for case in range(CASES):
            data = mutate(rng, seeds)
            path = folder / name
            path.write_bytes(data)
            said: list[str] = []
            code, why = _outcome(lambda: loader(path, seeds), said)
            counts[code] += 1
            if code not in ("0", "2"):
                failures.append(f"{kind} case {case} (seed {SEED}): {code} {why}")
            elif said and (why := _where_problem(kind, path, said[0])):
                failures.append(f"{kind} case {case} (seed {SEED}): {why}")
    summary = "; ".join(f"{kind}: {sum(c.values())} cases, exit 0: {c['0']}, exit 2: {c['2']}, "
                        f"tracebacks: {c['traceback']}, hangs: {c['hang']}" for kind, c in figures.items())
    print(f"\nfuzz (seed {SEED}): {summary}")
    assert not failures, f"{len(failures)} failure(s):\n" + "\n".join(failures[:20])
    for kind, c in figures.items():  # the fuzz must reach both outcomes, or it tests nothing
        assert c["2"] >= CASES // 10, (kind, c)
        assert c["0"] >= 1 or kind in ("ONNX bytes",), (kind, c)


def test_fuzzed_daemon_configs_through_the_cli(seeds, tmp_path):
    """The real ``inspector run --check``: exit 0 or 2, no traceback, no hang."""
    rng = random.Random(SEED)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    codes = collections.Counter()
    for case in range(3):
        path = tmp_path / f"cfg{case}.yaml"
        path.write_bytes(_text_cases(rng, seeds["daemon"], _yaml))
        res = subprocess.run([sys.executable, "-m", "inspector", "run", "--config", str(path), "--check"],
                             env=env, capture_output=True, text=True, timeout=60)
        codes[res.returncode] += 1
        assert res.returncode in (0, 2) and "Traceback" not in res.stderr, (path.read_bytes()[:300], res.stderr)
        if res.returncode == 2:
            assert len([l for l in res.stderr.splitlines() if l.startswith("error:")]) == 1, res.stderr
    print(f"\nfuzz CLI (seed {SEED}): run --check exits {dict(codes)}")


# -- checkpoints (torch payloads: plain data and tensors) ------------------------------------------------------
CHECKPOINT_CASES = 80  # each rebuilds the model: fewer cases than the text kinds


def _mutate_checkpoint(rng: random.Random, payload: dict) -> dict:
    """A tree mutation of the plain-data part (config, bookkeeping), or damage to the weights."""
    import torch

    weights = dict(payload["state_dict"])
    if rng.random() < 0.6:
        plain = _mutate_tree(rng, {k: v for k, v in payload.items() if k != "state_dict"})
        return {**plain, "state_dict": weights} if isinstance(plain, dict) else plain
    name = rng.choice(sorted(weights))
    action = rng.random()
    if action < 0.3:
        del weights[name]
    elif action < 0.6:
        weights[name] = torch.zeros(rng.choice([(1,), (3, 3), (0,)]))
    elif action < 0.8:
        weights[name] = rng.choice(EXTREMES)
    else:
        return {**payload, "state_dict": rng.choice(EXTREMES)}
    return {**payload, "state_dict": weights}


def test_fuzz_checkpoints(trained_run, tmp_path):
    """What export, evaluate and ``predict --backend torch`` call on a checkpoint: one line or it loads."""
    import torch

    from inspector.models.checkpoint import load_model

    payload = torch.load(trained_run / "best.pt", weights_only=True)
    rng = random.Random(SEED * 1000 + len(KINDS))
    counts, failures = collections.Counter(), []
    path = tmp_path / "best.pt"
    for case in range(CHECKPOINT_CASES):
        torch.save(_mutate_checkpoint(rng, payload), path)
        code, why = _outcome(lambda: load_model(path))
        counts[code] += 1
        if code not in ("0", "2"):
            failures.append(f"checkpoint case {case} (seed {SEED}): {code} {why}")
    print(f"\nfuzz checkpoints (seed {SEED}): {dict(counts)}")
    assert not failures, f"{len(failures)} failure(s):\n" + "\n".join(failures[:20])
    assert counts["2"] >= CHECKPOINT_CASES // 10 and counts["0"] >= 1, counts


# -- corrupt images through the CLI ------------------------------------------------------------------------------
def _damaged_images(folder: Path) -> dict[str, bytes]:
    """Real encodings (OpenCV) of one picture, damaged as files from disks and cameras are: a truncated file,
    zeroed bytes (a PNG CRC error; a JPEG that still decodes, with extraneous bytes)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(SEED)
    img = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    enc = {ext: cv2.imencode(ext, img)[1].tobytes() for ext in (".png", ".jpg", ".tif", ".bmp")}
    zeroed = {ext: b[:len(b) // 3] + bytes(50) + b[len(b) // 3 + 50:] for ext, b in enc.items()}
    return {"crc.png": zeroed[".png"], "zeroed.jpg": zeroed[".jpg"], "trunc.tif": enc[".tif"][:len(enc[".tif"]) // 2],
            "trunc.bmp": enc[".bmp"][:len(enc[".bmp"]) // 2], "trunc.png": enc[".png"][:len(enc[".png"]) // 2]}


def test_corrupt_images_through_predict_are_one_line(seeds, tmp_path):
    """``inspector predict`` on a corrupt image: exit 2 and exactly one stderr line besides log lines (exit 0
    and none when the decoder recovers). libpng, libjpeg and OpenCV's log printed their own lines to stderr
    beside ours ("libpng error: IDAT: CRC error", "[ERROR…] TIFF_Error …", "Corrupt JPEG data: …")."""
    import re

    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log_line = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ (DEBUG|INFO|WARNING) ")
    bad = []
    for name, data in _damaged_images(tmp_path).items():
        path = tmp_path / name
        path.write_bytes(data)
        res = subprocess.run([sys.executable, "-m", "inspector", "predict", str(seeds["graph"]), str(path)],
                             env=env, capture_output=True, text=True, timeout=60)
        lines = [line for line in res.stderr.splitlines() if line.strip() and not log_line.match(line)]
        if "Traceback" in res.stderr or res.returncode not in (0, 2) or len(lines) != (res.returncode == 2):
            bad.append(f"{name}: exit {res.returncode}, stderr {lines}")
    assert not bad, "\n".join(bad)
