"""GenICam pixel formats → the frames the pipeline decodes (pure numpy/OpenCV; no camera library).

Output feeds the pipeline's one decoding path (the preprocessor's ``to_uint8``
with the camera's ``bit_depth``): 8-bit grey or BGR, or 16-bit grey with the
values as sent. Mono12 (PFNC: 12 significant bits, unpacked in a 16-bit
little-endian container) declares its depth, and a declared depth wins over the
setting, as a PNG sBIT chunk does: :func:`align_bits` shifts it to the depth
the preprocessor will assume (the camera/model ``bit_depth``, else the 16-bit
container), so a 12-bit camera is not scaled as 16-bit data (16× too dark), and so
exactly that the model gets what the same frame saved as a 12-bit PNG with an sBIT chunk
gives ``predict`` (:func:`align_bits`). Mono16 carries no declaration: set ``bit_depth``
when the camera fills fewer bits. Names and layouts: GenICam Pixel Format Naming
Convention (PFNC) 2.x. A PFNC Bayer name gives the mosaic's 2×2 block at row 0, column 0
(BayerRG8: red there), which OpenCV's ``COLOR_BayerRGGB2BGR`` family names the same way
(its older names, ``COLOR_BayerBG2BGR`` for the same code, refer to the block at (1, 1);
:func:`inspector.pipeline.pixel_formats.demosaic`, which Bayer videos use too):
each checked on pure-colour mosaics in tests/pipeline/test_genicam.py.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from inspector.errors import SourceError
from inspector.pipeline.pixel_formats import demosaic

# PFNC name → (bytes per pixel, channels, significant bits the format declares; None: the container's)
LAYOUT = {"Mono8": (1, 1, None), "Mono12": (2, 1, 12), "Mono16": (2, 1, None), "BayerRG8": (1, 1, None),
          "BayerBG8": (1, 1, None), "BayerGB8": (1, 1, None), "BayerGR8": (1, 1, None), "RGB8": (1, 3, None)}
# PFNC Bayer name → the mosaic's top-left 2×2 block, demosaiced by the pipeline's one rule (module docstring;
# a Bayer video's frames go through the same function: inspector.pipeline.pixel_formats.demosaic)
BAYER = {"BayerRG8": "RGGB", "BayerBG8": "BGGR", "BayerGB8": "GBRG", "BayerGR8": "GRBG"}


def declared_bits(pixel_format: str) -> int | None:
    """Significant bits the pixel format itself declares (Mono12 → 12), None when it fills its container."""
    return LAYOUT.get(pixel_format, (0, 0, None))[2]


def align_bits(img: np.ndarray, declared: int, assumed: int | None) -> np.ndarray:
    """``declared``-bit data (uint16, values above the declared range clipped) made ``assumed``-bit data
    (None: the container's) that :func:`inspector.data.images.to_uint8` scales by ``2**assumed - 1`` to exactly
    the 8-bit values the declared full scale ``2**declared - 1`` gives, the rule of a PNG's sBIT.

    A plain shift was 1 level off for 120 of the 4096 12-bit values read as 16-bit data (measured), and lost
    the low bits when ``assumed`` was narrower: :func:`_depth_table` is exact for every depth pair.
    """
    target = assumed or 8 * img.dtype.itemsize
    if target == declared:
        return img
    table = _depth_table(declared, target)
    return table[np.minimum(img, len(table) - 1)]


@functools.lru_cache(maxsize=16)
def _depth_table(declared: int, target: int) -> np.ndarray:
    """uint16 (2**declared,): each ``declared``-bit value as a ``target``-bit one (``target`` ≥ 8).

    Bit replication (``v << (t - n) | v >> (2n - t)``, how FFmpeg and libpng widen) where that scales exactly
    (12 → 16 and 10 → 16 do; 12 → 14 does not, 18 values off); else the smallest ``target``-bit value that
    :func:`to_uint8`'s rounding maps to the declared scale's 8-bit value.
    """
    v = np.arange(1 << declared, dtype=np.int64)
    top_n, top_t = (1 << declared) - 1, (1 << target) - 1
    eight = (v * 255 + top_n // 2) // top_n  # images.to_uint8 with the declared full scale
    widened = (v << (target - declared)) | (v >> (2 * declared - target)) if target > declared else v
    if target > declared and np.array_equal((widened * 255 + top_t // 2) // top_t, eight):
        return widened.astype(np.uint16)
    return (-((top_t // 2 - eight * top_t) // 255)).clip(0, top_t).astype(np.uint16)  # ceil division


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
    if pixel_format in BAYER:
        return demosaic(buf.reshape(height, width), BAYER[pixel_format])
    return buf.reshape(height, width)  # Mono12 / Mono16: a view, values as sent
