"""Why a trained single-teacher student trails the kNN reference: per-image evidence.

    python benchmarks/diagnose_students.py RUN_DIR DATA [--out FILE.json] [--montage FILE.png]

RUN_DIR is a finished ``inspector train`` run (e.g. one ``bench_quality.py`` left
under ``--run-root``); DATA its dataset. Everything is measured on the test split
(``likely_defect`` left out, as in the headline AUROC) with the run's own model and
a kNN reference fitted on the same training images (``knn_reference.py``):

* ``reductions``: image AUROC of the final map reduced by max / top 0.1 % / 1 % / 5 % /
  mean, and of each level map by max and top 1 % (is the score reduction the loss?);
* ``generalisation``: the score of the training images themselves vs validation and
  good test images (a student that memorised its training set scores unseen good
  images high);
* ``border``: share of the top-1 % map pixels within one level-16 cell (16 px) of the
  image border, on good vs defective images, student and kNN (cell edges / structure);
* ``channels``: per level, how concentrated the squared error is over channels on good
  test images (participation ratio; share of the top 5 channels), whether a few
  standardised channels dominate;
* ``ranks``: Spearman correlation of student and kNN scores; the good images the
  student scores highest and the defects it scores lowest, with their kNN ranks.
* ``fit``: per level, the share of the standardised teacher's variance the student
  explains on (up to 64 of) its own training images, R² = 1 − MSE / Var(t): an
  under-fitting student leaves most of the normal variation as residual;
* ``posthoc``: inference-only variants of the same trained student (validation
  normalisation refitted): level subsets, and the squared error of the 3×3-averaged
  difference (t − s) instead of the per-pixel one (PatchCore's local aggregation).
``--montage``: those images side by side with both maps (a PNG to look at).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

LIKELY = "likely_defect"


def auc(scores, labels) -> float:
    from inspector.evaluation.metrics import auroc

    return round(float(auroc(np.asarray(scores), np.asarray(labels))), 4)


def topk_mean(maps: np.ndarray, fraction: float) -> np.ndarray:
    flat = maps.reshape(len(maps), -1)
    k = max(1, int(round(flat.shape[1] * fraction)))
    return np.sort(flat, axis=1)[:, -k:].mean(axis=1)


@torch.no_grad()
def run_model(model, images: np.ndarray, batch: int = 8):
    """(scores, maps (N,H,W), {level: (N,h,w)}, {level: per-channel mean sq. error (N,C)})."""
    scores, maps, levels, chan = [], [], {}, {}
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i:i + batch])
        s, m, lv = model.forward_with_levels(x)
        scores.append(s.numpy())
        maps.append(m[:, 0].numpy())
        for k, v in lv.items():
            levels.setdefault(k, []).append(v[:, 0].numpy())
        net_in = model.network_input(x)
        for name, t, st in zip(model.level_names, model.teacher_features(net_in), model.student_features(net_in)):
            chan.setdefault(name, []).append(((t - st) ** 2).mean((2, 3)).numpy())
    cat = lambda d: {k: np.concatenate(v) for k, v in d.items()}  # noqa: E731
    return np.concatenate(scores), np.concatenate(maps), cat(levels), cat(chan)


@torch.no_grad()
def level_scores(model, images: np.ndarray, subsets: list[tuple[int, ...]], batch: int = 8) -> list[np.ndarray]:
    """The product's image score with only the given level subsets combined (one array per subset)."""
    from inspector.models.common import combine_levels

    out = [[] for _ in subsets]
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i:i + batch])
        levels = model.evidence(model.level_maps(x))
        for j, sub in enumerate(subsets):
            out[j].append(model.finish(combine_levels([levels[k] for k in sub], x.shape[1:3], "sum"))[0].numpy())
    return [np.concatenate(o) for o in out]


