"""Prometheus endpoint: a real daemon on real frames, scraped over HTTP and parsed with prometheus_client."""

from __future__ import annotations

import importlib.util
import os
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline_support import base_config, defect_pattern, free_port, write_folder

ARTIFACTS = Path(os.environ.get("INSPECTOR_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
prom_parser = pytest.importorskip("prometheus_client.parser", reason="needs the 'metrics' extra")


def scrape(url: str) -> dict[str, list]:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return {f.name: f.samples for f in prom_parser.text_string_to_metric_families(text)}, text


def value(samples, metric: str, **labels) -> float:
    hits = [s.value for s in samples if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(hits) == 1, (metric, labels, [s for s in samples if s.name == metric])
    return hits[0]


def test_scrape_counts_decisions_latency_and_model(tiny_model, endpoint, tmp_path):
    from inspector.pipeline.config import daemon_config
    from inspector.integrations.runtime import make_daemon
    from inspector.pipeline.telemetry import bucket_upper_ms

    defects = defect_pattern(24, every=3, offset=1)
    folder = write_folder(tmp_path / "frames", defects)
    listen = f"127.0.0.1:{free_port()}"
    cfg = base_config(tiny_model, endpoint, [{"name": "cam0", "source": str(folder)}], metrics={"listen": listen})
    daemon = make_daemon(daemon_config(cfg))
    daemon.start()
    try:
        url = f"http://{listen}/metrics"
        deadline = time.monotonic() + 20
        while True:
            families, text = scrape(url)
            decisions = families.get("inspector_decisions", [])
            if sum(s.value for s in decisions if s.name.endswith("_total")) == len(defects):
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.1)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "metrics.txt").write_text(text)
    finally:
        daemon.wait(timeout=20)

    d = families["inspector_decisions"]
    assert value(d, "inspector_decisions_total", camera="cam0", decision="NG") == sum(defects)
    assert value(d, "inspector_decisions_total", camera="cam0", decision="OK") == len(defects) - sum(defects)
    assert value(families["inspector_frames_captured"], "inspector_frames_captured_total", camera="cam0") == 24
    assert value(families["inspector_camera_drops"], "inspector_camera_drops_total",
                 camera="cam0", reason="corrupt") == 0
    assert value(families["inspector_camera_drops"], "inspector_camera_drops_total",  # a live stream's lost data
                 camera="cam0", reason="concealed") == 0
    for what in ("size", "format"):  # one camera's pictures throughout
        assert value(families["inspector_camera_frame_changes"], "inspector_camera_frame_changes_total",
                     camera="cam0", what=what) == 0
    # per-stage histograms: the count matches the frames, buckets are cumulative and lie on the v1/stats grid
    lat = families["inspector_stage_latency_seconds"]
    assert value(lat, "inspector_stage_latency_seconds_count", stage="total") == len(defects)
    buckets = [s for s in lat if s.name.endswith("_bucket") and s.labels["stage"] == "inferred"]
    bounds = [float(s.labels["le"]) for s in buckets]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts) and counts[-1] == len(defects) and bounds[-1] == float("inf")
    grid = [bucket_upper_ms(k) / 1000 for k in range(1, 700)]
    assert all(any(abs(b - g) <= 1e-6 * g for g in grid) for b in bounds[:-1])
    model = value(families["inspector_model_info"], "inspector_model_info", name="tiny", backend="onnxruntime")
    assert model == 1
    state = families["inspector_camera_state"]
    assert sum(s.value for s in state if s.labels.get("camera") == "cam0") == 1  # exactly one state is set


def test_metrics_port_in_use_is_one_line(tiny_model, endpoint):
    import socket

    from inspector.errors import ConfigError
    from inspector.pipeline.config import daemon_config
    from inspector.integrations.runtime import make_daemon

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        listen = f"127.0.0.1:{busy.getsockname()[1]}"
        cfg = base_config(tiny_model, endpoint, [{"name": "cam0", "source": "synthetic", "max_frames": 1}],
                          metrics={"listen": listen})
        with pytest.raises(ConfigError, match=r"metrics.listen: cannot listen on 127.0.0.1:\d+"):
            make_daemon(daemon_config(cfg)).setup()


