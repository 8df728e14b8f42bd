"""`inspector demo --quick` end to end: data → train → evaluate → export → calibrate → daemon → report."""

from __future__ import annotations

import json

import pytest

from inspector.commands.demo import PLANS

pytest.importorskip("torch")
pytest.importorskip("skimage")


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    from inspector.cli import main

    out = tmp_path_factory.mktemp("demo")
    code = main(["demo", "--quick", "--out", str(out)])
    return out, code


def test_quick_demo_runs_end_to_end(quick_demo, capsys):
    out, code = quick_demo
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["steps_s"]) == {"synthesise", "train", "evaluate", "export", "calibrate", "daemon", "report"}
    ev = summary["events"]
    assert ev["daemon_exit_code"] == 0 and summary["daemon_failures"] == []
    assert ev["frames_inspected"] == summary["plan"]["frames"]  # offline synthetic camera: nothing dropped
    assert ev["messages_lost_to_subscriber"] == 0
    assert 0 < ev["injected_defects"] < ev["frames_inspected"]
    assert ev["defect_events_received"] == ev["defect_events_on_injected_frames"] + ev["false_alarms"]
    assert ev["missed_injected"] == ev["injected_defects"] - ev["defect_events_on_injected_frames"]
    stats = json.loads((out / "daemon_stats.json").read_text())  # the daemon's own count agrees
    assert stats["cameras"]["line1"]["NG"] == ev["defect_events_received"]
    for name in ("report.html", "daemon.yaml", "eval/metrics.json", "eval/roc.png", "export/rs-brick.onnx",
                 "export/rs-brick.fp16.onnx", "export/rs-brick.json", "calibration/rs-brick.yaml"):
        assert (out / name).is_file(), name


def test_quick_demo_calibration_is_bound_to_the_deployed_graph(quick_demo):
    from inspector.errors import ConfigError
    from inspector.artifacts.model_card import sha256_file
    from inspector.artifacts.thresholds import load_thresholds

    out, _ = quick_demo
    model = out / "export" / "rs-brick.onnx"
    t = load_thresholds(out / "calibration" / "rs-brick.yaml", sha256_file(model), model)
    assert t.model.backend == "onnxruntime" and t.model.precision == "fp32"
    # calibrated on good images apart from training (plan.n_calibration), not on the 3 validation images
    assert t.data.good.source == "folder" and t.data.good.n == PLANS["quick"].n_calibration
    cal = json.loads((out / "summary.json").read_text())["calibration"]
    assert cal["image_threshold"] == t.image_threshold
    half = out / "export" / "rs-brick.fp16.onnx"  # the FP16 graph has its own file, bound to its own hash
    t16 = load_thresholds(cal["fp16"]["file"], sha256_file(half), half)
    # The --quick model is a 1-epoch smoke model at 64 px, where the stride-32 level is a 2x2 map whose
    # good-image spread is tiny, so FP16 rounding moves scores by a visible fraction of the threshold.
    # The FP16 accuracy gate on real images and a trained model is tests/test_parity.py.
    assert t16.model.precision == "fp16" and 0 < cal["fp16"]["max_shift_of_threshold"] < 0.25
    with pytest.raises(ConfigError, match="inspector calibrate"):
        load_thresholds(out / "calibration" / "rs-brick.yaml", sha256_file(half), half)


def test_quick_demo_report_sections(quick_demo):
    from test_reporting import assert_inline_pngs, parse

    out, _ = quick_demo
    p = parse((out / "report.html").read_text())
    assert p.h2[0] == "Overview" and "Calibration" in p.h2 and any(h.startswith("Daemon") for h in p.h2)
    assert any(h.startswith("Test set at the calibrated threshold") for h in p.h2)
    assert len(assert_inline_pngs(p.srcs)) >= 4


