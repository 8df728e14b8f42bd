"""The calibration file: thresholds bound to the exact model that was scored.

``calibration/<model>.yaml`` (schema_version 1)::

    schema_version: 1
    model: {name: rs-brick, sha256: <hex of the graph/engine file>, precision: fp16, backend: tensorrt}
    image_threshold: 0.42          # score ≥ this → NG
    pixel_threshold: 0.35          # map ≥ this → defect region
    uncertain_band: [0.38, 0.47]   # optional: scores in [lo, hi) → "uncertain"; null when unused
    rule: false_alarm_rate=0.001   # how the threshold was chosen
    data: {good: …, image_rule: …, batch_check: …}   # what was scored and how (CalibrationData)
    score_stats: {mean: …, std: …, min: …, max: …, p50: …, p99: …, n: …}   # of the good scores

The scores of FP16/INT8 graphs and TensorRT engines differ from FP32, so the
file records the sha256 of the file that produced the scores and
:func:`load_thresholds` refuses it for any other model file, naming the
command that recreates it. This module only reads, validates and writes the
file; choosing thresholds is ``inspector calibrate``'s job.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inspector.artifacts.calibration_data import CalibrationData
from inspector.config import bounded, from_file_dict, load_yaml, to_dict, yaml_dump, yaml_load
from inspector.errors import ConfigError
from inspector.outputs import new_folders_removed_on_failure, write_whole

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ModelBinding:
    """Which model file the thresholds were computed with."""

    name: str
    sha256: str
    precision: str = "fp32"
    backend: str = "onnxruntime"


@dataclass(frozen=True)
class ScoreStats:
    """Statistics of the good-image scores the thresholds were chosen on."""

    mean: float = bounded()
    std: float = bounded(ge=0)
    min: float = bounded()
    max: float = bounded()
    p50: float = bounded()
    p99: float = bounded()
    n: int = bounded(ge=1, le=10**12)


@dataclass(frozen=True)
class Thresholds:
    """A validated calibration file."""

    model: ModelBinding
    image_threshold: float = bounded()
    pixel_threshold: float = bounded()
    rule: str = "manual"
    uncertain_band: tuple[float, float] | None = bounded(None)
    data: CalibrationData = field(default_factory=CalibrationData)
    score_stats: ScoreStats | None = None
    schema_version: int = bounded(SCHEMA_VERSION, ge=1, le=10**6)  # validate() names the supported one

    def validate(self, where: str) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise ConfigError(f"{where}: unsupported schema_version {self.schema_version} (expected {SCHEMA_VERSION})")
        for key in ("image_threshold", "pixel_threshold"):
            if not math.isfinite(getattr(self, key)):
                raise ConfigError(f"{where}.{key}: must be a finite number")
        if self.uncertain_band is not None:
            lo, hi = self.uncertain_band
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= self.image_threshold <= hi and lo < hi):
                raise ConfigError(f"{where}.uncertain_band: [{lo}, {hi}] must satisfy lo ≤ image_threshold "
                                  f"({self.image_threshold}) ≤ hi and lo < hi")
        if len(self.model.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.model.sha256):
            raise ConfigError(f"{where}.model.sha256: expected 64 lowercase hex digits")


def score_stats(scores) -> ScoreStats:
    """Summary statistics of a set of good-image scores."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError("score_stats: no scores")
    return ScoreStats(mean=float(s.mean()), std=float(s.std()), min=float(s.min()), max=float(s.max()),
                      p50=float(np.percentile(s, 50)), p99=float(np.percentile(s, 99)), n=int(s.size))


