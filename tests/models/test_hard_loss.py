"""EfficientAD's hard-feature loss (``model.hard_quantile``): applied by every model that accepts it.

Batzner et al. (WACV 2024) §3.2: the loss is the mean of the squared errors at or above their
``q``-quantile in the batch. A model whose loss does not apply it must refuse the setting, so a
configured value can never be silently ignored (mixed_teacher used to accept and ignore it).
"""

import pytest
import torch

from inspector.errors import ConfigError
from inspector.models.common import hard_mse, quantile_threshold
from inspector.models.registry import build_model, parse_model_config

SIZE = 64


def test_hard_mse_is_the_mean_of_the_errors_above_the_quantile():
    teacher = torch.arange(100, dtype=torch.float32).reshape(1, 1, 10, 10)
    student = torch.zeros_like(teacher)
    errors = teacher.flatten() ** 2
    assert float(hard_mse(teacher, student, 0.0)) == pytest.approx(float(errors.mean()))
    # q 0.9 of 0..99 is 89.1: errors of 90..99
    assert float(hard_mse(teacher, student, 0.9)) == pytest.approx(float(errors[90:].mean()))


@pytest.mark.parametrize("quantile", [0.5, 0.9, 0.99, 0.999])
@pytest.mark.parametrize("n", [7, 1000, 40_961])
def test_the_threshold_selects_what_torch_quantile_selects(quantile, n):
    values = torch.rand(n, generator=torch.Generator().manual_seed(n))
    expected = values >= torch.quantile(values, quantile)
    assert torch.equal(values >= quantile_threshold(values, quantile), expected)


def test_hard_mse_has_the_gradient_of_the_masked_mean():
    gen = torch.Generator().manual_seed(0)
    teacher = torch.randn(2, 4, 8, 8, generator=gen)
    student = torch.randn(2, 4, 8, 8, generator=gen, requires_grad=True)
    hard_mse(teacher, student, 0.9).backward()
    reference = student.detach().clone().requires_grad_(True)
    err = (teacher - reference).pow(2)
    err[err >= torch.quantile(err.detach().flatten(), 0.9)].mean().backward()
    assert torch.allclose(student.grad, reference.grad)


def test_hard_mse_takes_more_errors_than_torch_quantile_can():
    teacher = torch.zeros(17_000_000)  # torch.quantile refuses inputs above 16M elements
    teacher[-100:] = 2.0
    assert float(hard_mse(teacher, torch.zeros_like(teacher), 1 - 100 / 17_000_000)) == pytest.approx(4.0)


