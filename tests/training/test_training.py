import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from inspector.models.base import OFFLINE_TEACHER
from inspector.cli import main
from inspector.training.checkpoint import load_model


def test_run_folder_holds_config_history_and_loadable_best(trained_run):
    assert (trained_run / "config.yaml").is_file()
    config = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert config["model"]["name"] == "reduced_student" and config["train"]["epochs"] == 2
    # a config file's paths are relative to its folder: the saved one points back at the dataset
    assert (trained_run / config["data"]["path"]).resolve() == Path(load_model(trained_run)[1].data.path).resolve()
    history = json.loads((trained_run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(h["val_loss"] > 0 for h in history)
    model, run_cfg, payload = load_model(trained_run)
    assert payload["val_loss"] == min(h["val_loss"] for h in history)
    assert not model.training and run_cfg.model.image_size == (64, 64)
    assert model.describe()["teachers"][0]["weights"].startswith(f"package:{OFFLINE_TEACHER.replace('_', '-')}")
    with torch.no_grad():
        score, amap = model(torch.zeros(1, 64, 64, 3, dtype=torch.uint8))
    assert amap.shape == (1, 1, 64, 64)


def test_split_is_seeded_and_recorded(trained_run):
    summary = json.loads((trained_run / "summary.json").read_text())
    data = summary["data"]
    assert data["n_train"] + data["n_val"] == 12 and data["n_val"] >= 2
    assert data["val_files"] and len(data["val_sha256"]) == len(data["val_files"])  # calibrate: by content


def test_evaluate_writes_metrics_and_plots(trained_run, tiny_dataset, capsys):
    out = trained_run / "eval_test"
    assert main(["evaluate", str(trained_run), "--data", str(tiny_dataset), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("image_auroc", "pixel_auroc", "aupro", "f1_max", "per_defect_type"):
        assert key in metrics
    assert 0.0 <= metrics["image_auroc"] <= 1.0 and metrics["n_images"] == 10
    assert (out / "roc.png").stat().st_size > 1000
    assert (out / "score_histogram.png").stat().st_size > 1000
    assert "img AUROC" in capsys.readouterr().out
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "AUROC" in html


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "missing" in err
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
                 "--set", "train.epoch=3"]) == 2
    assert "did you mean 'train.epochs'" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nowhere")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_a_batch_size_that_trains_nothing_is_refused(tiny_dataset, tmp_path, capsys):
    """Single-image training batches are skipped (they break BatchNorm statistics), so ``train.batch_size: 1``
    took no step at all: 'train 0.0000', exit 0 and an untrained best.pt. It is out of range now, in one line."""
    out = tmp_path / "r"
    assert main(["train", "--data", str(tiny_dataset), "--out", str(out), "--epochs", "1",
                 "--set", "model.image_size=[64,64]", "--set", "train.batch_size=1"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert err == ["error: --set train.batch_size: 1 is out of range [2, 65536]"] and not (out / "best.pt").exists()


def _train_then_signal(dataset, out, signum) -> tuple[int, str]:
    """Start a long training, send ``signum`` once the first checkpoint exists; (exit status, output)."""
    cmd = [sys.executable, "-m", "inspector", "train", "--data", str(dataset), "--out", str(out),
           "--epochs", "200", "--set", "model.image_size=[64,64]", "--set", "train.batch_size=4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 120
    while not (out / "best.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (out / "best.pt").exists(), "no checkpoint written"
    proc.send_signal(signum)
    output, _ = proc.communicate(timeout=60)
    return proc.returncode, output.decode()


def test_sigterm_stops_training_like_ctrl_c(tiny_dataset, tmp_path):
    """kill / docker stop / systemd send SIGTERM: same saved state as Ctrl-C, exit 128 + 15."""
    out = tmp_path / "run"
    code, output = _train_then_signal(tiny_dataset, out, signal.SIGTERM)
    assert code == 143, output
    assert "stopped: interrupted" in output and "stopped by SIGTERM" in output and "Traceback" not in output
    assert json.loads((out / "history.json").read_text())
    _, _, payload = load_model(out)
    assert payload["epoch"] >= 1


def test_ctrl_c_leaves_a_usable_checkpoint(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    code, output = _train_then_signal(tiny_dataset, out, signal.SIGINT)
    assert code == 130, output
    assert "interrupted" in output and "stopped by SIGINT" in output
    model, _, payload = load_model(out)
    assert payload["epoch"] >= 1
    # the best weights were finished as at a normal end: the map normalisation is fitted (not the identity)
    assert payload["completed_phases"] == payload["phases"] == ["student"]
    assert not torch.equal(model.level_norm.scale, torch.ones_like(model.level_norm.scale))
    # --resume continues after the last recorded epoch, with CLI overrides applied
    done = max(h["epoch"] for h in json.loads((out / "history.json").read_text()))
    assert main(["train", "--out", str(out), "--resume", "--epochs", str(done + 1)]) == 0
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history][-1] == done + 1


def test_corrupt_images_never_empty_the_validation_split(tmp_path):
    """The images the seeded split would put in validation are corrupt: the readable rest is split instead."""
    import cv2
    import numpy as np

    from inspector.data.datasets import load_dataset, split_train_val
    from inspector.training.config import load_run_config
    from inspector.training.loop import load_training_images

    good = tmp_path / "part" / "train" / "good"
    good.mkdir(parents=True)
    for i in range(10):
        assert cv2.imwrite(str(good / f"{i:03d}.png"), np.full((32, 32), 10 * i, np.uint8))
    _, val = split_train_val(load_dataset(tmp_path / "part").train)  # the split with every image readable
    for sample in val:
        sample.path.write_bytes(b"not a png")
    config = load_run_config(base={"model": {"name": "reduced_student", "image_size": [32, 32]},
                                   "data": {"path": str(tmp_path / "part")}})
    train_imgs, val_imgs, summary = load_training_images(config)
    assert len(train_imgs) + len(val_imgs) == 8 and len(val_imgs) >= 1
    assert sorted(summary["skipped"]) == sorted(str(s.path) for s in val)
    assert not set(summary["val_files"]) & {s.path.name for s in val}


def test_a_train_folder_without_a_good_folder_beside_a_test_set_is_one_line_saying_what_to_do(tmp_path, capsys):
    """train/normal beside test/: it said that a tree of test/ alone cannot be trained on, and warned apart."""
    import cv2
    import numpy as np

    for folder in ("train/normal", "test/good", "test/crack"):
        (tmp_path / "part" / folder).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(tmp_path / "part" / folder / f"{i}.png"), np.full((32, 32), 40 * i, np.uint8))
    code = main(["train", "--data", str(tmp_path / "part"), "--out", str(tmp_path / "run"), "--epochs", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"error: {tmp_path / 'part'}: no good training images ({tmp_path / 'part' / 'train'} "
                                 f"has no good (or ok) folder, and its sub-folder(s) normal hold images: name the "
                                 f"folder of good parts train/good)"], err


def test_the_summary_counts_the_good_images_left_out_as_unreadable(tmp_path, capsys):
    """Their warning scrolled away above the progress bars: the closing count line names them too."""
    import cv2
    import numpy as np

    good = tmp_path / "part" / "train" / "good"
    good.mkdir(parents=True)
    for i in range(6):
        assert cv2.imwrite(str(good / f"{i:03d}.png"), np.full((32, 32), 30 * i, np.uint8))
    (good / "cut.png").write_bytes((good / "000.png").read_bytes()[:40])
    (good / "empty.png").write_bytes(b"")
    code = main(["train", "--data", str(tmp_path / "part"), "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--set", "model.image_size=[32,32]"])
    assert code == 0
    assert "good images: 5 trained on, 1 validated on, 2 left out as unreadable (e.g. cut.png)\n" in \
        capsys.readouterr().out


@pytest.mark.parametrize("size", [[], ["--set", "model.image_size=[64,64]"]])
def test_a_tree_without_train_is_refused_in_the_same_line_with_or_without_a_size(tmp_path, capsys, size):
    """test/ alone (no train/good): one line saying so, whether the input size comes from the data or is given."""
    import cv2
    import numpy as np

    for folder in ("good", "crack"):
        for i in range(3):
            (tmp_path / "part" / "test" / folder).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(tmp_path / "part" / "test" / folder / f"{i}.png"), np.full((64, 64), 9 * i, np.uint8))
    code = main(["train", "--data", str(tmp_path / "part"), "--out", str(tmp_path / "run"), "--epochs", "1", *size])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"error: {tmp_path / 'part'}: no good training images (train/good; a tree of test/ "
                                 f"alone can be evaluated, not trained on)"]
    assert not (tmp_path / "run").exists()


def test_copies_of_a_good_image_are_never_split_between_train_and_validation(tmp_path, caplog):
    """Byte-identical copies (a file saved twice, a link to it) are put with their original, told in one warning:
    one was validated on while its copies were trained on (a lower validation loss, a normalisation fitted on a
    seen image). Several groups and sizes: no content is on both sides of any split."""
    import logging

    import cv2
    import numpy as np

    from inspector.training.config import load_run_config
    from inspector.training.loop import load_training_images

    good = tmp_path / "part" / "train" / "good"
    good.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(12):
        cv2.imwrite(str(good / f"{i:02d}.png"), rng.integers(0, 255, (32, 32), np.uint8))
    for i in range(6):  # copies of 00 and 05, and a link to 07
        (good / f"copy{i}.png").write_bytes((good / f"{0 if i < 4 else 5:02d}.png").read_bytes())
    (good / "link.png").symlink_to(good / "07.png")
    for val_fraction in (0.2, 0.5):
        config = load_run_config(base={"model": {"image_size": [32, 32]}, "data": {"path": str(tmp_path / "part"),
                                                                                  "val_fraction": val_fraction}})
        with caplog.at_level(logging.WARNING):
            *_, summary = load_training_images(config)
        assert not set(summary["train_sha256"]) & set(summary["val_sha256"]), val_fraction
        assert summary["n_train"] + summary["n_val"] == 19 and summary["n_val"] >= 1
    assert any("byte-identical copies of others" in r.getMessage() for r in caplog.records)


def test_a_validation_part_of_copies_only_is_one_line(tmp_path, capsys):
    """Every good image the same file: nothing unlike the training images is left to validate on."""
    import cv2
    import numpy as np

    good = tmp_path / "part" / "train" / "good"
    good.mkdir(parents=True)
    cv2.imwrite(str(good / "0.png"), np.full((32, 32), 90, np.uint8))
    for i in range(1, 5):
        (good / f"{i}.png").write_bytes((good / "0.png").read_bytes())
    code = main(["train", "--data", str(tmp_path / "part"), "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--set", "model.image_size=[32,32]"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "every validation image is a byte-identical copy" in err[0], err


def test_an_incomplete_run_is_refused_in_one_line(tiny_dataset, tmp_path, capsys):
    """A run whose phase never finished (interrupted before its first validation, or before the last of
    several phases) has untrained weights: evaluate and export refuse it instead of scoring with them."""
    from inspector.artifacts.checkpoint import read_checkpoint, update_checkpoint

    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_dataset), "--out", str(out), "--epochs", "1",
                 "--set", "model.image_size=[64,64]", "--set", "train.batch_size=4"]) == 0
    update_checkpoint(out / "best.pt", read_checkpoint(out / "best.pt"), completed_phases=[])
    capsys.readouterr()
    for command in (["evaluate", str(out)], ["export", str(out), "--out", str(tmp_path / "m.onnx")]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert "the run is incomplete, its phase(s) student never finished" in err and "--resume" in err
        assert "\n" not in err


def _copy_run(trained_run: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(trained_run, dest)
    return dest


def test_resume_with_another_model_config_is_one_line(trained_run, tmp_path, capsys):
    """--resume of a run with a wider student or another input size: a size-mismatch traceback before."""
    run = _copy_run(trained_run, tmp_path / "rs")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    for setting, expected in [("model.student_width=2.0", "model.student_width (the run has 1.0, asked 2.0)"),
                              ("model.image_size=[96,96]", "model.image_size (the run has [64, 64], asked [96, 96])")]:
        assert main(["train", "--out", str(run), "--resume", "--epochs", "3", "--set", setting]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--resume cannot change {expected}" in err, err
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3", "--model", "stfpm"]) == 2
    assert "cannot change model.name (the run has 'reduced_student', asked 'stfpm')" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # the run is left as it was


def test_resume_of_a_checkpoint_whose_weights_do_not_fit_its_config_is_one_line(trained_run, tmp_path, capsys):
    run = _copy_run(trained_run, tmp_path / "rs")
    payload = torch.load(run / "best.pt", weights_only=True)
    payload["config"]["model"]["student_width"] = 2.0  # e.g. a config edited by hand after training
    torch.save(payload, run / "best.pt")
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3"]) == 2
    err = capsys.readouterr().err  # the run's config.yaml still says what it trained
    assert err.count("\n") == 1 and err.startswith(f"error: {run / 'best.pt'}: not the checkpoint of this run: "
                                                   f"its model.student_width is 2.0, the run's config.yaml has 1.0"), err
    (run / "config.yaml").unlink()  # a run from before config.yaml: the weights themselves do not fit
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {run / 'best.pt'}: weights do not fit model"), err


def test_a_new_run_never_overwrites_files_in_out(tmp_path, capsys):
    """--out the folder of the user's own config.yaml: the run replaced it with its resolved config."""
    mine = "# line 3 settings\nmodel: {image_size: [64, 64]}\ntrain: {epochs: 1}\n"
    (tmp_path / "config.yaml").write_text(mine)
    (tmp_path / "summary.json").write_text("{}")
    assert main(["train", "--config", str(tmp_path / "config.yaml"), "--data", str(tmp_path / "missing"),
                 "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path}: holds config.yaml, summary.json, which a new run would "
                                       f"overwrite, and no best.pt to resume; choose another --out or move them\n")
    assert (tmp_path / "config.yaml").read_text() == mine and (tmp_path / "summary.json").read_text() == "{}"


@pytest.mark.parametrize("history, expected", [
    ("garbage", "unreadable epoch history (JSONDecodeError)"),
    ('{"epochs": []}', "epoch history is a dict, not a list of epochs"),
    ('[1, 2]', "epoch history row 0 needs a phase name, an epoch ≥ 1 and a val_loss"),
    ('[{"phase": "student", "epoch": "2", "val_loss": 1.0}]', "epoch history row 0 needs a phase name"),
])
def test_resume_with_a_damaged_history_is_one_line(trained_run, tmp_path, capsys, history, expected):
    """history.json is replayed on --resume: damaged, it was a JSONDecodeError / AttributeError traceback."""
    run = _copy_run(trained_run, tmp_path / "rs")
    (run / "history.json").write_text(history)
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {run / 'history.json'}: {expected}"), err


@pytest.mark.parametrize("kind, expected", [
    ("folder", "unreadable epoch history (Is a directory)"),
    ("loop", "unreadable epoch history (Too many levels of symbolic links)"),
    ("dangling", "unreadable epoch history (No such file or directory)"),
    ("fifo", "unreadable epoch history (not a regular file)"),
])
def test_resume_with_a_history_that_is_no_file_is_one_line(trained_run, tmp_path, capsys, kind, expected):
    """A history.json that is there but no readable file (a folder, a link to itself or to nothing, a FIFO) was
    taken for no history: --resume extended the finished run from epoch 0, trained it whole and failed only as
    it wrote its history ("Is a directory"), or waited for ever on the FIFO. It is refused before training."""
    import os

    run = _copy_run(trained_run, tmp_path / "rs")
    history = run / "history.json"
    history.unlink()
    {"folder": history.mkdir, "loop": lambda: history.symlink_to(history),
     "dangling": lambda: history.symlink_to(tmp_path / "gone.json"), "fifo": lambda: os.mkfifo(history)}[kind]()
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {history}: {expected}; --resume replays it\n", err


@pytest.mark.parametrize("n_images, val_fraction, trains", [(2, 0.2, False), (3, 0.2, True), (4, 0.99, True)])
def test_every_split_leaves_two_images_to_train_on(n_images, val_fraction, trains, tmp_path, capsys):
    """A training batch needs 2 images (BatchNorm). 2 good images at the default split, or ``data.val_fraction:
    0.99`` of 4, left 1 to train on: every batch was that one and training ended in torch's traceback
    "Expected more than 1 value per channel when training". Now the split keeps 2 to train on, and a
    folder too small for 2 + 1 validation image is refused in one line."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    good = tmp_path / "good"
    good.mkdir()
    for i in range(n_images):
        assert cv2.imwrite(str(good / f"{i}.png"), rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    out = tmp_path / "run"  # beside the images: a run inside an input image folder is refused
    rc = main(["train", "--data", str(good), "--out", str(out), "--epochs", "1", "--set",
               "model.image_size=[32,32]", "--set", "train.batch_size=2", "--set", f"data.val_fraction={val_fraction}"])
    printed, err = capsys.readouterr()
    if trains:
        summary = json.loads((out / "summary.json").read_text())
        assert rc == 0 and summary["data"]["n_train"] == 2 and summary["data"]["n_val"] == n_images - 2
        # too few for a calibration share (data.calibration_fraction): it validates, and the run says so
        assert f"good images: 2 trained on, {n_images - 2} validated on\n" in printed, printed
        assert printed.count("few to validate on") == 1 and f"rest on {n_images - 2} image(s)" in printed, printed
    else:
        assert rc == 2 and "Traceback" not in err
        assert err.splitlines()[-1] == (f"error: {good}: need at least 3 good training images (2 to train on, "
                                        f"1 to validate), found 2")


def test_a_calibration_part_that_cannot_be_made_is_refused_before_training(tmp_path, capsys):
    """``data.calibration_fraction=0.2`` of 40 good images is 8, under the 10 a calibration part needs: training
    dropped the part silently, and only ``inspector calibrate`` said anything (advising to set the fraction the
    run had set). The run is refused before its first epoch, in one line with the numbers and a fraction that
    works; that fraction then trains and keeps its part. A run that asks for no part is untouched (above)."""
    data = tmp_path / "brick"
    assert main(["data", "synth", "--out", str(data), "--size", "32", "--train", "40", "--test-good", "1",
                 "--test-defect", "1"]) == 0
    quick = ["--epochs", "1", "--set", "model.image_size=[32,32]", "--set", "train.batch_size=8"]
    capsys.readouterr()
    rc = main(["train", "--data", str(data), "--out", str(tmp_path / "run"), *quick,
               "--set", "data.calibration_fraction=0.2"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and not (tmp_path / "run" / "best.pt").exists(), err
    assert err.splitlines()[-1] == (
        f"error: {data}: data.calibration_fraction=0.2 of 40 good images gives 8 calibration image(s), under the "
        f"10 a calibration part needs: use data.calibration_fraction=0.25 or more, or set "
        f"data.calibration_fraction=0 and calibrate with --good-dir"), err
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run25"), *quick,
                 "--set", "data.calibration_fraction=0.25"]) == 0
    assert json.loads((tmp_path / "run25" / "summary.json").read_text())["data"]["n_calibration"] == 10


def test_resume_from_another_directory_finds_the_data(tiny_dataset, tmp_path, monkeypatch, capsys):
    """A run trained with a relative --data (``--data brick`` in the project folder) resumed from elsewhere:
    the checkpoint's copy of the path is relative to where training began, so the resume looked for ./brick
    ("brick: dataset folder not found") while evaluate found the data through the run's config.yaml. The
    resume reads the path the same way (relative to the run folder: the file rule)."""
    import shutil

    project = tmp_path / "project"
    shutil.copytree(tiny_dataset, project / "brick")
    monkeypatch.chdir(project)
    assert main(["train", "--data", "brick", "--out", "runs/rs", "--epochs", "1", "--set",
                 "model.image_size=[32,32]", "--set", "train.batch_size=4"]) == 0
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["train", "--out", "project/runs/rs", "--resume", "--epochs", "2"]) == 0, capsys.readouterr().err
    history = json.loads((project / "runs" / "rs" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    monkeypatch.chdir(project / "runs")  # and again from a third place, after the resume rewrote the run
    assert main(["train", "--out", "rs", "--resume", "--epochs", "3"]) == 0, capsys.readouterr().err


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspector", *args], capture_output=True, text=True, timeout=120)


def test_a_second_trainer_on_a_busy_run_folder_is_refused_in_one_line(tiny_dataset, tmp_path):
    """While `train --out X` runs, `train --out X --resume` must not start a second trainer there (it rewrote
    config.yaml and best.pt mid-run): one line naming the folder and the holder's pid, exit 2."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "inspector", "train", "--data", str(tiny_dataset), "--out", str(out),
           "--epochs", "200", "--set", "model.image_size=[64,64]", "--set", "train.batch_size=4"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not (out / "best.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        config = (out / "config.yaml").read_bytes()
        second = _cli("train", "--out", str(out), "--resume", "--epochs", "300")
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and str(out) in lines[0] and f"pid {first.pid}" in lines[0], second.stderr
        assert (out / "config.yaml").read_bytes() == config
    finally:
        first.send_signal(signal.SIGINT)
        output = first.communicate(timeout=60)[0].decode()
    assert first.returncode == 130, output


def test_ctrl_c_says_how_to_resume_and_resume_says_what_it_does(tiny_dataset, tmp_path):
    """Ctrl-C ends with the command to type; that command says it resumes the interrupted phase (not
    'extending finished phase') and that it goes on with the optimiser state of the last epoch (resume.pt)."""
    out = tmp_path / "run"
    code, output = _train_then_signal(tiny_dataset, out, signal.SIGINT)
    assert code == 130, output
    assert output.strip().splitlines()[-1].endswith(f"to continue: inspector train --out {out} --resume")
    done = max(h["epoch"] for h in json.loads((out / "history.json").read_text()))
    resumed = _cli("train", "--out", str(out), "--resume", "--epochs", str(done + 1))
    assert resumed.returncode == 0, resumed.stderr
    log = resumed.stdout + resumed.stderr
    assert f"resuming interrupted phase: student at epoch {done + 1}" in log, log
    assert f"with the optimiser, schedule and random streams of epoch {done}" in log and "extending" not in log
    extended = _cli("train", "--out", str(out), "--resume", "--epochs", str(done + 2))
    assert extended.returncode == 0, extended.stderr
    assert "extending a finished run" in extended.stdout + extended.stderr


def test_ctrl_c_while_the_meta_comparer_loads_its_domains_is_one_line_and_leaves_nothing(tmp_path):
    """SIGINT while the meta-comparer extracts its source domains' features (before any checkpoint): it printed
    a bare 'interrupted' and left an empty run folder. Now exit 130, one line saying where it stopped and that
    nothing was saved, no traceback, no run folder; the same --out then trains normally."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "inspector", "-v", "train", "--model", "meta_comparer", "--data", "synth:brick",
           "--data", "synth:grass", "--out", str(run), "--epochs", "1", "--set", "model.image_size=[64,64]",
           "--set", "model.domain_defects=5", "--set", "model.steps_per_epoch=2", "--set", "train.batch_size=2"]
    # 1000 normals: the second domain's features take seconds, and the signal is sent once the first is done
    proc = subprocess.Popen([*cmd, "--set", "model.domain_normals=1000"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, text=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "domain synth:brick:" in line:  # the first domain's features are in: the second is loading
                proc.send_signal(signal.SIGINT)
                break
    finally:
        rest = proc.communicate(timeout=120)[0]
    said = [line for line in rest.splitlines() if " DEBUG " not in line and " INFO " not in line]
    assert proc.returncode == 130, "".join(lines) + rest
    # the signal may land while the first domain's line is still being logged: either domain is named
    assert len(said) == 1 and re.fullmatch(r"training stopped by SIGINT while loading the features of domain "
                                           r"synth:(brick \(1|grass \(2)/2\), before its first checkpoint; "
                                           r"nothing saved; start it again", said[0]), rest
    assert "Traceback" not in rest and not run.exists()
    assert subprocess.run([*cmd, "--set", "model.domain_normals=10"], capture_output=True, timeout=300).returncode == 0
    assert (run / "best.pt").is_file()


def test_a_finished_meta_comparer_run_is_not_resumed_and_is_left_as_it_was(tmp_path):
    """``--resume`` without ``--model`` on a meta-comparer run read the run's model from its checkpoint and
    handed it to the student-teacher loop: an AttributeError traceback. Now one line naming the run, exit 2,
    and the run's files unchanged."""
    run = tmp_path / "run"
    assert _cli("train", "--model", "meta_comparer", "--data", "synth:brick", "--data", "synth:grass", "--out",
                str(run), "--epochs", "1", "--set", "model.image_size=[64,64]", "--set", "model.domain_defects=5",
                "--set", "model.steps_per_epoch=2", "--set", "train.batch_size=2",
                "--set", "model.domain_normals=10").returncode == 0
    before = {f.name: f.read_bytes() for f in run.iterdir() if f.is_file()}
    for extra in ([], ["--epochs", "3"], ["--model", "meta_comparer"]):
        resumed = _cli("train", "--out", str(run), "--resume", *extra)
        err = resumed.stderr.strip()
        assert resumed.returncode == 2 and "Traceback" not in err and "\n" not in err, err
        assert err.startswith("error: ") and "not supported for meta_comparer" in err, err
    assert {f.name: f.read_bytes() for f in run.iterdir() if f.is_file()} == before


def test_resume_continues_the_run_an_uninterrupted_training_makes(tiny_dataset, tmp_path, caplog):
    """2 epochs then --resume to 4 trained another model than 4 epochs straight: Adam's moments restarted from
    zero, the batches were reshuffled from a new seed and the weights were the best epoch's. Now resume.pt keeps
    the state after every epoch and the resumed epochs are the uninterrupted run's: the same losses, the same
    optimiser state. A run without resume.pt (from before it existed) resumes with one line saying so."""
    args = ["--data", str(tiny_dataset), "--set", "model.image_size=[64,64]", "--set", "train.batch_size=4"]
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    assert main(["train", "--out", str(straight), "--epochs", "4", *args]) == 0
    assert main(["train", "--out", str(halves), "--epochs", "2", *args]) == 0
    assert main(["train", "--out", str(halves), "--resume", "--epochs", "4"]) == 0
    rows = [json.loads((run / "history.json").read_text()) for run in (straight, halves)]
    assert [r["epoch"] for r in rows[1]] == [1, 2, 3, 4]
    for one, two in zip(*rows):
        assert (one["train_loss"], one["val_loss"], one["lr"]) == (two["train_loss"], two["val_loss"], two["lr"])
    points = [torch.load(run / "resume.pt", weights_only=True) for run in (straight, halves)]
    assert points[0]["epoch"] == points[1]["epoch"] == 4
    for state, again in zip(points[0]["optimizer"]["state"].values(), points[1]["optimizer"]["state"].values()):
        assert torch.equal(state["exp_avg"], again["exp_avg"]) and torch.equal(state["exp_avg_sq"], again["exp_avg_sq"])
        assert float(state["step"]) == float(again["step"]) > 0
    (halves / "resume.pt").unlink()  # an older run: best.pt only
    caplog.clear()
    assert main(["train", "--out", str(halves), "--resume", "--epochs", "5"]) == 0
    said = [r.getMessage() for r in caplog.records if "no optimiser state" in r.getMessage()]
    assert len(said) == 1 and "moments afresh" in said[0] and "\n" not in said[0]


def test_a_resume_point_from_another_run_is_not_loaded_half_way(tiny_dataset, tmp_path, caplog):
    """resume.pt copied in from a run of another model (or size, or teacher): load_state_dict copied the weights
    that matched, then raised a RuntimeError traceback. Now it is checked before anything is loaded: one line
    says the optimiser starts afresh, and the run resumes from its own best checkpoint."""
    args = ["--data", str(tiny_dataset), "--set", "model.image_size=[64,64]", "--set", "train.batch_size=4",
            "--epochs", "2"]
    own, other = tmp_path / "own", tmp_path / "other"
    assert main(["train", "--out", str(own), *args]) == 0
    assert main(["train", "--out", str(other), "--model", "stfpm", *args]) == 0
    (own / "resume.pt").write_bytes((other / "resume.pt").read_bytes())
    caplog.clear()
    assert main(["train", "--out", str(own), "--resume", "--epochs", "3"]) == 0
    said = [r.getMessage() for r in caplog.records if "no optimiser state" in r.getMessage()]
    assert len(said) == 1 and "of model 'stfpm'" in said[0] and "\n" not in said[0]
    assert [h["epoch"] for h in json.loads((own / "history.json").read_text())] == [1, 2, 3]
    assert torch.load(own / "resume.pt", weights_only=True)["epoch"] == 3  # its own point again


def test_a_training_stopped_before_its_first_checkpoint_can_be_started_again_as_it_says(tiny_dataset, tmp_path):
    """SIGTERM after the run wrote its config.yaml but before its first checkpoint: the line says "nothing saved;
    start it again", but the config.yaml left behind made the same command a refusal ("holds config.yaml, which a
    new run would overwrite"). Now what it wrote goes with it, and the same command trains."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "inspector", "train", "--data", str(tiny_dataset), "--out", str(run),
           "--epochs", "1", "--set", "model.image_size=[128,128]"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (run / "config.yaml").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    if (run / "best.pt").exists():
        pytest.skip("the first epoch ended before the signal (a fast machine)")
    assert proc.returncode == 143 and out.strip().endswith("nothing saved; start it again"), out
    assert not run.exists(), sorted(p.name for p in run.iterdir())
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and (run / "best.pt").is_file(), again.stderr


def test_a_phase_stopped_before_its_first_epoch_says_so_not_best_epoch_0_val_loss_inf(tmp_path, capsys):
    """Stopped (SIGTERM, Ctrl-C) before any epoch was validated, the summary's phase has best_epoch 0 and
    best_val_loss inf; the end of `train` printed 'best epoch 0 val loss inf' as if that were a result."""
    from inspector.commands.train import _print_summary

    phase = {"name": "student", "epochs_run": 0, "seconds": 3.2, "best_epoch": 0, "best_val_loss": float("inf"),
             "stop_reason": "interrupted"}
    _print_summary({"phases": [phase]}, tmp_path / "run")
    out = capsys.readouterr().out
    assert "student: no epoch finished in 3.2 s" in out and "inf" not in out and "best epoch" not in out, out
    _print_summary({"phases": [{**phase, "epochs_run": 2, "best_epoch": 2, "best_val_loss": 0.5}]}, tmp_path / "run")
    assert "student: 2 epochs in 3.2 s, best epoch 2 val loss 0.50000" in capsys.readouterr().out


def test_a_run_with_enough_validation_images_says_nothing_of_few(tmp_path, capsys):
    """The 'few to validate on' line (test above: 1 or 2 validation images) is for runs whose early stop and map
    normalisation rest on fewer than MIN_DEPENDABLE_VALIDATION images: 12 good images at val_fraction 0.9 leave
    10 to validate on, and no such line."""
    import cv2
    import numpy as np

    from inspector.data.datasets import MIN_DEPENDABLE_VALIDATION

    rng = np.random.default_rng(0)
    good = tmp_path / "good"
    good.mkdir()
    for i in range(MIN_DEPENDABLE_VALIDATION + 2):
        assert cv2.imwrite(str(good / f"{i}.png"), rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    rc = main(["train", "--data", str(good), "--out", str(tmp_path / "run"), "--epochs", "1", "--set",
               "model.image_size=[32,32]", "--set", "train.batch_size=2", "--set", "data.val_fraction=0.9"])
    printed = capsys.readouterr().out
    assert rc == 0 and f"2 trained on, {MIN_DEPENDABLE_VALIDATION} validated on" in printed, printed
    assert "few to validate on" not in printed, printed
