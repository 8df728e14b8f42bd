"""Files rewritten in place of an earlier one (the timing cache, the MQTT bridge's untold counts, checkpoints and
resume points, the subscriber state) are written whole or not at all by one implementation,
:func:`inspector.outputs.write_whole`: a write that fails part-way leaves the earlier file as it was and no
temporary file. Each had its own temporary + rename, which left the half-written temporary behind (and wrote
nothing to disk before the rename). The failure here is real: a file size limit (EFBIG part-way, as a full disk's
ENOSPC)."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import pytest
import torch

import inspector.backends.cuda as cuda_mod
from fake_tensorrt import TRT10, FakeCuda, make_fake_trt
from file_faults import file_size_limit
from inspector.artifacts.checkpoint import read_checkpoint, write_checkpoint
from inspector.deploy.engine_build import BuildOptions, build_engine
from inspector.integrations.mqtt import _read_untold, _write_untold
from tiny_graphs import write_exported


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_timing_cache_that_cannot_be_written_is_left_as_it_was(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_trt(TRT10, []))
    monkeypatch.setattr(cuda_mod, "open_cuda", lambda api="cuda-python", device=0: FakeCuda(device))
    graph = write_exported(tmp_path / "export").with_name("tiny.fp16.onnx")
    out = tmp_path / "engines" / "tiny.fp16.plan"
    build_engine(graph, out, BuildOptions(max_batch=4))
    before = _files(out.parent)
    assert any(name.endswith(".cache") for name in before)
    with file_size_limit(8), pytest.raises(OSError, match="too large"):  # the cache is the build's first write
        build_engine(graph, out, BuildOptions(max_batch=2))
    assert _files(out.parent) == before and sorted(p.name for p in out.parent.iterdir()) == sorted(before)


def test_untold_mqtt_counts_that_cannot_be_written_leave_the_earlier_ones(tmp_path, caplog):
    path = tmp_path / "state" / "mqtt-bridge-box.json"
    earlier = [{"run_id": "r1", "offered": 1, "final": True}]
    _write_untold(path, earlier)
    with file_size_limit(16), caplog.at_level(logging.WARNING, logger="inspector.integrations.mqtt"):
        _write_untold(path, earlier + [{"run_id": "r2", "offered": 2, "final": True}])
    assert any("not kept in" in r.getMessage() and "too large" in r.getMessage() for r in caplog.records)
    assert _read_untold(path) == earlier and [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_checkpoint_that_cannot_be_written_is_left_as_it_was(tmp_path):
    """torch.save to a temporary file: a full disk left it behind, half written, and raised torch's RuntimeError
    (a traceback); now an OSError (one line from the CLI) and nothing left."""
    path = tmp_path / "best.pt"
    write_checkpoint(path, {"config": {}, "state_dict": {"w": torch.ones(4)}, "epoch": 1})
    before = path.read_bytes()
    with file_size_limit(64 << 10), pytest.raises(OSError, match="too large"):
        write_checkpoint(path, {"config": {}, "state_dict": {"w": torch.ones(100_000)}, "epoch": 2})
    assert path.read_bytes() == before and read_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]


def test_only_the_per_message_subscriber_state_skips_the_fsync(tmp_path, monkeypatch):
    """Checkpoints and cards reach the disk before the rename; the subscriber state, rewritten after every
    message, does not wait for it (milliseconds per message on an SD card), as before write_whole."""
    import os

    from inspector.loss import LossTracker, StateFile
    from inspector.outputs import write_whole

    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real(fd))
    write_whole(tmp_path / "card.json", b"{}")
    assert len(synced) == 1
    state = StateFile(tmp_path / "state.json", key="tcp://127.0.0.1:5555")
    assert state.save(LossTracker()) is None and (tmp_path / "state.json").is_file()
    assert len(synced) == 1


@pytest.mark.parametrize("name", ["n" * 250 + ".json", "é" * 125 + ".js", "検" * 83 + ".j"])
def test_a_file_named_as_long_as_the_file_system_allows_is_written_whole(name, tmp_path):
    """Its hidden temporary (``.NAME.PID.tmp``) took 10-16 bytes more than NAME_MAX and the write failed ("File name
    too long"); the name is cut there, by bytes, never inside a character, and the leftovers pattern still knows it."""
    from inspector.outputs import whole_temporaries, whole_temporary, write_whole

    path = tmp_path / name
    write_whole(path, b"{}")
    assert path.read_bytes() == b"{}" and [p.name for p in tmp_path.iterdir()] == [name]
    tmp = whole_temporary(path, pid=4294967295)
    assert len(os.fsencode(tmp.name)) <= 255 and whole_temporaries(path).match(tmp.name).group(1) == "4294967295"


def test_a_runs_history_that_cannot_be_written_is_left_as_it_was(tmp_path):
    """history.json and summary.json were rewritten in place: a full disk part-way left half a history, which
    ``--resume`` refuses ("unreadable epoch history"), so the run could not go on from its last epoch."""
    from inspector.training.loop import _read_history, write_run_json

    path = tmp_path / "history.json"
    rows = [{"phase": "student", "epoch": e, "val_loss": 1.0 / e} for e in (1, 2, 3)]
    write_run_json(path, rows)
    before = path.read_bytes()
    with file_size_limit(len(before) + 16), pytest.raises(OSError, match="too large"):
        write_run_json(path, rows + [{"phase": "student", "epoch": e, "val_loss": 0.1} for e in (4, 5)])
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]
    assert _read_history(path) == rows


