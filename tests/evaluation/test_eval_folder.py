"""An evaluation folder holds one evaluation, and evaluating another data set does not replace the run's own."""

import json
import logging
import shutil

import pytest

from inspector.cli import main
from inspector.evaluation.eval_folder import data_key, default_eval_folder


def _copy_tree(src, dst):
    for part in ("test", "ground_truth"):
        shutil.copytree(src / part, dst / part)
    return dst


def test_evaluating_another_data_set_keeps_the_runs_own_evaluation(trained_run, tiny_dataset, tmp_path):
    """`evaluate RUN --data OTHER` wrote to RUN/eval and replaced the evaluation of the run's own data set without
    a word; two other data sets of one folder name replaced each other."""
    run = tmp_path / "rs"  # same depth as the fixture's run: config.yaml's relative data path still holds
    shutil.copytree(trained_run, run)
    shutil.rmtree(run / "eval", ignore_errors=True)
    other = _copy_tree(tiny_dataset, tmp_path / "a" / "other")
    namesake = _copy_tree(tiny_dataset, tmp_path / "b" / "other")
    assert main(["evaluate", str(run), "--no-plots", "--no-per-level"]) == 0
    own = (run / "eval" / "metrics.json").read_bytes()
    assert json.loads(own)["data"] == data_key(tiny_dataset)
    assert main(["evaluate", str(run), "--data", str(other), "--no-plots", "--no-per-level"]) == 0
    assert main(["evaluate", str(run), "--data", str(namesake), "--no-plots", "--no-per-level"]) == 0
    assert (run / "eval" / "metrics.json").read_bytes() == own
    recorded = {d.name: json.loads((d / "metrics.json").read_text())["data"] for d in run.glob("eval*")}
    assert recorded == {"eval": data_key(tiny_dataset), "eval-other": data_key(other),
                        "eval-other-2": data_key(namesake)}
    assert default_eval_folder(run, other, tiny_dataset) == run / "eval-other"  # the same data set: same folder


