"""When training stops and why: the stop rule, each reason on a real tiny model, --resume extension."""

import dataclasses
import json

import pytest

from inspector.cli import main
from inspector.models.registry import build_model, model_names
from inspector.training.config import TrainConfig, load_run_config
from inspector.training.loop import default_phases, fit, load_training_images
from inspector.training.stopping import StopRule


def _rule(losses, **train) -> StopRule:
    rule = StopRule(TrainConfig(**train))
    for epoch, loss in enumerate(losses, 1):
        rule.observe(epoch, loss)
    return rule


def test_patience_counts_epochs_without_relative_improvement():
    rule = _rule([1.0, 0.9, 0.895, 0.894], patience=2, min_delta=0.01)
    assert rule.best_epoch == 2  # 0.895 is < 1 % below 0.9: not an improvement
    assert rule.reason_before(5, 0.0) == "converged"
    assert _rule([1.0, 0.9, 0.895], patience=2, min_delta=0.01).reason_before(4, 0.0) is None
    # relative to |best|, so a negative loss (a flow's NLL) improves when it gets more negative
    assert _rule([-1.0, -1.005], min_delta=0.01).best_epoch == 1
    assert _rule([-1.0, -1.02], min_delta=0.01).best_epoch == 2


def test_caps_and_forced_epochs():
    assert _rule([3, 2, 1], max_epochs=3).reason_before(4, 0.0) == "epoch_cap"
    forced = _rule([1, 1, 1, 1], epochs=4, patience=1)  # --epochs N: no early stop
    assert forced.reason_before(4, 0.0) is None and forced.reason_before(5, 0.0) == "epochs"
    assert _rule([1.0], time_budget_s=10).reason_before(2, 10.0) == "time_cap"
    assert _rule([1.0], time_budget_s=10).reason_before(2, 9.9) is None
    # each invocation runs at least one epoch, even when setting up took the whole budget
    assert _rule([1.0], time_budget_s=10).reason_before(2, 11.0, first=True) is None


def test_replay_gives_the_same_state_as_a_live_run():
    history = [{"epoch": e, "val_loss": v} for e, v in zip((3, 1, 2, 4), (0.8, 1.0, 0.9, 0.8))]
    replayed = StopRule(TrainConfig(patience=1))
    replayed.replay(history)
    live = _rule([1.0, 0.9, 0.8, 0.8], patience=1)
    assert (replayed.best_epoch, replayed.last_epoch) == (live.best_epoch, live.last_epoch) == (3, 4)


@pytest.fixture(scope="module")
def tiny_fit(tiny_dataset):
    """Run one real training phase of a 64×64 reduced student with the given train settings."""
    # lr ~0: the validation loss barely moves, so when each rule fires is known in advance.
    config = load_run_config(base={"model": {"name": "reduced_student", "image_size": [64, 64]},
                                   "data": {"path": str(tiny_dataset)},
                                   "train": {"batch_size": 4, "lr": 1e-9}})
    train_imgs, val_imgs, _ = load_training_images(config)
    model = build_model(config.model)

    def run(on_best=lambda epoch, val: None, **train):
        phase = default_phases(model, dataclasses.replace(config.train, **train))[0]
        return fit(model, phase, train_imgs, val_imgs, on_best)
    return run


@pytest.mark.parametrize("train, reason, epochs", [
    ({"patience": 2, "min_delta": 0.5}, "converged", 3),
    ({"patience": 50, "max_epochs": 2}, "epoch_cap", 2),
    ({"epochs": 3, "patience": 1, "min_delta": 0.5}, "epochs", 3),
    ({"time_budget_s": 1e-3}, "time_cap", 1),
])
def test_each_stop_reason_on_a_real_model(tiny_fit, train, reason, epochs):
    result = tiny_fit(**train)
    assert (result.stop_reason, result.epochs_run, len(result.history)) == (reason, epochs, epochs)
    assert result.stop_detail.startswith(reason.split("_")[0]) or reason == "epochs"
    assert not result.interrupted


def test_interrupt_is_a_stop_reason(tiny_fit):
    def ctrl_c(epoch, val):
        raise KeyboardInterrupt  # where SIGINT lands in a real run: anywhere in the epoch loop
    result = tiny_fit(on_best=ctrl_c, epochs=5)
    assert result.interrupted and result.stop_reason == "interrupted"
    assert result.epochs_run == len(result.history) == 1 and result.stop_detail == "interrupted after epoch 1"


def test_offline_presets_stop_early_and_paper_presets_keep_their_epochs():
    for name in model_names():
        assert load_run_config(base={"model": {"name": name}}).train.epochs is None, name
        assert load_run_config(base={"model": {"name": name, "preset": "paper"}}).train.epochs >= 100, name


@pytest.mark.parametrize("setting, words", [("train.patience=0", "train.patience: 0 is out of range [1, 10000]"),
                                            ("train.min_delta=2", "train.min_delta: 2.0 is out of range"),
                                            ("train.max_epochs=-1", "train.max_epochs: -1 is out of range")])
def test_stop_settings_have_ranges(tmp_path, capsys, setting, words):
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--set", setting]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err


def test_summary_says_why_and_resume_extends_a_finished_run(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--set", "model.image_size=[64,64]", "--set", "train.batch_size=4", "--set", "train.patience=50"]
    assert main(["train", "--data", str(tiny_dataset), "--out", str(out), "--set", "train.max_epochs=2", *common]) == 0
    assert "stopped: epoch cap: reached train.max_epochs=2" in capsys.readouterr().out
    phase = json.loads((out / "summary.json").read_text())["phases"][0]
    assert (phase["stop_reason"], phase["epochs_run"]) == ("epoch_cap", 2)
    # nothing left to do with the same settings: one line, exit 2
    assert main(["train", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "already finished" in err and "--epochs N with N > 2" in err and "\n" not in err
    # a larger cap continues early stopping where it was; --epochs then forces a total count
    assert main(["train", "--out", str(out), "--resume", "--set", "train.max_epochs=3"]) == 0
    phase = json.loads((out / "summary.json").read_text())["phases"][0]
    assert (phase["stop_reason"], phase["epochs_run"]) == ("epoch_cap", 3)
    assert main(["train", "--out", str(out), "--resume", "--epochs", "4"]) == 0
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1, 2, 3, 4]
    phase = json.loads((out / "summary.json").read_text())["phases"][0]
    assert (phase["stop_reason"], phase["epochs_run"]) == ("epochs", 4)
