"""Per-level map normalisation: the quantile rule, the per-position statistics and their fallback."""

import torch

from inspector.models.common import LevelNormalization, position_statistics


def good_maps(n=60, aligned=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    maps = torch.rand(n, 1, 24, 12, generator=g)
    if aligned:  # a structure every good image has at the same place scores high there
        maps[:, :, 4:8, 2:5] = 2.0 + 3.0 * torch.rand(n, 1, 4, 3, generator=g)
    return maps


def test_texture_without_positional_structure_falls_back_to_global():
    offset, gain = position_statistics(good_maps())
    assert offset.shape == gain.shape == (1, 1, 24, 12)
    # Positions differ by sampling noise only: the shrinkage factor is (near) zero.
    assert offset.abs().max() < 0.02 * good_maps().std()
    assert (gain - 1).abs().max() < 0.02


def test_aligned_structure_is_measured_against_its_own_range():
    maps = good_maps(aligned=True)
    norm_global, norm_pos = LevelNormalization(1), LevelNormalization(1, [(24, 12)])
    norm_global.fit([maps])
    norm_pos.fit([maps])
    test = good_maps(n=20, aligned=True, seed=1)
    test[10:, :, 18:20, 8:10] += 1.0  # a defect where good images are quiet
    for norm, separates in ((norm_global, False), (norm_pos, True)):
        peak = norm([test])[0].flatten(1).amax(1)
        # Globally, the structure's peaks on good images hide the defect; per position they do not.
        assert bool(peak[10:].min() > peak[:10].max()) is separates


def test_positional_buffers_are_in_the_state_dict():
    norm = LevelNormalization(2, [(8, 4), (4, 2)])
    keys = set(norm.state_dict())
    assert {"shift", "scale", "offset0", "gain0", "offset1", "gain1"} <= keys
    assert norm.is_identity()
    norm.fit([good_maps()[:, :, :8, :4], good_maps(aligned=True)[:, :, :4, :2]])
    assert not norm.is_identity()


def test_few_validation_images_fall_back_to_global_statistics():
    from inspector.models.common import MIN_POSITION_IMAGES

    offset, gain = position_statistics(good_maps(n=MIN_POSITION_IMAGES - 1, aligned=True))
    assert not offset.any() and (gain == 1).all()
    offset, gain = position_statistics(good_maps(n=MIN_POSITION_IMAGES, aligned=True))
    assert offset.abs().max() > 0  # enough images: the aligned structure is measured


def test_a_position_where_good_images_agree_gets_a_bounded_gain():
    from inspector.models.common import MAX_POSITION_GAIN

    maps = good_maps(n=40, aligned=True)
    maps[:, :, 12:24, :] = 0.5  # every good image identical here: variance 0
    _, gain = position_statistics(maps)
    assert torch.isfinite(gain).all() and float(gain.max()) <= MAX_POSITION_GAIN
    assert float(gain.max()) == MAX_POSITION_GAIN  # the quiet block hits the bound, not 1e6


def test_calibrating_twice_fits_the_same_constants():
    # calibrate_maps collects the maps through the normalisation itself: unless every buffer,
    # per-position offsets included, is back at the identity, a second fit sees corrected maps.
    from inspector.models.registry import build_model, parse_model_config

    torch.manual_seed(0)
    model = build_model(parse_model_config({"name": "reduced_student", "image_size": [64, 64],
                                            "teacher_weights": "random", "position_normalization": "shrunk"}))
    val = torch.randint(0, 256, (8, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    model.calibrate_maps(val)
    first = {k: v.clone() for k, v in model.level_norm.state_dict().items()}
    model.calibrate_maps(val)
    for key, value in model.level_norm.state_dict().items():
        torch.testing.assert_close(value, first[key], msg=key)
    assert not model.level_norm.is_identity()


def test_a_checkpoint_without_positional_buffers_loads_them_as_the_identity():
    # Written by a model that ignored position_normalization (the values it computed with).
    old = LevelNormalization(2)
    old.fit([good_maps(), good_maps(seed=1)])
    new = LevelNormalization(2, [(24, 12), (24, 12)])
    new.load_state_dict(old.state_dict())
    test = [good_maps(n=5, seed=2), good_maps(n=5, seed=3)]
    for a, b in zip(old(test), new(test)):
        torch.testing.assert_close(a, b)
