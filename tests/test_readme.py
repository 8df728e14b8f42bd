"""The README's ```bash blocks, run as a new user would: from a fresh folder, with relative paths.

Every ``inspector`` line of the quick start and of "Step by step" is run as a subprocess of the
installed console script, in order, in an empty working directory (plus ``inspector.example.yaml``,
which a clone has). Where training would take minutes the line gets the small sizes of ``QUICK``
appended (argparse: a later value wins), so the README's own arguments are still what is parsed.
``inspector run`` is started, a subscriber from "another shell" must print a defect event, then both
get Ctrl-C. The GPU block cannot run here: each line must parse, and each input path it names must
exist after the earlier steps (or be written by an earlier line of the block).
A README edit that breaks a command breaks this test.
"""

from __future__ import annotations

import configparser
import glob
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("skimage")
pytestmark = pytest.mark.slow  # about a minute of CPU: every README command, small sizes

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

# Small sizes for the lines that would train for minutes (documented in the module docstring).
QUICK: dict[tuple[str, ...], list[str]] = {
    ("data", "synth"): ["--size", "64", "--train", "24", "--test-good", "4", "--test-defect", "6"],
    # before ("train",): the first matching prefix wins; fewer source images and steps per epoch
    ("train", "--model", "meta_comparer"): ["--epochs", "1", "--set", "model.image_size=[64,64]",
                                            "--set", "model.domain_normals=12", "--set", "model.domain_defects=6",
                                            "--set", "model.steps_per_epoch=8"],
    # the README's data.calibration_fraction=0.1 of 24 images is under the 10 a calibration part needs (refused)
    ("train",): ["--epochs", "1", "--set", "model.image_size=[64,64]", "--set", "data.calibration_fraction=0.5"],
    ("demo",): ["--quick"],
}
LONG_RUNNING = ("run", "subscribe")  # until Ctrl-C (run without --check)
OUTPUT_DESTS = {"out", "json", "report"}  # argparse dests naming files a command writes
TIMEOUT_S = 240


# ------------------------------------------------------------------------------------------ parsing
def bash_blocks(text: str) -> list[tuple[str, list[str]]]:
    """``(paragraph before the block, [command lines])`` for each ```bash fence of the README."""
    blocks = []
    for match in re.finditer(r"(?ms)^```bash\n(.*?)^```", text):
        before = text[:match.start()].rstrip().rsplit("\n\n", 1)[-1]
        lines = [ln.strip() for ln in match.group(1).splitlines() if ln.strip() and not ln.strip().startswith("#")]
        blocks.append((before, lines))
    return blocks


def readme_blocks() -> dict[str, list[str]]:
    """The README's blocks by role; fails when one goes missing."""
    blocks = bash_blocks(README.read_text(encoding="utf-8"))
    roles = {}
    for before, lines in blocks:
        if any(ln.startswith("python -m pytest") for ln in lines):
            roles["tests"] = lines
        elif "NVIDIA GPU" in before:
            roles["gpu"] = lines
        elif any("install-integrations.sh" in ln for ln in lines):  # system packages: CI runs it (.ci/run)
            roles["integrations"] = lines
        elif any(ln.startswith("inspector demo") for ln in lines):
            roles["quick_start"] = lines
        else:
            roles.setdefault("steps", []).extend(lines)
    assert set(roles) == {"tests", "gpu", "quick_start", "steps", "integrations"}, \
        f"README blocks found: {sorted(roles)}"
    return roles


def argv_of(line: str, cwd: Path) -> list[str]:
    """The words bash would pass: comments dropped, quotes removed, globs expanded in ``cwd``."""
    words = []
    for word in shlex.split(line, comments=True):
        hits = sorted(glob.glob(word, root_dir=cwd)) if any(c in word for c in "*?[") else []
        words.extend(hits or [word])
    return words


def quick(argv: list[str]) -> list[str]:
    for prefix, extra in QUICK.items():
        if tuple(argv[1:1 + len(prefix)]) == prefix:
            return argv + extra
    return argv


