"""The default input size follows the training images' aspect at a fixed pixel budget."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inspector.training.config import load_run_config
from inspector.training.input_size import size_for_aspect
from inspector.training.loop import resolve_input


@pytest.mark.parametrize("aspect, expected", [(1.0, (256, 256)), (2.5, (416, 160)), (0.4, (160, 416))])
def test_size_keeps_the_aspect_and_the_pixel_count(aspect, expected):
    h, w = size_for_aspect(aspect, 256 * 256)
    assert (h, w) == expected
    assert h % 32 == 0 and w % 32 == 0
    assert abs(h * w / 65536 - 1) < 0.1


def test_extreme_aspects_are_clamped_to_usable_sides():
    h, w = size_for_aspect(200.0, 256 * 256)
    assert w == 64 and h == 2048


def _folder(tmp_path, shapes):
    tmp_path.mkdir(parents=True, exist_ok=True)
    for i, (h, w) in enumerate(shapes):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), np.full((h, w), 128, np.uint8))
    return tmp_path


def test_default_run_derives_the_size_from_the_median_aspect(tmp_path):
    data = _folder(tmp_path, [(100, 250), (120, 300), (80, 200), (500, 500), (90, 225)])  # median aspect 0.4
    config = resolve_input(load_run_config(base={"data": {"path": str(data)}}))
    assert config.model.image_size == (160, 416)
    assert config.data.input_size == "fixed"  # a saved run reloads at exactly this size


def test_an_explicit_size_or_a_paper_preset_is_kept(tmp_path):
    data = _folder(tmp_path, [(100, 250), (120, 300)])
    explicit = resolve_input(load_run_config(base={"model": {"image_size": [64, 96]}, "data": {"path": str(data)}}))
    assert explicit.model.image_size == (64, 96)
    paper = resolve_input(load_run_config(base={"model": {"preset": "paper"}, "data": {"path": str(data)}}))
    assert paper.model.image_size == (256, 256)


def test_the_pixel_budget_is_a_data_setting(tmp_path):
    data = _folder(tmp_path, [(100, 250), (120, 300), (80, 200)])  # median aspect 0.4
    config = resolve_input(load_run_config(base={"data": {"path": str(data), "input_pixels": 288 * 288}}))
    assert config.model.image_size == (192, 448)  # 0.4 aspect at 82,944 px, sides on the stride


@pytest.mark.parametrize("value", [63 * 63, 2049 * 2048, "many"])
def test_a_bad_pixel_budget_is_one_line_naming_the_key(value):
    from inspector.errors import ConfigError

    with pytest.raises(ConfigError, match="input_pixels") as err:
        load_run_config(base={"data": {"path": "x", "input_pixels": value}})
    assert "\n" not in str(err.value)


def test_the_median_aspect_is_symmetric_under_transposition(tmp_path):
    """Half the parts lying, half standing (an even count): a square input, not a 25:1 strip of the mean aspect."""
    mixed = _folder(tmp_path / "a", [(40, 2000), (2000, 40)])
    both = resolve_input(load_run_config(base={"data": {"path": str(mixed)}}))
    assert both.model.image_size == (256, 256)
    lying = _folder(tmp_path / "b", [(40, 400), (50, 400)])
    standing = _folder(tmp_path / "c", [(400, 40), (400, 50)])
    size = resolve_input(load_run_config(base={"data": {"path": str(lying)}})).model.image_size
    assert resolve_input(load_run_config(base={"data": {"path": str(standing)}})).model.image_size == size[::-1]


def test_no_readable_training_image_says_why(tmp_path):
    """Every training image corrupt: the one line names a file and the reason, not just 'no readable image'."""
    from inspector.errors import DataError

    for i in range(3):
        (tmp_path / f"{i}.png").write_bytes(b"\\x89PNG\\r\\n\\x1a\\ntruncated")
    why = r"none of the 3 training image\(s\) tried could be read, e\.g\. .*0\.png: cannot decode image"
    with pytest.raises(DataError, match=why):
        resolve_input(load_run_config(base={"data": {"path": str(tmp_path)}}))