def test_drift_gauges_follow_the_calibration_reference(tiny_model, endpoint, tmp_path):
    from inspector.pipeline.config import daemon_config
    from inspector.integrations.runtime import make_daemon
    from inspector.artifacts.model_card import sha256_file
    from inspector.artifacts.thresholds import ModelBinding, ScoreStats, Thresholds, write_thresholds

    folder = write_folder(tmp_path / "frames", [False] * 20)
    # calibrated on good scores far above what this camera now gives: it has drifted
    cal = write_thresholds(Thresholds(
        model=ModelBinding("tiny", sha256_file(tiny_model)), image_threshold=0.1, pixel_threshold=0.1,
        uncertain_band=None, rule="test",
        score_stats=ScoreStats(mean=0.06, std=0.005, min=0.05, max=0.07, p50=0.06, p99=0.069, n=100)),
        tmp_path / "cal.yaml")
    listen = f"127.0.0.1:{free_port()}"
    cfg = base_config(tiny_model, endpoint, [{"name": "cam0", "source": str(folder)}],
                      thresholds={"calibration": str(cal), "image": None}, drift={"min_samples": 10, "window": 50},
                      metrics={"listen": listen})
    daemon = make_daemon(daemon_config(cfg))
    daemon.start()
    try:
        deadline = time.monotonic() + 20
        while True:
            families, text = scrape(f"http://{listen}/metrics")
            decided = sum(s.value for s in families.get("inspector_decisions", []) if s.name.endswith("_total"))
            if decided == 20:  # published: each score is in the drift window before its frame is published
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.1)
        expected = daemon.drift.snapshot()["cam0"]
    finally:
        daemon.wait(timeout=20)
    shift = value(families["inspector_score_drift_std"], "inspector_score_drift_std", camera="cam0")
    assert shift == pytest.approx(expected["shift_std"]) and shift < -3
    assert value(families["inspector_score_drift_flagged"], "inspector_score_drift_flagged", camera="cam0") == 1


def test_check_lists_the_integrations(tiny_model, endpoint):
    from inspector.pipeline.config import daemon_config
    from inspector.integrations.runtime import make_daemon

    listen = f"127.0.0.1:{free_port()}"
    cfg = base_config(tiny_model, endpoint, [{"name": "cam0", "source": "synthetic", "max_frames": 1,
                                              "synthetic": {"texture": "procedural", "size": 32, "pool": 1}}],
                      metrics={"listen": listen})
    lines = make_daemon(daemon_config(cfg)).check()
    assert f"ok MetricsServer on http://{listen}/metrics" in lines
    with pytest.raises(OSError):  # closed after the check
        urllib.request.urlopen(f"http://{listen}/metrics", timeout=2)


