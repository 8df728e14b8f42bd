"""GenICam pixel formats → the frames the pipeline decodes (pure numpy/OpenCV; no camera library).

Output follows the pipeline's one decoding path (:mod:`inspector.pipeline.preprocess`):
8-bit grey or BGR, and 16-bit grey scaled to the full 16-bit range, which the
preprocessor maps to 8 bits. Bit depth is honoured: Mono12 (12 significant bits
in a 16-bit little-endian container, PFNC "Mono12", unpacked) and Mono16 with
``bit_depth`` < 16 are shifted left so their full scale is 65535; otherwise a
12-bit camera would look 16× too dark. Names and layouts: GenICam Pixel Format
Naming Convention (PFNC) 2.x. BayerRG8 is the RGGB mosaic (red at row 0,
column 0), which OpenCV calls BayerBG (its names refer to the 2×2 block at
(1, 1)): checked on a pure-red mosaic in tests/pipeline/test_genicam.py.
"""

from __future__ import annotations

import cv2
import numpy as np

from inspector.errors import SourceError

# PFNC name → (bytes per pixel, channels, default significant bits)
LAYOUT = {"Mono8": (1, 1, 8), "Mono12": (2, 1, 12), "Mono16": (2, 1, 16), "BayerRG8": (1, 1, 8), "RGB8": (1, 3, 8)}


def decode_pixels(data, pixel_format: str, width: int, height: int, bit_depth: int | None = None) -> np.ndarray:
    """One image buffer → (H, W) uint8/uint16 grey or (H, W, 3) uint8 BGR.

    ``data`` is any bytes-like object (no copy for Mono8; one for the conversions). Raises SourceError
    for an unsupported format or a buffer shorter than ``width × height × bytes per pixel``.
    """
    if pixel_format not in LAYOUT:
        raise SourceError(f"pixel format {pixel_format} is not supported (use one of {', '.join(LAYOUT)})")
    nbytes, channels, default_bits = LAYOUT[pixel_format]
    need = width * height * nbytes * channels
    buf = np.frombuffer(data, dtype=np.uint8 if nbytes == 1 else np.dtype("<u2"),
                        count=width * height * channels) if len(data) >= need else None
    if buf is None:
        raise SourceError(f"{pixel_format} {width}x{height} needs {need} bytes, buffer has {len(data)}")
    if pixel_format == "Mono8":
        return buf.reshape(height, width)
    if pixel_format == "RGB8":
        return cv2.cvtColor(buf.reshape(height, width, 3), cv2.COLOR_RGB2BGR)
    if pixel_format == "BayerRG8":
        return cv2.cvtColor(buf.reshape(height, width), cv2.COLOR_BayerBG2BGR)  # = COLOR_BayerRGGB2BGR
    bits = bit_depth or default_bits
    img = buf.reshape(height, width).astype(np.uint16)
    if bits < 16:  # MSB-align: full scale of a `bits`-bit value becomes ~65535
        np.left_shift(np.minimum(img, (1 << bits) - 1), 16 - bits, out=img)
    return img
