"""Student levers at FIXED epoch counts on cached teacher features, vs a kNN reference.

    python benchmarks/ablate_levers.py DATA H W EPOCHS[,EPOCHS...] variant[,variant...] [--out FILE]

The offline reduced student (Lite0 teacher, levels blocks.2/blocks.3 = strides 8/16,
channel-standardised teacher, squared error, Adam 1e-3, batch 16) trained by a
minimal loop outside the product code, so one teacher pass serves every variant.
Variant flags (joined by '+'): ``base``; ``hard`` EfficientAD's hard-feature loss
(q 0.999); ``pen`` EfficientAD's penalty (mean squared student output on run-time
out-of-distribution images, :mod:`inspector.data.ood`). At each epoch count the
student is scored by every map post-processing at once: per level (max);
quantile-normalised sum (``qn``) reduced by the mean of the top 1 % or the max;
the same after a position-aware offset (``pos``: per-pixel validation mean, smoothed,
shrunk toward the global mean by the James-Stein factor), or after a per-pixel
z-score (``posz``). One JSON document at the end (and in --out).
"""
import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from _common import coreset_knn_scores, out_option, write_out
from inspector.data.datasets import load_batch, load_dataset, split_train_val
from inspector.data.ood import ood_batch
from inspector.evaluation.metrics import auroc
from inspector.models.backbones import build_backbone
from inspector.models.common import GaussianSmoothing, ImageNormalize
from inspector.models.student import MirrorStudent

torch.set_num_threads(int(__import__("os").environ.get("THREADS", "2")))
out_file = out_option("ablate-levers")  # before the minutes of training: a user's file at --out is kept
args = [a for i, a in enumerate(sys.argv[1:]) if not a.startswith("--out") and sys.argv[i] != "--out"]
path, H, W = args[0], int(args[1]), int(args[2])
checkpoints = [int(e) for e in args[3].split(",")]
variants = args[4].split(",")
t0 = time.time()
ds = load_dataset(path)
train, val = split_train_val(ds.train, 0.2, 0)
test = [s for s in ds.test if s.defect_type != "likely_defect"]
tr, _, _ = load_batch(train, H, W, "square")
va, _, _ = load_batch(val, H, W, "square")
te, kept, _ = load_batch(test, H, W, "square")
labels = np.array([s.label for s in kept])
TAPS = ("blocks.1", "blocks.2", "blocks.3")
LEVELS = (1, 2)
teacher = build_backbone("efficientnet_lite0", TAPS).eval()
norm = ImageNormalize()


def feats(imgs):
    out = [[] for _ in TAPS]
    with torch.no_grad():
        for i in range(0, len(imgs), 16):
            f = teacher(norm(torch.from_numpy(imgs[i:i + 16])))
            for lv in range(len(TAPS)):
                out[lv].append(f[lv])
    return [torch.cat(o) for o in out]


Ttr, Tva, Tte = feats(tr), feats(va), feats(te)
mean = [t.mean((0, 2, 3), keepdim=True) for t in Ttr]
inv_sd = [1.0 / t.std((0, 2, 3), keepdim=True).clamp_min(1e-3) for t in Ttr]
Str = [(t - m) * s for t, m, s in zip(Ttr, mean, inv_sd)]
Sva = [(t - m) * s for t, m, s in zip(Tva, mean, inv_sd)]
Ste = [(t - m) * s for t, m, s in zip(Tte, mean, inv_sd)]
print(f"features {time.time() - t0:.0f}s", flush=True)
res = {"data": path, "size": [H, W], "epochs": checkpoints, "n_train": len(tr), "n_val": len(va),
       "n_test": len(te), "n_defect": int(labels.sum())}


def knn():
    """The PatchCore-style baseline on the same teacher features."""
    return auroc(coreset_knn_scores([Ttr, Tva], Tte), labels)


if __import__("os").environ.get("KNN", "1") != "0":  # KNN=0: skip the reference (already measured)
    t1 = time.time()
    res["knn"] = knn()
    print(f"knn {res['knn']:.3f} ({time.time() - t1:.0f}s)", flush=True)
blur = GaussianSmoothing(1.0)


