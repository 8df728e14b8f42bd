"""Daemon settings at their edges (scripts/config_sweep.py found these): refused by ``run --check`` in one line,
or handled at run time, never a crash or a hang."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import yaml

from pipeline_support import base_config

ROOT = Path(__file__).resolve().parents[2]  # the checkout under test, not an installed copy

# The inference stage stays inside ONNX Runtime's run far longer than shutdown_timeout_s: a model that slow is
# real (a large model on a small CPU), made here by repeating the real run for 4 s (same method, real session).
SLOW_MODEL = textwrap.dedent("""
    import sys, time
    from inspector.backends.onnxruntime import OnnxRuntimeBackend
    from inspector.cli import main
    real = OnnxRuntimeBackend._run
    def slow(self, batch):
        self.runs = getattr(self, "runs", 0) + 1
        end = time.monotonic() + (4.0 if self.runs > 1 else 0.0)  # the first run is the load's probe
        result = real(self, batch)
        while time.monotonic() < end:
            result = real(self, batch)
        return result
    OnnxRuntimeBackend._run = slow
    sys.exit(main(sys.argv[1:]))
""")


def test_a_stage_still_running_after_shutdown_timeout_ends_the_run_with_exit_1(tiny_model, tmp_path):
    # A stage that did not stop within shutdown_timeout_s was left inside ONNX Runtime while the publisher's
    # socket was closed under it and the interpreter tore the libraries down: the run died of SIGABRT
    # ('terminate called without an active exception', exit -6) instead of exit 1 with its failures told.
    cfg = base_config(tiny_model, f"ipc://{tmp_path}/p.sock",
                      [{"name": "c", "source": "synthetic", "max_frames": 2,
                        "synthetic": {"texture": "procedural", "size": 64, "pool": 2}}],
                      shutdown_timeout_s=1.0, summary_json=str(tmp_path / "summary.json"))
    cfg["model"]["warmup_runs"] = 0
    cfg["batching"] = {"max_batch": 1}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    script = tmp_path / "slow_run.py"
    script.write_text(SLOW_MODEL)
    start = time.monotonic()
    p = subprocess.run([sys.executable, str(script), "run", "--config", str(tmp_path / "cfg.yaml")],
                       capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    out = p.stdout + p.stderr
    assert p.returncode == 1, out[-2000:]
    assert "inference did not stop within 1 s" in out and "Traceback" not in out and "terminate" not in out
    assert (tmp_path / "summary.json").is_file()
    assert time.monotonic() - start < 40


def _check(tmp_path: Path, cfg: dict, timeout: float = 60) -> tuple[int, str, float]:
    """``inspector run --check`` of ``cfg`` in its own process: (exit code, stdout + stderr, seconds)."""
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    start = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "inspector", "run", "--config", str(path), "--check"],
                       capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return p.returncode, p.stdout + p.stderr, time.monotonic() - start


def test_more_threads_or_replicas_than_cores_are_capped_at_the_cores(tiny_model, tmp_path):
    # model.threads 1024 (within its declared range) on 2 cores: ONNX Runtime's 1024 spinning intra-op threads
    # meet on a barrier after every operator, and `run --check` alone took 139 s (replicas 256: as long, 256
    # sessions). More threads than cores never runs faster: the cores are used, with a warning naming the key.
    from inspector.backends.ort_replicas import usable_cores

    cfg = base_config(tiny_model, f"ipc://{tmp_path}/p.sock",
                      [{"name": "c", "source": "synthetic", "max_frames": 2,
                        "synthetic": {"texture": "procedural", "size": 64, "pool": 2}}])
    cfg["model"].update(threads=1024, replicas=256)
    code, out, took = _check(tmp_path, cfg)
    assert code == 0 and "Traceback" not in out, out[-2000:]
    cores = usable_cores()
    assert f"model.threads: 1024 exceeds the {cores} usable core(s) of this machine; using {cores}" in out
    assert f"model.replicas: 256 exceeds the {cores} usable core(s)" in out
    assert took < 30
