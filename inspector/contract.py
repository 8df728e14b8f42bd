"""The graph I/O contract every exported model, engine and backend shares.

One home for the tensor names, the input layout and the output shapes, so the
exporter, the graph checks, the quantizer, the engine builder and every backend
agree by construction (DESIGN.md "one layout"). Nothing here imports torch,
onnx or a runtime: the daemon depends on it.

Graph I/O (ONNX and TensorRT alike)::

    images       uint8   (N, H, W, 3)  NHWC RGB, resized with ``InputSpec.resize``
    score        float32 (N,)          per-image anomaly score
    anomaly_map  float32 (N, 1, h, w)  per-pixel score (h, w: the model's map size)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

INPUT_NAME = "images"
SCORE_NAME = "score"
MAP_NAME = "anomaly_map"
OUTPUT_NAMES = (SCORE_NAME, MAP_NAME)
OUTPUT_RANKS = {SCORE_NAME: 1, MAP_NAME: 4}  # (N,) and (N, 1, h, w)

# Values of the preprocessing fields (inspector.data.images implements them).
RESIZE_POLICIES = ("square", "shorter_side_crop", "letterbox")
DOWNSCALE_METHODS = ("halving", "box_linear", "area")
DEFAULT_DOWNSCALE = "halving"  # what new models are trained and exported with
LEGACY_DOWNSCALE = "area"  # a model card without input.downscale predates it and was made with INTER_AREA
BIT_DEPTHS = (8, 10, 12, 14, 16)
# The largest side of a model input, for every file and setting that gives one: a model config's
# ``image_size`` (and so the automatic input size of training/input_size.py) and a model card's ``input``
# height and width. One rule: the card allowed 8192 while training stopped at 2048, so a card no training run
# could write (hand-edited, or from another tool) was taken, and the daemon sized its frame slots by it. The
# presets use 256 to 768; 2048x2048 is 64x the default's pixels and already needs gigabytes per training
# batch; past it nothing stopped a run early (8192x8192 was killed for memory with no message).
MAX_IMAGE_SIDE = 2048
# Images per inference call when none is given: offline scoring (evaluate, calibrate, verify, predict,
# quantize, model fitting) and the largest batch of an engine's optimisation profile. One value, so an
# engine built with the defaults takes every default batch the offline tools send it.
DEFAULT_BATCH = 8


@dataclass(frozen=True)
class InputSpec:
    """What a model expects, and how a frame is made into it.

    Shape (N, ``height``, ``width``, ``channels``) ``dtype`` ``layout`` ``color``;
    ``max_batch`` None means dynamic without a hard limit. The preprocessing
    fields are the ones the model was trained with: ``resize`` (one of
    :data:`RESIZE_POLICIES`), ``downscale`` (one of :data:`DOWNSCALE_METHODS`)
    and ``bit_depth`` (significant bits of 16-bit inputs; None: the container's).
    Every path that feeds a backend (predict, verify, calibrate, bench, demo,
    the daemon) reads these fields and nothing else.
    """

    height: int
    width: int
    channels: int = 3
    dtype: str = "uint8"
    layout: str = "NHWC"
    color: str = "RGB"
    max_batch: int | None = None
    resize: str = "square"
    downscale: str = DEFAULT_DOWNSCALE
    bit_depth: int | None = None

    def with_max_batch(self, max_batch: int | None) -> "InputSpec":
        """The same spec with another batch limit (a graph's static batch, an engine's profile)."""
        return replace(self, max_batch=max_batch)
