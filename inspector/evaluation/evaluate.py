"""Evaluate a model on a dataset's test split: metrics.json, plots, overlays.

The scorer is any callable mapping a uint8 batch to ``(scores, maps)`` numpy
arrays, so the same code evaluates the torch model and a deployed backend.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from inspector.artifacts.frame_shapes import folder_watch, run_frame_shapes
from inspector.config import write_json
from inspector.contract import DEFAULT_BATCH, DEFAULT_DOWNSCALE
from inspector.data.datasets import enclosing_hint, is_ambiguous, load_batch, load_dataset, load_masks
from inspector.data.memory import EVALUATION_BYTES, require_image_memory
from inspector.errors import DataError
from inspector.leftovers import remove_leftovers
from inspector.outputs import named_as_outputs, new_folders_removed_on_failure, write_whole
from inspector.evaluation.eval_folder import CARD, claim_evaluation_folder, data_key, evaluated_data, install_evaluation
from inspector.evaluation.diagnostics import LevelScorer, level_aurocs, level_peaks, score_distribution
from inspector.evaluation.metrics import evaluate_scores, mask_coverage, one_class_line

log = logging.getLogger(__name__)
# the staging folder of a run of write_evaluation (pid of its process, then mkdtemp's random part)
STAGING = re.compile(r"\.evaluate-(\d+)-.*\.tmp\Z")
Scorer = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def score_images(scorer: Scorer, images: np.ndarray, batch_size: int = DEFAULT_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Run ``scorer`` over ``images`` in batches; maps returned as (N, h, w) float32.

    Outputs are always copied: backends may reuse their output buffers on the next call.
    """
    scores, maps = [], []
    for start in range(0, len(images), batch_size):
        s, m = scorer(images[start:start + batch_size])
        scores.append(np.array(s, dtype=np.float32).reshape(-1))
        maps.append(np.array(m, dtype=np.float32).reshape(len(scores[-1]), *np.shape(m)[-2:]))
    return np.concatenate(scores), np.concatenate(maps)


