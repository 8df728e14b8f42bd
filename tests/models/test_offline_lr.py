"""The offline students' recipe must fit their targets within the step budget a CPU run has.

Session 5 (benchmarks/README.md): at Adam 1e-3 the random-init EfficientNet-Lite0 student of
stfpm explained only 24 / 30 % of the standardised teacher's variance on its own KolektorSDD
training images after 12 epochs (~240 steps), its loss still falling; at 3e-3 it reached the
same loss in half the epochs. Session 7: the reduced student at 12 epochs was still under-fitting
at 1e-3 too (3e-3: lower validation loss on every set measured). Each offline default must
out-fit Adam at 1e-3 on the same steps from the same initialisation.
"""

import pytest
import torch

from inspector.models.registry import build_model, get_entry, parse_model_config

SIZE = 64
STEPS = 10


def fitted_loss(name: str, lr: float) -> float:
    cfg = parse_model_config({"name": name, "image_size": [SIZE, SIZE], "teacher_weights": "random"})
    torch.manual_seed(0)
    model = build_model(cfg).train()
    g = torch.Generator().manual_seed(0)
    batch = torch.randint(0, 256, (4, SIZE, SIZE, 3), dtype=torch.uint8, generator=g)
    model.fit_feature_statistics(batch)
    targets = model.teacher_targets(batch)
    opt = torch.optim.Adam(model.trainable(), lr=lr)
    for _ in range(STEPS):
        opt.zero_grad()
        model.loss_with_targets(batch, targets).backward()
        opt.step()
    with torch.no_grad():
        return float(model.loss_with_targets(batch, targets))


@pytest.mark.parametrize("name", ["stfpm", "reduced_student", "mixed_teacher"])
def test_offline_default_lr_fits_more_in_the_same_steps_than_adam_1e3(name):
    default = get_entry(name).train_defaults["offline"]["lr"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: more threads only add contention (1.4 CPU s on one)
    try:
        # measured: stfpm 1.22 vs 1.80, reduced_student 0.435 vs 0.584, mixed_teacher 1.32 vs 1.62
        assert fitted_loss(name, default) < 0.85 * fitted_loss(name, 1e-3)
    finally:
        torch.set_num_threads(threads)
