"""Downscale methods (``area``, ``box_linear``, ``halving``; :mod:`inspector.data.images`): cost and accuracy effect.

    python benchmarks/bench_downscale.py                       # KolektorSDD, 448x192, 2 epochs
    python benchmarks/bench_downscale.py --epochs 0            # kNN reference only (no training)

* **Cost**: median ms per frame of :func:`inspector.data.images.resize_image`
  with each method, one OpenCV thread (as in the daemon's batcher), for a
  1920×1080 and a 3840×2160 frame (enlarged real KolektorSDD image) → the
  model input, timed in alternating rounds.
* **Accuracy**, on KolektorSDD: with each method used for training *and*
  testing (as a model records it in its sidecar):

  - the PatchCore-style kNN reference (``knn_reference.py``; no training, so
    the difference is the preprocessing alone);
  - a model trained for a fixed number of epochs (``--epochs``, same seed,
    same data split; ``--model``), whose difference also holds training noise.

JSON to ``benchmarks/results/downscale.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _common import claim_result_or_exit, downscale_costs, parse_size, write_result  # noqa: E402

METHODS = ("area", "box_linear", "halving")  # area first: the exact reference the others are compared with


def resize_costs(frame: np.ndarray, size: tuple[int, int], rounds: int = 10, per_round: int = 10) -> dict:
    """{frame label: {method: {p50_ms, min_ms}}} for ``frame`` enlarged to 1080p and 2160p, shrunk to ``size``."""
    out = {}
    for label, hw in (("1080p", (1080, 1920)), ("2160p", (2160, 3840))):
        big = cv2.resize(frame, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
        out[label] = downscale_costs(big, size, METHODS, rounds, per_round)
    return out


def load(data: Path, size: tuple[int, int], method: str) -> dict:
    from inspector.data.datasets import load_batch, load_dataset, load_masks, split_train_val

    ds = load_dataset(data)
    train, _ = split_train_val(ds.train, 0.2, 0)
    train_imgs, _, _ = load_batch(train, size[0], size[1], "square", downscale=method)
    test_imgs, samples, _ = load_batch(ds.test, size[0], size[1], "square", downscale=method)
    return {"train": train_imgs, "test": test_imgs, "labels": np.array([s.label for s in samples]),
            "types": [s.defect_type for s in samples], "masks": load_masks(samples, size[0], size[1], "square")}


def metrics(scores, maps, d) -> dict:
    from inspector.evaluation.metrics import evaluate_scores

    m = evaluate_scores(scores, d["labels"], d["types"], maps=maps, masks=d["masks"])
    return {k: m.get(k) for k in ("image_auroc", "pixel_auroc", "aupro")}


def knn(d, max_pool: int) -> dict:
    from knn_reference import KnnReference, KnnSettings

    ref = KnnReference(KnnSettings(max_pool=max_pool)).fit(d["train"])
    scores, maps = ref.score(d["test"])
    return metrics(scores, maps, d)


def trained(model: str, data: Path, size, method: str, epochs: int, root: Path, d, seed: int = 0) -> dict:
    import torch

    from inspector.evaluation.evaluate import score_images
    from inspector.training.checkpoint import load_model
    from inspector.training.config import load_run_config
    from inspector.training.loop import train

    config = load_run_config(base={
        "model": {"name": model, "preset": "offline", "image_size": list(size)},
        "data": {"path": str(data), "downscale": method},
        "train": {"epochs": epochs, "seed": seed},
    })
    t0 = time.monotonic()
    train(config, root / f"{model}-{method}")
    seconds = time.monotonic() - t0
    net, _, _ = load_model(root / f"{model}-{method}")

    def scorer(batch):
        with torch.inference_mode():
            s, m = net(torch.from_numpy(batch))
        return s.numpy(), m.numpy()

    scores, maps = score_images(scorer, d["test"])
    return {**metrics(scores, maps, d), "train_seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "kolektorsdd"))
    ap.add_argument("--size", default="448x192", help="HxW model input (KolektorSDD recipe size)")
    ap.add_argument("--model", default="reduced_student")
    ap.add_argument("--epochs", type=int, default=2, help="fixed training epochs (0: kNN reference only)")
    ap.add_argument("--knn-pool", type=int, default=20_000,
                    help="kNN reference: patches the coreset is drawn from (0: no kNN reference)")
    ap.add_argument("--seed", type=int, default=0, help="training seed (run two to see the training noise)")
    ap.add_argument("--name", default="downscale")
    args = ap.parse_args(argv)
    claim_result_or_exit(args.name)  # before the work: a user's file at the name is kept
    size = tuple(parse_size(args.size))
    data = Path(args.data)
    load_before = os.getloadavg()[0]
    from inspector.data.datasets import list_images

    first = cv2.imread(str(list_images(data / "train" / "good")[0]), cv2.IMREAD_COLOR)
    costs = resize_costs(first, size)
    print(f"resize cost: {costs}", flush=True)
    results: dict = {m: {} for m in METHODS}
    with tempfile.TemporaryDirectory(prefix="inspector-downscale-") as tmp:
        for m in METHODS:
            d = load(data, size, m)
            if args.knn_pool:
                results[m]["knn_reference"] = knn(d, args.knn_pool)
                print(f"{m}: kNN {results[m]['knn_reference']}", flush=True)
            if args.epochs:
                results[m][args.model] = trained(args.model, data, size, m, args.epochs, Path(tmp), d, args.seed)
                print(f"{m}: {args.model} {results[m][args.model]}", flush=True)
    delta = {f"{m}_minus_area": {k: {metric: (None if results["area"][k][metric] is None else
                                             round(results[m][k][metric] - results["area"][k][metric], 4))
                                    for metric in ("image_auroc", "pixel_auroc", "aupro")} for k in results["area"]}
             for m in METHODS[1:]}
    settings = {"data": str(data), "size": list(size), "resize": "square", "epochs": args.epochs,
                "knn_pool": args.knn_pool, "training_seed": args.seed,
                "model": args.model,
                "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
    path = write_result(args.name, {"settings": settings, "resize_cost": costs, "results": results,
                                    "delta": delta})
    print(f"delta: {delta}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