def backend_scorer(backend) -> Scorer:
    """A :data:`Scorer` running a deployed backend (see :mod:`inspector.backends`)."""
    def scorer(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        result = backend.infer(batch)
        return result.scores, result.maps

    return scorer


def write_metrics(out_dir: str | Path, metrics: dict) -> Path:
    """``<out_dir>/metrics.json``: strict JSON through :func:`inspector.config.write_json` (NaN/±inf → null)."""
    return write_json(Path(out_dir) / "metrics.json", metrics)


def evaluate_dataset(scorer: Scorer, data_root: str | Path, image_size: tuple[int, int], resize: str,
                     out_dir: str | Path, plots: bool = True, batch_size: int = DEFAULT_BATCH,
                     bit_depth: int | None = None, level_scorer: LevelScorer | None = None,
                     downscale: str = DEFAULT_DOWNSCALE, trained: dict | None = None, *,
                     tell_replaced: bool = True) -> dict:
    """Score the test split, compute metrics, write metrics.json (+ plots, overlays, report.html); return metrics.

    Raises :class:`DataError` when the dataset has no test images, none of them can be read, or they would not fit
    in memory (:func:`~inspector.data.memory.require_image_memory`); ConfigError, before any work, when ``out_dir``
    holds a file at one of the evaluation's names that an earlier evaluation did not write
    (:func:`~inspector.evaluation.eval_folder.claim_evaluation_folder`). The earlier evaluation in ``out_dir`` is
    replaced as a whole, after scoring (:mod:`inspector.evaluation.eval_folder`); ``metrics["data"]`` records the
    data set scored. An earlier evaluation of another data set replaced is warned of, unless ``tell_replaced`` is
    False: the caller says it (``inspector evaluate``'s last line; it was told there and in this warning, twice).

    ``level_scorer`` (torch models only: deployed graphs output the combined map)
    adds the per-level image AUROC to the diagnostics. ``downscale``: the model's
    method (:mod:`inspector.data.images`). ``trained``: the run's training data summary (its ``train_sha256`` and
    ``val_sha256``): test images the model was fitted on are warned of and counted in ``metrics["fitted_images"]``
    (a test split that shares images with train/good makes every metric optimistic, without a word before); each
    folder of test images unlike its training images (its ``image_sizes``: :mod:`inspector.artifacts.frame_shapes`)
    is warned of once, and the lines kept in ``metrics["warnings"]``.
    """
    claim_evaluation_folder(out_dir)  # before any work: a user's file at one of its names is refused, kept
    dataset = load_dataset(data_root)
    if not dataset.test:
        raise DataError(f"{data_root}: no test images (expected test/good and test/<defect> folders)"
                        f"{enclosing_hint(Path(data_root).expanduser())}")
    h, w = image_size
    require_image_memory(len(dataset.test), h, w, str(dataset.root), bytes_per_pixel=EVALUATION_BYTES,
                         what="test image(s)", advice="evaluate on a smaller test set")
    told: list[str] = []  # folders of images unlike the training images: their metrics mean little
    watch = folder_watch(run_frame_shapes(trained, (h, w), "of the run", retell=False), told)
    images, samples, skipped = load_batch(dataset.test, h, w, resize, bit_depth, downscale, on_size=watch)
    if not samples:  # every test image was skipped (each warned): there is nothing to score
        raise DataError(f"{dataset.root}: none of the {len(dataset.test)} test image(s) could be read "
                        f"(see the warnings above)")
    scores, maps = score_images(scorer, images, batch_size)
    labels = np.array([s.label for s in samples])
    types = [s.defect_type for s in samples]
    masks = load_masks(samples, h, w, resize)
    metrics = evaluate_scores(scores, labels, types, maps=maps, masks=masks)
    if one_class := one_class_line(metrics):  # the console's table says it too; the log and the files keep it
        log.warning("%s: %s", dataset.root, one_class)
        told.append(one_class)
    # the score distribution, level AUROCs and ROC plot describe the headline set (ambiguous labels left out)
    keep = np.array([not (s.label and is_ambiguous(s.defect_type)) for s in samples], dtype=bool)
    metrics.update(diagnostics(scores[keep], labels[keep], images[keep] if level_scorer else images, level_scorer,
                               batch_size))
    metrics["skipped_images"] = [str(s.path) for s, _ in skipped]
    metrics["fitted_images"] = _tell_fitted(samples, trained)
    metrics["warnings"] = told
    metrics["data"] = data_key(data_root)
    out_dir = Path(out_dir)
    earlier = evaluated_data(out_dir)
    write_evaluation(out_dir, metrics, scores, labels, samples, (images, maps) if plots else None, keep)
    if tell_replaced and earlier not in (None, metrics["data"]):
        log.warning("%s: replaced the evaluation of %s there", out_dir, earlier)
    return metrics


def _tell_fitted(samples: list, trained: dict | None) -> dict[str, int]:
    """``{"trained_on": n, "validated_on": n}`` of the test ``samples``, one warning when any (:func:`~inspector.
    evaluation.fitted.fitted_counts`)."""
    from inspector.evaluation.fitted import fitted_counts, fitted_line

    counts = fitted_counts(samples, {"training": {"data": trained or {}}})
    line = fitted_line(counts, len(samples), "test image(s)", "the metrics on them are optimistic; evaluate on "
                       "images kept out of training")
    if line:
        log.warning("%s", line)
    return {"trained_on": counts[0], "validated_on": counts[1]}


def write_evaluation(out_dir: Path, metrics: dict, scores: np.ndarray, labels: np.ndarray, samples: list,
                     pictures: tuple[np.ndarray, np.ndarray] | None, keep: np.ndarray | None = None) -> None:
    """Write one evaluation into ``out_dir``, replacing the earlier one there all or none: written whole into a
    hidden staging folder beside its files, then moved in (:func:`~inspector.evaluation.eval_folder.
    install_evaluation`), ``metrics.json`` last, listing the others (``files``). ``pictures``: the test images
    (N, H, W, 3 uint8) and maps (N, h, w float32) for the plots, overlays and report; None: none of them.
    Only now, after scoring: a failed evaluation leaves the earlier one whole, and no folder it made. OSError
    naming the file of ``out_dir`` that could not be written."""
    own = claim_evaluation_folder(out_dir)  # again: minutes of scoring went by
    with new_folders_removed_on_failure(out_dir):  # a failed write leaves no empty --out folder behind
        out_dir.mkdir(parents=True, exist_ok=True)
        # an evaluation killed mid-write (SIGKILL, OOM) left its staging folder: its pid in the name tells it is gone
        remove_leftovers(out_dir, STAGING, folders=True)
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".evaluate-{os.getpid()}-", suffix=".tmp", dir=out_dir))
        except OSError as exc:  # named by its random name, which the user never gave
            raise OSError(exc.errno, exc.strerror, str(out_dir)) from exc
        try:
            with named_as_outputs(staging, out_dir):  # an error names out/metrics.json, not the staging folder's
                _stage_evaluation(staging, out_dir, metrics, scores, labels, samples, pictures, keep)
                new = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
                install_evaluation(out_dir, staging, new, own)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _stage_evaluation(staging: Path, out_dir: Path, metrics: dict, scores: np.ndarray, labels: np.ndarray,
                      samples: list, pictures: tuple[np.ndarray, np.ndarray] | None, keep: np.ndarray | None) -> None:
    """Write the evaluation's files into ``staging`` (:func:`write_evaluation`), ``metrics.json`` last, listing the
    others (``files``)."""
    from inspector.evaluation.reports import evaluation_report

    write_metrics(staging, metrics)
    write_scores(staging / "scores.npz", scores, labels, [str(s.path) for s in samples])
    if pictures is not None:
        write_plots(staging, *pictures, scores, labels, samples, metrics, keep)
        evaluation_report(staging, subtitle=str(out_dir))
    new = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    write_metrics(staging, {**metrics, "files": [name for name in new if name != CARD]})