def read_thresholds(path: str | Path) -> Thresholds:
    """Load and validate a calibration file (one-line ConfigError naming the file on any problem)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: calibration file not found (create it with 'inspector calibrate')")
    data = load_yaml(path, "calibration file")
    if not data:  # an empty file (or '{}'), e.g. a copy cut short: "its keys: " named none
        raise ConfigError(f"{path}: calibration file is empty; make one with 'inspector calibrate'")
    if isinstance(data, dict) and not _CALIBRATION_KEYS & set(data):
        # another file (a run's config.yaml, a daemon config, the model card export wrote, which has a
        # schema_version and a model too) was named: say that, not "unknown key 'train'" or "unknown key 'input'"
        keys = ", ".join(map(str, list(data)[:4])) + (" …" if len(data) > 4 else "")
        raise ConfigError(f"{path}: not a calibration file (no image_threshold; its keys: {keys}); make one "
                          f"with 'inspector calibrate'")
    return from_file_dict(Thresholds, data, path)


# keys only a calibration file has: one of them makes a file a calibration, told key by key what is wrong in it
# (a typo'd image_threshold: "did you mean"); with none it is another file, told as one
_CALIBRATION_KEYS = {"image_threshold", "pixel_threshold", "rule", "uncertain_band", "score_stats"}


def is_calibration(raw: bytes) -> bool:
    """Whether ``raw`` (a file's bytes) is a calibration file :func:`write_thresholds` wrote: a YAML mapping with
    its keys (for :func:`inspector.outputs.claim_file`: ``calibrate --out`` replaces only one of these)."""
    data = yaml_load(raw.decode("utf-8"))
    return isinstance(data, dict) and {"schema_version", "model", "image_threshold", "pixel_threshold"} <= set(data)


def write_thresholds(thresholds: Thresholds, path: str | Path) -> Path:
    """Write ``thresholds`` as YAML (schema_version first); returns the path. Raises ConfigError (one line
    naming ``path`` and the key) where :func:`read_thresholds` would refuse what it holds."""
    data = to_dict(thresholds)
    from_file_dict(Thresholds, data, path)  # checked as it will be read: never a file the daemon then refuses
    ordered = {"schema_version": data.pop("schema_version"), "model": data.pop("model")}
    ordered.update(data)
    path = Path(path)
    try:
        with new_folders_removed_on_failure(path.parent):  # a calibration that cannot be written leaves no new folder
            path.parent.mkdir(parents=True, exist_ok=True)
            # UTF-8, not \u escapes (paths, notes); whole or not at all: written in place, a stop (SIGTERM, Ctrl-C)
            # or a full disk part-way left half a calibration over the one a daemon config names
            write_whole(path, yaml_dump(ordered).encode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the calibration file ({exc.strerror or exc})") from None
    return path


def calibration_name(model_path: str | Path) -> str:
    """The file name of a model file's calibration: ``export/rs-brick.fp16.onnx`` → ``rs-brick.fp16.yaml`` (one
    calibration per deployed model file: an FP32 graph, its FP16 copy and an INT8 one each have their own)."""
    return f"{Path(model_path).stem}.yaml"


def recalibrate_hint(model_path: str | Path, found: str | Path) -> str:
    """What to type to calibrate ``model_path`` when the calibration ``found`` is another model's: a file of its
    own beside it (:func:`calibration_name`). Recreating ``found`` itself, the hint said before, replaced the
    calibration the other model's daemon config names (e.g. the FP32 model's, for its INT8 copy)."""
    # quoted as a shell reads them back: 'export/line 1/rs.onnx' copied unquoted named two files
    out = Path(found).parent / calibration_name(model_path)
    return f"inspector calibrate {shlex.quote(str(model_path))} --data <dir> --out {shlex.quote(str(out))}"


def load_thresholds(path: str | Path, expected_sha256: str, model_path: str | Path) -> Thresholds:
    """Read ``path`` and refuse it unless it was made with the model file whose sha256 is given."""
    thresholds = read_thresholds(path)
    if thresholds.model.sha256 != expected_sha256:
        raise ConfigError(
            f"{path}: calibration was made for another model (sha256 {thresholds.model.sha256[:12]}…, "
            f"'{thresholds.model.name}' {thresholds.model.precision}), not {model_path} "
            f"(sha256 {expected_sha256[:12]}…); calibrate it with: {recalibrate_hint(model_path, path)}"
        )
    return thresholds


# calibrate refuses fewer good images than this unless --allow-few-good: below 4 the rule of three's bound on the
# false-alarm rate, 3/n, is ≥ 1 (inspector.evaluation.calibrate, which imports it from here)
MIN_GOOD_IMAGES = 4
# data.good.source → calibrate --split
_SPLIT_OF_SOURCE = {"test/good": "test", "calibration split": "calibration", "validation split": "val"}


def calibrate_command(thresholds: Thresholds, path: str | Path, model_path: str | Path, batch_size: int) -> str:
    """The ``inspector calibrate`` command that makes ``path`` again for ``model_path`` as the file says it was
    made (its good images, rules, uncertain margin, outliers, few-good allowance), checked at batch sizes up to
    ``batch_size``; ``--data <dir>`` where the file does not record its images. Quoted as a shell reads it."""
    q = shlex.quote
    words = ["inspector", "calibrate", q(str(model_path))]
    good = thresholds.data.good
    if good is None:
        words += ["--data", "<dir>"]
    elif good.source == "folder":
        words += ["--good-dir", q(good.root)]
    else:
        words += ["--data", q(good.root)] + (["--split", _SPLIT_OF_SOURCE[good.source]]
                                             if good.source in _SPLIT_OF_SOURCE else [])
    for part in thresholds.rule.split(", "):  # e.g. "false_alarm_rate=0.001, pixel_false_alarm_rate=0.001"
        key, _, value = part.partition("=")
        if key in ("false_alarm_rate", "pixel_false_alarm_rate") and value:
            words += [f"--{key.replace('_', '-')}", q(value)]
        elif key == "f1":
            words.append("--use-defects")
    band, t = thresholds.uncertain_band, thresholds.image_threshold
    if band is not None and t > 0:  # calibrate made it [t·(1−m), t·(1+m))
        words += ["--uncertain-margin", f"{1 - band[0] / t:.6g}"]
    if good is not None and good.excluded:  # None: not given
        words.append("--exclude-outliers")
    if good is not None and 0 < good.n + len(good.excluded or ()) < MIN_GOOD_IMAGES:
        words.append("--allow-few-good")
    return " ".join(words + ["--out", q(str(path)), "--batch-size", str(batch_size)])


def batch_coverage_warning(thresholds: Thresholds, path: str | Path, model_path: str | Path, batch_size: int,
                           setting: str) -> str | None:
    """One line where ``thresholds`` (read from ``path``) was not checked at batch sizes up to ``batch_size``
    (images per inference call; ``setting`` names it, e.g. ``batching.max_batch``), else None.

    Scores differ by 1e-7 to 3e-6 between batch sizes (ONNX Runtime and TensorRT pick kernels per size), and calibrate
    puts the threshold just above the highest good score, so it holds only at the sizes ``data.batch_check``
    records (:class:`~inspector.artifacts.calibration_data.BatchCheck`); a file without it predates that check,
    at any batch size. The line names the command that covers ``batch_size`` (:func:`calibrate_command`); a
    malformed ``data.batch_check`` was refused when the file was read (:func:`read_thresholds`)."""
    check = thresholds.data.batch_check
    if check is not None and check.largest >= batch_size:
        return None
    command = calibrate_command(thresholds, path, model_path, batch_size)
    if check is None:
        return (f"{path}: made before calibrate checked its threshold at other batch sizes: a good image just "
                f"below it may be flagged NG at another batch size ({setting} is {batch_size}; scores differ by "
                f"1e-7 to 3e-6 between batch sizes); make it again with: {command}")
    return (f"{path}: the threshold was checked at batch sizes up to {check.largest} only, but {setting} is "
            f"{batch_size} (scores differ by 1e-7 to 3e-6 between batch sizes: a good image just below the threshold "
            f"may be flagged NG); cover it with: {command}")
