"""A flag given that the rest of the command line leaves unread is refused in one line naming it (exit 2), not
accepted without a word; a default written out is accepted.

The daemon config's rule (``refuse_unread``) on the command line: ``bench x.onnx --cuda-graphs`` measured ONNX
Runtime as if the flag had been taken, ``predict x.plan --threads 4`` ended in a TypeError traceback,
``calibrate x.plan --threads 4`` and ``verify x.onnx --cuda pycuda`` ran without it, ``train --config c.yaml
--resume`` trained on without reading the file, ``service install --print --unit-dir D`` printed the unit and
wrote nothing in D.
"""

from __future__ import annotations

import shutil

import pytest

from inspector.cli import main


@pytest.fixture()
def files(exported_model, tmp_path):
    """The real exported graphs, and a .plan beside them (refused before it is read: no GPU needed)."""
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"not read")
    fp16 = str(exported_model).replace(".onnx", ".fp16.onnx")
    return {"onnx": str(exported_model), "fp16": fp16, "plan": str(plan), "tmp": str(tmp_path)}


@pytest.mark.parametrize("argv, flag, backend", [
    (["bench", "{onnx}", "--duration", "0.1", "--cuda-graphs"], "--cuda-graphs", "onnxruntime"),
    (["bench", "{onnx}", "--duration", "0.1", "--device", "1"], "--device", "onnxruntime"),
    (["bench", "{onnx}", "--duration", "0.1", "--cuda", "pycuda"], "--cuda", "onnxruntime"),
    (["bench", "{plan}", "--threads", "2"], "--threads", "tensorrt"),
    (["predict", "{plan}", "{tmp}", "--threads", "2"], "--threads", "tensorrt"),
    (["calibrate", "{plan}", "--good-dir", "{tmp}", "--threads", "2", "--out", "{tmp}/c.yaml"], "--threads",
     "tensorrt"),
    (["verify", "{fp16}", "--reference", "{onnx}", "--data", "{tmp}", "--cuda", "pycuda",
      "--report", "{tmp}/v.json"], "--cuda", "onnxruntime"),
])
def test_a_backend_flag_the_backend_does_not_read_is_refused(files, argv, flag, backend, capsys):
    assert main([a.format(**files) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {flag}: does nothing with the {backend} backend") and "\n" not in err, err


def test_backend_flags_at_their_defaults_or_read_are_accepted(files, capsys):
    # a default written out (--device 0, --cuda cuda-python) is accepted; --threads is read by ONNX Runtime
    argv = ["bench", files["onnx"], "--duration", "0.1", "--warmup", "1", "--batch", "1", "--device", "0",
            "--cuda", "cuda-python", "--threads", "1"]
    assert main(argv) == 0, capsys.readouterr().err


def test_train_config_with_resume_is_refused(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train: {epochs: 5}\n")
    assert main(["train", "--config", str(cfg), "--out", str(run), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --config: does nothing with --resume") and "\n" not in err, err


def test_service_unit_dir_with_print_is_refused(tmp_path, capsys):
    from pathlib import Path

    config = Path(__file__).resolve().parents[1] / "inspector.example.yaml"
    argv = ["service", "install", "--config", str(config), "--print"]
    assert main(argv + ["--unit-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --unit-dir: does nothing with --print") and "\n" not in err, err
    assert main(argv + ["--unit-dir", "/etc/systemd/system"]) == 0  # the default written out
    assert "[Service]" in capsys.readouterr().out


def test_subscribe_client_id_on_a_zeromq_endpoint_is_refused(tmp_path, capsys):
    # an MQTT session id: a daemon's ZeroMQ endpoint keeps no events for a subscriber, whatever it is called
    argv = ["subscribe", f"ipc://{tmp_path}/x.sock", "--client-id", "line1", "--timeout", "0.2"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: ipc://{tmp_path}/x.sock: --client-id names an MQTT session") and "\n" not in err


@pytest.mark.parametrize("extra, key, why", [
    # the meta-comparer's trainer runs on the CPU in FP32, unaugmented: --device cuda trained on the CPU
    (["--model", "meta_comparer", "--data", "synth:grass", "--device", "cuda"], "train.device", "for meta_comparer"),
    (["--model", "meta_comparer", "--data", "synth:grass", "--set", "train.augment=flip"], "train.augment",
     "for meta_comparer"),
    # it splits each domain 80/20 by train.seed: a validation fraction changed nothing
    (["--model", "meta_comparer", "--data", "synth:grass", "--set", "data.val_fraction=0.3"], "data.val_fraction",
     "for meta_comparer"),
    # a forced epoch count: early stopping's settings ran N epochs without a word
    (["--epochs", "1", "--set", "train.patience=3"], "train.patience", "with train.epochs=1"),
    (["--epochs", "2", "--set", "train.max_epochs=50"], "train.max_epochs", "with train.epochs=2"),
    (["--set", "train.lr_decay=none", "--set", "train.lr_plateau=4"], "train.lr_plateau",
     "with train.lr_decay: none"),
    # a model setting its scoring never reads
    (["--set", "model.score=max", "--set", "model.score_topk=0.05"], "model.score_topk", "with score: max"),
    (["--model", "meta_comparer", "--data", "synth:grass", "--set", "model.score=topk"], "model.score",
     "for meta_comparer"),
])
def test_a_training_setting_the_chosen_model_never_reads_is_refused(tmp_path, extra, key, why, capsys):
    # refused before any data is read: the data folder need not exist
    argv = ["train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "run")] + extra
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert key in err and f"does nothing {why}" in err and "\n" not in err, err
    assert not (tmp_path / "run").exists()


def test_a_training_setting_at_the_models_own_value_is_accepted(tmp_path, capsys):
    # written out at the model and preset's own value (a default), or read: accepted, on to the data check
    for extra in (["--epochs", "1", "--set", "train.patience=10"], ["--set", "model.score_topk=0.05"],
                  ["--model", "meta_comparer", "--data", "synth:grass", "--set", "model.score=max",
                   "--device", "auto"]):
        assert main(["train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "run")] + extra) == 2
        err = capsys.readouterr().err
        assert "does nothing" not in err and "dataset folder not found" in err, err


def test_a_setting_given_with_resume_the_run_never_reads_is_refused(trained_run, tmp_path, capsys):
    # the fixture's run trained a forced epoch count: a patience given now would change nothing
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    assert main(["train", "--out", str(run), "--resume", "--set", "train.patience=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "train.patience: does nothing with train.epochs=" in err and "\n" not in err, err
