"""The precision gate: a reduced-precision candidate against the FP32 reference.

``inspector verify CANDIDATE --reference FP32.onnx --data DIR`` runs the
candidate (a TensorRT engine, an FP16 ONNX or a Q/DQ INT8 ONNX — anything
:func:`inspector.backends.load_backend` opens) and the FP32 reference on the
same reference images and fails when

* the candidate produces NaN or Inf anywhere (scores or maps);
* a decision flips: the candidate and the reference disagree on
  ``score ≥ threshold`` for some image, at the calibrated threshold
  (``--threshold-file calibration/<model>.yaml`` or ``--threshold``);
* the scores differ by more than the score tolerance, relative to the
  reference's score scale: ``max|Δscore| / max|score_ref|``;
* the maps differ by more than the map tolerance: for each image the 99th
  percentile of ``|Δmap|``, worst image, relative to ``max|map_ref|``.

Default tolerances depend on the candidate's precision (:data:`DEFAULT_TOLERANCES`).
The JSON report is written next to the candidate (``<candidate>.verify.json``).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from inspector.artifacts.frame_shapes import backend_frame_shapes, folder_watch
from inspector.artifacts.thresholds import recalibrate_hint
from inspector.artifacts.engine_card import verify_report_path
from inspector.config import json_safe
from inspector.contract import DEFAULT_BATCH
from inspector.errors import ConfigError, DataError, InspectorError
from inspector.outputs import new_folders_removed_on_failure, write_whole

log = logging.getLogger(__name__)

REPORT_SCHEMA_VERSION = 1
# precision → (score tolerance, map tolerance), both relative to the reference's scale.
DEFAULT_TOLERANCES = {"fp32": (1e-3, 5e-3), "fp16": (0.02, 0.05), "int8": (0.10, 0.15)}


@dataclass(frozen=True)
class Tolerances:
    score: float
    map: float

    @classmethod
    def for_precision(cls, precision: str, score: float | None = None, map: float | None = None) -> "Tolerances":
        default_score, default_map = DEFAULT_TOLERANCES.get(precision, DEFAULT_TOLERANCES["int8"])
        return cls(score if score is not None else default_score, map if map is not None else default_map)


@dataclass
class _Accumulator:
    """Per-image statistics gathered batch by batch (maps are not kept)."""

    names: list[str] = field(default_factory=list)
    cand_scores: list[float] = field(default_factory=list)
    ref_scores: list[float] = field(default_factory=list)
    map_p99: list[float] = field(default_factory=list)
    map_max: list[float] = field(default_factory=list)
    ref_map_absmax: float = 0.0
    nonfinite: list[str] = field(default_factory=list)
    ref_nonfinite: list[str] = field(default_factory=list)

    def add(self, names: Sequence[str], cand, ref) -> None:
        if cand.maps.shape != ref.maps.shape:
            raise InspectorError(f"candidate maps {cand.maps.shape[1:]} and reference maps {ref.maps.shape[1:]} "
                                 "differ in shape: not the same model")
        for i, name in enumerate(names):
            c_map, r_map = cand.maps[i], ref.maps[i]
            c_ok = bool(np.isfinite(cand.scores[i]) and np.isfinite(c_map).all())
            r_ok = bool(np.isfinite(ref.scores[i]) and np.isfinite(r_map).all())
            if not c_ok:
                self.nonfinite.append(name)
            if not r_ok:
                self.ref_nonfinite.append(name)
            self.names.append(name)
            self.cand_scores.append(float(cand.scores[i]))
            self.ref_scores.append(float(ref.scores[i]))
            if c_ok and r_ok:
                diff = np.abs(c_map.astype(np.float64) - r_map.astype(np.float64)).ravel()
                self.map_p99.append(float(np.percentile(diff, 99)))
                self.map_max.append(float(diff.max()))
                self.ref_map_absmax = max(self.ref_map_absmax, float(np.abs(r_map).max()))
            else:
                self.map_p99.append(math.nan)
                self.map_max.append(math.nan)


def reference_samples(data: str | Path, limit: int | None = None):
    """The images to compare on: a dataset's test split (good and defective), else its train images."""
    from inspector.data.datasets import load_dataset

    dataset = load_dataset(data)
    samples = list(dataset.test) or list(dataset.train)
    if limit is not None and len(samples) > limit:
        picks = np.linspace(0, len(samples) - 1, limit).round().astype(int)
        samples = [samples[i] for i in sorted(set(picks.tolist()))]
    if not samples:
        raise DataError(f"{data}: no reference images")
    return samples


