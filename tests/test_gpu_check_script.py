"""scripts/gpu_check.sh on this machine: the dry run reports what it needs and exits cleanly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gpu_guard import probe_gpu

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.sh"


def _run(*args, tmp_path):
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHON": sys.executable}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=env)


def test_dry_run_reports_requirements_and_steps(tmp_path):
    done = _run("--dry-run", "--out", str(tmp_path / "check"), tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "check" / "environment.json").read_text())
    assert {"driver", "packages", "cuda_runtime", "requirements"} <= set(report)
    gpu = probe_gpu().count > 0
    assert report["requirements"]["NVIDIA GPU and driver"] is gpu
    if not gpu:
        assert "MISSING NVIDIA GPU and driver" in done.stdout
    for step in ("pytest -m cuda", "pytest -m 'gpu and not pycuda' (no SKIPPED)", "inspector verify",
                 "inspector bench 1,4,8 +/- --cuda-graphs; replay 1,4,1,3,4"):
        assert step in done.stdout
    assert not list((tmp_path / "check").glob("*.log"))  # nothing was run


def test_without_a_gpu_a_real_run_stops_with_exit_3(tmp_path):
    if probe_gpu().count > 0:
        return  # a GPU machine runs the real check instead
    done = _run("--cuda-only", "--out", str(tmp_path / "check"), tmp_path=tmp_path)
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == [
        f"gpu_check.sh: a requirement is missing (listed above; report in {tmp_path / 'check'}/environment.json)"]


def test_bad_usage_is_one_line_and_exit_2(tmp_path):
    done = _run("--fast", tmp_path=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == "gpu_check.sh: unknown option '--fast' (see --help)"
    done = _run("--export", str(tmp_path / "nothing"), tmp_path=tmp_path)
    assert done.returncode == 2 and "nothing.onnx not found" in done.stderr
