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
  written (after scoring succeeded: a failed evaluation leaves the earlier one as it was).
- It removed every file with one of its names, whoever wrote it: a user's own ``metrics.json``, ``roc.png`` or
  ``report.html`` in the folder given as ``--out`` was lost. What is an earlier evaluation's is now known by its
  content: ``metrics.json`` of an evaluation lists the files it wrote (``files``); anything else at one of the
  names is refused in one line before any work and left as it was (:func:`claim_evaluation_folder`, the rule of
  every command's output, :mod:`inspector.outputs`). The new evaluation is written whole into a hidden staging
  folder and moved in all or none (:func:`install_evaluation`), ``metrics.json`` last.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from inspector.config import read_text
from inspector.errors import ConfigError, InspectorError
from inspector.outputs import folder_problem, replace_together, safe_name

CARD = "metrics.json"  # lists the evaluation's other files (``files``); written last, it marks the set complete
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


def is_evaluation(data: object) -> bool:
    """Whether ``data`` (a ``metrics.json``'s JSON) is the metrics an ``inspector evaluate`` wrote."""
    return isinstance(data, dict) and {"image_auroc", "n_images", "per_defect_type"} <= set(data)


def _own_name(name: object) -> bool:
    """Whether ``name`` (from a card's ``files``) is one an evaluation writes: a crafted card cannot make
    :func:`install_evaluation` remove anything else (``../x``, an absolute path, a user's file)."""
    if not isinstance(name, str):
        return False
    head, _, tail = name.partition("/")
    return name in EVALUATION_FILES or (head == OVERLAYS and _OVERLAY.match(tail) is not None)


def _present(folder: Path) -> list[str]:
    """The names of :data:`EVALUATION_FILES` and overlay PNGs now in ``folder`` (links and non-files too)."""
    names = [name for name in EVALUATION_FILES if os.path.lexists(folder / name)]
    overlays = folder / OVERLAYS
    if overlays.is_dir() and not overlays.is_symlink():
        names += sorted(f"{OVERLAYS}/{p.name}" for p in overlays.iterdir() if _OVERLAY.match(p.name))
    return names


def claim_evaluation_folder(folder: str | Path) -> set[str]:
    """Make sure ``inspector evaluate`` may write its evaluation in ``folder``, before any work: the names of the
    earlier evaluation's files there, which the new one replaces (empty: none), ``metrics.json`` among them.

    Raises ConfigError, one line naming the file, when a file at one of the evaluation's names is not an earlier
    evaluation's: a ``metrics.json`` that is not an evaluation's, a file its ``files`` does not name, a link or
    a non-file (the rule of every output, :func:`inspector.outputs.claim_outputs`). An evaluation written before
    ``files`` was recorded owns the names it would have written."""
    folder = Path(folder)
    tail = "'inspector evaluate' replaces only its own files: --out another folder, or move it"
    if (why := folder_problem(folder)) is not None:
        raise ConfigError(f"{folder}: cannot evaluate there: {why}")
    overlays = folder / OVERLAYS
    if overlays.is_symlink() or (overlays.exists() and not overlays.is_dir()):
        raise ConfigError(f"{overlays}: not a folder of an earlier evaluate; {tail}")
    present = _present(folder)
    odd = next((n for n in present if (folder / n).is_symlink() or not (folder / n).is_file()), None)
    if odd is not None:
        kind = "a symbolic link" if (folder / odd).is_symlink() else "not a regular file (a folder, device or pipe)"
        raise ConfigError(f"{folder / odd}: {kind}, not a file of an earlier evaluate; {tail}")
    own = _earlier_files(folder, tail) if CARD in present else set()
    if foreign := [name for name in present if name not in own]:
        raise ConfigError(f"{folder / foreign[0]}: exists and is not a file of an earlier evaluate (no evaluation "
                          f"{CARD} naming it); {tail}")
    return own & set(present)


def _earlier_files(folder: Path, tail: str) -> set[str]:
    """The files the evaluation in ``folder`` wrote (its card's ``files``, and the card); ConfigError when its
    ``metrics.json`` is no evaluation's. One written before ``files`` was recorded owns every name it writes."""
    try:
        card = json.loads(read_text(folder / CARD, "metrics file"))
    except (InspectorError, ValueError, RecursionError):
        card = None
    if not is_evaluation(card):
        raise ConfigError(f"{folder / CARD}: exists and is not an evaluation written by 'inspector evaluate'; {tail}")
    listed = card.get("files")
    if listed is None:
        return set(_present(folder))
    return {CARD} | ({name for name in listed if _own_name(name)} if isinstance(listed, list) else set())


def install_evaluation(folder: Path, staging: Path, new: list[str], own: set[str]) -> None:
    """Move the evaluation written in ``staging`` (a hidden folder in ``folder``; its files' names ``new``,
    ``metrics.json`` among them) into ``folder``, all or none (:func:`inspector.outputs.replace_together`),
    removing the earlier evaluation's files ``own`` (from :func:`claim_evaluation_folder`) the new one does not
    replace; ``metrics.json`` goes last. Raises OSError (what was there is put back)."""
    if any(name.startswith(OVERLAYS + "/") for name in new):
        (folder / OVERLAYS).mkdir(exist_ok=True)
    moves = [(None, folder / name) for name in sorted(own - set(new)) if name != CARD]
    moves += [(staging / name, folder / name) for name in new if name != CARD]
    replace_together([*moves, (staging / CARD, folder / CARD)], staging)