def position_offset(v: torch.Tensor, z: bool):
    """(shift (1,1,h,w), scale (1,1,h,w)) from validation maps v (n,1,h,w), shrunk toward global (James-Stein)."""
    n = v.shape[0]
    mu_p, var_p = v.mean(0, keepdim=True), v.var(0, keepdim=True)
    mu_g = v.mean()
    noise = var_p.mean() / n  # sampling variance of one position's mean
    between = (mu_p - mu_p.mean()).pow(2).mean()
    w = float((1 - noise / between.clamp_min(1e-12)).clamp(0, 1))
    shift = w * blur(mu_p) + (1 - w) * mu_g
    if not z:
        return shift - mu_g, torch.ones_like(shift), w
    sd_p, sd_g = blur(var_p).sqrt(), v.std()
    return shift, 1.0 / (w * sd_p + (1 - w) * sd_g).clamp_min(1e-6), w


def evaluate(student):
    student.eval()

    def maps(imgs, T):
        out = {lv: [] for lv in LEVELS}
        with torch.no_grad():
            for i in range(0, len(imgs), 16):
                S = student(norm(torch.from_numpy(imgs[i:i + 16])))
                for lv in LEVELS:
                    out[lv].append((T[lv][i:i + 16] - S[lv]).pow(2).mean(1, keepdim=True))
        return {lv: torch.cat(v) for lv, v in out.items()}

    mv, mt = maps(va, Sva), maps(te, Ste)
    r = {}
    size = mt[LEVELS[0]].shape[-2:]
    combos = {"qn": 0, "pos": 0, "posz": 0}
    weights = {}
    for lv in LEVELS:
        r[f"L{lv}_max"] = auroc(mt[lv].flatten(1).amax(1).numpy(), labels)
        for kind in combos:
            v, t = mv[lv], mt[lv]
            if kind != "qn":
                shift, scale, weights[f"{kind}{lv}"] = position_offset(v, kind == "posz")
                v, t = (v - shift) * scale, (t - shift) * scale
            q90, q995 = torch.quantile(v.flatten()[:: max(1, v.numel() // 4_000_000)], torch.tensor([0.9, 0.995]))
            up = F.interpolate((t - q90) * 0.1 / (q995 - q90), size=size, mode="bilinear", align_corners=False)
            combos[kind] = combos[kind] + up.clamp_min(0)
    for name, c in combos.items():
        f = blur(c).flatten(1)
        r[f"{name}_max"] = auroc(f.amax(1).numpy(), labels)
        r[f"{name}_top1pct"] = auroc(f.topk(max(1, f.shape[1] // 100), 1).values.mean(1).numpy(), labels)
    r["pos_weights"] = weights
    student.train()
    return r


def train_student(variant):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    student = MirrorStudent(teacher.feature_info, stem="lite")
    flags = set(variant.split("+"))
    opt = torch.optim.Adam(student.parameters(), lr=1e-3, weight_decay=1e-5)
    n = len(tr)
    g = torch.Generator().manual_seed(0)
    out = {}
    for ep in range(max(checkpoints)):
        student.train()
        perm = torch.randperm(n, generator=g)
        tot = 0.0
        for i in range(0, n - 1, 16):
            idx = perm[i:i + 16]
            if len(idx) < 2:
                continue
            S = student(norm(torch.from_numpy(tr[idx.numpy()])))
            loss = 0
            for lv in LEVELS:
                d = (Str[lv][idx] - S[lv]).pow(2)
                if "hard" in flags:
                    qv = torch.quantile(d.detach().flatten()[:: max(1, d.numel() // 4_000_000)], 0.999)
                    loss = loss + d[d >= qv].mean()
                else:
                    loss = loss + d.mean()
            if "pen" in flags:
                ood = torch.from_numpy(ood_batch(len(idx), H, W, rng))
                P = student(norm(ood))
                loss = loss + sum(P[lv].pow(2).mean() for lv in LEVELS)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += float(loss.detach())
        if ep + 1 in checkpoints:
            out[ep + 1] = evaluate(student)
            print(f"  {variant} ep{ep + 1} loss {tot:.3f} "
                  + json.dumps({k: round(x, 3) for k, x in out[ep + 1].items() if not isinstance(x, dict)}),
                  flush=True)
    return out


for v in variants:
    t1 = time.time()
    res[v] = train_student(v)
    res[v]["seconds"] = round(time.time() - t1)
print(json.dumps(res))
write_out(out_file, "ablate-levers", res)
