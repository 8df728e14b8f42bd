"""A calibration's threshold holds at the batch sizes calibrate checked (``data.batch_check``): the daemon,
predict and verify say, in one line, when they score larger batches, with the command that covers them."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from inspector.cli import main

CHECKED = 4  # calibrate --batch-size: the threshold is checked at batch sizes 1 … 4


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """24 good brick images the fixture model never saw: what a line collects to calibrate on."""
    from inspector.data.synth import synthesize

    root = tmp_path_factory.mktemp("coverage_good") / "brick"
    synthesize(root, texture="brick", size=64, n_train=24, n_test_good=0, n_test_defect=0, seed=8)
    return root / "train" / "good"


@pytest.fixture(scope="module")
def calibrated(exported_model, good, tmp_path_factory) -> Path:
    """The real calibrate output for the trained fixture model, checked up to batch size :data:`CHECKED`."""
    out = tmp_path_factory.mktemp("coverage_cal") / "rs.yaml"
    assert main(["calibrate", str(exported_model), "--good-dir", str(good), "--out", str(out),
                 "--batch-size", str(CHECKED)]) == 0
    assert yaml.safe_load(out.read_text())["data"]["batch_check"]["batch_sizes"] == [1, 2, 3, 4]
    return out


def _told(caplog) -> list[str]:
    """The warnings logged about a calibration's batch check (then forgotten)."""
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "batch size" in r.getMessage()]
    caplog.clear()
    return lines


def _check_daemon(model: Path, cal: Path, camera: Path, tmp_path: Path, capsys, caplog, max_batch: int) -> list[str]:
    """``run --check`` of a real daemon config (the calibration, a folder camera, ``batching.max_batch``):
    the warnings about the calibration's batch check (exit 0 asserted)."""
    cfg = {"model": {"path": str(model), "threads": 1}, "thresholds": {"calibration": str(cal)},
           "cameras": [{"name": "c", "source": str(camera)}], "batching": {"max_batch": max_batch},
           "publish": {"endpoint": f"ipc://{tmp_path / 'events.sock'}"}}
    path = tmp_path / "inspector.yaml"
    path.write_text(yaml.safe_dump(cfg))
    capsys.readouterr()
    caplog.clear()
    code = main(["run", "--config", str(path), "--check"])
    assert code == 0, capsys.readouterr().err
    return _told(caplog)


def _covering_command(line: str) -> list[str]:
    """The calibrate command a warning line ends with, as argv for :func:`inspector.cli.main`."""
    words = shlex.split(line.rsplit("with: ", 1)[1])
    assert words[:2] == ["inspector", "calibrate"], line
    return words[1:]


def test_run_check_says_when_max_batch_exceeds_the_checked_batch_sizes(exported_model, good, calibrated,
                                                                      tmp_path, capsys, caplog):
    """calibrate checked its threshold at batch sizes 1 … 4; a daemon batching up to 16 scores good images in
    batches it never checked (scores differ by ~1e-7 between batch sizes, and the threshold is one step above
    the highest good score), and said nothing. One line now names the file, both sizes and the command; that
    command's file covers 16 and the line is gone."""
    assert _check_daemon(exported_model, calibrated, good, tmp_path, capsys, caplog, CHECKED) == []
    (line,) = _check_daemon(exported_model, calibrated, good, tmp_path, capsys, caplog, 16)
    assert f"thresholds.calibration: {calibrated}: " in line, line
    assert f"checked at batch sizes up to {CHECKED} only, but batching.max_batch is 16" in line, line
    argv = _covering_command(line)
    assert argv == ["calibrate", str(exported_model), "--good-dir", str(good), "--false-alarm-rate", "0.001",
                    "--pixel-false-alarm-rate", "0.001", "--out", str(calibrated), "--batch-size", "16"], argv
    redone = tmp_path / "redone.yaml"
    argv[argv.index("--out") + 1] = str(redone)  # the module's file stays checked up to 4 for the other tests
    assert main(argv) == 0
    assert _check_daemon(exported_model, redone, good, tmp_path, capsys, caplog, 16) == []


def test_run_check_says_a_calibration_predates_the_batch_check(exported_model, good, calibrated, tmp_path, capsys,
                                                               caplog):
    """A calibration file written before calibrate checked batch sizes (no data.batch_check) holds at none but
    its own: one line says so with the command that makes it again."""
    old = tmp_path / "old.yaml"
    data = yaml.safe_load(calibrated.read_text())
    del data["data"]["batch_check"]
    old.write_text(yaml.safe_dump(data, sort_keys=False))
    (line,) = _check_daemon(exported_model, old, good, tmp_path, capsys, caplog, 8)
    assert f"{old}: made before calibrate checked its threshold at other batch sizes" in line, line
    assert _covering_command(line)[-2:] == ["--batch-size", "8"], line


