"""A content-dependent expected residual divided out of each level map (an experiment, Session 37; not a product
option; rescoring only, no retraining).

    python benchmarks/experiments/s37_residual_scale.py RUN_DIR DATA [--out FILE.json]

Session 5 traced the students' gap to the kNN reference on ELPV mono to rare-but-normal local marks the student
does not fit. If the student's residual on such content were predictable from the content itself, a per-pixel
expected residual (heteroscedastic regression) could divide it out, as the per-position statistics already do
per place. Per level, a ridge regression (λ 1 or 100) of the log standardised residual on the teacher's
standardised features (``t``), the student's outputs (``s``) or both (``ts``) is fitted on the run's TRAINING
images; the maps of the validation and test images are then divided by the prediction (``div``) or have the
log prediction subtracted from their log (``sub``), and go through the product's own normalisation refitted on
the validation images (``rescore_metrics.normalised``) and its level combinations. ``base``: the run's own maps.
Image AUROC, ``likely_defect`` left out.
"""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import out_option, write_out  # noqa: E402

OUT = out_option("s37_residual_scale")  # before the minutes of work: a user's file at --out is kept
from dataclasses import replace
import numpy as np, torch
torch.set_num_threads(1)
from rescore_metrics import features, normalised, combined_scores, image_auroc
from bench_quality import load_test
from inspector.training.checkpoint import load_model
from inspector.training.loop import load_training_images
from inspector.models.common import standardized_distance

run, data = Path(sys.argv[1]), Path(sys.argv[2])
model, config, _ = load_model(run); model.eval()
size = tuple(config.model.image_size)
cfg = replace(config, data=replace(config.data, path=str(data)))
tr, va = load_training_images(cfg)[:2]
test = load_test(data, size, config.data.resize)
F = {k: features(model, x) for k, x in (("train", tr), ("val", va), ("test", test["images"]))}

def parts(split):
    teacher, student = F[split]
    out = []
    for t, t_std, s in zip(teacher, model.standardize(teacher), student):
        out.append((t_std, s, standardized_distance(t_std, s)))
    return out

P = {k: parts(k) for k in F}
def design(t_std, s, mode):
    x = {"t": t_std, "s": s, "ts": torch.cat([t_std, s], 1)}[mode]
    n, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(-1, c).double()

res = {}
base_v = [p[2] for p in P["val"]]; base_t = [p[2] for p in P["test"]]
v, t = normalised(base_v, base_t, True)
res["base"] = {k: image_auroc(s, test) for k, s in combined_scores(v, t, size, model).items()}
print("base", res["base"], flush=True)
for mode in ("t", "s", "ts"):
    for lam in (1.0, 100.0):
        for how in ("div", "sub"):
            cv, ct = [], []
            for lvl in range(len(P["train"])):
                X = design(*P["train"][lvl][:2], mode); y = torch.log(P["train"][lvl][2].reshape(-1).double() + 1e-3)
                mu, sd = X.mean(0), X.std(0) + 1e-6
                Xs = torch.cat([(X - mu) / sd, torch.ones(len(X), 1, dtype=X.dtype)], 1)
                A = Xs.T @ Xs + lam * torch.eye(Xs.shape[1], dtype=X.dtype); A[-1, -1] -= lam
                w = torch.linalg.solve(A, Xs.T @ y)
                for split, out in (("val", cv), ("test", ct)):
                    ts, s, r = P[split][lvl]
                    Xq = torch.cat([(design(ts, s, mode) - mu) / sd, torch.ones(r.numel(), 1, dtype=X.dtype)], 1)
                    pred = (Xq @ w).reshape(r.shape[0], r.shape[2], r.shape[3], 1).permute(0, 3, 1, 2).float()
                    out.append(r / pred.exp() if how == "div" else torch.log(r + 1e-3) - pred)
            v, t = normalised(cv, ct, True)
            key = f"{mode}-lam{lam:g}-{how}"
            res[key] = {k: image_auroc(s, test) for k, s in combined_scores(v, t, size, model).items()}
            print(key, res[key], flush=True)
write_out(OUT, "s37_residual_scale", {"run": str(run), "data": str(data), **res})