def test_demo_refuses_to_overwrite_without_force(quick_demo, capsys):
    from inspector.cli import main

    out, _ = quick_demo
    assert main(["demo", "--quick", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err


def test_demo_never_replaces_the_step_by_step_files_without_force(tmp_path, capsys):
    """'demo --out .' after the README's step-by-step: the demo's names are the same (data/brick, runs/rs-brick,
    …) and, with no earlier demo there, its dataset's train/ folder and trained run were replaced silently."""
    from inspector.cli import main

    mine = tmp_path / "data" / "brick" / "train" / "good" / "mine.png"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"the user's image")
    (tmp_path / "runs" / "rs-brick").mkdir(parents=True)
    (tmp_path / "runs" / "rs-brick" / "best.pt").write_bytes(b"hours of training")
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path}: not a folder the demo made (no .inspector-demo in it), "
                                       f"and it holds data, runs; the demo writes only into a new or empty folder "
                                       f"(--force replaces only a previous demo's outputs): --out another folder\n")
    assert mine.read_bytes() == b"the user's image"
    assert (tmp_path / "runs" / "rs-brick" / "best.pt").read_bytes() == b"hours of training"


def test_demo_force_replaces_only_a_folder_the_demo_made(tmp_path, capsys):
    """--force on a user's folder holding the demo's names (no marker of a previous demo): it went on and
    replaced the user's trained best.pt and eval/ notes. Now one line naming the folder, exit 2, nothing touched."""
    from inspector.cli import main

    best = tmp_path / "runs" / "rs-brick" / "best.pt"
    best.parent.mkdir(parents=True)
    best.write_bytes(b"hours of training")
    notes = tmp_path / "eval" / "notes.txt"
    notes.parent.mkdir()
    notes.write_text("my evaluation notes")
    assert main(["demo", "--quick", "--force", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {tmp_path}: not a folder the demo made")
    assert best.read_bytes() == b"hours of training" and notes.read_text() == "my evaluation notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval", "runs"]  # no marker claimed it either


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_demo_never_writes_into_a_users_folder(tmp_path, capsys, force):
    """--out a user's folder holding their own files (none of the demo's names): the demo wrote its data set,
    run, graphs and reports in among them and claimed the folder with its marker, so a later --force would
    replace whatever there bore its names. Now one line naming the folder, exit 2, the folder untouched, --force
    or not: only a new or empty folder, or the demo's own, is written into."""
    from inspector.cli import main

    (tmp_path / "notes.txt").write_text("my notes")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "line1.jpg").write_bytes(b"a photo")
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert main(["demo", "--quick", "--out", str(tmp_path), *force]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {tmp_path}: not a folder the demo made")
    assert "holds notes.txt, photos" in err
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "notes.txt").read_text() == "my notes"


def test_demo_force_accepts_its_own_previous_demo(quick_demo, tmp_path):
    from inspector.commands.demo import OWNER_MARKER, _check_out
    from inspector.errors import ConfigError

    out, _ = quick_demo
    assert (out / OWNER_MARKER).is_file()
    _check_out(out, force=True)  # the demo's own folder: --force may replace it
    fake = tmp_path / "fake"  # a marker someone else wrote, with other text, is no claim
    fake.mkdir()
    (fake / OWNER_MARKER).write_text("mine")
    (fake / "report.html").write_text("my report")
    with pytest.raises(ConfigError, match="not a folder the demo made"):
        _check_out(fake, force=True)


def test_ctrl_c_during_the_demos_training_stops_the_demo(tmp_path):
    """Ctrl-C in training stopped only the training: the demo evaluated, exported and ran a part-trained
    model and ended 'demo finished', exit 0. Now: exit 130, one line saying where it stopped and how to go on."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-m", "inspector", "demo", "--quick", "--epochs", "500", "--out",
                             str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 120
    while not list(out.glob("runs/*/best.pt")) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 130, output
    last = output.strip().splitlines()[-1]
    assert last.startswith("demo stopped by SIGINT in step 2/7 (train), after epoch") and "--resume" in last, output
    assert "demo finished" not in output and "Evaluating" not in output and "Traceback" not in output
    assert not (out / "summary.json").exists()
