"""Postprocess: score → decision, map → defect regions in frame coordinates, image payloads.

:class:`Decider` applies the image threshold (and the optional uncertain
band), :func:`find_regions` finds connected components of the map above the
pixel threshold and maps their boxes back onto the ORIGINAL frame through the
same crop geometry the preprocessing used, and :func:`encode_payloads` makes
the JPEG thumbnail and the 8-bit heat-map PNG attached to defect events —
only when some subscriber holds the event's topic (the publisher tracks the
XPUB subscriptions), so a line with no image consumer encodes nothing.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from inspector.data.images import DEFAULT_DOWNSCALE, crop_box, placement, resize_image
from inspector.events import Payload, topic_for
from inspector.pipeline.batcher import END
from inspector.pipeline.config import PostprocessSection
from inspector.pipeline.drift import DriftMonitor
from inspector.pipeline.frame import Frame, Region
from inspector.pipeline.worker import Throttled, Worker, WorkerContext
from inspector.pipeline.telemetry import Counters

log = logging.getLogger("inspector.postprocess")


@dataclass(frozen=True)
class Decider:
    """OK / NG / uncertain from a score. With a band [lo, hi): lo ≤ score < hi → uncertain, ≥ hi → NG."""

    image_threshold: float
    pixel_threshold: float
    uncertain_band: tuple[float, float] | None = None

    def decide(self, score: float) -> str:
        """OK / uncertain / NG ("error" for a non-finite score). ``score`` is compared as a Python float: a NumPy
        float32 compared with a float threshold is compared in float32 under NumPy 2 (NEP 50), which rounds the
        threshold and could flip a score next to it."""
        score = float(score)
        if not math.isfinite(score):
            return "error"
        if self.uncertain_band is not None:
            lo, hi = self.uncertain_band
            return "NG" if score >= hi else ("uncertain" if score >= lo else "OK")
        return "NG" if score >= self.image_threshold else "OK"

    def shown(self, score: float, decimals: int = 6) -> float:
        """``score`` rounded to ``decimals`` for events and printed lines, unless the rounded number would be
        decided otherwise (:meth:`decide`): then ``score`` itself (a float32 score's exact value). A reader
        comparing the shown score with the threshold then decides as the daemon did. Rounded blindly, the good
        image that set a calibrated threshold (1 float32 step above it) was shown at or above the threshold
        about half the time, marked OK."""
        score = float(score)
        rounded = round(score, decimals)
        return rounded if self.decide(rounded) == self.decide(score) else score


def find_regions(amap: np.ndarray, pixel_threshold: float, frame_hw: tuple[int, int], policy: str,
                 min_area: int = 1, max_regions: int = 16) -> list[Region]:
    """Connected components of ``amap >= pixel_threshold`` (8-connected) in frame pixel coordinates.

    ``amap``: (h, w) float map; returns at most ``max_regions`` regions of at least ``min_area`` map pixels,
    highest peak first (ties in label order). The cost is per map, not per component: OpenCV labels the
    mask (``connectedComponents``; its ``WithStats`` variant costs 5-10x more), then the above-threshold
    pixels, grouped by label with one radix sort, give every component's box and peak in one
    ``reduceat`` each. Where the above-threshold pixels lie within half the map, only their bounding box is
    labelled and scanned (every component lies inside it, in the same raster order): labelling a whole
    256² map cost ~30-150 µs where a defect's box is a few hundred pixels (issue 17). A larger box is not
    worth its two copies. The boxes come from the grouped pixels with one vectorised mapping onto the frame.
    """
    above = amap >= pixel_threshold
    if not above.any():
        return []
    mh, mw = amap.shape
    bx, by, bw, bh = cv2.boundingRect(above.view(np.uint8))
    if 2 * bw * bh <= mw * mh:
        above = np.ascontiguousarray(above[by:by + bh, bx:bx + bw])
        amap = np.ascontiguousarray(amap[by:by + bh, bx:bx + bw])
    else:
        bx, by, bw, bh = 0, 0, mw, mh
    # 8-connected components are ≤ ⌈h/2⌉·⌈w/2⌉ (+ background): 16-bit labels fit below 65536
    ltype = cv2.CV_16U if ((bh + 1) // 2) * ((bw + 1) // 2) < 65535 else cv2.CV_32S
    n, labels = cv2.connectedComponents(above.view(np.uint8), connectivity=8, ltype=ltype)
    flat = np.flatnonzero(above)  # ~10x faster than np.nonzero on a 2-D mask
    label = labels.ravel()[flat]
    order = np.argsort(label, kind="stable")  # pixels grouped by label 1, 2, … (a radix sort for 16 bits)
    flat = flat[order]
    area = np.bincount(label, minlength=n)[1:]  # every label 1 … n-1 has ≥ 1 pixel
    starts = np.zeros(n - 1, np.int64)
    np.cumsum(area[:-1], out=starts[1:])
    ys, xs = np.divmod(flat, bw)
    x0, x1 = np.minimum.reduceat(xs, starts) + bx, np.maximum.reduceat(xs, starts) + (bx + 1)
    y0, y1 = np.minimum.reduceat(ys, starts) + by, np.maximum.reduceat(ys, starts) + (by + 1)
    peak = np.maximum.reduceat(amap.ravel()[flat], starts).astype(np.float64)
    keep = np.flatnonzero(area >= min_area)
    keep = keep[np.argsort(-peak[keep], kind="stable")][:max_regions]
    box = crop_box(frame_hw[0], frame_hw[1], mh, mw, policy)
    place = placement(frame_hw[0], frame_hw[1], mh, mw, policy)
    sx, sy = box.width / place.width, box.height / place.height
    # map pixels → frame pixels: floor of the start, ceil of the end (int64 → float64 is exact here, and
    # np.floor/ceil/rint on float64 equal math.floor/ceil and round, half to even); a letterbox's
    # margins mirror the frame, so a region reaching into them is clipped to the frame
    fx0 = box.left + np.floor(np.clip(x0[keep] - place.left, 0, place.width) * sx).astype(np.int64)
    fy0 = box.top + np.floor(np.clip(y0[keep] - place.top, 0, place.height) * sy).astype(np.int64)
    fx1 = box.left + np.ceil(np.clip(x1[keep] - place.left, 0, place.width) * sx).astype(np.int64)
    fy1 = box.top + np.ceil(np.clip(y1[keep] - place.top, 0, place.height) * sy).astype(np.int64)
    areas = np.rint(area[keep] * sx * sy).astype(np.int64)  # the same product order as before: same rounding
    return [Region(x, y, x_end - x, y_end - y, a, p) for x, y, x_end, y_end, a, p in
            zip(fx0.tolist(), fy0.tolist(), fx1.tolist(), fy1.tolist(), areas.tolist(), peak[keep].tolist())
            if x_end > x and y_end > y]  # a region wholly in a letterbox margin has no frame pixels


def encode_payloads(frame: Frame, cfg: PostprocessSection, pixel_threshold: float) -> list[Payload]:
    """JPEG thumbnail of the original frame and the anomaly map as an 8-bit PNG (with its value range)."""
    payloads = []
    if cfg.thumbnail.enabled:
        img = frame.image
        if img.dtype != np.uint8:
            img = cv2.convertScaleAbs(img, alpha=255.0 / max(float(img.max()), 1.0))
        h, w = img.shape[:2]
        scale = min(1.0, cfg.thumbnail.max_side / max(h, w))
        if scale < 1.0:  # anti-aliased like INTER_AREA at a fraction of its cost (data/images.py)
            img = resize_image(np.ascontiguousarray(img), max(1, round(h * scale)), max(1, round(w * scale)),
                               downscale=DEFAULT_DOWNSCALE)
        if img.ndim == 3 and img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(cfg.thumbnail.quality)])
        if ok:
            payloads.append(Payload("thumbnail", "jpeg", buf.tobytes(), list(img.shape), "uint8",
                                    {"color": "BGR" if img.ndim == 3 else "GRAY"}))
    if cfg.heatmap and frame.amap is not None:
        hi = max(float(frame.amap.max()), pixel_threshold, 1e-12)
        img = np.clip(frame.amap * (255.0 / hi) + 0.5, 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".png", img)
        if ok:
            payloads.append(Payload("anomaly_map", "png", buf.tobytes(), list(img.shape), "uint8",
                                    {"range": [0.0, round(hi, 6)]}))
    return payloads


class PostprocessWorker(Worker):
    """Decision, regions, payloads, drift; then on to the publisher (never blocks: full → counted drop).

    Frames travel on as the list they came in (one inference batch): one queue hand-off, and one wake-up
    of the publisher, per batch instead of per frame. A full publisher queue drops the whole list, each of
    its frames counted in ``publish_queue_dropped``.
    """

    def __init__(self, decider: Decider, cfg: PostprocessSection, policy: str, inbox: queue.Queue,
                 out: queue.Queue, stop: threading.Event, counters: Counters, drift: DriftMonitor,
                 attach_to_results: bool, wanted: Callable[[str], bool] | None = None,
                 context: WorkerContext | None = None) -> None:
        super().__init__("postprocess", stop, context)
        self.decider, self.cfg, self.policy = decider, cfg, policy
        self.inbox, self.out, self.counters, self.drift = inbox, out, counters, drift
        self.attach_to_results = attach_to_results
        # Payloads are encoded only for frames whose event topic some subscriber holds (None: always);
        # the recorder encodes its own files, on its own thread.
        self.wanted = wanted
        self._throttle = Throttled(log)

    def loop(self) -> None:
        try:
            while True:
                try:
                    frames = self.inbox.get(timeout=0.1)
                except queue.Empty:
                    if self.broken.is_set():
                        return
                    continue
                if frames is END:
                    return
                for frame in frames:
                    self.process(frame)
                try:
                    self.out.put_nowait(frames)
                except queue.Full:
                    self._count_dropped(frames)
        finally:
            self.put_downstream(self.out, END)

    def _count_dropped(self, frames: list[Frame]) -> None:
        """A full publisher queue drops ``frames`` before they get a seq: no subscriber would see a gap, so each
        camera's drops (and those not OK, i.e. lost defect events) are counted for v1/stats to tell."""
        self.counters.add("publish_queue_dropped", len(frames))
        for frame in frames:
            self.counters.add(f"{frame.camera}.publish_queue_dropped")
            if frame.decision != "OK":
                self.counters.add(f"{frame.camera}.publish_queue_dropped_not_ok")

    def process(self, frame: Frame) -> None:
        try:
            if frame.decision != "error":
                frame.decision = self.decider.decide(frame.score)
                if frame.decision == "error":
                    frame.error = f"non-finite score {frame.score}"
            if frame.decision in ("NG", "uncertain"):
                frame.regions = find_regions(frame.amap, self.decider.pixel_threshold, frame.size, self.policy,
                                             self.cfg.min_region_area, self.cfg.max_regions)
                self._attach_payloads(frame, "defect")
            elif frame.decision == "OK":
                self.drift.add(frame.camera, frame.score)
                if self.attach_to_results:
                    self._attach_payloads(frame, "result")
        except Exception as exc:  # noqa: BLE001 - a per-frame failure is counted, the pipeline goes on
            self.counters.add("postprocess_errors")
            self._throttle.warning("post", "camera '%s' frame %d: postprocessing failed: %r",
                                   frame.camera, frame.frame_id, exc)
            frame.decision, frame.error = "error", f"postprocessing failed: {exc}"
        # counted per decision so that the run's last line says what was found, not only how much was looked at
        self.counters.add(f"decided_{frame.decision}")
        frame.stamp("postprocessed")

    def _attach_payloads(self, frame: Frame, kind: str) -> None:
        kinds = (kind, "result") if self.attach_to_results and kind != "result" else (kind,)
        if self.wanted is not None and not any(self.wanted(topic_for(k, frame.camera)) for k in kinds):
            self.counters.add("payloads_not_wanted")  # no subscriber for these events: nothing to encode
            frame.payloads_deferred = True  # … unless one joins before it is published (publish.py)
            return
        frame.payloads = encode_payloads(frame, self.cfg, self.decider.pixel_threshold)
