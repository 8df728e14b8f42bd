"""What the daemon warns of as it starts and what fails at run time about a setting names the config file.

Start-up errors already did (``daemon.yaml: model.path: …``, tests/test_file_key_messages.py); the warnings of
``--check`` and start (``recorder.min_free_bytes`` above the free space, a camera folder that cannot take
recordings) and the run-time failures of a setting (a camera source that fails, the recorder's folder, the MQTT
broker) said the key alone, or ``camera 'a':``: with three daemons on one box (a config per line) the engineer
could not tell which file to fix. Real daemons in their own processes, real files and sockets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from net_faults import free_port
from pipeline_support import base_config

ROOT = Path(__file__).resolve().parents[2]


def _run(config: Path, *extra: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspector", "run", "--config", str(config), *extra],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _lines(err: str, level: str) -> list[str]:
    """The log lines of ``level``, each from after its logger's name (``WARNING inspector.daemon: …``)."""
    return [line.split(": ", 1)[1] for line in err.splitlines() if f" {level} inspector." in line]


def _write(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_check_warnings_name_the_file_and_the_setting(tiny_model, tmp_path):
    disk = shutil.disk_usage(tmp_path)
    if disk.free >= disk.total:
        pytest.skip("no space in use on this file system: min_free_bytes cannot lie between free and total")
    between = (disk.free + disk.total) // 2  # more than is free now, less than the disk holds: a warning
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "a").write_text("not a folder")  # camera a's recordings folder is a file
    config = _write(tmp_path / "line2.yaml", base_config(
        tiny_model, f"ipc://{tmp_path}/p.sock", [{"name": "a", "source": "synthetic", "max_frames": 2}],
        recorder={"enabled": True, "dir": "rec", "min_free_bytes": between}))
    proc = _run(config, "--check")
    assert proc.returncode == 0, proc.stderr
    warnings = _lines(proc.stderr, "WARNING")
    assert any(w.startswith(f"{config}: recorder.min_free_bytes: {between}, but only ") for w in warnings), warnings
    assert any(w.startswith(f"{config}: recorder.dir: ") and "camera 'a' will be inspected but not recorded" in w
               for w in warnings), warnings
    # a value given with --set is told as set there, as the loader's errors
    proc = _run(config, "--check", "--set", f"recorder.min_free_bytes={between}")
    assert any(w.startswith(f"--set recorder.min_free_bytes: {between}, but only ")
               for w in _lines(proc.stderr, "WARNING")), proc.stderr


def test_a_camera_that_fails_at_run_time_names_the_file_and_the_camera_entry(tiny_model, tmp_path):
    """An HTTP camera on a port nobody listens on: reconnecting, then failed (max_attempts 2), at run time."""
    port = free_port()
    config = _write(tmp_path / "line3.yaml", base_config(
        tiny_model, f"ipc://{tmp_path}/p.sock",
        [{"name": "s", "source": "synthetic", "max_frames": 2},
         {"name": "gate", "source": f"http://127.0.0.1:{port}/video", "reconnect": {"max_attempts": 2}}]))
    proc = _run(config)
    warnings = _lines(proc.stderr, "WARNING")
    for state in ("reconnecting", "failed"):
        told = [w for w in warnings if f"camera 'gate': {state} (" in w]
        assert len(told) == 1 and told[0].startswith(f"{config}: cameras[1], camera 'gate': {state} ("), warnings
    assert "Traceback" not in proc.stderr


def test_the_recorder_told_at_run_time_names_the_file(tiny_model, tmp_path):
    """The recorder's own line as it starts recording (its camera's folder is a file) names the file and
    recorder.dir; before: ``recorder: camera 'a' is not recorded: …``."""
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "a").write_text("not a folder")
    config = _write(tmp_path / "line4.yaml", base_config(
        tiny_model, f"ipc://{tmp_path}/p.sock", [{"name": "a", "source": "synthetic", "max_frames": 3}],
        recorder={"enabled": True, "dir": "rec", "min_free_bytes": 0}))
    proc = _run(config)
    errors = _lines(proc.stderr, "ERROR")
    assert any(e.startswith(f"{config}: recorder.dir: camera 'a' is not recorded: ") for e in errors), proc.stderr
    assert (tmp_path / "rec" / "a").read_text() == "not a folder"


def test_an_mqtt_broker_that_cannot_be_reached_names_the_file_and_the_url(tiny_model, tmp_path):
    pytest.importorskip("paho.mqtt")
    port = free_port()  # nothing listens there: the bridge cannot connect, at run time
    config = _write(tmp_path / "line5.yaml", base_config(
        tiny_model, f"ipc://{tmp_path}/p.sock", [{"name": "a", "source": "synthetic", "max_frames": 3}],
        publish={"mqtt": {"url": f"mqtt://127.0.0.1:{port}", "state_file": str(tmp_path / "bridge.json")}}))
    proc = _run(config)
    warnings = _lines(proc.stderr, "WARNING")
    told = [w for w in warnings if "cannot connect" in w]
    assert told and told[0].startswith(f"{config}: publish.mqtt.url: broker mqtt://127.0.0.1:{port}: cannot "
                                       f"connect: "), warnings


def test_the_file_is_named_once_and_lines_about_no_setting_are_left_alone():
    from inspector.pipeline.config import said_of_file

    path = "/etc/inspector/line1.yaml"
    assert said_of_file("recorder.dir: x", path) == f"{path}: recorder.dir: x"
    assert said_of_file(f"{path}: recorder.dir: x", path) is None  # a start-up error already told of its file
    assert said_of_file("camera 'b': failed (eof)", path, cameras=("a", "b")) == \
        f"{path}: cameras[1], camera 'b': failed (eof)"
    assert said_of_file("camera 'z': failed", path, cameras=("a",)) is None  # no such camera in the file
    assert said_of_file("no frame was inspected in this run", path) is None
    assert said_of_file("recorder.dir: x", path, overrides=["recorder.dir=/r"]) == "--set recorder.dir: x"


