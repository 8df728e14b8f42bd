"""Negative patches for the DAD head: small random stains (paper §3.2, after Collin & De Vleeschouwer 2020).

A stain is an irregular blob: an ellipse of random axes and angle whose radius is
modulated by two random low harmonics, filled with one random colour. The mask
is binary, so a stained patch differs from its original only inside the stain.
"""

from __future__ import annotations

import math

import torch


def stain_masks(count: int, size: int, scale: tuple[float, float], generator: torch.Generator | None = None,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """(count, 1, size, size) float {0, 1}: one blob per patch, semi-axes ``scale`` × size (fractions)."""
    def uniform(*shape, low=0.0, high=1.0):
        return low + (high - low) * torch.rand(*shape, generator=generator).to(device)

    lo, hi = scale
    a = uniform(count, 1, 1, low=lo, high=hi) * size
    b = uniform(count, 1, 1, low=lo, high=hi) * size
    cy = uniform(count, 1, 1, low=0.25, high=0.75) * size
    cx = uniform(count, 1, 1, low=0.25, high=0.75) * size
    angle = uniform(count, 1, 1, high=math.pi)
    wobble = uniform(count, 2, low=0.0, high=0.25)
    phase = uniform(count, 2, high=2 * math.pi)
    coords = torch.arange(size, device=device, dtype=torch.float32) + 0.5
    dy = coords.view(1, -1, 1) - cy
    dx = coords.view(1, 1, -1) - cx
    u = dx * torch.cos(angle) + dy * torch.sin(angle)
    v = -dx * torch.sin(angle) + dy * torch.cos(angle)
    theta = torch.atan2(v, u)
    radius = 1.0 + sum(wobble[:, k, None, None] * torch.cos((k + 2) * theta + phase[:, k, None, None])
                       for k in range(2))
    inside = (u / a).pow(2) + (v / b).pow(2) <= radius.pow(2)
    return inside.float().unsqueeze(1)


def add_stains(patches: torch.Tensor, colour_low: torch.Tensor, colour_high: torch.Tensor,
               scale: tuple[float, float] = (0.1, 0.3),
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stain every patch: (stained (B, C, p, p), mask (B, 1, p, p)).

    ``colour_low``/``colour_high`` (C,): the range of a channel's value in the
    patches' own units (normalised 0 and 255 for ImageNet-normalised patches);
    each stain's colour is drawn uniformly in it.
    """
    b, c, p, _ = patches.shape
    mask = stain_masks(b, p, scale, generator, patches.device).to(patches.dtype)
    t = torch.rand(b, c, 1, 1, generator=generator).to(patches.device, patches.dtype)
    colour = colour_low.view(1, c, 1, 1) + t * (colour_high - colour_low).view(1, c, 1, 1)
    return patches * (1 - mask) + colour * mask, mask
