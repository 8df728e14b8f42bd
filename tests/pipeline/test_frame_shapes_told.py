"""The daemon tells each camera whose frames are unlike the model's training images (inspector.artifacts.
frame_shapes): one line when first seen, again only when its frame size changes; a card without the range checks
nothing. A camera of 16:9 frames beside a model trained on 4:3 pictures had its parts squashed into the model's
square input, and its scores were meaningless without a word. Real files, a real video, the synthetic camera and
the real daemon through ``inspector run``."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

from pipeline_support import base_config, make_frame, write_video
from inspector.cli import main

TOLD = "unlike the model's training images"
# the range of a model trained on 128x96 pictures (make_frame's, 4:3)
TRAINED = {"min_width": 128, "max_width": 128, "min_height": 96, "max_height": 96,
           "min_aspect": 1.3333, "max_aspect": 1.3334}


def _model_trained_on(tiny_model: Path, folder: Path, sizes: dict | None) -> Path:
    """A copy of the tiny model whose card records ``sizes`` as its training images' range (None: none, as a card
    from before the range was recorded)."""
    folder.mkdir()
    for f in (tiny_model, tiny_model.with_suffix(".json")):
        shutil.copy(f, folder / f.name)
    card_path = folder / tiny_model.with_suffix(".json").name
    card = json.loads(card_path.read_text())
    if sizes is not None:
        card["training"] = {"data": {"image_sizes": sizes}}
    card_path.write_text(json.dumps(card))
    return folder / tiny_model.name


def _folder(path: Path, sizes: list[tuple[int, int]]) -> Path:
    """PNG frames of the (height, width) ``sizes`` in order, settled (old enough to be read at once)."""
    path.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        assert cv2.imwrite(str(path / f"{i:04d}.png"), make_frame(rng, h, w))
        os.utime(path / f"{i:04d}.png", (time.time() - 60, time.time() - 60))
    return path


def _run(tmp_path: Path, model: Path, cameras: list[dict], caplog) -> list[str]:
    cfg = base_config(model, f"ipc://{tmp_path}/ev.sock", cameras)
    (tmp_path / "inspector.yaml").write_text(yaml.safe_dump(cfg))
    with caplog.at_level(logging.INFO):
        assert main(["run", "--config", str(tmp_path / "inspector.yaml")]) == 0
    return [r.getMessage() for r in caplog.records]


def test_each_camera_unlike_the_training_images_is_told_once_and_again_when_its_size_changes(tiny_model, tmp_path,
                                                                                            caplog):
    model = _model_trained_on(tiny_model, tmp_path / "m", TRAINED)
    wide = _folder(tmp_path / "wide", [(96, 200)] * 3 + [(96, 260)] * 2 + [(96, 128)] * 2)
    cameras = [{"name": "like", "source": str(write_video(tmp_path / "like.avi", [False] * 4))},  # 128x96
               {"name": "wide", "source": str(wide)},
               {"name": "syn", "source": "synthetic", "max_frames": 4,
                "synthetic": {"texture": "procedural", "size": 32, "pool": 1}}]
    lines = _run(tmp_path, model, cameras, caplog)
    told = [m for m in lines if TOLD in m]
    range_said = "128x96 px, aspect ratio 1.33"
    assert [m for m in told if "camera 'like'" in m] == [], told
    wide_told = [m for m in told if "camera 'wide'" in m]
    assert len(wide_told) == 2, told
    assert "frames of 200x96 px (aspect ratio 2.08 " in wide_told[0] and range_said in wide_told[0]
    assert "frames of 260x96 px (aspect ratio 2.71 " in wide_told[1] and "its frame size changed" in wide_told[1]
    assert sum("camera 'wide': frames of 128x96 are like the model's training images again" in m for m in lines) == 1
    syn_told = [m for m in told if "camera 'syn'" in m]
    assert len(syn_told) == 1 and "frames of 32x32 px (aspect ratio 1.00 and size" in syn_told[0], told


def test_a_card_without_the_training_range_checks_nothing(tiny_model, tmp_path, caplog):
    model = _model_trained_on(tiny_model, tmp_path / "m", None)
    cameras = [{"name": "wide", "source": str(_folder(tmp_path / "wide", [(96, 260)] * 2))}]
    assert not [m for m in _run(tmp_path, model, cameras, caplog) if TOLD in m]


def test_check_tells_each_camera_whose_first_frame_is_unlike_the_training_images(tiny_model, tmp_path, caplog,
                                                                                 capsys):
    # --check opened every source and said OK; the frames' shape was told only once the line ran
    model = _model_trained_on(tiny_model, tmp_path / "m", TRAINED)
    cameras = [{"name": "like", "source": str(write_video(tmp_path / "like.avi", [False] * 2))},  # 128x96
               {"name": "wide", "source": str(_folder(tmp_path / "wide", [(96, 200)] * 2))}]
    cfg = base_config(model, f"ipc://{tmp_path}/ev.sock", cameras)
    (tmp_path / "inspector.yaml").write_text(yaml.safe_dump(cfg))
    with caplog.at_level(logging.WARNING):
        assert main(["run", "--config", str(tmp_path / "inspector.yaml"), "--check"]) == 0
    told = [r.getMessage() for r in caplog.records if TOLD in r.getMessage()]
    assert len(told) == 1 and "camera 'wide': frames of 200x96 px (aspect ratio 2.08 " in told[0], told
    assert "128x96 px, aspect ratio 1.33" in told[0] and "configuration OK" in capsys.readouterr().out
