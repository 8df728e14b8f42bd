"""A trained single-teacher run rescored with other residual metrics and level combinations, no retraining.

    python benchmarks/rescore_metrics.py --runs runs/s28-d1-mono/elpv_mono/reduced_student \
        --dataset elpv/mono [--knn] --name rescore-metrics-s28

For each run (a ``bench_quality.py`` run folder of a single-teacher offline model with
``distance: standardized_mse``: reduced_student, stfpm) the teacher's
compared levels and the student's outputs are computed once on the run's validation images
and the test images. Each level's residual is then measured as:

* ``std``: the mean squared error of the channel-standardised features (the trained metric);
* ``raw``: the same error on the teacher's raw features (the student's output de-standardised),
  so high-variance channels weigh more, as in the kNN reference's Euclidean distance;
* ``cos``: 1 − cosine similarity of the raw features (STFPM's metric);
* ``std+cos``: both maps per level, each normalised on its own before the sum.

Every variant goes through the product's own map normalisation (``LevelNormalization``:
per-position statistics, then the 0.9 / 0.995 validation quantiles) refitted on the run's
validation images, so the metric is the only difference; then the levels are combined
(``sum`` of clamped maps, the product's; ``sum-unclamped``; ``max`` over levels; ``z-sum``:
each level's own image score standardised over the validation images, then summed),
smoothed and reduced as the run's config says (offline: σ 4, the mean of the top 1 %). ``std`` + ``sum`` reproduces the
run's own image AUROC.

``--knn`` also fits the kNN reference (``knn_reference.py``, the quality benchmark's) and
records both models' per-image scores' losses: for each good image the fraction of defective
images scored below it, for each defective image the fraction of good ones scored above it,
and the AUROC of the two models' averaged ranks (the ten worst images of each kind are listed as
[student, kNN] loss pairs, ordered by the student's), and the student − kNN image AUROC difference
with its 95 % paired bootstrap interval over the test images (``paired_bootstrap``).
Image AUROC leaves ``likely_defect`` out.
JSON to ``benchmarks/results/<--name>.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import claim_result_or_exit, write_result  # noqa: E402
from bench_quality import LIKELY, SHARED, load_test, paired_bootstrap  # noqa: E402
from rescore_parts import validation_images  # noqa: E402

METRICS = ("std", "raw", "cos", "std+cos")
COMBINATIONS = ("sum", "sum-unclamped", "max", "z-sum")


def features(model, images: np.ndarray, batch: int = 8) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(raw teacher levels, student outputs) over uint8 images, each a list of (N, C, h, w) FP32."""
    teacher, student = [], []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            x = model.network_input(torch.from_numpy(images[i:i + batch]))
            teacher.append([t.float() for t in model.pooled_teacher(x)])
            student.append([s.float() for s in model.student_features(x)])
    levels = range(len(teacher[0]))
    return [torch.cat([t[k] for t in teacher]) for k in levels], [torch.cat([s[k] for s in student]) for k in levels]


def residual_maps(model, metric: str, teacher: list[torch.Tensor], student: list[torch.Tensor]) -> list[torch.Tensor]:
    """One (N, 1, h, w) map per level (two per level for ``std+cos``), in the named metric, computed with the
    product's own distances (``inspector.models.common``) on the standardised or de-standardised features."""
    from inspector.models.common import level_distance, standardized_distance

    out, extra = [], []
    for i, (t, t_std, s) in enumerate(zip(teacher, model.standardize(teacher), student)):
        raw_s = s / getattr(model.standardize, f"inv_std{i}") + getattr(model.standardize, f"mean{i}")
        if metric in ("std", "std+cos"):
            out.append(standardized_distance(t_std, s))
        if metric == "raw":
            out.append(standardized_distance(t, raw_s))
        if metric in ("cos", "std+cos"):  # 0.5·‖t̂ − ŝ‖² of unit vectors is 1 − cosine
            (extra if metric == "std+cos" else out).append(level_distance(t, raw_s))
    return out + extra


