"""Per-role CPU time (inspector.pipeline.cputime) and its place in the daemon's v1/stats."""

from __future__ import annotations

import threading
import time

import pytest

from inspector.pipeline.cputime import ThreadCpu, split_role
from pipeline_support import base_config, by_type, defect_pattern, run_to_end, write_video


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_busy_registered_thread_is_charged_to_its_role_and_kept_after_it_ends():
    cpu = ThreadCpu()

    def busy():
        cpu.register("busy")
        _spin(0.3)
        cpu.finish()

    def idle():
        cpu.register("idle")
        time.sleep(0.3)

    threads = [threading.Thread(target=busy), threading.Thread(target=idle)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    during = cpu.snapshot()  # read while both are alive
    for t in threads:
        t.join()
    after = cpu.snapshot()  # both ended: their last readings stay
    assert after["busy"] >= 0.2 and after["busy"] >= during["busy"]
    assert after.get("idle", 0.0) < 0.05
    assert "main" in after


def test_split_role_moves_a_part_out_and_never_goes_negative():
    assert split_role({"batcher": 2.0, "x": 1.0}, "batcher", "preprocess", 1.5) == \
        {"batcher": 0.5, "x": 1.0, "preprocess": 1.5}
    assert split_role({"batcher": 1.0}, "batcher", "preprocess", 3.0) == {"batcher": 0.0, "preprocess": 1.0}


def test_daemon_stats_report_cpu_per_role(tiny_model, endpoint, tmp_path):
    defects = defect_pattern(32, every=4, offset=1)
    video = write_video(tmp_path / "line.avi", defects)
    cfg = base_config(tiny_model, endpoint, [{"name": "cam0", "source": str(video)}],
                      batching={"max_batch": 4, "max_wait_ms": 2})
    cfg["model"]["threads"] = 2  # an ONNX Runtime intra-op pool of one extra thread
    daemon, code, events = run_to_end(cfg)
    assert code == 0, daemon.failures
    final = [e for e in by_type(events, "stats") if e.final][0]
    cpu = final.data["cpu_s"]
    assert {"capture", "batcher", "preprocess", "inference", "inference_pool", "postprocess",
            "publisher"} <= set(cpu)
    assert all(v >= 0 for v in cpu.values())
    assert sum(cpu.values()) == pytest.approx(sum(daemon.final_stats["cpu_s"].values()))
