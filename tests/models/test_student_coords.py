"""model.student_coords — the reduced student's stem sees each pixel's (y, x) (CoordConv)."""

import pytest
import torch

from inspector.models.registry import build_model, parse_model_config
from inspector.models.student import MirrorStudent, with_coordinates
from model_support import assert_fp32_graph_agrees

SIZE = 64


def make(**fields):
    torch.manual_seed(0)
    return build_model(parse_model_config({"name": "reduced_student", "image_size": [SIZE, SIZE],
                                           "teacher_weights": "random", **fields}))


def test_the_coordinates_run_from_minus_one_to_one_down_and_across():
    x = torch.zeros(2, 3, 4, 5)
    out = with_coordinates(x)
    assert out.shape == (2, 5, 4, 5) and out.dtype == x.dtype
    assert torch.equal(out[:, :3], x)
    assert torch.allclose(out[0, 3, :, 0], torch.tensor([-1.0, -1 / 3, 1 / 3, 1.0]))
    assert torch.allclose(out[1, 4, 0], torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))
    assert torch.equal(out[:, 3, :, 0:1].expand(2, 4, 5), out[:, 3]), "y is constant along a row"


@pytest.mark.parametrize("preset", ["offline", "paper"])
def test_the_stem_takes_them_only_when_asked(preset):
    assert make(preset=preset).config.student_coords is False
    assert make(preset=preset).student.stem[0].in_channels == 3
    assert make(preset=preset, student_coords=True).student.stem[0].in_channels == 5


def test_a_student_with_coordinates_can_tell_places_of_a_uniform_image_apart():
    """Far from the border a convolution stack cannot tell two places of a uniform image apart;
    with the coordinate channels it can (what it learns per place on aligned parts)."""
    flat = torch.full((1, 3, SIZE, SIZE), 0.3)
    interior = (slice(None), slice(None), slice(3, -3), slice(3, -3))  # clear of zero padding at stride 8
    spreads = {}
    for coords in (False, True):
        torch.manual_seed(0)
        student = MirrorStudent(make().teacher.feature_info, stem="lite", linear_heads=True, coords=coords).eval()
        with torch.no_grad():
            level = student(flat)[1][interior]  # stride 8 (blocks.2)
        spreads[coords] = float((level - level.mean(dim=(2, 3), keepdim=True)).abs().max())
    assert spreads[False] < 1e-5 and spreads[True] > 1e-3


def test_a_teacher_fed_student_takes_none():
    model = make(student_input="teacher", student_coords=True)
    assert model.student.coords is False
    with pytest.raises(ValueError, match="coordinate"):
        MirrorStudent(model.teacher.feature_info, stem="lite", source=model.teacher.feature_info[0], coords=True)



def test_the_coordinates_go_into_the_one_graph_that_onnxruntime_agrees_with(tmp_path):
    batch = torch.randint(0, 256, (1, SIZE, SIZE, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    assert_fp32_graph_agrees(make(student_coords=True), tmp_path, batch)
