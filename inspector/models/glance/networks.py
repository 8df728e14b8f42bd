"""Glance's trainable networks: Local-Net, Global-Net (partial convolutions) and the DAD head.

Shapes: a patch batch is (B, 3, p, p) ImageNet-normalised; features are (B, n).
The Global-Net's windows are (N·K, 3, c', c') with one mask (K, 1, c', c') shared
by the N images of a batch (the grid is the same for every image).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LocalNet(nn.Module):
    """Patch (B, 3, p, p) → local feature Z_l (B, n): strided 3×3 convs, then one p/2^k-wide conv to 1×1.

    No BatchNorm: it is trained in phase 1 and frozen (but in train mode) in phase 2,
    where batch statistics would drift.
    """

    def __init__(self, patch: int, channels: tuple[int, ...], out_dim: int) -> None:
        super().__init__()
        layers, c_in = [], 3
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(c_in, out_dim, patch // 2 ** len(channels))  # valid: the whole remaining patch

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(patches)).flatten(1)


class PartialConv2d(nn.Conv2d):
    """Partial convolution (Liu et al., ECCV 2018; paper eq. 5).

    x' = W·(X ⊙ M)·sum(1)/sum(M) + b where sum(M) > 0, else 0; the new mask is
    sum(M) > 0. Masked input values are multiplied by exactly 0, so nothing under
    the mask reaches the output. Zero padding counts as masked.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        kh, kw = self.kernel_size
        self.register_buffer("ones", torch.ones(1, 1, kh, kw), persistent=False)
        self.window = float(kh * kw)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N·K, C, h, w), mask (K, 1, h, w) → (N·K, C', h', w'), (K, 1, h', w')."""
        k = mask.shape[0]
        masked = (x.view(-1, k, *x.shape[1:]) * mask.unsqueeze(0)).view(x.shape)
        out = F.conv2d(masked, self.weight, None, self.stride, self.padding)
        with torch.no_grad():
            count = F.conv2d(mask, self.ones.to(mask.dtype), None, self.stride, self.padding)
            new_mask = (count > 0).to(mask.dtype)
            ratio = self.window / count.clamp_min(1.0) * new_mask
        out = out.view(-1, k, *out.shape[1:]) * ratio.unsqueeze(0) + self.bias.view(1, 1, -1, 1, 1) * new_mask
        return out.view(-1, *out.shape[2:]), new_mask


class GlobalNet(nn.Module):
    """Context windows with the patch masked out → global feature Z_g (N·K, n), FP32.

    Strided partial 3×3 convs, then the mean over the positions the final mask
    marks valid (in FP32: a reduction), then a linear layer.
    """

    def __init__(self, channels: tuple[int, ...], out_dim: int) -> None:
        super().__init__()
        convs, c_in = [], 3
        for c in channels:
            convs.append(PartialConv2d(c_in, c, 3, stride=2, padding=1))
            c_in = c
        self.convs = nn.ModuleList(convs)
        self.proj = nn.Linear(c_in, out_dim)

    def forward(self, windows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x, m = windows, mask.to(windows.dtype)
        for conv in self.convs:
            x, m = conv(x, m)
            x = F.leaky_relu(x, 0.2)
        k = m.shape[0]
        x = x.float().view(-1, k, *x.shape[1:])
        m = m.float().unsqueeze(0)
        pooled = (x * m).sum(dim=(3, 4)) / m.sum(dim=(3, 4)).clamp_min(1.0)  # (N, K, C)
        return self.proj(pooled.flatten(0, 1).to(self.proj.weight.dtype)).float()


class DadHead(nn.Module):
    """The DAD classifier C(Z*, Z_g): fully connected layers on [Z*, Z_g] → logit (B,) of "normal"."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, local: torch.Tensor, global_: torch.Tensor) -> torch.Tensor:
        dtype = self.net[0].weight.dtype
        return self.net(torch.cat([local, global_], dim=1).to(dtype)).float().squeeze(1)


def compactness_loss(features: torch.Tensor) -> torch.Tensor:
    """Mean off-diagonal entry of the batch correlation matrix of ``features`` (B, n) (paper eq. 2).

    The paper sums the entries; the mean keeps the weight λ_c independent of n.
    """
    z = features.float()
    z = (z - z.mean(dim=0)) / (z.std(dim=0) + 1e-6)
    corr = z.T @ z / max(z.shape[0] - 1, 1)
    n = corr.shape[0]
    off = corr.sum() - corr.diagonal().sum()
    return off / (n * (n - 1))
