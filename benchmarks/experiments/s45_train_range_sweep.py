"""Sweep the bounded training settings (data.*, train.*, the base model section) at their declared edges on a
one-epoch run of a tiny dataset (s45 config-ranges hunt).

usage: s45_train_range_sweep.py DATA_DIR WORK_DIR [FILTER] — one line per case: ok / refused / traceback / hang.
"""
import dataclasses, os, sys
from concurrent.futures import ThreadPoolExecutor

from inspector.artifacts.run_config import DataConfig, TrainConfig
from inspector.models.base import ModelConfig

sys.argv += [""] * 2
DATA, WORK, FILTER = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
sys.path.insert(0, os.path.dirname(__file__))
from s45_range_sweep_edges import edges, judged  # noqa: E402

SKIP = {"train.epochs", "model.image_size"}  # --epochs 1 and a 64 px model keep each run short
cases = [(f"{sec}.{f.name}", v) for sec, cls in (("data", DataConfig), ("train", TrainConfig), ("model", ModelConfig))
         for f in dataclasses.fields(cls) for v in edges(f)
         if f"{sec}.{f.name}" not in SKIP and FILTER in f"{sec}.{f.name}"]


def run(case):
    key, value = case
    name = f"{key}={value}"
    d = os.path.join(WORK, name)
    cmd = ["inspector", "train", "--data", DATA, "--out", d, "--epochs", "1", "--set", "model.image_size=[64,64]",
           "--set", "train.batch_size=4", "--set", "train.threads=1", "--set", f"{key}={value}"]
    verdict, r = judged(name, cmd, 120)
    if verdict:
        return verdict
    if r.returncode != 0 or not os.path.exists(os.path.join(d, "best.pt")):
        return f"WRONG     {name} rc={r.returncode} {(r.stdout + r.stderr).strip().splitlines()[-1:]}"
    return f"ok        {name}"


with ThreadPoolExecutor(2) as ex:
    for line in ex.map(run, cases):
        print(line, flush=True)
