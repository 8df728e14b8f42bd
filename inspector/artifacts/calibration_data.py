"""The calibration file's ``data`` section: what ``inspector calibrate`` scored and how it chose the thresholds.

::

    data:
      good: {source: validation split, root: /abs/data/brick, layout: mvtec, n: 20, skipped: []}
      image_rule: {target_false_alarm_rate: 0.001, n_good: 20, resolution: 0.05, …, rule_text: "…"}
      pixel_rule: {target_false_alarm_rate: 0.001, resolution: 1.2e-05, …, n_pixels: 81920}
      map_size: [64, 64]
      resize: square
      defects: {source: test/<defect type>, n: 6, skipped: [], with_mask: 6}   # --use-defects only
      uncertain: {margin: 0.1, good_in_band: 2}                                # --uncertain-margin only
      warnings: ["…"]                                                          # when calibrate gave any
      batch_check: {batch_sizes: [1, 2, 3, 4], images: 16, spread: 2.4e-07}    # files before it: none

Typed here and validated when the file is read (:func:`inspector.artifacts.thresholds.read_thresholds`): a
hand-edited or corrupted value of a known key is one line naming the file and the key path. Keys a section
does not know are ignored, as in a model card (:mod:`.model_card`), while the rest of the calibration file
refuses them: ``data`` was a free mapping before it was typed and only records (it decides nothing but which
batch sizes the daemon warns about), so notes written under it by hand still load. A key calibrate writes only
in some runs is None when absent and left out when written (``_omit_none``, :func:`inspector.config.to_dict`),
so the file keeps the keys it always had.
"""

from __future__ import annotations

from dataclasses import dataclass

from inspector.config import bounded
from inspector.errors import ConfigError

_COUNT = 10**12  # the largest image / pixel count a file may claim (as ScoreStats.n)


@dataclass(frozen=True)
class BatchCheck:
    """``data.batch_check``: the good images nearest the threshold that ``inspector calibrate`` scored again at
    each of ``batch_sizes`` (images per inference call), and the most (score units) any of them moved between
    those sizes, which the threshold clears. It holds at batch sizes up to :attr:`largest` only."""

    _unknown_keys = "ignore"
    batch_sizes: tuple[int, ...] = bounded(ge=1, le=1 << 20)
    images: int = bounded(ge=0, le=_COUNT)
    spread: float = bounded(ge=0)

    def validate(self, where: str) -> None:
        if not self.batch_sizes:
            raise ConfigError(f"{where}.batch_sizes: expected a list of batch sizes ≥ 1, got an empty list")

    @property
    def largest(self) -> int:
        """The largest batch size checked: the threshold is known to hold at every size up to it."""
        return max(self.batch_sizes)


@dataclass(frozen=True)
class GoodImages:
    """``data.good``: where the good images calibrate scored came from. ``source``: ``folder`` (``--good-dir
    root``), ``test/good`` or ``<words> split`` (of the dataset at ``root``, whose ``layout`` is recorded);
    ``n`` scored; ``skipped``: paths that could not be read; ``excluded``: left out as outliers
    (``--exclude-outliers``; None: not given)."""

    _unknown_keys = "ignore"
    _omit_none = True
    source: str
    root: str
    layout: str | None = None
    excluded: tuple[str, ...] | None = None
    n: int = bounded(0, ge=0, le=_COUNT)
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleDetails:
    """``data.image_rule`` / ``data.pixel_rule``: what the rule that chose a threshold achieves on the data
    scored. Each rule records some of these (None: not recorded): at a false-alarm rate ``target_false_alarm_rate``,
    ``resolution`` (1/n), ``allowed_false_alarms``; F1 ``f1``, ``precision``, ``recall``, ``n_defect``,
    ``missed``; for images ``n_good`` and ``false_alarms``, for pixels ``n_pixels`` / ``false_alarm_pixels``
    (or ``n_pixels_good`` / ``n_pixels_defect``); always ``false_alarm_rate`` and ``rule_text``."""

    _unknown_keys = "ignore"
    _omit_none = True
    target_false_alarm_rate: float | None = bounded(None, gt=0, lt=1)
    f1: float | None = bounded(None, ge=0, le=1)
    precision: float | None = bounded(None, ge=0, le=1)
    recall: float | None = bounded(None, ge=0, le=1)
    n_good: int | None = bounded(None, ge=0, le=_COUNT)
    n_defect: int | None = bounded(None, ge=0, le=_COUNT)
    resolution: float | None = bounded(None, ge=0, le=1)
    allowed_false_alarms: int | None = bounded(None, ge=0, le=_COUNT)
    false_alarms: int | None = bounded(None, ge=0, le=_COUNT)
    false_alarm_rate: float | None = bounded(None, ge=0, le=1)
    missed: int | None = bounded(None, ge=0, le=_COUNT)
    rule_text: str | None = None
    n_pixels: int | None = bounded(None, ge=0)
    false_alarm_pixels: int | None = bounded(None, ge=0)
    n_pixels_good: int | None = bounded(None, ge=0)
    n_pixels_defect: int | None = bounded(None, ge=0)


@dataclass(frozen=True)
class DefectImages:
    """``data.defects`` (``--use-defects``): the defective images scored (``n``), the paths skipped as
    unreadable, and how many had a ground-truth mask (``with_mask``)."""

    _unknown_keys = "ignore"
    source: str = "test/<defect type>"
    n: int = bounded(0, ge=0, le=_COUNT)
    skipped: tuple[str, ...] = ()
    with_mask: int = bounded(0, ge=0, le=_COUNT)


@dataclass(frozen=True)
class UncertainCount:
    """``data.uncertain`` (``--uncertain-margin``): the margin (a fraction of the image threshold) and how many
    good images scored inside the band it makes."""

    _unknown_keys = "ignore"
    margin: float = bounded(gt=0, lt=1)
    good_in_band: int = bounded(0, ge=0, le=_COUNT)


@dataclass(frozen=True)
class CalibrationData:
    """``data``: the section as a whole (module docstring); every part None where the file does not record it
    (a hand-written file, or one calibrate wrote before it recorded that part)."""

    _unknown_keys = "ignore"
    _omit_none = True
    good: GoodImages | None = None
    image_rule: RuleDetails | None = None
    pixel_rule: RuleDetails | None = None
    map_size: tuple[int, int] | None = bounded(None, ge=1)  # anomaly-map height, width (pixels)
    resize: str | None = None  # the model input's resize policy the images were scored with
    defects: DefectImages | None = None
    uncertain: UncertainCount | None = None
    warnings: tuple[str, ...] | None = None  # every warning calibrate gave (None: none)
    batch_check: BatchCheck | None = None  # None: made before calibrate checked batch sizes