def _threshold_from(threshold: float | None, threshold_file: str | Path | None) -> tuple[float | None, str | None,
                                                                                     Any]:
    """(image threshold, where it came from, the calibration file it came from or None)."""
    if threshold is not None and threshold_file is not None:  # the file was silently ignored
        raise ConfigError(f"threshold: give --threshold {threshold:g} or --threshold-file {threshold_file}, not both",
                          field="threshold")
    if threshold is not None:
        return float(threshold), "--threshold", None
    if threshold_file is not None:
        from inspector.artifacts.thresholds import read_thresholds

        thresholds = read_thresholds(threshold_file)
        return float(thresholds.image_threshold), str(threshold_file), thresholds
    return None, None, None


def _refuse_another_models_threshold(threshold_file: str | Path | None, made_for: str | None,
                                     graphs: dict[Path, Any]) -> None:
    """ConfigError unless the calibration file was made for one of the compared ``graphs`` (path → backend).

    Rule: a calibration file is bound to the sha256 of the model file it was made with, as ``predict`` and
    the daemon check (:func:`inspector.artifacts.thresholds.load_thresholds`); either graph qualifies here,
    since the FP32 reference and a reduced-precision candidate each get their own calibration. Unchecked,
    the flip check ran at another model's threshold and the gate passed, exit 0.
    """
    if threshold_file is None or made_for is None:
        return
    shas = {getattr(backend, "sha256", None) for backend in graphs.values()}
    if made_for not in shas:
        names = " nor ".join(str(p) for p in graphs)
        raise ConfigError(f"{threshold_file}: calibration was made for another model (sha256 {made_for[:12]}…), not "
                          f"{names}; calibrate it with: {recalibrate_hint(list(graphs)[-1], threshold_file)}",
                          field="threshold_file")


def _describe(backend, path: Path) -> dict[str, Any]:
    return {"path": str(path), "backend": getattr(backend, "name", "?"),
            "precision": getattr(backend, "precision", "?"), "sha256": getattr(backend, "sha256", None)}


def _warn_batch_coverage(calibration, threshold_file: str | Path, graphs: dict[Path, Any], batch: int) -> None:
    """One warning when the calibration's threshold, whose decisions are compared, was not checked at the batch
    size both graphs are run at here (``batch``, capped by their maximum as :func:`compare` caps it): its good
    images just below it may cross it at that size
    (:func:`inspector.artifacts.thresholds.batch_coverage_warning`)."""
    from inspector.artifacts.thresholds import batch_coverage_warning

    model = next((path for path, backend in graphs.items()
                  if getattr(backend, "sha256", None) == calibration.model.sha256), list(graphs)[-1])
    step = max(1, min(b for b in (batch, *(g.input_spec.max_batch for g in graphs.values())) if b))
    line = batch_coverage_warning(calibration, threshold_file, model, step, "--batch")
    if line:
        log.warning("%s", line)


def compare(cand_backend, ref_backend, samples, batch: int = DEFAULT_BATCH,
            on_size=None) -> tuple[_Accumulator, list]:
    """Run both backends over ``samples`` batch by batch; returns the statistics and skipped images. ``on_size``:
    called with each image read and its own height and width (:func:`inspector.data.datasets.load_batch`)."""
    from inspector.data.datasets import load_batch, none_readable

    spec, ref_spec = cand_backend.input_spec, ref_backend.input_spec
    if (spec.height, spec.width) != (ref_spec.height, ref_spec.width):
        raise InspectorError(f"candidate input {spec.height}×{spec.width} differs from the reference's "
                             f"{ref_spec.height}×{ref_spec.width}: not the same model")
    limits = [b for b in (batch, spec.max_batch, ref_spec.max_batch) if b]
    step = max(1, min(limits))
    prep = ref_spec  # the reference model's preprocessing (the candidate must have been built from it)
    acc, skipped = _Accumulator(), []
    for start in range(0, len(samples), step):
        images, kept, bad = load_batch(samples[start:start + step], spec.height, spec.width, prep.resize, prep.bit_depth,
                                       prep.downscale, on_size=on_size)
        skipped += [(str(s.path), reason) for s, reason in bad]
        if not kept:
            continue
        cand = cand_backend.infer(images)
        cand.scores, cand.maps = cand.scores.copy(), cand.maps.copy()  # backends may reuse output buffers
        ref = ref_backend.infer(images)
        acc.add([str(s.path) for s in kept], cand, ref)
    if not acc.names:
        raise none_readable(samples, "reference image(s)")
    return acc, skipped


