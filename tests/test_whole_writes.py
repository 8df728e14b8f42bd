"""Files rewritten in place of an earlier one (the timing cache, the MQTT bridge's untold counts, checkpoints and
resume points, the subscriber state) are written whole or not at all by one implementation,
:func:`inspector.outputs.write_whole`: a write that fails part-way leaves the earlier file as it was and no
temporary file. Each had its own temporary + rename, which left the half-written temporary behind (and wrote
nothing to disk before the rename). The failure here is real: a file size limit (EFBIG part-way, as a full disk's
ENOSPC)."""

from __future__ import annotations

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
