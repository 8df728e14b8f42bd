"""Test-time flips for a trained student: image AUROC of its anomaly map averaged over flipped copies of each test
image (an experiment, Session 35; not a product option).

    python benchmarks/experiments/s35_tta_flips.py RUN_DIR DATA [--out FILE.json]

RUN_DIR: a finished ``inspector train`` run on DATA. Each flipped copy's map is flipped back before averaging; the
score is the product's (mean of the top 1 % of the map); ``likely_defect`` is left out as in the headline AUROC.
"""
import json, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import out_option, write_out  # noqa: E402

OUT = out_option("s35_tta_flips")  # before the minutes of work: a user's file at --out is kept
import numpy as np, torch
from diagnose_students import auc, topk_mean, LIKELY
from inspector.data.datasets import load_batch, load_dataset
from inspector.models.checkpoint import load_model

torch.set_num_threads(1)
run, data = Path(sys.argv[1]), Path(sys.argv[2])
model, config, _ = load_model(run); model.eval()
size, resize = tuple(config.model.image_size), config.data.resize
ds = load_dataset(data)
te, kept, _ = load_batch([s for s in ds.test if s.defect_type != LIKELY], *size, resize)
y = np.array([s.label for s in kept])

@torch.no_grad()
def maps_of(images):
    out, sc = [], []
    for i in range(0, len(images), 8):
        s, m, _ = model.forward_with_levels(torch.from_numpy(np.ascontiguousarray(images[i:i + 8])))
        out.append(m[:, 0].numpy()); sc.append(s.numpy())
    return np.concatenate(sc), np.concatenate(out)

s0, m0 = maps_of(te)
_, mh = maps_of(te[:, :, ::-1]); mh = mh[:, :, ::-1]
_, mv = maps_of(te[:, ::-1]); mv = mv[:, ::-1]
_, mhv = maps_of(te[:, ::-1, ::-1]); mhv = mhv[:, ::-1, ::-1]
res = {"score": auc(s0, y), "top1% map": auc(topk_mean(m0, 0.01), y),
       "h only": auc(topk_mean(mh, 0.01), y),
       "avg id+h": auc(topk_mean((m0 + mh) / 2, 0.01), y),
       "avg id+v": auc(topk_mean((m0 + mv) / 2, 0.01), y),
       "avg 4": auc(topk_mean((m0 + mh + mv + mhv) / 4, 0.01), y),
       "score avg id+h": auc((topk_mean(m0, 0.01) + topk_mean(mh, 0.01)) / 2, y),
       "min id,h": auc(topk_mean(np.minimum(m0, mh), 0.01), y)}
res = {"run": str(run), "data": str(data), "n_test": int(len(y)), "image_auroc": res}
print(json.dumps(res, indent=1))
write_out(OUT, "s35_tta_flips", res)
