"""Stopping a command by signal, through the real CLI in a child process: SIGTERM (``kill``, systemd, Docker) stops
every command as Ctrl-C does, taking back what it was writing (exit 143); a SIGINT ignored when the command started
stays ignored (a shell without job control starts ``cmd &`` so: POSIX.1-2017 XCU 2.11; inspector.interrupts)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def _ignore_sigint() -> None:
    """What sh does for ``inspector export … &`` in a script before it execs the command."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Command:
    """``python -m inspector ARGV`` in a child process, its output lines gathered as they come."""

    def __init__(self, argv: list[str], sigint_ignored: bool = False) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "inspector", *argv], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                     preexec_fn=_ignore_sigint if sigint_ignored else None)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self._reader.start()

    def wait_for(self, text: str, timeout: float = 120, flood_sigint: bool = False) -> None:
        """Until a line holds ``text``; ``flood_sigint``: a SIGINT every 10 ms meanwhile, start-up included."""
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None and time.monotonic() < deadline, "".join(self.lines)
            if flood_sigint:
                self.proc.send_signal(signal.SIGINT)
            time.sleep(0.01)

    def stop(self, signum: int) -> int:
        self.proc.send_signal(signum)
        code = self.proc.wait(60)
        self._reader.join(10)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_sigterm_stops_an_export_with_the_earlier_one_as_it_was_and_nothing_left(trained_run, exported_model,
                                                                                  tmp_path):
    """SIGTERM killed export on the spot (exit -15): its staging folder (.rs-XXXX, half-written graphs) stayed in
    the output folder. It is now a stop like Ctrl-C: the staging folder is removed, the earlier export kept."""
    out = tmp_path / "export"
    out.mkdir()
    for name in ("rs.onnx", "rs.fp16.onnx", "rs.json"):
        shutil.copy(exported_model.parent / name, out / name)
    before = _contents(out)
    export = Command(["export", str(trained_run), "--out", str(out / "rs")])
    export.wait_for("exporting fp32 graph")
    code = export.stop(signal.SIGTERM)
    assert code == 143 and export.output.rstrip().endswith("interrupted"), export.output
    assert "Traceback" not in export.output
    assert _contents(out) == before, sorted(os.listdir(out))  # no staging folder, the earlier export whole


def test_an_export_started_with_sigint_ignored_keeps_it_ignored_and_stops_on_sigterm(trained_run, tmp_path):
    """`inspector export … &` in a script: the shell starts it with SIGINT ignored, so that a Ctrl-C meant for the
    script's foreground command does not stop it. The CLI took SIGINT over while it started (an 'interrupted' exit
    130 for such a Ctrl-C); it keeps it ignored now, from its first instruction, and SIGTERM stops it cleanly."""
    out = tmp_path / "export"
    export = Command(["export", str(trained_run), "--out", str(out / "rs")], sigint_ignored=True)
    export.wait_for("exporting fp32 graph", flood_sigint=True)
    export.proc.send_signal(signal.SIGINT)
    time.sleep(1.0)
    assert export.proc.poll() is None, export.output  # still exporting
    code = export.stop(signal.SIGTERM)
    assert code == 143 and export.output.rstrip().endswith("interrupted"), export.output
    assert not out.exists() or not any(out.iterdir()), sorted(os.listdir(out))


def test_a_training_started_with_sigint_ignored_trains_on_and_stops_on_sigterm_with_its_state(tiny_dataset,
                                                                                             tmp_path):
    """train took SIGINT over whatever it inherited (sigterm_as_interrupt): a Ctrl-C meant for the script that
    started it in the background stopped it. Now only SIGTERM does, saving its state as Ctrl-C would."""
    from inspector.models.checkpoint import load_model

    out = tmp_path / "run"
    train = Command(["train", "--data", str(tiny_dataset), "--out", str(out), "--epochs", "200",
                     "--set", "model.image_size=[64,64]", "--set", "train.batch_size=4"], sigint_ignored=True)
    deadline = time.monotonic() + 120
    while not (out / "best.pt").exists():
        assert train.proc.poll() is None and time.monotonic() < deadline, train.output
        train.proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
    time.sleep(1.0)
    assert train.proc.poll() is None, train.output  # still training
    code = train.stop(signal.SIGTERM)
    assert code == 143 and "stopped by SIGTERM" in train.output and "SIGINT" not in train.output, train.output
    assert load_model(out)[2]["epoch"] >= 1
