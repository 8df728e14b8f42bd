"""The kNN reference fitted on the students' training part only (an experiment, Session 37; not a product option).

    python benchmarks/experiments/s37_knn_train_part.py DATASET [DATASET ...] [--out FILE.json]

The quality benchmark's kNN reference keeps every good training image in its memory bank, while a default
student trains on 80 % of them (``data.val_fraction: 0.2``; the rest stop the run and fit the map
normalisation). This fits the same reference (``knn_reference.py``, the same teacher, taps, input size and
resize policy as ``bench_quality.py``) on all of them and on the student's training part of split_seed 0, 1
and 2 (``split_good``), and scores the same test split (image AUROC, ``likely_defect`` left out): whether
the 20 % the student never trains on is what separates the two models.
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))
from _common import out_option, write_out  # noqa: E402

OUT = out_option("s37_knn_train_part")  # before the minutes of work: a user's file at --out is kept

import torch  # noqa: E402

from bench_quality import SHARED, default_input, load_test, metrics_for, offline_teacher  # noqa: E402
from knn_reference import KnnReference, KnnSettings  # noqa: E402

from inspector.data.datasets import load_batch, load_dataset, split_good  # noqa: E402

torch.set_num_threads(1)
args = [a for a in sys.argv[1:] if not a.startswith("--")]
names = [a for a in args if OUT is None or a != sys.argv[sys.argv.index("--out") + 1]]
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
write_out(OUT, "s37_knn_train_part", out)
