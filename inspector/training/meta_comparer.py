"""Episodic training of the meta-comparer across source domains (paper §2.4).

One step draws ``batch_size`` episodes of one source domain (drawn per step); an episode picks ``train_references``
normal reference images of the domain and one query of it (normal or defective with equal odds, a normal
query never among its references). The loss is eq. (2) + ``att_weight``·eq. (3) +
``rank_weight``·eq. (4) (see :mod:`inspector.models.meta_comparer.model` for the readings of the equations).

The teacher is frozen, so its pooled features are computed once per image and cached (FP16 in
memory); only the projections and the comparer train. Each domain's images are split 80/20 into
train/validation (seeded); validation is a fixed, seeded set of episodes, its loss drives the
checkpoint choice and early stopping (``train.epochs`` None) like the other models.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from inspector.cores import capped_threads
from inspector.errors import ConfigError
from inspector.models.meta_comparer.domains import Domain, load_domain
from inspector.models.meta_comparer.model import MetaComparerModel

log = logging.getLogger(__name__)
VAL_EPISODES = 48  # in batches of VAL_BATCH
VAL_BATCH = 8
PHASE = "meta_comparer"  # its one training phase, as best.pt names it


def episode_loss(model: MetaComparerModel, query: list[torch.Tensor], refs: list[torch.Tensor],
                 labels: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
    """Loss of a batch of episodes.

    query[i]: (B, C_i, h_i, w_i) pooled features; refs[i]: (B, K, C_i, h_i, w_i); labels (B,) 0/1 float.
    Returns the total and its parts (floats) for the history.
    """
    cfg = model.config
    cls = att_loss = rank = torch.zeros(())
    for i, (q, r) in enumerate(zip(query, refs)):
        b, k = r.shape[:2]
        qe = model.embed(i, q)
        re = model.embed(i, r.flatten(0, 1)).reshape(b, -1, cfg.embed_dim)
        scores, best, _ = model.compare(qe, re)
        eps = 1e-6
        cls = cls + F.binary_cross_entropy(scores.amax(dim=1).clamp(eps, 1 - eps), labels)
        # eq. (3) on the worst-matched query patch: low similarity ⇔ abnormal
        att_loss = att_loss + F.binary_cross_entropy((1 - best.amin(dim=1)).clamp(eps, 1 - eps), labels)
        rank = rank + _ranking_loss(scores, best.detach(), cfg.rank_pairs, generator)
    total = cls + cfg.att_weight * att_loss + cfg.rank_weight * rank
    return total, {"cls": cls.item(), "att": att_loss.item(), "rank": rank.item()}


def _ranking_loss(scores: torch.Tensor, att: torch.Tensor, pairs: int, generator: torch.Generator) -> torch.Tensor:
    """eq. (4): w·max(0, 1 − σ(s_u − s_v)), w = exp(|a_u − a_v|) − 1, σ = −sgn(a_u − a_v).

    Averaged over ``pairs`` random (u, v) query-patch pairs per image.
    """
    b, n = scores.shape
    u = torch.randint(0, n, (b, pairs), generator=generator)
    v = torch.randint(0, n, (b, pairs), generator=generator)
    au, av = att.gather(1, u), att.gather(1, v)
    su, sv = scores.gather(1, u), scores.gather(1, v)
    weight = torch.expm1((au - av).abs())
    sigma = -torch.sign(au - av)
    return (weight * (1 - sigma * (su - sv)).clamp_min(0)).mean()


class FeatureBank:
    """Cached pooled teacher features of one domain's normal and defective images, split train/val."""

    def __init__(self, model: MetaComparerModel, domain: Domain, rng: np.random.Generator) -> None:
        self.name = domain.name
        self.normals = _features(model, domain.normals)
        self.defects = _features(model, domain.defects)
        self.split = {"normal": _split(len(domain.normals), rng), "defect": _split(len(domain.defects), rng)}

    def episode(self, part: int, k: int, rng: np.random.Generator):
        """(query features per scale, reference features per scale (K, ...), label) from split ``part``."""
        normal_idx, defect_idx = self.split["normal"][part], self.split["defect"][part]
        abnormal = bool(rng.random() < 0.5) and len(defect_idx) > 0
        refs = rng.choice(normal_idx, min(k, len(normal_idx) - (0 if abnormal else 1)), replace=False)
        if abnormal:
            query = [f[int(rng.choice(defect_idx))] for f in self.defects]
        else:
            rest = np.setdiff1d(normal_idx, refs)
            query = [f[int(rng.choice(rest))] for f in self.normals]
        refs = np.resize(refs, k)  # a tiny domain repeats references rather than changing K
        return query, [f[refs] for f in self.normals], float(abnormal)


