"""The anti-aliased downscale (issue 17): one function, the same pixels on every path.

Training and evaluation (``load_batch``), calibration and verification (``load_batch`` with the
backend's sidecar method), ``inspector predict`` (``_batches``) and the daemon (``Preprocessor``,
BGR frames) must give byte-identical model inputs for the same large frame, for each method.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inspector.backends.base import InputSpec
from inspector.commands.predict import _batches
from inspector.data.datasets import Sample, load_batch
from inspector.data.images import DOWNSCALE_METHODS, read_image, resize_image
from inspector.errors import ExportError
from inspector.pipeline.preprocess import Preprocessor
from inspector.artifacts import input_spec


@pytest.fixture(scope="module")
def frame_1080p(tmp_path_factory):
    """A 1080p PNG with fine stripes (aliasing shows) and its BGR pixels as a camera gives them."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:1080, 0:1921]  # odd width: the integer step must trim
    stripes = (((xx // 2) + (yy // 3)) % 2 * 200).astype(np.uint8)
    bgr = np.dstack([stripes, rng.integers(0, 256, (1080, 1921), dtype=np.uint8), 255 - stripes])
    path = tmp_path_factory.mktemp("frames") / "frame.png"
    cv2.imwrite(str(path), bgr)
    return path, bgr


@pytest.mark.parametrize("method", DOWNSCALE_METHODS)
@pytest.mark.parametrize("policy", ["square", "shorter_side_crop"])
def test_every_path_gives_the_same_pixels(frame_1080p, method, policy):
    path, bgr = frame_1080p
    h, w = 96, 128
    train, _, _ = load_batch([Sample(path, 0, "good")], h, w, policy, downscale=method)
    errors: list[str] = []
    (_, predicted), = list(_batches([path], InputSpec(h, w, resize=policy, downscale=method), 8, errors))
    daemon = np.empty((h, w, 3), np.uint8)
    Preprocessor(InputSpec(h, w), policy, downscale=method).into(bgr, daemon, "cam")
    direct = resize_image(read_image(path), h, w, policy, downscale=method)
    assert not errors
    np.testing.assert_array_equal(train[0], direct)
    np.testing.assert_array_equal(predicted[0], direct)
    np.testing.assert_array_equal(daemon, direct)


@pytest.mark.parametrize("method", ["halving", "box_linear"])
def test_fast_methods_are_anti_aliased_like_area(frame_1080p, method):
    """Stripes finer than the output grid average to grey with every method; plain bilinear aliases."""
    _, bgr = frame_1080p
    stripes = np.ascontiguousarray(bgr[:, :, 0])
    area = resize_image(stripes, 256, 256, downscale="area").astype(float)
    fast = resize_image(stripes, 256, 256, downscale=method).astype(float)
    linear = cv2.resize(stripes, (256, 256), interpolation=cv2.INTER_LINEAR).astype(float)
    assert abs(fast.mean() - area.mean()) < 2 and fast.std() < 12 and area.std() < 12
    assert linear.std() > 4 * fast.std()  # what the anti-aliasing prevents
    assert np.abs(fast - area).mean() < 6


@pytest.mark.parametrize("method", ["halving", "box_linear"])
def test_power_of_two_factor_is_an_exact_box_mean(method):
    img = np.arange(8 * 12, dtype=np.uint8).reshape(8, 12) * 2
    out = resize_image(img, 2, 3, downscale=method)
    expected = img.reshape(2, 4, 3, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(out, expected, atol=0.5)


@pytest.mark.parametrize("shape, target", [((9, 64), (9, 8)), ((64, 9), (8, 9)), ((33, 130), (4, 8))])
def test_halving_one_axis_alone_is_a_box_mean_and_drops_the_odd_last_line(shape, target):
    """An axis still ≥ 2x its target after the joint halvings is halved alone (exact 2-tap means)."""
    img = np.random.default_rng(1).integers(0, 256, shape + (3,), dtype=np.uint8)
    out = resize_image(img, *target, downscale="halving")
    ky, kx = shape[0] // target[0], shape[1] // target[1]
    expected = img[:target[0] * ky, :target[1] * kx].astype(float)
    expected = expected.reshape(target[0], ky, target[1], kx, 3).mean(axis=(1, 3))
    assert out.shape == target + (3,)
    np.testing.assert_allclose(out, expected, atol=1.5)  # one rounding per halving step


def test_halving_keeps_16_bit_samples():
    img = (np.random.default_rng(2).integers(0, 4096, (1080, 1920, 3)) * 16).astype(np.uint16)
    out = resize_image(img, 135, 240, downscale="halving")
    expected = img.astype(float).reshape(135, 8, 240, 8, 3).mean(axis=(1, 3))
    assert out.dtype == np.uint16
    np.testing.assert_allclose(out, expected, atol=2)


def test_enlarging_is_the_same_for_every_method():
    img = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    for method in DOWNSCALE_METHODS:
        np.testing.assert_array_equal(resize_image(img, 64, 64, downscale="area"),
                                      resize_image(img, 64, 64, downscale=method))


def test_sidecar_method_legacy_and_unknown():
    def card(**extra):
        return {"schema_version": 1, "model": {"name": "m"}, "outputs": {}, "graphs": {},
                "input": {"height": 8, "width": 8, **extra}}

    assert input_spec(card(downscale="box_linear")).downscale == "box_linear"
    assert input_spec(card(downscale="halving")).downscale == "halving"
    assert input_spec(card()).downscale == "area"  # exported before the key: trained with INTER_AREA
    with pytest.raises(ExportError, match="input.downscale"):
        input_spec(card(downscale="cubic"))
    with pytest.raises(ValueError, match="downscale"):
        resize_image(np.zeros((20, 20), np.uint8), 10, 10, downscale="cubic")
