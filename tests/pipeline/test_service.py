"""`inspector service install` and the systemd protocol: unit text, sd_notify over a real AF_UNIX socket,
journald-style log lines."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline_support import base_config, defect_pattern, write_folder

CLI = [sys.executable, "-c", "import sys; from inspector.cli import main; sys.exit(main())"]
REPO = Path(__file__).resolve().parents[2]


def test_print_unit_and_write_it(tmp_path):
    config = REPO / "inspector.example.yaml"
    out = subprocess.run([*CLI, "service", "install", "--config", str(config), "--print", "--user", "inspect"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    unit = out.stdout
    for line in ("Type=notify", "Restart=on-failure", "WatchdogSec=30", "RestartPreventExitStatus=2",
                 "User=inspect", f"WorkingDirectory={REPO}", "WantedBy=multi-user.target"):
        assert line in unit.splitlines(), line
    exec_start = next(x for x in unit.splitlines() if x.startswith("ExecStart="))
    assert exec_start.endswith(f"run --config {config}") and Path(exec_start.split("=", 1)[1].split()[0]).is_absolute()

    wrote = subprocess.run([*CLI, "service", "install", "--config", str(config), "--unit-dir", str(tmp_path),
                            "--name", "inspector-line1", "--watchdog-s", "0"], capture_output=True, text=True)
    assert wrote.returncode == 0, wrote.stderr
    text = (tmp_path / "inspector-line1.service").read_text()
    assert "SyslogIdentifier=inspector-line1" in text and "\nWatchdogSec" not in text
    if shutil.which("systemd-analyze"):
        check = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "inspector-line1.service")],
                               capture_output=True, text=True)
        assert "inspector-line1.service:" not in check.stderr, check.stderr  # no complaint about our unit


def test_bad_config_or_args_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {path: x.onnx}\ncameras: []\nmetrcs: {}\n")
    out = subprocess.run([*CLI, "service", "install", "--config", str(bad), "--print"], capture_output=True, text=True)
    assert out.returncode == 2 and "did you mean 'metrics'" in out.stderr and len(out.stderr.splitlines()) == 1
    out = subprocess.run([*CLI, "service", "install", "--config", str(REPO / "inspector.example.yaml"),
                          "--unit-dir", str(tmp_path / "nope")], capture_output=True, text=True)
    assert out.returncode == 2 and "--unit-dir" in out.stderr and "Traceback" not in out.stderr


def test_install_never_replaces_a_unit_it_did_not_write(tmp_path):
    """--name ssh (or a hand-written unit of the same name) was overwritten silently; its own unit is updated."""
    config = str(REPO / "inspector.example.yaml")
    other = tmp_path / "ssh.service"
    other.write_text("[Unit]\nDescription=OpenBSD Secure Shell server\n")
    out = subprocess.run([*CLI, "service", "install", "--config", config, "--unit-dir", str(tmp_path), "--name", "ssh"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr == (f"error: --name: {other} exists and was not written by 'inspector "
                                                  f"service install'; choose another --name, or remove that unit "
                                                  f"first\n"), out.stderr
    assert other.read_text() == "[Unit]\nDescription=OpenBSD Secure Shell server\n"
    for _ in range(2):  # writing, then updating its own unit
        out = subprocess.run([*CLI, "service", "install", "--config", config, "--unit-dir", str(tmp_path)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr


def test_run_notifies_ready_watchdog_stopping_and_logs_for_journald(tiny_model, endpoint, tmp_path):
    folder = write_folder(tmp_path / "frames", defect_pattern(20))
    cfg = base_config(tiny_model, endpoint, [{"name": "cam0", "source": str(folder), "fps": 20.0}])
    config = tmp_path / "inspector.yaml"
    config.write_text(yaml.safe_dump(cfg))
    sock_path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(sock_path)
        sock.settimeout(0.5)
        env = {**os.environ, "NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "100000", "JOURNAL_STREAM": "8:1234"}
        proc = subprocess.Popen([*CLI, "run", "--config", str(config)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        messages = []
        while proc.poll() is None or not messages or messages[-1] != "STOPPING=1":
            try:
                messages.append(sock.recv(4096).decode())
            except socket.timeout:
                if proc.poll() is not None:
                    break
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert messages[0].startswith("READY=1") and messages[-1] == "STOPPING=1", messages
    assert messages.count("WATCHDOG=1") >= 5  # every 50 ms over a ~1 s run
    lines = [x for x in err.splitlines() if x]
    assert lines and all(x.startswith(("<6>", "<4>", "<7>", "<3>")) or not x.startswith("<") for x in lines)
    assert any(x.startswith("<6>inspector.daemon: ") for x in lines), err
    assert not any(x[:4].isdigit() for x in lines if x.startswith("<"))  # no timestamp: journald adds it
