"""Tiny registry-built models and random uint8 batches for the model tests (random teacher weights, seeded)."""

import torch

from inspector.models.registry import build_model, parse_model_config

SIZE = (64, 96)  # non-square: a height/width mix-up shows up as a shape error


def build_tiny(name: str, preset: str = "offline", size=SIZE, **extra) -> torch.nn.Module:
    """Model ``name`` at ``preset`` and input ``size`` (h, w) with random teacher weights, seed 0, in eval mode."""
    cfg = parse_model_config({"name": name, "preset": preset, "image_size": list(size),
                              "teacher_weights": "random", **extra})
    torch.manual_seed(0)
    return build_model(cfg).eval()


def uint8_images(n: int, size=SIZE, seed: int = 0) -> torch.Tensor:
    """(n, h, w, 3) uint8 NHWC noise, the models' input layout."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *size, 3), dtype=torch.uint8, generator=g)
