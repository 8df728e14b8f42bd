"""Patch and context windows as constant gather indices, and the patch-score → map step.

The paper scans patches one after another. Here every window of the grid is cut
out of the image by ONE ``Gather`` with a constant flat index, so the whole grid
runs as a batch inside one exported graph with no Python control flow and no
shape-dependent ops. Positions are (top, left) pixel coordinates of a patch.

The Global-Net sees a ``context``×``context`` window centred on the patch, taken
from the image average-pooled by 2 (a 4× cheaper Global-Net) and zero-padded so
that border patches have a full window; the padding and the patch itself are
masked out (``context_mask``). Patch coordinates are even, so every pooled pixel
lies wholly inside or wholly outside the patch: the mask is exact, not a blur.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GLOBAL_DOWNSCALE = 2  # the Global-Net's input is the image average-pooled by this factor


def grid_positions(height: int, width: int, patch: int, stride: int) -> torch.Tensor:
    """(K, 2) int64 (top, left) of the raster grid: rows of ``(height − patch) // stride + 1`` patches."""
    ys = torch.arange(0, height - patch + 1, stride)
    xs = torch.arange(0, width - patch + 1, stride)
    return torch.cartesian_prod(ys, xs)


def grid_shape(height: int, width: int, patch: int, stride: int) -> tuple[int, int]:
    return (height - patch) // stride + 1, (width - patch) // stride + 1


def window_index(positions: torch.Tensor, size: int, row_length: int) -> torch.Tensor:
    """Flat indices (K, size, size) into a row-major plane of rows ``row_length`` long."""
    offsets = torch.arange(size, device=positions.device)
    ys = positions[:, 0, None] + offsets  # (K, size)
    xs = positions[:, 1, None] + offsets
    return ys[:, :, None] * row_length + xs[:, None, :]


def gather_windows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Cut windows out of every image: x (N, C, H, W), index (K, s, s) → (N·K, C, s, s), image-major."""
    c = x.shape[1]
    k, s = index.shape[0], index.shape[-1]
    flat = x.flatten(2)[:, :, index.flatten()]  # (N, C, K·s·s): one Gather
    return flat.view(-1, c, k, s, s).transpose(1, 2).reshape(-1, c, s, s)


def context_pad(patch: int, context: int) -> int:
    """Zero padding (in pooled pixels) around the pooled image so every context window fits."""
    return (context - patch) // 2 // GLOBAL_DOWNSCALE


def context_index(positions: torch.Tensor, height: int, width: int, patch: int, context: int) -> torch.Tensor:
    """Flat indices (K, c', c') of the context windows in the padded pooled image (c' = context / 2)."""
    pad = context_pad(patch, context)
    row = width // GLOBAL_DOWNSCALE + 2 * pad
    return window_index(positions // GLOBAL_DOWNSCALE, context // GLOBAL_DOWNSCALE, row)


def context_mask(positions: torch.Tensor, height: int, width: int, patch: int, context: int) -> torch.Tensor:
    """(K, 1, c', c') float: 1 where the Global-Net may look, 0 on the patch and outside the image."""
    pad = context_pad(patch, context)
    h, w = height // GLOBAL_DOWNSCALE, width // GLOBAL_DOWNSCALE
    valid = F.pad(torch.ones(1, 1, h, w, device=positions.device), (pad, pad, pad, pad))
    mask = gather_windows(valid, context_index(positions, height, width, patch, context))
    hole = slice(pad, pad + patch // GLOBAL_DOWNSCALE)
    mask[:, :, hole, hole] = 0.0
    return mask


def pooled_padded(x: torch.Tensor, patch: int, context: int) -> torch.Tensor:
    """The Global-Net's plane: x (N, C, H, W) average-pooled by 2, zero-padded for the context windows."""
    pad = context_pad(patch, context)
    return F.pad(F.avg_pool2d(x, GLOBAL_DOWNSCALE), (pad, pad, pad, pad))


def scores_to_map(scores: torch.Tensor, size: tuple[int, int], patch: int, stride: int) -> torch.Tensor:
    """Patch scores (N, 1, gh, gw) → map (N, 1, H, W), FP32.

    Bilinear between patch centres (align_corners=True puts grid cell i exactly at
    centre patch/2 + i·stride), then the border values extended to the image edge.
    The paper interpolates with inverse distance weighting; between four
    neighbours on a regular grid bilinear is the same idea at one Resize op.
    """
    gh, gw = scores.shape[-2:]
    span = ((gh - 1) * stride + 1, (gw - 1) * stride + 1)
    amap = F.interpolate(scores.float(), size=span, mode="bilinear", align_corners=True)
    top = left = patch // 2
    bottom, right = size[0] - top - span[0], size[1] - left - span[1]
    return F.pad(amap, (left, right, top, bottom), mode="replicate")
