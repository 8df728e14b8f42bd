"""Plots and overlays are written as real, non-empty PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inspector.data.datasets import Sample
from inspector.data.images import read_image
from inspector.evaluation.metrics import roc_curve
from inspector.evaluation.plots import plot_roc, plot_score_histogram, save_overlays

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path, min_size: int = 1000) -> bool:
    return path.is_file() and path.stat().st_size > min_size and path.read_bytes()[:8] == PNG


def test_roc_and_histogram(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(30), np.ones(20)].astype(int)
    scores = rng.random(50) + labels * 0.5
    fpr, tpr, _ = roc_curve(scores, labels)
    path = plot_roc({"image": (fpr, tpr, 0.9), "other": (fpr, tpr, None)}, tmp_path / "sub" / "roc.png")
    assert path == tmp_path / "sub" / "roc.png" and _is_png(path)
    path = plot_score_histogram(scores, labels, tmp_path / "hist.png", threshold=0.7)
    assert _is_png(path)
    assert _is_png(plot_score_histogram(scores, labels, tmp_path / "hist2.png"))


def test_save_overlays_picks_the_worst_cases(tmp_path):
    rng = np.random.default_rng(1)
    n = 10
    images = rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)
    maps = rng.random((n, 16, 16)).astype(np.float32)
    scores = np.arange(n, dtype=float) / 10
    samples = [Sample(Path(f"/x/{i:03d}.png"), int(i % 2), "cut" if i % 2 else "good", None) for i in range(n)]
    paths = save_overlays(images, maps, scores, samples, tmp_path / "ov", k=2)
    names = [p.name for p in paths]
    assert len(paths) == 5 and all(_is_png(p, 100) for p in paths)
    assert names[0].startswith("missed_00_score0.1_cut_001")  # lowest-scored defect
    assert names[2].startswith("false_alarm_00_score0.8_good_008")  # highest-scored good
    assert names[4].startswith("top_defect_00_score0.9_cut_009")
    panel = read_image(paths[0])
    assert panel.shape[1] == 64 and panel.shape[0] > 32  # image | overlay, with a caption band


def test_overlays_of_images_with_names_as_long_as_a_file_system_takes(tmp_path):
    """An image (and a defect folder) named with 250 characters, as long as ext4 allows, made the overlay's name
    longer than NAME_MAX: the whole evaluation ended with "File name too long". Each name is now cut, and the
    overlays of two names that share their first characters stay apart."""
    images = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    maps = np.zeros((4, 16, 16), dtype=np.float32)
    long_type, stem = "d" * 250, "g" * 246
    samples = [Sample(Path(f"/x/{stem}{i}.png"), int(i >= 2), long_type if i >= 2 else "good", None)
               for i in range(4)]
    paths = save_overlays(images, maps, [0.1, 0.2, 0.3, 0.4], samples, tmp_path / "ov", k=2)
    assert len(paths) == 5 and len(set(paths)) == 5 and all(_is_png(p, 100) for p in paths)
    assert all(len(p.name.encode()) <= 255 for p in paths)
    assert paths[0].name == f"missed_00_score0.3_{'d' * 80}_{'g' * 80}.png"
    cjk = save_overlays(images[:1], maps[:1], [0.5], [Sample(Path(f"/x/{'検' * 83}.png"), 0, "good", None)],
                        tmp_path / "cjk", k=1)  # 249 bytes: cut at a whole character
    assert cjk[0].name == f"false_alarm_00_score0.5_good_{'検' * 26}.png"


def test_overlays_of_files_whose_names_are_not_utf8(tmp_path):
    """b"caf\\xe9.png" (Latin-1 name on a UTF-8 system) reaches Python as a lone surrogate; OpenCV's putText
    used to kill the whole evaluate process with SIGSEGV on it. Run in a child so that crash fails this test."""
    import subprocess
    import sys

    script = (
        "import sys, numpy as np\n"
        "from pathlib import Path\n"
        "from inspector.data.datasets import Sample\n"
        "from inspector.evaluation.plots import save_overlays\n"
        "name = Path(b'caf\\xe9 \\xc3\\xbc.png'.decode('utf-8', 'surrogateescape'))\n"
        "samples = [Sample(Path('good.png'), 0, 'good'), Sample(name, 1, 'crack \\u00fc')]\n"
        "images = np.full((2, 32, 32, 3), 128, np.uint8)\n"
        "maps = np.random.default_rng(0).random((2, 32, 32)).astype(np.float32)\n"
        "paths = save_overlays(images, maps, [0.1, 0.9], samples, sys.argv[1])\n"
        "print(sorted(p.name for p in paths))\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "top_defect_00_score0.9_crack_ü_caf__ü.png" in done.stdout


@pytest.mark.parametrize("label", [0, 1])
def test_a_roc_of_one_class_says_it_is_undefined(tmp_path, label, monkeypatch):
    """A test set of defective images alone wrote roc.png as empty axes with the legend "image": a plot that
    looked drawn. Its legend says the curve is undefined now."""
    from matplotlib.axes import Axes

    from inspector.evaluation.metrics import roc_curve

    labels = []
    real = Axes.legend
    monkeypatch.setattr(Axes, "legend", lambda ax, *a, **k: (labels.extend(ax.get_legend_handles_labels()[1]),
                                                             real(ax, *a, **k))[1])
    fpr, tpr, _ = roc_curve(np.array([0.1, 0.5, 0.9]), np.full(3, label))
    assert plot_roc({"image": (fpr, tpr, None)}, tmp_path / "roc.png").is_file()
    assert labels == ["image: undefined, the test set lacks good or defective images"], labels
