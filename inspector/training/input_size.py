"""The default model input size, derived from the training images' aspect at a fixed pixel budget.

Stretching images of another aspect to a square changes the texture scale
(KolektorSDD's 500×1250 parts become 2.5× squashed along one axis), which a
student trained on a few hundred images then learns as "normal" (MODELS.md,
"Quality on real data"). With ``data.input_size: auto`` (the default when
``model.image_size`` is not given) training keeps the median aspect of the
training images and the pixel count of the model's default input, rounded to
the network's stride (32); the resolved size is saved in the run's config, so
export, calibration, predict and the daemon all use it.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

import numpy as np

from inspector.data.datasets import Sample
from inspector.data.images import frame_size
from inspector.errors import DataError
from inspector.contract import MAX_IMAGE_SIDE

MULTIPLE = 32  # every backbone's deepest stride; ModelConfig.validate requires it
MIN_SIDE, MAX_SIDE = 64, MAX_IMAGE_SIDE  # the schema's largest side: an automatic size always loads
SAMPLE = 64  # images read to estimate the aspect (evenly spaced over the sorted list)


def median_aspect(samples: Sequence[Sample], sample: int = SAMPLE) -> float:
    """Median height/width (in log space) of up to ``sample`` readable images (evenly spaced); DataError if none.

    Sizes come from the files' headers where that gives the decoded frame's size
    (:func:`inspector.data.images.frame_size`), so large scans are not decoded twice.
    """
    picks = [samples[int(i)] for i in np.unique(np.linspace(0, len(samples) - 1, min(sample, len(samples))).round())]
    aspects, reasons = [], []
    for s in picks:
        try:
            height, width = frame_size(s.path)
        except DataError as exc:
            reasons.append(str(exc))  # load_batch reports unreadable files once, with the others
            continue
        aspects.append(height / width)
    if not aspects:  # nothing else will run, so this one line must say why
        raise DataError(f"{samples[0].path.parent}: cannot derive the input size: none of the {len(picks)} "
                        f"training image(s) tried could be read, e.g. {reasons[0]}")
    # the median of log(h/w): with an even count the two middle aspects meet at their geometric mean, so a
    # set of 40x2000 and 2000x40 parts gives a square input (their plain mean, 25, gave a 25:1 strip) and
    # transposing every image transposes the size
    return float(np.exp(np.median(np.log(aspects))))


def size_for_aspect(aspect: float, pixels: int, multiple: int = MULTIPLE) -> tuple[int, int]:
    """(height, width), multiples of ``multiple`` in [MIN_SIDE, MAX_SIDE], with h/w ≈ ``aspect`` and h·w ≈ ``pixels``."""
    def snap(x: float) -> int:
        return int(min(MAX_SIDE, max(MIN_SIDE, multiple * round(x / multiple))))

    h = math.sqrt(pixels * aspect)
    return snap(h), snap(pixels / h)


def resolve_input_size(config, samples: Sequence[Sample]):
    """``config`` (a RunConfig) with ``model.image_size`` set from the data when ``data.input_size`` is auto.

    Returns the config unchanged otherwise; the result always has ``input_size: fixed``,
    so a saved run reloads at exactly the size it was trained at.
    """
    if config.data.input_size != "auto":
        return config
    h, w = config.model.image_size
    size = size_for_aspect(median_aspect(samples), config.data.input_pixels or h * w)
    return replace(config, model=replace(config.model, image_size=size),
                   data=replace(config.data, input_size="fixed"))
