"""Recorder: defect frames to disk on its own thread, never in the way of inspection.

For each published defect event it writes, under ``<dir>/<camera>/``, the
original frame (PNG), the heat map (PNG, when the event has one) and the event
header (JSON), all named ``<frame_id>-<event seq>``. The queue is bounded
(full → counted drop), the folder is kept under ``max_events`` / ``max_bytes``
by deleting the oldest recordings, and nothing is written while the disk has
less than ``min_free_bytes`` free. Write errors are counted and logged; a
full or broken disk never stops inspection.
"""

from __future__ import annotations

import collections
import json
import logging
import queue
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np

from inspector.pipeline.config import RecorderSection
from inspector.pipeline.frame import Frame
from inspector.pipeline.worker import Throttled, Worker
from inspector.telemetry import Counters

log = logging.getLogger("inspector.recorder")
_END = object()


class RecorderWorker(Worker):
    def __init__(self, cfg: RecorderSection, stop: threading.Event, counters: Counters) -> None:
        super().__init__("recorder", stop)
        self.cfg, self.counters = cfg, counters
        self.root = Path(cfg.dir)
        self.inbox: queue.Queue = queue.Queue(maxsize=cfg.queue_size)
        self._kept: collections.deque[tuple[list[Path], int]] = collections.deque()
        self._bytes = 0
        self._throttle = Throttled(log)

    # -- producer side (publisher thread) --------------------------------------------------
    def put(self, frame: Frame, header: dict) -> None:
        try:
            self.inbox.put_nowait((frame, header))
        except queue.Full:
            self.counters.add("recorder.dropped")

    def finish(self) -> None:
        """No more events will come; the worker drains the queue and exits."""
        try:
            self.inbox.put(_END, timeout=1.0)
        except queue.Full:
            self.stop_event.set()

    # -- worker side -------------------------------------------------------------------------
    def loop(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._scan_existing()
        except OSError as exc:
            log.error("recorder: cannot use %s (%s); recording disabled", self.root, exc.strerror or exc)
            self.counters.add("recorder.errors")
            self._discard_until_end()
            return
        while True:
            try:
                item = self.inbox.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _END:
                return
            self.record(*item)

    def _discard_until_end(self) -> None:
        while self.inbox.get() is not _END:
            self.counters.add("recorder.dropped")

    def _scan_existing(self) -> None:
        """Existing recordings count towards retention (oldest first)."""
        groups: dict[Path, list[Path]] = collections.defaultdict(list)
        for path in self.root.glob("*/*"):
            if path.is_file():
                groups[path.with_name(path.name.split(".")[0])].append(path)
        stems = sorted(groups, key=lambda s: min(p.stat().st_mtime for p in groups[s]))
        for stem in stems:
            files = groups[stem]
            size = sum(p.stat().st_size for p in files)
            self._kept.append((files, size))
            self._bytes += size
        self._enforce_retention()

    def record(self, frame: Frame, header: dict) -> None:
        try:
            free = shutil.disk_usage(self.root).free
            if free < self.cfg.min_free_bytes:
                self.counters.add("recorder.skipped_low_disk")
                self._throttle.warning("disk", "recorder: only %d MB free on %s; not recording",
                                       free // 1_000_000, self.root)
                return
            folder = self.root / frame.camera
            folder.mkdir(exist_ok=True)
            stem = folder / f"{frame.frame_id:09d}-{header.get('seq', 0):09d}"
            files = [self._write_image(stem.with_suffix(".png"), frame.image)]
            if frame.amap is not None:
                hi = max(float(frame.amap.max()), 1e-12)
                heat = cv2.applyColorMap(np.clip(frame.amap * (255.0 / hi), 0, 255).astype(np.uint8),
                                         cv2.COLORMAP_JET)
                files.append(self._write_image(stem.with_suffix(".heat.png"), heat))
            meta = stem.with_suffix(".json")
            meta.write_text(json.dumps(header, indent=1))
            files.append(meta)
            size = sum(p.stat().st_size for p in files)
            self._kept.append((files, size))
            self._bytes += size
            self.counters.add("recorder.written")
            self._enforce_retention()
        except Exception as exc:  # noqa: BLE001 - disk trouble is counted, inspection goes on
            self.counters.add("recorder.errors")
            self._throttle.warning("err", "recorder: cannot write camera '%s' frame %d: %s",
                                   frame.camera, frame.frame_id, exc)

    @staticmethod
    def _write_image(path: Path, image: np.ndarray) -> Path:
        ok, buf = cv2.imencode(".png", image)
        if not ok:
            raise OSError(f"cannot encode {path.name}")
        path.write_bytes(buf.tobytes())
        return path

    def _enforce_retention(self) -> None:
        cfg = self.cfg
        while self._kept and ((cfg.max_events and len(self._kept) > cfg.max_events)
                              or (cfg.max_bytes and self._bytes > cfg.max_bytes)):
            files, size = self._kept.popleft()
            for path in files:
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
            self._bytes -= size
            self.counters.add("recorder.deleted")
