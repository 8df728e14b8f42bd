"""What the dashboard shows, kept up to date by the publisher thread (pure Python, no web stack).

:class:`DashboardState` is an event tap: ``offer`` (every published event) and
``offer_frame`` (every inspected frame) only store references under a lock, so
the publisher never waits. Images are encoded when a browser asks for them.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from typing import Any

import cv2
import numpy as np

from inspector.pipeline.integration_config import DashboardSection
from inspector.textline import score_and_threshold

_SERIES = 240  # stats points kept for the charts (4 min at the default 1 s heartbeat)


class DashboardState:
    """Per camera: state and newest frame; the last N defects; a series of stats for the charts."""

    def __init__(self, cfg: DashboardSection, cameras: list[str]) -> None:
        self.cfg = cfg
        self._lock = threading.Lock()
        self.version = 0  # bumped on every change; the SSE stream sends when it moves
        self.cameras: dict[str, dict[str, Any]] = {c: {"state": "connecting", "reason": "", "frame_id": None,
                                                      "decision": None, "score": None} for c in cameras}
        self._frames: dict[str, tuple[np.ndarray, float]] = {}
        self.defects: collections.deque = collections.deque(maxlen=cfg.recent_defects)
        self._payloads: dict[str, dict[str, bytes]] = {}
        self.series: collections.deque = collections.deque(maxlen=_SERIES)
        self.stats: dict[str, Any] = {}
        self.model: dict[str, Any] = {}
        self._encoded: tuple[int, str] = (-1, "")  # (version, SSE message) shared by every stream
        self._jpegs: dict[str, tuple[int, bytes | None]] = {}  # camera → (frame_version, JPEG) shared by requests

    # -- taps (publisher thread) ---------------------------------------------------------------
    def offer(self, event) -> None:
        with self._lock:
            if event.type == "status":
                cam = self.cameras.setdefault(event.camera, {})
                cam.update(state=event.state, reason=event.reason)
            elif event.type == "defect":
                self._add_defect(event)
            elif event.type == "stats":
                self._add_stats(event)
            else:
                return
            self.version += 1

    def offer_frame(self, frame) -> None:
        """Keep a reference to the newest frame per camera (at most every ``frame_interval_s``)."""
        now = time.monotonic()
        with self._lock:
            cam = self.cameras.setdefault(frame.camera, {"state": "online", "reason": ""})
            cam.update(frame_id=frame.frame_id, decision=frame.decision,
                       score=None if frame.score is None or frame.score != frame.score else round(frame.score, 5))
            last = self._frames.get(frame.camera)
            if last is None or now - last[1] >= self.cfg.frame_interval_s:
                self._frames[frame.camera] = (frame.image, now)  # the frame's image is never modified
                cam["frame_version"] = cam.get("frame_version", 0) + 1
                self.version += 1

    def _add_defect(self, event) -> None:
        if len(self.defects) == self.defects.maxlen:
            self._payloads.pop(self.defects[0]["event_id"], None)
        self._payloads[event.event_id] = {p.kind: p.data for p in event.payloads}
        heat = next((p for p in event.payloads if p.kind == "anomaly_map"), None)
        self.defects.append({
            "event_id": event.event_id, "camera": event.camera, "seq": event.seq, "frame_id": event.frame_id,
            "decision": event.decision, "score": event.score, "threshold": event.threshold,
            # as the page shows them: digits enough that they compare as the daemon decided (app.js printed the
            # score with 4 digits, the threshold with 3: an NG score in [t, t rounded up) read below it)
            "shown": dict(zip(("score", "threshold"), score_and_threshold(event.score, event.threshold))),
            "utc": event.capture.get("utc"), "regions": event.regions, "frame": event.frame,
            "latency_ms": event.latency_ms.get("total"),
            "payloads": sorted(p.kind for p in event.payloads),
            "heat_range": heat.extra.get("range") if heat else None,
        })
        self.model = event.model

    def _add_stats(self, event) -> None:
        data = event.data
        lat = data.get("latency_ms", {}).get("total", {})
        totals = data.get("totals", {})
        cams = data.get("cameras", {})
        self.series.append({
            "t": event.uptime_s, "fps": totals.get("fps_window", totals.get("fps", 0.0)),
            "p50": lat.get("p50"), "p99": lat.get("p99"),
            "drops": sum(v for c in cams.values() for k, v in c.items()
                         if isinstance(v, (int, float)) and (k.startswith(("dropped", "rejected")) or k in ("corrupt", "concealed", "buffers_lost"))),
        })
        self.stats = {"cameras": cams, "totals": totals, "drift": data.get("drift", {}), "final": event.final}

    # -- readers (web threads) ------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"version": self.version, "cameras": {k: dict(v) for k, v in self.cameras.items()},
                    "defects": list(self.defects)[::-1], "series": list(self.series), "stats": self.stats,
                    "model": {k: v for k, v in self.model.items() if k != "sha256"}}

    def snapshot_json(self) -> tuple[int, str]:
        """``(version, "data: <snapshot JSON>\\n\\n")``, encoded once per version whatever the number of streams."""
        cached = self._encoded
        if cached[0] == self.version:
            return cached
        snap = self.snapshot()
        encoded = (snap["version"], f"data: {json.dumps(snap, separators=(',', ':'), default=str)}\n\n")
        self._encoded = encoded  # one tuple assignment: readers see the old or the new pair, never a mix
        return encoded

    def payload(self, event_id: str, kind: str) -> bytes | None:
        with self._lock:
            return self._payloads.get(event_id, {}).get(kind)

    def frame_jpeg(self, camera: str) -> bytes | None:
        """The newest frame of ``camera`` as JPEG, encoded once per stored frame (any number of requests)."""
        with self._lock:
            item = self._frames.get(camera)
            version = self.cameras.get(camera, {}).get("frame_version")
        if item is None:
            return None
        cached = self._jpegs.get(camera)
        if cached is not None and cached[0] == version:
            return cached[1]
        data = self._encode(item[0])
        self._jpegs[camera] = (version, data)
        return data

    @staticmethod
    def _encode(img: np.ndarray, max_side: int = 480, quality: int = 80) -> bytes | None:
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[:, :, :3]
        if img.dtype != np.uint8:  # 16-bit sources: show the top 8 bits
            img = (img >> 8).astype(np.uint8) if img.dtype == np.uint16 else np.clip(img, 0, 255).astype(np.uint8)
        h, w = img.shape[:2]
        scale = min(1.0, max_side / max(h, w))
        if scale < 1.0:
            img = cv2.resize(img, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        return buf.tobytes() if ok else None
