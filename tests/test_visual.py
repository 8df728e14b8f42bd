"""Heat-map overlays and PNG/JPEG encoding."""

from __future__ import annotations

import cv2
import numpy as np

from inspector.visual import colorize, encode_jpeg, encode_png, heatmap_overlay


def test_colorize_clips_to_range():
    amap = np.array([[-5.0, 0.0, 1.0, 9.0]], np.float32)
    rgb = colorize(amap, 0.0, 1.0)
    assert rgb.shape == (1, 4, 3) and rgb.dtype == np.uint8
    assert (rgb[0, 0] == rgb[0, 1]).all() and (rgb[0, 2] == rgb[0, 3]).all()
    assert rgb[0, 0, 2] > rgb[0, 0, 0] and rgb[0, 3, 0] > rgb[0, 3, 2]  # low = blue, high = red (RGB)
    assert colorize(amap, 1.0, 1.0).shape == (1, 4, 3)  # flat range does not divide by zero


def test_overlay_resizes_map_to_image():
    img = np.full((40, 60, 3), 100, np.uint8)
    amap = np.zeros((10, 15), np.float32)
    amap[:, 8:] = 1.0
    out = heatmap_overlay(img, amap, 0.0, 1.0, alpha=0.5)
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    assert out[20, 50, 0] > out[20, 5, 0]  # hot side is redder
    assert (heatmap_overlay(img, amap, 0.0, 1.0, alpha=0.0) == img).all()


def test_encode_round_trip():
    rgb = np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    png = encode_png(rgb)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    back = cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert (back == rgb).all()
    jpg = encode_jpeg(np.full((24, 32, 3), (200, 10, 10), np.uint8), quality=90)
    assert jpg[:2] == b"\xff\xd8"
    dec = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)
    assert dec[12, 16, 2] > 150 and dec[12, 16, 0] < 60  # red stays red (BGR when decoded by OpenCV)
    assert encode_png(np.zeros((4, 4), np.uint8))[:4] == b"\x89PNG"
