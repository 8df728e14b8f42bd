"""The dashboard's defect list shows each score and threshold so that they compare as the daemon decided.

app.js printed the score with 4 significant digits and the threshold with 3: every NG score in
[threshold, threshold rounded up to 3 digits) read below its threshold ('NG score 0.1529 (thr 0.153)'), and the
good image a calibrated threshold sits one float32 step above read 'score 0.1527 (thr 0.1527)'. The page now
prints what the server's state gives (no browser needed to check the values; tests/pipeline/test_dashboard.py
drives the page itself in Chromium).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspector.events import InspectionEvent, utc_iso
from inspector.integrations.dashboard.state import DashboardState
from inspector.pipeline.integration_config import DashboardSection

CASES = [(0.1529, 0.15266180038452148, "NG"), (0.15266180038452148, 0.15266180038452148, "NG"),
         (0.1526617854833603, 0.15266180038452148, "uncertain"), (2.5, 0.25, "NG")]


@pytest.mark.parametrize("score, threshold, decision", CASES)
def test_a_defects_shown_score_and_threshold_compare_as_decided(score, threshold, decision):
    state = DashboardState(DashboardSection(), ["c"])
    state.offer(InspectionEvent(type="defect", camera="c", seq=0, frame_id=0, event_id="r-c-0", decision=decision,
                                score=score, threshold=threshold, capture={"utc": utc_iso()},
                                latency_ms={"total": 1.0}, model={}))
    _, message = state.snapshot_json()
    (defect,) = json.loads(message.removeprefix("data: "))["defects"]
    shown = defect["shown"]
    assert (float(shown["score"]) >= float(shown["threshold"])) == (score >= threshold), shown
    if (float(f"{score:.4g}") >= float(f"{threshold:.4g}")) == (score >= threshold):  # 4 digits suffice: both 4
        assert (shown["score"], shown["threshold"]) == (f"{score:.4g}", f"{threshold:.4g}")


def test_the_page_prints_the_shown_values_not_its_own_rounding():
    app = (Path(__file__).resolve().parents[2] / "inspector/integrations/dashboard/static/app.js").read_text()
    assert "${d.shown.score} (thr ${d.shown.threshold})" in app and "d.threshold.toPrecision" not in app
