"""The 2-D sinusoidal positional encoding that conditions AST's teacher and feeds its student.

MODELS.md: 32 channels, the first 16 encode x (column), the last 16 encode y
(row); within each half sin and cos interleave (even channel sin, odd cos) at
frequencies exp(−ln(10⁴)·2i/16), i = 0..7, of the feature-map pixel index. The
encoding is computed once for the configured feature size and kept as a
constant buffer, so the exported graph holds a constant and no shape logic.
"""

from __future__ import annotations

import math

import torch


def positional_encoding(channels: int, height: int, width: int) -> torch.Tensor:
    """(1, channels, height, width) float32 encoding; ``channels`` must be a multiple of 4."""
    if channels <= 0 or channels % 4:
        raise ValueError(f"positional encoding needs a positive multiple of 4 channels, got {channels}")
    half = channels // 2
    freqs = torch.exp(torch.arange(0, half, 2, dtype=torch.float64) * (-math.log(1e4) / half))
    cols = torch.arange(width, dtype=torch.float64)[:, None] * freqs  # (W, half/2)
    rows = torch.arange(height, dtype=torch.float64)[:, None] * freqs  # (H, half/2)
    enc = torch.zeros(channels, height, width, dtype=torch.float64)
    enc[0:half:2] = torch.sin(cols).T[:, None, :]
    enc[1:half:2] = torch.cos(cols).T[:, None, :]
    enc[half::2] = torch.sin(rows).T[:, :, None]
    enc[half + 1::2] = torch.cos(rows).T[:, :, None]
    return enc.to(torch.float32).unsqueeze(0)
