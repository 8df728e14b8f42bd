"""Leave-one-domain-out quality of the meta-comparer at K = 1/5/20 references, beside the kNN reference.

    python benchmarks/bench_meta_comparer.py --threads 1        # the full run: ≈ 5 min on an idle core
    python benchmarks/bench_meta_comparer.py --quick --out /tmp/mc   # smoke: 64x64, 1 epoch

Domains (issue 21): the synthetic textures ``synth:brick``, ``synth:grass``, ``synth:gravel``
(always sources) and the real ``kolektorsdd``, ``elpv/mono``, ``elpv/poly`` and
``mvtec_leather_subset`` (a smoke check: 4 good training images). For each held-out real
domain D a fresh comparer is trained on every *other* domain (image-level labels; what a
training domain contributes: :mod:`inspector.models.meta_comparer.domains`) and never sees D.
Then, for each K, K references are drawn (seeded) from D's ``train/good`` and D's ``test``
split is scored (likely_defect left out of the headline, as in ``bench_quality.py``; at most
``--max-test`` test images, a seeded draw, recorded):

* ``meta_comparer``: enrolled with the K references (the bank a graph from ``inspector enroll``
  would carry);
* ``knn_reference``: ``knn_reference.py`` fitted on the same K images at the same input size,
  coreset fraction 1.0 (the whole K-image bank, like the comparer's).

Training budget: a fixed number of optimizer steps (``--epochs`` × ``steps_per_epoch``, early
stopping on the validation episodes with ``--patience``), the same on any machine, so a loaded
machine makes the run slower, not the comparer weaker. ``--time-cap`` is only a safety net; a fold
that hits it is marked ``budget_reached: false`` (its numbers are not the recipe's). Each fold
records steps, epochs, wall and CPU seconds.

The paper's figure (AUC vs fraction of the target's normal images used as references) is the
``fractions`` sweep: the same two methods at K = fraction × |train/good| (capped at 50, the
enrolment limit), beside K = 1/5/20; drawn to ``<name>_fractions.png`` next to the JSON. The
teacher is frozen, so its features of every source image are computed once and shared by all
folds. Input size and resize policy per domain are those of ``bench_quality.py`` times
``--scale`` (default 0.5; the same for both methods), ``--synth-size`` (128) for the textures.

Budget of the defaults (25 epochs × 40 steps at most per fold, ≤ 400 test images, scale 0.5),
measured with one thread: a training step costs 0.024–0.039 CPU s (8 episodes, per source
domain), so a fold trains in ≤ 40 s; features and scoring add ≈ 40 s per fold: the four folds
take ≈ 5 minutes, well inside 15 on an idle 2-core machine. Use ``--threads 1``: with two torch
threads on a loaded machine the OpenMP threads spin while descheduled and the same 120 steps
took 4–215 CPU s. The JSON's ``seconds`` and ``cpu_seconds`` (whole run and per fold) say what
a run took. JSON to ``benchmarks/results/meta_comparer.json``;
``summary.py`` renders its section.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import claim_result_or_exit, write_result  # noqa: E402
from bench_quality import SHARED, default_input, load_test, metrics_for  # noqa: E402

SYNTH = ("synth:brick", "synth:grass", "synth:gravel")
REAL = ("kolektorsdd", "elpv/mono", "elpv/poly", "mvtec_leather_subset")
KS = (1, 5, 20)
FRACTIONS = (0.05, 0.1, 0.2)  # beside K = 1/5/20, which are fractions too


def domain_input(name: str, args) -> tuple[tuple[int, int], str]:
    """Input size and resize policy of a real domain: bench_quality's, times ``--scale`` (multiples of 32)."""
    if args.quick:
        return (64, 64), "square"
    size, resize = default_input(args.data_root / name)
    return tuple(max(32, int(round(s * args.scale / 32)) * 32) for s in size), resize


def build(size, threads_seed: int = 0, **overrides):
    from inspector.models.registry import build_model, parse_model_config

    torch.manual_seed(threads_seed)
    return build_model(parse_model_config({"name": "meta_comparer", "image_size": list(size), **overrides}))


