"""replay_stop_rule.py: the product's StopRule replayed over a recorded learning curve."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import replay_stop_rule  # noqa: E402


def _curve(gaps: list[float]) -> dict:
    """A curve whose validation loss falls every epoch while the gap is ``gaps[i]``; scored every 2 epochs."""
    history = [{"epoch": e, "val_loss": 10.0 - e * 0.1, "seen_loss": (10.0 - e * 0.1) / (1 + g)}
               for e, g in enumerate(gaps, 1)]
    points = [{"epoch": e, "image_auroc": 0.5 + e / 100} for e in range(2, len(gaps) + 1, 2)]
    return {"dataset": "d", "model": "m", "overrides": [], "history": history, "points": points}


def test_the_rule_stops_where_the_gap_grew_and_reports_the_kept_epochs_score(tmp_path):
    curve = _curve([0.03, 0.02, 0.04, 0.08, 0.09, 0.10, 0.12, 0.2])  # grown > 5 points from epoch 4 on
    row = replay_stop_rule.replay(curve, 0.05, 3)
    assert (row["stop_epoch"], row["kept_epoch"], row["scored_epoch"]) == (6, 6, 6)
    assert row["image_auroc"] == 0.56 and row["last_image_auroc"] == 0.58
    assert replay_stop_rule.replay(curve, None, 3)["stop_epoch"] is None  # switched off: runs through
    path = tmp_path / "curve.json"
    path.write_text(json.dumps({"datasets": [curve]}))
    out = replay_stop_rule.main([str(path), "--settings", "0.05:3,0.05:4", "--out", str(tmp_path), "--name", "t"])
    rows = json.loads(Path(out).read_text())["rows"]
    assert [r["stop_epoch"] for r in rows] == [6, 7]