def judge(acc: _Accumulator, tolerances: Tolerances, threshold: float | None) -> dict[str, Any]:
    """Metrics and the pass/fail decision from the gathered statistics (pure)."""
    c, r = np.asarray(acc.cand_scores), np.asarray(acc.ref_scores)
    failures: list[str] = []
    if acc.nonfinite:
        failures.append(f"candidate produced NaN/Inf on {len(acc.nonfinite)} image(s), e.g. {acc.nonfinite[0]}")
    if acc.ref_nonfinite:
        failures.append(f"the reference produced NaN/Inf on {len(acc.ref_nonfinite)} image(s), e.g. {acc.ref_nonfinite[0]}")
    finite = np.isfinite(c) & np.isfinite(r)
    score_scale = float(np.abs(r[finite]).max()) if finite.any() else 0.0
    score_abs = np.abs(c - r)
    score_max_abs = float(score_abs[finite].max()) if finite.any() else math.nan
    score_rel = score_max_abs / score_scale if score_scale > 0 else (0.0 if score_max_abs == 0 else math.inf)
    p99 = np.asarray(acc.map_p99)
    map_scale = acc.ref_map_absmax
    valid = np.isfinite(p99)
    map_p99_abs = float(p99[valid].max()) if valid.any() else math.nan
    map_max_abs = float(np.nanmax(acc.map_max)) if valid.any() else math.nan
    map_rel = map_p99_abs / map_scale if map_scale > 0 else (0.0 if map_p99_abs == 0 else math.inf)
    if not score_rel <= tolerances.score:
        failures.append(f"score difference {score_rel:.4g} (relative to max |score_ref| {score_scale:.4g}) "
                        f"exceeds the tolerance {tolerances.score:g}")
    if not map_rel <= tolerances.map:
        failures.append(f"map difference {map_rel:.4g} (p99 |Δmap|, worst image, relative to max |map_ref| "
                        f"{map_scale:.4g}) exceeds the tolerance {tolerances.map:g}")
    decision: dict[str, Any] = {"checked": threshold is not None, "threshold": threshold, "flips": []}
    if threshold is not None:
        flips = [i for i in range(len(c)) if finite[i] and (c[i] >= threshold) != (r[i] >= threshold)]
        decision["flips"] = [{"image": acc.names[i], "candidate": float(c[i]), "reference": float(r[i])}
                             for i in flips]
        decision["ng_reference"] = int((r >= threshold).sum())
        decision["ng_candidate"] = int((c >= threshold).sum())
        if flips:
            failures.append(f"{len(flips)} decision flip(s) at threshold {threshold:g}, e.g. {acc.names[flips[0]]} "
                            f"(candidate {c[flips[0]]:.5g}, reference {r[flips[0]]:.5g})")
    worst = np.argsort(-np.where(finite, score_abs, np.inf))[:10]
    return {
        "passed": not failures,
        "failures": failures,
        "metrics": {
            "images": len(acc.names),
            "nonfinite_images": acc.nonfinite,
            "score_scale": score_scale,
            "score_max_abs_diff": score_max_abs,
            "score_rel_diff": score_rel,
            "score_mean_abs_diff": float(score_abs[finite].mean()) if finite.any() else math.nan,
            "map_scale": map_scale,
            "map_p99_abs_diff": map_p99_abs,
            "map_max_abs_diff": map_max_abs,
            "map_rel_diff": map_rel,
        },
        "decision": decision,
        "worst_images": [{"image": acc.names[i], "candidate": float(c[i]), "reference": float(r[i]),
                          "map_p99_abs_diff": float(acc.map_p99[i])} for i in worst],
    }


