"""`inspector subscribe` as a user runs it, against a live daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipeline_support import base_config, defect_pattern, write_video
from inspector.pipeline.config import daemon_config
from inspector.pipeline.daemon import Daemon

REPO = Path(__file__).resolve().parents[2]


def _subscribe(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "inspector", "subscribe", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_subscribe_prints_and_saves_defects(tiny_model, endpoint, tmp_path):
    video = write_video(tmp_path / "v.avi", defect_pattern(12, every=2))
    cfg = base_config(tiny_model, endpoint, [{"name": "cam0", "source": str(video), "loop": True, "fps": 100}])
    daemon = Daemon(daemon_config(cfg))
    daemon.start()
    try:
        save = tmp_path / "events"
        res = _subscribe(endpoint, "--topic", "v1/defect", "--json", "--count", "3", "--save-dir", str(save))
        human = _subscribe(endpoint, "--count", "2")
    finally:
        daemon.request_stop()
        assert daemon.wait() == 0
    assert res.returncode == 0, res.stderr
    headers = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(headers) == 3 and all(h["type"] == "defect" and h["decision"] == "NG" for h in headers)
    assert len(list(save.glob("defect-cam0-*.json"))) == 3
    assert len(list(save.glob("*.thumbnail.jpg"))) == 3 and len(list(save.glob("*.anomaly_map.png"))) == 3
    assert human.returncode == 0, human.stderr
    lines = human.stdout.splitlines()
    assert len(lines) == 2 and all("cam0" in line for line in lines)


def test_subscribe_timeout_without_daemon(endpoint):
    res = _subscribe(endpoint, "--timeout", "0.3")
    assert res.returncode == 0 and "no event for 0.3 s" in res.stderr


def test_subscribe_exits_1_when_fewer_events_than_its_count_came_before_the_timeout(tiny_model, endpoint, tmp_path):
    """A script waiting for N events could not tell 'none came' from success: both exited 0."""
    res = _subscribe(endpoint, "--count", "5", "--timeout", "0.3")
    assert res.returncode == 1, res.stderr
    assert "0 of the 5 event(s) asked for (--count) came before --timeout 0.3 s ran out" in res.stderr
    assert res.stderr.strip().splitlines()[-1].endswith("exit 1")
    video = write_video(tmp_path / "v.avi", defect_pattern(12, every=2))
    cfg = base_config(tiny_model, endpoint, [{"name": "cam0", "source": str(video), "loop": True, "fps": 100}])
    daemon = Daemon(daemon_config(cfg))
    daemon.start()
    try:  # the count reached: 0, as before
        reached = _subscribe(endpoint, "--topic", "v1/defect", "--count", "2", "--timeout", "20")
    finally:
        daemon.request_stop()
        assert daemon.wait() == 0
    assert reached.returncode == 0, reached.stderr
