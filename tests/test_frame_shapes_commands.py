"""Every command that scores a user's images tells each folder of them unlike the model's training images, once,
in the words of run, predict and calibrate (inspector.artifacts.frame_shapes), and keeps the lines in what it writes.

evaluate, verify, bench --data and quantize scored images of any shape without a word: a model trained on 64-px
squares evaluated (or gated, timed, quantized) on 16:9 pictures gave figures that say nothing of it. The torch
backend (predict or calibrate of a run folder) had no card, so nothing was checked there either. The real trained
and exported model, real files through OpenCV, the real commands through ``inspector.cli.main`` (run --check:
tests/pipeline/test_frame_shapes_told.py)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np

from inspector.cli import main

TOLD = "unlike the model's training images"
WIDE = (64, 120)  # (height, width): aspect ratio 1.88 beside the tiny model's 64x64 training images
LIKE = (64, 64)


def _dataset(root: Path, size: tuple[int, int], kinds=("good", "crack"), n: int = 3) -> Path:
    """An MVTec-layout test split (``test/<kind>``) of PNGs of ``size`` (height, width), and a train/good."""
    rng = np.random.default_rng(0)
    for split, kind in [("train", "good")] + [("test", k) for k in kinds]:
        folder = root / split / kind
        folder.mkdir(parents=True)
        for i in range(n):
            assert cv2.imwrite(str(folder / f"{i:03d}.png"), rng.integers(90, 150, (*size, 3), np.uint8))
    return root


def _told(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if TOLD in r.getMessage()]


def _wide_line(folder: Path) -> str:
    return f"{folder}: frames of 120x64 px (aspect ratio 1.88 {TOLD}: 64x64 px, aspect ratio 1.00)"


def test_evaluate_tells_each_test_folder_of_wide_images_once_and_keeps_the_lines_in_its_report(
        trained_run, tmp_path, caplog):
    data = _dataset(tmp_path / "wide", WIDE)
    with caplog.at_level(logging.WARNING):
        assert main(["evaluate", str(trained_run), "--data", str(data), "--out", str(tmp_path / "ev"),
                     "--no-per-level"]) == 0
    told = _told(caplog)
    assert len(told) == 2, told  # test/good and test/crack, once each
    assert {t.split(":")[0] for t in told} == {str(data / "test" / "good"), str(data / "test" / "crack")}
    assert any(t.startswith(_wide_line(data / "test" / "crack")) for t in told), told
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert sorted(metrics["warnings"]) == sorted(told)  # the report outlives the console
    assert "frames of 120x64 px" in (tmp_path / "ev" / "report.html").read_text()


def test_evaluate_of_images_like_the_training_ones_tells_nothing(trained_run, tmp_path, caplog):
    data = _dataset(tmp_path / "like", LIKE)
    with caplog.at_level(logging.WARNING):
        assert main(["evaluate", str(trained_run), "--data", str(data), "--out", str(tmp_path / "ev"),
                     "--no-plots", "--no-per-level"]) == 0
    assert not _told(caplog)
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["warnings"] == []


def _wide_then_like(tmp_path: Path, caplog, n: int, run) -> dict[str, tuple[Path, list[str], list[str]]]:
    """``run(data, report)`` on a dataset of wide good images, then one like the training ones: per name ("wide",
    "like"), (the dataset, the lines told, the ``warnings`` the command kept in its JSON ``report``)."""
    out = {}
    for name, size in (("wide", WIDE), ("like", LIKE)):
        data, report = _dataset(tmp_path / name, size, kinds=("good",), n=n), tmp_path / f"{name}.json"
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            run(data, report)
        out[name] = (data, _told(caplog), json.loads(report.read_text())["warnings"])
    return out


def test_verify_tells_a_folder_of_wide_images_once_and_keeps_it_in_its_report(exported_model, tmp_path, caplog):
    fp16 = exported_model.with_name(exported_model.stem + ".fp16.onnx")
    got = _wide_then_like(tmp_path, caplog, 5, lambda data, report: main(
        ["verify", str(fp16), "--reference", str(exported_model), "--data", str(data), "--report", str(report)]))
    data, told, kept = got["wide"]
    assert len(told) == 1 and told[0].startswith(_wide_line(data / "test" / "good")), told
    assert kept == told
    assert got["like"][1:] == ([], [])


def test_bench_on_wide_images_tells_them_once_and_keeps_it_in_its_json(exported_model, tmp_path, caplog):
    args = ["bench", str(exported_model), "--batch", "1", "--duration", "0.05", "--warmup", "0"]

    def run(data: Path, report: Path) -> None:
        assert main(args + ["--data", str(data), "--json", str(report)]) == 0

    got = _wide_then_like(tmp_path, caplog, 4, run)
    data, told, kept = got["wide"]
    assert len(told) == 1 and told[0].startswith(_wide_line(data / "test" / "good")), told
    assert kept == told
    assert got["like"][1:] == ([], [])


def _copy_export(exported_model: Path, folder: Path) -> Path:
    """The export's graphs and card in ``folder`` (quantize writes its INT8 graph beside the FP32 one)."""
    folder.mkdir()
    for f in exported_model.parent.glob(f"{exported_model.stem}.*"):
        shutil.copy(f, folder / f.name)
    return folder / exported_model.name


