"""Must-show of issue 15: a subscriber across a daemon restart — events received, missed events reported, the
restart detected — and an offline run that waits for its subscriber loses nothing."""

from __future__ import annotations

import threading
import time

from pipeline_support import base_config
from inspector.client import Subscriber
from inspector.pipeline.config import daemon_config
from inspector.pipeline.daemon import Daemon


def _config(model, endpoint: str, frames: int, fps: float, wait: int) -> dict:
    camera = {"name": "cam", "source": "synthetic", "max_frames": frames, "fps": fps,
              "synthetic": {"texture": "procedural", "size": 64, "pool": 2, "defect_rate": 1.0}}
    return base_config(model, endpoint, [camera], thresholds={"image": 0.0},
                       publish={"results": False, "wait_for_subscribers": wait,
                                "wait_for_subscribers_timeout_s": 20.0})


def _defects(sub: Subscriber, n: int, timeout: float = 20.0) -> list:
    got, deadline = [], time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        event = sub.recv(timeout=0.5)
        if event is not None and event.type == "defect":
            got.append(event)
    return got


def test_subscriber_across_a_daemon_restart(tiny_model, tmp_path, capsys):
    endpoint = f"ipc://{tmp_path}/d.sock"
    notices: list[str] = []
    with Subscriber(endpoint, ["v1/defect"]) as sub:  # connects before any daemon exists
        # run 1: an offline batch that waits for one subscriber: every event arrives, from seq 0
        run1 = Daemon(daemon_config(_config(tiny_model, endpoint, 6, 0.0, wait=1)))
        done = threading.Thread(target=run1.run)
        done.start()
        first = _defects(sub, 6)
        done.join(30)
        notices += sub.notices()
        assert [e.seq for e in first] == list(range(6)) and sub.lost == 0 and sub.restarts == 0
        # run 2: the same endpoint, restarted; a second subscriber joins late and learns what it missed
        run2 = Daemon(daemon_config(_config(tiny_model, endpoint, 30, 20.0, wait=1)))
        done = threading.Thread(target=run2.run)
        done.start()
        second = _defects(sub, 5)
        with Subscriber(endpoint, ["v1/defect"]) as late:
            late_events = _defects(late, 3)
            late_notices = late.notices()
            late_missed = late.missed_at_start
        run2.request_stop()
        done.join(30)
        notices += sub.notices()
    runs = {e.run_id for e in first} | {e.run_id for e in second}
    assert len(runs) == 2 and {e.run_id for e in first} == {run1.run_id}
    assert sub.restarts == 1 and "daemon restarted" in " ".join(notices)
    assert second[0].seq == 0 and second[0].run_id == run2.run_id  # seq 0 again is a new run, not a loss
    assert late_events and late_missed == late_events[0].seq > 0 and "missed" in late_notices[0]
    with capsys.disabled():
        print(f"\nrun 1 {run1.run_id}: received seq {[e.seq for e in first]}; run 2 {run2.run_id}: received seq "
              f"{[e.seq for e in second]}; subscriber: {sub.loss.summary()}")
        print("  " + "\n  ".join(notices))
        print(f"late joiner: first seq {late_events[0].seq}; {late_notices[0]}")
