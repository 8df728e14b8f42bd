"""AST's teacher: a conditional Real-NVP normalizing flow over feature maps, written out in torch.

Each of the coupling blocks (MODELS.md, "AST"):

1. permutes the channels with a fixed permutation drawn from a seeded generator
   at construction and kept as a buffer, so a checkpoint carries it;
2. splits the channels in two (``c1 = C // 2``, ``c2 = C − c1``) and applies a
   two-sided affine coupling conditioned on the positional encoding ``c``::

       y1 = x1 · exp(s2(x2, c)) + t2(x2, c)
       y2 = x2 · exp(s1(y1, c)) + t1(y1, c)

   where each subnet is conv k×k (in + cond → hidden) → ReLU → conv k×k
   (hidden → 2·out), replicate padding, its output multiplied by a learnable
   scalar γ initialised to 0, so every block starts as the identity;
3. soft-clamps the log-scales: s ↦ α·(2/π)·atan(s/α) (|s| < α).

Because the subnets are convolutions, s and t at one pixel depend on the
neighbourhood of the other half, but the Jacobian stays block-triangular, so
log|det J| is the sum of all log-scales. :meth:`ConditionalFlow.forward`
returns it per pixel (summed over channels), the form the per-pixel likelihood
map and the loss need.

Precision: the subnets (convolutions) run in whatever dtype their weights have
(FP16 in the FP16 export); the flow state, the soft clamp, exp and the affine
update stay in FP32, which also keeps ``Atan`` in FP32 (ONNX Runtime's CPU
provider has no FP16 kernel for it).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


def soft_clamp(s: torch.Tensor, alpha: float) -> torch.Tensor:
    """α·(2/π)·atan(s/α): smooth, odd, |result| < α; slope 2/π at 0 (the authors' formula)."""
    return torch.atan(s * (1.0 / alpha)) * (alpha * 2.0 / math.pi)


class CouplingSubnet(nn.Module):
    """conv k×k → ReLU → conv k×k (replicate padding), output scaled by γ (init 0)."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int, kernel: int) -> None:
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"coupling kernel sizes must be odd, got {kernel}")
        pad = kernel // 2
        self.conv1 = nn.Conv2d(in_channels, hidden, kernel, padding=pad, padding_mode="replicate")
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(hidden, out_channels, kernel, padding=pad, padding_mode="replicate")
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(x))) * self.gamma


class CouplingBlock(nn.Module):
    """Fixed channel permutation + two-sided affine coupling conditioned on ``cond``."""

    def __init__(self, channels: int, cond_channels: int, hidden: int, kernel: int, alpha: float,
                 permutation: torch.Tensor) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError(f"a coupling block needs at least 2 channels, got {channels}")
        if sorted(permutation.tolist()) != list(range(channels)):
            raise ValueError("permutation must be a permutation of range(channels)")
        self.c1 = channels // 2
        self.c2 = channels - self.c1
        self.alpha = float(alpha)
        self.register_buffer("permutation", permutation.to(torch.long))
        self.subnet2 = CouplingSubnet(self.c2 + cond_channels, 2 * self.c1, hidden, kernel)  # x2 → s2, t2
        self.subnet1 = CouplingSubnet(self.c1 + cond_channels, 2 * self.c2, hidden, kernel)  # y1 → s1, t1

    def _scale_shift(self, subnet: CouplingSubnet, x: torch.Tensor, cond: torch.Tensor, out: int):
        dtype = subnet.conv1.weight.dtype
        r = subnet(torch.cat([x.to(dtype), cond.to(dtype)], dim=1)).to(x.dtype)
        return soft_clamp(r[:, :out], self.alpha), r[:, out:]

    def forward(self, x: torch.Tensor, cond: torch.Tensor,
                with_logdet: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(y, per-pixel log|det J| of shape (N, 1, h, w) or None); ``x`` and ``y`` in FP32."""
        x = x.index_select(1, self.permutation)
        x1, x2 = x[:, : self.c1], x[:, self.c1:]
        s2, t2 = self._scale_shift(self.subnet2, x2, cond, self.c1)
        y1 = x1 * torch.exp(s2) + t2
        s1, t1 = self._scale_shift(self.subnet1, y1, cond, self.c2)
        y2 = x2 * torch.exp(s1) + t1
        y = torch.cat([y1, y2], dim=1)
        if not with_logdet:
            return y, None
        return y, s2.sum(dim=1, keepdim=True) + s1.sum(dim=1, keepdim=True)

    def inverse(self, y: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        y1, y2 = y[:, : self.c1], y[:, self.c1:]
        s1, t1 = self._scale_shift(self.subnet1, y1, cond, self.c2)
        x2 = (y2 - t1) * torch.exp(-s1)
        s2, t2 = self._scale_shift(self.subnet2, x2, cond, self.c1)
        x1 = (y1 - t2) * torch.exp(-s2)
        return torch.cat([x1, x2], dim=1).index_select(1, torch.argsort(self.permutation))


def state_dtype(x: torch.Tensor) -> torch.dtype:
    """The flow state's dtype: FP32, or FP64 when given FP64 (gradient and Jacobian checks)."""
    return torch.promote_types(x.dtype, torch.float32)


def seeded_permutation(channels: int, seed: int) -> torch.Tensor:
    return torch.randperm(channels, generator=torch.Generator().manual_seed(seed))


class ConditionalFlow(nn.Module):
    """Conditional Real-NVP: ``len(kernels)`` coupling blocks; block k's permutation uses seed ``seed + k``."""

    def __init__(self, channels: int, cond_channels: int, hidden: int,
                 kernels: Sequence[int] = (3, 3, 3, 5), alpha: float = 3.0, seed: int = 0) -> None:
        super().__init__()
        self.channels = channels
        self.blocks = nn.ModuleList(
            CouplingBlock(channels, cond_channels, hidden, k, alpha, seeded_permutation(channels, seed + i))
            for i, k in enumerate(kernels)
        )

    def forward(self, x: torch.Tensor, cond: torch.Tensor,
                with_logdet: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (N, C, h, w), cond (1 or N, Cc, h, w) → (z, per-pixel log|det J| (N, 1, h, w) or None).

        z is FP32 (FP64 when ``x`` is FP64), whatever dtype the subnets run in.

        ``with_logdet`` is a Python flag fixed per graph: the inference graph of
        the student–teacher score does not compute the log-determinant.
        """
        z = x.to(state_dtype(x))
        cond = cond.expand(z.shape[0], -1, -1, -1)
        logdet = None
        for block in self.blocks:
            z, block_logdet = block(z, cond, with_logdet)
            if block_logdet is not None:
                logdet = block_logdet if logdet is None else logdet + block_logdet
        return z, logdet

    def inverse(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = z.to(state_dtype(z))
        cond = cond.expand(x.shape[0], -1, -1, -1)
        for block in reversed(self.blocks):
            x = block.inverse(x, cond)
        return x
