"""Detection quality on real data: every model with its DEFAULT recipe vs a PatchCore-style kNN reference.

    python benchmarks/bench_quality.py [--quick] [--datasets kolektorsdd,elpv/mono,...] [--models ...]

For each dataset (each category separately: ``kolektorsdd``, ``elpv/mono``,
``elpv/poly``; ``mvtec_leather_subset`` as a smoke check only; one synthetic
texture) and each registered model: train with ``inspector train --data D``'s
defaults (no per-dataset settings; the only thing the bench adds is the same
wall-clock cap for every run, recorded as the stop reason when it bites), then
evaluate on the test split: image AUROC, pixel AUROC and AUPRO where masks
exist, and the image AUROC of every level map alone (diagnostic). In the same
run a kNN reference (``knn_reference.py``: the same pretrained teacher at
strides 8+16, same input size and resize policy) anchors the numbers; ``--teacher``
sets the offline teacher of the models that have the choice (``model.teacher``)
and the reference's backbone together, so students and kNN share one backbone.

ELPV's ``test/likely_defect`` (annotator probability 2/3) is left out of the
headline image AUROC, which uses ``test/good`` vs ``test/defect`` as the
dataset's README says; the AUROC with it counted as defective is reported
beside it (``image_auroc_with_likely``) and per type.

JSON to ``benchmarks/results/quality.json`` (or ``--out``); ``summary.py`` turns it
into a table in SUMMARY.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import claim_result_or_exit, write_result  # noqa: E402

SHARED = HERE.parent.parent / "shared" / "data"
REAL = ("kolektorsdd", "elpv/mono", "elpv/poly")
SMOKE = ("mvtec_leather_subset",)
SYNTHETIC = "synthetic-grass"
LIKELY = "likely_defect"
CROSS_DOMAIN = ("meta_comparer",)  # not trained per dataset: benchmarks/bench_meta_comparer.py
QUICK_SIZE = (64, 64)  # --quick: every model and the reference at this input size


def synthetic_dataset(root: Path, quick: bool) -> Path:
    from inspector.data.synth import synthesize

    size, counts = (64, (16, 6, 8)) if quick else (256, (160, 40, 60))
    out = root / f"grass-{size}-{'-'.join(map(str, counts))}"
    if not (out / "manifest.json").is_file():
        synthesize(out, texture="grass", size=size, n_train=counts[0], n_test_good=counts[1],
                   n_test_defect=counts[2], seed=0, overwrite=True)
    return out


def load_test(data: Path, size: tuple[int, int], resize: str) -> dict:
    from inspector.data.datasets import load_batch, load_dataset, load_masks

    dataset = load_dataset(data)
    images, samples, _ = load_batch(dataset.test, size[0], size[1], resize)
    return {"images": images, "labels": np.array([s.label for s in samples]),
            "types": [s.defect_type for s in samples], "masks": load_masks(samples, size[0], size[1], resize)}


def metrics_for(scores: np.ndarray, maps: np.ndarray | None, test: dict) -> dict:
    """Headline metrics without ``likely_defect`` images, plus image AUROC with them as defects."""
    from inspector.evaluation.metrics import auroc, evaluate_scores

    types = test["types"]
    keep = np.array([t != LIKELY for t in types])
    sel = lambda xs: [x for x, k in zip(xs, keep) if k]  # noqa: E731
    has_masks = any(m is not None and m.any() for m in sel(test["masks"]))
    m = evaluate_scores(scores[keep], test["labels"][keep], sel(types),
                        maps=maps[keep] if has_masks and maps is not None else None,
                        masks=sel(test["masks"]) if has_masks else None)
    out = {k: m.get(k) for k in ("image_auroc", "pixel_auroc", "aupro", "f1_max")}
    if not keep.all():
        out["image_auroc_with_likely"] = auroc(scores, test["labels"])
        out["image_auroc_likely_only"] = auroc(scores[[t in (LIKELY, "good") for t in types]],
                                               test["labels"][[t in (LIKELY, "good") for t in types]])
    out["n_good"] = int((test["labels"][keep] == 0).sum())
    out["n_defect"] = int((test["labels"][keep] == 1).sum())
    return out


def paired_bootstrap(first: np.ndarray, second: np.ndarray, test: dict, rounds: int = 2000,
                     seed: int = 0) -> dict:
    """The image AUROC difference first − second with its 95 % paired, stratified bootstrap interval.

    Each round redraws the good and the defective test images with replacement (each class to its
    own count, so both classes stay as large as measured) and scores both models on the SAME draw:
    the interval is how much the difference would move on another test set of the same sizes from
    the same population (Efron & Tibshirani, "An Introduction to the Bootstrap", 1993, §6; the
    pairing is DeLong's, whose covariance it estimates by resampling). ``likely_defect`` is left out.
    """
    from inspector.evaluation.metrics import auroc

    keep = np.array([t != LIKELY for t in test["types"]])
    a, b, y = np.asarray(first)[keep], np.asarray(second)[keep], test["labels"][keep].astype(bool)
    good, bad = np.flatnonzero(~y), np.flatnonzero(y)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(rounds):
        idx = np.concatenate([rng.choice(good, good.size), rng.choice(bad, bad.size)])
        diffs.append(auroc(a[idx], y[idx]) - auroc(b[idx], y[idx]))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {"difference": round(float(auroc(a, y) - auroc(b, y)), 4), "ci95": [round(float(low), 4),
            round(float(high), 4)], "share_above_zero": round(float(np.mean(np.asarray(diffs) >= 0)), 3),
            "rounds": rounds}


def score_with_levels(model, images: np.ndarray, batch_size: int = 8):
    """(scores (N,), maps (N, H, W), {level: (N,) peak of that level's map}) in one pass per batch."""
    scores, maps, peaks = [], [], {}
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            s, m, levels = model.forward_with_levels(torch.from_numpy(images[i:i + batch_size]))
            scores.append(s.float().numpy())
            maps.append(m[:, 0].float().numpy())
            for name, lv in levels.items():
                peaks.setdefault(name, []).append(lv.flatten(1).amax(dim=1).float().numpy())
    return np.concatenate(scores), np.concatenate(maps), {k: np.concatenate(v) for k, v in peaks.items()}


def level_aurocs(peaks: dict, test: dict) -> dict:
    """Image AUROC of each level map alone (its max), likely_defect left out."""
    from inspector.evaluation.metrics import auroc

    keep = np.array([t != LIKELY for t in test["types"]])
    return {name: float(auroc(v[keep], test["labels"][keep])) for name, v in peaks.items()}


def has_teacher_choice(model: str) -> bool:
    """Whether ``model``'s config has the offline ``teacher`` field (``--teacher`` applies to it)."""
    import dataclasses

    from inspector.models.registry import get_entry

    return any(f.name == "teacher" for f in dataclasses.fields(get_entry(model).config_cls))


def stop_reason(summary: dict, cap: float | None) -> str:
    phases = summary["phases"]
    if any(p.get("stop_reason") for p in phases):
        return "; ".join(f"{p['name']}: {p['stop_reason']}" for p in phases if p.get("stop_reason"))
    if any(p["interrupted"] for p in phases):
        return "interrupted"
    if cap is not None and any(p["seconds"] >= cap for p in phases):
        return f"time cap {cap:.0f} s"
    return "epoch count"


def bench_model(name: str, data: Path, args, run_root: Path, tests: dict) -> dict:
    from inspector.training.checkpoint import load_model
    from inspector.training.config import load_run_config
    from inspector.training.loop import train

    train_section = {"time_budget_s": args.time_cap} if args.time_cap else {}
    if args.epochs:
        train_section["epochs"] = args.epochs
    if args.threads:
        train_section["threads"] = args.threads
    model_section = {"name": name, **({"image_size": list(QUICK_SIZE)} if args.quick else {})}
    if args.teacher and has_teacher_choice(name):
        model_section["teacher"] = args.teacher
    # --set (ablations): the same overrides for every dataset, recorded in the result
    config = load_run_config(base={"model": model_section, "data": {"path": str(data)}, "train": train_section},
                             overrides=list(args.set or ()))
    run_dir = run_root / name
    t0 = time.monotonic()
    summary = train(config, run_dir)
    train_s = time.monotonic() - t0
    model, config, _ = load_model(run_dir)
    size, resize = tuple(config.model.image_size), config.data.resize
    key = (size, resize)
    if key not in tests:
        tests[key] = load_test(data, size, resize)
    test = tests[key]

    scores, maps, peaks = score_with_levels(model, test["images"])
    return {
        "model": name, "preset": config.model.preset, "overrides": list(args.set or ()),
        "image_size": list(size), "resize": resize, "teacher": getattr(config.model, "teacher", None),
        "train": {"seconds": round(train_s, 1), "epochs": [p["epochs_run"] for p in summary["phases"]],
                  "best_epoch": [p["best_epoch"] for p in summary["phases"]],
                  "stop_reason": stop_reason(summary, args.time_cap), "phases": summary["phases"],
                  "recipe": {k: v for k, v in vars(config.train).items()}},
        "metrics": metrics_for(scores, maps, test),
        "level_image_auroc": level_aurocs(peaks, test),
        # this model's image AUROC minus the same run's kNN reference's, with how far another test draw would move it
        **({"vs_knn": paired_bootstrap(scores, test["knn_scores"], test)} if "knn_scores" in test else {}),
    }


def offline_teacher(teacher: str | None) -> str:
    """The kNN reference's backbone: ``--teacher``, else the default offline students' teacher."""
    from inspector.models.reduced_student.model import ReducedStudentConfig

    return teacher or ReducedStudentConfig().teacher


def bench_knn(data: Path, size: tuple[int, int], resize: str, tests: dict, quick: bool,
              teacher: str | None = None) -> dict:
    from inspector.data.datasets import load_batch, load_dataset
    from knn_reference import KnnReference, KnnSettings

    t0 = time.monotonic()
    train_imgs, _, _ = load_batch(load_dataset(data).train, size[0], size[1], resize)
    settings = KnnSettings(backbone=offline_teacher(teacher), max_pool=5_000 if quick else 100_000)
    ref = KnnReference(settings).fit(train_imgs)
    fit_s = time.monotonic() - t0
    key = (tuple(size), resize)
    if key not in tests:
        tests[key] = load_test(data, size, resize)
    scores, maps = ref.score(tests[key]["images"])
    tests[key]["knn_scores"] = scores  # every model of this dataset at this input is compared with it, paired
    return {"model": "knn_reference", "image_size": list(size), "resize": resize, "reference": ref.info,
            "train": {"seconds": round(fit_s, 1)}, "metrics": metrics_for(scores, maps, tests[key])}


def default_input(data: Path) -> tuple[tuple[int, int], str]:
    """The input size and resize policy a default run uses (what the kNN reference must match)."""
    from inspector.training.config import load_run_config
    from inspector.training.loop import resolve_input

    config = resolve_input(load_run_config(base={"data": {"path": str(data)}}))
    return tuple(config.model.image_size), config.data.resize


def datasets(args, run_root: Path) -> list[tuple[str, Path, str]]:
    names = args.datasets.split(",") if args.datasets else [*REAL, *SMOKE, SYNTHETIC]
    out = []
    for name in names:
        if name == SYNTHETIC:
            out.append((name, synthetic_dataset(run_root / "data", args.quick), "synthetic"))
        elif (args.data_root / name).is_dir():
            out.append((name, args.data_root / name, "smoke" if name in SMOKE else "real"))
        else:
            print(f"skipping {name}: {args.data_root / name} not found", flush=True)
    return out


def _without(argv: list[str], option: str) -> list[str]:
    """``argv`` minus ``option`` and its value (``--opt v`` or ``--opt=v``)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == option:
            skip = True
        elif not a.startswith(option + "="):
            out.append(a)
    return out


def run_parallel(args, argv: list[str]) -> Path:
    """One child process per dataset (at most ``--jobs`` at once), then one merged result file."""
    import json
    import subprocess
    import tempfile

    names = args.datasets.split(",") if args.datasets else [*REAL, *SMOKE, SYNTHETIC]
    base = argv
    for option in ("--jobs", "--datasets", "--out", "--max-seconds"):
        base = _without(base, option)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        pending = list(names)
        running: list[tuple[str, subprocess.Popen]] = []
        while pending or running:
            while pending and len(running) < args.jobs:
                name = pending.pop(0)
                out = Path(tmp) / name.replace("/", "_")
                cmd = [sys.executable, __file__, *base, "--datasets", name, "--out", str(out)]
                running.append((name, subprocess.Popen(cmd)))
            time.sleep(2)
            if args.max_seconds and time.monotonic() - t0 > args.max_seconds:
                print(f"--max-seconds {args.max_seconds:.0f} reached: stopping {[n for n, _ in running]}, "
                      f"not starting {pending}; merging what was measured", flush=True)
                for _, proc in running:
                    proc.terminate()
                for _, proc in running:
                    proc.wait()
                running, pending = [], []
            for item in [r for r in running if r[1].poll() is not None]:
                running.remove(item)
                if item[1].returncode:
                    print(f"{item[0]}: failed with exit code {item[1].returncode}", flush=True)
        merged = None
        for name in names:
            part = Path(tmp) / name.replace("/", "_") / f"{args.name}.json"
            if not part.is_file():
                continue
            data = json.loads(part.read_text())
            if merged is None:
                merged = {k: v for k, v in data.items() if k not in ("benchmark", "created", "machine")}
                merged["datasets"], merged["complete"] = [], True
            for entry in data["datasets"]:
                entry["complete"] = bool(data.get("complete"))
            merged["complete"] = merged["complete"] and bool(data.get("complete"))
            merged["datasets"] += data["datasets"]
    if merged is None:
        raise SystemExit("error: no dataset produced a result")
    merged["seconds"] = round(time.monotonic() - t0)
    merged["jobs"] = args.jobs
    path = write_result(args.name, merged, args.out)
    print(f"wrote {path}")
    return path


def main(argv: list[str] | None = None) -> Path:
    from inspector.models.registry import model_names

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CI smoke: synthetic data only, 1 epoch, tiny images")
    ap.add_argument("--datasets", help=f"comma list (default: {','.join([*REAL, *SMOKE, SYNTHETIC])})")
    ap.add_argument("--models", help="comma list (default: every registered model)")
    ap.add_argument("--data-root", type=Path, default=SHARED)
    ap.add_argument("--time-cap", type=float, default=240.0,
                    help="wall-clock cap per training run in seconds, the same for every run (0: none)")
    ap.add_argument("--epochs", type=int, default=None, help="force an epoch count (ablations; default: recipe)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                    help="config override for every trained model (ablations), e.g. model.student_depth=2")
    ap.add_argument("--no-knn", action="store_true",
                    help="skip the kNN reference (ablations: it is deterministic, seed 0; "
                         "quote it from a run that has it)")
    ap.add_argument("--run-root", type=Path, default=Path("runs/bench/quality"))
    ap.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results)")
    ap.add_argument("--name", default="quality")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="with --jobs: stop every dataset still running after this long and merge what was measured")
    ap.add_argument("--teacher", default=None,
                    help="offline teacher (model.teacher) of the models that have the choice AND the kNN "
                         "reference's backbone (default: the offline default teacher)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="datasets benchmarked in this many processes at once (results merged into one file)")
    args = ap.parse_args(argv)
    claim_result_or_exit(args.name, args.out)  # before the work: a user's file at the name is kept
    if args.jobs > 1:
        return run_parallel(args, argv or sys.argv[1:])
    if args.quick:
        args.datasets = args.datasets or SYNTHETIC
        args.epochs = args.epochs or 1
        args.time_cap = args.time_cap if args.time_cap != 240.0 else 30.0
    args.time_cap = args.time_cap or None
    if args.threads:
        torch.set_num_threads(args.threads)
    # the meta-comparer is trained across domains and enrolled per domain: bench_meta_comparer.py
    models = args.models.split(",") if args.models else [m for m in model_names() if m not in CROSS_DOMAIN]
    results = []
    t_start = time.monotonic()
    for name, data, kind in datasets(args, args.run_root):
        tests: dict = {}
        size, resize = default_input(data)
        if args.quick:
            size = QUICK_SIZE
        entry = {"dataset": name, "kind": kind, "path": str(data), "results": []}
        if not args.no_knn:
            knn = bench_knn(data, size, resize, tests, args.quick, args.teacher)
            entry["results"].append(knn)
            write_partial(args, [*results, entry], t_start)
            print(f"{name:22} {'knn_reference':16} img {knn['metrics']['image_auroc']:.3f}", flush=True)
        for model in models:
            args_model = args
            r = bench_model(model, data, args_model, args.run_root / name.replace("/", "_"), tests)
            entry["results"].append(r)
            write_partial(args, [*results, entry], t_start)
            m = r["metrics"]
            print(f"{name:22} {model:16} img {m['image_auroc']:.3f} px {m['pixel_auroc'] or 0:.3f} "
                  f"levels {', '.join(f'{k} {v:.2f}' for k, v in r['level_image_auroc'].items())} "
                  f"({r['train']['seconds']} s, epochs {r['train']['epochs']}, {r['train']['stop_reason']})",
                  flush=True)
        results.append(entry)
    return write_partial(args, results, t_start, complete=True)


def write_partial(args, results: list, t_start: float, complete: bool = False) -> Path:
    """Write what is measured so far (``complete`` false until the last model of the last dataset)."""
    path = write_result(args.name, {"quick": args.quick, "time_cap_s": args.time_cap, "epochs_forced": args.epochs,
                                    "threads": torch.get_num_threads(), "seconds": round(time.monotonic() - t_start),
                                    "likely_defect": "excluded from image_auroc; see image_auroc_with_likely",
                                    "complete": complete, "datasets": results}, args.out)
    if complete:
        print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
