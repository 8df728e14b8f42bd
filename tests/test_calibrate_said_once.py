"""``inspector calibrate --use-defects`` prints each fact once. Its closing warnings repeated lines printed just
above them: "F1 threshold chosen on only 6 defective sample(s)" under "defects    6 image(s) from test/<defect>";
"no ground-truth masks for the 6 defective image(s) (none found as …, e.g. …)" under the dataset's own line
"6 defect image(s) without a ground-truth mask"; "the pixel threshold rests on 4 of the 6 defective image(s)"
under the pixel line's "the 4 of 6 defective image(s) with a usable ground-truth mask". The real command on a
real (tiny, trained) model and dataset; its whole output read."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

CLI = [sys.executable, "-c", "import sys; from inspector.cli import main; sys.exit(main())"]


def _masks_removed(data, how: str) -> None:
    if how == "all":
        shutil.rmtree(data / "ground_truth")
    elif how == "some":
        for path in sorted((data / "ground_truth").glob("*/*_mask.png"))[:2]:
            path.unlink()


def _counts_said(text: str) -> list[str]:
    """Each count of defective images in ``text`` ("6", "4 of 6"), not a rule's bound ("fewer than 10")."""
    return re.findall(r"(?<!than )\b(\d+(?: of(?: the)? \d+)?) defect(?:ive)? (?:image|sample)", text)


@pytest.mark.parametrize("masks", ["kept", "all", "some"])
def test_the_closing_warnings_repeat_no_line_printed_before_them(exported_model, tiny_dataset, tmp_path, masks):
    data = tmp_path / "brick"
    shutil.copytree(tiny_dataset, data)
    _masks_removed(data, masks)
    done = subprocess.run([*CLI, "calibrate", str(exported_model), "--data", str(data), "--use-defects", "--split",
                           "test", "--out", str(tmp_path / "c.yaml")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    output = done.stderr + done.stdout  # the dataset's log lines (stderr) come before the summary (stdout)
    warnings = [line for line in done.stdout.splitlines() if line.startswith("warning: ")]
    assert any("F1 threshold chosen on fewer than 10 defective samples" in w for w in warnings), warnings
    assert not [w for w in warnings if _counts_said(w)], warnings  # the counts are the lines above
    said = _counts_said(output)
    assert len(said) == len(set(said)), (said, output)
    if masks == "all":  # said by the dataset (how many, none found), the consequence by the warning
        assert "6 defect image(s) without a ground-truth mask" in output, output
        assert any(w.startswith("warning: no defective image has a ground-truth mask: the pixel threshold comes "
                                "from good-image pixels") for w in warnings), warnings
    if masks == "some":
        assert output.count("4 of 6 defective image(s) with a usable ground-truth mask") == 1, output
