"""A second ``train`` on a run folder that a training is writing names that training first (README: "a second
`train` on it is refused (exit 2) naming the holder's pid"), whatever the folder holds at that moment.

A newcomer started the same ``train --out runs/dup`` twice: the second was told "holds config.yaml, which a new run
would overwrite, and no best.pt to resume; choose another --out or move them" (move the files a running training
writes), and ``train --out runs/dup --resume`` "nothing to resume (no best.pt)". The content checks ran before the
lock was tried. The holder here is a real second process holding the real lock (flock on the folder)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from inspector.cli import main

HOLD = """
import sys, time
from pathlib import Path
from inspector.folder_lock import lock_folder
fd = lock_folder(Path(sys.argv[1]), create=True)
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def held_run(tmp_path):
    run = tmp_path / "runs" / "dup"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield run, holder.pid
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


# what the running training has written so far → the files put there
STAGES = {"nothing yet": (), "its config.yaml": ("config.yaml",), "its first best.pt": ("config.yaml", "best.pt")}


@pytest.mark.parametrize("resume", [False, True], ids=["new", "resume"])
@pytest.mark.parametrize("stage", list(STAGES))
def test_a_folder_being_trained_is_refused_naming_the_holder(stage, resume, held_run, tiny_dataset, capsys):
    run, pid = held_run
    for name in STAGES[stage]:
        (run / name).write_bytes(b"being written by the other training")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    argv = ["train", "--out", str(run)] + (["--resume"] if resume else ["--data", str(tiny_dataset)])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {run}: another training (pid {pid}) is writing this run folder; wait for it to end, "
                   f"or train into another --out"]
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing of the running training touched
