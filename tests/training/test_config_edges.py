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


@pytest.mark.parametrize("model", ["reduced_student", "ast"])  # ModelConfig's field and AST's own
@pytest.mark.parametrize("size", [[8192, 8192], [256, 4096]])
def test_an_image_size_past_the_largest_side_is_refused_in_one_line(model, size):
    """``model.image_size: [8192, 8192]`` passed the schema (le 8192) and training was killed for memory with no
    message; the schema now stops at MAX_SIDE (2048, as the automatic input size) and says so."""
    from inspector.training.config import load_run_config

    with pytest.raises(ConfigError) as err:
        load_run_config(overrides=[f"model.name={model}", f"model.image_size=[{size[0]},{size[1]}]"])
    assert "model.image_size" in str(err.value) and "is out of range [32, 2048]" in str(err.value), err.value
    assert "\n" not in str(err.value)


def test_train_with_a_huge_image_size_exits_2_in_one_line_not_killed(tiny_dataset, tmp_path):
    """The real command under a 4 GB address-space cap (as the config-ranges field check): it was killed."""
    import resource
    import subprocess
    import sys

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    args = [sys.executable, "-m", "inspector", "train", "--data", str(tiny_dataset), "--out", str(tmp_path / "run"),
            "--set", "model.image_size=[8192,8192]"]
    run = subprocess.run(args, capture_output=True, text=True, timeout=300, preexec_fn=cap)
    err = run.stderr.strip()
    assert run.returncode == 2 and "Traceback" not in err, (run.returncode, err[-2000:])
    assert err.splitlines()[-1] == "error: --set model.image_size[0]: 8192 is out of range [32, 2048]", err


def test_the_largest_image_size_is_the_automatic_input_sizes_largest_side():
    from inspector.models.ast.model import AstConfig
    from inspector.models.base import ModelConfig
    from inspector.training.input_size import MAX_SIDE

    for cls in (ModelConfig, AstConfig):
        f = next(f for f in dataclasses.fields(cls) if f.name == "image_size")
        assert field_range(f).le == MAX_SIDE == 2048, cls
    from_dict(ModelConfig, {"image_size": [2048, 2048]}, where="model")  # the edge itself is a valid size


def test_train_threads_at_its_edge_is_held_to_the_usable_cores(caplog, tmp_path):
    """``train.threads: 4096`` (the top of its range) on a 2-core machine: torch started 4096 OpenMP threads
    that met on a barrier after every operator, and a 13 s one-epoch run did not end in 120 s. More threads
    than cores never runs faster: the cores are used, with a warning naming the setting."""
    from inspector.cores import usable_cores
    from inspector.training.config import load_run_config
    from inspector.training.loop import _settle

    top = int(field_range(next(f for f in dataclasses.fields(TrainConfig) if f.name == "threads")).le)
    config = load_run_config(base={"model": {"name": "reduced_student"}, "data": {"path": str(tmp_path)},
                                   "train": {"threads": top}})
    before = torch.get_num_threads()
    try:
        _settle(config, resume=True)
        assert torch.get_num_threads() <= usable_cores()
    finally:
        torch.set_num_threads(before)
    cores = usable_cores()
    assert f"train.threads: {top} exceeds the {cores} usable core(s) of this machine; using {cores}" in caplog.text
