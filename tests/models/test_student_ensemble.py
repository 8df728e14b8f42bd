"""An ensemble of students (model.students, Uninformed Students §3.3): mean's error + variance."""

import pytest
import torch

from inspector.errors import ConfigError
from inspector.models.common import configured_distance, ensemble_maps
from inspector.models.registry import build_model
from inspector.training.config import load_run_config


def config_for(tmp_path, **model):
    return load_run_config(base={"model": {"name": "reduced_student", "image_size": [64, 64],
                                           "teacher_weights": "random", **model},
                                 "data": {"path": str(tmp_path)}})


def separation(good: torch.Tensor, defect: torch.Tensor) -> float:
    return float(defect.mean() / good.mean())


def test_ensemble_mean_cuts_independent_errors_and_keeps_a_shared_one():
    """Good positions: each student errs independently; a defect: both err alike, same size.

    One student cannot tell them apart (ratio ~1); the error of the students' MEAN halves the
    independent part, so the defect stands out ~2x. Averaging the students' distances
    instead (mean of the maps) would keep ratio ~1: that is what the rule must not do.
    """
    g = torch.Generator().manual_seed(0)
    teacher = torch.zeros(1, 64, 32, 32)
    noise = [torch.randn(1, 64, 32, 32, generator=g) for _ in range(2)]
    shared = torch.randn(1, 64, 32, 32, generator=g)
    defect = torch.zeros(1, 1, 32, 32, dtype=torch.bool)
    defect[..., 8:24, 8:24] = True
    students = [torch.where(defect, shared, n) for n in noise]

    single = configured_distance("standardized_mse", teacher, students[0])
    error, variance = ensemble_maps("standardized_mse", teacher, students, size=1)
    mean_of_maps = sum(configured_distance("standardized_mse", teacher, s) for s in students) / 2

    assert separation(single[~defect], single[defect]) == pytest.approx(1.0, abs=0.1)
    assert separation(mean_of_maps[~defect], mean_of_maps[defect]) == pytest.approx(1.0, abs=0.1)
    assert separation(error[~defect], error[defect]) == pytest.approx(2.0, abs=0.2)
    # the students agree on the defect and disagree on good positions; e + v = mean of the maps
    assert float(variance[defect].abs().max()) < 1e-6 and float(variance[~defect].mean()) > 0.4
    assert torch.allclose(error + variance, mean_of_maps, atol=1e-5)


def test_ensemble_students_are_independent_and_all_trained(tmp_path):
    torch.manual_seed(0)
    one, two = (build_model(config_for(tmp_path, students=n).model) for n in (1, 2))
    a, b = two.students()
    assert len(two.trainable()) == 2 * len(one.trainable())
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert two.level_names == ("blocks.2", "blocks.4", "blocks.6",
                               "blocks.2/variance", "blocks.4/variance", "blocks.6/variance")
    images = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    two.loss(images).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in two.trainable()[:3] + two.trainable()[-3:])


def test_ensemble_of_identical_students_scores_as_one_student_and_has_its_loss(tmp_path):
    torch.manual_seed(0)
    one = build_model(config_for(tmp_path).model).eval()
    two = build_model(config_for(tmp_path, students=2).model).eval()
    state = one.state_dict()
    state.update({k.replace("student.", "extra_students.0.", 1): v for k, v in state.items()
                  if k.startswith("student.")})
    two.load_state_dict({k: v for k, v in state.items() if not k.startswith("level_norm")}, strict=False)
    images = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.allclose(two.loss(images), one.loss(images))
        maps_one, maps_two = one.level_maps(images), two.level_maps(images)
    assert all(torch.allclose(a, b) for a, b in zip(maps_one, maps_two[:3]))
    assert all(float(v.abs().max()) == 0 for v in maps_two[3:])


@pytest.mark.parametrize("value", [0, 5, 1.5, "two"])
def test_students_out_of_range_is_one_config_error(value, tmp_path):
    with pytest.raises(ConfigError, match="model.students"):
        config_for(tmp_path, students=value)


def test_paper_preset_keeps_one_student(tmp_path):
    config = load_run_config(base={"model": {"name": "reduced_student", "preset": "paper", "image_size": [64, 64],
                                             "teacher_weights": "random"}, "data": {"path": str(tmp_path)}})
    assert config.model.students == 1
    assert len(build_model(config.model).extra_students) == 0


@pytest.mark.slow  # two dynamo exports, about a minute of CPU
def test_ensemble_exports_one_graph_with_fp16_parity(tmp_path):
    """The exporter checks both graphs on ONNX Runtime against the torch model (FP32 and FP16)."""
    from inspector.deploy import export_run
    from inspector.training.checkpoint import save_checkpoint

    config = config_for(tmp_path, students=2, smoothing_sigma=1.0)
    torch.manual_seed(0)
    model = build_model(config.model).eval()
    with torch.no_grad():
        model.calibrate_maps(torch.randint(0, 256, (8, 64, 64, 3), dtype=torch.uint8).numpy())
    save_checkpoint(tmp_path / "best.pt", model, config, phase="student", epoch=1, val_loss=None, data=None)
    result = export_run(tmp_path / "best.pt", tmp_path / "export" / "rs2")
    assert {"fp32", "fp16"} <= set(result)
