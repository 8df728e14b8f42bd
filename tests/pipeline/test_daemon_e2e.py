"""End to end on real parts: OpenCV-written videos and folders, a real ONNX Runtime session, real ZeroMQ."""

from __future__ import annotations

import json
import os
import time

import cv2
import numpy as np
import pytest

from pipeline_support import (base_config, by_type, defect_pattern, run_to_end, slow_recorder_disk, write_folder,
                              write_video)


def test_video_offline_exact_events(tiny_model, endpoint, tmp_path):
    defects = defect_pattern(40, every=4, offset=1)
    video = write_video(tmp_path / "line.avi", defects)
    cfg = base_config(tiny_model, endpoint, [{"name": "cam0", "source": str(video)}],
                      batching={"max_batch": 4, "max_wait_ms": 2})
    daemon, code, events = run_to_end(cfg)
    assert code == 0, daemon.failures

    results = by_type(events, "result", "cam0")
    assert len(results) == len(defects)  # every frame, exactly once
    assert [e.seq for e in results] == list(range(len(defects)))  # in sequence, no gaps
    assert [e.frame_id for e in results] == list(range(len(defects)))
    assert [e.decision for e in results] == ["NG" if d else "OK" for d in defects]

    ng = by_type(events, "defect", "cam0")
    assert len(ng) == sum(defects)  # exactly one event per NG frame
    assert [e.seq for e in ng] == list(range(sum(defects)))
    assert [e.frame_id for e in ng] == [i for i, d in enumerate(defects) if d]

    event = ng[0]
    assert event.threshold == pytest.approx(0.1) and event.score >= 0.1
    assert event.model["name"] == "tiny" and event.model["precision"] == "fp32"
    assert event.model["backend"] == "onnxruntime" and len(event.model["sha256"]) == 64
    assert event.frame == {"width": 128, "height": 96}
    assert event.capture["monotonic_ns"] > 0 and event.capture["utc"].endswith("Z")
    for stage in ("queued", "preprocessed", "batched", "inferred", "postprocessed", "published", "total"):
        assert event.latency_ms[stage] >= 0
    assert event.latency_ms["total"] == pytest.approx(sum(event.latency_ms[s] for s in (
        "queued", "preprocessed", "batched", "inferred", "postprocessed", "published")), abs=0.01)
    # one region around the injected blob, in ORIGINAL frame coordinates
    assert len(event.regions) == 1
    x, y, w, h = event.regions[0]["bbox"]
    assert 0 <= x and x + w <= 128 and 0 <= y and y + h <= 96 and 8 <= w <= 40 and 8 <= h <= 40
    kinds = {p.kind: p for p in event.payloads}
    thumb = cv2.imdecode(np.frombuffer(kinds["thumbnail"].data, np.uint8), cv2.IMREAD_COLOR)
    assert thumb.shape == (96, 128, 3)
    heat = cv2.imdecode(np.frombuffer(kinds["anomaly_map"].data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert heat.shape == (32, 32) and kinds["anomaly_map"].extra["range"][1] == pytest.approx(event.score, rel=1e-4)

    states = [e.state for e in by_type(events, "status", "cam0")]
    assert states[0] == "connecting" and "online" in states and states[-1] == "ended"
    final = [e for e in by_type(events, "stats") if e.final]
    assert len(final) == 1
    data = final[0].data
    assert data["cameras"]["cam0"]["processed"] == len(defects)
    assert data["cameras"]["cam0"]["NG"] == sum(defects)
    assert data["totals"]["inferred_frames"] == len(defects)
    assert data["latency_ms"]["total"]["n"] == len(defects)
    assert {"p50", "p90", "p99", "max"} <= set(data["latency_ms"]["inferred"])


def test_two_cameras_folder_with_corrupt_frames(tiny_model, endpoint, tmp_path):
    d0 = defect_pattern(24, every=3, offset=2)
    d1 = defect_pattern(18, every=5, offset=0)
    video = write_video(tmp_path / "a.avi", d0, seed=1)
    corrupt = (3, 10)
    folder = write_folder(tmp_path / "b", d1, seed=2, corrupt=corrupt)
    for p in folder.iterdir():  # settled: a just-written undecodable file is read again once its writer is done
        os.utime(p, (time.time() - 60, time.time() - 60))
    summary = tmp_path / "summary.json"
    cfg = base_config(tiny_model, endpoint, [{"name": "a", "source": str(video)},
                                             {"name": "b", "source": str(folder)}],
                      batching={"max_batch": 8, "max_wait_ms": 5}, summary_json=str(summary),
                      recorder={"enabled": True, "dir": str(tmp_path / "rec"), "min_free_bytes": 0, "queue_size": 64})
    daemon, code, events = run_to_end(cfg)
    assert code == 0, daemon.failures
    # a part with no pixels has nothing to record (its event names the file, left where it was): no write error
    assert daemon.counters.get("recorder.errors") == 0 and daemon.counters.get("recorder.dropped") == 0
    assert len(list((tmp_path / "rec" / "b").glob("*.json"))) == sum(d1[i] for i in range(len(d1)) if i not in corrupt)
    for cam, defects, unread in (("a", d0, ()), ("b", d1, corrupt)):
        # a corrupt file is a part not inspected: decided 'error' on v1/defect, naming its file, in its place.
        # Before, it was counted and logged only: a reject gate listening to v1/defect never heard of the part,
        # and the next file took its frame_id
        results = by_type(events, "result", cam)
        assert [e.seq for e in results] == list(range(len(defects)))
        assert [e.source["index"] for e in results] == [e.frame_id for e in results] == list(range(len(defects)))
        assert [e.decision for e in results] == ["error" if i in unread else "NG" if defects[i] else "OK"
                                                 for i in range(len(defects))]
        errors = [e for e in by_type(events, "defect", cam) if e.decision == "error"]
        assert [e.source["index"] for e in errors] == list(unread)
        assert all(e.error.startswith("not inspected (corrupt): ") and e.source["file"] in e.error
                   and e.score is None and e.frame == {"width": 0, "height": 0} for e in errors), errors
        assert len(by_type(events, "defect", cam)) == sum(defects[i] or i in unread for i in range(len(defects)))
    stats = json.loads(summary.read_text())
    assert stats["cameras"]["b"]["corrupt"] == stats["cameras"]["b"]["error"] == len(corrupt)
    assert stats["cameras"]["b"]["processed"] == len(d1)
    assert stats["cameras"]["a"]["processed"] == len(d0)
    assert stats["totals"]["mean_batch"] > 1  # batches really mix cameras/frames


def test_synthetic_camera_injects_defects(tiny_model, endpoint):
    cam = {"name": "syn", "source": "synthetic", "max_frames": 30,
           "synthetic": {"texture": "procedural", "size": 96, "defect_rate": 0.3, "pool": 4, "seed": 3}}
    cfg = base_config(tiny_model, endpoint, [cam])
    daemon, code, events = run_to_end(cfg)
    assert code == 0, daemon.failures
    results = by_type(events, "result", "syn")
    assert len(results) == 30
    injected = [e.source["injected"] is not None for e in results]
    assert 0 < sum(injected) < 30
    assert all(k in (None, "scratch", "crack", "hole", "stain", "colour_spot", "fold")
               for k in (e.source["injected"] for e in results))


def test_recorder_writes_defects_and_keeps_retention(tiny_model, endpoint, tmp_path):
    defects = [True] * 6 + [False] * 4
    video = write_video(tmp_path / "v.avi", defects)
    rec = tmp_path / "rec"
    cfg = base_config(tiny_model, endpoint, [{"name": "cam0", "source": str(video)}],
                      recorder={"enabled": True, "dir": str(rec), "max_events": 4, "min_free_bytes": 0})
    daemon, code, events = run_to_end(cfg)
    assert code == 0, daemon.failures
    metas = sorted((rec / "cam0").glob("*.json"))
    assert len(metas) == 4  # retention: the 2 oldest were deleted
    header = json.loads(metas[-1].read_text())
    assert header["decision"] == "NG" and header["frame_id"] == 5
    assert len(list((rec / "cam0").glob("*.heat.png"))) == 4
    assert cv2.imread(str(metas[-1].with_suffix(".png"))).shape == (96, 128, 3)
    stats = daemon.final_stats["totals"]
    assert stats["recorder.written"] == 6 and stats["recorder.deleted"] == 2


def test_calibration_file_drift_and_uncertain_band(tiny_model, endpoint, tmp_path):
    from inspector.artifacts.model_card import sha256_file
    from inspector.artifacts.thresholds import ModelBinding, ScoreStats, Thresholds, write_thresholds

    defects = [False] * 24 + [True] * 4
    video = write_video(tmp_path / "v.avi", defects)
    # calibrated on "good" scores far above what this camera now sees: the camera has drifted
    cal = write_thresholds(Thresholds(
        model=ModelBinding("tiny", sha256_file(tiny_model)), image_threshold=0.1, pixel_threshold=0.1,
        uncertain_band=(0.1, 0.2), rule="test",
        score_stats=ScoreStats(mean=0.06, std=0.005, min=0.05, max=0.07, p50=0.06, p99=0.069, n=100)),
        tmp_path / "cal.yaml")
    cfg = base_config(tiny_model, endpoint, [{"name": "cam0", "source": str(video)}],
                      thresholds={"calibration": str(cal), "image": None},
                      drift={"min_samples": 10, "window": 50})
    daemon, code, events = run_to_end(cfg)
    assert code == 0, daemon.failures
    results = by_type(events, "result", "cam0")
    assert [e.decision for e in results[:24]] == ["OK"] * 24
    assert all(e.decision in ("NG", "uncertain") for e in results[24:])
    assert results[0].uncertain_band == [0.1, 0.2]
    final = [e for e in by_type(events, "stats") if e.final][0].data
    drift = final["drift"]["cam0"]
    assert drift["n"] == 24 and drift["flagged"] and drift["shift_std"] < -3
    assert final["cameras"]["cam0"]["drift_flagged"] is True


def _wait_until(pred, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.02)
    return pred()


def test_a_recorder_dir_renamed_under_a_running_daemon_is_followed(tiny_model, endpoint, tmp_path):
    """recorder.dir moved aside for review while the daemon records: the daemon goes on recording in a folder at
    the path, held (a second daemon is refused there) and pruned on its own (max_events), and lets go of the
    renamed folder, whose recordings stay as they were: its retention no longer counts them nor deletes there."""
    from inspector.errors import ConfigError
    from inspector.pipeline.config import daemon_config
    from inspector.pipeline.daemon import Daemon
    from inspector.pipeline.recorder import lock_recorder_dir

    video = write_video(tmp_path / "v.avi", [True] * 10)
    rec, review = tmp_path / "rec", tmp_path / "review"
    cfg = base_config(tiny_model, endpoint, [{"name": "cam0", "source": str(video), "loop": True, "fps": 20}],
                      recorder={"enabled": True, "dir": str(rec), "max_events": 2, "min_free_bytes": 0})
    daemon = Daemon(daemon_config(cfg))
    daemon.setup()
    written = lambda: daemon.counters.get("recorder.written")  # noqa: E731
    try:
        daemon.start()
        assert _wait_until(lambda: written() >= 1)
        rec.rename(review)
        assert _wait_until(lambda: any(rec.glob("cam0/*.json")))  # recording goes on at the path…
        kept = {p.name: p.read_bytes() for p in review.glob("cam0/*")}  # nothing is written there from now on
        at_rename = written()
        assert _wait_until(lambda: written() >= at_rename + 4)  # … past max_events
        with pytest.raises(ConfigError, match="in use by another daemon"):
            lock_recorder_dir(rec)
        lock_recorder_dir(review).release()  # the renamed folder is free
    finally:
        daemon.request_stop()
        code = daemon.wait()
    assert code == 0, daemon.failures
    assert {p.name: p.read_bytes() for p in review.glob("cam0/*")} == kept and any(n.endswith(".json") for n in kept)
    totals = daemon.final_stats["totals"]
    assert len(list(rec.glob("cam0/*.json"))) == 2 and totals.get("recorder.errors", 0) == 0
    n_review = sum(n.endswith(".json") for n in kept)
    assert totals["recorder.written"] == n_review + 2 + totals["recorder.deleted"]  # none deleted in review
    assert [p.name for p in rec.iterdir()] == ["cam0"]


def test_an_explicit_image_threshold_moves_the_calibrations_uncertain_band_with_it(tiny_model, tmp_path):
    """thresholds.image over a calibration file with an uncertain band: the band alone decided (≥ hi → NG), so
    with image 0.2 under the calibration's [0.145, 0.436) around 0.29 a score of 0.346 came out 'uncertain' while
    its event said 'thr 0.2', and the explicit threshold decided nothing. The band now moves with it (scaled, as
    calibrate makes it around its threshold); an explicit band is taken as given."""
    from inspector.artifacts.model_card import sha256_file
    from inspector.artifacts.thresholds import ModelBinding, Thresholds, write_thresholds
    from inspector.pipeline.config import daemon_config
    from inspector.pipeline.daemon import resolve_thresholds

    sha = sha256_file(tiny_model)
    cal = write_thresholds(Thresholds(model=ModelBinding("tiny", sha), image_threshold=0.29, pixel_threshold=0.27,
                                      uncertain_band=(0.145, 0.435), rule="test"), tmp_path / "cal.yaml")

    def decider(**thresholds):
        cfg = base_config(tiny_model, "tcp://127.0.0.1:1", [{"name": "c", "source": str(tmp_path)}],
                          thresholds={"calibration": str(cal), **thresholds})
        return resolve_thresholds(daemon_config(cfg), sha)[0]

    d = decider(image=0.2)
    assert d.uncertain_band == pytest.approx((0.1, 0.3)) and d.decide(0.346) == "NG" and d.decide(0.2) == "uncertain"
    assert d.decide(0.09) == "OK" and d.pixel_threshold == 0.27
    assert decider(image=None).uncertain_band == (0.145, 0.435)  # the calibration's own threshold: as calibrated
    explicit = decider(image=0.2, uncertain_band=[0.15, 0.25])
    assert explicit.uncertain_band == (0.15, 0.25) and explicit.decide(0.3) == "NG"


def test_an_offline_run_that_lost_recordings_exits_1_naming_the_recorder(tiny_model, endpoint, tmp_path):
    """A run of offline cameras waits for the recorder rather than drop, so a recording it still lost (here: the disk
    below recorder.min_free_bytes, a real low-disk skip) is evidence lost; the run exited 0, the loss only logged."""
    import shutil

    disk = shutil.disk_usage(tmp_path)
    if disk.free >= disk.total:
        pytest.skip("no space in use on this file system: min_free_bytes cannot lie between free and total")
    defects = defect_pattern(6, every=2)
    folder = write_folder(tmp_path / "b", defects, seed=2)
    for p in folder.iterdir():  # settled: not a file still being written
        os.utime(p, (time.time() - 60, time.time() - 60))
    rec = tmp_path / "rec"
    cfg = base_config(tiny_model, endpoint, [{"name": "b", "source": str(folder)}],
                      recorder={"enabled": True, "dir": str(rec), "min_free_bytes": (disk.free + disk.total) // 2})
    daemon, code, _ = run_to_end(cfg)
    lost = sum(defects)
    assert daemon.counters.get("recorder.skipped_low_disk") == lost > 0
    assert code == 1
    assert daemon.failures == [f"recorder (recorder.dir {rec}): {lost} defect recording(s) lost (low disk {lost})"], \
        daemon.failures


def test_beside_a_live_camera_no_defect_waits_for_the_recorder_and_a_drop_fails_the_run(tiny_model, endpoint,
                                                                                         tmp_path, monkeypatch):
    """The recorder is fed on the one publisher thread, so a file camera's defect waiting there for a slow disk
    would hold back the live camera's events: beside a live camera nothing waits (live inspection never waits for
    the disk). What a full queue drops is counted and, being evidence lost, fails the run with a closing line.
    The fake: fsync 0.1 s slower (a slow disk), then the real call, only on the recorder's thread."""
    slow_recorder_disk(monkeypatch, 0.1)
    cams = [{"name": "live", "source": str(write_video(tmp_path / "l.avi", [True] * 12)), "mode": "live"},
            {"name": "file", "source": str(write_video(tmp_path / "f.avi", [True] * 12, seed=1))}]
    rec = tmp_path / "rec"
    cfg = base_config(tiny_model, endpoint, cams, thresholds={"image": 0.0}, shutdown_timeout_s=30.0,
                      recorder={"enabled": True, "dir": str(rec), "min_free_bytes": 0, "queue_size": 1})
    daemon, code, events = run_to_end(cfg, timeout=60)
    assert len(by_type(events, "defect", "file")) == 12
    dropped = daemon.counters.get("recorder.dropped")
    recorded = sum(len(list((rec / cam).glob("*.json"))) for cam in ("live", "file"))
    # a loaded host may drop some of the live camera's frames at capture (dropped_live): never inspected, no defect
    defects = 12 + len(by_type(events, "defect", "live"))
    assert dropped > 0 and recorded + dropped == defects, daemon.counters.snapshot()
    assert len(list((rec / "file").glob("*.json"))) < 12  # the file camera's defects did not wait either
    assert code == 1 and any(f.startswith(f"recorder (recorder.dir {rec}): {dropped} defect recording(s) lost")
                             for f in daemon.failures), daemon.failures


def test_a_live_run_that_lost_recordings_exits_1_naming_the_recorder(tiny_model, endpoint, tmp_path):
    """A live run's lost recordings (here: the disk below recorder.min_free_bytes, a real low-disk skip) were
    counted and logged only, and the run exited 0: a supervisor could not tell that defects published as NG had
    no evidence on disk. Evidence lost is a failure of the run, live or offline: exit 1, a closing line."""
    import shutil

    disk = shutil.disk_usage(tmp_path)
    if disk.free >= disk.total:
        pytest.skip("no space in use on this file system: min_free_bytes cannot lie between free and total")
    cams = [{"name": "c", "source": str(write_video(tmp_path / "c.avi", [True] * 6)), "mode": "live"}]
    rec = tmp_path / "rec"
    cfg = base_config(tiny_model, endpoint, cams, thresholds={"image": 0.0},
                      recorder={"enabled": True, "dir": str(rec), "min_free_bytes": (disk.free + disk.total) // 2})
    daemon, code, events = run_to_end(cfg)
    lost = daemon.counters.get("recorder.skipped_low_disk")
    assert lost == len(by_type(events, "defect", "c")) > 0
    assert code == 1
    assert daemon.failures == [f"recorder (recorder.dir {rec}): {lost} defect recording(s) lost (low disk {lost})"], \
        daemon.failures