def source_banks(model, args) -> dict:
    """FeatureBank of every domain (normals + defects, the training view), computed once."""
    from inspector.models.meta_comparer.domains import load_domain
    from inspector.training.meta_comparer import FeatureBank

    banks, rng = {}, np.random.default_rng(0)
    cfg = model.config
    for name in (*SYNTH, *REAL):
        size, resize = ((args.synth_size, args.synth_size), "square") if name in SYNTH else domain_input(name, args)
        spec = name if name in SYNTH else str(args.data_root / name)
        t0 = time.monotonic()
        domain = load_domain(spec, tuple(size), cfg.domain_normals, cfg.domain_defects, resize=resize)
        banks[name] = FeatureBank(model, domain, rng)
        print(f"features {name}: {len(domain.normals)} normal + {len(domain.defects)} defective at "
              f"{size[0]}x{size[1]} ({time.monotonic() - t0:.0f} s)", flush=True)
    return banks


def target_view(model, name: str, args) -> dict:
    """The held-out domain as evaluated: its test images (capped), their features and the good pool."""
    from inspector.data.datasets import load_dataset

    data = args.data_root / name
    size, resize = domain_input(name, args)
    test = load_test(data, tuple(size), resize)
    n = len(test["labels"])
    if n > args.max_test:
        keep = np.sort(np.random.default_rng(1).choice(n, args.max_test, replace=False))
        test = {"images": test["images"][keep], "labels": test["labels"][keep],
                "types": [test["types"][i] for i in keep], "masks": [test["masks"][i] for i in keep]}
    with torch.no_grad():
        feats = [torch.cat(parts) for parts in zip(*(model.patch_features(torch.from_numpy(test["images"][i:i + 16]))
                                                       for i in range(0, len(test["images"]), 16)))]
    pool = [s for s in load_dataset(data).train if s.label == 0]
    return {"size": list(size), "resize": resize, "test": test, "pool": pool, "features": feats,
            "n_test_total": n}


def draw_refs(target: dict, k: int, seed: int) -> np.ndarray:
    """K reference images from the good pool (a seeded draw per K), loaded as the test images are."""
    from inspector.data.datasets import load_batch

    pool = target["pool"]
    chosen = [pool[i] for i in np.sort(np.random.default_rng([seed, k]).choice(len(pool), k, replace=False))]
    images, _, _ = load_batch(chosen, target["size"][0], target["size"][1], target["resize"])
    return images


def score_comparer(model, target: dict, refs: np.ndarray) -> dict:
    model.enroll(torch.from_numpy(refs))
    size = tuple(target["size"])
    scores, maps = [], []
    with torch.no_grad():
        for i in range(0, len(target["test"]["images"]), 16):
            levels = model.scores_from_features([f[i:i + 16] for f in target["features"]])
            amap = model.pixel_map(levels, size)
            scores.append(amap.flatten(1).amax(dim=1).numpy())
            maps.append(amap[:, 0].numpy())
    return metrics_for(np.concatenate(scores), np.concatenate(maps), target["test"])


def score_knn(target: dict, refs: np.ndarray, knn_cache: dict) -> dict:
    from knn_reference import KnnReference, KnnSettings

    if "ref" not in knn_cache:
        knn_cache["ref"] = KnnReference(KnnSettings(coreset_fraction=1.0, max_pool=10**9))
        knn_cache["emb"] = knn_cache["ref"].embed(target["test"]["images"])
    ref = knn_cache["ref"]
    ref.coreset = None
    emb_refs = ref.embed(refs)
    ref.coreset = emb_refs.permute(0, 2, 3, 1).reshape(-1, emb_refs.shape[1])  # coreset fraction 1.0
    emb = knn_cache["emb"]
    h, w = target["size"]
    scores, maps = [], []
    with torch.no_grad():
        for i in range(0, len(emb), 16):
            e = emb[i:i + 16]
            n, c, fh, fw = e.shape
            dist = torch.cdist(e.permute(0, 2, 3, 1).reshape(-1, c), ref.coreset).amin(dim=1).view(n, 1, fh, fw)
            scores.append(dist.flatten(1).amax(dim=1).numpy())
            maps.append(F.interpolate(dist, size=(h, w), mode="bilinear", align_corners=False)[:, 0].numpy())
    return metrics_for(np.concatenate(scores), np.concatenate(maps), target["test"])


