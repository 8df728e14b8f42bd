"""model.residual_pool: teacher and student compared after PatchCore's local neighbourhood average."""

import pytest
import torch

from inspector.errors import ConfigError
from inspector.models.common import local_average, pooled_distance
from inspector.models.registry import build_model
from inspector.training.config import load_run_config


def _pairs(seed: int = 0):
    """Teacher features and two students: iid noise everywhere (good), plus a coherent 6x6 residual (defect)."""
    g = torch.Generator().manual_seed(seed)
    teacher = torch.randn(8, 16, 24, 24, generator=g)
    good = teacher + torch.randn(teacher.shape, generator=g)
    coherent = torch.zeros_like(teacher)
    coherent[:, :, 10:16, 10:16] = 0.7 * torch.randn(1, 16, 1, 1, generator=g)
    defect = teacher + torch.randn(teacher.shape, generator=g) + coherent
    return teacher, good, defect


@pytest.mark.parametrize("size, separated", [(1, False), (3, True)])
def test_pooling_separates_a_coherent_residual_from_uncorrelated_noise(size, separated):
    """Pixel by pixel the noise peak hides the weaker defect; a 3x3 average of the residual reveals it."""
    teacher, good, defect = _pairs()
    good_peak = pooled_distance("standardized_mse", teacher, good, size).amax(dim=(1, 2, 3))
    defect_peak = pooled_distance("standardized_mse", teacher, defect, size).amax(dim=(1, 2, 3))
    assert bool(defect_peak.min() > good_peak.max()) is separated


def test_local_average_does_not_darken_the_border():
    """count_include_pad=False: a constant map stays constant up to the edge, shape unchanged."""
    x = torch.full((1, 2, 5, 7), 3.0)
    for size in (3, 5):
        assert torch.allclose(local_average(x, size), x)
    assert local_average(x, 1) is x


@pytest.mark.parametrize("value", [0, 2, 11, 3.0])
def test_residual_pool_must_be_odd_integer_in_range(value, tmp_path):
    with pytest.raises(ConfigError, match="residual_pool"):
        load_run_config(base={"model": {"name": "reduced_student", "residual_pool": value,
                                        "teacher_weights": "random"}, "data": {"path": str(tmp_path)}})


@pytest.mark.parametrize("name", ["reduced_student", "mixed_teacher", "stfpm"])
def test_residual_pool_changes_the_maps_not_the_loss(name, tmp_path):
    """Level maps are the pooled distance; the training loss stays per pixel."""
    def model(pool):
        config = load_run_config(base={"model": {"name": name, "image_size": [64, 64], "residual_pool": pool,
                                                 "teacher_weights": "random"}, "data": {"path": str(tmp_path)}})
        torch.manual_seed(0)
        return build_model(config.model).eval()
    plain, pooled = model(1), model(3)
    images = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(plain.loss(images), pooled.loss(images))
        maps_plain, maps_pooled = plain.named_level_maps(images), pooled.named_level_maps(images)
    assert maps_plain.keys() == maps_pooled.keys()
    for key in maps_plain:
        assert maps_plain[key].shape == maps_pooled[key].shape
        assert not torch.allclose(maps_plain[key], maps_pooled[key], atol=0)  # a random teacher's deep maps are ~1e-11
