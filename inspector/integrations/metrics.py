"""Prometheus endpoint (``metrics.listen``): the daemon's counters, decisions, latencies and drift.

A custom collector reads the daemon's live state at scrape time (nothing is
copied per frame): per camera frames captured/inspected, drops by reason and
decisions; per stage latency histograms in seconds whose ``le`` bounds are
edges of the same log grid as ``v1/stats`` (:mod:`inspector.pipeline.telemetry`, every
``_STEP``-th edge, so each bucket is an exact sum of ``v1/stats`` buckets);
model identity; per camera score drift; camera state; MQTT bridge delivery.
Served by a thread-per-connection WSGI server in its own daemon thread, with the limits of
``metrics.limits`` (:mod:`inspector.integrations.dashboard.guard`: connections capped, per client
address too; a request must arrive within a deadline; complaints logged once a minute), since
``prometheus_client.start_http_server`` has none: each idle connection held a thread
forever. With ``metrics.token_file`` a scrape needs ``Authorization: Bearer <token>`` (Prometheus:
``authorization: {credentials_file: …}``); bound off loopback without one, the start logs a warning.
Needs the ``metrics`` extra (``prometheus-client``).
"""

from __future__ import annotations

import collections
import io
import logging
import socket
import sys
import threading
import time
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import numpy as np

from inspector.errors import ConfigError
from inspector.integrations import require
from inspector.integrations.dashboard import guard
from inspector.pipeline.integration_config import HttpLimits, MetricsSection, is_loopback, parse_listen
from inspector.pipeline.telemetry import bucket_upper_ms, coarse_buckets

if TYPE_CHECKING:
    from inspector.pipeline.daemon import Daemon

log = guard.throttled(logging.getLogger("inspector.metrics"))
_PATHS = ("/metrics", "/")
_STEP = 10  # every 10th edge of the 4 % grid: bounds 48 % apart
_BUCKETS = coarse_buckets(0.01, 60_000.0, _STEP)  # 10 µs … 60 s
# per-camera counter suffix → drop reason label
# "concealed": live frames the decoder made up around lost stream data (pipeline.ffmpeg_live.Concealment);
# "before_key_frame": live frames before the first key frame after a (re)connect, no fault (ffmpeg_live)
_CAMERA_DROPS = {"dropped_live": "live_newest_kept", "corrupt": "corrupt", "concealed": "concealed",
                 "before_key_frame": "before_key_frame", "source_errors": "source_error",
                 "repeat": "repeat"}
_GLOBAL_DROPS = {"publish_queue_dropped": "publish_queue_full", "dropped_shutdown": "shutdown",
                 "status_dropped": "status_queue_full", "inference_error_frames": "inference_error",
                 "recorder.dropped": "recorder_queue_full", "recorder.errors": "recorder_write_error",
                 "recorder.skipped_low_disk": "recorder_low_disk", "recorder.abandoned": "recorder_shutdown",
                 "recorder.unusable": "recorder_dir_unusable",
                 # events numbered but not sent on publish.endpoint (ZeroMQ refused it, or publishing failed): the
                 # ZeroMQ subscribers' loss, told in the stats (daemon_dropped) and nowhere a scrape could see
                 "publish_unsent": "publish_unsent", "publish_errors": "publish_error",
                 "tap_errors": "integration_handover_error"}
# recorder counters → outcome label of inspector_recordings: what became of the recordings besides the defects lost
# (those are inspector_drops): retention that cannot delete (delete_error) lets the folder grow until the disk is
# full and defects go unrecorded, and a recorder that writes nothing (written flat while NG rises) showed nowhere a
# scrape could see; both were in the log and v1/stats only
_RECORDINGS = {"recorder.written": "written", "recorder.deleted": "deleted", "recorder.delete_errors": "delete_error",
               "recorder.incomplete": "incomplete", "recorder.foreign": "foreign",
               "recorder.leftovers_kept": "leftover_kept", "recorder.leftovers_removed": "leftover_removed",
               "recorder.incomplete_removed": "incomplete_removed"}
