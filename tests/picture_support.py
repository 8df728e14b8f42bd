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
