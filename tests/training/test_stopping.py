"""When training stops and why: the stop rule, each reason on a real tiny model, --resume extension."""

import dataclasses
import io
import json
import math

import pytest
import torch

from inspector.cli import main
from inspector.models.registry import build_model, model_names
from inspector.training.config import TrainConfig, load_run_config
from inspector.training.loop import default_phases, fit, load_training_images
from inspector.training.stopping import ScheduleState, StopRule


def _rule(losses, **train) -> StopRule:
    rule = StopRule(TrainConfig(**train))
    for epoch, loss in enumerate(losses, 1):
        rule.observe(epoch, loss)
    return rule


def test_patience_counts_epochs_without_relative_improvement():
    rule = _rule([1.0, 0.9, 0.895, 0.894], patience=2, min_delta=0.01, lr_decay="none")
    assert rule.best_epoch == 2  # 0.895 is < 1 % below 0.9: not an improvement
    assert rule.reason_before(5, 0.0) == "converged"
    assert _rule([1.0, 0.9, 0.895], patience=2, min_delta=0.01, lr_decay="none").reason_before(4, 0.0) is None
    assert rule.lr == TrainConfig().lr and rule.decays == 0  # lr_decay none: a constant rate
    # relative to |best|, so a negative loss (a flow's NLL) improves when it gets more negative
    assert _rule([-1.0, -1.005], min_delta=0.01).best_epoch == 1
    assert _rule([-1.0, -1.02], min_delta=0.01).best_epoch == 2


def _nll_rule(losses, dims, **train) -> StopRule:
    rule = StopRule(TrainConfig(**train), measures_gap=False, nll_dims=dims)
    for epoch, loss in enumerate(losses, 1):
        rule.observe(epoch, loss)
    return rule


def test_a_log_likelihood_improves_by_nats_per_dimension_wherever_its_zero_lies():
    # AST's flow on ELPV mono with standardised features: the NLL per position falls through 0. Relative to
    # |best| the threshold vanishes there, and a drift of 0.01 nats per position per epoch never converged.
    crawl = [2.0, 0.2] + [0.2 - 0.01 * k for k in range(1, 41)]
    assert _rule(crawl, patience=3, lr_decay="none").reason_before(len(crawl) + 1, 0.0) is None
    rule = _nll_rule(crawl, dims=100, patience=3, lr_decay="none")  # needs 0.005 × 100 = 0.5 nats a position
    assert (rule.best_epoch, rule.reason_before(6, 0.0)) == (2, "converged")
    assert rule.explain("converged").startswith("converged: no validation improvement above 0.005 nats per "
                                                "dimension (100) for 3 epochs")
    # the same curve shifted by any constant (a dropped log 2π, another feature scale) stops at the same epoch
    shifted = _nll_rule([x + 1234.5 for x in crawl], dims=100, patience=3, lr_decay="none")
    assert (shifted.best_epoch, shifted.reason_before(6, 0.0)) == (2, "converged")
    # a real fall of a nat per position per epoch keeps going, on either side of 0
    falling = _nll_rule([3.0 - k for k in range(8)], dims=100, patience=3, lr_decay="none")
    assert falling.best_epoch == 8 and falling.reason_before(9, 0.0) is None


def test_caps_and_forced_epochs():
    assert _rule([3, 2, 1], max_epochs=3).reason_before(4, 0.0) == "epoch_cap"
    forced = _rule([1, 1, 1, 1], epochs=4, patience=1)  # --epochs N: no early stop
    assert forced.reason_before(4, 0.0) is None and forced.reason_before(5, 0.0) == "epochs"
    assert _rule([1.0], time_budget_s=10).reason_before(2, 10.0) == "time_cap"
    assert _rule([1.0], time_budget_s=10).reason_before(2, 9.9) is None
    # each invocation runs at least one epoch, even when setting up took the whole budget
    assert _rule([1.0], time_budget_s=10).reason_before(2, 11.0, first=True) is None


def _gap_rule(pairs, **train) -> StopRule:
    """A rule fed (validation loss, seen loss) per epoch."""
    rule = StopRule(TrainConfig(**train))
    for epoch, (val, seen) in enumerate(pairs, 1):
        rule.observe(epoch, val, seen)
    return rule


