"""GenICam pixel formats → the frames the pipeline decodes (pure numpy/OpenCV; no camera library).

Output feeds the pipeline's one decoding path (the preprocessor's ``to_uint8``
with the camera's ``bit_depth``): 8-bit grey or BGR, or 16-bit grey with the
values as sent. Mono12 (PFNC: 12 significant bits, unpacked in a 16-bit
little-endian container) declares its depth, and a declared depth wins over the
setting, as a PNG sBIT chunk does: :func:`align_bits` shifts it to the depth
the preprocessor will assume (the camera/model ``bit_depth``, else the 16-bit
container), so a 12-bit camera is not scaled as 16-bit data (16× too dark).
Mono16 carries no declaration: set ``bit_depth`` when the camera fills fewer
bits. Names and layouts: GenICam Pixel Format Naming Convention (PFNC) 2.x.
BayerRG8 is the RGGB mosaic (red at row 0, column 0), which OpenCV calls BayerBG
(its names refer to the 2×2 block at (1, 1)): checked on a pure-red mosaic in
tests/pipeline/test_genicam.py.
"""

from __future__ import annotations

import cv2
import numpy as np

from inspector.errors import SourceError

# PFNC name → (bytes per pixel, channels, significant bits the format declares; None: the container's)
LAYOUT = {"Mono8": (1, 1, None), "Mono12": (2, 1, 12), "Mono16": (2, 1, None), "BayerRG8": (1, 1, None),
          "RGB8": (1, 3, None)}


def declared_bits(pixel_format: str) -> int | None:
    """Significant bits the pixel format itself declares (Mono12 → 12), None when it fills its container."""
    return LAYOUT.get(pixel_format, (0, 0, None))[2]


def align_bits(img: np.ndarray, declared: int, assumed: int | None) -> np.ndarray:
    """Shift ``declared``-bit data so that it reads right as ``assumed``-bit data (None: the container's)."""
    target = assumed or 8 * img.dtype.itemsize
    shift = target - declared
    if shift > 0:
        return np.left_shift(np.minimum(img, (1 << declared) - 1), shift)
    return np.right_shift(img, -shift) if shift < 0 else img


def decode_pixels(data, pixel_format: str, width: int, height: int) -> np.ndarray:
    """One image buffer → (H, W) uint8/uint16 grey (values as sent) or (H, W, 3) uint8 BGR.

    ``data`` is any bytes-like object (no copy for Mono8; one for the conversions). Raises SourceError
    for an unsupported format or a buffer shorter than ``width × height × bytes per pixel``.
    """
    if pixel_format not in LAYOUT:
        raise SourceError(f"pixel format {pixel_format} is not supported (use one of {', '.join(LAYOUT)})")
    nbytes, channels, _ = LAYOUT[pixel_format]
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
    return buf.reshape(height, width)  # Mono12 / Mono16: a view, values as sent
