"""Pictures the format tests share (tests/data/videos' README gives how its files were made from them)."""

from __future__ import annotations

import numpy as np


def twelve_bit_picture() -> np.ndarray:
    """uint16 (24, 32, 3) BGR, values 0..4095: three gradients and a saturated patch."""
    h, w = 24, 32
    yy, xx = np.mgrid[0:h, 0:w]
    r = (xx * 4095 // (w - 1)).astype(np.uint16)
    g = (yy * 4095 // (h - 1)).astype(np.uint16)
    b = ((xx + yy) * 4095 // (w + h - 2)).astype(np.uint16)
    r[2:6, 3:14], g[2:6, 3:14], b[2:6, 3:14] = 3900, 300, 250
    return np.dstack([b, g, r])


class RecordingBackend:
    """Stands in for a deployed backend to see what calibration feeds it: records each batch. ``spec``: its
    InputSpec; ``resize``: the sidecar's resize policy (as exported)."""

    def __init__(self, spec, resize: str = "square") -> None:
        self.input_spec = spec
        self.sidecar = {"input": {"resize": resize, "bit_depth": None, "downscale": "box_linear"}}
        self.seen: list[np.ndarray] = []

    def infer(self, batch: np.ndarray):
        self.seen.extend(np.array(batch))
        n = len(batch)

        class Result:
            scores = np.zeros(n, np.float32)
            maps = np.zeros((n, 1, 4, 4), np.float32)

        return Result()