# KolektorSDD's shape (benchmarks/README.md Session 25): the validation loss falls throughout, the seen loss
# faster; gaps 3 %, 3 %, 6 %, 9 %, 10 %, 11 %: grown by 0, 0, 3, 6, 7, 8 points beyond the narrowest
WIDENING = [(10.3, 10.0), (9.27, 9.0), (8.48, 8.0), (8.175, 7.5), (7.7, 7.0), (7.215, 6.5)]


def test_a_gap_grown_for_gap_patience_epochs_stops_while_the_validation_loss_still_falls():
    rule = _gap_rule(WIDENING, max_gap_growth=0.05, gap_patience=3)
    assert rule.best_epoch == 6 and rule.gap_epochs == 3
    assert rule.narrowest_gap == pytest.approx(0.03) and rule.gap_growth == pytest.approx(0.08)
    assert rule.reason_before(7, 0.0) == "generalisation_gap"
    detail = rule.explain("generalisation_gap")
    assert "train.max_gap_growth=0.05" in detail and "(+3.0%, now +11.0%)" in detail
    assert _gap_rule(WIDENING[:5], max_gap_growth=0.05, gap_patience=3).reason_before(6, 0.0) is None  # 2 epochs
    assert _gap_rule(WIDENING, max_gap_growth=0.08, gap_patience=1).reason_before(7, 0.0) is None  # grew ≤ 8 points
    assert _gap_rule(WIDENING, max_gap_growth=None).reason_before(7, 0.0) is None  # switched off
    # a forced epoch count (--epochs N) never stops early, gap or not
    assert _gap_rule(WIDENING, max_gap_growth=0.05, gap_patience=1, epochs=9).reason_before(7, 0.0) is None


def test_a_gap_that_is_wide_from_the_start_is_a_split_not_memorising():
    # the validation images are 20 % harder than the training images from epoch 1 on, and stay so
    steady = [(12.0 * f, 10.0 * f) for f in (1.0, 0.9, 0.8, 0.7, 0.6)]
    assert _gap_rule(steady, max_gap_growth=0.05, gap_patience=1).reason_before(6, 0.0) is None
    # a validation loss below the seen loss (ELPV mono's shape) that stays so is no growth either
    assert _gap_rule([(9.0, 9.6)] * 5, max_gap_growth=0.0, gap_patience=1).reason_before(6, 0.0) is None
    # a phase whose loss is no distance (AST's flow NLL: Phase.measures_gap False) never has a gap
    rule = StopRule(TrainConfig(max_gap_growth=0.05, gap_patience=1), measures_gap=False)
    for epoch, (val, seen) in enumerate(WIDENING, 1):
        rule.observe(epoch, val, seen)
    assert rule.reason_before(7, 0.0) is None and math.isnan(rule.gap)


def test_the_gap_count_needs_consecutive_measurable_epochs():
    start, over = (10.0, 10.0), (8.0, 7.0)  # gap 0, then 14 %
    # one epoch back near the narrowest gap restarts the count (a single-epoch bump is noise)
    assert _gap_rule([start, over, over, start, over], max_gap_growth=0.05, gap_patience=3).gap_epochs == 1
    # no seen loss (a history row from before it was recorded) or a non-positive loss (a flow's NLL) has no gap
    for unmeasurable in [(8.0, None), (-3.0, -4.0), (8.0, 0.0), (float("nan"), 7.0)]:
        rule = _gap_rule([start, over, over, unmeasurable], max_gap_growth=0.05, gap_patience=2)
        assert rule.gap_epochs == 0 and rule.reason_before(5, 0.0) is None, unmeasurable


def test_replay_restores_the_gap_count_from_history_rows():
    rows = [{"epoch": 1, "val_loss": 10.0, "seen_loss": 10.0}] + [
        {"epoch": e, "val_loss": 8.0, "seen_loss": 7.0} for e in (2, 3)] + [{"epoch": 4, "val_loss": 8.0}]
    rule = StopRule(TrainConfig(max_gap_growth=0.05, gap_patience=2))
    rule.replay(rows[:3])
    assert rule.reason_before(4, 0.0) == "generalisation_gap"
    rule = StopRule(TrainConfig(max_gap_growth=0.05, gap_patience=2))
    rule.replay(rows)  # the last row has no seen loss: the count restarts
    assert rule.gap_epochs == 0 and rule.reason_before(5, 0.0) is None


