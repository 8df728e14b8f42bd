"""A run folder's files (best.pt, resume.pt, history.json, config.yaml) foreign, damaged or of another structure.

Real runs trained for one epoch (64×64), files copied between them or cut, then ``train --resume``,
``evaluate RUN`` and ``export RUN`` through the CLI. A resume.pt that cannot be this run's point is not used
(one warning naming it and why; the optimiser starts afresh from best.pt, exactly as without the file); a
best.pt that is damaged or not this run's is one error line naming it, exit 2, the run folder as it was.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path

import pytest
import torch

from inspector.cli import main

SETTINGS = ["--set", "model.image_size=[64,64]", "--set", "train.batch_size=4"]


@pytest.fixture(scope="module")
def runs(tiny_dataset, tmp_path_factory) -> dict[str, Path]:
    """name → run folder of one epoch each: "run" (the one tampered with), runs to copy files from ("seed":
    the same model and config, another seed; "wide": a wider student; "stfpm": another model), and
    "afresh": "run" resumed to epoch 2 without its resume.pt (what an unusable resume point must give)."""
    root = tmp_path_factory.mktemp("run_files")
    extra = {"run": [], "seed": ["--set", "train.seed=1"], "wide": ["--set", "model.student_width=2.0"],
             "stfpm": ["--model", "stfpm"]}
    folders = {name: root / name for name in extra}
    for name, args in extra.items():
        assert main(["train", "--data", str(tiny_dataset), "--out", str(folders[name]), "--epochs", "1",
                     *SETTINGS, *args]) == 0, name
    folders["afresh"] = shutil.copytree(folders["run"], root / "afresh")
    (folders["afresh"] / "resume.pt").unlink()
    assert main(["train", "--out", str(folders["afresh"]), "--resume", "--epochs", "2"]) == 0
    # another run that went on longer than "run": its best.pt is of an epoch "run" never recorded
    folders["longer"] = shutil.copytree(folders["seed"], root / "longer")
    assert main(["train", "--out", str(folders["longer"]), "--resume", "--epochs", "2"]) == 0
    assert torch.load(folders["longer"] / "best.pt", weights_only=True)["epoch"] == 2
    return folders


def _point(runs: dict[str, Path], name: str) -> dict:
    return torch.load(runs[name] / "resume.pt", weights_only=True)


def _edited(**changes):
    """A resume.pt of the run itself with ``changes`` (key → value, or a function of the point)."""
    def make(runs: dict[str, Path]) -> dict:
        point = _point(runs, "run")
        for key, value in changes.items():
            point[key] = value(point) if callable(value) else value
        return point
    return make


def _without(*keys: str):
    def make(runs: dict[str, Path]) -> dict:
        return {k: v for k, v in _point(runs, "run").items() if k not in keys}
    return make


def _foreign(name: str, before_identity: bool = False):
    """The resume.pt of another run (``before_identity``: as written before the file carried its run's identity)."""
    def make(runs: dict[str, Path]) -> dict:
        point = _point(runs, name)
        return {k: v for k, v in point.items() if k not in ("identity", "val_loss")} if before_identity else point
    return make


def _optimizer(change):
    def edit(point: dict) -> dict:
        state = point["optimizer"]
        change(state)
        return state
    return edit


def _extra_group(state: dict) -> None:
    state["param_groups"].append(dict(state["param_groups"][0]))


def _wrong_moment(state: dict) -> None:
    first = next(iter(state["state"].values()))
    first["exp_avg"] = torch.zeros(3, 1)


def _no_rate(state: dict) -> None:
    del state["param_groups"][0]["lr"]


def _cut_point(at: int | float):
    """The run's resume.pt cut after ``at`` bytes (a float: that fraction of it; negative: from its end)."""
    def make(runs: dict[str, Path]) -> bytes:
        data = (runs["run"] / "resume.pt").read_bytes()
        return data[: int(len(data) * at) if isinstance(at, float) else at]
    return make


# name → the file's bytes or the torch payload written as resume.pt, and words of the reason said
RESUME_CASES = {
    "empty": (b"", "not a readable torch file"),
    "cut_at_100": (_cut_point(100), "not a readable torch file"),
    "cut_in_half": (_cut_point(0.5), "not a readable torch file"),
    "cut_at_end": (_cut_point(-10), "not a readable torch file"),
    "random_bytes": (random.Random(0).randbytes(4096), "not a readable torch file"),
    "a_list": ([1, 2, 3], "not a resume point"),
    "no_weights": (_without("state_dict"), "resume.pt has no 'state_dict'"),
    "no_optimizer": (_without("optimizer", "generator"), "resume.pt has no 'optimizer'"),
    "generator_str": (_edited(generator="x"), "'generator' holds a str"),
    "generator_short": (_edited(generator=torch.zeros(8, dtype=torch.uint8)), "'generator' is not a random"),
    "schedule_list": (_edited(lr_schedule=[1]), "'lr_schedule' holds a list"),
    "schedule_of_flow": (_edited(lr_schedule=lambda p: {**p["lr_schedule"], "phase": "flow"}),
                         "its lr_schedule is of phase 'flow'"),
    "extra_param_group": (_edited(optimizer=_optimizer(_extra_group)), "not 1 parameter group(s)"),
    "moment_shape": (_edited(optimizer=_optimizer(_wrong_moment)), "is not Adam's for its shape"),
    "no_learning_rate": (_edited(optimizer=_optimizer(_no_rate)), "the optimiser's setting 'lr' is missing"),
    "another_model": (_foreign("stfpm"), "resume.pt is of model 'stfpm', this run trains 'reduced_student'"),
    "another_model_old": (_foreign("stfpm", before_identity=True), "resume.pt holds weights of another model"),
    "wider_student": (_foreign("wide"), "resume.pt is of another reduced_student config than this run's"),
    "wider_student_old": (_foreign("wide", before_identity=True), "holds weights of another model: student"),
    "another_run": (_foreign("seed"), "resume.pt is of another run: its epoch 1 validation loss"),
}


def _history_row(run: Path, epoch: int) -> dict:
    row = next(r for r in json.loads((run / "history.json").read_text()) if r["epoch"] == epoch)
    return {k: row[k] for k in ("train_loss", "val_loss", "lr")}


@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_an_unusable_resume_point_is_one_warning_and_the_optimiser_starts_afresh(runs, tmp_path, caplog, case):
    """A resume.pt copied from a run of another model or architecture was a load_state_dict RuntimeError
    traceback; one of the same model but another run was used silently (a mixture of two runs); one of the
    wrong structure a KeyError/ValueError/TypeError traceback (or, with the weights already loaded, half of
    it put back). Now: one warning naming the file and why, and the resumed epoch is exactly the one the run
    trains without the file (best.pt's weights, the optimiser afresh): nothing of it was put back."""
    run = shutil.copytree(runs["run"], tmp_path / "run")
    content, reason = RESUME_CASES[case]
    _put(run / "resume.pt", content, runs)
    caplog.set_level(logging.INFO)
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    said = f"{run / 'resume.pt'}: no optimiser state for student epoch 1"
    assert len(warned) == 1 and warned[0].startswith(said), warned
    assert reason in warned[0] and "\n" not in warned[0], warned
    assert _history_row(run, 2) == _history_row(runs["afresh"], 2)


def test_the_runs_own_resume_point_is_used(runs, tmp_path, caplog):
    """The checks pass the run's own file: it resumes with it (no warning), not afresh."""
    run = shutil.copytree(runs["run"], tmp_path / "run")
    caplog.set_level(logging.INFO)
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "with the optimiser, schedule and random streams of epoch 1" in caplog.text


def test_a_resume_with_another_optimiser_does_not_load_the_others_state(runs, tmp_path, caplog):
    """``--set train.optimizer=sgd`` on an Adam run: SGD was handed Adam's state and groups (no 'momentum')."""
    run = shutil.copytree(runs["run"], tmp_path / "run")
    caplog.set_level(logging.INFO)
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2", "--set", "train.optimizer=sgd"]) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and "holds a Adam optimiser's state, this run trains with SGD" in warned[0], warned


def _cut(fraction: float):
    def make(runs: dict[str, Path]) -> bytes:
        data = (runs["run"] / "best.pt").read_bytes()
        return data[: int(len(data) * fraction)]
    return make


def _best_of(name: str):
    return lambda runs: (runs[name] / "best.pt").read_bytes()


def _best_edited(change):
    def make(runs: dict[str, Path]) -> dict:
        payload = torch.load(runs["run"] / "best.pt", weights_only=True)
        change(payload)
        return payload
    return make


# name → best.pt's bytes or payload, and words of the one line
BEST_CASES = {
    "empty": (b"", "not a readable checkpoint"),
    "cut_at_100": (lambda runs: (runs["run"] / "best.pt").read_bytes()[:100], "not a readable checkpoint"),
    "cut_in_half": (_cut(0.5), "not a readable checkpoint"),
    "cut_at_end": (_cut(0.999), "not a readable checkpoint"),
    "random_bytes": (random.Random(1).randbytes(4096), "not a readable checkpoint"),
    "a_list": ([1, 2, 3], "not an inspector checkpoint"),
    "no_config": (_best_edited(lambda p: p.pop("config")), "damaged inspector checkpoint (no 'config')"),
    "weights_a_list": (_best_edited(lambda p: p.update(state_dict=[1])), "'state_dict' holds a list"),
    "of_stfpm": (_best_of("stfpm"), "not the checkpoint of this run: its model.name is 'stfpm', the run's "
                                    "config.yaml has 'reduced_student'"),
    "of_a_wider_student": (_best_of("wide"), "its model.student_width is 2.0, the run's config.yaml has 1.0"),
    "of_another_run": (_best_of("seed"), "not the checkpoint of this run: its student epoch 1 has validation loss"),
    "of_a_run_that_went_on_longer": (_best_of("longer"), "not the checkpoint of this run: its student epoch 2 is "
                                                         "not in the run's history.json (epochs 1-1) and its "
                                                         "resume.pt never reached it"),
}
COMMANDS = {"resume": ["train", "--out", "{run}", "--resume", "--epochs", "2"],
            "evaluate": ["evaluate", "{run}"],
            "export": ["export", "{run}", "--out", "{out}/model.onnx"]}


def _tree(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


@pytest.mark.parametrize("case", sorted(BEST_CASES))
def test_a_damaged_or_foreign_best_checkpoint_is_one_line_and_changes_nothing(runs, tmp_path, capsys, case):
    """best.pt cut short, random, of another structure, or copied in from another run (another model: a
    RuntimeError traceback from this run's resume.pt; the same model: a mixture of two runs resumed, another
    run's numbers evaluated and exported under this run's name): for --resume, evaluate and export one line
    naming best.pt, exit 2, and no file written or changed."""
    run, out = shutil.copytree(runs["run"], tmp_path / "run"), tmp_path / "out"
    out.mkdir()
    content, words = BEST_CASES[case]
    _put(run / "best.pt", content, runs)
    before = _tree(run)
    capsys.readouterr()
    for name, command in COMMANDS.items():
        assert main([a.format(run=run, out=out) for a in command]) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: {run / 'best.pt'}: ") and words in err, (name, err)
        assert _tree(run) == before and not list(out.iterdir()), name


def test_a_run_killed_before_its_history_was_written_is_still_read(runs, tmp_path):
    """The one way a run's own best.pt is of an epoch its history.json lacks: an invocation killed after an
    epoch (best.pt and resume.pt are written then) but before the phase's rows (written when it ends).
    Its resume.pt vouches for the epoch, so evaluate and export read the run."""
    run = shutil.copytree(runs["run"], tmp_path / "run")
    history = (run / "history.json").read_text()
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 0
    (run / "history.json").write_text(history)  # as if killed before the extension's rows were written
    assert torch.load(run / "best.pt", weights_only=True)["epoch"] == 2
    assert main(["evaluate", str(run), "--no-plots"]) == 0
    assert main(["export", str(run), "--out", str(tmp_path / "out" / "model.onnx")]) == 0


def test_a_resumed_phase_counts_its_seconds_from_the_first_invocation(runs, tmp_path):
    """history.json's ``seconds``/``cpu_seconds`` are since the phase began: they restarted at each --resume
    (a resumed run read 12.93 s at epoch 4, 10.37 s at epoch 5) and the summary gave only the last invocation's
    time. The first invocation is made to have taken 1000 s (wall) and 900 s (CPU) in its row."""
    run = shutil.copytree(runs["run"], tmp_path / "run")
    rows = json.loads((run / "history.json").read_text())
    rows[-1].update(seconds=1000.0, cpu_seconds=900.0)
    (run / "history.json").write_text(json.dumps(rows))
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 0
    after = json.loads((run / "history.json").read_text())
    assert after[-1]["epoch"] == 2 and 1000 < after[-1]["seconds"] < 1100 and 900 < after[-1]["cpu_seconds"] < 1000
    phase = json.loads((run / "summary.json").read_text())["phases"][0]
    assert phase["seconds"] >= after[-1]["seconds"] and phase["cpu_seconds"] >= after[-1]["cpu_seconds"]


@pytest.mark.parametrize("summary", ["garbage", "[1, 2]", '{"phases": 5}', '{"phases": [1, {"name": 2}]}'])
def test_a_damaged_summary_only_loses_the_record_of_earlier_phases(runs, tmp_path, summary):
    """summary.json is only a record: --resume of a run with it damaged trains on and writes a new one."""
    run = shutil.copytree(runs["run"], tmp_path / "run")
    (run / "summary.json").write_text(summary)
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 0
    assert json.loads((run / "summary.json").read_text())["phases"][0]["epochs_run"] == 2


def _put(path, content, runs) -> None:
    """Write a case's file: raw bytes as they are, anything else (or what a callable makes of ``runs``) saved."""
    content = content(runs) if callable(content) else content
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
