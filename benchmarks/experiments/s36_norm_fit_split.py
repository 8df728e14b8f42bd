"""Which images fit each part of the map normalisation: the per-position statistics and the level quantiles
(an experiment, Session 36; not a product option).

    python benchmarks/experiments/s36_norm_fit_split.py RUN_DIR DATA [--sigmas 1,2,4,-1] [--out FILE.json]

RUN_DIR: a finished offline ``inspector train`` run on DATA. Raw level maps of the training, validation and test
images are computed once; the per-position (offset, gain) and the level quantiles (shift, scale) are then fitted on
different image sets, and the image AUROC (``likely_defect`` left out) and the calibration figures of S35 are
reported for each. ``val/2``: the normalisation fitted on half the validation images, the other half kept for
calibration (what a held-out calibration split would cost and give). ``--sigmas``: instead, the per-position
statistics fitted on the validation images with each smoothing σ (−1: none at all, the global affine only).
"""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import out_option, write_out  # noqa: E402

OUT = out_option("s36_norm_fit_split")  # before the minutes of work: a user's file at --out is kept
import numpy as np, torch
from diagnose_students import auc, LIKELY
from inspector.data.datasets import load_batch, load_dataset, split_train_val
from inspector.models.checkpoint import load_model
from inspector.models.common import position_statistics
torch.set_num_threads(1)
run, data = Path(sys.argv[1]), Path(sys.argv[2])
model, config, _ = load_model(run); model.eval()
norm = model.level_norm
size, resize = tuple(config.model.image_size), config.data.resize
ds = load_dataset(data)
train, val = split_train_val(ds.train, config.data.val_fraction, config.data.split_seed)
test = [s for s in ds.test if s.defect_type != LIKELY]
te, kept, _ = load_batch(test, *size, resize); y = np.array([s.label for s in kept])
sets = {"train": load_batch(train, *size, resize)[0], "val": load_batch(val, *size, resize)[0]}
rng = np.random.default_rng(1)
half = rng.permutation(len(sets["val"]))
sets["val/2"], sets["cal/2"] = sets["val"][half[: len(half) // 2]], sets["val"][half[len(half) // 2:]]

@torch.no_grad()
def raw(x):
    norm.reset()
    out = None
    for i in range(0, len(x), 16):
        maps = list(model.named_level_maps(torch.from_numpy(x[i:i + 16])).values())
        out = [m.float() for m in maps] if out is None else [torch.cat([o, m.float()]) for o, m in zip(out, maps)]
    return out

R = {k: raw(v) for k, v in sets.items()}
R["train+val"] = [torch.cat([a, b]) for a, b in zip(R["train"], R["val"])]

@torch.no_grad()
def fit(pos_set, q_set, low=0.9, high=0.995, target=0.1, sigma=1.0):
    norm.reset()
    for i in range(len(norm.shift)):
        if norm.positional and sigma >= 0:
            mean, inv_std = position_statistics(R[pos_set][i], sigma=sigma)
            getattr(norm, f"offset{i}").copy_(mean); getattr(norm, f"gain{i}").copy_(inv_std)
            m = (R[q_set][i] - mean) * inv_std
        else:
            m = R[q_set][i]
        q_low, q_high = torch.quantile(m.flatten()[:8_000_000], torch.tensor([low, high]))
        norm.shift[i] = q_low; norm.scale[i] = target / torch.clamp(q_high - q_low, min=1e-12)

@torch.no_grad()
def scores(x):
    return np.concatenate([model.forward_with_levels(torch.from_numpy(x[i:i + 16]))[0].numpy() for i in range(0, len(x), 16)])

out = {"run": str(run), "data": str(data), "positional": bool(norm.positional), "n_train": len(sets["train"]),
       "n_val": len(sets["val"]), "raw level means": {k: [round(float(m.mean()), 5) for m in R[k]] for k in ("train", "val")}}
SIGMAS = [float(v) for v in sys.argv[sys.argv.index("--sigmas") + 1].split(",")] if "--sigmas" in sys.argv else []
for sigma in SIGMAS:  # the per-position statistics' smoothing (σ in level pixels; −1: none, global only)
    fit("val", "val", sigma=sigma)
    st = scores(te)
    out[f"pos=val q=val sigma={sigma:g}"] = {"image_auroc": round(auc(st, y), 4)}
    print(f"sigma={sigma:g}", out[f"pos=val q=val sigma={sigma:g}"], flush=True)
for pos_set, q_set, cal in () if SIGMAS else (("val", "val", "val"), ("train", "train", "val"), ("train+val", "val", "val"),
                            ("train+val", "train+val", "val"), ("train", "val", "val"), ("val/2", "val/2", "cal/2"),
                            ("train", "val/2", "cal/2")):
    fit(pos_set, q_set)
    st, sv = scores(te), scores(sets[cal])
    g = st[y == 0]
    key = f"pos={pos_set} q={q_set} cal={cal}"
    out[key] = {"image_auroc": round(auc(st, y), 4), "cal p50": round(float(np.median(sv)), 4),
                "test good p50": round(float(np.median(g)), 4),
                "test good > cal max": round(float((g > sv.max()).mean()), 4),
                "test good > cal p99": round(float((g > np.quantile(sv, 0.99)).mean()), 4)}
    print(key, out[key], flush=True)
write_out(OUT, "s36_norm_fit_split", out)
