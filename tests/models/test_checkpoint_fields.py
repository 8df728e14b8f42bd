"""Checkpoints written before a config field existed reload as the model they were trained as."""

import pytest
import torch

from inspector.artifacts.checkpoint import read_checkpoint, update_checkpoint
from inspector.models.checkpoint import load_model
from inspector.models.registry import build_model
from inspector.training.checkpoint import save_checkpoint
from inspector.training.config import load_run_config


def _saved_without(field: str, model_fields: dict, tmp_path):
    """A model built from ``model_fields`` and its checkpoint, rewritten as if ``field`` did not exist yet."""
    config = load_run_config(base={"model": {"image_size": [64, 64], "teacher_weights": "random", **model_fields},
                                   "data": {"path": str(tmp_path)}})
    torch.manual_seed(0)
    model = build_model(config.model).eval()
    path = tmp_path / "best.pt"
    save_checkpoint(path, model, config, phase="student", epoch=1, val_loss=None, data=None)
    payload = read_checkpoint(path)
    old = {k: v for k, v in payload["config"]["model"].items() if k != field}
    assert len(old) < len(payload["config"]["model"])
    update_checkpoint(path, payload, config={**payload["config"], "model": old})
    return model, path


def _same_scores(a, b) -> bool:
    images = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        return torch.equal(a(images)[0], b(images)[0])


@pytest.mark.parametrize("name", ["reduced_student", "mixed_teacher"])
def test_checkpoint_without_student_head_reloads_with_relu_outputs(name, tmp_path):
    """A run saved before ``student_head`` existed had ReLU/SiLU outputs; the offline default is now linear."""
    model, path = _saved_without("student_head", {"name": name, "student_head": "relu"}, tmp_path)

    reloaded, run_config, _ = load_model(path)

    assert run_config.model.student_head == "relu"
    assert _same_scores(reloaded, model)


def test_checkpoint_that_names_its_student_head_keeps_it(tmp_path):
    config = load_run_config(base={"model": {"name": "reduced_student", "image_size": [64, 64],
                                             "teacher_weights": "random"}, "data": {"path": str(tmp_path)}})
    assert config.model.student_head == "linear"
    save_checkpoint(tmp_path / "best.pt", build_model(config.model).eval(), config,
                    phase="student", epoch=1, val_loss=None, data=None)
    assert load_model(tmp_path / "best.pt")[1].model.student_head == "linear"


@pytest.mark.parametrize("name", ["reduced_student", "mixed_teacher", "stfpm"])
def test_checkpoint_without_residual_pool_reloads_pixel_by_pixel(name, tmp_path):
    """A run saved before ``residual_pool`` existed compared teacher and student per pixel (1)."""
    model, path = _saved_without("residual_pool", {"name": name}, tmp_path)

    assert load_model(path)[1].model.residual_pool == 1
    assert type(model.config).WRITTEN_BEFORE["residual_pool"] == 1


def test_checkpoint_without_students_reloads_as_one_student(tmp_path):
    """A run saved before ``students`` existed had one student; it reloads with exactly its maps."""
    model, path = _saved_without("students", {"name": "reduced_student"}, tmp_path)

    reloaded, run_config, _ = load_model(path)

    assert run_config.model.students == 1 and type(model.config).WRITTEN_BEFORE["students"] == 1
    assert _same_scores(reloaded, model)


def test_ast_checkpoint_without_features_reloads_on_raw_features(tmp_path):
    """An AST run saved before ``features`` existed fed its flow raw backbone features (and has no
    standardisation buffers), as both presets still do by default."""
    model, path = _saved_without("features", {"name": "ast", "features": "raw", "flow_hidden": 8,
                                              "student_hidden": 8}, tmp_path)

    reloaded, run_config, _ = load_model(path)

    assert run_config.model.features == "raw" and reloaded.standardize is None
    assert _same_scores(reloaded, model)


def test_checkpoint_without_student_coords_reloads_without_them(tmp_path):
    """A reduced student saved before ``student_coords`` existed had a 3-channel stem; the offline default is now 5."""
    model, path = _saved_without("student_coords", {"name": "reduced_student", "student_coords": False}, tmp_path)

    reloaded, run_config, _ = load_model(path)

    assert run_config.model.student_coords is False and reloaded.student.stem[0].in_channels == 3
    assert type(model.config).WRITTEN_BEFORE["student_coords"] is False
    assert _same_scores(reloaded, model)
