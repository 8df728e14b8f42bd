"""stfpm's offline levels: strides 8/16/32 (blocks.2/4/6), teacher and student built through the deepest compared
tap only, and checkpoints of the earlier strides-8/16 recipe reload as the model they were trained as."""

import pytest
import torch

from inspector.errors import ConfigError
from inspector.models.checkpoint import load_model
from inspector.models.registry import build_model
from inspector.training.checkpoint import save_checkpoint
from inspector.training.config import load_run_config


def _config(tmp_path, **model):
    return load_run_config(base={"model": {"name": "stfpm", "image_size": [64, 64], "teacher_weights": "random",
                                           **model}, "data": {"path": str(tmp_path)}})


def _taps(extractor) -> list[str]:
    return [info.name for info in extractor.feature_info]


def test_offline_stfpm_compares_strides_8_16_32_through_the_whole_network(tmp_path):
    model = build_model(_config(tmp_path).model)
    assert model.level_names == ("blocks.2", "blocks.4", "blocks.6")
    assert [i.stride for i in model.teacher.feature_info if i.name in model.level_names] == [8, 16, 32]
    assert _taps(model.teacher) == _taps(model.student) == ["blocks.1", "blocks.2", "blocks.3", "blocks.4",
                                                              "blocks.6"]


def test_a_checkpoint_of_the_strides_8_16_recipe_reloads_as_trained(tmp_path):
    """Its saved config names blocks.2/3: the networks end at blocks.3 as they did, the weights load strictly and
    the scores are the same."""
    config = _config(tmp_path, levels=["blocks.2", "blocks.3"])
    torch.manual_seed(0)
    model = build_model(config.model).eval()
    assert _taps(model.student) == ["blocks.1", "blocks.2", "blocks.3"]
    save_checkpoint(tmp_path / "best.pt", model, config, phase="student", epoch=1, val_loss=None, data=None)

    reloaded, run_config, _ = load_model(tmp_path / "best.pt")

    assert run_config.model.levels == ("blocks.2", "blocks.3") and _taps(reloaded.student) == _taps(model.student)
    images = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(reloaded(images)[0], model(images)[0])


def test_an_unknown_level_names_every_tap_of_the_preset(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown tap 'blocks\.5'.*'blocks\.4', 'blocks\.6'"):
        build_model(_config(tmp_path, levels=["blocks.2", "blocks.5"]).model)
