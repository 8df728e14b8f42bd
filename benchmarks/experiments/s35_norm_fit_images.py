"""Which images the map normalisation is fitted on, and what the validation images then tell a calibration
(an experiment, Session 35; not a product option).

    python benchmarks/experiments/s35_norm_fit_images.py RUN_DIR DATA [--out FILE.json]

RUN_DIR: a finished offline ``inspector train`` run on DATA. The trained student's quantile (and per-position) map
normalisation is refitted on its validation images (as trained), its training images, or both; for each: image
AUROC on the test split (``likely_defect`` left out) and how the validation images' scores, which ``inspector
calibrate`` takes by default, compare with unseen good images': the medians, and the share of good test images
above the validation maximum (the threshold calibrate picks with fewer than 1/rate images) and above its p99.
"""
import sys, json
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import out_option, write_out  # noqa: E402

OUT = out_option("s35_norm_fit_images")  # before the minutes of work: a user's file at --out is kept
import numpy as np, torch
from diagnose_students import auc, LIKELY
from inspector.data.datasets import load_batch, load_dataset, split_train_val
from inspector.models.checkpoint import load_model
torch.set_num_threads(1)
run, data = Path(sys.argv[1]), Path(sys.argv[2])
model, config, _ = load_model(run); model.eval()
size, resize = tuple(config.model.image_size), config.data.resize
ds = load_dataset(data)
train, val = split_train_val(ds.train, config.data.val_fraction, config.data.split_seed)
tr = load_batch(train, *size, resize)[0]; va = load_batch(val, *size, resize)[0]
test = [s for s in ds.test if s.defect_type != LIKELY]
te, kept, _ = load_batch(test, *size, resize); y = np.array([s.label for s in kept])
@torch.no_grad()
def sc(x):
    return np.concatenate([model.forward_with_levels(torch.from_numpy(x[i:i+8]))[0].numpy() for i in range(0, len(x), 8)])
out = {"positional": bool(getattr(model.level_norm, "positional", None))}
for name, fit in (("val", va), ("train", tr), ("train+val", np.concatenate([tr, va]))):
    with torch.no_grad():
        model.calibrate_maps(fit)
    sv, st = sc(va), sc(te)
    g = st[y == 0]
    out[name] = {"image_auroc": auc(st, y), "val p50": round(float(np.median(sv)), 4), "test good p50": round(float(np.median(g)), 4),
                 "test good > val max": round(float((g > sv.max()).mean()), 4),
                 "test good > val p99": round(float((g > np.quantile(sv, 0.99)).mean()), 4)}
    print(name, out[name], flush=True)
out = {"run": str(run), "data": str(data), "n_train": int(len(tr)), "n_val": int(len(va)),
       "n_test_good": int((y == 0).sum()), **out}
print(json.dumps(out))
write_out(OUT, "s35_norm_fit_images", out)
