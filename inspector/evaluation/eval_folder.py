"""Where an evaluation is written, and what an earlier evaluation left in that folder.

An evaluation folder holds one evaluation: ``metrics.json`` (which records the data set it scored, ``data``),
``scores.npz``, ``roc.png``, ``score_histogram.png``, ``report.html`` and the ``overlays/`` PNGs. Two faults this
module exists for:

- ``inspector evaluate RUN --data OTHER`` wrote to ``RUN/eval`` and replaced the evaluation of the run's own data
  set without a word. The default folder is now ``RUN/eval`` for the run's own data set and ``RUN/eval-<folder
  name>`` for another, and a default folder never holds the evaluation of another data set (``-2``, ``-3``… when
  the name is taken by one).
- Re-evaluating into a folder overwrote some files and left the rest: ``--no-plots`` kept the earlier ROC and report
  beside the new metrics, and the earlier overlays (named by their score) stayed beside the new ones, so the report
  showed images of another evaluation. What an earlier evaluation wrote is now removed just before the new one is
  written (after scoring succeeded: a failed evaluation leaves the earlier one as it was). Only its own file names
  are removed; anything else in the folder is kept.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from inspector.config import read_text
from inspector.errors import InspectorError
from inspector.outputs import safe_name

EVALUATION_FILES = ("metrics.json", "scores.npz", "roc.png", "score_histogram.png", "report.html")
OVERLAYS = "overlays"
_OVERLAY = re.compile(r"^(missed|false_alarm|top_defect)_\d+_score.*\.png$")  # plots.save_overlays' names
_MAX_SUFFIX = 1000


def data_key(data: str | Path) -> str:
    """How ``metrics.json`` records a data set (``data``): its absolute, resolved path."""
    return str(Path(data).resolve())


def evaluated_data(folder: str | Path) -> str | None:
    """The data set an evaluation in ``folder`` scored (its ``metrics.json`` ``data``); None when there is no
    evaluation there, it is unreadable, or it is from before the field was recorded. Read by the one reader of
    small files (:func:`inspector.config.read_text`): a metrics.json that was a FIFO held ``evaluate`` for ever,
    silent, waiting for a writer."""
    try:
        recorded = json.loads(read_text(Path(folder) / "metrics.json", "metrics file")).get("data")
    except (InspectorError, ValueError, AttributeError, RecursionError):
        return None
    return recorded if isinstance(recorded, str) else None


def default_eval_folder(run_dir: str | Path, data: str | Path, trained_on: str | Path) -> Path:
    """``RUN/eval`` when ``data`` is the data set the run was trained on, else ``RUN/eval-<data folder name>``;
    the first of ``<base>``, ``<base>-2``, ``<base>-3``… that holds no evaluation of another data set."""
    run_dir, key = Path(run_dir), data_key(data)
    base = "eval" if key == data_key(trained_on) else f"eval-{safe_name(Path(key).name)}"
    for n in range(1, _MAX_SUFFIX):
        folder = run_dir / (base if n == 1 else f"{base}-{n}")
        if evaluated_data(folder) in (None, key):
            return folder
    return run_dir / base  # a thousand data sets of one name: the last resort replaces the first


def clear_earlier_evaluation(folder: str | Path) -> str | None:
    """Remove the files an earlier evaluation wrote in ``folder`` (:data:`EVALUATION_FILES` and its overlay PNGs;
    nothing else); return the data set it had scored (None: none recorded). Raises OSError when one cannot be
    removed."""
    folder = Path(folder)
    earlier = evaluated_data(folder)
    for name in EVALUATION_FILES:
        (folder / name).unlink(missing_ok=True)
    overlays = folder / OVERLAYS
    if overlays.is_dir():
        for path in overlays.iterdir():
            if _OVERLAY.match(path.name) and path.is_file():
                path.unlink()
    return earlier
