"""The kNN reference fitted on the students' training part only (an experiment, Session 37; not a product option).

    python benchmarks/experiments/s37_knn_train_part.py DATASET [DATASET ...] [--out FILE.json]

The quality benchmark's kNN reference keeps every good training image in its memory bank, while a default
student trains on 80 % of them (``data.val_fraction: 0.2``; the rest stop the run and fit the map
normalisation). This fits the same reference (``knn_reference.py``, the same teacher, taps, input size and
resize policy as ``bench_quality.py``) on all of them and on the student's training part of split_seed 0, 1
and 2 (``split_good``), and scores the same test split (image AUROC, ``likely_defect`` left out): whether
the 20 % the student never trains on is what separates the two models.
"""
import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))
from bench_quality import SHARED, default_input, load_test, metrics_for, offline_teacher  # noqa: E402
from knn_reference import KnnReference, KnnSettings  # noqa: E402

from inspector.data.datasets import load_batch, load_dataset, split_good  # noqa: E402

torch.set_num_threads(1)
args = [a for a in sys.argv[1:] if not a.startswith("--")]
out_path = Path(sys.argv[sys.argv.index("--out") + 1]) if "--out" in sys.argv else None
names = [a for a in args if out_path is None or a != str(out_path)]
out = {}
for name in names:
    data = SHARED / name
    size, resize = default_input(data)
    test = load_test(data, size, resize)
    train = list(load_dataset(data).train)
    parts = [("all", train)] + [(f"split_seed {s}", list(split_good(train, 0.2, seed=s).train)) for s in (0, 1, 2)]
    out[name] = {"image_size": list(size), "resize": resize}
    for label, samples in parts:
        images, _, _ = load_batch(samples, size[0], size[1], resize)
        reference = KnnReference(KnnSettings(backbone=offline_teacher(None), max_pool=100_000)).fit(images)
        scores, maps = reference.score(test["images"])
        out[name][label] = {"n_images": len(samples), "image_auroc": round(metrics_for(scores, maps, test)["image_auroc"], 4)}
        print(name, label, out[name][label], flush=True)
if out_path:
    out_path.write_text(json.dumps(out, indent=1) + "\n")
