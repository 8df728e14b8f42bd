"""Heat-map overlays and image encoding (numpy + OpenCV; used by evaluation, predict and the daemon)."""

from __future__ import annotations

import cv2
import numpy as np


def colorize(amap: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """A float (h, w) map as a uint8 RGB JET image; values outside [vmin, vmax] are clipped."""
    span = float(vmax) - float(vmin)
    scale = 255.0 / span if span > 0 else 0.0
    levels = (np.asarray(amap, dtype=np.float32) - np.float32(vmin)) * np.float32(scale)
    levels = np.clip(levels, 0, 255, out=levels).astype(np.uint8)
    heat = cv2.applyColorMap(levels, cv2.COLORMAP_JET)
    return cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)


def heatmap_overlay(image_rgb: np.ndarray, amap: np.ndarray, vmin: float, vmax: float,
                    alpha: float = 0.5) -> np.ndarray:
    """Blend the JET-coloured map (resized to the image) over a uint8 RGB image."""
    h, w = image_rgb.shape[:2]
    amap = np.asarray(amap, dtype=np.float32)
    if amap.shape != (h, w):
        amap = cv2.resize(amap, (w, h), interpolation=cv2.INTER_LINEAR)
    heat = colorize(amap, vmin, vmax)
    return cv2.addWeighted(np.ascontiguousarray(image_rgb, dtype=np.uint8), 1.0 - alpha, heat, alpha, 0.0)


def _encode(ext: str, rgb: np.ndarray, params: list[int]) -> bytes:
    img = np.asarray(rgb)
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(ext, img, params)
    if not ok:
        raise ValueError(f"cannot encode {img.dtype} {img.shape} as {ext}")
    return buf.tobytes()


def encode_png(rgb: np.ndarray, compression: int = 3) -> bytes:
    """PNG bytes of a uint8 RGB (or single-channel / 16-bit) image."""
    return _encode(".png", rgb, [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])


def encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    """JPEG bytes of a uint8 RGB (or grayscale) image."""
    return _encode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
