"""Payloads (JPEG thumbnail, PNG map) are encoded only for events some subscriber holds (issue 17)."""

from __future__ import annotations

from pipeline_support import base_config, by_type, defect_pattern, run_to_end, write_video


def test_no_defect_subscriber_no_encoding(tiny_model, endpoint, tmp_path):
    defects = defect_pattern(24, every=3, offset=1)
    video = write_video(tmp_path / "line.avi", defects)
    cfg = base_config(tiny_model, endpoint, [{"name": "cam0", "source": str(video)}],
                      batching={"max_batch": 4, "max_wait_ms": 2})
    daemon, code, events = run_to_end(cfg, topics=("v1/result", "v1/stats"))
    assert code == 0, daemon.failures
    results = by_type(events, "result", "cam0")
    assert [e.decision for e in results] == ["NG" if d else "OK" for d in defects]
    assert all(not e.payloads for e in results)
    totals = [e for e in by_type(events, "stats") if e.final][0].data["totals"]
    assert totals["payloads_not_wanted"] == sum(defects)  # every NG frame skipped its encoding
    assert totals["published.defect"] == sum(defects)  # the events themselves still go out


def test_results_with_payloads_are_encoded_for_a_result_subscriber(tiny_model, endpoint, tmp_path):
    defects = defect_pattern(12, every=3, offset=1)
    video = write_video(tmp_path / "line.avi", defects)
    cfg = base_config(tiny_model, endpoint, [{"name": "cam0", "source": str(video)}],
                      postprocess={"payloads_on_results": True})
    daemon, code, events = run_to_end(cfg, topics=("v1/result", "v1/stats"))
    assert code == 0, daemon.failures
    results = by_type(events, "result", "cam0")
    assert len(results) == len(defects)
    assert all({p.kind for p in e.payloads} == {"thumbnail", "anomaly_map"} for e in results)
