"""Out-of-distribution images generated at run time, for the student's penalty term.

EfficientAD (Batzner et al., WACV 2024, §3.2) pushes the student's output towards
zero on ImageNet images, so that its imitation of the teacher does not generalise
to everything (a defect included). There is no ImageNet offline; the natural
photographs that ship inside scikit-image (``skimage.data``: people, animals,
objects, scenes, micrographs, textures; no download) stand in for it. Each image
is a random crop at a random scale, rotated by a multiple of 90°, flipped,
tinted, and brightness/contrast-jittered, so a few photographs give a pool far
more varied than any one product.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import cv2
import numpy as np

# Shipped with scikit-image's wheel (its ``data`` folder): no network access.
SKIMAGE_PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "coins", "clock", "horse", "hubble_deep_field",
                  "immunohistochemistry", "moon", "page", "rocket", "text", "brick", "grass", "gravel",
                  "colorwheel", "logo")


@lru_cache(maxsize=1)
def ood_sources() -> tuple[np.ndarray, ...]:
    """The photographs available offline as uint8 (H, W, 3) RGB; empty when scikit-image is absent."""
    try:
        import skimage.data
    except ImportError:
        return ()
    out = []
    for name in SKIMAGE_PHOTOS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                img = np.asarray(getattr(skimage.data, name)())
        except Exception:  # noqa: BLE001 - a photo that needs a download is simply not used
            continue
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        if img.dtype != np.uint8:
            img = (255 * (img.astype(np.float32) / max(float(img.max()), 1e-6))).astype(np.uint8)
        out.append(np.ascontiguousarray(img[:, :, :3]))
    return tuple(out)


def ood_image(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """One random out-of-distribution image, uint8 (height, width, 3) RGB.

    Raises RuntimeError when no source photograph is available (scikit-image missing).
    """
    sources = ood_sources()
    if not sources:
        raise RuntimeError("out-of-distribution images need scikit-image (pip install 'inspector[train]')")
    src = sources[int(rng.integers(len(sources)))]
    src = np.rot90(src, int(rng.integers(4)))
    h, w = src.shape[:2]
    # Crop 25-100 % of the shorter side, with the target's aspect where it fits.
    side = min(h, w) * rng.uniform(0.25, 1.0)
    ch = int(min(h, max(8, side * min(1.0, height / width))))
    cw = int(min(w, max(8, side * min(1.0, width / height))))
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    img = cv2.resize(src[top:top + ch, left:left + cw], (width, height), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    img = img.astype(np.float32)
    if rng.random() < 0.5:  # grey, as many inspected products are
        img = np.repeat(img.mean(axis=2, keepdims=True), 3, axis=2)
    img = img * rng.uniform(0.7, 1.3, size=3) * rng.uniform(0.6, 1.4) + rng.uniform(-40, 40)
    return np.clip(img, 0, 255).astype(np.uint8)


def ood_batch(n: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` images from :func:`ood_image`: uint8 (n, height, width, 3)."""
    return np.stack([ood_image(height, width, rng) for _ in range(n)])
