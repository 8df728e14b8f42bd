"""Ablation, not product code: training images drawn by their current difficulty (image-level hard mining).

    HS_MIX=0.3 HS_TOP=0.005 HS_POW=2 python benchmarks/ablate_hard_sampling.py --datasets elpv/mono \
        --models reduced_student --time-cap 0 --threads 1 --jobs 1 --no-knn --name rs-elpv-mono-hardsample-s29

After every epoch's validation, each training image's difficulty e_i is measured (eval mode: the mean over
levels of its top ``HS_TOP`` fraction of squared teacher-student errors, raised to ``HS_POW``), and the next
epoch draws N images with replacement with probability HS_MIX/N + (1 − HS_MIX)·e_i/Σe. The question
(benchmarks/README.md "Session 29"): does the student learn the rare normal patterns of ELPV mono, which the
kNN reference remembers and the student misses, when it sees the images it fits worst more often?
It patches ``inspector.training.loop.batches`` and ``_validate`` and then runs ``bench_quality.py``'s main
with the arguments given (``--jobs 1``: the patch does not reach worker processes).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch

import inspector.training.loop as L

MIX = float(os.environ.get("HS_MIX", "0.3"))
TOP = float(os.environ.get("HS_TOP", "0.005"))
POW = float(os.environ.get("HS_POW", "2"))
STATE = {"w": None}
_batches, _validate = L.batches, L._validate


def batches(images, batch_size, generator, augment):
    n = len(images)
    w = STATE["w"]
    if generator is None or w is None or len(w) != n:
        yield from _batches(images, batch_size, generator, augment)
        return
    images = torch.from_numpy(images) if isinstance(images, np.ndarray) else images
    order = torch.multinomial(w, n, replacement=True, generator=generator).numpy()
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        if len(idx) < 2:
            continue
        yield idx, images[torch.from_numpy(idx)]


@torch.no_grad()
def difficulty(model, loss_fn):
    was = model.training
    model.eval()
    errs = []
    for start in range(0, len(loss_fn.images), 16):
        idx = np.arange(start, min(start + 16, len(loss_fn.images)))
        batch = loss_fn.images[torch.from_numpy(idx)]
        targets = [c[torch.from_numpy(idx)] for c in loss_fn.cache] if loss_fn.cache is not None \
            else model.teacher_targets(batch)
        student = model.student_features(model.network_input(batch))
        per = []
        for t, s in zip(targets, student):
            e = (t.float() - s.float()).pow(2).flatten(1)
            k = max(1, int(TOP * e.shape[1]))
            per.append(e.topk(k, dim=1).values.mean(1))
        errs.append(torch.stack(per).mean(0))
    model.train(was)
    e = torch.cat(errs).double().pow(POW)
    return (MIX / len(e) + (1 - MIX) * e / e.sum()).float()


def _validate_and_weigh(model, train_loss_fn, val_loss_fn, batch_size):
    out = _validate(model, train_loss_fn, val_loss_fn, batch_size)
    STATE["w"] = difficulty(model, train_loss_fn)
    w = STATE["w"] * len(STATE["w"])
    print(f"[hardsample] weights ×N: p50 {w.median():.2f} max {w.max():.2f}", flush=True)
    return out


def main() -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_quality

    L.batches, L._validate = batches, _validate_and_weigh
    sys.argv = ["bench_quality.py", *sys.argv[1:]]
    bench_quality.main()


if __name__ == "__main__":
    main()
