"""Image and mask I/O plus the resize policies, shared by training, evaluation and the daemon.

numpy + OpenCV only (no torch). Images are uint8 (H, W, 3) RGB everywhere in
the project; masks are bool (H, W).

Resize policies (recorded in the sidecar, applied identically everywhere):

``square``
    plain resize of the whole frame to (height, width); the aspect ratio may change.
``shorter_side_crop``
    scale so the frame covers (height, width) — the shorter side meets the
    target — then take the centre crop. It is implemented as the equivalent
    centre crop *in source pixels* followed by one resize, so no full-size
    intermediate is allocated.

:func:`crop_box` is the single place that decides the geometry; images, masks
and :func:`map_to_frame` (model map → original frame) all go through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from inspector.errors import DataError

RESIZE_POLICIES = ("square", "shorter_side_crop")
_DECODE_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR  # keeps 16-bit, drops alpha, honours EXIF


class CropBox(NamedTuple):
    """The region of the source frame that is resized to the model input: rows top..top+height."""

    top: int
    left: int
    height: int
    width: int


def _read_bytes(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None


def _decode(path: Path, flags: int) -> np.ndarray:
    buf = _read_bytes(path)
    img = None
    if buf.size:
        try:
            img = cv2.imdecode(buf, flags)
        except cv2.error:
            img = None
    if img is None:
        raise DataError(f"{path}: cannot decode image (corrupt or unsupported format)")
    return img


def _to_uint8(img: np.ndarray, path: Path) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return ((img.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if img.dtype in (np.float32, np.float64):
        scale = 255.0 if float(np.nanmax(img)) <= 1.0 else 1.0
        return np.clip(np.nan_to_num(img) * scale + 0.5, 0, 255).astype(np.uint8)
    raise DataError(f"{path}: unsupported pixel type {img.dtype}")


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to uint8 (H, W, 3) RGB.

    Grayscale is replicated to 3 channels, alpha dropped, 16-bit scaled to 8-bit.
    Raises :class:`DataError` naming the file when it is missing or cannot be decoded.
    """
    path = Path(path)
    img = _to_uint8(_decode(path, _DECODE_FLAGS), path)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    raise DataError(f"{path}: unsupported image shape {img.shape}")


def read_mask(path: str | Path, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Decode a ground-truth mask to bool (H, W).

    Any channel counts; masks stored as 0/1 and as 0/255 both work (values above
    half of 255 are defect, or above 0 when the file's maximum is 1). With
    ``shape`` ((H, W) or (H, W, C)) a mask of another size is resized (nearest).
    """
    path = Path(path)
    img = _to_uint8(_decode(path, _DECODE_FLAGS), path)
    if img.ndim == 3:
        img = img.max(axis=2)
    mask = img > (0 if img.max() <= 1 else 127)
    if shape is not None and tuple(shape[:2]) != mask.shape:
        mask = _resize_nearest(mask, int(shape[0]), int(shape[1]))
    return mask


def crop_box(src_h: int, src_w: int, height: int, width: int, policy: str) -> CropBox:
    """The source region that ``policy`` maps onto a (height, width) model input."""
    if policy == "square":
        return CropBox(0, 0, src_h, src_w)
    if policy != "shorter_side_crop":
        raise ValueError(f"unknown resize policy {policy!r}; expected one of {RESIZE_POLICIES}")
    if src_h * width > src_w * height:  # source is taller than the target: crop rows
        crop_w = src_w
        crop_h = min(src_h, max(1, round(src_w * height / width)))
    else:  # source is wider (or same aspect): crop columns
        crop_h = src_h
        crop_w = min(src_w, max(1, round(src_h * width / height)))
    return CropBox((src_h - crop_h) // 2, (src_w - crop_w) // 2, crop_h, crop_w)


def _interpolation(src_h: int, src_w: int, height: int, width: int) -> int:
    return cv2.INTER_AREA if src_h >= height and src_w >= width else cv2.INTER_LINEAR


def resize_image(img: np.ndarray, height: int, width: int, policy: str = "square",
                 out: np.ndarray | None = None) -> np.ndarray:
    """Resize uint8 (H, W, 3) to (height, width, 3) with ``policy``; writes into ``out`` when given.

    INTER_AREA when shrinking, INTER_LINEAR when enlarging.
    """
    box = crop_box(img.shape[0], img.shape[1], height, width, policy)
    src = img[box.top:box.top + box.height, box.left:box.left + box.width]
    if out is not None and (out.shape != (height, width) + img.shape[2:] or out.dtype != img.dtype
                            or not out.flags.c_contiguous):
        raise ValueError(f"out must be a contiguous {img.dtype} array of shape {(height, width) + img.shape[2:]}, "
                         f"got {out.dtype} {out.shape}")
    if src.shape[:2] == (height, width):
        if out is None:
            return np.ascontiguousarray(src)
        out[...] = src
        return out
    interp = _interpolation(box.height, box.width, height, width)
    if out is None:
        return cv2.resize(src, (width, height), interpolation=interp)
    cv2.resize(src, (width, height), dst=out, interpolation=interp)
    return out


def _resize_nearest(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    if mask.shape == (height, width):
        return mask.copy()
    resized = cv2.resize(mask.view(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
    return resized.astype(bool)


def resize_mask(mask: np.ndarray, height: int, width: int, policy: str = "square") -> np.ndarray:
    """Resize a bool (H, W) mask with the same geometry as :func:`resize_image` (nearest)."""
    box = crop_box(mask.shape[0], mask.shape[1], height, width, policy)
    src = np.ascontiguousarray(mask[box.top:box.top + box.height, box.left:box.left + box.width], dtype=bool)
    return _resize_nearest(src, height, width)


def map_to_frame(map_hw: np.ndarray, frame_h: int, frame_w: int, policy: str = "square") -> np.ndarray:
    """Map a (h, w) map in model coordinates back onto the original (frame_h, frame_w) frame.

    The inverse of :func:`resize_image`'s geometry: bilinear resize of the map onto
    the crop box; outside the crop (``shorter_side_crop``) the result is 0.
    """
    h, w = map_hw.shape[:2]
    box = crop_box(frame_h, frame_w, h, w, policy)
    src = np.asarray(map_hw, dtype=np.float32)
    if (box.height, box.width) == (h, w):
        inner = src.copy()
    else:
        inner = cv2.resize(src, (box.width, box.height), interpolation=cv2.INTER_LINEAR)
    if (box.height, box.width) == (frame_h, frame_w):
        return inner
    frame = np.zeros((frame_h, frame_w), dtype=np.float32)
    frame[box.top:box.top + box.height, box.left:box.left + box.width] = inner
    return frame
