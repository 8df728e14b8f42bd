"""Frames shaped unlike the images a model was trained on: told once per camera or folder, never refused.

Every frame is resized to the model's input (``input.height`` x ``input.width``), whatever its own size. A model
trained on 4:3 pictures of 1024 px and fed 16:9 frames, or 4K frames when it learnt from 256-px crops, sees its
parts squashed or shrunk: its scores mean nothing, and nothing said so. ``train`` records the range of the good
images' own sizes and aspect ratios (:func:`image_size_range`, the card's ``training.data.image_sizes``:
:class:`~inspector.artifacts.model_card.CardImageSizes`); ``run``, ``predict`` and ``calibrate`` tell a source
whose frames fall outside it by more than these tolerances:

* :data:`ASPECT_TOLERANCE`: an aspect ratio (width / height) more than 10 % beyond the training range, either way
  (below ``min_aspect / 1.1`` or above ``max_aspect * 1.1``): a 16:9 frame (1.78) beside 4:3 training images
  (1.33) is told, a 1000x760 frame (1.32) is not;
* :data:`SIZE_TOLERANCE`: a width or height more than twice the largest training image's, or less than half the
  smallest's: a 3840x2160 frame beside 256-px tiles is told, one of 400x400 is not.

A card without the range (made before it was recorded) checks nothing. Imports no torch: the daemon uses it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from inspector.artifacts.card_loading import parse_card
from inspector.artifacts.model_card import CardImageSizes, CardTrainingData, parse_model_card

log = logging.getLogger("inspector.frames")

ASPECT_TOLERANCE = 1.1  # factor beyond the training aspect range (either way) before a frame is told
SIZE_TOLERANCE = 2.0  # factor beyond the training sides' range (either way) before a frame is told


def image_size_range(sizes: Iterable[tuple[int, int]]) -> dict[str, int | float] | None:
    """The card's ``training.data.image_sizes`` of images of ``sizes`` ((height, width) pixels each): smallest
    and largest width, height and aspect ratio (width / height, 4 decimals, rounded outwards); None for none."""
    sizes = list(sizes)
    if not sizes:
        return None
    aspects = [w / h for h, w in sizes]
    return {"min_width": min(w for _, w in sizes), "max_width": max(w for _, w in sizes),
            "min_height": min(h for h, _ in sizes), "max_height": max(h for h, _ in sizes),
            "min_aspect": _round(min(aspects), -1), "max_aspect": _round(max(aspects), 1)}


def _round(value: float, direction: int) -> float:
    """``value`` to 4 decimals, rounded down (``direction`` -1) or up (1), so the range still holds it."""
    rounded = round(value, 4)
    step = 1e-4 * direction
    return round(rounded + step, 4) if (rounded - value) * direction < 0 else rounded


def unlike_training(sizes: CardImageSizes, height: int, width: int) -> str | None:
    """What sets a frame of ``height`` x ``width`` pixels apart from the training images of ``sizes`` beyond the
    tolerances (``'aspect ratio 1.78'``, ``'size 3840x2160'``, or both); None when it is like them."""
    aspect = width / height
    why = []
    if aspect < sizes.min_aspect / ASPECT_TOLERANCE or aspect > sizes.max_aspect * ASPECT_TOLERANCE:
        why.append(f"aspect ratio {aspect:.2f}")
    if (width > sizes.max_width * SIZE_TOLERANCE or height > sizes.max_height * SIZE_TOLERANCE
            or width * SIZE_TOLERANCE < sizes.min_width or height * SIZE_TOLERANCE < sizes.min_height):
        why.append("size")
    return " and ".join(why) or None


def training_range(sizes: CardImageSizes) -> str:
    """``'64x48 to 96x64 px, aspect ratio 1.00 to 1.50'``: the training images' range, for a warning line."""
    def side(low: int, high: int) -> str:
        return f"{low}" if low == high else f"{low}-{high}"

    aspects = (f"{sizes.min_aspect:.2f}" if round(sizes.min_aspect, 2) == round(sizes.max_aspect, 2)
               else f"{sizes.min_aspect:.2f} to {sizes.max_aspect:.2f}")
    return (f"{side(sizes.min_width, sizes.max_width)}x{side(sizes.min_height, sizes.max_height)} px, "
            f"aspect ratio {aspects}")


# A warning says what to do: the line told what was wrong only (a newcomer's session 44).
WHAT_TO_DO = ("give frames like the training images (crop or scale them: a camera's region of interest or "
              "resolution), or train on frames like these")