def test_quantize_on_wide_calibration_images_tells_them_once_and_keeps_it_in_the_int8_card(exported_model,
                                                                                          tmp_path, caplog):
    for name, size, expected in (("wide", WIDE, 1), ("like", LIKE, 0)):
        model = _copy_export(exported_model, tmp_path / f"m-{name}")
        good = _dataset(tmp_path / name, size, kinds=(), n=6) / "train" / "good"
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert main(["quantize", str(model), "--calibration", str(good), "--check-images", "0"]) == 0
        told = _told(caplog)
        assert len(told) == expected, told
        card = json.loads(model.with_name(f"{model.stem}.int8.json").read_text())
        assert card["graphs"]["int8"]["quantization"]["warnings"] == told
        if expected:
            assert told[0].startswith(_wide_line(good)), told


def test_predict_with_the_torch_backend_tells_wide_images_from_the_runs_checkpoint(trained_run, tmp_path, caplog,
                                                                                  capsys):
    wide = _dataset(tmp_path / "wide", WIDE, kinds=(), n=2) / "train" / "good"
    like = _dataset(tmp_path / "like", LIKE, kinds=(), n=2) / "train" / "good"
    with caplog.at_level(logging.WARNING):
        assert main(["predict", str(trained_run), str(wide), str(like), "--backend", "torch"]) == 0
    told = _told(caplog)
    assert len(told) == 1 and told[0].startswith(_wide_line(wide)), told
    assert len(capsys.readouterr().out.splitlines()) == 4  # every image still scored


def test_a_run_from_before_the_sizes_checks_nothing_and_a_bad_record_is_one_line(trained_run):
    import pytest
    import torch

    from inspector.artifacts.frame_shapes import run_frame_shapes
    from inspector.errors import ExportError

    data = torch.load(trained_run / "best.pt", map_location="cpu", weights_only=False)["data"]
    assert run_frame_shapes(data, (64, 64), "best.pt", retell=False) is not None  # what train records
    assert run_frame_shapes({**data, "image_sizes": None}, (64, 64), "best.pt", retell=False) is None
    assert run_frame_shapes(None, (64, 64), "best.pt", retell=False) is None
    bad = {**data, "image_sizes": {**data["image_sizes"], "min_height": 65}}
    with pytest.raises(ExportError, match=r"^checkpoint best.pt: data: image_sizes.min_height: 65 is above"):
        run_frame_shapes(bad, (64, 64), "best.pt", retell=False)