def _whole_or_earlier(folder: Path, write, limit: int) -> None:
    """``write()`` (one output file in ``folder``) under a file size limit of ``limit`` bytes, past which it fails
    part-way (EFBIG, as a full disk's ENOSPC): it raises, and ``folder`` holds what it held, byte for byte, and
    no temporary or cut file."""
    before, names = _files(folder), sorted(p.name for p in folder.iterdir())
    with file_size_limit(limit), pytest.raises(OSError, match="too large"):
        write()
    assert _files(folder) == before and sorted(p.name for p in folder.iterdir()) == names


def test_predict_overlays_that_cannot_be_written_leave_the_earlier_ones_and_no_cut_png(tmp_path):
    """'inspector predict' wrote each overlay PNG in place: a full disk part-way left a cut PNG under the overlay's
    name (or an earlier run's half overwritten), and a first run a cut PNG where there was none."""
    import cv2
    import numpy as np

    from inspector.commands.predict import write_overlays

    image = tmp_path / "images" / "part.png"
    image.parent.mkdir()
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    amap = np.random.default_rng(1).random((16, 16)).astype(np.float32)
    out = tmp_path / "overlays"
    write_overlays([(image, amap)], out, "square", 0.0, 1.0)
    assert cv2.imread(str(out / "part.png")) is not None
    _whole_or_earlier(out, lambda: write_overlays([(image, 1 - amap)], out, "square", 0.0, 1.0), 4096)
    (out / "part.png").unlink()
    _whole_or_earlier(out, lambda: write_overlays([(image, 1 - amap)], out, "square", 0.0, 1.0), 4096)


def test_a_synth_manifest_that_cannot_be_written_leaves_the_earlier_one(tmp_path):
    """'inspector data synth' wrote manifest.json (and README.txt) in place: a full disk part-way left a cut
    manifest, or an earlier data set's half overwritten."""
    from inspector.data.synth import _is_synth_output, _write_manifest, synthesize

    out = tmp_path / "synth"
    synthesize(out, size=32, n_train=1, n_test_good=1, n_test_defect=1, defects=["crack"])
    params = json.loads((out / "manifest.json").read_text())
    params = {k: v for k, v in params.items() if k not in ("generator", "format", "notable_change")}
    _whole_or_earlier(out, lambda: _write_manifest(out, {**params, "seed": 7}), 64)
    assert _is_synth_output(out) and json.loads((out / "manifest.json").read_text())["seed"] == 0


def test_evaluation_scores_and_plots_that_cannot_be_written_leave_the_earlier_ones(tmp_path):
    """scores.npz (np.savez) and the plots (savefig) were written in place: a full disk left a cut archive numpy
    refuses (BadZipFile) or a cut PNG, in place of an earlier evaluation's."""
    import numpy as np

    from inspector.evaluation.evaluate import write_scores
    from inspector.evaluation.plots import plot_score_histogram

    scores, labels = np.linspace(0, 1, 2000), np.arange(2000) % 2
    write_scores(tmp_path / "scores.npz", scores, labels, [f"{i}.png" for i in range(2000)])
    plot_score_histogram(scores, labels, tmp_path / "score_histogram.png", threshold=0.5)
    _whole_or_earlier(tmp_path, lambda: write_scores(tmp_path / "scores.npz", scores[::-1], labels,
                                                     [f"{i}.png" for i in range(2000)]), 2048)
    _whole_or_earlier(tmp_path, lambda: plot_score_histogram(scores, labels, tmp_path / "score_histogram.png",
                                                             threshold=0.25), 2048)
    assert np.load(tmp_path / "scores.npz")["scores"][0] == 0.0
