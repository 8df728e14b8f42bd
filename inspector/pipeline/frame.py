"""One frame travelling through the pipeline: identity, image, stage stamps, results.

Every stage adds to the same object (stamps, then results) and hands it on; no
stage copies it back and forth. Stamps are ``time.monotonic_ns()`` values keyed
by stage name, in :data:`STAGES` order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STAGES = ("capture", "queued", "preprocessed", "batched", "inferred", "postprocessed", "published")


@dataclass(eq=False)
class Region:
    """A connected defect region in ORIGINAL frame pixel coordinates."""

    x: int
    y: int
    width: int
    height: int
    area: int  # pixels of the region, in frame pixels
    peak: float  # highest map value inside the region

    def to_dict(self) -> dict[str, Any]:
        return {"bbox": [self.x, self.y, self.width, self.height], "area": self.area, "peak": round(self.peak, 6)}


@dataclass(eq=False)
class Frame:
    """A captured image and everything the pipeline learns about it."""

    camera: str
    frame_id: int  # per-camera capture counter (gaps = frames dropped before inference)
    image: np.ndarray  # as captured (BGR / grey / …), never modified
    capture_ns: int
    capture_utc: float  # time.time() at grab, for the event header
    meta: dict[str, Any] = field(default_factory=dict)  # source position, injected defect …
    stamps: dict[str, int] = field(default_factory=dict)
    # filled by the stages
    score: float | None = None
    amap: np.ndarray | None = None  # (h, w) float32, owned by this frame
    decision: str | None = None  # OK | NG | uncertain | error
    regions: list[Region] = field(default_factory=list)
    payloads: list[tuple[dict[str, Any], bytes]] = field(default_factory=list)
    payloads_deferred: bool = False  # not encoded: nobody subscribed at postprocessing (publisher may still)
    error: str | None = None
    backend_ms: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.stamps.setdefault("capture", self.capture_ns)

    def stamp(self, stage: str, now_ns: int | None = None) -> None:
        self.stamps[stage] = time.monotonic_ns() if now_ns is None else now_ns

    def latencies_ms(self) -> dict[str, float]:
        """Per-stage durations (ms, from the previous stamped stage) plus ``total`` (capture → last)."""
        out: dict[str, float] = {}
        prev = None
        for stage in STAGES:
            t = self.stamps.get(stage)
            if t is None:
                continue
            if prev is not None:
                out[stage] = (t - prev) / 1e6
            prev = t
        if prev is not None:
            out["total"] = (prev - self.stamps["capture"]) / 1e6
        return out

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the captured image."""
        return int(self.image.shape[0]), int(self.image.shape[1])