def pooled_distance(kernel: int, high_pass: bool = False):
    """Squared error of the kernel×kernel-averaged difference (or of the difference minus
    that local average: its high-pass part), mean over channels: (N, 1, h, w)."""
    import torch.nn.functional as F

    def distance(teacher, student):
        d = teacher.float() - student.float()
        low = F.avg_pool2d(d, kernel, 1, kernel // 2, count_include_pad=False)
        return (d - low if high_pass else low).pow(2).mean(dim=1, keepdim=True)
    return distance


def posthoc(model, va: np.ndarray, te: np.ndarray, y: np.ndarray) -> dict:
    import itertools

    n = len(model.level_names)
    subsets = [c for r in range(1, n + 1) for c in itertools.combinations(range(n), r)]
    name = lambda sub: "+".join(model.level_names[k] for k in sub)  # noqa: E731
    out = {f"levels {name(sub)}": auc(v, y) for sub, v in zip(subsets, level_scores(model, te, subsets))}
    for label, kernel, high in (("pool3", 3, False), ("highpass3", 3, True), ("highpass5", 5, True)):
        model.distance = pooled_distance(kernel, high)
        model.calibrate_maps(va)
        for sub, v in zip(subsets, level_scores(model, te, subsets)):
            out[f"{label} levels {name(sub)}"] = auc(v, y)
    del model.distance
    model.calibrate_maps(va)
    return out


@torch.no_grad()
def teacher_fit(model, images: np.ndarray, batch: int = 8) -> dict:
    """{level: R²} of the student against the (standardised) teacher over ``images``."""
    err, var = {}, {}
    feats = {}
    for i in range(0, len(images), batch):
        x = model.network_input(torch.from_numpy(images[i:i + batch]))
        for name, t, s in zip(model.level_names, model.teacher_features(x), model.student_features(x)):
            err[name] = err.get(name, 0.0) + float((t - s).pow(2).mean((1, 2, 3)).sum())
            feats.setdefault(name, []).append(t)
    out = {}
    for name, ts in feats.items():
        t = torch.cat(ts)
        out[name] = round(1 - err[name] / len(t) / float(t.var((0, 2, 3)).mean()), 3)
    return out


def border_share(maps: np.ndarray, band: int = 16) -> np.ndarray:
    """Per image: share of its top-1 % pixels within ``band`` px of the border."""
    n, h, w = maps.shape
    edge = np.ones((h, w), bool)
    edge[band:h - band, band:w - band] = False
    flat = maps.reshape(n, -1)
    k = max(1, int(round(flat.shape[1] * 0.01)))
    idx = np.argsort(flat, axis=1)[:, -k:]
    return edge.reshape(-1)[idx].mean(axis=1)


def spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return round(float(np.corrcoef(ra, rb)[0, 1]), 4)


def montage(path: Path, images, s_maps, k_maps, rows: list[tuple[int, str]]) -> None:
    import cv2

    tiles = []
    for i, text in rows:
        img = images[i][..., ::-1].copy()
        cols = [img]
        for m in (s_maps[i], k_maps[i]):
            m = np.clip(m / (np.percentile(m, 99.9) + 1e-6) * 255, 0, 255).astype(np.uint8)
            cols.append(cv2.applyColorMap(m, cv2.COLORMAP_JET))
        row = np.concatenate(cols, axis=1)
        cv2.putText(row, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
        tiles.append(row)
    cv2.imwrite(str(path), np.concatenate(tiles, axis=0))


def main() -> None:
    from inspector.data.datasets import load_batch, load_dataset, split_train_val
    from inspector.models.checkpoint import load_model
    from _common import claim_out_or_exit, write_out
    from knn_reference import KnnReference, KnnSettings

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("data", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--montage", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--posthoc-only", action="store_true", help="only the inference-only variants (no kNN)")
    ap.add_argument("--fit-only", action="store_true", help="only the R² of the student on its training images")
    args = ap.parse_args()
    claim_out_or_exit(args.out, "diagnose-students")  # before the work: a user's file at --out is kept
    torch.set_num_threads(args.threads)
    model, config, _ = load_model(args.run_dir)
    model.eval()
    size, resize = tuple(config.model.image_size), config.data.resize
    ds = load_dataset(args.data)
    train, val = split_train_val(ds.train, config.data.val_fraction, config.data.split_seed)
    test = [s for s in ds.test if s.defect_type != LIKELY]
    tr, _, _ = load_batch(train, *size, resize)
    fit = teacher_fit(model, tr[np.linspace(0, len(tr) - 1, min(64, len(tr))).astype(int)])
    if args.fit_only:
        print(json.dumps({"run": str(args.run_dir), "fit": fit}))
        return
    if args.posthoc_only:
        te, kept, _ = load_batch([s for s in ds.test if s.defect_type != LIKELY], *size, resize)
        va, _, _ = load_batch(val, *size, resize)
        out = {"run": str(args.run_dir), "posthoc": posthoc(model, va, te, np.array([s.label for s in kept]))}
        print(json.dumps(out, indent=1))
        write_out(args.out, "diagnose-students", out)
        return
    va, _, _ = load_batch(val, *size, resize)
    te, kept, _ = load_batch(test, *size, resize)
    y = np.array([s.label for s in kept])
    s, maps, levels, chan = run_model(model, te)
    s_tr = run_model(model, tr)[0]
    s_va = run_model(model, va)[0]
    ref = KnnReference(KnnSettings(max_pool=100_000)).fit(load_batch(ds.train, *size, resize)[0])
    k, k_maps = ref.score(te)
    out: dict = {"run": str(args.run_dir), "data": str(args.data), "n_good": int((y == 0).sum()),
                 "n_defect": int(y.sum()), "student": auc(s, y), "knn": auc(k, y), "fit": fit}
    red = {"max": maps.reshape(len(maps), -1).max(1), "top0.1%": topk_mean(maps, 0.001),
           "top1%": topk_mean(maps, 0.01), "top5%": topk_mean(maps, 0.05), "mean": maps.mean((1, 2))}
    out["reductions"] = {name: auc(v, y) for name, v in red.items()}
    out["knn_reductions"] = {"max": auc(k_maps.reshape(len(k), -1).max(1), y), "top1%": auc(topk_mean(k_maps, 0.01), y)}
    out["levels"] = {name: {"max": auc(v.reshape(len(v), -1).max(1), y), "top1%": auc(topk_mean(v, 0.01), y)}
                     for name, v in levels.items()}
    q = lambda v: [round(float(x), 3) for x in np.percentile(v, [10, 50, 90])]  # noqa: E731
    out["generalisation"] = {"train p10/50/90": q(s_tr), "val": q(s_va), "test good": q(s[y == 0]),
                             "test defect": q(s[y == 1]),
                             "auroc train vs test good": auc(np.r_[s_tr, s[y == 0]],
                                                             np.r_[np.zeros(len(s_tr)), np.ones((y == 0).sum())])}
    bs, bk = border_share(maps), border_share(k_maps)
    out["border"] = {"student good": round(float(bs[y == 0].mean()), 3),
                     "student defect": round(float(bs[y == 1].mean()), 3),
                     "knn good": round(float(bk[y == 0].mean()), 3), "knn defect": round(float(bk[y == 1].mean()), 3),
                     "area share of the band": round(1 - (size[0] - 32) * (size[1] - 32) / (size[0] * size[1]), 3)}
    out["channels"] = {}
    for name, c in chan.items():
        g = c[y == 0].mean(0)
        share = np.sort(g / g.sum())[::-1]
        out["channels"][name] = {"channels": len(g),
                                 "participation_ratio": round(float(g.sum() ** 2 / (g ** 2).sum()), 1),
                                 "top5_share": round(float(share[:5].sum()), 3),
                                 "defect/good error ratio, top5 channels by ratio": sorted(
                                     (c[y == 1].mean(0) / g).round(2).tolist())[::-1][:5]}
    out["ranks"] = {"spearman student vs knn": spearman(s, k)}
    good, bad = np.where(y == 0)[0], np.where(y == 1)[0]
    rank_s, rank_k = np.argsort(np.argsort(-s)), np.argsort(np.argsort(-k))
    fp = good[np.argsort(-s[good])][:6]
    fn = bad[np.argsort(s[bad])][:6]
    out["ranks"]["top good (student rank, knn rank, border share)"] = [
        (kept[i].path.name, int(rank_s[i]), int(rank_k[i]), round(float(bs[i]), 2)) for i in fp]
    out["ranks"]["lowest defects (student rank, knn rank)"] = [
        (kept[i].path.name, int(rank_s[i]), int(rank_k[i])) for i in fn]
    out["posthoc"] = posthoc(model, va, te, y)
    print(json.dumps(out, indent=1))
    write_out(args.out, "diagnose-students", out)
    if args.montage:
        rows = [(i, f"good {kept[i].path.name} s#{rank_s[i]} k#{rank_k[i]}") for i in fp[:4]]
        rows += [(i, f"defect {kept[i].path.name} s#{rank_s[i]} k#{rank_k[i]}") for i in fn[:4]]
        montage(args.montage, te, maps, k_maps, rows)


if __name__ == "__main__":
    main()