def test_predict_says_when_its_batch_size_exceeds_the_checked_ones(exported_model, good, calibrated, capsys):
    """predict --calibration --batch-size 16 decided OK/NG at a batch size the threshold was not checked at."""
    images = [str(p) for p in sorted(good.glob("*.png"))]
    for batch, told in ((CHECKED, False), (16, True)):
        capsys.readouterr()
        assert main(["predict", str(exported_model), *images, "--calibration", str(calibrated),
                     "--batch-size", str(batch)]) == 0
        out, err = capsys.readouterr()
        assert len(out.splitlines()) == len(images)  # the rows alone on stdout
        lines = [line for line in err.splitlines() if "batch size" in line]
        assert len(lines) == int(told), (batch, err)
    assert lines[0].startswith(f"warning: {calibrated}: the threshold was checked at batch sizes up to {CHECKED} "
                               f"only, but --batch-size is 16"), lines
    assert _covering_command(lines[0])[-2:] == ["--batch-size", "16"], lines
    assert "(scores differ by 1e-7 to 3e-6 between batch sizes" in lines[0], lines  # as calibrate measured them
    capsys.readouterr()  # 10 images with --batch-size 16: "--batch-size is 10" contradicted the 16 typed
    assert main(["predict", str(exported_model), *images[:10], "--calibration", str(calibrated),
                 "--batch-size", "16"]) == 0
    (line,) = [ln for ln in capsys.readouterr().err.splitlines() if "batch size" in ln]
    assert f"up to {CHECKED} only, but its largest batch (--batch-size 16, 10 image(s)) is 10 (" in line, line
    assert _covering_command(line)[-2:] == ["--batch-size", "10"], line
    capsys.readouterr()  # fewer images than --batch-size: the largest batch is theirs
    assert main(["predict", str(exported_model), *images[:CHECKED], "--calibration", str(calibrated),
                 "--batch-size", "16"]) == 0
    assert "batch size" not in capsys.readouterr().err


def test_verify_says_when_its_batch_exceeds_the_checked_ones(exported_model, good, calibrated, tmp_path, capsys,
                                                             caplog):
    """verify --threshold-file compares decisions at the calibration's threshold, at --batch images per call."""
    fp16 = exported_model.with_name(exported_model.name.replace(".onnx", ".fp16.onnx"))
    for batch, told in ((CHECKED, 0), (16, 1)):
        caplog.clear()
        main(["verify", str(fp16), "--reference", str(exported_model), "--data", str(good), "--threshold-file",
              str(calibrated), "--batch", str(batch), "--report", str(tmp_path / f"v{batch}.json")])
        lines = _told(caplog)
        assert len(lines) == told, (batch, lines, capsys.readouterr())
    assert "but --batch is 16" in lines[0] and str(calibrated) in lines[0], lines


def test_the_covering_command_makes_the_file_as_it_was_made(exported_model, tiny_dataset, tmp_path):
    """The command in the warning is the one that made the file (its good images, rules, margin, allowances),
    with only --batch-size raised: run, it gives the same kind of thresholds, now checked up to that size."""
    from inspector.artifacts.thresholds import batch_coverage_warning, read_thresholds

    first = tmp_path / "first.yaml"
    assert main(["calibrate", str(exported_model), "--data", str(tiny_dataset), "--use-defects",
                 "--uncertain-margin", "0.1", "--allow-few-good", "--out", str(first), "--batch-size", "2"]) == 0
    made = read_thresholds(first)
    line = batch_coverage_warning(made, first, exported_model, 8, "batching.max_batch")
    argv = _covering_command(line)
    assert argv[argv.index("--data") + 1] == str(tiny_dataset) and "--use-defects" in argv, argv
    assert argv[argv.index("--uncertain-margin") + 1] == "0.1" and "--allow-few-good" in argv, argv
    again = tmp_path / "again.yaml"
    argv[argv.index("--out") + 1] = str(again)
    assert main(argv) == 0
    redone = read_thresholds(again)
    assert (redone.rule, redone.data.good.source, redone.data.batch_check.largest) == \
        (made.rule, made.data.good.source, 8)
    assert batch_coverage_warning(redone, again, exported_model, 8, "batching.max_batch") is None


def test_a_malformed_batch_check_is_one_line_naming_the_file_and_key(exported_model, good, calibrated, tmp_path,
                                                                     capsys):
    """A hand-edited data.batch_check is refused like any bad key of the file: one line, exit 2, no traceback."""
    bad = tmp_path / "bad.yaml"
    data = yaml.safe_load(calibrated.read_text())
    data["data"]["batch_check"]["batch_sizes"] = "1-4"
    bad.write_text(yaml.safe_dump(data, sort_keys=False))
    cfg = tmp_path / "inspector.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"path": str(exported_model)}, "thresholds": {"calibration": str(bad)},
                                   "cameras": [{"name": "c", "source": str(good)}],
                                   "publish": {"endpoint": f"ipc://{tmp_path / 'events.sock'}"}}))
    capsys.readouterr()
    assert main(["run", "--config", str(cfg), "--check"]) == 2
    err = capsys.readouterr().err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert f"{bad}: data.batch_check.batch_sizes: expected a list" in line and "Traceback" not in err, err


def test_the_covering_command_names_the_images_wherever_it_is_run(exported_model, tiny_dataset, tmp_path,
                                                                   monkeypatch):
    """Calibrated with a relative --data (as the README does), the file records the folder absolute: the daemon,
    run from another folder, prints a command whose --data is the same folder (it named 'data/brick' there)."""
    from inspector.artifacts.thresholds import batch_coverage_warning, read_thresholds

    monkeypatch.chdir(tiny_dataset.parent)
    out = tmp_path / "rel.yaml"
    assert main(["calibrate", str(exported_model), "--data", tiny_dataset.name, "--allow-few-good",
                 "--out", str(out), "--batch-size", "2"]) == 0
    monkeypatch.chdir(tmp_path)
    argv = _covering_command(batch_coverage_warning(read_thresholds(out), out, exported_model, 8,
                                                    "batching.max_batch"))
    assert Path(argv[argv.index("--data") + 1]) == tiny_dataset.absolute(), argv
