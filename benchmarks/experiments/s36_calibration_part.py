"""How a run's held-out calibration images (``data.calibration_fraction``) and its validation images score against
unseen good test images (an experiment, Session 36).

    python benchmarks/experiments/s36_calibration_part.py RUN_DIR DATA [--out FILE.json]

For each part: the median score, and the share of good test images (``likely_defect`` left out) above the part's
maximum (the threshold calibrate picks with fewer than 1/rate images; an unbiased sample of n leaves ~1/(n+1) above
it) and above its p99.
"""
import sys, json
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import out_option, write_out  # noqa: E402

OUT = out_option("s36_calibration_part")  # before the minutes of work: a user's file at --out is kept
import numpy as np, torch
from diagnose_students import LIKELY
from inspector.data.datasets import load_batch, load_dataset, split_good
from inspector.models.checkpoint import load_model
torch.set_num_threads(1)
run, data = Path(sys.argv[1]), Path(sys.argv[2])
model, config, _ = load_model(run); model.eval()
size, resize, d = tuple(config.model.image_size), config.data.resize, config.data
split = split_good(load_dataset(data).train, d.val_fraction, d.calibration_fraction, d.split_seed, 2)
test = [s for s in load_dataset(data).test if s.defect_type != LIKELY and s.label == 0]

@torch.no_grad()
def scores(samples):
    x = load_batch(samples, *size, resize)[0]
    return np.concatenate([model(torch.from_numpy(x[i:i + 16]))[0].numpy() for i in range(0, len(x), 16)])

good = scores(test)
out = {"run": str(run), "data": str(data), "n_test_good": len(good), "test good p50": round(float(np.median(good)), 4)}
for name, part in (("validation", split.val), ("calibration", split.calibration)):
    s = scores(part)
    out[name] = {"n": len(s), "p50": round(float(np.median(s)), 4),
                 "test good > max": round(float((good > s.max()).mean()), 4),
                 "test good > p99": round(float((good > np.quantile(s, 0.99)).mean()), 4)}
print(json.dumps(out))
write_out(OUT, "s36_calibration_part", out)
