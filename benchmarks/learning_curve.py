"""Detection quality along one training run: does a student get better or worse at finding defects
as its validation loss falls?

    python benchmarks/learning_curve.py --datasets kolektorsdd,elpv/mono --model reduced_student \
        --epochs 60 --every 6 [--set SECTION.KEY=VALUE ...] [--name NAME]

One fixed-epoch run per dataset with the model's default recipe (``--set`` overrides, as in
``bench_quality.py``). Every ``--every`` epochs the weights just trained are copied, their map
normalisation fitted on the validation images exactly as the end of training does, and the copy
scored on the test split: image AUROC, pixel AUROC where masks exist, and each level's image AUROC;
and on a label-free proxy, the validation images against copies of them with one synthetic defect
each (``inspector.data.synth``), to see whether such a proxy follows the real curve. The training
itself is untouched (the copy is scored, the run goes on), so the curve is the one run's, not a
set of runs of different lengths.

Why: ``bench_quality.py`` sees one point per run. Session 8 found KolektorSDD's image AUROC
lower at convergence (84 epochs) than at 12 while ELPV mono's rose; a stopping rule on the
validation loss cannot serve both if the two curves really diverge, and this shows whether they do.

JSON to ``benchmarks/results/learning-curve[-NAME].json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import claim_result_or_exit, write_result  # noqa: E402
from bench_quality import SHARED, level_aurocs, load_test, metrics_for, score_with_levels  # noqa: E402


def synthetic_defects(images: np.ndarray, seed: int = 0) -> np.ndarray:
    """A copy of each uint8 (N, H, W, 3) image with one synthetic defect (``inspector.data.synth``'s
    kinds in turn) drawn on a random square crop of side min(H, W), the generator's square canvas."""
    from inspector.data.synth import DEFECT_KINDS, make_defect

    out = images.copy()
    rng = np.random.default_rng(seed)
    h, w = images.shape[1:3]
    side = min(h, w)
    for i, img in enumerate(out):
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop, _ = make_defect(np.ascontiguousarray(img[y:y + side, x:x + side]), DEFECT_KINDS[i % len(DEFECT_KINDS)],
                              rng)
        img[y:y + side, x:x + side] = crop
    return out


def score_snapshot(model, val_imgs: np.ndarray, synthetic: np.ndarray, test: dict) -> dict:
    """Metrics of a copy of ``model`` calibrated on ``val_imgs`` (the end-of-training step), and the
    image AUROC of the validation images against their synthetic-defect copies (a label-free proxy)."""
    from inspector.evaluation.metrics import auroc

    snapshot = copy.deepcopy(model).eval()
    with torch.no_grad():
        snapshot.calibrate_maps(torch.from_numpy(val_imgs))
    scores, maps, peaks = score_with_levels(snapshot, test["images"])
    proxy = np.concatenate([score_with_levels(snapshot, x)[0] for x in (val_imgs, synthetic)])
    labels = np.repeat([0, 1], len(val_imgs))
    return {**metrics_for(scores, maps, test), "level_image_auroc": level_aurocs(peaks, test),
            "synthetic_val_auroc": float(auroc(proxy, labels))}


class CurveProbe:
    """The training loop's ``on_epoch`` callback: after every ``every``-th epoch's validation,
    score a copy of the model (the run itself continues unchanged)."""

    def __init__(self, every: int, data: Path, resize: str):
        self.every, self.data, self.resize = every, data, resize
        self.test, self.synthetic, self.points = None, None, []

    def __call__(self, model, phase: str, epoch: int, val: float, val_imgs: np.ndarray) -> None:
        if epoch % self.every:
            return
        t0 = time.monotonic()
        if self.test is None:  # the input size is known once training has resolved it
            self.test = load_test(self.data, tuple(model.config.image_size), self.resize)
            self.synthetic = synthetic_defects(val_imgs)
        point = {"phase": phase, "epoch": epoch, "val_loss": val,
                 **score_snapshot(model, val_imgs, self.synthetic, self.test)}
        point["score_s"] = round(time.monotonic() - t0, 1)
        self.points.append(point)
        levels = ", ".join(f"{k} {v:.3f}" for k, v in point["level_image_auroc"].items())
        print(f"  epoch {epoch}: val {val:.4f} image AUROC {point['image_auroc']:.3f} ({levels}); "
              f"synthetic-defect val AUROC {point['synthetic_val_auroc']:.3f}", flush=True)


def curve(dataset: str, args, run_root: Path) -> dict:
    from inspector.training import loop
    from inspector.training.config import load_run_config

    data = Path(args.data_root) / dataset
    train = {"epochs": args.epochs, "threads": args.threads}
    config = load_run_config(base={"model": {"name": args.model}, "data": {"path": str(data)}, "train": train},
                             overrides=list(args.set or ()))
    probe = CurveProbe(args.every, data, config.data.resize)
    run_dir = run_root / dataset.replace("/", "_") / args.model
    summary = loop.train(config, run_dir, on_epoch=probe)
    size = probe.test["images"].shape[1:3] if probe.test else None
    # every epoch's running training, seen and validation loss: the generalisation gap along the curve
    history = json.loads((run_dir / "history.json").read_text())
    return {"dataset": dataset, "model": args.model, "image_size": list(size or ()), "overrides": list(args.set or ()),
            "epochs": args.epochs, "every": args.every, "points": probe.points,
            "phases": summary["phases"], "history": history}


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="kolektorsdd,elpv/mono")
    p.add_argument("--model", default="reduced_student")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--every", type=int, default=6)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE")
    p.add_argument("--data-root", default=str(SHARED))
    p.add_argument("--run-root", default="runs/learning-curve")
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--name", default="")
    args = p.parse_args(argv)
    name = "learning-curve" + (f"-{args.name}" if args.name else "")
    claim_result_or_exit(name, args.out)  # before the work: a user's file at the name is kept
    torch.set_num_threads(args.threads)
    results = [curve(d, args, Path(args.run_root)) for d in args.datasets.split(",")]
    # "benchmark" is the name (write_result's): "learning_curve" in the payload hid it, so the script refused its
    # own earlier result as another's
    return write_result(name, {"datasets": results}, out_dir=Path(args.out))


if __name__ == "__main__":
    main()
