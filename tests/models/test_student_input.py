"""model.student_input: teacher — the reduced student starts from the frozen teacher's first tap."""

import pytest
import torch

from inspector.errors import ConfigError
from inspector.models.registry import build_model, parse_model_config
from model_support import assert_fp32_graph_agrees

SIZE = 64


def make(student_input, preset="offline"):
    torch.manual_seed(0)
    return build_model(parse_model_config({"name": "reduced_student", "preset": preset, "image_size": [SIZE, SIZE],
                                           "teacher_weights": "random", "student_input": student_input}))


def images(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, SIZE, SIZE, 3), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("preset", ["offline", "paper"])
def test_the_student_sees_the_teachers_first_tap_and_matches_its_levels(preset):
    model = make("teacher", preset).eval()
    seen = []
    model.student.stem.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    x = model.network_input(images())
    with torch.no_grad():
        teacher, source = model.teacher_pass(x)
        model.level_maps(images())
    assert torch.equal(seen[0], model.teacher(x)[0]) and torch.equal(source, seen[0])
    assert [t.shape for t in teacher] == [s.shape for s in model.student_features(source)]
    image_fed = make("image", preset)
    # no stem and no first stage of its own: fewer parameters than the student that sees the image
    assert sum(p.numel() for p in model.trainable()) < sum(p.numel() for p in image_fed.trainable())


def test_cached_targets_carry_the_source_and_give_the_same_loss_as_one_pass():
    model = make("teacher").train()
    batch = images(4)
    targets = model.teacher_targets(batch)
    assert len(targets) == len(model.level_names) + 1
    assert targets[-1].shape[1] == model.teacher.feature_info[0].channels
    cached = model.loss_with_targets(batch, targets)
    assert torch.allclose(cached, model.loss(batch))
    cached.backward()
    # the stem (a BatchNorm on the source) and every stage learn; heads of levels that are not compared do not
    learned = [*model.student.stem.parameters(), *model.student.stages.parameters()]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in learned)
    assert all(p.grad is None for p in model.teacher.parameters())


def test_the_image_fed_student_is_unchanged_by_the_option():
    """The default builds the same parameters and computes the same maps as before the option existed."""
    default = build_model(parse_model_config({"name": "reduced_student", "image_size": [SIZE, SIZE],
                                              "teacher_weights": "random"}))
    assert default.student_source is None
    assert set(default.state_dict()) == set(make("image").state_dict())
    assert len(default.teacher_targets(images())) == len(default.level_names)


def test_the_fed_student_exports_as_one_graph_that_onnxruntime_agrees_with(tmp_path):
    assert_fp32_graph_agrees(make("teacher"), tmp_path, images(1))

@pytest.mark.parametrize("value", ["features", 1, None])
def test_an_unknown_student_input_is_one_config_error(value):
    with pytest.raises(ConfigError, match="student_input"):
        parse_model_config({"name": "reduced_student", "student_input": value})
