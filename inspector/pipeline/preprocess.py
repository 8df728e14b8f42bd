"""Preprocess: one captured frame → one slot of the preallocated uint8 batch buffer.

The model graph does its own normalisation (DESIGN.md seam 1), so all that is
left is geometry and colour: the sidecar's resize policy and downscale method
(the same :func:`inspector.data.images.resize_image` training used) and BGR → RGB.
Pixel rules are those of the project's one decoder (:mod:`inspector.data.images`):
grey, BGRA and 16-bit frames are converted by
:func:`inspector.data.images.to_uint8` with the camera's bit depth (counted by
reason); frames that cannot be made into an image (empty, wrong rank, odd
channel count, unknown dtype, smaller than :data:`MIN_SIDE`) raise
:class:`FrameRejected` with a short reason.
"""

from __future__ import annotations

import cv2
import numpy as np

from inspector.artifacts.frame_shapes import FrameShapes
from inspector.backends.base import InputSpec
from inspector.data.images import DEFAULT_DOWNSCALE, MIN_SIDE, ImageRejected, resize_image, to_uint8

__all__ = ["MIN_SIDE", "FrameRejected", "Preprocessor"]


class FrameRejected(Exception):
    """A frame that cannot be preprocessed; ``reason`` is a short counter key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}{': ' + detail if detail else ''}")
        self.reason = reason


def _to_uint8(image: np.ndarray, camera: str, bit_depth: int | None) -> tuple[np.ndarray, str | None]:
    if image.dtype == np.uint8:
        return image, None
    try:
        converted = to_uint8(image, f"camera '{camera}'", bit_depth, warn_key=f"camera {camera}")
    except ImageRejected as exc:
        raise FrameRejected(exc.reason, str(exc)) from None
    return converted, "float" if image.dtype.kind == "f" else str(image.dtype)


class Preprocessor:
    """Writes frames into batch slots; holds its own scratch buffers (one per channel count).

    ``bit_depths``: per camera, the significant bits of its integer frames (None: the container's).
    ``downscale``: the model's method (sidecar ``input.downscale``, :func:`inspector.artifacts.input_spec`).
    ``shapes``: tells a camera whose frames are unlike the model's training images (None: its card records none).
    """

    def __init__(self, spec: InputSpec, policy: str = "square",
                 bit_depths: dict[str, int | None] | None = None, downscale: str = DEFAULT_DOWNSCALE,
                 shapes: FrameShapes | None = None) -> None:
        if spec.channels != 3 or spec.color != "RGB" or spec.layout != "NHWC" or spec.dtype != "uint8":
            raise ValueError(f"unsupported model input {spec}; the daemon feeds uint8 NHWC RGB")
        self.spec, self.policy, self.downscale = spec, policy, downscale
        self.bit_depths = dict(bit_depths or {})
        self.shapes = shapes
        self._scratch = {c: np.empty((spec.height, spec.width) + ((c,) if c > 1 else ()), np.uint8) for c in (1, 3, 4)}

    def into(self, image: np.ndarray, out: np.ndarray, camera: str = "") -> str | None:
        """Preprocess ``image`` (BGR / grey / BGRA, as cv2 gives it) into ``out`` (H, W, 3) RGB.

        Returns the conversion applied (``gray``, ``bgra``, ``uint16`` …) or None; raises FrameRejected.
        """
        if not isinstance(image, np.ndarray) or image.size == 0:
            raise FrameRejected("empty", "no pixels")
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if image.ndim not in (2, 3):
            raise FrameRejected("shape", f"{image.ndim}-D frame {image.shape}")
        channels = 1 if image.ndim == 2 else image.shape[2]
        if channels not in (1, 3, 4):
            raise FrameRejected("channels", f"{channels} channels")
        if image.shape[0] < MIN_SIDE or image.shape[1] < MIN_SIDE:
            raise FrameRejected("too_small", f"{image.shape[1]}x{image.shape[0]}")
        if self.shapes is not None:
            self.shapes.see(f"camera '{camera}'", image.shape[0], image.shape[1])
        image, converted = _to_uint8(image, camera, self.bit_depths.get(camera))
        if not image.flags.c_contiguous:
            image = np.ascontiguousarray(image)
        h, w = self.spec.height, self.spec.width
        scratch = self._scratch[channels]
        resize_image(image, h, w, self.policy, out=scratch, downscale=self.downscale)
        if channels == 3:
            cv2.cvtColor(scratch, cv2.COLOR_BGR2RGB, dst=out)
            return converted
        if channels == 1:
            cv2.cvtColor(scratch, cv2.COLOR_GRAY2RGB, dst=out)
            return converted or "gray"
        cv2.cvtColor(scratch, cv2.COLOR_BGRA2RGB, dst=out)
        return converted or "bgra"
