"""The daemon on a really trained and exported reduced student, and on an exported glance (patch grid in the graph).

The daemon's decisions must be exactly those of the bare backend on the same
frames at the same threshold: preprocessing, batching and thresholding add
nothing and lose nothing.
"""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from inspector.backends import load_backend
from inspector.data.datasets import load_dataset
from pipeline_support import base_config, by_type, run_to_end
from tiny_models import untrained_run


@pytest.fixture(scope="module")
def exported_glance(tiny_dataset, tmp_path_factory):
    """An untrained glance (64x64, 3x3 patch grid) saved as a run and exported: the daemon must not care."""
    from inspector.deploy import export_run

    run = untrained_run("glance", tiny_dataset, tmp_path_factory)
    return export_run(run, tmp_path_factory.mktemp("export") / "glance")["fp32"]


@pytest.mark.parametrize("model_name", ["reduced_student", "glance"])
def test_daemon_decisions_match_the_bare_backend(model_name, request, tiny_dataset, endpoint, tmp_path):
    exported_model = request.getfixturevalue("exported_model" if model_name == "reduced_student" else "exported_glance")
    folder = tmp_path / "frames"
    folder.mkdir()
    samples = load_dataset(tiny_dataset).test
    for i, sample in enumerate(samples):
        shutil.copy(sample.path, folder / f"{i:04d}.png")

    with load_backend(exported_model, threads=1) as backend:
        reference = []
        for path in sorted(folder.iterdir()):
            rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            reference.append(float(backend.infer(rgb[None]).scores[0]))
    reference = np.array(reference)
    threshold = float(np.median(reference))
    expected = ["NG" if s >= threshold else "OK" for s in reference]

    cfg = base_config(exported_model, endpoint, [{"name": "line1", "source": str(folder)}],
                      batching={"max_batch": 4, "max_wait_ms": 5}, thresholds={"image": threshold})
    daemon, code, events = run_to_end(cfg, timeout=60)
    assert code == 0, daemon.failures

    results = by_type(events, "result", "line1")
    assert [e.frame_id for e in results] == list(range(len(samples)))
    scores = np.array([e.score for e in results])
    np.testing.assert_allclose(scores, reference, rtol=2e-3)
    ambiguous = np.abs(reference - threshold) < 2e-3 * np.abs(threshold)
    decisions = [e.decision for e in results]
    assert all(d == x for d, x, a in zip(decisions, expected, ambiguous) if not a)

    ng = by_type(events, "defect", "line1")
    assert [e.seq for e in ng] == list(range(len(ng)))
    assert [e.frame_id for e in ng] == [i for i, d in enumerate(decisions) if d == "NG"]
    assert all(e.model["name"] == model_name for e in ng)


def test_an_event_score_reads_as_its_decision_against_its_threshold(exported_model, tiny_dataset, endpoint, tmp_path):
    """The wire rounded scores to 6 decimals, so a score within 5e-7 of the threshold was published on the
    other side of it: the good image that set a calibrated threshold (one float32 step above its score) came
    out as score 0.152662, threshold 0.1526618, decision OK (KolektorSDD, Session 43); a subscriber, PLC or MES
    comparing the two decided NG. The threshold here lies between a frame's exact and rounded score."""
    folder = tmp_path / "frames"
    folder.mkdir()
    shutil.copy(load_dataset(tiny_dataset).test[0].path, folder / "0000.png")
    with load_backend(exported_model, threads=1) as backend:
        rgb = cv2.cvtColor(cv2.imread(str(folder / "0000.png")), cv2.COLOR_BGR2RGB)
        score = float(backend.infer(rgb[None]).scores[0])
    threshold = (score + round(score, 6)) / 2  # OK read NG when the score rounds up, NG read OK when down
    assert threshold != score
    cfg = base_config(exported_model, endpoint, [{"name": "line1", "source": str(folder)}],
                      batching={"max_batch": 1}, thresholds={"image": threshold})
    daemon, code, events = run_to_end(cfg, timeout=60)
    assert code == 0, daemon.failures
    (result,) = by_type(events, "result", "line1")
    assert result.decision == ("NG" if score >= threshold else "OK")
    assert result.decision == ("NG" if result.score >= result.threshold else "OK"), (result.score, threshold)
    assert result.score == score  # the exact value where 6 decimals would cross the threshold