CAMERA_STATES = ("connecting", "online", "reconnecting", "stalled", "stale", "changed", "ended", "failed")


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
        yield from self._recordings(m, snap)
        yield from self._decisions(m)
        yield from self._latency(m)
        yield from self._model_and_state(m)
        yield from self._drift(m)
        bridge = getattr(d, "mqtt_bridge", None)
        if bridge is not None:
            yield from self._mqtt(m, bridge.counts())

    @staticmethod
    def _mqtt(m, counts: dict[str, int]) -> Iterator:
        """The MQTT bridge's books (:meth:`~inspector.integrations.mqtt.MqttBridge.counts`): offered = delivered +
        dropped + pending. ``pending`` (buffered or unacknowledged now) goes down as the broker catches up: a
        gauge. Served as a counter outcome, each fall read as a counter reset to Prometheus, whose rate() and
        increase() then counted the whole backlog again as new messages after every broker outage."""
        counts = dict(counts)
        pending = counts.pop("pending", 0)
        g = m.CounterMetricFamily("inspector_mqtt_messages", "MQTT bridge messages by outcome (offered = delivered "
                                  "+ dropped + inspector_mqtt_messages_pending; refused is part of dropped)",
                                  labels=["outcome"])
        for outcome, n in counts.items():
            g.add_metric([outcome], n)
        yield g
        gauge = m.GaugeMetricFamily("inspector_mqtt_messages_pending", "MQTT bridge messages buffered or not yet "
                                    "acknowledged by the broker")
        gauge.add_metric([], pending)
        yield gauge

    def _frames(self, m, snap: dict, cams: list[str]) -> Iterator:
        captured = m.CounterMetricFamily("inspector_frames_captured", "frames grabbed per camera", labels=["camera"])
        for cam in cams:
            captured.add_metric([cam], snap.get(f"{cam}.captured", 0))
        yield captured
        total = m.CounterMetricFamily("inspector_frames_inferred", "frames through the model (all cameras)")
        total.add_metric([], snap.get("inferred_frames", 0))
        yield total
        # a camera reconfigured (binning, ROI, pixel format): its frames are inspected, not as calibrated
        changes = m.CounterMetricFamily("inspector_camera_frame_changes", "times a camera's frames changed size or "
                                        "format (grey/colour, depth, pixel format)", labels=["camera", "what"])
        for cam in cams:
            changes.add_metric([cam, "size"], snap.get(f"{cam}.size_changes", 0))
            changes.add_metric([cam, "format"], snap.get(f"{cam}.format_changes", 0))
        yield changes

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

    def _recordings(self, m, snap: dict) -> Iterator:
        """``inspector_recordings_total{outcome}`` when the recorder is enabled (:data:`_RECORDINGS`)."""
        if not self.daemon.cfg.recorder.enabled:
            return
        fam = m.CounterMetricFamily("inspector_recordings", "defect recordings (recorder.dir) by outcome: written, "
                                    "deleted by retention, delete_error (retention could not delete: the folder "
                                    "grows), incomplete / foreign (kept, not under retention), temporary files",
                                    labels=["outcome"])
        for key, outcome in _RECORDINGS.items():
            fam.add_metric([outcome], snap.get(key, 0))
        yield fam

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


class _DeadlineReader(io.RawIOBase):
    """A socket's reads, all of them within one deadline (``time.monotonic()`` seconds).

    A per-read timeout is not enough: a peer sending a byte just before each timeout
    holds the thread forever. Raises ``TimeoutError`` once the deadline has passed.
    """

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock, self._deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no complete request in time")
        self._sock.settimeout(left)
        return self._sock.recv_into(buf)


class _Handler(WSGIRequestHandler):
    """One request per connection, read within ``limits.request_deadline_s``; no access log."""

    def setup(self) -> None:
        super().setup()
        limits = self.server.limits
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, limits.send_buffer_bytes)
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection,
                                                       time.monotonic() + limits.request_deadline_s))

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self.connection.settimeout(self.server.limits.write_stall_s)  # the response: a peer that does not read is dropped
        return ok

    def handle(self) -> None:
        try:
            super().handle()
        except OSError as exc:  # timeouts and resets are the peer's doing: one throttled line, no traceback
            log.warning("metrics: connection closed: %s", exc.strerror or exc)

    def log_message(self, *args) -> None:
        pass


