"""Every log line is one line, whatever the names in it: a file name with a line break (a camera's upload, a
script's bug) split a warning in two, and its second half read as a log line of its own, which a file name can
forge. Real files, the real command in a child process, its real log handler."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from tiny_graphs import write_exported

REPO = Path(__file__).resolve().parents[1]
FORGED = "ERROR inspector.daemon: forged"  # what the second half of a split line would say


def _inspector(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "inspector", *argv], env=env, capture_output=True, text=True,
                          timeout=120)


def _folder_with_odd_names(folder: Path) -> Path:
    """Two good images, an unread format (.gif) and two empty 'images', each of the last three named with a line
    break followed by a forged log line."""
    folder.mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((32, 32, 3), 60 * i + 30, np.uint8))
    (folder / f"a\n{FORGED}.gif").write_bytes(b"GIF89a")
    for name in (f"b\n{FORGED} 1.png", f"c\n{FORGED} 2.png"):
        (folder / name).write_bytes(b"")
    return folder


def _assert_one_line_each(stderr: str, told: str) -> None:
    assert told in stderr, stderr  # the warning was given
    assert not any(line.startswith(FORGED) for line in stderr.splitlines()), stderr
    assert "\\nERROR inspector.daemon: forged" in stderr, stderr  # the name is still there, escaped


def test_a_file_name_with_a_line_break_cannot_split_a_listing_warning(tmp_path):
    data = tmp_path / "data"
    _folder_with_odd_names(data / "train" / "good")
    out = _inspector("data", "info", str(data))
    assert out.returncode == 0, out.stderr
    _assert_one_line_each(out.stderr, "of an image format that is not read are left out")


def test_a_file_name_with_a_line_break_cannot_split_the_skipped_images_warning(tmp_path):
    good = _folder_with_odd_names(tmp_path / "good")
    model = write_exported(tmp_path / "export")
    out = _inspector("calibrate", str(model), "--good-dir", str(good), "--out", str(tmp_path / "cal.yaml"),
                     "--allow-few-good")  # its 2 readable images: fewer than 4 are refused unless allowed
    _assert_one_line_each(out.stderr, "image(s) that could not be read")
