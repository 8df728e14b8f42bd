"""Every edge of a train setting's declared range is accepted by what consumes it.

A declared range (:func:`inspector.config.bounded`) promises that any value inside it runs; ``--check``-style
loading refuses the rest in one line. Two edges broke that promise deep inside training, as tracebacks:
``train.betas: [1.0, 0.999]`` (Adam: "Invalid beta parameter at index 0: 1.0") and ``train.seed:
9223372036854775807`` (numpy: "Seed must be between 0 and 2**32 - 1"). This walks each edge of every
optimizer and seeding setting through the real consumers (torch.optim, numpy, torch generators).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from inspector.config import field_range, from_dict
from inspector.errors import ConfigError
from inspector.training.config import TrainConfig

CONSUMED = ("lr", "momentum", "weight_decay", "betas", "seed")  # the optimizer's and the seeding's inputs


def _edges(name: str) -> list:
    """The values at the edges of the field's range (an open side: just inside it)."""
    f = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
    r = field_range(f)
    step = 1 if isinstance(f.default, int) else 1e-6
    values = [r.ge, None if r.gt is None else r.gt + step, r.le, None if getattr(r, "lt", None) is None else r.lt - step]
    values = [v for v in values if v is not None]
    return [[v, v] for v in values] if name == "betas" else values


EDGES = [(name, value) for name in CONSUMED for value in _edges(name)]


@pytest.mark.parametrize("name, value", EDGES, ids=[f"{n}={v}" for n, v in EDGES])
def test_each_edge_of_a_train_setting_runs(name, value):
    from inspector.training.loop import make_optimizer, seed_everything

    cfg = from_dict(TrainConfig, {name: value}, where="train")
    for optimizer in ("sgd", "adam"):
        params = [torch.nn.Parameter(torch.ones(2))]
        make_optimizer(params, dataclasses.replace(cfg, optimizer=optimizer)).step()
    seed_everything(cfg.seed)
    torch.Generator().manual_seed(cfg.seed + cfg.max_epochs)  # the per-epoch shuffling generator's seed


@pytest.mark.parametrize("name, value", [("betas", [1.0, 0.999]), ("betas", [0.9, 1]), ("seed", 2**32)])
def test_a_value_past_the_edge_is_one_line(name, value):
    with pytest.raises(ConfigError, match=rf"^train\.{name}(\[\d\])?: .* is out of range"):
        from_dict(TrainConfig, {name: value}, where="train")
