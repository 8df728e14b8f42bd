"""Training augmentation (``train.augment``): what each option does to a batch, and that the teacher's targets follow it."""

import numpy as np
import pytest
import torch

from inspector.models.registry import build_model, parse_model_config
from inspector.training.config import TrainConfig
from inspector.models.entry import default_phases
from inspector.training.loop import PHOTOMETRIC, PhaseLoss, batches, photometric


def _images(n: int = 6, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(40, 200, (n, size, size, 3), dtype=np.uint8)


def test_photometric_gives_each_image_its_own_brightness_and_contrast_within_the_range():
    images = torch.from_numpy(_images())
    out = photometric(images, torch.Generator().manual_seed(1))
    assert out.dtype == torch.uint8 and out.shape == images.shape
    x, y = images.double(), out.double()
    brightness = y.mean(dim=(1, 2, 3)) / x.mean(dim=(1, 2, 3))  # contrast keeps the mean: brightness alone moves it
    assert ((brightness > 1 - PHOTOMETRIC - 0.01) & (brightness < 1 + PHOTOMETRIC + 0.01)).all()
    assert len(set(brightness.round(decimals=3).tolist())) == len(images)  # each image its own factor
    spread = y.std(dim=(1, 2, 3)) / (x.std(dim=(1, 2, 3)) * brightness)
    assert ((spread > (1 - PHOTOMETRIC) - 0.02) & (spread < (1 + PHOTOMETRIC) + 0.02)).all()
    assert torch.equal(out, photometric(images, torch.Generator().manual_seed(1)))  # the seed decides


def test_photometric_saturates_at_white_and_black_instead_of_wrapping():
    white = torch.full((4, 8, 8, 3), 250, dtype=torch.uint8)
    white[:, :4] = 5
    out = photometric(white, torch.Generator().manual_seed(0), most=0.9)
    assert int(out.max()) <= 255 and int(out.min()) >= 0
    assert (out[:, 4:].int() >= out[:, :4].int()).all()  # bright stays brighter: no uint8 wrap-around


@pytest.mark.parametrize("augment", ["none", "flip", "photometric"])
def test_only_training_batches_are_augmented(augment):
    images = _images()
    plain = [b for _, b in batches(images, 4, None, augment)]  # no generator: validation order, untouched
    assert torch.equal(torch.cat(plain), torch.from_numpy(images))
    trained = torch.cat([b for _, b in batches(images, 3, torch.Generator().manual_seed(0), augment)])
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    assert torch.equal(trained, torch.from_numpy(images)[order]) == (augment == "none")


def test_an_augmented_phase_recomputes_the_teachers_targets_for_each_batch():
    """Cached targets are the teacher's view of the un-augmented image: the student would be taught to map a
    brightened image to the features of the original one."""
    model = build_model(parse_model_config({"name": "reduced_student", "image_size": [32, 32],
                                            "teacher_weights": "random"}))
    for augment, cached in (("none", True), ("photometric", False)):
        phase = default_phases(model, TrainConfig(augment=augment))[0]
        assert (PhaseLoss(phase, _images(), model).cache is not None) == cached
