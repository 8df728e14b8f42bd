"""The recorder tells what it does not keep: recordings of earlier runs that retention deletes as a run starts are
said in one line, not only counted. Real daemon runs (``inspector run``) on real files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from inspector.cli import main

from pipeline_support import base_config, write_video


def _run(tmp_path: Path, model: Path, name: str, defects: int, caplog, **recorder) -> list[str]:
    """One ``inspector run`` of a video camera 'cam' whose ``defects`` frames are all NG, recording into
    ``tmp_path/rec`` with ``recorder`` settings; the recorder's log lines."""
    video = write_video(tmp_path / f"{name}.avi", [True] * defects, seed=len(name))
    cfg = base_config(model, f"ipc://{tmp_path}/{name}.sock", [{"name": "cam", "source": str(video)}],
                      thresholds={"image": 0.0},
                      recorder={"enabled": True, "dir": str(tmp_path / "rec"), "min_free_bytes": 0, **recorder})
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="inspector.recorder"):
        assert main(["run", "--config", str(tmp_path / f"{name}.yaml")]) == 0
    return [r.getMessage() for r in caplog.records if r.name == "inspector.recorder"]


@pytest.mark.parametrize("limit", [{"max_events": 2}, {"max_bytes": 1}])
def test_recordings_of_earlier_runs_deleted_as_a_run_starts_are_told(tiny_model, tmp_path, caplog, limit):
    """Run 1 records 5 defects; run 2 starts with lower limits (max_events 2, or max_bytes that hold only the newest):
    retention deletes run 1's oldest recordings before run 2's first frame. That was counted in recorder.deleted
    only: a limit lowered by mistake cost thousands of earlier runs' recordings and the log said nothing. Now one
    line names how many of how many, where, and the limits; a start that deletes nothing says nothing."""
    if "max_bytes" in limit:  # the least max_bytes allowed: only the newest recording is kept
        from inspector.pipeline.config import smallest_recording_bytes

        limit = {"max_bytes": smallest_recording_bytes()}
    first = _run(tmp_path, tiny_model, "run1", 5, caplog)
    assert not [m for m in first if "deleted" in m], first
    assert len(list((tmp_path / "rec" / "cam").glob("*.json"))) == 5
    second = _run(tmp_path, tiny_model, "run2", 1, caplog, **limit)
    told = [m for m in second if "of earlier runs" in m]
    kept = 2 if "max_events" in limit else 1
    assert len(told) == 1, second
    assert f"deleted the {5 - kept} oldest of the 5 recording(s)" in told[0] and str(tmp_path / "rec") in told[0]
    assert f"recorder.max_events {limit.get('max_events', 10000)}" in told[0], told
    third = _run(tmp_path, tiny_model, "run3", 1, caplog, **limit)  # within the limits already: nothing to tell
    assert not [m for m in third if "of earlier runs" in m], third
