"""Warm-up: the daemon runs the backend at every batch size it can send before it reports ready."""

from __future__ import annotations

import pytest

from pipeline_support import base_config, by_type, run_to_end
from inspector.backends import load_backend
from inspector.backends.base import Backend
from inspector.errors import InspectorError
from inspector.pipeline.config import daemon_config
from inspector.pipeline.daemon import Daemon
from inspector.pipeline.infer import usable_max_batch, warmup_sizes


class RecordingBackend(Backend):
    """The real ONNX Runtime backend, recording each call's batch size; ``fail_at`` sizes raise."""

    def __init__(self, inner: Backend, fail_at: int | None = None) -> None:
        self.inner, self.fail_at, self.sizes = inner, fail_at, []
        self.name, self.precision, self.sha256 = inner.name, inner.precision, inner.sha256

    @property
    def input_spec(self):
        return self.inner.input_spec

    def _run(self, batch):
        self.sizes.append(batch.shape[0])
        if batch.shape[0] == self.fail_at:
            raise RuntimeError("injected fault")
        return self.inner._run(batch)

    def close(self):
        self.inner.close()


def test_warmup_sizes_cover_every_partial_batch_and_stay_bounded():
    assert warmup_sizes(1) == [1]
    assert warmup_sizes(8) == list(range(1, 9))
    assert warmup_sizes(16) == list(range(1, 17))
    assert warmup_sizes(17) == [1, 2, 4, 8, 16, 17]
    assert warmup_sizes(1024) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    assert usable_max_batch(8, None) == 8 and usable_max_batch(8, 4) == 4 and usable_max_batch(2, 4) == 2


def _synthetic(frames: int) -> dict:
    return {"name": "cam0", "source": "synthetic", "mode": "offline", "max_frames": frames,
            "synthetic": {"texture": "procedural", "size": 64, "pool": 2, "defect_rate": 0.0}}


@pytest.mark.parametrize("runs", [0, 2])
def test_daemon_warms_every_batch_size_before_the_first_frame(tiny_model, endpoint, runs):
    backends: list[RecordingBackend] = []

    def factory():
        backends.append(RecordingBackend(load_backend(tiny_model, threads=1)))
        return backends[-1]

    cfg = base_config(tiny_model, endpoint, [_synthetic(12)], batching={"max_batch": 4, "max_wait_ms": 50})
    cfg["model"]["warmup_runs"] = runs
    daemon, code, events = run_to_end(cfg, backend_factory=factory)
    assert code == 0, daemon.failures
    assert len(by_type(events, "result", "cam0")) == 12
    warm = [n for n in (1, 2, 3, 4) for _ in range(runs)]
    sizes = backends[0].sizes
    assert sizes[:len(warm)] == warm  # before any frame: each size, `runs` times, smallest first
    assert sum(sizes[len(warm):]) == 12  # then the frames, and nothing else
    assert daemon.inference.warmup.get("sizes", []) == ([1, 2, 3, 4] if runs else [])


def test_warmup_is_capped_by_the_models_static_batch(tiny_model, endpoint):
    class StaticBatch(RecordingBackend):
        @property
        def input_spec(self):
            return self.inner.input_spec.with_max_batch(2)

    backends: list[RecordingBackend] = []

    def factory():
        backends.append(StaticBatch(load_backend(tiny_model, threads=1)))
        return backends[-1]

    cfg = base_config(tiny_model, endpoint, [_synthetic(4)], batching={"max_batch": 8})
    cfg["model"]["warmup_runs"] = 1
    daemon, code, _ = run_to_end(cfg, backend_factory=factory)
    assert code == 0, daemon.failures
    assert backends[0].sizes[:2] == [1, 2] and max(backends[0].sizes) == 2


def test_a_failing_warmup_run_fails_start_in_one_line(tiny_model, endpoint):
    cfg = base_config(tiny_model, endpoint, [_synthetic(4)], batching={"max_batch": 4})
    daemon = Daemon(daemon_config(cfg),
                    backend_factory=lambda: RecordingBackend(load_backend(tiny_model, threads=1), fail_at=3))
    daemon.setup()
    with pytest.raises(InspectorError) as info:
        daemon.start()
    message = str(info.value)
    assert "warm-up run at batch 3 failed" in message and "injected fault" in message and "\n" not in message
    assert not daemon.inference.is_alive()
