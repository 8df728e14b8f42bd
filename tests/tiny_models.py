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


def uint8_images(n: int = 2, size=SIZE, seed: int = 0) -> torch.Tensor:
    """(n, h, w, 3) uint8 NHWC noise, the models' input layout."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *size, 3), dtype=torch.uint8, generator=g)


def untrained_run(name: str, tiny_dataset, tmp_path_factory):
    """A run folder (Path) of model ``name`` at 64x64 on ``tiny_dataset``: the package's teacher, a random-init
    student (seed 0), saved as an untrained checkpoint, so export and the daemon can run without training."""
    from inspector.training.checkpoint import save_checkpoint
    from inspector.training.config import load_run_config

    config = load_run_config(base={"model": {"name": name, "image_size": [64, 64], "smoothing_sigma": 1.0},
                                   "data": {"path": str(tiny_dataset)}})
    run_dir = tmp_path_factory.mktemp("runs") / name
    run_dir.mkdir()
    torch.manual_seed(0)
    save_checkpoint(run_dir / "best.pt", build_model(config.model).eval(), config,
                    phase="untrained", epoch=0, val_loss=None, data=None)
    return run_dir