class _Server(ThreadingMixIn, WSGIServer):
    """``WSGIServer`` with a thread per connection, at most ``limits.max_connections`` (``max_per_client`` per address)."""

    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 refuses bursts of honest clients at the backlog

    def __init__(self, addr: tuple[str, int], family: int, app, limits: HttpLimits) -> None:
        self.address_family = family
        self.limits = limits
        self._lock = threading.Lock()
        self._open: collections.Counter = collections.Counter()  # client address → open connections
        super().__init__(addr, _Handler)
        self.set_app(app)

    def verify_request(self, request, client_address) -> bool:
        peer = client_address[0] if client_address else ""
        with self._lock:
            limits = self.limits
            if sum(self._open.values()) >= limits.max_connections or self._open[peer] >= limits.max_per_client:
                log.warning("metrics: connection refused: over %d open (%d per client address)",
                            limits.max_connections, limits.max_per_client)
                return False
            self._open[peer] += 1
        return True

    def process_request(self, request, client_address) -> None:
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(client_address)
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(client_address)

    def _release(self, client_address) -> None:
        peer = client_address[0] if client_address else ""
        with self._lock:
            self._open[peer] -= 1
            if self._open[peer] <= 0:
                del self._open[peer]

    def handle_error(self, request, client_address) -> None:
        log.warning("metrics: request failed: %s", _current_error())


def _current_error() -> str:
    exc = sys.exc_info()[1]
    return f"{type(exc).__name__}: {exc}" if exc else "unknown error"


def _only_metrics(app, token: str | None):
    """``app`` on ``/metrics`` (and ``/``); 404 elsewhere rather than metrics under any name;
    401 without ``Authorization: Bearer <token>`` when ``token`` is set."""
    def wrapped(environ, start_response):
        if token is not None and not guard.token_matches(_bearer(environ), token):
            start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                                 ("WWW-Authenticate", 'Bearer realm="inspector metrics"')])
            return [b"token required (Authorization: Bearer ...)\n"]
        if environ.get("PATH_INFO", "") not in _PATHS:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found; metrics are at /metrics\n"]
        return app(environ, start_response)
    return wrapped


def _bearer(environ) -> str:
    scheme, _, given = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" else ""


def _warn_if_open(host: str, token: str | None) -> None:
    """One warning at start when anyone on the network can read the metrics.

    A warning, not a refusal: unauthenticated scrapes on a plant network are the Prometheus norm
    (exporters have no auth by default), the metrics hold counts and names rather than images,
    and a config that ran before must not stop a line after an upgrade. The dashboard, which
    shows product images, refuses instead.
    """
    if token is None and not is_loopback(host):
        log.warning("metrics.listen: serving metrics on %s (not loopback) without metrics.token_file: anyone who "
                    "can reach the port reads camera names, defect counts and the model's identity; set "
                    "token_file (Prometheus: authorization.credentials_file) or bind to 127.0.0.1", host)


class MetricsServer:
    """``GET /metrics`` on ``cfg.listen`` for one daemon; :meth:`close` stops it."""

    def __init__(self, cfg: MetricsSection, daemon: "Daemon") -> None:
        client = require("prometheus_client", "metrics", "metrics")
        host, port = parse_listen("metrics.listen", cfg.listen)
        token = guard.read_token(cfg.token_file, "metrics.token_file")
        self.registry = client.CollectorRegistry(auto_describe=False)
        self.registry.register(DaemonCollector(daemon))
        try:
            family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                           flags=socket.AI_PASSIVE)[0]
            app = _only_metrics(client.make_wsgi_app(self.registry), token)
            self._server = _Server(sockaddr[:2], family, app, cfg.limits)
        except OSError as exc:
            raise ConfigError(f"metrics.listen: cannot listen on {cfg.listen}: {exc.strerror or exc}") from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)
        self._thread.start()
        self.url = f"http://{cfg.listen}/metrics"
        log.info("Prometheus metrics on %s%s", self.url, " (token required)" if token else "")
        _warn_if_open(host, token)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
