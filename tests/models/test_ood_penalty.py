"""EfficientAD's penalty on out-of-distribution images (``model.ood_penalty``).

Batzner et al. (WACV 2024) §3.2: L_ST = L_hard + mean(S(P)²) over images P that are not the
product. The penalty is a training term only: the validation loss (the stopping signal) and the
BatchNorm statistics of the kept weights are the product's images alone.
"""

import numpy as np
import pytest
import torch

from inspector.errors import ConfigError
from inspector.models.entry import default_phases
from inspector.models.registry import build_model, parse_model_config
from inspector.training.loop import PhaseLoss, make_optimizer
from inspector.training.config import TrainConfig

SIZE = 64


def _model(name: str, penalty: float):
    cfg = parse_model_config({"name": name, "image_size": [SIZE, SIZE], "teacher_weights": "random",
                              "ood_penalty": penalty})
    torch.manual_seed(0)
    return build_model(cfg).train()


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


@pytest.mark.parametrize("name,preset", [("ast", "offline"), ("glance", "offline"), ("stfpm", "paper")])
def test_a_model_the_penalty_cannot_apply_to_refuses_it(name, preset):
    with pytest.raises(ConfigError, match="ood_penalty"):
        parse_model_config({"name": name, "preset": preset, "ood_penalty": 1.0})


@pytest.mark.parametrize("value", [-0.5, 11.0])
def test_the_weight_has_a_range(value):
    with pytest.raises(ConfigError, match="ood_penalty"):
        parse_model_config({"name": "reduced_student", "ood_penalty": value})


@pytest.mark.parametrize("name", ["reduced_student", "mixed_teacher", "stfpm"])
def test_the_penalty_is_the_mean_squared_student_output(name):
    model = _model(name, 1.0)
    images = torch.from_numpy(_images(2))
    with torch.no_grad():
        penalty = float(model.ood_penalty_loss(images))
    assert penalty > 0
    phase = default_phases(model, TrainConfig())[0]
    assert phase.penalty is not None and phase.penalty_weight == 1.0
    assert default_phases(_model(name, 0.0), TrainConfig())[0].penalty is None


def _phase_loss(penalty: float, ood_seed: int | None):
    model = _model("reduced_student", penalty)
    images = _images(4)
    model.fit_feature_statistics(torch.from_numpy(images))
    phase = default_phases(model, TrainConfig(augment="none"))[0]
    return model, PhaseLoss(phase, images, model, ood_seed=ood_seed), torch.from_numpy(images[:2])


def test_only_the_training_loss_carries_the_penalty():
    model, train_loss, batch = _phase_loss(2.0, ood_seed=0)
    _, val_loss, _ = _phase_loss(2.0, ood_seed=None)
    idx = np.arange(2)
    with torch.no_grad():
        imitation = float(val_loss(idx, batch))
        assert float(train_loss(idx, batch, penalty=False)) == pytest.approx(imitation, rel=1e-5)
        assert float(train_loss(idx, batch)) > imitation + 1e-3


def test_training_with_the_penalty_lowers_the_student_output_on_unseen_ood_images():
    from inspector.data.ood import ood_batch

    held_out = torch.from_numpy(ood_batch(4, SIZE, SIZE, np.random.default_rng(99)))
    after = {}
    for weight in (0.0, 5.0):
        model, loss_fn, batch = _phase_loss(weight, ood_seed=0)
        optimizer = make_optimizer(model.trainable(), TrainConfig(optimizer="adam", lr=3e-3))
        # 30 steps: against the default top-3 % hard loss (larger than the top 10 %'s), 15 left the ratio at 0.50
        for _ in range(30):
            optimizer.zero_grad()
            loss_fn(np.arange(2), batch).backward()
            optimizer.step()
        with torch.no_grad():  # train mode: BatchNorm from the batch, as in the penalty's own steps
            after[weight] = float(model.ood_penalty_loss(held_out))
    assert after[5.0] < 0.5 * after[0.0], after
