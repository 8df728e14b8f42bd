"""Prometheus endpoint (``metrics.listen``): the daemon's counters, decisions, latencies and drift.

A custom collector reads the daemon's live state at scrape time (nothing is
copied per frame): per camera frames captured/inspected, drops by reason and
decisions; per stage latency histograms in seconds whose ``le`` bounds are
edges of the same log grid as ``v1/stats`` (:mod:`inspector.pipeline.telemetry`, every
``_STEP``-th edge, so each bucket is an exact sum of ``v1/stats`` buckets);
model identity; per camera score drift; camera state; MQTT bridge delivery.
Served by ``prometheus_client.start_http_server`` in its own daemon thread.
Needs the ``metrics`` extra (``prometheus-client``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Iterator

import numpy as np

from inspector.errors import ConfigError
from inspector.integrations import require
from inspector.pipeline.integration_config import MetricsSection, parse_listen
from inspector.pipeline.telemetry import bucket_upper_ms, coarse_buckets

if TYPE_CHECKING:
    from inspector.pipeline.daemon import Daemon

log = logging.getLogger("inspector.metrics")
_STEP = 10  # every 10th edge of the 4 % grid: bounds 48 % apart
_BUCKETS = coarse_buckets(0.01, 60_000.0, _STEP)  # 10 µs … 60 s
# per-camera counter suffix → drop reason label
_CAMERA_DROPS = {"dropped_live": "live_newest_kept", "corrupt": "corrupt", "source_errors": "source_error"}
_GLOBAL_DROPS = {"publish_queue_dropped": "publish_queue_full", "dropped_shutdown": "shutdown",
                 "status_dropped": "status_queue_full", "inference_error_frames": "inference_error",
                 "recorder.dropped": "recorder_queue_full", "recorder.errors": "recorder_write_error",
                 "recorder.skipped_low_disk": "recorder_low_disk", "recorder.abandoned": "recorder_shutdown",
                 "recorder.unusable": "recorder_dir_unusable"}
CAMERA_STATES = ("connecting", "online", "reconnecting", "stalled", "changed", "ended", "failed")


class DaemonCollector:
    """A ``prometheus_client`` collector over one running :class:`Daemon`."""

    def __init__(self, daemon: "Daemon") -> None:
        self.daemon = daemon
        self._m = require("prometheus_client.core", "metrics", "metrics")

    def collect(self) -> Iterator:
        m, d = self._m, self.daemon
        snap = d.counters.snapshot()
        cams = [c.name for c in d.cfg.cameras]
        yield from self._frames(m, snap, cams)
        yield from self._drops(m, snap, cams)
        yield from self._decisions(m)
        yield from self._latency(m)
        yield from self._model_and_state(m)
        yield from self._drift(m)
        bridge = getattr(d, "mqtt_bridge", None)
        if bridge is not None:
            g = m.CounterMetricFamily("inspector_mqtt_messages", "MQTT bridge messages by outcome", labels=["outcome"])
            for outcome, n in bridge.counts().items():
                g.add_metric([outcome], n)
            yield g

    def _frames(self, m, snap: dict, cams: list[str]) -> Iterator:
        captured = m.CounterMetricFamily("inspector_frames_captured", "frames grabbed per camera", labels=["camera"])
        for cam in cams:
            captured.add_metric([cam], snap.get(f"{cam}.captured", 0))
        yield captured
        total = m.CounterMetricFamily("inspector_frames_inferred", "frames through the model (all cameras)")
        total.add_metric([], snap.get("inferred_frames", 0))
        yield total

    def _drops(self, m, snap: dict, cams: list[str]) -> Iterator:
        per_cam = m.CounterMetricFamily("inspector_camera_drops", "frames lost per camera by reason",
                                        labels=["camera", "reason"])
        for cam in cams:
            for suffix, reason in _CAMERA_DROPS.items():
                per_cam.add_metric([cam, reason], snap.get(f"{cam}.{suffix}", 0))
            source_stats = getattr(self.daemon.sources.get(cam), "stats", None)  # GenICam buffers
            if callable(source_stats):
                for key, n in source_stats().items():
                    per_cam.add_metric([cam, f"buffer_{key}"], n)
            prefix = f"{cam}.rejected."
            for key, n in snap.items():
                if key.startswith(prefix):
                    per_cam.add_metric([cam, "rejected_" + key[len(prefix):]], n)
        yield per_cam
        glob = m.CounterMetricFamily("inspector_drops", "frames or events lost after capture, by reason",
                                     labels=["reason"])
        for key, reason in _GLOBAL_DROPS.items():
            glob.add_metric([reason], snap.get(key, 0))
        yield glob
        full = m.CounterMetricFamily(
            "inspector_subscriber_queue_full", "times a ZeroMQ subscriber's queue (publish.sndhwm) was full: each "
            "time it missed at least one event, more until it caught up (its gaps give the number)")
        full.add_metric([], snap.get("publish_subscriber_queue_full", 0))
        yield full
        rec = m.CounterMetricFamily("inspector_camera_reconnects", "source reconnects per camera", labels=["camera"])
        for cam in cams:
            rec.add_metric([cam], snap.get(f"{cam}.reconnects", 0))
        yield rec

    def _decisions(self, m) -> Iterator:
        fam = m.CounterMetricFamily("inspector_decisions", "inspected frames per camera by decision",
                                    labels=["camera", "decision"])
        publish = getattr(self.daemon, "publish", None)
        for cam, counts in list(getattr(publish, "per_camera", {}).items()):
            for decision in ("OK", "NG", "uncertain", "error"):
                fam.add_metric([cam, decision], counts.get(decision, 0))
        yield fam

    def _latency(self, m) -> Iterator:
        fam = m.HistogramMetricFamily("inspector_stage_latency_seconds",
                                      "per-stage latency (buckets: the v1/stats log grid)", labels=["stage"])
        publish = getattr(self.daemon, "publish", None)
        if publish is not None:
            for stage, hist in list(publish.latency.cumulative.items()):
                counts = hist.counts.copy()  # one consistent copy: count = sum of buckets
                cum = np.cumsum(counts)
                buckets = [(f"{bucket_upper_ms(k) / 1000:.9g}", int(cum[k])) for k in _BUCKETS]
                buckets.append(("+Inf", int(cum[-1])))
                fam.add_metric([stage], buckets, sum_value=hist.total / 1000)
        yield fam

    def _model_and_state(self, m) -> Iterator:
        info = getattr(self.daemon, "model_info", None)
        if info:
            fam = m.InfoMetricFamily("inspector_model", "the loaded model")
            fam.add_metric([], {k: str(v) for k, v in info.items() if v is not None})
            yield fam
        state = m.StateSetMetricFamily("inspector_camera_state", "current camera state", labels=["camera"])
        publish = getattr(self.daemon, "publish", None)
        for cam, event in list(getattr(publish, "statuses", {}).items()):
            state.add_metric([cam], {s: s == event.state for s in CAMERA_STATES})
        yield state

    def _drift(self, m) -> Iterator:
        drift = getattr(self.daemon, "drift", None)
        snap = drift.snapshot() if drift is not None else {}
        shift = m.GaugeMetricFamily("inspector_score_drift_std", "rolling OK-score mean minus the calibration "
                                    "mean, in calibration standard deviations", labels=["camera"])
        flagged = m.GaugeMetricFamily("inspector_score_drift_flagged", "1 when drift exceeds drift.max_shift_std",
                                      labels=["camera"])
        for cam, d in snap.items():
            shift.add_metric([cam], d["shift_std"])
            flagged.add_metric([cam], 1.0 if d["flagged"] else 0.0)
        yield shift
        yield flagged


class MetricsServer:
    """``GET /metrics`` on ``cfg.listen`` for one daemon; :meth:`close` stops it."""

    def __init__(self, cfg: MetricsSection, daemon: "Daemon") -> None:
        client = require("prometheus_client", "metrics", "metrics")
        host, port = parse_listen("metrics.listen", cfg.listen)
        self.registry = client.CollectorRegistry(auto_describe=False)
        self.registry.register(DaemonCollector(daemon))
        try:
            self._server, self._thread = client.start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise ConfigError(f"metrics.listen: cannot listen on {cfg.listen}: {exc.strerror or exc}") from None
        self.url = f"http://{cfg.listen}/metrics"
        log.info("Prometheus metrics on %s", self.url)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
