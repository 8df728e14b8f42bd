"""AST's asymmetric student: a plain residual CNN that regresses the teacher flow's output z.

MODELS.md: conv3×3 (features + positional → hidden) → LeakyReLU(0.2); residual
blocks (conv3×3 → BN → LReLU → conv3×3 → BN → LReLU, then + skip); conv3×3
(hidden → feature channels). Zero padding, resolution preserved. The student
is "asymmetric" because, unlike the teacher, it is not invertible: that is what
makes its error on unseen patterns larger than the flow's.
"""

from __future__ import annotations

import torch
from torch import nn

SLOPE = 0.2


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
            nn.LeakyReLU(SLOPE),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
            nn.LeakyReLU(SLOPE),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class AstStudent(nn.Module):
    """(N, in, h, w) → (N, out, h, w): stem conv, ``blocks`` residual blocks, output conv."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int, blocks: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1), nn.LeakyReLU(SLOPE))
        self.blocks = nn.Sequential(*(ResidualBlock(hidden) for _ in range(blocks)))
        self.head = nn.Conv2d(hidden, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))
