"""`inspector enroll` → `calibrate` → daemon (ZeroMQ) on a surface the meta-comparer never saw.

A tiny comparer is trained here on two synthetic source textures (brick, grass); the held-out
domain is synthetic gravel written in MVTec layout. Real parts throughout: the CLI, the exported
ONNX graph on ONNX Runtime, the calibration file, the daemon on loopback ZeroMQ.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline_support import base_config, by_type, run_to_end
from inspector.cli import main
from inspector.artifacts.model_card import sha256_file

SIZE = 64


@pytest.fixture(scope="module")
def comparer(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("mc") / "run"
    code = main(["train", "--model", "meta_comparer", "--data", "synth:brick", "--data", "synth:grass",
                 "--out", str(run), "--epochs", "2", "--set", f"model.image_size=[{SIZE},{SIZE}]",
                 "--set", "model.domain_normals=10", "--set", "model.domain_defects=5",
                 "--set", "model.steps_per_epoch=4", "--set", "train.batch_size=4"])
    assert code == 0
    return run / "best.pt"


@pytest.fixture(scope="module")
def gravel(tmp_path_factory) -> Path:
    from inspector.data.synth import synthesize

    out = tmp_path_factory.mktemp("gravel")
    synthesize(out, "gravel", size=SIZE, n_train=5, n_test_good=6, n_test_defect=6, seed=3)
    return out


@pytest.fixture(scope="module")
def enrolled(comparer, gravel, tmp_path_factory) -> tuple[Path, float, str]:
    """(export base path, wall seconds of the command, its stdout) of `inspector enroll` with K = 5."""
    import contextlib
    import io

    base = tmp_path_factory.mktemp("export") / "new-product"
    stdout = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(stdout):
        code = main(["enroll", "--model", str(comparer), "--references",
                     str(gravel / "train" / "good" / "*.png"), "--out", str(base)])
    assert code == 0
    return base, time.perf_counter() - start, stdout.getvalue()


def test_enrolling_again_says_it_replaced_the_earlier_enrolment(comparer, gravel, enrolled, tmp_path, capsys):
    # README "Outputs": a command replaces only what an earlier run of it wrote, and says so; enroll did not say
    import shutil

    earlier, _, first = enrolled
    assert "replaced" not in first
    base = tmp_path / earlier.name  # a copy: the module's enrolment stays as the other tests read it
    for suffix in (".onnx", ".fp16.onnx", ".json"):
        shutil.copy2(f"{earlier}{suffix}", f"{base}{suffix}")
    assert main(["enroll", "--model", str(comparer), "--references", str(gravel / "train" / "good" / "00[01].png"),
                 "--out", str(base)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"model card {base}.json (replaced the earlier enrolment)", lines


def test_enroll_calibrate_run_on_a_held_out_surface(enrolled, gravel, endpoint, tmp_path):
    base, wall, out = enrolled
    card = json.loads(base.with_suffix(".json").read_text())
    enrollment = card["model"]["description"]["enrollment"]
    refs = sorted((gravel / "train" / "good").glob("*.png"))
    assert enrollment["k"] == len(refs) == 5 and f"K={len(refs)}" in out
    assert [r["sha256"] for r in enrollment["references"]] == [sha256_file(p) for p in refs]
    assert 0 < enrollment["seconds"] < wall
    # the bank of 5 references: (64/8)² and (64/16)² patches per image and scale
    assert enrollment["bank_patches"] == [5 * 64, 5 * 16]
    assert set(card["graphs"]) == {"fp32", "fp16"} and card["graphs"]["fp16"]["conv_float16"] > 0
    assert card["model"]["name"] == "meta_comparer"

    onnx = base.with_suffix(".onnx")
    cal = tmp_path / "cal.yaml"
    assert main(["calibrate", str(onnx), "--data", str(gravel), "--split", "test", "--out", str(cal),
                 "--threads", "1"]) == 0
    assert cal.is_file()

    cfg = base_config(onnx, endpoint, [{"name": "cam0", "source": str(gravel / "test" / "good")}],
                      thresholds={"calibration": str(cal)})
    cfg["thresholds"].pop("image", None)
    daemon, code, events = run_to_end(cfg)
    assert code == 0, daemon.failures
    results = by_type(events, "result", "cam0")
    assert len(results) == len(list((gravel / "test" / "good").glob("*.png"))) == 6
    assert all(0.0 <= e.score <= 1.0 for e in results)
    assert results[0].model["name"] == "meta_comparer"


def test_fp32_graph_matches_torch_after_enrolment(comparer, gravel, enrolled):
    import onnxruntime as ort
    import torch

    from inspector.deploy.enroll import load_references
    from inspector.training.checkpoint import load_model

    model, config, _ = load_model(comparer)
    refs = sorted((gravel / "train" / "good").glob("*.png"))
    model.enroll(torch.from_numpy(load_references(refs, (SIZE, SIZE), "square", config.data.downscale, None)))
    query = load_references(sorted((gravel / "test").glob("*/*.png"))[:4], (SIZE, SIZE), "square",
                            config.data.downscale, None)
    session = ort.InferenceSession(str(enrolled[0].with_suffix(".onnx")), providers=["CPUExecutionProvider"])
    score, amap = session.run(["score", "anomaly_map"], {"images": query})
    with torch.no_grad():
        ref_score, ref_map = model(torch.from_numpy(query))
    np.testing.assert_allclose(score, ref_score.numpy(), atol=1e-4)
    assert amap.shape == (4, 1, SIZE, SIZE)
    # the graph's map is torch's, pixel for pixel (no flip, transpose or shift of the patch grid)
    np.testing.assert_allclose(amap, ref_map.numpy(), atol=1e-4)
    np.testing.assert_allclose(score, amap.reshape(4, -1).max(axis=1), atol=1e-6)  # eq. (5): max of the map


def _error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_bad_enrolment_input_is_one_line_exit_2(comparer, gravel, tmp_path, capsys):
    out = str(tmp_path / "x")
    assert main(["enroll", "--model", str(comparer), "--references", str(tmp_path / "none" / "*.png"),
                 "--out", out]) == 2
    assert "no file matches" in _error(capsys)

    many = tmp_path / "many"
    many.mkdir()
    for i in range(51):
        (many / f"{i:02d}.png").write_bytes(b"")
    assert main(["enroll", "--model", str(comparer), "--references", str(many / "*.png"), "--out", out]) == 2
    assert "51 images" in _error(capsys)

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    assert main(["enroll", "--model", str(comparer), "--references", str(broken), "--out", out]) == 2
    assert str(broken) in _error(capsys)

    not_a_model = tmp_path / "model.pt"
    not_a_model.write_bytes(b"nope")
    assert main(["enroll", "--model", str(not_a_model), "--references", str(broken), "--out", out]) == 2
    assert str(not_a_model) in _error(capsys)
    assert not list(tmp_path.glob("x*"))  # nothing half-written


def test_plain_export_of_a_comparer_points_to_enroll(comparer, tmp_path, capsys):
    assert main(["export", str(comparer), "--out", str(tmp_path / "bare")]) == 2
    assert "inspector enroll" in _error(capsys) and not list(tmp_path.glob("bare*"))


def test_ctrl_c_on_meta_comparer_saves_the_run_and_enroll_refuses_it_while_training(gravel, tmp_path):
    """Ctrl-C printed a bare 'interrupted' and left no history.json/summary.json; enroll took a run still
    training without a word. Now: the run is saved like the other models' (exit 130, stop_reason
    interrupted), and enroll refuses a run whose phase has not ended in one line, as evaluate/export do."""
    import os
    import signal
    import subprocess
    import sys

    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "inspector", "train", "--model", "meta_comparer", "--data",
                             "synth:brick", "--data", "synth:grass", "--out", str(run), "--epochs", "10000",
                             "--set", f"model.image_size=[{SIZE},{SIZE}]", "--set", "model.domain_normals=10",
                             "--set", "model.domain_defects=5", "--set", "model.steps_per_epoch=2",
                             "--set", "train.batch_size=2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    enroll = [sys.executable, "-m", "inspector", "enroll", "--model", str(run), "--references",
              str(gravel / "train" / "good" / "*.png"), "--out", str(tmp_path / "export" / "x")]
    try:
        deadline = time.monotonic() + 120
        while not (run / "best.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        busy = subprocess.run(enroll, capture_output=True, text=True, timeout=180)
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=60)[0].decode()
    assert busy.returncode == 2 and len(busy.stderr.strip().splitlines()) == 1, busy.stderr
    assert "incomplete" in busy.stderr and "train it again" in busy.stderr
    assert proc.returncode == 130, output
    assert "stopped by SIGINT" in output and "Traceback" not in output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["phases"][0]["stop_reason"] == "interrupted"
    assert json.loads((run / "history.json").read_text())
    done = subprocess.run(enroll, capture_output=True, text=True, timeout=300)  # exports: minutes on a busy CI
    assert done.returncode == 0, done.stderr


def test_enroll_refuses_a_users_file_at_its_names_before_reading_the_model(gravel, tmp_path, capsys):
    """README "Outputs": enroll's export refused a user's NAME.json only after the references were enrolled;
    now before the model is even read (this one does not exist: its error would come first otherwise)."""
    notes = tmp_path / "line7.json"
    notes.write_text('{"my": "notes"}\n')
    assert main(["enroll", "--model", str(tmp_path / "never-read.pt"), "--references",
                 str(gravel / "train" / "good" / "*.png"), "--out", str(tmp_path / "line7")]) == 2
    line = _error(capsys)
    assert line.startswith(f"error: {notes}: exists and is not a sidecar written by 'inspector export'"), line
    assert notes.read_text() == '{"my": "notes"}\n' and sorted(p.name for p in tmp_path.iterdir()) == ["line7.json"]
