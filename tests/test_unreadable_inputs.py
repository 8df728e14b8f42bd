"""An input that is there but cannot be read (no permission) is told as such, in one line, exit 2.

Before: a folder of images that could not be listed was "no images found" (predict), "no images in the
good-image folder" (calibrate) or "no training images" (train), and a defect type's folder was silently left out
of evaluate's metrics; a checkpoint was "not a readable checkpoint, damaged or cut short? (PermissionError…)"
(sent users to retrain); an unreadable resume.pt was taken for a damaged one: the run went on from best.pt and
the next epoch's point replaced the sound one. Real EACCES, in a child process to which file modes apply
(:func:`file_faults.permissions_enforced`: as root, without CAP_DAC_OVERRIDE).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from file_faults import permissions_enforced
from tiny_graphs import write_exported

REPO = Path(__file__).resolve().parents[1]
PREFIX = permissions_enforced()
pytestmark = pytest.mark.skipif(PREFIX is None, reason="file modes cannot be enforced here")


def _inspector(*argv: str, code: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "inspector", *argv]
    return subprocess.run([*PREFIX, *command], env=env, capture_output=True, text=True, timeout=120)


def _images(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((32, 32, 3), 60 * i, np.uint8))
    return folder


def _error_line(res: subprocess.CompletedProcess) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip() and " INFO " not in line]
    assert res.returncode == 2 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["predict", "calibrate", "train", "dataset-defect-type"])
def test_a_folder_that_cannot_be_listed_is_told_so(tmp_path, command):
    data = tmp_path / "data"
    _images(data / "train" / "good")
    _images(data / "test" / "good")
    _images(data / "test" / "hole")
    locked = {"predict": data / "test" / "good", "calibrate": data / "test" / "good",
              "train": data / "train" / "good", "dataset-defect-type": data / "test" / "hole"}[command]
    model = write_exported(tmp_path / "export")
    argv = {"predict": ["predict", str(model), str(locked)],
            "calibrate": ["calibrate", str(model), "--good-dir", str(locked), "--out", str(tmp_path / "c.yaml")],
            "train": ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--epochs", "1"],
            "dataset-defect-type": ["quantize", str(model), "--calibration", str(data)]}[command]
    locked.chmod(0)
    try:
        err = _error_line(_inspector(*argv))
    finally:
        locked.chmod(0o755)
    assert err == f"error: {locked}: cannot read folder (Permission denied)", err


def test_predict_scores_the_folders_it_can_read_and_tells_the_one_it_cannot(tmp_path):
    good, locked = _images(tmp_path / "good"), _images(tmp_path / "locked")
    model = write_exported(tmp_path / "export")
    locked.chmod(0)
    try:
        res = _inspector("predict", str(model), str(locked), str(good))
    finally:
        locked.chmod(0o755)
    assert res.returncode == 2 and res.stdout.count(str(good)) == 3, (res.stdout, res.stderr)
    assert f"error: {locked}: cannot read folder (Permission denied)" in res.stderr.splitlines()


def test_a_checkpoint_that_cannot_be_read_is_not_called_damaged(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"PK\x03\x04 whatever is in it")
    (run / "best.pt").chmod(0)
    err = _error_line(_inspector("export", str(run), "--out", str(tmp_path / "out" / "m")))
    assert err == f"error: {run / 'best.pt'}: cannot read checkpoint (Permission denied)", err


def test_a_resume_point_that_cannot_be_read_stops_the_resume_and_is_kept(tmp_path):
    import torch

    run = tmp_path / "run"
    run.mkdir()
    point = run / "resume.pt"
    torch.save({"format": "inspector-resume-point", "phase": "student", "epoch": 1}, point)
    before = point.read_bytes()
    point.chmod(0)
    code = ("import sys\nfrom pathlib import Path\nfrom inspector.training.resume_point import ResumePoint\n"
            "from inspector.errors import InspectorError\n"
            f"try:\n    ResumePoint(Path({str(run)!r}), True)._read()\nexcept InspectorError as exc:\n"
            "    print(exc, file=sys.stderr); sys.exit(2)\n")
    err = _error_line(_inspector(code=code))
    point.chmod(0o644)
    assert err == f"{point}: cannot read the resume point (Permission denied); --resume continues from it", err
    assert point.read_bytes() == before