def _split(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    n_val = min(max(1, round(0.2 * n)), n - 2) if n >= 4 else 0
    val = np.sort(order[:n_val])
    return np.sort(order[n_val:]), (val if n_val else np.sort(order))


@torch.no_grad()
def _features(model: MetaComparerModel, images: np.ndarray, batch: int = 16) -> list[torch.Tensor]:
    parts: list[list[torch.Tensor]] = []
    for start in range(0, len(images), batch):
        feats = model.patch_features(torch.from_numpy(images[start:start + batch]))
        parts.append([f.half() for f in feats])
    return [torch.cat([p[i] for p in parts]) for i in range(len(parts[0]))]


def _batch(banks: list[FeatureBank], part: int, size: int, k: int, rng: np.random.Generator):
    """``size`` episodes of one source domain (drawn per batch), so domains may differ in input size."""
    bank = banks[int(rng.integers(len(banks)))]
    episodes = [bank.episode(part, k, rng) for _ in range(size)]
    query = [torch.stack([e[0][i] for e in episodes]).float() for i in range(len(episodes[0][0]))]
    refs = [torch.stack([e[1][i] for e in episodes]).float() for i in range(len(episodes[0][1]))]
    return query, refs, torch.tensor([e[2] for e in episodes])


def _optimizer(model: MetaComparerModel, train_cfg) -> torch.optim.Optimizer:
    if train_cfg.optimizer == "sgd":
        return torch.optim.SGD(model.trainable(), lr=train_cfg.lr, momentum=train_cfg.momentum,
                               weight_decay=train_cfg.weight_decay)
    return torch.optim.Adam(model.trainable(), lr=train_cfg.lr, betas=tuple(train_cfg.betas),
                            weight_decay=train_cfg.weight_decay)


def load_banks(model: MetaComparerModel, specs: list[str], config) -> list[FeatureBank]:
    """Load every source domain and cache its features (seeded by ``train.seed``)."""
    cfg = model.config
    rng = np.random.default_rng(config.train.seed)
    banks = []
    for index, spec in enumerate(specs, 1):
        start = time.perf_counter()
        try:
            domain = load_domain(spec, cfg.image_size, cfg.domain_normals, cfg.domain_defects,
                                 seed=config.train.seed, resize=config.data.resize, downscale=config.data.downscale)
            banks.append(FeatureBank(model, domain, rng))
            log.info("domain %s: %d normal, %d defective images, features in %.1f s", domain.name,
                     len(domain.normals), len(domain.defects), time.perf_counter() - start)
        except KeyboardInterrupt as exc:  # where it stopped, for the command's one line (minutes per domain)
            exc.detail = f" while loading the features of domain {spec} ({index}/{len(specs)})"
            raise
    return banks


@torch.no_grad()
def _validate(model: MetaComparerModel, batches: list, seed: int) -> float:
    """Mean loss of the fixed validation episodes (the ranking pairs drawn from a fixed seed too)."""
    model.eval()
    gen = torch.Generator().manual_seed(seed + 1)
    return float(np.mean([episode_loss(model, *batch, gen)[0].item() for batch in batches]))


def fit(model: MetaComparerModel, banks: list[FeatureBank], train_cfg, on_best=None) -> dict:
    """Train ``model`` on episodes of ``banks``; keeps the weights of the best validation loss.

    Ctrl-C/SIGTERM (KeyboardInterrupt) ends it like the other models' training (loop.fit): the best weights
    so far are kept, ``stop_reason`` is ``interrupted`` and ``best_epoch`` 0 when no epoch was validated."""
    cfg = model.config
    torch.manual_seed(train_cfg.seed)
    gen = torch.Generator().manual_seed(train_cfg.seed)
    rng = np.random.default_rng(train_cfg.seed)
    val_rng = np.random.default_rng([train_cfg.seed, 1])
    val = [_batch(banks, 1, VAL_BATCH, cfg.train_references, val_rng) for _ in range(VAL_EPISODES // VAL_BATCH)]
    state = {"opt": _optimizer(model, train_cfg), "history": [], "best": float("inf"), "best_state": None,
             "stale": 0, "steps": 0, "start": time.perf_counter(), "cpu_start": time.process_time()}
    stop, detail = ("epochs" if not train_cfg.early_stopping else "epoch_cap"), f"{train_cfg.epoch_limit} epochs"
    try:
        for epoch in range(1, train_cfg.epoch_limit + 1):
            ended = _epoch(model, banks, train_cfg, epoch, state, val, gen, rng, on_best)
            if ended is not None:
                stop, detail = ended
                break
    except KeyboardInterrupt:
        stop, detail = "interrupted", f"interrupted after epoch {len(state['history'])}"
        log.info("meta_comparer stopped: %s", detail)
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    history = state["history"]
    best_epoch = min(history, key=lambda h: h["val_loss"])["epoch"] if history else 0
    return {"history": history, "best_val_loss": state["best"], "best_epoch": best_epoch,
            "epochs_run": len(history), "steps": state["steps"],
            "seconds": round(time.perf_counter() - state["start"], 1),
            "cpu_seconds": round(time.process_time() - state["cpu_start"], 1), "stop_reason": stop,
            "stop_detail": detail, "interrupted": stop == "interrupted"}


def _epoch(model, banks, train_cfg, epoch: int, state: dict, val: list, gen, rng, on_best):
    """One epoch of :func:`fit` (``state`` updated); (stop reason, detail) when training ends after it, else None."""
    cfg, opt = model.config, state["opt"]

    def over_budget() -> bool:
        return bool(train_cfg.time_budget_s) and time.perf_counter() - state["start"] > train_cfg.time_budget_s

    model.train()
    for _ in range(cfg.steps_per_epoch):
        if over_budget():  # checked per step: a slow machine must not overrun the cap by an epoch
            break
        query, refs, labels = _batch(banks, 0, train_cfg.batch_size, cfg.train_references, rng)
        loss, parts = episode_loss(model, query, refs, labels, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        state["steps"] += 1
    val_loss = _validate(model, val, train_cfg.seed)
    state["history"].append({"epoch": epoch, "train_loss": loss.item(), **parts, "val_loss": val_loss,
                             "seconds": round(time.perf_counter() - state["start"], 1)})
    log.info("epoch %d: train %.4f val %.4f", epoch, loss.item(), val_loss)
    if val_loss < state["best"] * (1 - train_cfg.min_delta) or state["best_state"] is None:
        state["best"], state["stale"] = val_loss, 0
        state["best_state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if on_best is not None:
            on_best(epoch, val_loss)
    else:
        state["stale"] += 1
    if train_cfg.early_stopping and state["stale"] >= train_cfg.patience:
        return "converged", f"no improvement above min_delta for {state['stale']} epochs"
    if over_budget():
        return "time_cap", f"time budget {train_cfg.time_budget_s:g} s"
    return None


def train_meta_comparer(config, specs: list[str], run_dir: str | Path) -> dict:
    """``inspector train --model meta_comparer --data D1 --data D2 …``: best.pt, history.json, summary.json,
    written on Ctrl-C/SIGTERM too (``stop_reason`` interrupted). best.pt names its one phase: complete once
    training ended (interrupted too, from the best validated epoch), so ``enroll`` refuses, in one line like
    evaluate/export, a run interrupted before its first validation or still training."""
    from inspector.training.run_lock import hold_run_folder

    if len(specs) < 2:
        raise ConfigError("data: the meta-comparer learns to compare across surfaces; give at least two "
                          "source domains (dataset folders or synth:brick|grass|gravel)", field="data")
    if config.train.threads:
        torch.set_num_threads(capped_threads(config.train.threads, "train.threads"))
    run_dir = Path(run_dir)
    with hold_run_folder(run_dir):
        return _train_held(config, list(specs), run_dir)


def _train_held(config, specs: list[str], run_dir: Path) -> dict:
    """:func:`train_meta_comparer` once this process holds ``run_dir``."""
    from inspector.artifacts.checkpoint import read_checkpoint, update_checkpoint
    from inspector.models.registry import build_model
    from inspector.training.checkpoint import save_checkpoint
    from inspector.training.config import save_run_config
    from inspector.training.loop import write_run_json

    model = build_model(config.model)
    start = time.perf_counter()
    banks = load_banks(model, specs, config)
    feature_seconds = round(time.perf_counter() - start, 1)
    domains = [{"spec": s, "name": b.name, "normals": int(b.normals[0].shape[0]),
                "defects": int(b.defects[0].shape[0])} for s, b in zip(specs, banks)]

    def save(epoch: int, val_loss: float | None, completed: tuple = ()) -> None:
        save_checkpoint(run_dir / "best.pt", model, config, phase=PHASE, epoch=epoch, val_loss=val_loss,
                        data={"domains": domains}, phases=[PHASE], completed_phases=list(completed))

    save_run_config(config, run_dir / "config.yaml")
    result = fit(model, banks, config.train, on_best=save)
    if result["best_epoch"] == 0:  # interrupted before the first validation: an incomplete run, said so
        save(0, None)
        log.warning("interrupted before the first validation: the run is incomplete; train it again")
    else:
        update_checkpoint(run_dir / "best.pt", read_checkpoint(run_dir / "best.pt"), completed_phases=[PHASE])
    write_run_json(run_dir / "history.json", result.pop("history"))
    summary = {"phases": [{"name": PHASE, **result, "feature_seconds": feature_seconds}], "domains": domains}
    write_run_json(run_dir / "summary.json", summary, indent=2)
    return summary