def _loss(name: str, quantile: float, train: bool = True, **extra) -> float:
    cfg = parse_model_config({"name": name, "image_size": [SIZE, SIZE], "teacher_weights": "random",
                              "hard_quantile": quantile, **extra})
    torch.manual_seed(0)
    model = build_model(cfg).train()
    batch = torch.randint(0, 256, (2, SIZE, SIZE, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    model.fit_feature_statistics(batch)
    model.train(train)
    with torch.no_grad():
        return float(model.loss_with_targets(batch, model.teacher_targets(batch)))


@pytest.mark.parametrize("name", ["reduced_student", "stfpm", "mixed_teacher"])
def test_the_offline_students_train_on_the_hard_errors_when_asked(name):
    # the same weights and batch: the mean of the top 10 % of errors is well above the mean of all
    assert _loss(name, 0.9) > 1.5 * _loss(name, 0.0)


@pytest.mark.parametrize("name", ["reduced_student", "stfpm", "mixed_teacher"])
def test_the_validation_loss_is_the_plain_mean_unless_asked_for_the_hard_loss(name):
    """The validation and seen-image losses (eval mode) stop training and pick the weights kept: a batch's
    top 1 % stopped the reduced student on ELPV mono at 19 epochs, the plain mean at 70 (benchmarks/README.md
    "Session 46"). validation_loss: hard measures the training's hard loss, as runs saved before did."""
    plain = _loss(name, 0.0, train=False)
    assert _loss(name, 0.99, train=False) == pytest.approx(plain, rel=1e-6)
    assert _loss(name, 0.99, train=False, validation_loss="hard") > 1.5 * plain
    assert _loss(name, 0.99, train=True) > 1.5 * _loss(name, 0.0, train=True)


def test_a_run_saved_before_the_validation_measure_was_a_field_keeps_measuring_the_hard_loss(tmp_path):
    from inspector.models.checkpoint import as_written

    raw = {"model": {"name": "reduced_student", "image_size": [64, 64], "hard_quantile": 0.9},
           "data": {"path": str(tmp_path)}}
    assert as_written(raw)["model"]["validation_loss"] == "hard"
    assert as_written({**raw, "model": {**raw["model"], "validation_loss": "mean"}})["model"]["validation_loss"] \
        == "mean"
    assert parse_model_config({"name": "reduced_student"}).validation_loss == "mean"


@pytest.mark.parametrize("model", [{"name": "reduced_student", "preset": "paper"}, {"name": "glance"}])
def test_a_model_whose_loss_ignores_the_setting_refuses_it_in_one_line(model):
    with pytest.raises(ConfigError, match="hard_quantile") as err:
        parse_model_config({**model, "hard_quantile": 0.9})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["reduced_student", "mixed_teacher", "stfpm"])
def test_the_offline_students_measured_with_it_train_on_the_hard_errors_by_default(name):
    """The reduced student since Session 46, mixed_teacher and stfpm since Session 47 (benchmarks/README.md); AST
    keeps the plain mean (an option there); the paper presets keep their papers' mean."""
    from inspector.models.common import OFFLINE_HARD_QUANTILE

    assert parse_model_config({"name": name}).hard_quantile == OFFLINE_HARD_QUANTILE > 0
    assert parse_model_config({"name": name, "preset": "paper"}).hard_quantile == 0
    assert parse_model_config({"name": "ast"}).hard_quantile == 0


def test_a_run_saved_with_the_plain_mean_resumes_with_it(tmp_path):
    """Every checkpoint records hard_quantile (the field predates the new default): a new default can't change it."""
    from inspector.models.checkpoint import load_model
    from inspector.training.checkpoint import save_checkpoint
    from inspector.training.config import load_run_config

    config = load_run_config(base={"model": {"name": "reduced_student", "image_size": [64, 64],
                                             "teacher_weights": "random", "hard_quantile": 0.0},
                                   "data": {"path": str(tmp_path)}})
    save_checkpoint(tmp_path / "best.pt", build_model(config.model).eval(), config,
                    phase="student", epoch=1, val_loss=None, data=None)
    _, reloaded, _ = load_model(tmp_path / "best.pt")
    assert reloaded.model.hard_quantile == 0.0


def _ast_student_loss(quantile: float, train: bool, **extra) -> float:
    cfg = parse_model_config({"name": "ast", "image_size": [SIZE, SIZE], "teacher_weights": "random",
                              "flow_hidden": 16, "student_hidden": 16, "hard_quantile": quantile, **extra})
    torch.manual_seed(0)
    model = build_model(cfg).train(train)
    batch = torch.randint(0, 256, (2, SIZE, SIZE, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return float(model.student_loss_from_targets(batch, model.student_targets(batch)))


def test_ast_s_student_trains_on_the_hard_errors_when_asked_and_validates_on_the_plain_mean():
    """AST's student regresses the flow's z by a squared error, so the hard loss applies to it (an option, off in
    both presets: benchmarks/README.md "Session 47"); it was refused as if AST's loss ignored it."""
    assert parse_model_config({"name": "ast"}).hard_quantile == 0
    assert _ast_student_loss(0.97, train=True) > 1.5 * _ast_student_loss(0.0, train=True)
    assert _ast_student_loss(0.97, train=False) == pytest.approx(_ast_student_loss(0.0, train=False), rel=1e-6)


def test_the_progress_line_names_the_hard_loss_only_for_the_phase_that_trains_on_it():
    """AST's flow phase keeps its likelihood loss whatever hard_quantile says: its progress line says 'train'."""
    from inspector.training.config import TrainConfig
    from inspector.training.loop import _train_label

    cfg = parse_model_config({"name": "ast", "image_size": [SIZE, SIZE], "teacher_weights": "random",
                              "flow_hidden": 16, "student_hidden": 16, "hard_quantile": 0.97})
    model = build_model(cfg)
    labels = {p.name: _train_label(model, p) for p in model.training_phases(TrainConfig())}
    assert labels == {"teacher": "train", "student": "train (hard loss)"}