def test_re_evaluating_into_a_folder_leaves_nothing_of_the_earlier_evaluation(trained_run, tiny_dataset,
                                                                            tmp_path, caplog, capsys):
    """--no-plots kept the earlier ROC, histogram and report beside the new metrics, and the earlier overlays
    (named by score) stayed beside the new ones; files that are not an evaluation's are kept."""
    out = tmp_path / "eval"
    other = _copy_tree(tiny_dataset, tmp_path / "other")
    assert main(["evaluate", str(trained_run), "--out", str(out), "--no-per-level"]) == 0
    assert (out / "roc.png").is_file() and (out / "report.html").is_file() and any((out / "overlays").iterdir())
    (out / "notes.txt").write_text("mine")
    (out / "overlays" / "mine.png").write_bytes(b"mine")
    caplog.set_level(logging.WARNING)
    assert main(["evaluate", str(trained_run), "--data", str(other), "--out", str(out), "--no-plots",
                 "--no-per-level"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "notes.txt", "overlays", "scores.npz"]
    assert [p.name for p in (out / "overlays").iterdir()] == ["mine.png"]
    assert json.loads((out / "metrics.json").read_text())["data"] == data_key(other)
    # one finding, one line: the command's last line names the data set replaced; it was also a warning
    assert not [r.getMessage() for r in caplog.records if "replaced" in r.getMessage()]
    told = [line for line in capsys.readouterr().out.splitlines() if "replaced" in line]
    assert told == [f"wrote {out / 'metrics.json'} (replaced the earlier evaluation, of {data_key(tiny_dataset)})"]


def test_a_failed_evaluation_leaves_the_earlier_one_whole(trained_run, tmp_path):
    out = tmp_path / "eval"
    assert main(["evaluate", str(trained_run), "--out", str(out), "--no-per-level"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    broken = tmp_path / "broken"
    (broken / "test" / "good").mkdir(parents=True)
    (broken / "test" / "good" / "0.png").write_bytes(b"not a png")
    assert main(["evaluate", str(trained_run), "--data", str(broken), "--out", str(out), "--no-plots"]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_an_evaluation_folder_whose_metrics_file_is_a_fifo_is_refused_at_once(trained_run, tmp_path, capsys):
    """RUN/eval/metrics.json was read to learn which data set it scored: a FIFO there held ``evaluate`` for ever,
    silent, waiting for a writer. It is no evaluation's file: refused in one line, without reading it, and kept."""
    import os
    import threading

    run = tmp_path / "rs"  # same depth as the fixture's run: config.yaml's relative data path still holds
    shutil.copytree(trained_run, run)
    shutil.rmtree(run / "eval", ignore_errors=True)
    (run / "eval").mkdir()
    os.mkfifo(run / "eval" / "metrics.json")
    codes = []
    worker = threading.Thread(target=lambda: codes.append(main(["evaluate", str(run), "--no-plots",
                                                                 "--no-per-level"])), daemon=True)
    worker.start()
    worker.join(120)
    if worker.is_alive():  # unblock the reader so the process can end
        with open(run / "eval" / "metrics.json", "w"):
            pass
        worker.join(30)
    assert codes == [2], "evaluate waited on the FIFO"
    assert capsys.readouterr().err.strip() == (
        f"error: {run / 'eval' / 'metrics.json'}: not a regular file (a folder, device or pipe), not a file of an "
        f"earlier evaluate; 'inspector evaluate' replaces only its own files: --out another folder, or move it")
    assert (run / "eval" / "metrics.json").is_fifo()


TAIL = "'inspector evaluate' replaces only its own files: --out another folder, or move it"


def _files(folder):
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", ["metrics.json", "roc.png", "report.html", "scores.npz"])
def test_a_users_file_at_one_of_its_names_is_refused_before_any_work_and_kept(trained_run, tmp_path, capsys, name):
    """`evaluate --out DIR` removed every file with one of its names, whoever wrote it: a user's own metrics.json
    or plots in DIR were lost. Now refused in one line naming the file, exit 2, and DIR is as it was."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / name).write_bytes(b'{"auroc": 0.99, "by": "hand"}' if name.endswith(".json") else b"my own plot")
    (out / "notes.txt").write_text("kept")
    before = _files(out)
    assert main(["evaluate", str(trained_run), "--out", str(out), "--no-per-level"]) == 2
    reason = ("exists and is not an evaluation written by 'inspector evaluate'" if name == "metrics.json" else
              "exists and is not a file of an earlier evaluate (no evaluation metrics.json naming it)")
    assert capsys.readouterr().err.strip() == f"error: {out / name}: {reason}; {TAIL}"
    assert _files(out) == before and sorted(p.name for p in out.iterdir()) == sorted(p.name for p in before)


def test_an_earlier_evaluation_is_replaced_whole_and_the_last_line_says_so(trained_run, tmp_path, capsys):
    """The card (metrics.json) lists the files it wrote: a plot the user put beside an evaluation made with
    --no-plots is not its own, and is refused; the earlier evaluation itself is replaced, and said."""
    out = tmp_path / "eval"
    assert main(["evaluate", str(trained_run), "--out", str(out), "--no-per-level", "--no-plots"]) == 0
    first = capsys.readouterr().out.splitlines()
    assert first[-1] == f"wrote {out / 'metrics.json'}", first
    assert json.loads((out / "metrics.json").read_text())["files"] == ["scores.npz"]
    assert main(["evaluate", str(trained_run), "--out", str(out), "--no-per-level"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {out / 'report.html'} (replaced the earlier evaluation)"
    listed = json.loads((out / "metrics.json").read_text())["files"]
    assert "roc.png" in listed and any(name.startswith("overlays/") for name in listed)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(listed + [
        "metrics.json"])  # no staging folder left
    (out / "roc.png").unlink()
    assert main(["evaluate", str(trained_run), "--out", str(out), "--no-per-level", "--no-plots"]) == 0
    (out / "roc.png").write_bytes(b"my own plot")
    capsys.readouterr()
    assert main(["evaluate", str(trained_run), "--out", str(out), "--no-per-level"]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {out / 'roc.png'}: exists and is not a file of an earlier "
                                               f"evaluate (no evaluation metrics.json naming it); {TAIL}")
    assert (out / "roc.png").read_bytes() == b"my own plot"


def test_a_card_naming_other_files_removes_none_of_them(trained_run, tmp_path):
    """A metrics.json whose ``files`` names a file outside the evaluation's names (crafted, or edited) cannot make
    evaluate remove it."""
    out = tmp_path / "eval"
    assert main(["evaluate", str(trained_run), "--out", str(out), "--no-per-level", "--no-plots"]) == 0
    card = json.loads((out / "metrics.json").read_text())
    (tmp_path / "notes.txt").write_text("kept")
    (out / "notes.txt").write_text("kept")
    (out / "metrics.json").write_text(json.dumps({**card, "files": [*card["files"], "../notes.txt", "notes.txt",
                                                                        str(tmp_path / "notes.txt")]}))
    assert main(["evaluate", str(trained_run), "--out", str(out), "--no-per-level", "--no-plots"]) == 0
    assert (tmp_path / "notes.txt").read_text() == (out / "notes.txt").read_text() == "kept"


def test_the_staging_folder_of_a_killed_evaluation_is_removed_by_the_next_and_nothing_else(trained_run, tmp_path):
    """An evaluate killed mid-write (SIGKILL, the OOM killer) cannot remove its hidden staging folder; the next
    evaluate into the folder removes it, by its writer's pid, and leaves a live writer's and a user's alone."""
    import os
    import subprocess
    import sys

    out = tmp_path / "eval"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    killed = out / f".evaluate-{dead}-x1y2z3.tmp"
    live = out / f".evaluate-{os.getppid()}-a1b2c3.tmp"  # another evaluate still at work (running, older)
    users = out / ".evaluate-notes.tmp"
    for folder in (killed, live, users):
        (folder / "overlays").mkdir(parents=True)
        (folder / "overlays" / "a.png").write_bytes(b"x")

    assert main(["evaluate", str(trained_run), "--out", str(out), "--no-per-level", "--no-plots"]) == 0

    assert not killed.exists() and live.is_dir() and users.is_dir()