class Clock:
    """Wall and CPU seconds since construction (CPU: this process, all threads)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.monotonic(), time.process_time()

    def read(self) -> dict:
        return {"wall": round(time.monotonic() - self.wall, 1), "cpu": round(time.process_time() - self.cpu, 1)}


def reference_counts(n_good: int) -> list[int]:
    """K = 1/5/20 and the fractions of the good pool, each capped at the pool and at the enrolment limit."""
    return sorted({*(min(k, n_good) for k in KS), *(max(1, min(50, n_good, round(f * n_good))) for f in FRACTIONS)})


def train_fold(name: str, banks: dict, args, train_cfg):
    from inspector.training.meta_comparer import fit

    model = build((64, 64), **args.model_overrides)
    sources = [b for n, b in banks.items() if n != name]
    result = fit(model, sources, train_cfg)
    result.pop("history")
    train = {**result, "sources": [b.name for b in sources], "budget_reached": result["stop_reason"] != "time_cap"}
    print(f"{name}: trained on {len(sources)} domains, {train['steps']} steps / {train['epochs_run']} epochs in "
          f"{train['seconds']} s, {train['cpu_seconds']} CPU s ({train['stop_reason']})", flush=True)
    if not train["budget_reached"]:
        print(f"warning: {name}: the safety cap --time-cap stopped training before its step budget "
              f"(a loaded machine?); these numbers are not the recipe's", flush=True)
    return model.eval(), train


def fold(name: str, banks: dict, args, train_cfg) -> dict:
    clock = Clock()
    model, train = train_fold(name, banks, args, train_cfg)
    target = target_view(model, name, args)
    rows, knn_cache = [], {}
    n_good = len(target["pool"])
    # a K above the pool becomes the whole pool (the leather subset has 4 good training images)
    for k in reference_counts(n_good):
        refs = draw_refs(target, k, args.seed)
        t1 = Clock()
        mc = score_comparer(model, target, refs)
        t2 = Clock()
        knn = score_knn(target, refs, knn_cache)
        rows.append({"k": k, "fraction": round(k / n_good, 4), "meta_comparer": mc, "knn_reference": knn,
                     "seconds": {"meta_comparer": round(t2.wall - t1.wall, 1), "knn_reference": t2.read()["wall"]}})
        print(f"{name:22} K={k:3d} meta_comparer img {mc['image_auroc']:.3f} px {mc['pixel_auroc'] or 0:.3f} | "
              f"knn img {knn['image_auroc']:.3f} px {knn['pixel_auroc'] or 0:.3f}", flush=True)
    spent = clock.read()
    return {"held_out": name, "kind": "smoke" if name == "mvtec_leather_subset" else "real",
            "input": {"size": target["size"], "resize": target["resize"]},
            "n_test": len(target["test"]["labels"]), "n_test_total": target["n_test_total"],
            "n_train_good": n_good, "train": train, "results": rows,
            "seconds": spent["wall"], "cpu_seconds": spent["cpu"]}


def draw_figure(folds: list[dict], path: Path) -> Path | None:
    """Image AUROC against the fraction of the target's good images used as references (paper Fig. 3)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # matplotlib comes with the [train] extra; the JSON has the same numbers
        print("matplotlib not installed: no figure (the JSON has the sweep)")
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, f in enumerate(folds):
        x = [100 * r["fraction"] for r in f["results"]]
        colour = f"C{i}"
        ax.plot(x, [r["meta_comparer"]["image_auroc"] for r in f["results"]], "o-", color=colour,
                label=f"{f['held_out']}: meta_comparer")
        ax.plot(x, [r["knn_reference"]["image_auroc"] for r in f["results"]], "s--", color=colour,
                alpha=0.6, label=f"{f['held_out']}: kNN, same K")
    ax.set_xscale("log")
    ax.set_xlabel("references: % of the held-out domain's good training images")
    ax.set_ylabel("image AUROC")
    ax.set_title("Leave-one-domain-out, AUC vs fraction of target references")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke: 64x64, tiny domains, 1 epoch")
    ap.add_argument("--held-out", help=f"comma list of real domains to leave out (default: {','.join(REAL)})")
    ap.add_argument("--data-root", type=Path, default=SHARED)
    ap.add_argument("--epochs", type=int, default=25,
                    help="training budget per fold: at most this many epochs of steps_per_epoch steps")
    ap.add_argument("--patience", type=int, default=5, help="early stopping on the validation episodes")
    ap.add_argument("--time-cap", type=float, default=300.0,
                    help="safety net per fold, wall-clock seconds; a fold stopped by it is flagged")
    ap.add_argument("--max-test", type=int, default=400, help="test images per held-out domain (seeded draw)")
    ap.add_argument("--synth-size", type=int, default=128)
    ap.add_argument("--scale", type=float, default=0.5,
                    help="real domains' input: bench_quality's size times this (CPU budget), the same for both methods")
    ap.add_argument("--domain-images", type=int, default=80,
                    help="normal images drawn per training domain (defective: half as many)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--name", default="meta_comparer")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    from inspector.training.config import TrainConfig

    args = parse_args(argv)
    claim_result_or_exit(args.name, args.out)  # before the work: a user's file at the name is kept
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.synth_size, args.max_test, args.epochs = 64, 40, 1
    held_out = args.held_out.split(",") if args.held_out else list(REAL)
    clock = Clock()
    args.model_overrides = {"domain_normals": args.domain_images, "domain_defects": max(1, args.domain_images // 2)}
    model = build((64, 64), **args.model_overrides)
    banks = source_banks(model, args)
    features = clock.read()
    train_cfg = TrainConfig(optimizer="adam", lr=1e-3, weight_decay=1e-5, batch_size=8, seed=args.seed,
                            epochs=None, max_epochs=args.epochs, patience=args.patience,
                            time_budget_s=args.time_cap)
    folds = []
    settings = {"epochs": args.epochs, "patience": args.patience, "time_cap_s": args.time_cap,
                "max_test": args.max_test, "seed": args.seed, "scale": args.scale, "synth_size": args.synth_size,
                "train": {k: getattr(train_cfg, k) for k in ("optimizer", "lr", "batch_size", "patience")},
                "model": {k: getattr(model.config, k) for k in ("backbone", "taps", "embed_dim", "comparer_hidden",
                                                               "train_references", "steps_per_epoch",
                                                               "domain_normals", "domain_defects")},
                "step_budget": args.epochs * model.config.steps_per_epoch,
                "knn": "knn_reference.py on the same K images at the same input size, coreset fraction 1.0",
                "likely_defect": "excluded from image_auroc; see image_auroc_with_likely",
                "fractions": list(FRACTIONS), "ks": list(KS)}
    for name in held_out:
        folds.append(fold(name, banks, args, train_cfg))
        path = write_result(args.name, {"quick": args.quick, "settings": settings, "complete": False,
                                        "features": features, "seconds": clock.read()["wall"],
                                        "cpu_seconds": clock.read()["cpu"], "folds": folds}, args.out)
    figure = draw_figure(folds, path.with_name(f"{args.name}_fractions.png"))
    spent = clock.read()
    path = write_result(args.name, {"quick": args.quick, "settings": settings, "complete": True,
                                    "features": features, "seconds": spent["wall"], "cpu_seconds": spent["cpu"],
                                    "figure": figure.name if figure else None, "folds": folds}, args.out)
    print(f"wrote {path} in {spent['wall']:.0f} s ({spent['cpu']:.0f} CPU s)")
    return path


if __name__ == "__main__":
    main()