def normalised(val_maps: list[torch.Tensor], test_maps: list[torch.Tensor],
               positional: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(validation maps, test maps) through a ``LevelNormalization`` fitted on the validation maps (the
    product's rule), so both sides of every later comparison are in the same units."""
    from inspector.models.common import LevelNormalization

    norm = LevelNormalization(len(val_maps), [tuple(m.shape[-2:]) for m in val_maps] if positional else None)
    norm.fit(val_maps)
    with torch.inference_mode():
        return norm(val_maps), norm(test_maps)


def metric_scores(model, metric: str, val: tuple, test: tuple, size: tuple[int, int], positional: bool) -> dict:
    """{combination: test image scores (N,)} of one metric; ``val``/``test``: :func:`features` of each split."""
    val_maps, test_maps = normalised(residual_maps(model, metric, *val), residual_maps(model, metric, *test),
                                     positional)
    return combined_scores(val_maps, test_maps, size, model)


def combined_scores(val: list[torch.Tensor], test: list[torch.Tensor], size: tuple[int, int], model) -> dict:
    """Image scores (N,) of the test images per combination rule of :data:`COMBINATIONS` (``val``, ``test``:
    normalised level maps; ``z-sum`` standardises by the validation images' per-level scores), each map
    smoothed and reduced as ``model``'s config says (``smoothing_sigma``, ``score``, ``score_topk``)."""
    from inspector.models.common import reduce_score, upsample

    def topk_score(amap: torch.Tensor) -> np.ndarray:
        return reduce_score(model.smoothing(amap), model.config.score, model.config.score_topk).numpy()

    up = lambda maps, clamp=True: [upsample(m.clamp_min(0) if clamp else m, size) for m in maps]  # noqa: E731
    per_level = [(topk_score(upsample(t, size)), topk_score(upsample(v, size))) for t, v in zip(test, val)]
    return {"sum": topk_score(sum(up(test))), "sum-unclamped": topk_score(sum(up(test, False))),
            "max": topk_score(torch.stack(up(test)).amax(0)),
            "z-sum": sum((t - v.mean()) / v.std() for t, v in per_level)}


def image_auroc(scores: np.ndarray, test: dict) -> float:
    from inspector.evaluation.metrics import auroc

    keep = np.array([t != LIKELY for t in test["types"]])
    return round(float(auroc(np.asarray(scores)[keep], test["labels"][keep])), 4)


def rescore_run(run: Path, data: Path) -> tuple[dict, dict, np.ndarray, object]:
    """({metric: {combination: image AUROC}}, the test set, the product's own scores, the run config) of one run."""
    from inspector.training.checkpoint import load_model

    model, config, _ = load_model(run)
    model.eval()
    size = tuple(config.model.image_size)
    test = load_test(data, size, config.data.resize)
    val, test_features = features(model, validation_images(config, data)), features(model, test["images"])
    positional = config.model.position_normalization == "shrunk"
    rows, own = {}, None
    for metric in METRICS:
        scores = metric_scores(model, metric, val, test_features, size, positional)
        own = scores["sum"] if metric == "std" else own
        rows[metric] = {how: image_auroc(s, test) for how, s in scores.items()}
        print(f"{run}  {metric:8} " + "  ".join(f"{k} {v:.4f}" for k, v in rows[metric].items()), flush=True)
    return rows, test, own, config


def losses(scores: np.ndarray, test: dict) -> tuple[np.ndarray, np.ndarray]:
    """(per good image: fraction of defects scored below it, per defect: fraction of goods scored above it)."""
    keep = np.array([t != LIKELY for t in test["types"]])
    s, y = np.asarray(scores)[keep], test["labels"][keep]
    good, bad = s[y == 0], s[y == 1]
    return (bad[None, :] < good[:, None]).mean(1), (good[None, :] > bad[:, None]).mean(1)


def knn_comparison(student: np.ndarray, test: dict, data: Path, size: tuple[int, int], resize: str) -> dict:
    """The kNN reference's image AUROC, both models' worst images and their averaged ranks' AUROC."""
    from inspector.data.datasets import load_batch, load_dataset
    from knn_reference import KnnReference, KnnSettings

    train, _, _ = load_batch(load_dataset(data).train, size[0], size[1], resize)
    knn, _ = KnnReference(KnnSettings(max_pool=100_000)).fit(train).score(test["images"])
    ranks = lambda s: np.argsort(np.argsort(s)) / len(s)  # noqa: E731
    (sg, sd), (kg, kd) = losses(student, test), losses(knn, test)
    worst = lambda a, b: [[round(float(x), 3), round(float(y), 3)] for x, y in sorted(zip(a, b), reverse=True)[:10]]  # noqa: E731
    return {"knn_image_auroc": image_auroc(knn, test), "student_image_auroc": image_auroc(student, test),
            "student_minus_knn": paired_bootstrap(student, knn, test),
            "rank_average_image_auroc": image_auroc(ranks(student) + ranks(knn), test),
            "defects_below_half": {"student": int((sd > 0.5).sum()), "knn": int((kd > 0.5).sum())},
            "worst_good_student_knn": worst(sg, kg), "worst_defect_student_knn": worst(sd, kd)}


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", required=True, help="comma list of bench_quality.py run folders")
    ap.add_argument("--dataset", required=True, help="e.g. elpv/mono, under --data-root")
    ap.add_argument("--data-root", type=Path, default=SHARED)
    ap.add_argument("--knn", action="store_true", help="also compare per image with the kNN reference")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--name", default="rescore-metrics")
    args = ap.parse_args(argv)
    claim_result_or_exit(args.name, args.out)  # before the work: a user's file at the name is kept
    torch.set_num_threads(1)
    data, results = args.data_root / args.dataset, []
    for run in map(Path, args.runs.split(",")):
        rows, test, own, config = rescore_run(run, data)
        row = {"run": str(run), "dataset": args.dataset, "image_auroc": rows}
        if args.knn:
            row["knn"] = knn_comparison(own, test, data, tuple(config.model.image_size), config.data.resize)
            gap = row["knn"]["student_minus_knn"]
            print(f"{run}  kNN {row['knn']['knn_image_auroc']}  rank average "
                  f"{row['knn']['rank_average_image_auroc']}  student - kNN {gap['difference']:+.4f} "
                  f"(95 % {gap['ci95'][0]:+.4f} .. {gap['ci95'][1]:+.4f})", flush=True)
        results.append(row)
    path = write_result(args.name, {"metrics": METRICS, "combinations": COMBINATIONS, "rows": results}, args.out)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
