"""A camera clock stamped into the pixels of a frame, to measure how old an inspected frame is.

The stamp is 32 black/white BLOCK×BLOCK squares in the frame's top-left corner: bit i
of the milliseconds (low 32 bits of ``time.time()``) is square i, two rows of 16. It
survives JPEG (each square is read from its centre, 2 px in from its edges), so an
MJPEG camera can carry its own grab time to whoever decodes the frame.
"""

from __future__ import annotations

import cv2
import numpy as np

BLOCK = 8  # pixels per stamp square


def stamp_frame(base: np.ndarray, ms: int, quality: int = 90) -> bytes:
    """JPEG bytes of ``base`` (H, W, 3) uint8 (H ≥ 2·BLOCK, W ≥ 16·BLOCK) with ``ms`` stamped in."""
    frame = base.copy()
    for bit in range(32):
        r, c = divmod(bit, 16)
        frame[r * BLOCK:(r + 1) * BLOCK, c * BLOCK:(c + 1) * BLOCK] = 255 if (ms >> bit) & 1 else 0
    return cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def read_stamp(image: np.ndarray) -> int:
    """The milliseconds stamped into a decoded frame, (H, W) or (H, W, C) uint8."""
    grey = image if image.ndim == 2 else image.mean(axis=2)
    ms = 0
    for bit in range(32):
        r, c = divmod(bit, 16)
        if grey[r * BLOCK + 2:(r + 1) * BLOCK - 2, c * BLOCK + 2:(c + 1) * BLOCK - 2].mean() > 127:
            ms |= 1 << bit
    return ms