def check_pip_line(argv: list[str]) -> None:
    """``pip install … -e ".[a,b]"``: the extras it names exist in setup.cfg."""
    assert argv[:2] == ["pip", "install"], argv
    spec = argv[argv.index("-e") + 1]
    extras = re.fullmatch(r"\.\[([\w,-]+)\]", spec)
    assert extras, spec
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    known = set(cfg["options.extras_require"])
    assert set(extras.group(1).split(",")) <= known, f"{spec}: extras not in setup.cfg {sorted(known)}"


# ------------------------------------------------------------------------------------------ running
def inspector_exe() -> list[str]:
    script = Path(sys.executable).with_name("inspector")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "inspector"]


def user_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_line(argv: list[str], cwd: Path) -> str:
    """Run one finite command; fail with its output unless it exits 0."""
    proc = subprocess.run(inspector_exe() + argv[1:], cwd=cwd, env=user_env(), capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"`{shlex.join(argv)}` exited {proc.returncode}:\n{out[-3000:]}"
    return out


class Lines:
    """A started process whose merged output lines are read by a thread (so waits can time out)."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(inspector_exe() + argv[1:], cwd=cwd, env=user_env(), text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float = 90.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"`{shlex.join(self.argv)}`: no line matching {pattern!r} "
                             f"(exit {self.proc.poll()}):\n{''.join(self.seen)[-3000:]}")

    def interrupt(self) -> int:
        """Ctrl-C; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code


ONLINE = re.compile(r"camera '([^']+)': online")


def daemon_and_subscriber(run_argv: list[str], sub_argv: list[str], cwd: Path) -> tuple[str, str]:
    """Start the daemon, then a subscriber 'in another shell'; wait for one defect event; Ctrl-C both.

    Returns the subscriber's event line and the daemon's output."""
    daemon = Lines(run_argv, cwd)
    try:
        cameras = int(re.search(r"\d+", daemon.wait_for(r"^inspecting \d+ camera")).group())
        sub = Lines(sub_argv, cwd)
        try:
            event = sub.wait_for(r"\b(NG|uncertain)\b")
        finally:
            assert sub.interrupt() in (0, 130)
        # a user stops the daemon once every camera is up: a synthetic camera generates its frames while it
        # opens, which on a slow or loaded machine outlasts the first event of another camera
        while len({m.group(1) for m in map(ONLINE.search, daemon.seen) if m}) < cameras:
            daemon.wait_for(ONLINE.pattern)
    finally:
        code = daemon.interrupt()
    assert code == 0 and any(ln.startswith("stopped:") for ln in daemon.seen), "".join(daemon.seen)[-3000:]
    return event, "".join(daemon.seen)


def is_long_running(argv: list[str]) -> bool:
    return argv[1] in LONG_RUNNING and "--check" not in argv


def run_block(lines: list[str], cwd: Path) -> dict[str, str]:
    """Run a block's lines in order; a long-running 'run' is paired with the next 'subscribe' line."""
    outputs: dict[str, str] = {}
    pending_daemon, pending_line = None, ""
    for line in lines:
        argv = argv_of(line, cwd)
        if argv[0] == "pip":
            check_pip_line(argv)
        elif is_long_running(argv) and argv[1] == "run":
            pending_daemon, pending_line = argv, line
        elif is_long_running(argv):
            assert pending_daemon and "another shell" in line, f"{line}: subscribe needs a running daemon"
            outputs[line], outputs[pending_line] = daemon_and_subscriber(pending_daemon, argv, cwd)
            pending_daemon = None
        else:
            outputs[line] = run_line(quick(argv), cwd)
    assert pending_daemon is None, f"{shlex.join(pending_daemon)}: no subscriber line follows it"
    return outputs


# ------------------------------------------------------------------------------------------ tests
@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A working directory as a fresh clone has it for these commands: just the example config."""
    root = tmp_path_factory.mktemp("clone")
    shutil.copy(REPO / "inspector.example.yaml", root)
    return root


@pytest.fixture(scope="module")
def steps_done(clone) -> dict[str, str]:
    return run_block(readme_blocks()["steps"], clone)


def test_extracts_blocks_with_commands():
    text = "intro\n\n```bash\ninspector demo   # x\n# only a comment\n```\n\nOn a GPU\n\n```bash\ninspector build a\n```\n"
    assert bash_blocks(text) == [("intro", ["inspector demo   # x"]), ("On a GPU", ["inspector build a"])]
    assert argv_of("inspector predict m.onnx 'a b'/*.png --out o/  # c", Path("/nonexistent")) == \
        ["inspector", "predict", "m.onnx", "a b/*.png", "--out", "o/"]
    assert quick(["inspector", "train", "--out", "r"])[-6:] == QUICK[("train",)]


def test_quick_start_demo_with_default_relative_out(clone):
    """The demo with its default relative --out; then its `next:` suggestion works, from anywhere."""
    lines = readme_blocks()["quick_start"]
    assert lines[-1].split("#")[0].split() == ["inspector", "demo"], lines
    outputs = run_block(lines, clone)
    out = outputs[lines[-1]]
    summary = clone / "runs" / "demo" / "summary.json"
    assert summary.is_file() and (clone / "runs" / "demo" / "report.html").is_file(), out[-2000:]
    assert "runs/demo/runs/demo" not in summary.read_text()
    # next: inspector run --config runs/demo/daemon.yaml  (… in another shell: inspector subscribe …)
    next_line = re.search(r"^next: (inspector run [^(]+?)\s+\(.*?(inspector subscribe [^)]+)\)", out, re.M)
    assert next_line, out[-2000:]
    event, _ = daemon_and_subscriber(argv_of(next_line.group(1), clone), argv_of(next_line.group(2), clone), clone)
    assert "line1" in event
    elsewhere = clone / "elsewhere"
    elsewhere.mkdir()
    config = (clone / "runs" / "demo" / "daemon.yaml").resolve()
    assert "configuration OK" in run_line(["inspector", "run", "--config", str(config), "--check"], elsewhere)


def test_step_by_step_runs_as_written(steps_done, clone):
    lines = readme_blocks()["steps"]
    assert set(steps_done) == set(lines) - {ln for ln in lines if ln.startswith("pip ")}
    daemon = next(out for line, out in steps_done.items() if line.startswith("inspector run"))
    assert "camera 'line1': online" in daemon and "camera 'demo': online" in daemon, daemon[-2000:]
    predict = next(out for line, out in steps_done.items() if line.startswith("inspector predict"))
    assert re.search(r"\.png\t[-\d.e]+\t(OK|NG|uncertain)$", predict, re.M), predict[-2000:]
    assert (clone / "calibration" / "rs-brick.yaml").is_file()
    calibrate = next(out for line, out in steps_done.items() if line.startswith("inspector calibrate"))
    assert "image(s) from calibration split" in calibrate, calibrate[-2000:]  # the part the README trains for


def test_gpu_block_parses_and_names_existing_inputs(steps_done, clone):
    """Each GPU line parses; inputs exist after the CPU steps or come from an earlier line of the block."""
    from inspector.cli import build_parser

    written: set[Path] = set()
    for line in readme_blocks()["gpu"]:
        argv = argv_of(line, clone)
        if argv[0] == "pip":
            check_pip_line(argv)
            continue
        parser = build_parser(only=argv[1])
        args = parser.parse_args(argv[1:])  # argparse exits (SystemExit) on a bad line
        for dest, value in vars(args).items():
            if not isinstance(value, str) or "/" not in value or dest in ("func", "command"):
                continue
            path = Path(value)
            if dest in OUTPUT_DESTS:
                written.add(path)
            else:
                assert (clone / path).exists() or path in written, f"{line}: {value} is made by no earlier step"


def test_integrations_block_is_what_ci_runs():
    """The plant-integrations install (apt script + extras) exists, and .ci/run runs exactly those lines."""
    lines = readme_blocks()["integrations"]
    ci = (REPO / ".ci" / "run").read_text()
    for line in lines:
        argv = argv_of(line, REPO)
        if argv[0] == "pip":
            check_pip_line(argv)
            assert f"python -m {line.split('#')[0].strip()}".replace("pip install", "pip install -q") in ci, line
        else:
            script = REPO / argv[-1]
            assert argv[:1] == ["sudo"] and script.is_file() and os.access(script, os.X_OK), line
            assert argv[-1] in ci, line


def test_tests_block_is_the_plain_suite():
    assert readme_blocks()["tests"] == ["python -m pytest -q"]
