"""Anomaly-detection metrics: ROC/AUROC, pixel AUROC, AUPRO, F1-max (numpy + cv2 only).

Conventions: a higher score means "more anomalous"; a prediction at threshold
``t`` is ``score >= t``. Ties are handled exactly: AUROC equals the
Mann–Whitney U statistic with ties counted one half. Metrics that are
undefined (one class missing, no masks) are ``nan`` from the functions here and
``None`` in :func:`evaluate_scores`'s JSON-friendly dict.

Maps and masks may be one (N, H, W) array or a list of 2-D arrays of
different sizes (images at their original resolution); a mask ``None`` means
unknown and that image is left out of pixel metrics.
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np


def _check(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1).astype(bool)
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} scores but {labels.size} labels")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    return scores, labels


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), one point per distinct score (descending) after a leading (0, 0, +inf)."""
    scores, labels = _check(scores, labels)
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1] if s.size else np.array([], dtype=int)
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    tpr = np.r_[0.0, tps / n_pos] if n_pos else np.full(last.size + 1, np.nan)
    fpr = np.r_[0.0, fps / n_neg] if n_neg else np.full(last.size + 1, np.nan)
    return fpr, tpr, np.r_[np.inf, s[last]]


def _auroc_split(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(pos > neg) + ½ P(pos == neg): both sides sorted, the smaller searched in the larger.

    (Searching sorted queries is several times faster than unsorted ones on millions of pixels.)
    """
    if pos.size == 0 or neg.size == 0:
        return math.nan
    pairs = float(pos.size) * float(neg.size)
    small, large = (np.sort(pos), np.sort(neg)) if pos.size <= neg.size else (np.sort(neg), np.sort(pos))
    below = np.searchsorted(large, small, "left")
    equal = np.searchsorted(large, small, "right") - below
    wins = below.sum(dtype=np.float64) + 0.5 * equal.sum(dtype=np.float64)  # pairs the small side wins
    return wins / pairs if pos.size <= neg.size else 1.0 - wins / pairs


def auroc(scores, labels) -> float:
    """Area under the ROC curve (= Mann–Whitney U / (n_pos · n_neg)); nan if a class is missing."""
    scores, labels = _check(scores, labels)
    return _auroc_split(scores[labels], scores[~labels])


image_auroc = auroc


def _known_pairs(maps, masks) -> list[tuple[np.ndarray, np.ndarray]]:
    if len(maps) != len(masks):
        raise ValueError(f"{len(maps)} maps but {len(masks)} masks")
    pairs = []
    for i, (amap, mask) in enumerate(zip(maps, masks)):
        if mask is None:
            continue
        amap, mask = np.asarray(amap), np.asarray(mask).astype(bool)
        if amap.shape != mask.shape:
            raise ValueError(f"map {i} has shape {amap.shape} but its mask {mask.shape}")
        pairs.append((amap, mask))
    return pairs


def _map_dtype(pairs) -> np.dtype:
    """float32 for maps of float32 or narrower (no float64 copy of big maps), float64 stays float64."""
    return np.result_type(np.float32, *(a.dtype for a, _ in pairs))


def pixel_auroc(maps, masks) -> float:
    """AUROC over all pixels of the images whose mask is known (good images: all-False masks)."""
    pairs = _known_pairs(maps, masks)
    if not pairs:
        return math.nan
    dtype = _map_dtype(pairs)
    pos = np.concatenate([a[m] for a, m in pairs]).astype(dtype, copy=False)
    neg = np.concatenate([a[~m] for a, m in pairs]).astype(dtype, copy=False)
    if np.isnan(pos).any() or np.isnan(neg).any():
        raise ValueError("anomaly maps contain NaN")
    return _auroc_split(pos, neg)


def _trapezoid_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Area under the piecewise-linear (x, y) curve (x ascending) from x[0] to x_max."""
    inside = np.flatnonzero(x <= x_max)
    area = float(np.sum(0.5 * (y[inside][1:] + y[inside][:-1]) * np.diff(x[inside])))
    last = inside[-1]
    if x[last] < x_max and last + 1 < x.size:  # interpolate the segment crossing x_max
        x0, x1, y0, y1 = x[last], x[last + 1], y[last], y[last + 1]
        y_at = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        area += 0.5 * (y0 + y_at) * (x_max - x0)
    return area


def pro_curve(maps, masks, fpr_limit: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, pro) at every distinct threshold, descending scores, up to the first fpr >= ``fpr_limit``.

    FPR is over all defect-free pixels (of good and defective images); PRO is the
    mean over all ground-truth regions (8-connected components of each mask) of
    the fraction of the region at or above the threshold. Only pixels scoring at
    least the threshold where FPR reaches the limit are sorted, to save memory.
    """
    pairs = _known_pairs(maps, masks)
    region_ids, inverse_sizes = [], [np.zeros(1)]  # id 0: defect-free pixel, weight 0
    for _, mask in pairs:  # number the regions across all images; a region pixel weighs 1 / its size
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
        offset = sum(len(t) for t in inverse_sizes) - 1
        region_ids.append(np.where(labels > 0, labels + offset, 0).astype(np.int32).reshape(-1))
        inverse_sizes.append(1.0 / stats[1:, cv2.CC_STAT_AREA].astype(np.float64))
    inverse_size = np.concatenate(inverse_sizes)
    n_regions = inverse_size.size - 1
    region = np.concatenate(region_ids) if region_ids else np.zeros(0, np.int32)
    n_ok = int((region == 0).sum())
    if n_ok == 0 or n_regions == 0:
        return np.array([0.0]), np.array([0.0])
    scores = np.concatenate([a.reshape(-1) for a, _ in pairs]).astype(_map_dtype(pairs), copy=False)
    if np.isnan(scores).any():
        raise ValueError("anomaly maps contain NaN")
    k = math.ceil(fpr_limit * n_ok)
    if k < n_ok:  # only pixels above the score where FPR reaches the limit matter
        ok_scores = scores[region == 0]
        cutoff = np.partition(ok_scores, n_ok - k)[n_ok - k]  # the k-th largest defect-free score
        del ok_scores
        keep = scores >= cutoff
        scores, region = scores[keep], region[keep]
    order = np.argsort(-scores, kind="stable")
    s, r = scores[order], region[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    fpr = np.cumsum(r == 0)[last] / n_ok
    pro = np.cumsum(inverse_size[r])[last] / n_regions
    return np.r_[0.0, np.clip(fpr, 0, 1)], np.r_[0.0, np.clip(pro, 0, 1)]


def aupro(maps, masks, fpr_limit: float = 0.3) -> float:
    """Area under the PRO curve up to ``fpr_limit``, divided by ``fpr_limit`` (MVTec AD definition).

    nan when there is no defect region or no defect-free pixel.
    """
    if not 0 < fpr_limit <= 1:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    fpr, pro = pro_curve(maps, masks, fpr_limit)
    if fpr.size < 2:
        return math.nan
    return _trapezoid_to(fpr, pro, fpr_limit) / fpr_limit


def f1_max(scores, labels) -> tuple[float, float, float, float]:
    """Best F1 over thresholds: (f1, threshold, precision, recall); predictions are ``score >= threshold``.

    Among equal F1 the highest threshold wins. nan values when there is no positive, or no negative: every
    threshold then has precision 1, so F1 says nothing of false alarms, and a test set of defects alone gave
    "F1-max 1.000" at its lowest defect score, a threshold chosen without one good part (AUROC is undefined there
    too, and said so).
    """
    scores, labels = _check(scores, labels)
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == labels.size:
        return math.nan, math.nan, math.nan, math.nan
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tp = np.cumsum(y)[last].astype(np.float64)
    predicted = (last + 1).astype(np.float64)
    precision, recall = tp / predicted, tp / n_pos
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=tp > 0)
    best = int(np.argmax(f1))
    return float(f1[best]), float(s[last][best]), float(precision[best]), float(recall[best])


def _none_if_nan(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _pixel_metrics(maps, masks, select: np.ndarray) -> tuple[float | None, float | None]:
    sub_maps = [maps[i] for i in np.flatnonzero(select)]
    sub_masks = [masks[i] for i in np.flatnonzero(select)]
    if not any(m is not None and np.any(m) for m in sub_masks):
        return None, None
    return _none_if_nan(pixel_auroc(sub_maps, sub_masks)), _none_if_nan(aupro(sub_maps, sub_masks))


def _n_masked(masks, defects: np.ndarray) -> int:
    """How many of the ``defects`` (bool (N,)) have a known, non-empty mask: those the pixel metrics score."""
    return sum(1 for i in np.flatnonzero(defects) if masks[i] is not None and np.any(masks[i]))


def evaluate_scores(scores, labels, defect_types: Sequence[str], maps=None, masks=None) -> dict:
    """All metrics for one test set as a JSON-friendly dict.

    ``masks[i]`` None means unknown (skipped by pixel metrics), except for good
    images (label 0), whose mask is taken as all False. Pixel metrics are None
    when no image has a known defect region; ``n_masked`` counts the defect images they cover (of ``n_defect``).
    ``per_defect_type`` compares each type with the good images.

    Defect types whose label is ambiguous (``likely_*``, :func:`inspector.data.datasets.is_ambiguous`: ELPV's
    ``likely_defect``) are left out of the headline metrics, F1 and counts, as the benchmarks leave them out;
    their own ``per_defect_type`` row stays, ``left_out`` counts them per type, and
    ``image_auroc_with_left_out`` gives the image AUROC with them counted as defects.
    """
    from inspector.data.datasets import is_ambiguous

    scores, labels = _check(scores, labels)
    types = np.asarray(list(defect_types), dtype=object)
    if types.size != scores.size:
        raise ValueError(f"{scores.size} scores but {types.size} defect types")
    if masks is not None and maps is not None:
        if len(maps) != scores.size or len(masks) != scores.size:
            raise ValueError(f"{scores.size} scores but {len(maps)} maps and {len(masks)} masks")
        masks = [np.zeros(np.shape(maps[i]), dtype=bool) if (m is None and not labels[i]) else m
                 for i, m in enumerate(masks)]
    have_pixels = maps is not None and masks is not None
    left_out = labels & np.array([is_ambiguous(t) for t in types], dtype=bool)
    headline = ~left_out
    px_auroc, px_aupro = _pixel_metrics(maps, masks, headline) if have_pixels else (None, None)
    f1, threshold, _, _ = f1_max(scores[headline], labels[headline])
    result = {
        "image_auroc": _none_if_nan(auroc(scores[headline], labels[headline])),
        "pixel_auroc": px_auroc,
        "aupro": px_aupro,
        "f1_max": _none_if_nan(f1),
        "threshold_f1": _none_if_nan(threshold),
        "n_images": int(headline.sum()),
        "n_good": int((~labels).sum()),
        "n_defect": int((labels & headline).sum()),
        # defect images whose region is known: the pixel metrics cover these alone, which a headline over some
        # defect types only (the others unmasked) did not say
        "n_masked": _n_masked(masks, labels & headline) if have_pixels else 0,
        "per_defect_type": {},
    }
    if left_out.any():
        result["left_out"] = {str(t): int(((types == t) & left_out).sum()) for t in sorted(set(types[left_out]))}
        result["image_auroc_with_left_out"] = _none_if_nan(auroc(scores, labels))
    for name in sorted({str(t) for t, y in zip(types, labels) if y}):
        select = ~labels | ((types == name) & labels)
        entry = {"image_auroc": _none_if_nan(auroc(scores[select], labels[select])),
                 "pixel_auroc": None, "aupro": None, "n": int(((types == name) & labels).sum())}
        if have_pixels:
            entry["pixel_auroc"], entry["aupro"] = _pixel_metrics(maps, masks, select)
        result["per_defect_type"][name] = entry
    return result


def mask_coverage(metrics: dict) -> str | None:
    """One line saying which defect images the pixel metrics of ``metrics`` (:func:`evaluate_scores`) cover, when
    not all: a pixel AUROC over the masked defect types alone, shown in the row "all", read as the whole set's.
    None when every defect image has a mask, there is none, or ``metrics`` predate ``n_masked``."""
    n_defect, n_masked = metrics.get("n_defect") or 0, metrics.get("n_masked")
    if n_masked is None or n_masked >= n_defect:
        return None
    if n_masked == 0:
        return (f"pixel AUROC and AUPRO undefined: none of the {n_defect} defective image(s) has a usable mask "
                f"(ground_truth/<type>/<stem>_mask.png, not empty)")
    return (f"pixel AUROC and AUPRO cover {n_masked} of the {n_defect} defective image(s): the other "
            f"{n_defect - n_masked} have no usable mask (see per type)")


def one_class_line(metrics: dict) -> str | None:
    """One line saying which metrics of ``metrics`` (:func:`evaluate_scores`) are undefined because the headline
    test set holds one class only, and what the pixel metrics then cover; None when it holds both. A test set of
    defective images alone printed pixel metrics without a word that no good part was scored: the line, the
    log and metrics.json's ``warnings`` say so now (``evaluate``), and the report shows them."""
    n_good, n_defect = metrics.get("n_good", 0), metrics.get("n_defect", 0)
    counts = f"the test set has {n_good} good and {n_defect} defective image(s)"
    if n_good and n_defect:
        return None
    if not n_good:
        pixels = ("; the pixel AUROC and AUPRO rest on the defective images' own normal pixels alone, no good part's"
                  if metrics.get("pixel_auroc") is not None else "")
        return (f"image AUROC and F1-max undefined: no good test images were scored (test/good missing, empty or "
                f"unreadable: {counts}); both need good and defective parts{pixels}")
    return (f"image AUROC, F1-max, pixel AUROC and AUPRO undefined: no defective test images were scored "
            f"(no test/<defect type> images, or none readable: {counts}); they need good and defective parts")
