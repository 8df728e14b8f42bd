"""Which of a set of images a model was fitted on: trained on, or validated on (the best epoch and the map
normalisation), known by content from the sha256 its training recorded (``training.data.train_sha256`` /
``val_sha256`` of the model card, ``data`` of the run's checkpoint). Shared by calibrate (a threshold on such
images flags more than its rate on the line) and evaluate (metrics on them are optimistic)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def sha256_or_none(path: Path) -> str | None:
    """Hex sha256 of the regular file ``path``, or None when it cannot be read (a folder, a FIFO, a device, gone)."""
    from inspector.artifacts.model_card import sha256_file

    try:
        return sha256_file(path)
    except OSError:  # unreadable: not provably one of them (loading it skips it anyway)
        return None


def fitted_counts(samples: Sequence, sidecar: dict) -> tuple[int, int]:
    """(how many of ``samples`` the model was trained on, how many validated on: the best epoch and the map
    normalisation), known by content from its card (``training.data.train_sha256`` / ``val_sha256``; (0, 0) on a
    card recording neither)."""
    data = (sidecar.get("training") or {}).get("data") or {}
    trained, validated = set(data.get("train_sha256") or []), set(data.get("val_sha256") or [])
    if not trained and not validated:
        return 0, 0
    digests = [sha256_or_none(s.path) for s in samples]
    return sum(d in trained for d in digests), sum(d in validated for d in digests)


def fitted_line(counts: tuple[int, int], n: int, what: str, consequence: str) -> str | None:
    """'12 of the 40 test image(s) are images the model was fitted on (…): <consequence>'; None when none are."""
    if not any(counts):
        return None
    parts = [f"{k} {words}" for k, words in zip(counts, ("trained on", "validated on")) if k]
    return (f"{sum(counts)} of the {n} {what} are images the model was fitted on ({', '.join(parts)}; known by "
            f"content): {consequence}")


