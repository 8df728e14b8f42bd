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
                 "User=inspect", f"WorkingDirectory={REPO}", "WantedBy=multi-user.target",
                 "StateDirectory=inspector"):  # $STATE_DIRECTORY: the MQTT bridge's state, the service user's
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


def test_install_replaces_only_its_own_unit_and_says_so(tmp_path):
    """README "Outputs": a hand-written unit of the name is kept (one line, exit 2); an earlier install's unit is
    replaced and the command says so (it said only 'wrote', as for a new unit)."""
    install = [*CLI, "service", "install", "--config", str(REPO / "inspector.example.yaml"), "--unit-dir",
               str(tmp_path), "--name", "line2"]
    mine = "[Unit]\nDescription=the plant's own line 2 service\n"
    (tmp_path / "line2.service").write_text(mine)
    out = subprocess.run(install, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1 and "not written by" in out.stderr
    assert (tmp_path / "line2.service").read_text() == mine
    (tmp_path / "line2.service").unlink()
    first = subprocess.run(install, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0 and "replaced" not in first.stdout, first.stderr
    again = subprocess.run(install, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert f"wrote {tmp_path / 'line2.service'} (replaced the unit an earlier 'service install' wrote)" in again.stdout


def test_bad_config_or_args_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {path: x.onnx}\ncameras: []\nmetrcs: {}\n")
    out = subprocess.run([*CLI, "service", "install", "--config", str(bad), "--print"], capture_output=True, text=True)
    assert out.returncode == 2 and "did you mean 'metrics'" in out.stderr and len(out.stderr.splitlines()) == 1
    out = subprocess.run([*CLI, "service", "install", "--config", str(REPO / "inspector.example.yaml"),
                          "--unit-dir", str(tmp_path / "nope")], capture_output=True, text=True)
    assert out.returncode == 2 and "--unit-dir" in out.stderr and "Traceback" not in out.stderr


# a folder name as plants write them ('line 1', '50%'), with what systemd reads specially: %h (a specifier), $X
ODD_FOLDER = "line 1 50%h $X"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_a_unit_for_a_folder_with_spaces_and_percent_signs_runs_that_folders_files(tmp_path):
    """shlex.join's shell quoting and the raw paths: systemd expanded '%h' in ExecStart, WorkingDirectory and
    Documentation ('/srv/50%h/c.yaml' named /srv/50/root/c.yaml) and cut Documentation's URL at the space."""
    from inspector.integrations.systemd import unit_file

    folder = tmp_path / ODD_FOLDER
    folder.mkdir()
    config = folder / "inspector.yaml"
    shutil.copy(REPO / "inspector.example.yaml", config)
    exe = folder / "inspector"  # systemd-analyze checks the command it reads back exists and is executable
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    unit = tmp_path / "odd.service"
    unit.write_text(unit_file(config, "odd", executable=str(exe)))
    check = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert "odd.service:" not in check.stderr, check.stderr  # no "not executable", no "Invalid URL"
    lines = unit.read_text().splitlines()
    assert f"WorkingDirectory={str(folder).replace('%', '%%')}" in lines
    command, argument = str(exe).replace("%", "%%"), str(config).replace("$", "$$").replace("%", "%%")
    assert f'ExecStart="{command}" run --config "{argument}"' in lines  # '$' kept in the command: never substituted


@pytest.mark.parametrize("option, value", [("--user", "root\nExecStartPre=/bin/touch /tmp/x"), ("--user", "a b"),
                                           ("--config", "line\nExecStartPre=x/inspector.yaml")])
def test_what_a_unit_line_cannot_hold_is_refused_in_one_line(tmp_path, option, value):
    """A newline in --user or in the config's path wrote a directive of its own into the unit (ExecStartPre=, run
    as root at every start); a space in --user a unit systemd refuses to load."""
    config = REPO / "inspector.example.yaml"
    if option == "--config":
        (tmp_path / value).parent.mkdir()
        shutil.copy(config, tmp_path / value)
        config = tmp_path / value
    args = ["--user", value] if option == "--user" else []
    out = subprocess.run([*CLI, "service", "install", "--config", str(config), *args, "--print"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stdout == "", out.stdout
    # '--user' is refused by its argument type ('argument --user: …'), the config's path by the unit writer
    assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith("error: ") and option in out.stderr, out.stderr


@pytest.mark.parametrize("name", ["@a", "a@", "a@b@c", "..", ".", "-x", "x.service"])
def test_a_unit_name_systemd_cannot_use_is_refused_in_one_line(tmp_path, name):
    """Each was written: '@a.service' systemd cannot load, 'a@' is a template 'systemctl enable --now a@' cannot
    start, '..' a StateDirectory= systemd ignores, '-x' an option to the systemctl line printed, 'x.service' the
    unit x.service.service."""
    out = subprocess.run([*CLI, "service", "install", "--config", str(REPO / "inspector.example.yaml"),
                          "--unit-dir", str(tmp_path), f"--name={name}"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1, out.stderr
    assert out.stderr.startswith(f"error: --name: '{name}' is not a valid unit name"), out.stderr
    assert list(tmp_path.iterdir()) == []


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


def _told(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "inspector.systemd" and r.levelno >= 30]


@pytest.mark.parametrize("case", ["missing", "stream-socket", "folder"])
def test_a_notify_socket_that_cannot_be_sent_to_is_told_once(tmp_path, caplog, case):
    """sd_notify to a $NOTIFY_SOCKET that is gone, a stream socket or a folder failed in silence at READY and at
    every watchdog ping: under Type=notify systemd then stops the daemon with no word why from it."""
    from inspector.integrations.systemd import Notifier

    path = tmp_path / "notify"
    server = None
    if case == "stream-socket":
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        server.listen()
    elif case == "folder":
        path.mkdir()
    notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2"})
    try:
        notifier.ready("inspecting")
        for _ in range(5):
            notifier._next_ping = 0.0  # each tick pings now
            notifier.tick()
        notifier.stopping()
    finally:
        if server is not None:
            server.close()
    told = _told(caplog)
    assert len(told) == 1 and f"NOTIFY_SOCKET='{path}': cannot send READY=1 to systemd" in told[0], told


def test_an_abstract_notify_socket_gets_ready_and_a_full_one_does_not_hold_the_daemon(caplog):
    """'@name' is the abstract namespace (sd_notify(3)). A receiver that does not read: its queue full, the blocking
    send waited for ever, holding the daemon's supervision loop (and its shutdown) with it."""
    import threading

    from inspector.integrations.systemd import Notifier

    name = f"inspector-test-{os.getpid()}"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind("\0" + name)
    try:
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.notify("READY=1")
        assert receiver.recv(100) == b"READY=1"
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        filler.connect("\0" + name)
        filler.setblocking(False)
        try:
            while True:  # the receiver's queue, full
                filler.send(b"x" * 512)
        except BlockingIOError:
            pass
        sent = []
        sender = threading.Thread(target=lambda: sent.append(notifier.notify("WATCHDOG=1")), daemon=True)
        sender.start()
        sender.join(60)  # bounded: without a send timeout this never returned
        assert not sender.is_alive() and sent == [False]
        filler.close()
    finally:
        receiver.close()
    assert len(_told(caplog)) == 1 and "cannot send WATCHDOG=1" in _told(caplog)[0], _told(caplog)


@pytest.mark.parametrize("usec", ["0", "30s", "-5", "1e6"])
def test_a_watchdog_usec_that_is_no_interval_is_told_once(caplog, usec):
    """WATCHDOG_USEC=30s (a unit file's Environment= written by hand) was ignored in silence: no pings, and
    systemd's WatchdogSec= stopped the daemon."""
    from inspector.integrations.systemd import Notifier

    notifier = Notifier({"WATCHDOG_USEC": usec})
    assert notifier.watchdog_s is None
    told = _told(caplog)
    assert len(told) == 1 and f"WATCHDOG_USEC='{usec}' is not a positive whole number of microseconds" in told[0]