def _lrs(losses, **train) -> tuple[list[float], int]:
    """The rate each epoch trains at and the first epoch the rule refuses, for a loss sequence."""
    rule, lrs = StopRule(TrainConfig(**train)), []
    for epoch, loss in enumerate(losses, 1):
        if rule.reason_before(epoch, 0.0) is not None:
            return lrs, epoch
        lrs.append(rule.lr)
        rule.observe(epoch, loss)
    return lrs, len(losses) + 1


PLATEAU = {"patience": 4, "lr": 1.0, "lr_decay_factor": 0.5, "lr_decays": 2, "lr_plateau": 2}


def test_a_plateau_decays_the_rate_and_one_at_the_last_rate_stops():
    # best at 2; plateaus of lr_plateau = 2 epochs: decay after 4 and 6, stop after 8
    lrs, stop = _lrs([1.0, 0.9] + [0.9] * 20, **PLATEAU)
    assert lrs == [1, 1, 1, 1, 0.5, 0.5, 0.25, 0.25] and stop == 9
    rule = _rule([1.0, 0.9] + [0.9] * 6, **PLATEAU)
    assert (rule.decays, rule.decay_epoch, rule.reason_before(9, 0.0)) == (2, 6, "converged")
    assert rule.explain("converged") == ("converged: no validation improvement above 0.005 (relative) for 2 epochs "
                                         "at the last learning rate 0.25 (2 plateau decay(s) by 0.5) since epoch 6")
    # by default a plateau is the patience: the rate decays where a constant-rate run would stop
    assert _lrs([1.0, 0.9] + [0.9] * 20, **{**PLATEAU, "lr_plateau": None}) == ([1] * 6 + [0.5] * 4 + [0.25] * 4, 15)
    # the same losses at a constant rate stop after patience = 4 epochs
    assert _lrs([1.0, 0.9] + [0.9] * 20, **PLATEAU, lr_decay="none") == ([1.0] * 6, 7)


def test_an_improvement_after_a_decay_restarts_the_count():
    lrs, stop = _lrs([1.0, 0.9, 0.9, 0.9, 0.8, 0.8, 0.7] + [0.7] * 20, **PLATEAU)
    # decay after 4; 0.8 at 5 and 0.7 at 7 improve at the lower rate; next decay after 9, stop after 11
    assert lrs == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25] and stop == 12


def test_no_decays_left_stops_at_the_first_plateau_and_forced_epochs_keep_the_rate():
    assert _lrs([1.0] * 9, **{**PLATEAU, "lr_decays": 0}) == ([1.0] * 3, 4)
    assert _lrs([1.0] * 9, **PLATEAU, epochs=9) == ([1.0] * 9, 10)


def test_replay_and_restore_continue_the_schedule():
    losses = [1.0, 0.9, 0.9, 0.9, 0.9]
    live = _rule(losses, **PLATEAU)
    replayed = StopRule(TrainConfig(**PLATEAU))
    replayed.replay([{"epoch": e, "val_loss": v} for e, v in enumerate(losses, 1)])
    assert replayed.state("student") == live.state("student") == ScheduleState("student", 0.5, 1, 4)
    # a recorded state wins over the replay (it is what the run actually trained with)
    replayed.restore(ScheduleState("student", 0.1, 1, 5))
    assert (replayed.lr, replayed.stale, replayed.reason_before(6, 0.0)) == (0.1, 0, None)


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
    ({"patience": 2, "min_delta": 0.5, "lr_decay": "none"}, "converged", 3),
    ({"patience": 2, "min_delta": 0.5, "lr_decays": 2}, "converged", 7),  # decays after 3 (where the row above stops) and 5
    ({"patience": 50, "max_epochs": 2}, "epoch_cap", 2),
    ({"epochs": 3, "patience": 1, "min_delta": 0.5}, "epochs", 3),
    ({"time_budget_s": 1e-3}, "time_cap", 1),
])
def test_each_stop_reason_on_a_real_model(tiny_fit, train, reason, epochs):
    result = tiny_fit(**train)
    assert (result.stop_reason, result.epochs_run, len(result.history)) == (reason, epochs, epochs)
    assert result.stop_detail.startswith(reason.split("_")[0]) or reason == "epochs"
    assert not result.interrupted


