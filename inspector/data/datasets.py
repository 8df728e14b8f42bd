"""Dataset readers: MVTec AD, BTAD and plain folders of good images.

:func:`load_dataset` detects the layout from the folder tree:

* **mvtec** — ``train/good/*``, ``test/good/*``, ``test/<defect type>/*``,
  masks ``ground_truth/<defect type>/<stem>_mask.png`` (KolektorSDD as shipped
  in shared/data uses it too, with the type ``defect``), or beside the image as
  ``test/<defect type>/<stem>_mask.png`` (such a file beside a good image is its mask
  too, never an image). ``<stem>_gt``, ``<stem>_label``, ``<stem>-mask`` (``-gt``, ``-label``) and ``mask_<stem>``
  (``mask-<stem>``) are masks too (:data:`MASK_SUFFIXES`, :data:`MASK_PREFIXES`). Beside its
  image such a file is a mask only when its content is mask-like (a photo named ``bottle_label.png`` stays an
  image, with one warning: :func:`split_beside_masks`).
* **btad** — ``train/ok/*``, ``test/ok/*``, ``test/ko/*``, masks
  ``ground_truth/ko/<stem>.png`` (BTAD's own naming; ``<stem>_mask.*`` and the
  other image extensions are accepted as well). ``ok`` is reported as ``good``.
* **folder** — images directly in the folder: all are training images, no test split.

A tree with ``test/`` and no ``train/`` (a test set handed over for evaluation) is read in the layout
its good folder names, with no training images: evaluate and calibrate read it, training refuses it.

The fixed folder names (``train``, ``test``, ``good``, ``ok``, ``ground_truth`` and the
defect type under it) match in any letter case: ``test/Good`` is the good class, and so is
``test/ok`` in an MVTec tree (``test/good`` in a BTAD one).
Hidden folders and ``__MACOSX`` under ``test`` are not defect types.
Listings are sorted by file name so results never depend on filesystem order.
Defect images without a mask get ``mask_path=None`` (pixel metrics skip them).
A ``test/likely_<type>`` folder holds images whose label the annotators were unsure of (ELPV's ``likely_defect``:
defect probability 2/3, ``../shared/data/elpv/README.md``): :func:`is_ambiguous` says so, and headline metrics,
F1 thresholds and the meta-comparer's defects leave them out (each is still reported beside them).
No file is left out silently: files of a read folder not named as images, sub-folders of images, and folders of
images no class reads (``train/bad``, a ``ground_truth/<type>`` with no test folder) are each told in one warning
line with a count and an example; ``--data`` one level too high or too low says what to pass instead.
Corrupt images are skipped when loaded (:func:`load_batch`), told in one warning line
(their count, the first reason, a few more names), and returned to the caller so they can be
counted and reported.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from inspector.data.images import (ARTEFACT_FOLDERS, DEFAULT_DOWNSCALE, IMAGE_EXTENSIONS, frame_size, image_subfolders,
                                   list_images, looks_like_mask, other_file_names, read_image, read_mask, resize_image,
                                   resize_mask, subfolders_note, unread_image_names, warn_once)
from inspector.errors import DataError

log = logging.getLogger(__name__)

LAYOUTS = ("mvtec", "btad", "folder")
GOOD_NAMES = ("good", "ok")  # test/<name> folders of good parts (any letter case), in either layout
AMBIGUOUS_PREFIX = "likely"  # test/likely_*: a label its annotators were unsure of (ELPV's likely_defect)
_EXPECTED = ("expected MVTec AD (train/good, test/<type>, ground_truth/<type>), "
             "BTAD (train/ok, test/ok|ko, ground_truth/ko) or a folder of images "
             f"({', '.join(IMAGE_EXTENSIONS)})")


@dataclass(frozen=True)
class Sample:
    """One image of a dataset: label 0 = good, 1 = defect; ``mask_path`` None when unknown/good."""

    path: Path
    label: int
    defect_type: str
    mask_path: Path | None = None


@dataclass(frozen=True)
class Dataset:
    root: Path
    layout: str
    train: tuple[Sample, ...]
    test: tuple[Sample, ...]

    def summary(self) -> dict:
        """Counts per split and defect type, plus layout and root (JSON-friendly)."""
        def counts(samples):
            return dict(sorted(Counter(s.defect_type for s in samples).items()))

        return {
            "root": str(self.root),
            "layout": self.layout,
            "n_train": len(self.train),
            "n_test": len(self.test),
            "train": counts(self.train),
            "test": counts(self.test),
            "test_defect_without_mask": sum(1 for s in self.test if s.label == 1 and s.mask_path is None),
        }


# how datasets name a mask after its image <stem>: MVTec AD's <stem>_mask, and <stem>_gt / <stem>_label of other
# public datasets, with a hyphen as well (<stem>-mask), or mask_<stem> / mask-<stem> (any letter case: tools on
# Windows write _MASK). The one list, beside an image and in ground_truth: masks named <stem>-mask or mask_<stem>
# were not read, their images scored without them (one warning per folder said so)
MASK_SUFFIXES = ("_mask", "_gt", "_label", "-mask", "-gt", "-label")
MASK_PREFIXES = ("mask_", "mask-")
MASK_LIKE = f"<stem>{{{'|'.join(MASK_SUFFIXES)}}}.<ext> or {{{'|'.join(MASK_PREFIXES)}}}<stem>.<ext>"
MASK_NAMES = f"<image stem>.<ext>, {MASK_LIKE.replace('<stem>', '<image stem>')}"


def _mask_of(path: Path) -> str | None:
    """The image stem a ``<stem><mask suffix>.<ext>`` or ``<mask prefix><stem>.<ext>`` file
    (:data:`MASK_SUFFIXES`, :data:`MASK_PREFIXES`, any letter case) belongs to, else None."""
    lower = path.stem.lower()
    suffix = next((s for s in MASK_SUFFIXES if lower.endswith(s) and len(lower) > len(s)), None)
    if suffix:
        return path.stem[:-len(suffix)]
    prefix = next((p for p in MASK_PREFIXES if lower.startswith(p) and len(lower) > len(p)), None)
    return path.stem[len(prefix):] if prefix else None


def split_beside_masks(files: Sequence[Path]) -> tuple[list[Path], dict[str, Path]]:
    """``files`` of one folder → (its images, {image stem: mask}): a ``<stem><mask suffix>.<ext>`` file
    (:data:`MASK_SUFFIXES`) beside an image ``<stem>.<ext>`` is that image's mask, never an image of its own, in
    every folder a dataset reads (good parts' too: a tool that writes a mask for every image writes empty ones
    beside the good images, which were trained on and scored as good parts) — when its content is mask-like
    (:func:`inspector.data.images.looks_like_mask`). The name alone is not enough: ``bottle_label.png`` may be a
    photo of the bottle's label, which taken for a mask vanished from the data and marked ``bottle.png``'s
    pixels by a photo. Such a photo, and a mask-named file without an image of its stem (a photo named
    ``bolt_gt.png``, or a mask whose image is missing), stay images, each kind told in one warning per folder."""
    stems = {p.stem for p in files}
    named = [p for p in files if _mask_of(p) in stems]
    photos = {p for p in named if not looks_like_mask(p)}
    taken = [p for p in named if p not in photos]
    beside = {_mask_of(p): p for p in reversed(taken)}  # two masks of one image (a _gt and a _mask): the first
    lone = sorted(p.name for p in files if _mask_of(p) is not None and _mask_of(p) not in stems)
    if lone:
        _warn_once(f"{files[0].parent}: {len(lone)} file(s) named like a mask ({MASK_LIKE}) have no image of "
                   f"their stem beside them and are read as images, e.g. {', '.join(lone[:3])}")
    if photos:
        names = sorted(p.name for p in photos)
        _warn_once(f"{files[0].parent}: {len(names)} file(s) named like the mask of the image beside them hold a "
                   f"picture, not a mask (colour, or grey levels across the range), so they are read as images and "
                   f"that image has no mask from them, e.g. {', '.join(names[:3])}")
    taken_set = set(taken)
    return [p for p in files if p not in taken_set], beside


def is_ambiguous(defect_type: str) -> bool:
    """Whether a ``test/<defect type>`` folder holds ambiguously labelled images (``likely_*``, any letter case).

    Source of the rule: ELPV's ``likely_defect`` cells have an annotated defect probability of 2/3, not 1
    (``../shared/data/elpv/README.md``); the benchmarks leave them out of every headline AUROC
    (``benchmarks/bench_quality.py``), so ``evaluate`` must too, or its number is not theirs.
    """
    return str(defect_type).lower().startswith(AMBIGUOUS_PREFIX)


def dataset_images(folder: Path) -> list[Path]:
    """The images of a dataset folder of good parts (:func:`listed_images`, masks beside them left out:
    :func:`split_beside_masks`)."""
    return split_beside_masks(listed_images(folder))[0]


def check_listable(folder: Path) -> None:
    """DataError (one line naming ``folder``) when it exists but cannot be listed; nothing when it can, or is gone
    (the callers' own checks say so)."""
    try:
        with os.scandir(folder):
            pass
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise DataError(f"{folder}: cannot read folder ({exc.strerror or exc})") from None


def _mask_index(folder: Path) -> dict[str, Path]:
    """stem → mask path for a ground-truth folder; ``<stem><mask suffix>.*`` (:data:`MASK_SUFFIXES`) and
    ``<stem>.*`` both map to stem. Masks in its sub-folders are not read: told once (:func:`subfolders_note`), as
    they left every image of the type without its mask and the pixel metrics skipping them, said at INFO only."""
    index: dict[str, Path] = {}
    nested = subfolders_note(folder)
    if nested:
        _warn_once(f"{folder}: {nested}")
    for p in list_images(folder):
        stem = _mask_of(p) or p.stem
        # prefer a PNG spelling when several exist
        if stem not in index or p.suffix.lower() == ".png":
            index[stem] = p
    return index


def subfolder(parent: Path, name: str) -> Path | None:
    """``parent/name`` matched in any letter case (the exact spelling first), None when absent.

    Datasets assembled on Windows or macOS (case-insensitive file systems) often spell
    the fixed folder names ``Good``, ``Train`` or ``Ground_Truth``; read on Linux, an
    exact match would silently turn ``test/Good`` into a defect type.
    """
    exact = parent / name
    if exact.is_dir():
        return exact
    try:
        matches = sorted(d for d in parent.iterdir() if d.name.lower() == name.lower() and d.is_dir())
    except OSError:  # parent missing or unreadable: nothing there
        return None
    return matches[0] if matches else None


def _is_artefact(folder: Path) -> bool:
    """A folder no defect type lives in: hidden (``.ipynb_checkpoints``, ``.thumbnails``) or a zip artefact.

    Like hidden files (never images), these are tools' leftovers; read as ``test/<type>`` they
    would add a defect type, with whatever images they cache counted as defective.
    """
    return folder.name.startswith(".") or folder.name in ARTEFACT_FOLDERS


def _test_samples(root: Path, good_names: tuple[str, ...]) -> list[Sample]:
    test_dir = subfolder(root, "test")
    if test_dir is None:
        return []
    truth = subfolder(root, "ground_truth")
    samples: list[Sample] = []
    for sub in sorted((d for d in test_dir.iterdir() if d.is_dir() and not _is_artefact(d)), key=lambda d: d.name):
        if sub.name.lower() in good_names:
            samples += _good_samples(sub, subfolder(truth, sub.name) if truth is not None else None)
            continue
        samples += _defect_samples(sub, subfolder(truth, sub.name) if truth is not None else None)
    if truth is not None:
        _tell_types_without_truth(truth, [s for s in samples if s.label == 1])
    return samples


def _tell_types_without_truth(truth: Path, defects: list[Sample]) -> None:
    """One warning when ``truth`` (a dataset's ground_truth folder) has no folder for some defect types whose
    images have no mask beside them either: their images are scored without masks (pixel metrics skip them), which
    was said at INFO only, while a ground_truth folder promised masks (``ground_truth/cracks`` for ``test/crack``).
    The line names the folders it holds, those naming no defect type as not read: a misnamed ``cracks`` was told
    here and again by :func:`_warn_unread_folders`, one finding in two lines by two rules."""
    unmasked = _types_without_truth(truth, defects)
    if not unmasked:
        return
    types = sorted({s.defect_type for s in unmasked})
    try:
        held = sorted(d.name for d in truth.iterdir() if d.is_dir() and not _is_artefact(d))
    except OSError:
        held = []
    known = {s.defect_type.lower() for s in defects}
    lone = [n for n in held if n.lower() not in known and n.lower() not in GOOD_NAMES]
    _warn_once(f"{truth}: no folder for defect type(s) {', '.join(types)}: their {len(unmasked)} image(s) have no "
               f"mask (pixel metrics skip them), e.g. {unmasked[0].path}; the folder holds "
               f"{', '.join(held) if held else 'no folders'}"
               + (f" ({', '.join(lone)}: naming no test/<defect type>, not read)" if lone else ""))


def _types_without_truth(truth: Path, defects: Sequence[Sample]) -> list[Sample]:
    """The defect images with no mask whose type has no folder in ``truth`` (a dataset's ground_truth folder)."""
    return [s for s in defects if s.label == 1 and s.mask_path is None and subfolder(truth, s.defect_type) is None]


def _good_samples(folder: Path, gt: Path | None) -> list[Sample]:
    """The good images of ``test/good``; a mask marking a region on one (beside it, or in ``gt``:
    ``ground_truth/good``) contradicts its label, and is told in one warning: the image is scored as a good part
    with no defect pixel, so a defective part filed under good lowered every metric without a word."""
    images, beside = split_beside_masks(listed_images(folder))
    masks = {**beside, **(_mask_index(gt) if gt is not None else {})}
    marked = sorted(path for p in images if (path := masks.get(p.stem)) is not None and _marks_a_region(path))
    if marked:
        _warn_once(f"{folder}: {len(marked)} good image(s) have a mask marking a defect region (e.g. {marked[0]}"
                   f"{also_named(marked)}): they are scored as good parts, their masks not used; a defective "
                   f"part belongs in test/<defect type>")
    return [Sample(p, 0, "good", None) for p in images]


def _marks_a_region(mask: Path) -> bool:
    """Whether the mask file marks any pixel (an unreadable one: no, its image stays a good part)."""
    try:
        return bool(read_mask(mask).any())
    except DataError:
        return False


def _warn_once(message: str) -> None:
    """Log ``message`` the first time only: a command reads its dataset's listing more than once."""
    warn_once(message, "%s", message, logger=log)


def listed_images(folder: Path) -> list[Path]:
    """:func:`list_images` of a folder a command reads, warning once (one line: a count and an example) about
    files of image formats that are not read and about sub-folders holding images (:func:`subfolders_note`), so
    none is left out silently. DataError naming the folder when it is there but cannot be listed (no permission): it
    was "no images found" / "no training images", or a defect type of the test set silently left out of the
    metrics."""
    check_listable(folder)
    unread = unread_image_names(folder)
    if unread:
        _warn_once(f"{folder}: {len(unread)} file(s) of an image format that is not read are left out, e.g. "
                   f"{unread[0]} (read: {', '.join(IMAGE_EXTENSIONS)})")
    other = other_file_names(folder)
    if other:
        _warn_once(f"{folder}: {len(other)} file(s) not named as images are left out, e.g. {other[0]} "
                   f"(read: {', '.join(IMAGE_EXTENSIONS)})")
    nested = subfolders_note(folder)
    if nested:
        _warn_once(f"{folder}: {nested}")
    return list_images(folder)


def _defect_samples(folder: Path, gt: Path | None) -> list[Sample]:
    """The defect images of ``test/<type>`` with their masks from ``gt`` (its ground-truth folder, if any).

    A ``<stem><mask suffix>.<ext>`` file beside its image ``<stem>.<ext>`` is that image's mask
    (used when ``gt`` has none), never a defect image of its own. Masks are matched by
    name only, so masks named by another convention (``000_ann.png``) would
    otherwise leave every image without one and the pixel metrics empty with no hint
    why: they are named in one warning.
    """
    files = listed_images(folder)
    stems = {p.stem for p in files}
    images, beside = split_beside_masks(files)
    if not images:
        _warn_once(f"{folder}: defect folder holds no images (ignored)")
        return []
    masks = {**beside, **(_mask_index(gt) if gt is not None else {})}
    samples = [Sample(p, 1, folder.name, masks.get(p.stem)) for p in images]
    orphans = sorted(path.name for stem, path in masks.items() if stem not in stems)
    unmatched = sum(1 for s in samples if s.mask_path is None)
    if gt is not None and unmatched and not orphans and not subfolders_note(gt):  # masks nested: told already
        first = next(s.path for s in samples if s.mask_path is None)
        _warn_once(f"{gt}: no mask for {unmatched} of the {len(samples)} image(s) of {folder} (pixel metrics skip "
                   f"them), e.g. {first.name}: a mask is named {MASK_NAMES}")
    if orphans and unmatched:
        _warn_once(f"{gt}: {len(orphans)} mask file(s) match no image of {folder}, and {unmatched} image(s) there "
                   f"have no mask: a mask is named {MASK_NAMES} (e.g. {images[0].stem}_mask.png for "
                   f"{images[0].name}); found e.g. {orphans[0]}")
    return samples


def detect_layout(root: Path) -> str | None:
    train = subfolder(root, "train")
    if train is not None and subfolder(train, "good") is not None:
        return "mvtec"
    if train is not None and subfolder(train, "ok") is not None:
        return "btad"
    if list_images(root):
        return "folder"
    return _test_only_layout(root)


def _test_only_layout(root: Path) -> str | None:
    """The layout of a tree with a test split and no training images (``test/good`` + ``test/<type>``, as
    handed over for evaluation, which needs only the test set), else None: BTAD's when its good folder is
    ``ok``, else MVTec's."""
    test = subfolder(root, "test")
    try:
        if test is None or not any(d.is_dir() and not _is_artefact(d) for d in test.iterdir()):
            return None
    except OSError:  # unreadable: nothing there
        return None
    return "btad" if subfolder(test, "ok") is not None and subfolder(test, "good") is None else "mvtec"


def _nested_hint(root: Path) -> str:
    """What to do when ``root`` holds no dataset (a phrase), or '': pass its parent when ``root`` is one of a
    dataset's fixed folders (``--data part/train``: one level too low); name the good folder when ``train/`` has
    none (:func:`no_good_folder`); pass the sub-folders holding a dataset (an archive
    unpacked into a folder of its own, a folder of categories: one level too high), else the sub-folders holding
    images (a folder of ``day1/``, ``day2/``). ``part/train`` and ``part/test`` said "no images found" and what a
    dataset looks like, leaving the user to find that the folder above was meant."""
    if above := enclosing_hint(root):
        return above.removeprefix("; ")
    if no_good := no_good_folder(root):
        return no_good
    try:
        subs = sorted(d for d in root.iterdir() if d.is_dir() and not _is_artefact(d))
    except OSError:
        return ""
    found = [d for d in subs if detect_layout(d) in ("mvtec", "btad")]
    if found:
        more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
        names = ", ".join(d.name for d in found[:3])
        return f"its sub-folder(s) {names}{more} hold such a dataset: pass one of them"
    nested = subfolders_note(root)
    return f"{nested}: pass one of them" if nested else ""


def no_good_folder(root: Path) -> str:
    """What to do (a phrase) when ``root/train`` holds images in sub-folders none of which is named good or ok
    (``train/normal``, ``train/OK_parts``: other datasets' names), else ''. Such a tree said "no images found"
    and to pass its sub-folder train, or, with a test/ beside it, that a test set alone cannot be trained on."""
    train_dir = subfolder(root, "train")
    if train_dir is None or any(subfolder(train_dir, name) is not None for name in GOOD_NAMES):
        return ""
    names = image_subfolders(train_dir)
    if not names:
        return ""
    return (f"{train_dir} has no good (or ok) folder, and its sub-folder(s) {', '.join(names[:3])} hold images: "
            f"name the folder of good parts {Path(train_dir.name) / 'good'}")




def enclosing_hint(root: Path) -> str:
    """``; it is the train folder of the dataset data/brick: pass data/brick`` when ``root`` is a folder inside an
    MVTec/BTAD dataset (its ``train``, ``test``, ``test/hole``, ``ground_truth`` …, at most two levels down), else
    ''. A newcomer's ``--data data/brick/train`` or ``data/brick/test`` was told "no images found" and nothing else,
    although the folder holds the dataset's images one level further down."""
    for ancestor in list(root.parents)[:2]:
        if ancestor != root and detect_layout(ancestor) in ("mvtec", "btad"):
            inside = root.relative_to(ancestor).as_posix()
            return f"; it is the {inside} folder of the dataset {ancestor}: pass {ancestor}"
    return ""


def not_good_images_problem(root: str | Path, advice: str = "pass {dataset} (its train/ good images are trained on)"
                            ) -> str | None:
    """Why the folder ``root``, given as good images (to train on, to calibrate a threshold or INT8 ranges on),
    holds none: it is a defect folder (``test/<type>`` other than good/ok) or a ground-truth folder of an MVTec/BTAD
    dataset at most two levels up; None otherwise. ``advice`` ends the line: what to give instead, ``{dataset}``
    replaced by the dataset's folder. ``train --data data/brick/test/hole`` trained on the defects as the normal
    look of the part, ``calibrate --good-dir data/brick/test/hole`` set the threshold above every defect of the
    folder, each with no word; ``--data data/brick/ground_truth/hole`` read the masks with a warning only."""
    root = Path(root).expanduser()
    for ancestor in list(root.parents)[:2]:
        if detect_layout(ancestor) not in ("mvtec", "btad"):
            continue
        top, *rest = root.relative_to(ancestor).parts
        what = None
        if top.lower() == "ground_truth":
            what = "the ground-truth masks"
        elif top.lower() == "test" and rest and rest[0].lower() not in GOOD_NAMES:
            what = f"the defective images ({rest[0]})"
        if what:
            return f"{root}: {what} of the dataset {ancestor}, no good images; {advice.format(dataset=ancestor)}"
    return None


def load_dataset(root: str | Path) -> Dataset:
    """Read a dataset folder, detecting its layout (see the module docstring)."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root}: dataset folder not found ({_EXPECTED})")
    if not root.is_dir():
        raise DataError(f"{root}: is not a folder ({_EXPECTED})")
    check_listable(root)  # else "no images found"
    layout = detect_layout(root)
    if layout is None:
        # the hint alone when there is one: after the layouts read it went past the message's length cap
        raise DataError(f"{root}: no images found; {_nested_hint(root) or _EXPECTED}")
    if layout == "folder":
        train = [Sample(p, 0, "good", None) for p in dataset_images(root)]
        test: list[Sample] = []
    else:
        train_dir = subfolder(root, "train")
        good_dir = subfolder(train_dir, "good" if layout == "mvtec" else "ok") if train_dir is not None else None
        # no train folder: a test-only tree (_test_only_layout), which evaluation reads and training refuses
        if good_dir is not None:
            _refuse_images_in_sub_folders_only(good_dir)
        train = [Sample(p, 0, "good", None) for p in dataset_images(good_dir)] if good_dir is not None else []
        if good_dir is not None and not train:
            raise DataError(f"{good_dir}: no training images ({', '.join(IMAGE_EXTENSIONS)})")
        # MVTec's and BTAD's names for the good class are both unambiguous, whichever layout the train
        # folder follows: a hybrid test/ok beside train/good is good parts, never a defect type
        test = _test_samples(root, GOOD_NAMES)
        _warn_stray_images(root)
        _warn_unread_folders(root, good_dir, test)
        if not train and not test:
            raise DataError(f"{root}: no images found; {_EXPECTED}{enclosing_hint(root)}")
    _tell_unmasked(root, test)
    return Dataset(root, layout, tuple(train), tuple(test))


# names people give the masks' folder (compared lower-case, letters and digits only): ground_truth is read
MISNAMED_TRUTH = frozenset({"groundtruth", "groundtruths", "gt", "gts", "truth", "mask", "masks", "label", "labels",
                            "annotation", "annotations"})


def _tell_unmasked(root: Path, test: Sequence[Sample]) -> None:
    """Tell the defect images with no mask once, in one line: each finding by one rule only.

    With a ``ground_truth`` folder, every unmasked image was told already by the warning of its cause (no folder
    for its type, no mask matching its name, masks nested in a sub-folder), and is not told again. Without one,
    a folder beside ``test`` that looks like it (:data:`MISNAMED_TRUTH`, or holding a folder named like a defect
    type) is named in a warning; else an INFO line says the count. Once per process (:func:`warn_once`): a
    command reads its dataset more than once. ``ground_truth/cracks`` for ``test/crack`` was a warning and an INFO
    line about the same images; a misnamed ``groundtruth`` folder only the INFO line, which did not name it."""
    missing = [s for s in test if s.label == 1 and s.mask_path is None]
    if not missing or subfolder(root, "ground_truth") is not None:
        return
    line = f"{len(missing)} defect image(s) without a ground-truth mask (pixel metrics skip them)"
    if (misnamed := _misnamed_truth(root, {s.defect_type.lower() for s in missing})) is not None:
        warn_once(f"{root}: {line}", "%s: not read (masks are read from ground_truth/<defect type>): rename it "
                  "ground_truth; %s", misnamed, line, logger=log)
    else:
        warn_once(f"{root}: {line}", "%s: %s", root, line, logger=log, level=logging.INFO)


def _misnamed_truth(root: Path, types: set[str]) -> Path | None:
    """The folder of ``root`` that looks like its ground-truth folder under another name (``groundtruth``,
    ``ground-truth``, ``GT``, ``masks``, or any holding a folder named like one of the defect ``types``), or
    None."""
    try:
        folders = sorted(d for d in root.iterdir() if d.is_dir() and not _is_artefact(d))
    except OSError:
        return None
    for folder in folders:
        if folder.name.lower() in ("train", "test"):
            continue
        held = image_subfolders(folder)
        if any(n.lower() in types for n in held):
            return folder
        if "".join(c for c in folder.name.lower() if c.isalnum()) in MISNAMED_TRUTH and (held or list_images(folder)):
            return folder
    return None


def _refuse_images_in_sub_folders_only(good_dir: Path) -> None:
    """DataError, one line saying what to do, when ``good_dir`` holds no image file of its own but sub-folders
    that do (``train/good/day1/``): it was a warning that they are not read and then "no training images"."""
    if list_images(good_dir) or unread_image_names(good_dir) or other_file_names(good_dir):
        return
    nested = subfolders_note(good_dir)
    if nested:
        raise DataError(f"{good_dir}: no training images directly in it; {nested}: move their images into it")


def _warn_stray_images(root: Path) -> None:
    """Images directly in an MVTec/BTAD tree's root, ``train/``, ``test/`` or ``ground_truth/``, outside every class
    folder, are read by nothing: told once per folder (a count and an example). Test images put in ``test/`` rather
    than ``test/<type>/`` were left out of the metrics without a word."""
    for folder in (root, subfolder(root, "train"), subfolder(root, "test"), subfolder(root, "ground_truth")):
        stray = list_images(folder) if folder is not None else []
        if stray:
            _warn_once(f"{folder}: {len(stray)} image(s) directly in it are not read (images belong in its class "
                       f"folders: good, a defect type), e.g. {stray[0].name}")


def _warn_unread_folders(root: Path, good_dir: Path | None, test: Sequence[Sample]) -> None:
    """Sub-folders holding images that no class reads are told once each (a count and examples): those of ``train/``
    beside its good folder (``train/bad``, ``train/good2``: training reads the good folder only) and those of
    ``ground_truth/`` that name no ``test/<type>`` (their masks belong to no image). Both were left out without a
    word: defective parts put under train/ were neither trained on nor scored."""
    train_dir = subfolder(root, "train")
    if train_dir is not None and good_dir is not None:  # none: training says so (no_good_folder); evaluation needs none
        others = [n for n in image_subfolders(train_dir) if n != good_dir.name]
        if others:
            _warn_once(f"{train_dir}: {len(others)} sub-folder(s) holding images are not read (training reads "
                       f"train/{good_dir.name} only; defective parts belong in test/<defect type>), e.g. "
                       f"{', '.join(others[:3])}")
    truth = subfolder(root, "ground_truth")
    types = {s.defect_type.lower() for s in test}
    test_dir = subfolder(root, "test")
    if truth is not None and test_dir is not None:
        types |= {d.name.lower() for d in test_dir.iterdir() if d.is_dir()}
    lone = [n for n in (image_subfolders(truth) if truth is not None else []) if n.lower() not in types]
    if lone and not _types_without_truth(truth, test):  # else named in that line (_tell_types_without_truth)
        _warn_once(f"{truth}: {len(lone)} mask folder(s) name no test/<defect type> and are not read, e.g. "
                   f"{', '.join(lone[:3])}")


MIN_TRAIN_IMAGES = 2  # the fewest a training run fits on (its split keeps them whatever the fractions ask)
MIN_CALIBRATION_IMAGES = 10  # fewer cannot place a threshold usefully (finest false-alarm rate ~1/n)
# Fewer validation images than this: a run's early stop and the quantiles its maps are normalised by (EfficientAD's
# 0.9/0.995 of the good validation maps) rest on too few parts to be dependable, the calibration part's rule
MIN_DEPENDABLE_VALIDATION = MIN_CALIBRATION_IMAGES


@dataclass(frozen=True)
class GoodSplit:
    """The good training images in three disjoint parts, each sorted by path.

    ``train``: fitted on. ``val``: early stopping, the best epoch and the map normalisation.
    ``calibration`` (``data.calibration_fraction``, off by default): none of those; kept for
    ``inspector calibrate``, whose threshold must come from good parts scored as the line will score them
    (images that chose the epoch and fitted the normalisation score lower: ``benchmarks/README.md``,
    Sessions 35 and 36).
    """

    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    calibration: tuple[Sample, ...] = ()


def split_good(samples: Sequence[Sample], val_fraction: float = 0.2, calibration_fraction: float = 0.0,
               seed: int = 0, min_train: int = 1) -> GoodSplit:
    """Seeded train/validation/calibration split, independent of the input order.

    Samples are sorted by path and permuted by ``seed``: the first ``round(n·val_fraction)`` of the
    permutation validate, the next ``round(n·calibration_fraction)`` calibrate (a run trained before
    ``calibration_fraction`` existed, 0, keeps its split). At least one validation sample when there are
    two or more samples and ``val_fraction`` > 0, and at least ``min_train`` training samples whenever one
    validation sample leaves them (a large ``val_fraction`` is capped). A calibration part that would hold
    fewer than :data:`MIN_CALIBRATION_IMAGES` images is not made, and one that would leave fewer than
    ``min_train`` to train on is cut to leave them: those images train. Raises ValueError for a fraction
    outside [0, 1).
    """
    for name, fraction in (("val_fraction", val_fraction), ("calibration_fraction", calibration_fraction)):
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {fraction}")
    ordered = sorted(samples, key=lambda s: str(s.path))
    n = len(ordered)
    n_val = round(n * val_fraction)
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - max(1, min(min_train, n - 1)))
    elif n < 2:
        n_val = 0
    n_cal = min(round(n * calibration_fraction), n - n_val - min_train)
    n_cal = n_cal if n_cal >= MIN_CALIBRATION_IMAGES else 0  # too few to place a threshold: they train
    perm = np.random.default_rng(seed).permutation(n)
    part = np.zeros(n, dtype=np.int8)  # 0 train, 1 validation, 2 calibration
    part[perm[:n_val]] = 1
    part[perm[n_val:n_val + n_cal]] = 2
    return GoodSplit(*(tuple(s for s, p in zip(ordered, part) if p == k) for k in range(3)))


def keep_copies_together(split: GoodSplit, digests: dict[Path, str]) -> GoodSplit:
    """``split`` with every copy (same ``digests`` value: a file's sha256) in the first part holding its content
    (train, then validation, then calibration), told in one warning (a count and an example). A copy of a
    training image validated on, or kept for calibrate, scored as a new good part although the student had fitted
    it: a lower validation loss, a normalisation and a threshold fitted on seen images. DataError naming the folder
    when no validation image would be left (every one a copy of a training image)."""
    parts = [list(split.train), list(split.val), list(split.calibration)]
    first: dict[str, int] = {}
    for k, part in enumerate(parts):
        for sample in part:
            first.setdefault(digests[sample.path], k)
    moved = [(s, k) for k in (1, 2) for s in parts[k] if first[digests[s.path]] < k]
    if not moved:
        return split
    if parts[1] and all(first[digests[s.path]] < 1 for s in parts[1]):  # none asked for (val_fraction 0): none lost
        raise DataError(f"{common_folder(parts[1])}: every validation image is a byte-identical copy of a training "
                        f"image (e.g. {parts[1][0].path.name}): remove the copies or add other good images")
    for sample, k in moved:
        parts[k].remove(sample)
        parts[first[digests[sample.path]]].append(sample)
    twin = next(o for o in parts[first[digests[moved[0][0].path]]] if digests[o.path] == digests[moved[0][0].path]
                and o is not moved[0][0])
    log.warning("%d good image(s) are byte-identical copies of others (e.g. %s = %s): each is put with its "
                "original, not validated on or kept for calibrate apart from it", len(moved), moved[0][0].path,
                twin.path.name)
    return GoodSplit(*(tuple(sorted(part, key=lambda s: str(s.path))) for part in parts))


def calibration_fraction_for(n: int, n_val: int, min_train: int) -> float | None:
    """The smallest ``data.calibration_fraction`` (rounded up to 0.01) whose part of ``n`` good images holds
    :data:`MIN_CALIBRATION_IMAGES`, or None when ``n`` less ``n_val`` validation and ``min_train`` training
    images leaves too few for any (see :func:`split_good`)."""
    if n - n_val - min_train < MIN_CALIBRATION_IMAGES:
        return None
    return min(0.99, math.ceil(100 * MIN_CALIBRATION_IMAGES / n) / 100)


def calibration_shortfall(n: int, split: GoodSplit, fraction: float, min_train: int) -> str | None:
    """Why a calibration part asked for (``fraction`` > 0) of ``n`` good images was not made, with what to do
    instead, in one line; None when it was made or not asked for. Training once dropped it silently and
    ``inspector calibrate`` then advised setting the fraction the run had set."""
    if fraction <= 0 or split.calibration:
        return None
    asked, room = round(n * fraction), n - len(split.val) - min_train
    left = f" ({room} left after {len(split.val)} to validate and {min_train} to train on)" if room < asked else ""
    need = calibration_fraction_for(n, len(split.val), min_train)
    advice = (f"use data.calibration_fraction={need:g} or more" if need is not None
              else "add good images or lower data.val_fraction")
    return (f"data.calibration_fraction={fraction:g} of {n} good images gives {asked} calibration image(s){left}, "
            f"under the {MIN_CALIBRATION_IMAGES} a calibration part needs: {advice}, or set "
            f"data.calibration_fraction=0 and calibrate with --good-dir")


def split_train_val(samples: Sequence[Sample], val_fraction: float = 0.2,
                    seed: int = 0, min_train: int = 1) -> tuple[tuple[Sample, ...], tuple[Sample, ...]]:
    """:func:`split_good` without a calibration part: (train, validation)."""
    split = split_good(samples, val_fraction, 0.0, seed, min_train)
    return split.train, split.val


def _workers(n: int) -> int:
    return max(1, min(8, os.cpu_count() or 1, n))


def common_folder(samples: Sequence) -> str:
    """The deepest folder holding every sample (``test`` for several defect folders): where an error points."""
    return os.path.commonpath([str(Path(s.path).parent) for s in samples]) if samples else "."


def none_readable(samples: Sequence, what: str = "image(s)") -> DataError:
    """The one-line error for a set of ``samples`` none of which could be read (each told in the warning
    :func:`load_batch` logs), naming the folder that holds them."""
    return DataError(f"{common_folder(samples)}: none of the {len(samples)} {what} could be read (see the warnings "
                     f"above)")


def load_batch(samples: Sequence[Sample], height: int, width: int, policy: str = "square",
               bit_depth: int | None = None, downscale: str = DEFAULT_DOWNSCALE,
               on_size: Callable[[Sample, int, int], None] | None = None
               ) -> tuple[np.ndarray, list[Sample], list[tuple[Sample, str]]]:
    """Decode (:func:`inspector.data.images.read_image`) and resize ``samples`` into one uint8
    (N, height, width, 3) array.

    ``bit_depth``: the dataset's setting for files that do not declare their depth
    (see :mod:`inspector.data.images`). Unreadable or rejected images (corrupt,
    smaller than 8x8 …) are skipped (told in one warning line) and returned as
    ``(sample, reason)`` pairs; ``kept`` lists the samples in array order.
    ``downscale``: the model's method (:func:`inspector.data.images.downscale_of`). ``on_size``: called with
    each readable sample and its own height and width in pixels, before resizing (from the decoding threads).
    """
    samples = list(samples)
    images = np.empty((len(samples), height, width, 3), dtype=np.uint8)

    def load(i: int) -> DataError | None:
        try:
            image = read_image(samples[i].path, bit_depth, warn_key=str(samples[i].path.parent))
            if on_size is not None:
                on_size(samples[i], image.shape[0], image.shape[1])
            resize_image(image, height, width, policy, out=images[i], downscale=downscale)
        except DataError as exc:
            return exc
        return None

    with ThreadPoolExecutor(_workers(len(samples))) as pool:  # cv2 decode/resize release the GIL
        errors = list(pool.map(load, range(len(samples))))
    kept_idx = [i for i, e in enumerate(errors) if e is None]
    if len(kept_idx) < len(samples):
        _tell_skipped([(samples[i], e) for i, e in enumerate(errors) if e is not None], len(samples))
        images = images[kept_idx]
    return images, [samples[i] for i in kept_idx], [(samples[i], str(e)) for i, e in enumerate(errors) if e is not None]


def _tell_skipped(skipped: list[tuple[Sample, DataError]], total: int) -> None:
    """One warning line per kind of skipped image (a folder of hundreds of broken files buried everything else):
    those refused as overlays ``inspector predict`` wrote (:func:`inspector.data.images.decode_image`, reason
    ``overlay``: they decode, they are no part's picture) apart from those that could not be read. An overlay in
    ``test/good`` was said to be one that "could not be read", which sent the user looking for a damaged file."""
    overlays = [(s, e) for s, e in skipped if getattr(e, "reason", None) == "overlay"]
    unread = [(s, e) for s, e in skipped if getattr(e, "reason", None) != "overlay"]
    if overlays:
        log.warning("refused %d of %d image(s) as overlays written by 'inspector predict' (heat maps over a picture, "
                    "not parts' pictures; move them out of the data set): %s%s", len(overlays), total,
                    overlays[0][0].path, also_named([s.path for s, _ in overlays]))
    if unread:
        log.warning("skipped %d of %d image(s) that could not be read: %s%s", len(unread), total, unread[0][1],
                    also_named([s.path for s, _ in unread]))


def load_masks(samples: Sequence[Sample], height: int, width: int,
               policy: str = "square") -> list[np.ndarray | None]:
    """Ground-truth masks resized like :func:`load_batch`: bool (height, width) per sample.

    Good samples get an all-False mask; a defect sample whose mask is missing, unreadable,
    of another aspect than its image, or empty gets None (unknown: pixel metrics skip it; each kind
    of problem is told in one warning line with its count, :func:`_tell_ignored`). An empty mask on a
    defect image contradicts its label, so its pixels are not counted as normal ones. A mask of the
    image's aspect at another size is scaled onto the image.
    """
    empty: list[Path] = []

    def load(sample: Sample) -> tuple[np.ndarray | None, DataError | None]:
        if sample.label == 0:
            return np.zeros((height, width), dtype=bool), None
        if sample.mask_path is None:
            return None, None
        try:
            mask = _mask_on_frame(sample)
        except DataError as exc:
            return None, exc
        if not mask.any():
            empty.append(sample.mask_path)  # list.append is atomic: safe from the pool's threads
            return None, None
        return resize_mask(mask, height, width, policy), None

    samples = list(samples)
    with ThreadPoolExecutor(_workers(len(samples))) as pool:
        results = list(pool.map(load, samples))
    _tell_ignored([(s.mask_path, exc) for s, (_, exc) in zip(samples, results) if exc is not None])
    if empty:
        log.warning("%d defect image(s) have an empty mask (e.g. %s): pixel metrics skip them, as if unmasked",
                    len(empty), min(empty))
    return [mask for mask, _ in results]


_NO_MASK, _EMPTY_MASK, _UNUSABLE_MASK = ("with no mask file found", "with an empty mask (no pixel marked)",
                                         "with a mask that could not be used (see the warnings above)")


def why_unmasked(samples: Sequence[Sample], masks: Sequence[np.ndarray | None]) -> str | None:
    """Why none of the defect ``samples`` has a usable mask in ``masks`` (:func:`load_masks`), in one clause naming
    how many of each kind and an example: no mask file found, an empty mask (no pixel marked), a mask that could
    not be used (unreadable, another aspect: told by :func:`load_masks`). None when any defect sample has a usable
    mask, or there is none. "No ground-truth masks" was said of a ground_truth folder whose masks were all empty,
    which sent the user looking for a naming fault. Masks not found at all are said without count or example:
    the dataset's reader told those already (:func:`_tell_unmasked`, the warnings of ground_truth's folders),
    and calibrate's closing warning repeated its line."""
    defects = [(s, m) for s, m in zip(samples, masks) if s.label == 1]
    if not defects or any(m is not None for _, m in defects):
        return None
    kinds: dict[str, list[Path]] = {_NO_MASK: [], _EMPTY_MASK: [], _UNUSABLE_MASK: []}
    for sample, _ in defects:
        kinds[_mask_kind(sample.mask_path)].append(sample.mask_path or sample.path)
    told = [f"{len(paths)} {kind}, e.g. {min(paths)}" for kind, paths in kinds.items() if paths]
    n = len(defects)
    if len(told) == 1 and kinds[_NO_MASK]:  # how many and where: told by the dataset's reader (_tell_unmasked)
        return "no defective image has a ground-truth mask"
    if len(told) == 1 and kinds[_EMPTY_MASK]:
        return f"the ground-truth masks of all {n} defective image(s) are empty (no pixel marked, e.g. " \
               f"{min(kinds[_EMPTY_MASK])})"
    return f"none of the {n} defective image(s) has a usable ground-truth mask: {'; '.join(told)}"


def _mask_kind(mask_path: Path | None) -> str:
    """The kind :func:`why_unmasked` tells of a defect image whose mask :func:`load_masks` gave None."""
    if mask_path is None:
        return _NO_MASK
    try:
        empty = not read_mask(mask_path).any()
    except DataError:
        empty = False
    return _EMPTY_MASK if empty else _UNUSABLE_MASK


class MaskOfAnotherAspect(DataError):
    """A mask whose aspect is not its image's: it belongs to another picture (or is transposed)."""


def _tell_ignored(problems: list[tuple[Path, DataError]]) -> None:
    """One warning per kind of ignored mask (of another aspect; unreadable): the count, the first reason in full
    and a few more names. A line per mask was hundreds of lines for a dataset whose masks were all exported
    transposed."""
    for aspect in (True, False):
        group = [(path, exc) for path, exc in problems if isinstance(exc, MaskOfAnotherAspect) == aspect]
        if group:
            log.warning("%d mask(s) ignored (pixel metrics skip their images): %s%s", len(group), group[0][1],
                        also_named([path for path, _ in group]))


def also_named(paths: Sequence[Path], few: int = 3) -> str:
    """``; also e.g. a.png, b.png, c.png`` naming ``paths[1:few + 1]`` after a summary's first example, ``paths[0]``
    ('' when there is no other): a count with a few names, never a line per file. Each is named by its folder too
    (``crack/000_mask.png``) when ``paths`` lie in more than one: masks of several defect types share their names,
    and "also e.g. 000_mask.png, 000_mask.png, 000_mask.png" named none of them."""
    rest = [Path(p) for p in paths[1:few + 1]]
    several = len({Path(p).parent for p in paths}) > 1
    return f"; also e.g. {', '.join(f'{p.parent.name}/{p.name}' if several else p.name for p in rest)}" if rest else ""


def _mask_on_frame(sample: Sample) -> np.ndarray:
    """``sample``'s mask as bool (H, W) on its image's frame (scaled when only the size differs).

    The resize policies crop and place by the frame's geometry, so the mask must share
    it; a mask whose aspect differs from the image's by more than a pixel belongs to
    another picture (or is transposed) and raises :class:`MaskOfAnotherAspect` (a :class:`DataError`). When the image
    cannot be read the mask is used as it is.
    """
    mask = read_mask(sample.mask_path)
    try:
        frame_h, frame_w = frame_size(sample.path)
    except DataError:
        return mask
    mask_h, mask_w = mask.shape
    if (mask_h, mask_w) == (frame_h, frame_w):
        return mask
    # same aspect up to rounding: the mask's height scaled to the frame's width lands within a pixel
    if abs(mask_h * frame_w / mask_w - frame_h) > max(1.0, frame_w / mask_w):
        raise MaskOfAnotherAspect(f"{sample.mask_path}: mask is {mask_w}x{mask_h} but its image {sample.path} is "
                        f"{frame_w}x{frame_h} (another aspect: not this image's mask?)")
    return resize_mask(mask, frame_h, frame_w)  # nearest, whole frame