def diagnostics(scores: np.ndarray, labels: np.ndarray, images: np.ndarray,
                level_scorer: LevelScorer | None, batch_size: int) -> dict:
    """``score_distribution`` (good vs defective) and ``per_level`` (image AUROC per level map, or None)."""
    out = {"score_distribution": score_distribution(scores, labels), "per_level": None}
    if level_scorer is not None:
        out["per_level"] = level_aurocs(level_peaks(level_scorer, images, batch_size), labels)
    return out


def write_scores(path: Path, scores: np.ndarray, labels: np.ndarray, files: list[str]) -> None:
    """``scores.npz``: ``scores`` (N float), ``labels`` (N int, 1 = defect) and ``files`` (N str), whole or not at
    all (:func:`inspector.outputs.write_whole`): np.savez wrote in place, and a full disk part-way left a cut
    archive that numpy refuses (BadZipFile), or an earlier evaluation's half overwritten."""
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, scores=scores, labels=labels, files=np.array(files))
    write_whole(path, buf.getvalue())


def write_plots(out_dir: Path, images, maps, scores, labels, samples, metrics, keep=None) -> None:
    """ROC and score histogram of the headline images (``keep``, bool (N,); None: all), overlays of every one."""
    from inspector.evaluation.metrics import roc_curve
    from inspector.evaluation.plots import plot_roc, plot_score_histogram, save_overlays

    keep = np.ones(len(scores), dtype=bool) if keep is None else keep
    fpr, tpr, _ = roc_curve(scores[keep], labels[keep])
    plot_roc({"image": (fpr, tpr, metrics["image_auroc"])}, out_dir / "roc.png")
    plot_score_histogram(scores[keep], labels[keep], out_dir / "score_histogram.png",
                         threshold=metrics.get("threshold_f1"))
    save_overlays(images, maps, scores, samples, out_dir / "overlays")


def format_table(metrics: dict) -> str:
    """A plain-text table of the headline metrics and the per-defect-type breakdown."""
    def fmt(v):
        return "   —  " if v is None else f"{v:6.3f}"

    lines = [f"{'':16} {'img AUROC':>9} {'px AUROC':>9} {'AUPRO':>7} {'n':>5}",
             f"{'all':16} {fmt(metrics['image_auroc']):>9} {fmt(metrics['pixel_auroc']):>9} "
             f"{fmt(metrics['aupro']):>7} {metrics['n_images']:>5}"]
    for name, m in sorted(metrics.get("per_defect_type", {}).items()):
        lines.append(f"{name:16} {fmt(m.get('image_auroc')):>9} {fmt(m.get('pixel_auroc')):>9} "
                     f"{fmt(m.get('aupro')):>7} {m.get('n', 0):>5}")
    if metrics.get("left_out"):  # ambiguous labels: their own rows only, as in the benchmarks
        with_them = metrics.get("image_auroc_with_left_out")
        lines.append(f"left out of 'all' (ambiguous label): "
                     + ", ".join(f"{name} {n}" for name, n in metrics["left_out"].items())
                     + (f"; image AUROC with them as defects {with_them:.3f}" if with_them is not None else ""))
    coverage = mask_coverage(metrics)
    if coverage:
        lines.append(coverage)
    if one_class := one_class_line(metrics):  # AUROC, AUPRO and F1 need both classes: undefined, and said so
        lines.append(one_class)
    elif metrics.get("f1_max") is None or metrics.get("threshold_f1") is None:
        lines.append(f"F1-max undefined: the test set has {metrics.get('n_good', 0)} good and "
                     f"{metrics.get('n_defect', 0)} defective image(s); image AUROC and F1 need both")
    else:
        lines.append(f"F1-max {metrics['f1_max']:.3f} at threshold {metrics['threshold_f1']:.5g}")
    return "\n".join(lines)