def test_check_tells_a_max_bytes_below_one_recording_of_the_first_frame(tiny_model, tmp_path):
    """recorder.max_bytes above the least recording (434 bytes, refused below) but below one recording of the
    camera's frames (a 256x256 frame is ~96 kB as PNG) kept only the newest recording, told only at the first
    defect of the run. --check reads the first frame of a camera that is no live one and warns in one line
    naming the file and the setting (a warning: another frame may compress better; the newest is kept)."""
    config = _write(tmp_path / "line6.yaml", base_config(
        tiny_model, f"ipc://{tmp_path}/p.sock",
        [{"name": "a", "source": "synthetic", "max_frames": 2, "synthetic": {"size": 256}}],
        recorder={"enabled": True, "dir": "rec", "min_free_bytes": 0, "max_bytes": 5000}))
    proc = _run(config, "--check")
    assert proc.returncode == 0, proc.stderr
    told = [w for w in _lines(proc.stderr, "WARNING") if "recorder.max_bytes" in w]
    assert len(told) == 1 and told[0].startswith(f"{config}: recorder.max_bytes: 5000 is less than one recording of "
                                                 f"camera 'a' (its first frame, 256x256, makes one of at least "), told
    proc = _run(config, "--check", "--set", "recorder.max_bytes=2000000")  # room for ~20 recordings: no word
    assert proc.returncode == 0 and "recorder.max_bytes" not in proc.stderr, proc.stderr


def test_the_closing_failure_lines_name_the_file_the_camera_its_source_and_why(tiny_model, tmp_path):
    """A file camera whose recording cannot be opened (half an MP4: its index is gone) fails beside a healthy one.
    The run's closing lines (the log's last ERROR lines, ``failures`` in the summary JSON, the last line on stdout)
    said ``camera(s) ['rec'] failed``: not which config file, not the camera's source, not why."""
    from tests.pipeline.test_source_lifecycle import _truncated_mp4

    video = _truncated_mp4(tmp_path / "cut.mp4")
    os.utime(video, (time.time() - 60, time.time() - 60))  # not a recording still being written
    config = _write(tmp_path / "line7.yaml", base_config(
        tiny_model, f"ipc://{tmp_path}/p.sock",
        [{"name": "s", "source": "synthetic", "max_frames": 2}, {"name": "rec", "source": str(video)}],
        summary_json=str(tmp_path / "summary.json")))
    proc = _run(config)
    assert proc.returncode == 1, proc.stderr
    failures = json.loads((tmp_path / "summary.json").read_text())["failures"]
    assert len(failures) == 1, failures
    line = failures[0]
    head = f"{config}: cameras[1], camera 'rec': source file {video} failed: "
    assert line.startswith(head) and len(line) > len(head) + 10, line  # and the cause, as the capture told it
    said = [w for w in _lines(proc.stderr, "WARNING") if "camera 'rec': failed (" in w]
    assert len(said) == 1 and line[len(head):] in said[0], (line, said)  # the cause its 'failed' line gave
    assert line in _lines(proc.stderr, "ERROR"), proc.stderr
    assert proc.stdout.rstrip().splitlines()[-1].endswith(f"; failures: {line}"), proc.stdout


def _queue_heavy_config(tmp_path: Path, tiny_model: Path, size: int, recorder_queue: int) -> Path:
    return _write(tmp_path / f"queues-{size}-{recorder_queue}.yaml", base_config(
        tiny_model, f"ipc://{tmp_path}/q{size}.sock",
        [{"name": "a", "source": "synthetic", "max_frames": 2, "synthetic": {"size": size}}],
        recorder={"enabled": True, "dir": "rec", "min_free_bytes": 0, "queue_size": recorder_queue}))


def test_queues_that_would_outgrow_the_machine_s_memory_are_told_by_check_and_by_the_run(tiny_model, tmp_path):
    """recorder.queue_size 100000 passes --check's range, but the queue holds whole frames: 100000 frames of
    1024x1024 colour are 315 GB (318 with the other queues), so a stalled disk would run the box out of memory and the kernel would end the
    daemon, its queued defects with it, long before the queue's counted drop. --check (a camera that is no live
    one: its first frame read) and the run (each camera's first frame) warn in one line naming the camera, the
    sizes and the settings; small frames at the same sizes are no word."""
    from inspector.pipeline.queue_memory import physical_memory_bytes

    memory = physical_memory_bytes()
    assert memory is not None and 1024 * 1024 * 3 * 101032 > memory  # the case holds on this machine
    config = _queue_heavy_config(tmp_path, tiny_model, 1024, 100_000)
    for extra in (("--check",), ()):
        proc = _run(config, *extra, timeout=180)
        assert proc.returncode == 0, proc.stderr
        told = [w for w in _lines(proc.stderr, "WARNING") if "the daemon's queues" in w]
        assert len(told) == 1, (extra, proc.stderr)
        assert ("camera 'a': its frames (3.1 MB each) fill the daemon's queues with 101032 of them at most "
                "(batching.queue_size 8 + publish.queue_size 1024 + recorder.queue_size 100000): 317.8 GB") in told[0]
    proc = _run(_queue_heavy_config(tmp_path, tiny_model, 64, 100_000), "--check")  # 1.2 GB: room enough
    assert proc.returncode == 0 and "the daemon's queues" not in proc.stderr, proc.stderr
