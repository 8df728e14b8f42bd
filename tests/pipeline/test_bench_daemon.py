"""The daemon benchmark runs end to end (tiny model, few frames) and writes its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_daemon_smoke(tiny_model, tmp_path):
    out = tmp_path / "daemon.json"
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_daemon.py"), "--model", str(tiny_model),
                          "--cameras", "1", "2", "--frames", "16", "--bare-seconds", "0.3", "--frame-size", "96",
                          "--threads", "1", "--out", str(out)],
                         capture_output=True, text=True, timeout=120, env={**os.environ})
    assert res.returncode == 0, res.stdout + res.stderr
    data = json.loads(out.read_text())
    assert [r["cameras"] for r in data["runs"]] == [1, 2]
    for run in data["runs"]:
        assert run["events_received"] == run["frames"] == 16 * run["cameras"]
        assert run["throughput_fps"] > 0 and run["ratio_to_bare"] > 0
        assert {"p50", "p99"} <= set(run["stages_ms"]["inferred"])
    assert data["bare_backend"]["fps"] > 0