class FrameShapes:
    """Tells, in one warning line, a source (camera, folder) whose frames are unlike the model's training images
    (:func:`unlike_training`), naming the source, the frame's size and the training range.

    ``retell``: a camera (the daemon) is told when first seen and again only when its frame size changes (to
    another size out of range; back in range is one info line); a folder of files (predict, calibrate), whose
    images may each have a size of their own, is told once. Thread-safe (the loaders decode in a pool).
    """

    def __init__(self, sizes: CardImageSizes, input_size: tuple[int, int], retell: bool) -> None:
        self.sizes, self.input_size, self.retell = sizes, input_size, retell
        self._last: dict[str, tuple[int, int]] = {}  # source → last frame size (h, w) looked at
        self._told: dict[str, bool] = {}  # source → whether its current size was told unlike training
        self._lock = threading.Lock()

    def see(self, source: str, height: int, width: int) -> str | None:
        """Look at one frame of ``source`` (``height`` x ``width`` pixels); returns the line logged, if one was."""
        size = (height, width)
        if self._last.get(source) == size or (not self.retell and self._told.get(source)):
            return None  # the usual case, every frame of a camera: no lock, no arithmetic
        with self._lock:
            first, self._last[source] = source not in self._last, size
            why = unlike_training(self.sizes, height, width)
            was_told, self._told[source] = self._told.get(source, False), why is not None
        if why is None:
            if was_told and self.retell:
                log.info("%s: frames of %dx%d are like the model's training images again (%s)", source, width,
                         height, training_range(self.sizes))
            return None
        line = (f"{source}: frames of {width}x{height} px ({why} unlike the model's training images: "
                f"{training_range(self.sizes)}{'' if first or not self.retell else '; its frame size changed'}) "
                f"are resized to its {self.input_size[1]}x{self.input_size[0]} input, squashed or shrunk "
                f"as it never saw in training: their scores are not comparable with the calibration's; "
                f"{WHAT_TO_DO}")
        log.warning("%s", line)
        return line


def frame_shapes(card: dict, where: str, retell: bool) -> FrameShapes | None:
    """The :class:`FrameShapes` of the model card ``card`` (``where``: its file, for a schema error), or None
    when the card records no training image sizes (made before they were), no training at all (a backend that
    knows only its input) or is empty (no card). ExportError for a bad card that records training."""
    if not card or "training" not in card:  # the torch backend runs a checkpoint (no card); a card of input only
        return None
    parsed = parse_model_card(card, where)
    data = parsed.training.data if parsed.training is not None else None
    if data is None or data.image_sizes is None:
        return None
    return FrameShapes(data.image_sizes, (parsed.input.height, parsed.input.width), retell)


def run_frame_shapes(trained: dict | None, input_size: tuple[int, int], where: str,
                     retell: bool) -> FrameShapes | None:
    """The :class:`FrameShapes` of a training run's data summary (a checkpoint's ``data``: what export puts in
    the card's ``training.data``) for a model of ``input_size`` (height, width): ``evaluate`` and the torch
    backend score a run, which has no card. None when it records no image sizes (a run from before they were).
    ExportError naming ``where`` for a bad one."""
    if not trained or trained.get("image_sizes") is None:
        return None
    data = parse_card(CardTrainingData, trained, f"{where}: data", "checkpoint")
    return FrameShapes(data.image_sizes, input_size, retell)


def backend_frame_shapes(backend: Any, where: str, retell: bool) -> FrameShapes | None:
    """The :class:`FrameShapes` of the model ``backend`` runs (:mod:`inspector.backends`): its card (an engine
    card's embedded model card) or, for the torch backend, its checkpoint's data summary (``trained``). None when
    neither records the training images' sizes: nothing is checked."""
    from inspector.artifacts import model_card_of

    card = model_card_of(getattr(backend, "sidecar", None) or {})
    if card:
        return frame_shapes(card, where, retell)
    spec = backend.input_spec
    return run_frame_shapes(getattr(backend, "trained", None), (spec.height, spec.width), where, retell)


def folder_watch(shapes: FrameShapes | None, told: list[str]) -> Callable[[Any, int, int], None] | None:
    """The ``on_size`` callback of :func:`inspector.data.datasets.load_batch` that shows each image (a sample
    with a ``path``, its height and width in pixels) to ``shapes`` as one of its folder's (told once a folder:
    ``retell`` False), appending each line told to ``told`` (for a command's report); None when ``shapes`` is
    None (nothing is checked)."""
    if shapes is None:
        return None

    def seen(sample: Any, height: int, width: int) -> None:
        line = shapes.see(str(sample.path.parent), height, width)
        if line:
            told.append(line)

    return seen