def test_a_real_student_that_memorises_its_few_images_stops_on_the_gap_and_says_so(tiny_dataset, tmp_path, capsys):
    # 12 brick images at the default rate: the student fits them far better than unseen bricks within epochs
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_dataset), "--out", str(out), "--set", "model.image_size=[64,64]",
                 "--set", "train.batch_size=4", "--set", "train.patience=50", "--set", "train.max_epochs=40"]) == 0
    assert "stopped: generalisation gap: for 3 epochs in a row" in capsys.readouterr().out
    phase = json.loads((out / "summary.json").read_text())["phases"][0]
    rows = json.loads((out / "history.json").read_text())
    assert phase["stop_reason"] == "generalisation_gap" and phase["epochs_run"] == len(rows) < 40
    gaps = [r["val_loss"] / r["seen_loss"] - 1 for r in rows]  # every row records its seen loss
    # the rule as history.json shows it: the last 3 epochs, and only they, grew > 5 points past the narrowest
    grown = [g - min(gaps[:i + 1]) > 0.05 for i, g in enumerate(gaps)]
    assert grown[-3:] == [True] * 3 and not all(grown[-4:])


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
                                            ("train.max_epochs=-1", "train.max_epochs: -1 is out of range"),
                                            ("train.max_gap_growth=-0.1", "train.max_gap_growth: -0.1 is out of range"),
                                            ("train.gap_patience=0", "train.gap_patience: 0 is out of range")])
def test_stop_settings_have_ranges(tmp_path, capsys, setting, words):
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--set", setting]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err


def test_summary_says_why_and_resume_extends_a_finished_run(tiny_dataset, tmp_path, capsys, caplog):
    out = tmp_path / "run"
    # max_gap null: the tiny set's 3 validation images open a gap within 3 epochs; this is about the caps
    common = ["--set", "model.image_size=[64,64]", "--set", "train.batch_size=4", "--set", "train.patience=50",
              "--set", "train.max_gap_growth=null"]
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
    assert "extending a finished run: student at epoch 3 (best so far: epoch " in caplog.text
    assert "with the optimiser, schedule and random streams of epoch 2" in caplog.text  # resume.pt
    phase = json.loads((out / "summary.json").read_text())["phases"][0]
    assert (phase["stop_reason"], phase["epochs_run"]) == ("epoch_cap", 3)
    assert main(["train", "--out", str(out), "--resume", "--epochs", "4"]) == 0
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1, 2, 3, 4]
    phase = json.loads((out / "summary.json").read_text())["phases"][0]
    assert (phase["stop_reason"], phase["epochs_run"]) == ("epochs", 4)


def test_resume_continues_the_learning_rate_schedule(tiny_dataset, tmp_path, capsys):
    import torch

    out = tmp_path / "run"
    # lr ~0 and min_delta 0.5: no improvement after epoch 1, so plateaus (lr_plateau = 2) come on time
    common = ["--set", "model.image_size=[64,64]", "--set", "train.batch_size=4", "--set", "train.lr=1e-9",
              "--set", "train.min_delta=0.5", "--set", "train.patience=4", "--set", "train.lr_plateau=2",
              "--set", "train.lr_anneal=0"]  # the plateau schedule alone (the anneal is tested below)
    assert main(["train", "--data", str(tiny_dataset), "--out", str(out), "--set", "train.max_epochs=4", *common]) == 0
    assert torch.load(out / "best.pt", weights_only=True)["lr_schedule"] == {
        "phase": "student", "lr": pytest.approx(2e-10), "decays": 1, "decay_epoch": 3}
    assert main(["train", "--out", str(out), "--resume", "--set", "train.max_epochs=10"]) == 0
    assert "learning rate 4e-11 (2 plateau decay(s) by 0.2) since epoch 5" in capsys.readouterr().out
    lrs = [h["lr"] for h in json.loads((out / "history.json").read_text())]
    assert lrs == pytest.approx([1e-9] * 3 + [2e-10] * 2 + [4e-11] * 2)
    phase = json.loads((out / "summary.json").read_text())["phases"][0]
    assert (phase["stop_reason"], phase["epochs_run"], phase["lr_decays"]) == ("converged", 7, 2)
    assert phase["cpu_seconds"] > 0 and phase["final_lr"] == pytest.approx(4e-11)


def test_a_malformed_schedule_in_the_checkpoint_is_one_line(tiny_dataset, tmp_path, capsys):
    import torch

    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_dataset), "--out", str(out), "--epochs", "1",
                 "--set", "model.image_size=[64,64]", "--set", "train.batch_size=4"]) == 0
    payload = torch.load(out / "best.pt", weights_only=True)
    torch.save({**payload, "lr_schedule": {"phase": "student", "lr": -1.0, "decays": 0, "decay_epoch": 0}},
               out / "best.pt")
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "best.pt: lr_schedule.lr: -1.0 is out of range" in err and "\n" not in err


