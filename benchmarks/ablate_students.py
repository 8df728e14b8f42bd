"""Quick student ablation on cached teacher features, at a FIXED epoch count, vs a kNN reference.

    python benchmarks/ablate_students.py DATA H W EPOCHS variant[,variant...]

The reduced student's architecture (Lite0 teacher taps blocks.1/2/3, strides 4/8/16;
mirror student with the light stem) trained by a minimal loop outside the product code,
so one teacher pass serves every variant. A variant name is a set of flags:
``cos3`` cosine distance on all three levels (the old offline recipe, SGD lr 0.4),
otherwise levels 8+16 only; ``std`` channel-standardised teacher + squared error;
``hard`` EfficientAD's hard-feature loss (q 0.999); ``adam`` (+ ``lr3``: lr 1e-3).
Each trained student is scored per level (max) and combined: raw sum or quantile-
normalised sum (``qn``, q0.9→0, q0.995→0.1 on validation maps), reduced by max,
mean of the top 1 % (``top1pct``) or mean. Results as one JSON line at the end.
"""
import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from _common import coreset_knn_scores
from inspector.data.datasets import load_batch, load_dataset, split_train_val
from inspector.evaluation.metrics import auroc
from inspector.models.backbones import build_backbone
from inspector.models.common import ImageNormalize
from inspector.models.student import MirrorStudent

torch.set_num_threads(2)
torch.manual_seed(0)
path, H, W, EPOCHS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
variants = sys.argv[5].split(",")
t0 = time.time()
ds = load_dataset(path)
train, val = split_train_val(ds.train, 0.2, 0)
test = [s for s in ds.test if s.defect_type != "likely_defect"]
tr, _, _ = load_batch(train, H, W)
va, _, _ = load_batch(val, H, W)
te, kept, _ = load_batch(test, H, W)
labels = np.array([s.label for s in kept])
teacher = build_backbone("efficientnet_lite0", ("blocks.1", "blocks.2", "blocks.3")).eval()
norm = ImageNormalize()


def feats(imgs):
    out = [[], [], []]
    with torch.no_grad():
        for i in range(0, len(imgs), 16):
            f = teacher(norm(torch.from_numpy(imgs[i:i + 16])))
            for l in range(3):
                out[l].append(f[l])
    return [torch.cat(o) for o in out]


Ttr, Tva, Tte = feats(tr), feats(va), feats(te)
print(f"features {time.time() - t0:.0f}s", flush=True)
res = {"data": path, "size": [H, W], "epochs": EPOCHS}


def knn():
    """The PatchCore-style baseline on the same teacher features."""
    return auroc(coreset_knn_scores([Ttr, Tva], Tte), labels)


t1 = time.time()
res["knn"] = knn()
print(f"knn {res['knn']:.3f} ({time.time() - t1:.0f}s)", flush=True)


def train_student(variant):
    torch.manual_seed(0)
    taps = teacher.feature_info
    student = MirrorStudent(taps, stem="lite")
    levels = [0, 1, 2] if "cos3" in variant else [1, 2]
    std = "std" in variant
    hard = "hard" in variant
    mean = [t.mean((0, 2, 3), keepdim=True) for t in Ttr]
    sd = [t.std((0, 2, 3), keepdim=True) + 1e-6 for t in Ttr]

    def tnorm(T, l):
        return (T - mean[l]) / sd[l] if std else T

    def dist(t, s):
        if std:
            return (t - s).pow(2)
        t = F.normalize(t, dim=1, eps=1e-6)
        s = F.normalize(s, dim=1, eps=1e-6)
        return 0.5 * (t - s).pow(2)

    if "adam" in variant:
        opt = torch.optim.Adam(student.parameters(), lr=1e-3 if "lr3" in variant else 1e-4, weight_decay=1e-5)
    else:
        opt = torch.optim.SGD(student.parameters(), lr=0.4, momentum=0.9, weight_decay=1e-4)
    n = len(tr)
    g = torch.Generator().manual_seed(0)
    for ep in range(EPOCHS):
        student.train()
        perm = torch.randperm(n, generator=g)
        tot = 0
        for i in range(0, n - 1, 16):
            idx = perm[i:i + 16]
            if len(idx) < 2:
                continue
            x = norm(torch.from_numpy(tr[idx.numpy()]))
            S = student(x)
            loss = 0
            for l in levels:
                d = dist(tnorm(Ttr[l][idx], l), S[l])
                if hard:
                    qv = torch.quantile(d.detach().flatten()[::max(1, d.numel() // 2_000_000)], 0.999)
                    loss = loss + d[d >= qv].mean()
                else:
                    loss = loss + d.sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += float(loss)
        print(f"  {variant} ep{ep + 1} loss {tot:.3f}", flush=True)
    student.eval()

    def maps(imgs, T):
        out = {l: [] for l in levels}
        with torch.no_grad():
            for i in range(0, len(imgs), 16):
                S = student(norm(torch.from_numpy(imgs[i:i + 16])))
                for l in levels:
                    out[l].append(dist(tnorm(T[l][i:i + 16], l), S[l]).sum(1, keepdim=True))
        return {l: torch.cat(v) for l, v in out.items()}

    mv, mt = maps(va, Tva), maps(te, Tte)
    r = {}
    size = mt[levels[0]].shape[-2:]
    comb_raw, comb_q = 0, 0
    for l in levels:
        m = mt[l]
        r[f"L{l}_max"] = auroc(m.flatten(1).amax(1).numpy(), labels)
        q90, q995 = torch.quantile(mv[l].flatten()[::7], torch.tensor([0.9, 0.995]))
        up = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
        comb_raw = comb_raw + up
        comb_q = comb_q + 0.1 * (up - q90) / (q995 - q90)
    for name, c in (("raw", comb_raw), ("qn", comb_q)):
        f = c.flatten(1)
        r[f"{name}_max"] = auroc(f.amax(1).numpy(), labels)
        k = max(1, f.shape[1] // 100)
        r[f"{name}_top1pct"] = auroc(f.topk(k, 1).values.mean(1).numpy(), labels)
        r[f"{name}_mean"] = auroc(f.mean(1).numpy(), labels)
    return r


for v in variants:
    t1 = time.time()
    res[v] = train_student(v)
    res[v]["seconds"] = round(time.time() - t1)
    print(v, json.dumps({k: round(x, 3) for k, x in res[v].items()}), flush=True)
print(json.dumps(res))
