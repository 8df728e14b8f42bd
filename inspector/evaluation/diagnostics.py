"""Diagnostics for users: how good and defective scores are distributed, and which levels carry the signal.

A low AUROC has two different causes a user must tell apart: the model does not
separate the classes (the distributions overlap), or it does and only the
threshold is wrong. :func:`score_distribution` shows the two score
distributions and how much they overlap; with no defective test images it
still reports the good-score spread. :func:`level_aurocs` gives the image AUROC
of each level's map alone (models with ``named_level_maps``).

Everything here is JSON-friendly (plain floats, None for undefined).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from inspector.contract import DEFAULT_BATCH
from inspector.evaluation.metrics import auroc

PERCENTILES = (5, 50, 95)
# Maps a uint8 batch (N, H, W, 3) to {level name: per-image peak of that level's map (N,)}.
LevelScorer = Callable[[np.ndarray], dict[str, np.ndarray]]


def score_stats(scores: np.ndarray) -> dict | None:
    """count, mean, std (population), min, p5, p50, p95, max of ``scores``; None when empty."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.size == 0:
        return None
    p5, p50, p95 = np.percentile(scores, PERCENTILES)
    return {"count": int(scores.size), "mean": float(scores.mean()), "std": float(scores.std()),
            "min": float(scores.min()), "p5": float(p5), "p50": float(p50), "p95": float(p95),
            "max": float(scores.max())}


def overlap(good: np.ndarray, defect: np.ndarray) -> dict:
    """How much defective and good image scores overlap (both non-empty; higher score = more anomalous).

    - ``defect_below_good_p95``: fraction of defective images scoring below the good p95, i.e. missed by a
      threshold that flags 5 % of good images;
    - ``defect_below_good_max``: fraction missed by the lowest threshold with no false alarm on these images;
    - ``good_above_defect_p5``: fraction of good images above the defective p5;
    - ``separation``: (mean defect − mean good) / pooled std (Cohen's d); ≲ 1 means heavy overlap;
      None when both classes have zero spread (undefined, and JSON has no infinity).
    """
    p95, top = np.percentile(good, 95), good.max()
    pooled = math.sqrt((good.var() + defect.var()) / 2)
    gap = float(defect.mean() - good.mean())
    return {"defect_below_good_p95": float((defect < p95).mean()),
            "defect_below_good_max": float((defect <= top).mean()),
            "good_above_defect_p5": float((good > np.percentile(defect, 5)).mean()),
            "separation": gap / pooled if pooled > 0 else None}


def score_distribution(scores, labels) -> dict:
    """``{"good": stats|None, "defect": stats|None, "overlap": dict|None}`` of image scores.

    ``labels``: 1 = defective, 0 = good. With one class missing, ``overlap`` is None and the
    stats of the class present still describe its spread (e.g. a test set with no defects yet).
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1).astype(bool)
    good, defect = scores[~labels], scores[labels]
    result = {"good": score_stats(good), "defect": score_stats(defect), "overlap": None}
    if good.size and defect.size:
        result["overlap"] = overlap(good, defect)
    return result


def level_peaks(level_scorer: LevelScorer, images: np.ndarray, batch_size: int = DEFAULT_BATCH) -> dict[str, np.ndarray]:
    """Run ``level_scorer`` over ``images`` in batches: {level: per-image peak (N,) float64}."""
    peaks: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(images), batch_size):
        for name, values in level_scorer(images[start:start + batch_size]).items():
            peaks.setdefault(name, []).append(np.asarray(values, dtype=np.float64).reshape(-1))
    return {name: np.concatenate(parts) for name, parts in peaks.items()}


def level_aurocs(peaks: dict[str, np.ndarray], labels) -> dict[str, float | None]:
    """Image AUROC of each level's map alone (image score = the map's maximum); None if undefined."""
    labels = np.asarray(labels).reshape(-1).astype(bool)
    out = {}
    for name, values in peaks.items():
        value = auroc(values, labels) if labels.any() and not labels.all() else math.nan
        out[name] = None if math.isnan(value) else float(value)
    return out


def format_diagnostics(metrics: dict) -> str:
    """Plain-text lines for the terminal: score distribution per class, overlap, per-level AUROC."""
    dist = metrics.get("score_distribution") or {}
    lines = [f"{'scores':16} {'n':>5} {'mean':>9} {'std':>9} {'p5':>9} {'p50':>9} {'p95':>9} {'max':>9}"]
    for name in ("good", "defect"):
        s = dist.get(name)
        if s:
            lines.append(f"{name:16} {s['count']:>5} " + " ".join(f"{s[k]:9.4g}" for k in
                                                                 ("mean", "std", "p5", "p50", "p95", "max")))
    ov = dist.get("overlap")
    if ov:
        d = "—" if ov["separation"] is None else f"{ov['separation']:.2f}"
        lines.append(f"overlap: {ov['defect_below_good_p95']:.0%} of defective images score below the good p95, "
                     f"{ov['defect_below_good_max']:.0%} at or below the good max; separation (Cohen's d) {d}")
    elif dist.get("good") and not dist.get("defect"):
        lines.append("no defective test images: only the good-score spread is known (a threshold at the good p95 "
                     "flags ~5 % of good parts)")
    levels = metrics.get("per_level") or {}
    if levels:
        cells = ", ".join(f"{name} {'—' if v is None else f'{v:.3f}'}" for name, v in levels.items())
        lines.append(f"image AUROC per level (each level's map alone): {cells}")
    return "\n".join(lines)