def test_the_budget_anneal_falls_linearly_to_zero_over_the_last_fraction():
    rule = StopRule(TrainConfig(epochs=10, lr=1.0, lr_anneal=0.2))
    # epoch share: epoch 9 starts at 80 % of 10 epochs; halfway through epoch 10 is 95 %
    assert [rule.budget_progress(e, 0.0, 0.0) for e in (1, 9, 10)] == pytest.approx([0.0, 0.8, 0.9])
    assert [rule.rate(p) for p in (0.0, 0.8, 0.9, 0.95, 1.0)] == pytest.approx([1.0, 1.0, 0.5, 0.25, 0.0])
    assert StopRule(TrainConfig(epochs=10, lr=1.0, lr_anneal=0)).rate(0.99) == 1.0  # 0: no anneal


def test_the_anneal_follows_whichever_budget_ends_first():
    rule = StopRule(TrainConfig(lr=0.5, lr_anneal=0.5, time_budget_s=100.0))  # early stopping: max_epochs 300
    assert rule.budget_progress(2, 0.0, 75.0) == pytest.approx(0.75)  # time ends first
    assert rule.rate(rule.budget_progress(2, 0.0, 75.0)) == pytest.approx(0.25)
    assert rule.budget_progress(300, 0.5, 1.0) == pytest.approx(299.5 / 300)  # the epoch cap ends first
    assert rule.budget_progress(2, 0.0, 500.0) == 1.0  # past the cap: clamped, the rate is 0
    rule.lr = 0.1  # after a plateau decay the anneal scales the decayed rate
    assert rule.rate(0.75) == pytest.approx(0.05)


def test_a_forced_epoch_count_ends_on_an_annealed_rate(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_dataset), "--out", str(out), "--epochs", "5",
                 "--set", "model.image_size=[64,64]", "--set", "train.batch_size=4", "--set", "train.lr=0.01",
                 "--set", "train.lr_anneal=0.4"]) == 0
    lrs = [h["lr"] for h in json.loads((out / "history.json").read_text())]
    # the last step of each epoch: constant through epoch 3, then on the line from 0.01 at 60 % to 0 at 100 %
    assert lrs[:3] == pytest.approx([0.01] * 3)
    assert 0 < lrs[4] < lrs[3] < 0.01 * (1 - 3.5 / 5) / 0.4 + 1e-12


def _counting_phase(batch_size: int):
    """A one-parameter phase whose loss counts the batches it saw (no model: targets are not cached)."""
    import torch

    from inspector.models.entry import Phase

    weight, calls = torch.nn.Parameter(torch.ones(())), []

    def loss(batch):
        calls.append(len(batch))
        return (weight * batch.float().mean()) ** 2

    return Phase("student", [weight], loss, TrainConfig(epochs=3, batch_size=batch_size)), calls


@pytest.mark.parametrize("may_end_early, steps", [(True, 4), (False, 8)])
def test_an_epoch_ends_at_the_step_whose_annealed_rate_is_zero(may_end_early, steps):
    import numpy as np
    import torch

    from inspector.training.loop import PhaseLoss, make_optimizer, train_epoch
    from inspector.training.progress import Progress

    phase, calls = _counting_phase(batch_size=2)
    images = np.zeros((16, 8, 8, 3), np.uint8)
    loss_fn = PhaseLoss(phase, images, model=None)
    optimizer = make_optimizer(phase.parameters, phase.train)
    # the time budget runs out halfway through the pass: rate 0 from the 5th of 8 steps on
    lr_at = lambda fraction: 0.0 if fraction >= 0.5 else 1e-3  # noqa: E731
    train_epoch(phase, loss_fn, optimizer, torch.Generator().manual_seed(0), 2, Progress(8, stream=io.StringIO()),
                "3", lr_at, may_end_early=may_end_early)
    assert len(calls) == steps  # not the first epoch of an invocation: the spent steps are skipped


@pytest.mark.parametrize("value", [-0.1, 1.5, "most"])
def test_a_bad_lr_anneal_is_one_config_error_line(value):
    from inspector.errors import ConfigError

    with pytest.raises(ConfigError, match=r"lr_anneal") as err:
        load_run_config(base={"model": {"name": "reduced_student"}, "data": {"path": "d"},
                              "train": {"lr_anneal": value}})
    assert "\n" not in str(err.value)

