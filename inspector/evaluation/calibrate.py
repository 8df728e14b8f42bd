"""Threshold calibration with the backend (and precision) that runs in production.

FP16 and INT8 graphs and TensorRT engines shift scores, so thresholds are chosen
on scores produced by the *deployed* model file, loaded with
:func:`inspector.backends.load_backend`, never by the torch model. The result is
a calibration file (:mod:`inspector.artifacts.thresholds`) bound to that file's sha256.

Rules (predictions are ``score >= threshold``, as everywhere in inspector):

* **false-alarm rate** (default): from good images only. With ``n`` good images
  at most ``k = floor(rate · n)`` of them may score at or above the threshold;
  the threshold is placed halfway between the ``(k+1)``-th highest good score
  and the next higher distinct one. The resolution is ``1/n``: a target finer
  than that cannot be measured, so the threshold is put just above the highest
  good score (0 false alarms on the data) and a warning says so.
* **F1** (``use_defects``): with defective images, the threshold maximising F1,
  halfway between the lowest score it flags and the next lower score (same
  decisions on the data, more margin), with its precision and recall.
* **pixel threshold**: the same two rules on anomaly-map pixels: good-image
  pixels at a pixel false-alarm rate, or the pixel-F1 optimum over good and
  defective images with ground-truth masks.
* **uncertain band** (optional): ``[t·(1−m), t·(1+m))`` around the image threshold.
* **too few good images**: fewer than :data:`MIN_GOOD_IMAGES` (4) are refused unless ``allow_few_good``: with
  ``n`` good images and none flagged, the 95 % upper bound on the false-alarm rate is about ``3/n`` (the rule
  of three: Hanley & Lippman-Hand, JAMA 249:1743, 1983), ≥ 1 for ``n`` ≤ 3, so such a threshold says nothing.
* **a good score far above the rest** (:func:`apart_from_the_rest`): the threshold sits above the highest good
  score, so one defective part among the good images raises it and the line passes defects. The highest
  ``j`` scores (``j`` ≤ n/10) stand apart when the gap below them is more than :data:`OUTLIER_GAP` (3) times the
  spread of the rest above its median (Dixon's gap ratio, Ann. Math. Stat. 21:488, 1950, with the range replaced
  by the rest's upper half so that neither the suspects nor the lower tail set the scale). Healthy sets are
  told apart now and then, more often the fewer and the heavier-tailed their scores: on 2000 simulated sets
  each, an exponential tail 7 % of the time at 10 images, 1 % at 24, none at 100; a log-normal (σ = 1) tail
  16 %, 9 % and 2 % (tests/test_calibration.py checks the exponential figures). With the tests' 2-epoch
  64-px model, whose good scores have a long tail, 4 of 12 sets of 24 new good images were told apart, and its
  worst test defect (score 16.5) added to each was told apart in 11 of them (at a gap of 4: 2 and 7). So they
  are named in a warning with the threshold with and without them, and kept unless ``exclude_outliers`` (then
  left out of the image and the pixel threshold): the rule cannot tell a mislabelled part from a rare good
  one, and only a look at the images can; judged by the gap alone, the warning says so (that healthy sets are told
  apart too, and what a good part left out costs: :func:`_apart_said`). Given a dataset with test/good besides
  the images calibrated on (the calibration or validation split, or ``good_dir`` with ``data``), those other good
  parts are scored too, and only an image scoring above all of them is named (:func:`apart_from_reference`): the README's
  walkthrough named 2 good parts that new good parts outscored, advising a threshold 10 of its 40 test/good
  parts score above. It clears only what a known good part matches: on the tests' model, with 48 new good parts
  (at most 2.23) as test/good, the 12 sets above are told as before, their healthy suspects (4.2-5.9) and the
  worst defect (16.5) scoring above all of them.
* **batch sizes**: ONNX Runtime and TensorRT pick kernels per batch size, so one image's score differs by
  1e-7 to 3e-6 between batch sizes (the tests' models), and a threshold one float32 step above the highest
  good score can flag that image when the daemon scores it at another batch size (it batches 1 … ``batching.max_batch``).
  The good images nearest the cut are scored again at every batch size of :func:`batch_sizes_to_check` (up
  to the calibration's ``batch_size``); the rules see each one's highest score plus the largest difference
  any image showed between batch sizes.

Which good images: ``good_dir`` (a folder), else the calibration images the model's training kept out of
every fit (``data.calibration_fraction``; its sidecar records ``training.data.calibration_files`` and their
contents' ``calibration_sha256``: an image of the dataset is one of them by content, never by a bare name),
else its validation images (``val_files``/``val_sha256``; a warning says why they run low), else the
dataset's ``test/good``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from inspector.config import json_safe
from inspector.contract import DEFAULT_BATCH
from inspector.errors import ConfigError, DataError
from inspector.data.memory import CALIBRATION_BYTES, require_image_memory
from inspector.artifacts.calibration_data import (BatchCheck, CalibrationData, DefectImages, GoodImages, RuleDetails,
                                                  UncertainCount)
from inspector.artifacts.thresholds import MIN_GOOD_IMAGES, ModelBinding, Thresholds, score_stats, write_thresholds
from inspector.evaluation.fitted import fitted_counts, fitted_line, sha256_or_none

log = logging.getLogger(__name__)

DEFAULT_FALSE_ALARM_RATE = 0.001
# Dixon-style gap ratio over which the highest good scores are told apart (module docstring: how often healthy
# sets are, and defective parts are found, measured at 3 and 4).
OUTLIER_GAP = 3.0
# Batch sizes always checked besides powers of two: the daemon's partial batches are any size up to max_batch.
SMALL_BATCHES = 8
# The good images ranked this close to the cut (either side) are scored again at each batch size (batch_guard).
GUARD_IMAGES = 8
DEFAULT_PIXEL_FALSE_ALARM_RATE = 0.001
SPLITS = ("auto", "calibration", "val", "test")
# The validation images chose the best epoch and fitted the map normalisation: new good parts score higher
# (benchmarks/README.md, Sessions 35-36), so a threshold from them flags more than its rate on the line.
VALIDATION_BIAS = ("calibrating on the validation images, which chose the model's best epoch and fitted its map "
                   "normalisation: new good parts tend to score higher, so the line will see more false alarms "
                   "than the rate; use --good-dir with good parts the model never saw")


def validation_bias(sidecar: dict) -> str:
    """:data:`VALIDATION_BIAS` with the ``data.calibration_fraction`` that would make this model's training keep
    a calibration part, from the good images its card records (a fixed 0.1 was advised, which on fewer than
    100 good images makes no part: a run that had set it was told to set it again)."""
    from inspector.data.datasets import MIN_CALIBRATION_IMAGES, MIN_TRAIN_IMAGES, calibration_fraction_for

    data = (sidecar.get("training") or {}).get("data") or {}
    n_val, n_train = len(data.get("val_files") or ()), len(data.get("train_sha256") or ())
    if not n_train:  # a card from before Session 41 does not count the images trained on
        return (f"{VALIDATION_BIAS}, or train with a data.calibration_fraction that keeps at least "
                f"{MIN_CALIBRATION_IMAGES} good images out of every fit for calibrate")
    n = n_train + n_val
    need = calibration_fraction_for(n, n_val, MIN_TRAIN_IMAGES)
    if need is None:
        return (f"{VALIDATION_BIAS} (this model's {n} good images are too few for a calibration part: it needs "
                f"{MIN_CALIBRATION_IMAGES} beside {n_val} to validate and {MIN_TRAIN_IMAGES} to train on; "
                f"add good images)")
    return (f"{VALIDATION_BIAS}, or train with --set data.calibration_fraction={need:g} or more to keep images out "
            f"of every fit for calibrate ({round(n * need)} of this model's {n} good images; a part of fewer than "
            f"{MIN_CALIBRATION_IMAGES} is not made)")


# ------------------------------------------------------------------------------------------ rules
@dataclass(frozen=True)
class Choice:
    """One chosen threshold, the rule that chose it and what it achieves on the data."""

    threshold: float
    rule: str
    details: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def _finite_1d(values, what: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise DataError(f"{what}: nothing to calibrate on (no scores)")
    if not np.isfinite(a).all():
        raise DataError(f"{what}: {int((~np.isfinite(a)).sum())} score(s) are NaN or infinite")
    return a


def _check_rate(rate: float, what: str, field: str | None = None) -> None:
    if not (isinstance(rate, (int, float)) and 0 < rate < 1):
        raise ConfigError(f"{what}: must be between 0 and 1 (exclusive), got {rate}", field=field)


def _above(value: float) -> float:
    """The smallest float32 strictly greater than ``value`` (scores are float32; the threshold is exactly
    representable in float32, so comparing in float32 or float64 gives the same decisions)."""
    v = np.float32(value)
    if float(v) <= value:
        v = np.nextafter(v, np.float32(np.inf))
    return float(v)


def _between(low: float, high: float) -> float:
    """About halfway between ``low`` < ``high`` on the float32 grid: > low and ≤ high."""
    mid = np.float32(low + (high - low) / 2.0)
    if float(mid) <= low or float(mid) > high:
        return _above(low)
    return float(mid)


def _allowed(rate: float, n: int) -> int:
    """floor(rate · n), robust to 0.29 · 100 = 28.999… style rounding."""
    return int(math.floor(rate * n * (1 + 1e-9)))


def _cut_above_kth(top: np.ndarray, kth: float) -> float:
    """A threshold > ``kth`` (the (k+1)-th highest value) and ≤ the next higher distinct value in ``top``."""
    higher = top[top > kth]
    return _between(kth, float(higher.min())) if higher.size else _above(kth)


def threshold_at_false_alarm_rate(good_scores, rate: float, what: str = "image") -> Choice:
    """Threshold at a target false-alarm rate from good scores only (see the module docstring)."""
    _check_rate(rate, f"{what} false-alarm rate")
    s = _finite_1d(good_scores, f"{what} good scores")
    n = s.size
    k = min(_allowed(rate, n), n - 1)
    unit = "good scores" if what == "image" else "good-image pixels"
    warnings = []
    if k == 0:
        threshold = _above(float(s.max()))
        if 3 / n >= 1:  # the rule-of-three bound says nothing: the sentence below would read "below 1"
            warnings.append(
                f"{what}: only {n} good {'image(s)' if what == 'image' else 'value(s)'}: nothing is known about "
                f"this threshold's false-alarm rate (it was put above all of them); add good images "
                f"(≥ {math.ceil(1 / rate)} for the target {rate:g}) with --good-dir or --split test")
        else:
            warnings.append(
                f"{what}: target false-alarm rate {rate:g} is finer than the resolution of {n} good "
                f"{'images' if what == 'image' else 'values'} (about 1/{n} = {1 / n:.3g}); used the smallest "
                f"threshold above all {n} good scores (0 false alarms observed; the true rate is only known to be "
                f"below about 3/{n} = {min(1.0, 3 / n):.3g}). Add good images (≥ {math.ceil(1 / rate)}) "
                "to reach the target.")
    else:
        top = -np.partition(-s, k)[:k + 1]  # the k+1 highest values, unordered except top[k] = (k+1)-th highest
        threshold = _cut_above_kth(top[:k], float(top[k]))
    flagged = int((s >= threshold).sum())
    details = {"target_false_alarm_rate": rate, "n_good": n, "resolution": 1.0 / n, "allowed_false_alarms": k,
               "false_alarms": flagged, "false_alarm_rate": flagged / n,
               "rule_text": (f"at most floor({rate:g}·{n}) = {k} of {n} {unit} ≥ threshold"
                             if k else f"above all {n} {unit} (target finer than 1/{n})")}
    return Choice(float(threshold), f"false_alarm_rate={rate:g}", details, tuple(warnings))


# Fewer defective samples than this behind an F1 threshold: a warning (each one moves the optimum by a whole step)
MIN_F1_DEFECTS = 10


def threshold_f1(good_scores, defect_scores, what: str = "image") -> Choice:
    """The F1-optimal threshold between good and defective scores, with its precision and recall."""
    from inspector.evaluation.metrics import f1_max

    good = _finite_1d(good_scores, f"{what} good scores")
    bad = _finite_1d(defect_scores, f"{what} defect scores")
    scores = np.concatenate([good, bad])
    labels = np.r_[np.zeros(good.size, bool), np.ones(bad.size, bool)]
    f1, at, precision, recall = f1_max(scores, labels)
    lower = scores[scores < at]
    threshold = _between(float(lower.max()), at) if lower.size else at  # same decisions, more margin
    flagged_good = int((good >= threshold).sum())
    details = {"f1": f1, "precision": precision, "recall": recall, "n_good": int(good.size),
               "n_defect": int(bad.size), "false_alarms": flagged_good, "false_alarm_rate": flagged_good / good.size,
               "missed": int((bad < threshold).sum()),
               "rule_text": f"F1-optimal over {good.size} good and {bad.size} defective"}
    warnings = []
    if bad.size < MIN_F1_DEFECTS:  # how many is the summary's 'defects' line: said once, there
        warnings.append(f"{what}: F1 threshold chosen on fewer than {MIN_F1_DEFECTS} defective samples; it may not "
                        f"generalise")
    return Choice(float(threshold), "f1", details, tuple(warnings))


def pixel_threshold_at_false_alarm_rate(good_maps, rate: float) -> Choice:
    """Map threshold at a target rate of good-image pixels at or above it."""
    choice = threshold_at_false_alarm_rate(np.asarray(good_maps, dtype=np.float32).reshape(-1), rate, "pixel")
    d = dict(choice.details)
    d["n_pixels"] = d.pop("n_good")
    d["false_alarm_pixels"] = d.pop("false_alarms")
    d.pop("allowed_false_alarms", None)
    return Choice(choice.threshold, f"pixel_false_alarm_rate={rate:g}", d, choice.warnings)


def pixel_threshold_f1(maps, masks) -> Choice:
    """The pixel-F1-optimal map threshold over images whose ground-truth mask is known."""
    pairs = [(np.asarray(m, np.float32), np.asarray(k, bool)) for m, k in zip(maps, masks) if k is not None]
    if not pairs or not any(k.any() for _, k in pairs):
        raise DataError("pixel F1: no defect pixels in the ground-truth masks")
    values = np.concatenate([m.reshape(-1) for m, _ in pairs])
    labels = np.concatenate([k.reshape(-1) for _, k in pairs])
    choice = threshold_f1(values[~labels], values[labels], "pixel")
    d = dict(choice.details)
    d["n_pixels_good"], d["n_pixels_defect"] = d.pop("n_good"), d.pop("n_defect")
    d["rule_text"] = "pixel-F1-optimal over the pixels of images with ground-truth masks"
    return Choice(choice.threshold, "pixel_f1", d, ())


def uncertain_band(threshold: float, margin: float) -> tuple[float, float]:
    """``[t·(1−margin), t·(1+margin))`` around a positive image threshold."""
    if not 0 < margin < 1:
        raise ConfigError(f"uncertain margin: must be between 0 and 1 (a fraction of the threshold), got {margin}")
    if threshold <= 0:
        raise ConfigError(f"uncertain margin: needs a positive image threshold, got {threshold:g}")
    return float(threshold * (1 - margin)), float(threshold * (1 + margin))


def apart_from_the_rest(scores) -> tuple[int, float]:
    """(how many of the highest ``scores`` stand apart from the rest, their gap ratio): the largest ``j`` ≤
    max(1, n // 10) whose gap to the next lower score is more than :data:`OUTLIER_GAP` times the rest's spread
    above its median (module docstring); (0, 0.0) when none, when n ≤ :data:`MIN_GOOD_IMAGES` or the rest has
    no spread (ties: no scale to judge a gap by)."""
    s = np.sort(np.asarray(scores, dtype=np.float64).reshape(-1))[::-1]
    found, ratio = 0, 0.0
    if s.size <= MIN_GOOD_IMAGES:
        return found, ratio
    for j in range(1, max(1, s.size // 10) + 1):
        rest = s[j:]
        spread = float(rest[0] - np.median(rest))
        if spread > 0 and (s[j - 1] - rest[0]) > OUTLIER_GAP * spread:
            found, ratio = j, float((s[j - 1] - rest[0]) / spread)
    return found, ratio


def apart_from_reference(scores, reference) -> tuple[int, float]:
    """:func:`apart_from_the_rest` of ``scores``, keeping only those told apart that score above every
    ``reference`` score (good parts scored alike, none of them in ``scores``): one no higher than a known good
    part is the tail good parts have, not a defect (0, 0.0 when none is left). The README's walkthrough told 2
    of its 20 calibration images apart (0.466 and 0.345 over a rest at most 0.174) while its test/good held new
    good parts at 0.496 and 0.352: leaving them out, as the warning advised, set 0.174, which 10 of those 40
    good parts score above."""
    j, ratio = apart_from_the_rest(scores)
    if not j:
        return 0, 0.0
    top = np.sort(np.asarray(scores, dtype=np.float64).reshape(-1))[::-1][:j]
    found = int(np.count_nonzero(top > np.max(reference)))
    return (found, ratio) if found else (0, 0.0)


def too_few_good(n: int, rate: float, where: str, skipped: int = 0) -> DataError:
    """The one-line refusal of ``n`` < :data:`MIN_GOOD_IMAGES` good images (from ``where``), with how many the
    target ``rate`` needs to be measured (1/rate) and the override."""
    read = f" ({skipped} more could not be read)" if skipped else ""
    return DataError(f"{where}: only {n} good image(s){read} to calibrate on: a threshold on fewer than "
                     f"{MIN_GOOD_IMAGES} says nothing about its false-alarm rate (rule of three: 3/{n} ≥ 1), and the "
                     f"target {rate:g} needs {math.ceil(1 / rate)} to be measured; add good images (--good-dir), or "
                     f"give allow_few_good to put the threshold above them anyway", field="allow_few_good")


# ------------------------------------------------------------------------------------------ data
@dataclass
class ScoredSet:
    """Images scored by the backend: scores (n,), maps (n, h, w), the samples kept, skipped paths, and the lines
    that told folders of images unlike the model's training images (:mod:`inspector.artifacts.frame_shapes`)."""

    samples: list
    scores: np.ndarray
    maps: np.ndarray
    skipped: list[str]
    shapes_told: list[str] = field(default_factory=list)


def model_sidecar(backend) -> dict:
    """The exported model's card (an engine card embeds it under ``model``); ``{}`` for a torch run."""
    from inspector.artifacts import model_card_of

    return model_card_of(getattr(backend, "sidecar", None) or {})


PARTS = {"val": "validation", "calibration": "calibration"}  # --split value → the card's record and its words


def recorded_validation(sidecar: dict, part: str = "val") -> tuple[set[str], set[str], str | None]:
    """What a model card records of the validation (``part`` "val") or calibration images (``part``
    "calibration"): (file names, contents' sha256, dataset root)."""
    data = (sidecar.get("training") or {}).get("data") or {}
    return set(data.get(f"{part}_files") or []), set(data.get(f"{part}_sha256") or []), data.get("root")


def _recorded_samples(dataset, sidecar: dict, part: str = "val") -> tuple[list, int]:
    """(the training images of ``dataset`` that are the model's ``part`` images, how many it recorded).

    Known by content (the sha256 recorded at training) or, on a model card from before the hashes, by
    resolved path (the card's recorded root is this dataset's): a bare file name took a same-named image of
    another dataset (``000.png`` is in every one) for an image the model was validated on.
    """
    names, hashes, root = recorded_validation(sidecar, part)
    candidates = [s for s in dataset.train if s.path.name in names]
    if hashes:
        return [s for s in candidates if sha256_or_none(s.path) in hashes], len(names)
    same = root is not None and Path(root).expanduser().resolve() == Path(dataset.root).resolve()
    return (candidates if same else []), len(names)


# Source: benchmarks/README.md, Sessions 35-36 (images the model was fitted on score below new good parts)
FITTED_THRESHOLD = ("they score below new good parts, so the line will see more false alarms than the rate; calibrate "
                    "on good parts the model never saw")


def fitted_warning(samples: Sequence, sidecar: dict, what: str = "good image(s)") -> str | None:
    """The calibrate warning when some of ``samples`` are images the model was fitted on (:func:`fitted_counts`):
    a threshold set on them flags more than its rate on the line."""
    return fitted_line(fitted_counts(samples, sidecar), len(samples), what, FITTED_THRESHOLD)


def _no_good_images(folder: Path) -> str:
    """The one line for a good-image folder with no images in it: its sub-folders that hold some, its files of
    formats not read, and a dataset (train/, test/) given in its place told as one, to give as the dataset."""
    from inspector.data.images import subfolders_note, unread_image_names

    nested, unread = subfolders_note(folder), unread_image_names(folder)
    line = f"{folder}: no images in the good-image folder" + (f"; {nested}" if nested else "")
    if unread:
        line += f"; {len(unread)} file(s) of an image format that is not read, e.g. {unread[0]}"
    if (folder / "train").is_dir() or (folder / "test").is_dir():
        line += f"; it looks like a dataset: give it as --data {folder} (or --good-dir {folder / 'test' / 'good'})"
    return line


def _held_parts(recorded: dict[str, int]) -> str:
    """The model's held-out parts with images, in words ("12 validation and 40 calibration"), '' for none."""
    return " and ".join(f"{n} {PARTS[part]}" for part, n in recorded.items() if n)


def _no_good_in_dataset(root: Path, split: str, recorded: dict[str, int]) -> str:
    """The line for a ``--data`` with neither the model's held-out images nor test/good. It said "no validation
    split recorded for this model" also of a model that recorded one, kept in another folder of the same dataset
    (a newcomer's ``--data data/brick/test/good``), and named no folder to give instead."""
    from inspector.data.datasets import enclosing_hint

    held = _held_parts(recorded)
    why = ("" if split == "test" else f"none of the model's {held} image(s) is here and " if held
           else "no validation split recorded for this model and ")
    inside = enclosing_hint(Path(root))
    return f"{root}: {why}no test/good images" + (inside or "; use --good-dir")


def refuse_defect_folder(folder: Path) -> None:
    """Raise DataError when ``folder`` (``--good-dir`` or ``--data``) is a defect or mask folder of a dataset
    (:func:`inspector.data.datasets.not_good_images_problem`): calibrated on, the threshold went above every
    defect in it, so the line passed them all, with no word."""
    from inspector.data.datasets import not_good_images_problem

    if why := not_good_images_problem(folder, "give --data {dataset} (the good images its model kept out, else "
                                              "its test/good)"):
        raise DataError(why)


def select_good_images(data: str | Path | None, sidecar: dict, good_dir: str | Path | None = None,
                       split: str = "auto") -> tuple[list, dict, list[str]]:
    """(good samples, description, warnings) to calibrate on (see the module docstring)."""
    from inspector.data.datasets import Sample, check_listable, dataset_images, load_dataset
    from inspector.data.images import list_images

    if split not in SPLITS:
        raise ConfigError(f"split '{split}': choose one of {', '.join(SPLITS)}")
    if good_dir is not None:
        if split != "auto":  # an explicit split chooses among data's images; silently ignoring it misleads
            raise ConfigError(f"split '{split}' chooses among the dataset's good images; with a good-image folder "
                              f"({good_dir}) it has no effect: leave it out", field="split")
        folder = Path(good_dir)
        refuse_defect_folder(folder)
        if not folder.is_dir():  # a file is told as one, not "not found"
            raise DataError(f"{folder}: good-image folder " + ("is a file, not a folder" if folder.exists() else "not found"))
        check_listable(folder)
        if not list_images(folder):  # said in the error alone: dataset_images warned of its sub-folders first
            raise DataError(_no_good_images(folder))
        samples = [Sample(p, 0, "good") for p in dataset_images(folder)]  # other formats told, masks left out
        if not samples:
            raise DataError(_no_good_images(folder))
        fitted = fitted_warning(samples, sidecar)
        return samples, {"source": "folder", "root": str(folder.absolute())}, [fitted] if fitted else []
    if data is None:
        raise ConfigError("calibrate: give data (a dataset) or good_dir (a folder of good images)")
    refuse_defect_folder(Path(data))
    dataset = load_dataset(data)
    warnings, recorded = [], {}
    for part in {"auto": ("calibration", "val"), "test": ()}.get(split, (split,)):
        found, n_part = _recorded_samples(dataset, sidecar, part)
        recorded[part] = n_part
        if found:
            words = PARTS[part]
            if len(found) < n_part:
                warnings.append(f"{n_part - len(found)} {words} image(s) recorded at training are not in "
                                f"{dataset.root}; calibrating on the {len(found)} found")
            if part == "val":
                warnings.append(validation_bias(sidecar))
            return found, {"source": f"{words} split", "root": str(Path(dataset.root).absolute()), "layout": dataset.layout}, warnings
        if split == part:
            raise DataError(f"{dataset.root}: the model's sidecar records no {PARTS[part]} images found here "
                            f"(use --split test or --good-dir)")
    good = [s for s in dataset.test if s.label == 0]
    if not good:
        raise DataError(_no_good_in_dataset(dataset.root, split, recorded))
    held = _held_parts(recorded)
    if split == "auto" and held:  # e.g. another dataset whose files share the validation images' names
        warnings.append(f"none of the model's {held} image(s) is in {dataset.root} (known by "
                        f"content, not by name); calibrating on test/good (metrics on the same test images will "
                        f"be optimistic)")
    elif split == "auto":
        warnings.append("no validation split recorded for this model in this dataset; calibrating on test/good "
                        "(metrics on the same test images will be optimistic)")
    if fitted := fitted_warning(good, sidecar, "test/good image(s)"):  # a dataset whose test/good holds train images
        warnings.append(fitted)
    return good, {"source": "test/good", "root": str(Path(dataset.root).absolute()), "layout": dataset.layout}, warnings


def score_samples(backend, samples: Sequence, batch_size: int = DEFAULT_BATCH, chunk: int = 64,
                  on_progress: Callable[[int, int], None] | None = None) -> ScoredSet:
    """Decode, resize (``backend.input_spec``) and score ``samples`` with ``backend``; corrupt images are skipped.

    Raises DataError when none can be read, or when their maps would not fit in memory
    (:func:`~inspector.data.memory.require_image_memory`)."""
    from inspector.artifacts.frame_shapes import backend_frame_shapes, folder_watch
    from inspector.data.datasets import common_folder, load_batch, none_readable
    from inspector.evaluation.evaluate import backend_scorer, score_images

    spec = backend.input_spec
    require_image_memory(len(samples), spec.height, spec.width, common_folder(samples),
                         bytes_per_pixel=CALIBRATION_BYTES, what="image(s)",
                         advice="calibrate on fewer images (--good-dir with a subset)")
    batch_size = max(1, min(batch_size, spec.max_batch or batch_size))
    # each folder of images unlike the model's training images is told once: scored, they set a meaningless threshold
    told: list[str] = []
    seen = folder_watch(backend_frame_shapes(backend, str(getattr(backend, "path", "model")), retell=False), told)
    scores, maps, kept, skipped = [], [], [], []
    for start in range(0, len(samples), chunk):
        images, ok, bad = load_batch(samples[start:start + chunk], spec.height, spec.width, spec.resize,
                                     spec.bit_depth, spec.downscale, on_size=seen)
        kept += ok
        skipped += [str(s.path) for s, _ in bad]
        if len(images):
            chunk_scores, chunk_maps = score_images(backend_scorer(backend), images, batch_size)
            scores.append(chunk_scores)
            maps.append(chunk_maps)
        if on_progress:
            on_progress(min(start + chunk, len(samples)), len(samples))
    if not kept:
        raise none_readable(samples)
    return ScoredSet(kept, np.concatenate(scores), np.concatenate(maps), skipped, told)


def batch_sizes_to_check(batch_size: int) -> list[int]:
    """1 … min(batch_size, :data:`SMALL_BATCHES`), the powers of two up to ``batch_size``, and ``batch_size``:
    the sizes the daemon's partial batches and predict's last batch most often take, at a bounded cost."""
    sizes = set(range(1, min(batch_size, SMALL_BATCHES) + 1)) | {batch_size}
    sizes |= {2 ** i for i in range(batch_size.bit_length()) if 2 ** i <= batch_size}
    return sorted(sizes)


def batch_guard(backend, good: ScoredSet, allowed: int, batch_size: int) -> tuple[np.ndarray, BatchCheck]:
    """(good scores for the rules, what was checked): the good images ranked within :data:`GUARD_IMAGES` of
    the ``allowed``-th highest (0-based: the highest that must stay below the threshold when ``allowed`` may
    be flagged) scored again at every size of :func:`batch_sizes_to_check` (a batch larger than they are
    repeats them); each of their scores becomes the highest it got plus the largest difference any of them
    showed between batch sizes (the backend's own batch-to-batch spread, which also covers sizes not tried).
    The others are left as scored: far above or below the cut, a few 1e-6 do not move them across it."""
    from inspector.data.datasets import load_batch

    spec = backend.input_spec
    batch_size = max(1, min(batch_size, spec.max_batch or batch_size))
    sizes = batch_sizes_to_check(batch_size)
    order = np.argsort(-good.scores, kind="stable")[max(0, allowed - GUARD_IMAGES):allowed + GUARD_IMAGES]
    images, ok, _ = load_batch([good.samples[i] for i in order], spec.height, spec.width, spec.resize,
                               spec.bit_depth, spec.downscale)
    read = {id(s) for s in ok}  # an image that no longer reads keeps its score (it was read once)
    order = np.array([i for i in order if id(good.samples[i]) in read], dtype=int)
    if not len(order):
        return good.scores.astype(np.float64), BatchCheck(tuple(sizes), 0, 0.0)
    high, low = good.scores[order].astype(np.float64), good.scores[order].astype(np.float64)
    for size in sizes:
        index = np.arange(-(-max(size, len(order)) // size) * size) % len(order)
        for start in range(0, len(index), size):
            part = index[start:start + size]
            scores = np.asarray(backend.infer(images[part]).scores, dtype=np.float64).reshape(-1)
            np.maximum.at(high, part, scores)
            np.minimum.at(low, part, scores)
    spread = float((high - low).max())
    guarded = good.scores.astype(np.float64)
    guarded[order] = high + spread
    return guarded, BatchCheck(tuple(sizes), int(len(order)), spread)


# ------------------------------------------------------------------------------------------ calibrate
@dataclass
class Calibration:
    """What :func:`calibrate` chose and why; ``thresholds`` is what the file holds."""

    thresholds: Thresholds
    path: Path | None
    image: Choice
    pixel: Choice
    good: ScoredSet
    defects: ScoredSet | None
    warnings: list[str]

    def summary_lines(self) -> list[str]:
        t = self.thresholds
        lines = [f"model      {t.model.name} ({t.model.precision}, {t.model.backend}), sha256 {t.model.sha256[:12]}…",
                 f"good data  {t.data.good.n} image(s) from {t.data.good.source} ({t.data.good.root})"]
        if self.defects is not None:
            lines.append(f"defects    {len(self.defects.scores)} image(s) from test/<defect>")
        d = self.image.details
        line = f"image      threshold {t.image_threshold:.6g}  [{self.image.rule}: {d['rule_text']}]"
        if self.image.rule == "f1":
            line += (f"  F1 {d['f1']:.3f}, precision {d['precision']:.3f}, recall {d['recall']:.3f}, "
                     f"good flagged {d['false_alarms']}/{d['n_good']}")
        else:
            line += (f"  resolution 1/{d['n_good']} = {d['resolution']:.3g}, "
                     f"observed {d['false_alarms']}/{d['n_good']} false alarm(s)")
        lines.append(line)
        if check := t.data.batch_check:
            lines.append(f"batches    the {check.images} good image(s) nearest the threshold scored again at "
                         f"batch size(s) {', '.join(map(str, check.batch_sizes))}: they moved by up to "
                         f"{check.spread:.3g}, which the threshold clears")
        covers = f": {self.pixel.details['rule_text']}" if self.pixel.rule == "pixel_f1" else ""
        lines.append(f"pixel      threshold {t.pixel_threshold:.6g}  [{self.pixel.rule}{covers}]")
        if t.uncertain_band:
            lines.append(f"uncertain  [{t.uncertain_band[0]:.6g}, {t.uncertain_band[1]:.6g})")
        s = t.score_stats
        lines.append(f"good scores mean {s.mean:.4g} std {s.std:.3g} min {s.min:.4g} p50 {s.p50:.4g} "
                     f"p99 {s.p99:.4g} max {s.max:.4g}")
        return lines


def _load_defects(data: str | Path, backend, batch_size: int) -> tuple[ScoredSet, list]:
    from inspector.data.datasets import is_ambiguous, load_dataset, load_masks

    dataset = load_dataset(data)
    # an ambiguous label (ELPV's likely_defect) must not pull the F1 threshold; evaluate leaves it out the same way
    samples = [s for s in dataset.test if s.label == 1 and not is_ambiguous(s.defect_type)]
    if not samples:
        raise DataError(f"{dataset.root}: use_defects needs test/<defect type> images; found "
                        f"{_ambiguous_only(dataset.test)}", field="use_defects")
    scored = score_samples(backend, samples, batch_size)
    h, w = scored.maps.shape[-2:]
    return scored, load_masks(scored.samples, h, w, backend.input_spec.resize)


def _ambiguous_only(test: list) -> str:
    """``none``, or the ambiguously labelled defect folders that were there (``likely_defect`` 6 images): "found none"
    beside a folder of defect images sent the user looking for a layout fault."""
    from inspector.data.datasets import is_ambiguous

    counts: dict[str, int] = {}
    for s in test:
        if s.label == 1 and is_ambiguous(s.defect_type):
            counts[s.defect_type] = counts.get(s.defect_type, 0) + 1
    if not counts:
        return "none"
    named = ", ".join(f"{name} ({n} image(s))" for name, n in sorted(counts.items()))
    return f"only ambiguously labelled ones, {named}, which never set a threshold (labels that are likely, not sure)"


def _sha256(path: Path) -> str:
    from inspector.artifacts.model_card import sha256_file

    return sha256_file(path)


@dataclass
class _Scored:
    """What the backend gave: good (and defective) images scored, the good scores the rules see (batch_guard)."""

    good: ScoredSet
    guarded: np.ndarray
    defects: ScoredSet | None
    masks: list | None
    description: dict
    warnings: list[str]
    batch_check: BatchCheck
    reference: np.ndarray | None = None  # test/good scores the gap rule also judges by (_reference_good)


def calibrate(model_path: str | Path, data: str | Path | None = None, backend: str = "auto",
              false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE, out: str | Path | None = None, *,
              good_dir: str | Path | None = None, split: str = "auto", use_defects: bool = False,
              pixel_false_alarm_rate: float = DEFAULT_PIXEL_FALSE_ALARM_RATE,
              uncertain_margin: float | None = None, batch_size: int = DEFAULT_BATCH, threads: int | None = None,
              backend_options: dict | None = None, exclude_outliers: bool = False,
              allow_few_good: bool = False) -> Calibration:
    """Score good (and optionally defective) images with the deployed backend; choose and write thresholds.

    ``out`` None: nothing is written (the thresholds are returned). ``exclude_outliers``: leave good images
    that score far above the rest (:func:`apart_from_the_rest`) out of the thresholds (default: kept and named
    in a warning). ``allow_few_good``: calibrate on fewer than :data:`MIN_GOOD_IMAGES` good images (default:
    refused). ``batch_size``: the largest batch the deployment runs (the daemon's ``batching.max_batch``):
    the threshold holds at every size up to it (:func:`batch_guard`). ``model_path``: an exported .onnx or a
    TensorRT engine (a training run or checkpoint: ConfigError, before any work). Raises ConfigError / DataError /
    BackendError with one-line messages.
    """
    from inspector.artifacts.model_card import split_graph_name

    model_path = Path(model_path)
    _check_deployed(model_path)
    _check_options(false_alarm_rate, pixel_false_alarm_rate, uncertain_margin)
    engine = _load_engine(model_path, backend, threads, backend_options)
    try:
        policy = engine.input_spec.resize
        s = _score_all(engine, data, good_dir, split, use_defects, false_alarm_rate, batch_size, allow_few_good)
        binding = ModelBinding(name=split_graph_name(model_path)[0].name, sha256=_sha256(model_path),
                               precision=str(engine.precision), backend=str(engine.name))
    finally:
        engine.close()
    warnings = s.warnings  # the one list: _apart adds to it too
    warnings += s.good.shapes_told + (s.defects.shapes_told if s.defects else [])
    if s.good.skipped:
        # unreadable, or refused as predict overlays: the log's warnings above tell which, by name
        warnings.append(f"{len(s.good.skipped)} good image(s) were skipped: they could not be read, or were refused "
                        f"as predict overlays")
    good, guarded = _apart(s, false_alarm_rate, exclude_outliers)
    image, pixel = _choose_thresholds(good, guarded, s.defects, s.masks, false_alarm_rate, pixel_false_alarm_rate,
                                      warnings)
    band = uncertain_band(image.threshold, uncertain_margin) if uncertain_margin else None
    data = _data_summary(good, s, image, pixel, policy, band, uncertain_margin, warnings)
    thresholds = Thresholds(model=binding, image_threshold=image.threshold, pixel_threshold=pixel.threshold,
                            rule=f"{image.rule}, {pixel.rule}", uncertain_band=band, data=data,
                            score_stats=score_stats(good.scores))
    path = write_thresholds(thresholds, out) if out is not None else None
    for w in warnings:  # the caller shows them to the user (they are also in the file's data.warnings)
        log.debug("calibration warning: %s", w)
    return Calibration(thresholds, path, image, pixel, good, s.defects, warnings)


def _check_deployed(model_path: Path) -> None:
    """A training run or checkpoint is refused before any work: torch scored it, then its sha256 failed on the
    folder ("Is a directory"), or a checkpoint was bound, on test/good, to a file no line runs."""
    from inspector.artifacts import ENGINE_SUFFIXES

    if model_path.is_dir() or model_path.suffix.lower() not in (".onnx", *ENGINE_SUFFIXES):
        raise ConfigError(f"{model_path}: not an exported .onnx graph or TensorRT engine; calibrate the file the "
                          f"line runs: export the run first (inspector export RUN --out export/NAME)")


def _check_options(false_alarm_rate: float, pixel_false_alarm_rate: float, uncertain_margin: float | None) -> None:
    _check_rate(false_alarm_rate, "false_alarm_rate", "false_alarm_rate")
    _check_rate(pixel_false_alarm_rate, "pixel_false_alarm_rate", "pixel_false_alarm_rate")
    if uncertain_margin is not None and not 0 < uncertain_margin < 1:
        raise ConfigError(f"uncertain_margin: must be between 0 and 1, got {uncertain_margin}", field="uncertain_margin")


def _load_engine(model_path: Path, backend: str, threads: int | None, backend_options: dict | None):
    from inspector.backends import backend_for_path, load_backend

    options = dict(backend_options or {})
    if threads is not None and (backend if backend != "auto" else backend_for_path(model_path)) == "onnxruntime":
        options.setdefault("threads", threads)
    return load_backend(model_path, backend, **options)


def _score_all(engine, data, good_dir, split: str, use_defects: bool, rate: float, batch_size: int,
               allow_few_good: bool) -> _Scored:
    """Choose and score the good images (refused when too few), the defective ones with ``use_defects``, and
    guard the highest good scores against batch-size differences."""
    samples, description, warnings = select_good_images(data, model_sidecar(engine), good_dir, split)
    log.info("scoring %d good image(s) from %s with %s (%s)", len(samples), description["source"],
             engine.name, engine.precision)
    good = score_samples(engine, samples, batch_size)
    n = int(good.scores.size)
    if n < MIN_GOOD_IMAGES and not allow_few_good:
        raise too_few_good(n, rate, f"{description['root']} ({description['source']})", len(good.skipped))
    defects, masks = (None, None)
    if use_defects:
        if data is None:
            raise ConfigError("use_defects needs a dataset (data) with test/<defect type> images", field="use_defects")
        defects, masks = _load_defects(data, engine, batch_size)
    allowed = 0 if use_defects else min(_allowed(rate, n), n - 1)  # the (allowed+1)-th highest decides the cut
    guarded, checked = batch_guard(engine, good, allowed, batch_size)
    reference = _reference_good(engine, data, good, guarded, description, batch_size)
    return _Scored(good, guarded, defects, masks, description, warnings, checked, reference)


def _reference_good(engine, data, good: ScoredSet, guarded: np.ndarray, description: dict,
                    batch_size: int) -> np.ndarray | None:
    """Scores of ``data``'s test/good images when the gap rule tells some good images apart and they were not
    test/good themselves: other good parts, by which :func:`apart_from_reference` judges them; None otherwise
    (no dataset, no test/good). An image calibrated on is left out by content: a copy would clear itself."""
    from inspector.data.datasets import load_dataset

    if data is None or description["source"] == "test/good" or not apart_from_the_rest(guarded)[0]:
        return None
    calibrated = {sha256_or_none(s.path) for s in good.samples}
    others = [s for s in load_dataset(data).test if s.label == 0 and sha256_or_none(s.path) not in calibrated]
    return score_samples(engine, others, batch_size).scores if others else None


def _image_choice(scores: np.ndarray, defects: ScoredSet | None, rate: float) -> Choice:
    return threshold_f1(scores, defects.scores) if defects is not None else threshold_at_false_alarm_rate(scores, rate)


def _apart(s: _Scored, rate: float, exclude: bool) -> tuple[ScoredSet, np.ndarray]:
    """(good images, their guarded scores) for the thresholds: the ones :func:`apart_from_the_rest` finds are
    named in a warning with the image threshold with and without them, and left out when ``exclude``."""
    ref = s.reference
    j, ratio = apart_from_the_rest(s.guarded) if ref is None else apart_from_reference(s.guarded, ref)
    if not j:
        return s.good, s.guarded
    order = np.argsort(-s.guarded, kind="stable")
    apart, keep = order[:j], np.sort(order[j:])
    with_them = _image_choice(s.guarded, s.defects, rate).threshold
    without = _image_choice(s.guarded[keep], s.defects, rate).threshold
    named = ", ".join(f"{s.good.samples[i].path} (score {s.good.scores[i]:.6g})" for i in apart[:5])
    named += f" and {j - 5} more" if j > 5 else ""  # one line, however many
    said = _apart_said(j, len(keep), ref, named, ratio)
    if not exclude:
        advice = ("look at them, and move them out of the good images or give --exclude-outliers" if ref is not None
                  else "look at them: a defective part among them belongs out of the good images (or give "
                       "--exclude-outliers); a good one means good parts score that high, and leaving it out would "
                       "flag them")
        s.warnings.append(said + f"The image threshold is {with_them:.6g} with them, {without:.6g} without: {advice}")
        return s.good, s.guarded
    s.warnings.append(said + f"Left out (--exclude-outliers): the image threshold is {without:.6g} "
                             f"({with_them:.6g} with them)" + ("" if ref is not None else
                                                               "; if they are good parts, the line will flag parts "
                                                               "scoring like them"))
    s.description["excluded"] = tuple(str(s.good.samples[i].path) for i in apart)
    good = ScoredSet([s.good.samples[i] for i in keep], s.good.scores[keep], s.good.maps[keep], s.good.skipped)
    return good, s.guarded[keep]


# how often the gap rule alone tells a healthy set apart, on the tests' 2-epoch model (module docstring)
HEALTHY_TOLD_APART = "4 of 12 sets of 24 new good parts on the tests' model"


def _apart_said(j: int, n_rest: int, ref: np.ndarray | None, named: str, ratio: float) -> str:
    """The first sentences of :func:`_apart`'s warning: which images stand apart, by what gap, and on what basis.
    Judged by other good parts (``ref``: test/good scores) they score above every one, a defect's evidence; judged
    by the gap alone, healthy sets with a long tail are told apart too (:data:`HEALTHY_TOLD_APART`), and the line
    asked "a defective or mislabelled part among the good images?" of good parts a third of the time without
    saying it had nothing else to go by."""
    gap = (f"the gap below them is {ratio:.1f}x the others' spread above their median (over {OUTLIER_GAP:g}x "
           f"counts)")
    if ref is not None:
        return (f"{j} good image(s) score far above the other {n_rest} and above all {ref.size} test/good image(s) "
                f"(at most {ref.max():.6g}): {named}; {gap}: a defective or mislabelled part among the good images? ")
    return (f"{j} good image(s) score far above the other {n_rest}: {named}; {gap}. That gap is all this rests on: "
            f"no other good parts were scored to compare them with (calibrate on --good-dir or the model's "
            f"calibration split, with --data whose test/good holds other good parts), and healthy sets with a long "
            f"tail are told apart so too ({HEALTHY_TOLD_APART}), so it is no evidence of a defect by itself. ")


def _choose_thresholds(good: ScoredSet, guarded: np.ndarray, defects: ScoredSet | None, masks: list | None,
                       false_alarm_rate: float, pixel_false_alarm_rate: float, warnings: list[str]) -> tuple:
    """(image rule result, pixel rule result): F1-optimal with defects, else at the false-alarm rates; the image
    rule sees the good images' ``guarded`` scores (:func:`batch_guard`).

    Appends the rules' warnings (and a missing-masks note) to ``warnings``.
    """
    image = _image_choice(guarded, defects, false_alarm_rate)
    if defects is not None and any(m is not None and m.any() for m in masks):
        good_masks = [np.zeros(m.shape, bool) for m in good.maps]
        pixel = pixel_threshold_f1(list(good.maps) + list(defects.maps), good_masks + list(masks))
        _say_pixel_f1_covers(pixel, len(good.maps), masks)
    else:
        pixel = pixel_threshold_at_false_alarm_rate(good.maps, pixel_false_alarm_rate)
        if defects is not None:  # defects without usable masks (e.g. some BTAD folders): good pixels only
            from inspector.data.datasets import why_unmasked

            why = why_unmasked(defects.samples, masks) or "no usable ground-truth masks for the defective images"
            warnings.append(f"{why}: the pixel threshold comes from good-image pixels at a rate of "
                            f"{pixel_false_alarm_rate:g}")
    warnings += [*image.warnings, *pixel.warnings]
    return image, pixel


def _say_pixel_f1_covers(pixel: Choice, n_good: int, masks: list) -> None:
    """Name in the pixel-F1 rule's ``rule_text`` the images it was chosen over (the good ones and the defective ones
    with a usable mask): the summary line said "[pixel_f1]" and the file "over the pixels of images with
    ground-truth masks" whether 1 or all of them had one. Said there alone: a closing warning repeating the count
    printed it twice in a row (the masks missing are told by the dataset's own lines, by name)."""
    n_masked, n_defect = sum(m is not None for m in masks), len(masks)
    pixel.details["rule_text"] = (f"pixel-F1-optimal over the pixels of {n_good} good image(s) and the {n_masked} "
                                  f"of {n_defect} defective image(s) with a usable ground-truth mask")


def _data_summary(good: ScoredSet, s: _Scored, image: Choice, pixel: Choice, policy: str, band,
                  uncertain_margin: float | None, warnings: list[str]) -> CalibrationData:
    """The calibration file's ``data`` section: what was scored (``good``: the images the thresholds were chosen
    on, ``s``: all that was scored) and how the thresholds were chosen."""
    defects = None
    if s.defects is not None:
        defects = DefectImages(n=int(s.defects.scores.size), skipped=tuple(s.defects.skipped),
                               with_mask=int(sum(m is not None for m in s.masks)))
    uncertain = None
    if band is not None:
        uncertain = UncertainCount(margin=float(uncertain_margin),
                                   good_in_band=int(((good.scores >= band[0]) & (good.scores < band[1])).sum()))
    return CalibrationData(
        good=GoodImages(**s.description, n=int(good.scores.size), skipped=tuple(good.skipped)),
        # numpy numbers as plain ones and NaN as None (json_safe), which the file leaves out
        image_rule=RuleDetails(**json_safe(image.details)), pixel_rule=RuleDetails(**json_safe(pixel.details)),
        map_size=tuple(int(d) for d in good.maps.shape[-2:]), resize=policy, defects=defects, uncertain=uncertain,
        warnings=tuple(warnings) or None, batch_check=s.batch_check)