def verify(candidate: str | Path, reference: str | Path, data: str | Path, *,
           threshold: float | None = None, threshold_file: str | Path | None = None,
           score_tolerance: float | None = None, map_tolerance: float | None = None,
           batch: int = DEFAULT_BATCH, limit: int | None = None, report_path: str | Path | None = None,
           candidate_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the gate; write the JSON report (beside the candidate by default) and return it."""
    from inspector.backends import load_backend

    candidate, reference = Path(candidate), Path(reference)
    thr, thr_source, calibration = _threshold_from(threshold, threshold_file)
    samples = reference_samples(data, limit)
    with load_backend(candidate, **(candidate_options or {})) as cand_backend, \
            load_backend(reference, backend="onnxruntime") as ref_backend:
        graphs = {candidate: cand_backend, reference: ref_backend}
        if calibration is not None:
            _refuse_another_models_threshold(threshold_file, calibration.model.sha256, graphs)
            _warn_batch_coverage(calibration, threshold_file, graphs, batch)
        if getattr(ref_backend, "precision", "fp32") != "fp32":
            raise InspectorError(f"{reference}: the reference must be the FP32 graph, this one is {ref_backend.precision}")
        tolerances = Tolerances.for_precision(getattr(cand_backend, "precision", "int8"), score_tolerance,
                                              map_tolerance)
        # a gate passed on images unlike the model's training images says little of the frames it will see
        told: list[str] = []
        watch = folder_watch(backend_frame_shapes(ref_backend, str(reference), retell=False), told)
        acc, skipped = compare(cand_backend, ref_backend, samples, batch, on_size=watch)
        verdict = judge(acc, tolerances, thr)
        report = {
            "schema_version": REPORT_SCHEMA_VERSION,
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "passed": verdict.pop("passed"),
            "failures": verdict.pop("failures"),
            "candidate": _describe(cand_backend, candidate),
            "reference": _describe(ref_backend, reference),
            "data": {"path": str(data), "images": len(acc.names), "skipped": skipped},
            "threshold_source": thr_source,
            "tolerances": asdict(tolerances),
            "warnings": told,
            **verdict,
        }
    if thr is None:
        log.warning("no threshold given (--threshold-file/--threshold): the decision-flip check was skipped")
    path = Path(report_path) if report_path else verify_report_path(candidate)
    with new_folders_removed_on_failure(path.parent):  # a report that cannot be written leaves no new folder
        path.parent.mkdir(parents=True, exist_ok=True)
        write_whole(path, (json.dumps(json_safe(report), indent=2) + "\n").encode("utf-8"))  # never half a report
    report["report_path"] = str(path)
    return report


def is_verify_report(raw: bytes) -> bool:
    """Whether ``raw`` (a file's bytes) is a report :func:`verify` wrote: a JSON object with its keys (for
    :func:`inspector.outputs.claim_file`: ``verify --report`` replaces only one of these)."""
    data = json.loads(raw)
    return isinstance(data, dict) and {"schema_version", "passed", "candidate", "reference", "tolerances"} <= set(data)


def format_report(report: dict[str, Any]) -> str:
    """A few human lines for the CLI."""
    m = report["metrics"]
    d = report["decision"]
    lines = [
        f"{'PASS' if report['passed'] else 'FAIL'}: {report['candidate']['path']} ({report['candidate']['backend']}, "
        f"{report['candidate']['precision']}) vs {report['reference']['path']} on {m['images']} image(s)",
        f"  score: max |Δ| {m['score_max_abs_diff']:.4g} = {m['score_rel_diff']:.3g} of scale "
        f"(tolerance {report['tolerances']['score']:g})",
        f"  map:   p99 |Δ| {m['map_p99_abs_diff']:.4g} = {m['map_rel_diff']:.3g} of scale "
        f"(tolerance {report['tolerances']['map']:g}); max |Δ| {m['map_max_abs_diff']:.4g}",
        (f"  decisions at {d['threshold']:g}: {len(d['flips'])} flip(s)" if d["checked"]
         else "  decisions: not checked (no threshold given)"),
    ]
    lines += [f"  ✗ {f}" for f in report["failures"]]
    lines.append(f"  report: {report.get('report_path')}")
    return "\n".join(lines)
