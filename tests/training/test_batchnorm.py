"""BatchNorm statistics of a trained student describe the weights it is evaluated with."""

import numpy as np
import torch
from torch import nn

from inspector.models.entry import Phase
from inspector.training.batchnorm import recompute_batchnorm_statistics
from inspector.training.config import TrainConfig
from inspector.training.loop import fit


class SlowMomentumStudent(nn.Module):
    """Conv + BatchNorm with TensorFlow's momentum (torch 0.01), as in the EfficientNet-Lite blocks."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=True)
        nn.init.constant_(self.conv.bias, 5.0)  # activations far from BatchNorm's initial mean 0
        self.bn = nn.BatchNorm2d(4, momentum=0.01)
        self.frozen_bn = nn.BatchNorm2d(4).eval()  # a teacher's layer: never touched

    def train(self, mode=True):
        super().train(mode)
        self.frozen_bn.eval()
        return self

    def features(self, images):
        return self.conv(images.permute(0, 3, 1, 2).float() / 255)

    def loss(self, images):
        return self.bn(self.features(images)).pow(2).mean()


def test_running_statistics_are_the_epoch_average_of_the_current_weights():
    model = SlowMomentumStudent()
    images = np.random.default_rng(0).integers(0, 256, (24, 16, 16, 3), dtype=np.uint8)
    cfg = TrainConfig(epochs=1, batch_size=8, optimizer="sgd", lr=1e-12, momentum=0.0, weight_decay=0.0)
    phase = Phase("student", list(model.parameters()), model.loss, cfg)
    fit(model, phase, images, images[:8], on_best=lambda epoch, val: None)

    with torch.no_grad():
        feats = model.features(torch.from_numpy(images))
    expected_mean = feats.mean(dim=(0, 2, 3))
    # With the layer's own momentum (0.01) three steps leave the running mean near 0, not near 5.
    torch.testing.assert_close(model.bn.running_mean, expected_mean, rtol=1e-3, atol=1e-3)
    assert torch.all(model.frozen_bn.running_mean == 0) and torch.all(model.frozen_bn.running_var == 1)


def test_statistics_follow_the_current_weights_and_momentum_is_kept():
    model = SlowMomentumStudent().train()
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8))
    model.frozen_bn.running_mean.fill_(3.0)
    with torch.no_grad():
        model.conv.bias.fill_(-7.0)  # as if the last step had moved the weights
    n = recompute_batchnorm_statistics(model, lambda idx, batch: model.loss(batch), images, batch_size=8,
                                       max_images=16)
    assert n == 1 and model.bn.momentum == 0.01
    with torch.no_grad():
        sample = images[np.linspace(0, 39, 16).round().astype(int)]
        expected = model.features(sample).mean(dim=(0, 2, 3))
    torch.testing.assert_close(model.bn.running_mean, expected, rtol=1e-4, atol=1e-4)
    assert torch.all(model.frozen_bn.running_mean == 3.0)