@pytest.mark.parametrize("section, module, extra", [
    ({"metrics": {"listen": "127.0.0.1:9"}}, "prometheus_client", "metrics"),
    ({"publish": {"mqtt": {"url": "mqtt://127.0.0.1:9"}}}, "paho", "mqtt"),
    ({"dashboard": {"listen": "127.0.0.1:9"}}, "uvicorn", "dashboard"),
])
def test_missing_extra_is_one_line_naming_it(tiny_model, endpoint, tmp_path, section, module, extra):
    """`inspector run` where the extra is not installed (its import made to fail): exit 2, one line."""
    import subprocess
    import sys

    import yaml

    cfg = base_config(tiny_model, endpoint, [{"name": "cam0", "source": "synthetic", "max_frames": 1}])
    for key, value in section.items():
        cfg.setdefault(key, {}).update(value)
    config = tmp_path / "inspector.yaml"
    config.write_text(yaml.safe_dump(cfg))
    code = (f"import sys; sys.modules[{module!r}] = None; from inspector.cli import main; "
            f"sys.exit(main(['run', '--config', {str(config)!r}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"pip install 'inspector[{extra}]'" in lines[0] and "Traceback" not in out.stderr


@pytest.mark.skipif(importlib.util.find_spec("paho") is None, reason="needs the 'mqtt' extra (paho-mqtt)")
def test_mqtt_messages_pending_is_a_gauge_and_the_bridge_books_add_up(tiny_model, endpoint, tmp_path):
    """The MQTT bridge's pending messages (buffered while its broker is away) were served as an outcome of the
    counter inspector_mqtt_messages_total: they fall once the broker is back, and Prometheus takes every fall of a
    counter for a reset (rate() and increase() then counted the backlog again). Now a gauge of its own; the counter
    keeps the outcomes that only grow, and offered = delivered + dropped + pending."""
    listen = f"127.0.0.1:{free_port()}"
    cfg = base_config(tiny_model, endpoint, [{"name": "cam0", "source": str(write_folder(tmp_path / "f", [True] * 6))}],
                      thresholds={"image": 0.0}, metrics={"listen": listen},
                      publish={"mqtt": {"url": f"mqtt://127.0.0.1:{free_port()}", "box": "b1", "reconnect_max_s": 1,
                                        "state_file": str(tmp_path / "s.json")}})
    families, text = _scrape_once(cfg, listen, "published.defect", 6, wait_s=60)
    counter = {s.labels["outcome"]: s.value for s in families["inspector_mqtt_messages"]
               if s.name == "inspector_mqtt_messages_total"}
    assert "pending" not in counter, text
    pending = value(families["inspector_mqtt_messages_pending"], "inspector_mqtt_messages_pending")
    assert pending >= 6 and counter["offered"] == counter["delivered"] + counter["dropped"] + pending, text


def _scrape_once(cfg: dict, listen: str, counter: str, at_least: int, wait_s: float):
    """Run a real daemon on ``cfg`` until its ``counter`` reaches ``at_least`` (30 s at most), scrape its metrics
    at ``listen`` then, and wait up to ``wait_s`` for it to end; the scrape's (families, text)."""
    from inspector.integrations.runtime import make_daemon
    from inspector.pipeline.config import daemon_config

    daemon = make_daemon(daemon_config(cfg))
    daemon.start()
    try:
        deadline = time.monotonic() + 30
        while daemon.counters.snapshot().get(counter, 0) < at_least:
            assert time.monotonic() < deadline, daemon.counters.snapshot()
            time.sleep(0.1)
        return scrape(f"http://{listen}/metrics")
    finally:
        daemon.wait(timeout=wait_s)


def test_recordings_written_and_deleted_by_retention_are_scraped(tiny_model, endpoint, tmp_path):
    """A real daemon recording 5 defects with recorder.max_events 2: inspector_recordings_total says 5 written and 3
    deleted by retention, none it could not delete. What became of the recordings (written, deleted, retention
    unable to delete while the folder grows) was in the log and v1/stats only: a scrape saw only the defects lost."""
    folder = write_folder(tmp_path / "frames", [True] * 5)
    listen = f"127.0.0.1:{free_port()}"
    cfg = base_config(tiny_model, endpoint, [{"name": "cam0", "source": str(folder)}], metrics={"listen": listen},
                      thresholds={"image": 0.0},
                      recorder={"enabled": True, "dir": str(tmp_path / "rec"), "min_free_bytes": 0, "max_events": 2})
    families, text = _scrape_once(cfg, listen, "recorder.written", 5, wait_s=20)
    assert "inspector_recordings" in families, text
    rec = families["inspector_recordings"]
    assert value(rec, "inspector_recordings_total", outcome="written") == 5
    assert value(rec, "inspector_recordings_total", outcome="deleted") == 3
    assert value(rec, "inspector_recordings_total", outcome="delete_error") == 0
    assert len(list((tmp_path / "rec" / "cam0").glob("*.json"))) == 2
