"""Evaluation plots: ROC curves, score histograms, heat-map overlays of the worst cases.

matplotlib is imported lazily and only through ``matplotlib.figure.Figure``
(Agg canvas), so no pyplot global state and no display are involved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from inspector.outputs import write_whole
from inspector.visual import encode_png, heatmap_overlay


def _figure(width: float = 5.0, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path) -> Path:
    """``fig`` as a PNG at ``path``, whole or not at all (:func:`inspector.outputs.write_whole`: savefig wrote in
    place, and a full disk part-way left a cut plot, or an earlier evaluation's half overwritten)."""
    import io

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_whole(path, buf.getvalue())
    return path


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray, float | None]], path: str | Path) -> Path:
    """One ROC curve per entry ``name: (fpr, tpr, auc)``; returns the written PNG path."""
    fig = _figure()
    ax = fig.add_subplot()
    for name, (fpr, tpr, auc) in curves.items():
        label = name if auc is None else f"{name} (AUROC {auc:.3f})"
        if not (np.isfinite(fpr).any() and np.isfinite(tpr).any()):
            # one class only (no good or no defective image): an empty axes with the name alone read as a plot
            label = f"{name}: undefined, the test set lacks good or defective images"
        ax.plot(fpr, tpr, label=label, linewidth=1.5)
    ax.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(loc="lower right", fontsize="small")
    return _save(fig, path)


def plot_score_histogram(scores, labels, path: str | Path, threshold: float | None = None) -> Path:
    """Histograms of good and defective image scores (shared bins), with an optional threshold line."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1).astype(bool)
    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot()
    finite = scores[np.isfinite(scores)]
    bins = np.histogram_bin_edges(finite, bins=min(40, max(5, finite.size // 3))) if finite.size else 10
    ax.hist(scores[~labels], bins=bins, alpha=0.6, label=f"good ({int((~labels).sum())})", color="tab:green")
    ax.hist(scores[labels], bins=bins, alpha=0.6, label=f"defect ({int(labels.sum())})", color="tab:red")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:.4g}")
    ax.set(xlabel="anomaly score", ylabel="images", title="Score distribution")
    ax.legend(fontsize="small")
    return _save(fig, path)


def _captioned(panel: np.ndarray, caption: str) -> np.ndarray:
    band = np.full((22, panel.shape[1], 3), 255, dtype=np.uint8)
    # Hershey fonts draw ASCII only, and OpenCV crashes the process (SIGSEGV) on a lone surrogate,
    # which is how Python spells a file name that is not valid UTF-8 (b"caf\xe9.png")
    text = caption.encode("ascii", "replace").decode("ascii")
    cv2.putText(band, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([band, panel])


_NAME_PART_BYTES = 80  # two parts and the kind, rank and score stay well inside NAME_MAX (255 bytes)


def _name_part(text: str) -> str:
    """``text`` as one part of an overlay's file name: letters (any script) and digits kept, '-', '_' and '.' too,
    anything else (a separator, a lone surrogate of an undecodable name) '_'; cut to 80 bytes of UTF-8."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    return safe.encode("utf-8")[:_NAME_PART_BYTES].decode("utf-8", "ignore")  # never half a character


def save_overlays(images: np.ndarray, maps: np.ndarray, scores, samples: Sequence, out_dir: str | Path,
                  k: int = 4, vmin: float | None = None, vmax: float | None = None) -> list[Path]:
    """Write image | heat-map overlay PNGs of the cases worth looking at.

    The ``k`` lowest-scored defective images (``missed_*``), the ``k``
    highest-scored good images (``false_alarm_*``) and the highest-scored
    defective image (``top_defect_*``); the score is in the file name and the
    caption. One colour scale (``vmin``..``vmax``, default: the maps' range) for all.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.array([int(s.label) for s in samples], dtype=bool)
    vmin = float(np.min(maps)) if vmin is None else vmin
    vmax = float(np.max(maps)) if vmax is None else vmax
    defect = np.flatnonzero(labels)[np.argsort(scores[labels], kind="stable")]
    good = np.flatnonzero(~labels)[np.argsort(-scores[~labels], kind="stable")]
    picks = [("missed", r, i) for r, i in enumerate(defect[:k])]
    picks += [("false_alarm", r, i) for r, i in enumerate(good[:k])]
    if defect.size:
        picks.append(("top_defect", 0, defect[-1]))
    written = []
    for kind, rank, i in picks:
        sample = samples[i]
        name = Path(sample.path).stem
        overlay = heatmap_overlay(images[i], maps[i], vmin, vmax)
        panel = _captioned(np.hstack([images[i], overlay]),
                           f"{kind} {sample.defect_type}/{name} score {scores[i]:.4g}")
        # names are cut: a long image or defect-folder name past NAME_MAX (255 bytes) lost the whole evaluation
        # ("File name too long"); the kind and rank keep the names apart
        path = out_dir / (f"{kind}_{rank:02d}_score{scores[i]:.4g}_{_name_part(sample.defect_type)}_"
                          f"{_name_part(name)}.png")
        write_whole(path, encode_png(panel))  # never a cut PNG
        written.append(path)
    return written
