"""The split a run recorded, found again by content when the run is resumed.

``inspector train --resume`` continues a run: its validation loss chooses the best epoch and its gap
rule compares that loss with the loss on training images, across every invocation. The split is drawn
from the sorted file list with a seeded permutation, so a folder that gained or lost a single image drew
another split on resume: images the student had trained on became validation images (a lower loss, an
early "best" epoch), and the best loss carried over was measured on other images than the new ones.
The run's summary records each part's sha256 (``train_sha256``, ``val_sha256``, ``calibration_sha256``),
so each image found is put back in the part it was in, whatever its name or place now.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Sequence

from inspector.data.datasets import GoodSplit, Sample, common_folder
from inspector.errors import DataError

log = logging.getLogger(__name__)

_PARTS = ("train", "val", "calibration")


def recorded_split(samples: Sequence[Sample], digests: dict[Path, str], recorded: dict | None,
                   min_train: int) -> GoodSplit | None:
    """``samples`` (the readable good images, ``digests``: path → sha256) in the parts a run recorded.

    ``recorded``: the data summary of the run being resumed (its checkpoint's ``data``); None, or a summary
    written before it held the digests of every part, gives None (the caller draws the split afresh).
    An image whose content the run never had (added or edited since) is left out, and images the run had
    that are gone or unreadable now are counted: each told in one warning. Copies count as many times as
    the run had them. Raises DataError naming the folder when no validation image, or fewer than
    ``min_train`` training images, of the run are left: the run cannot go on as it was.
    """
    if not recorded or not all(isinstance(recorded.get(f"{p}_sha256"), list) for p in ("train", "val")):
        return None
    wanted = {p: Counter(recorded.get(f"{p}_sha256") or []) for p in _PARTS}
    parts: dict[str, list[Sample]] = {p: [] for p in _PARTS}
    unknown = []
    for sample in sorted(samples, key=lambda s: str(s.path)):
        part = next((p for p in _PARTS if wanted[p][digests[sample.path]] > 0), None)
        if part is None:
            unknown.append(sample)
            continue
        wanted[part][digests[sample.path]] -= 1
        parts[part].append(sample)
    folder = common_folder(samples)
    _tell(folder, unknown, wanted)
    _require_left(folder, parts, recorded, min_train)
    return GoodSplit(*(tuple(parts[p]) for p in _PARTS))


def _tell(folder: str, unknown: list[Sample], missing: dict[str, Counter]) -> None:
    """One warning for the images the run never had, one for those of the run no longer found."""
    if unknown:
        log.warning("%d good image(s) in %s were not in the run being resumed (added or changed since, e.g. %s): "
                    "left out, so the run goes on with the images it chose its best epoch by; train a new run "
                    "(another --out) to use them", len(unknown), folder, unknown[0].path.name)
    gone = {p: sum(c.values()) for p, c in missing.items() if sum(c.values())}
    if gone:
        said = ", ".join(f"{n} {'validation' if p == 'val' else p}" for p, n in gone.items())
        log.warning("%s image(s) of the run being resumed are no longer in %s or not readable: it goes on "
                    "without them", said, folder)


def _require_left(folder: str, parts: dict[str, list[Sample]], recorded: dict, min_train: int) -> None:
    """DataError when the run's validation part is empty now, or its training part under ``min_train``."""
    if recorded["val_sha256"] and not parts["val"]:
        raise DataError(f"{folder}: none of the {len(recorded['val_sha256'])} validation image(s) of the run being "
                        f"resumed is there any more: its losses cannot be compared; train a new run instead")
    if len(parts["train"]) < min_train:
        raise DataError(f"{folder}: {len(parts['train'])} of the {len(recorded['train_sha256'])} training images of "
                        f"the run being resumed are there (need {min_train}); train a new run instead")
